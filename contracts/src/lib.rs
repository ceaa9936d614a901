//! What the services and their callers must agree on, in the one place every side uses: the
//! ports, the flags and environment variables one part sets on another, the media types an upload
//! may have, and the request and response types of the OCR and LLM services. The services serialize these types and their callers deserialize the same ones,
//! so a field renamed on one side cannot go unnoticed on the other.

pub mod flags;
pub mod llm;
pub mod media;
pub mod ocr;
pub mod ports;
