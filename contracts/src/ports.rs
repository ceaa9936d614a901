//! The port each part listens on by default (the monitoring guide's service table); the operator's
//! Services and probes, the local run and each binary's `--listen` default all read them here.

/// The OCR service.
pub const OCR: u16 = 8000;
/// The LLM service.
pub const LLM: u16 = 8001;
/// The backend (CRUD API, study, alerts webhook).
pub const BACKEND: u16 = 8002;
/// The web app.
pub const WEB: u16 = 8080;
/// The operator's metrics and health endpoints.
pub const OPERATOR: u16 = 8081;
