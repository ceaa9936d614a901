//! The reference model files read in place: SmolLM2-135M-Instruct and Qwen2.5-Coder-0.5B-Instruct,
//! which `cargo xtask test` downloads and names in FLASHCARDS_TEST_LLM_MODEL and
//! FLASHCARDS_TEST_QWEN_MODEL.

#![allow(clippy::unwrap_used)]

use std::{collections::BTreeSet, path::PathBuf};

use flashcards_llm_runtime::{
    gguf::{Gguf, TensorType},
    quant::dequantize,
};

fn model_files() -> Vec<PathBuf> {
    ["FLASHCARDS_TEST_LLM_MODEL", "FLASHCARDS_TEST_QWEN_MODEL"]
        .into_iter()
        .map(|var| {
            PathBuf::from(std::env::var_os(var).unwrap_or_else(|| {
                panic!("{var} is not set: run the tests with `cargo xtask test`")
            }))
        })
        .collect()
}

#[test]
fn reference_files_have_their_architecture_vocabulary_and_weights() {
    for path in model_files() {
        let model = Gguf::open(&path).unwrap();
        let architecture = model.architecture().unwrap().to_owned();
        assert!(
            ["llama", "qwen2"].contains(&architecture.as_str()),
            "{}: {architecture}",
            path.display()
        );
        let layers = model
            .get_u64(&format!("{architecture}.block_count"))
            .unwrap();
        let width = model
            .get_u64(&format!("{architecture}.embedding_length"))
            .unwrap();
        let tokens = match model.get("tokenizer.ggml.tokens").unwrap() {
            flashcards_llm_runtime::gguf::Value::Array(tokens) => tokens.len() as u64,
            other => panic!("tokens are {other:?}"),
        };
        let embedding = model.tensor("token_embd.weight").unwrap();
        assert_eq!(embedding.dims, [width, tokens], "{}", path.display());
        for layer in 0..layers {
            for part in [
                "attn_q",
                "attn_k",
                "attn_v",
                "attn_output",
                "ffn_gate",
                "ffn_up",
                "ffn_down",
            ] {
                let name = format!("blk.{layer}.{part}.weight");
                let tensor = model.tensor(&name).unwrap_or_else(|| panic!("{name}"));
                assert_eq!(
                    model.data(tensor).len() as u64,
                    tensor.bytes.end - tensor.bytes.start
                );
            }
        }
        let kinds: BTreeSet<String> = model
            .tensors
            .iter()
            .map(|tensor| tensor.kind.to_string())
            .collect();
        println!(
            "{}: {architecture}, {layers} layers, width {width}, {tokens} tokens, tensor types {kinds:?}",
            path.display()
        );
        assert!(
            model
                .tensors
                .iter()
                .all(|tensor| !matches!(tensor.kind, TensorType::Other(_)))
        );
    }
}

#[test]
fn a_truncated_model_file_is_a_clear_error() {
    let path = &model_files()[0];
    let bytes = std::fs::read(path).unwrap();
    let directory = tempfile::tempdir().unwrap();
    for keep in [10, 4096, bytes.len() / 2, bytes.len() - 1] {
        let cut = directory.path().join(format!("cut-{keep}.gguf"));
        std::fs::write(&cut, &bytes[..keep]).unwrap();
        let err = Gguf::open(&cut).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{keep}: {err}");
    }
}

/// The first block of weights of every tensor dequantizes to finite, moderate numbers, and no
/// tensor is of a type the runtime cannot read.
#[test]
fn every_tensor_type_of_the_reference_files_dequantizes() {
    for path in model_files() {
        let model = Gguf::open(&path).unwrap();
        for tensor in &model.tensors {
            let (_, block_bytes) = tensor.kind.block().unwrap();
            let data = model.data(tensor);
            let first = &data[..usize::try_from(block_bytes).unwrap().min(data.len())];
            let mut values = Vec::new();
            dequantize(tensor.kind, first, &mut values)
                .unwrap_or_else(|err| panic!("{}: {}: {err}", path.display(), tensor.name));
            assert!(
                values
                    .iter()
                    .all(|value| value.is_finite() && value.abs() < 1000.0),
                "{}: {} {values:?}",
                path.display(),
                tensor.name
            );
        }
    }
}
