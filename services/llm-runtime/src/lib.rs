//! Local inference for the LLM service: reading GGUF model files (header, metadata and tensor
//! index, the tensor data memory-mapped in place), turning the reference models' block formats
//! back into numbers, matrix-vector products on the quantized weights themselves, the llama and
//! qwen2 forward pass, the models' tokenizer and chat template, sampling, and decoding constrained
//! to a JSON schema. Every malformed or unsupported file is refused by an error that names what is
//! wrong.

pub mod chat;
pub mod constraint;
pub mod elementwise;
pub mod extension;
pub mod generate;
pub mod gguf;
pub mod kernels;
pub mod model;
pub mod quant;
pub mod tokenizer;
