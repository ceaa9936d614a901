//! Local inference for the LLM service. So far: reading GGUF model files (header, metadata and
//! tensor index, the tensor data memory-mapped in place), turning the reference models' block
//! formats back into numbers, matrix-vector products on the quantized weights themselves, and the
//! models' tokenizer, with every malformed or unsupported file refused by an error that names what
//! is wrong.

pub mod gguf;
pub mod kernels;
pub mod model;
pub mod quant;
pub mod tokenizer;
