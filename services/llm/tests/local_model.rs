//! The service running its model itself (`--model`): SmolLM2's GGUF file, the one llama.cpp
//! serves in the other tests (`FLASHCARDS_TEST_LLM_MODEL`, set by `cargo xtask test`).

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;

use flashcards_bootstrap::config;
use flashcards_llm::{Args, from_args};
use reqwest::StatusCode;
use serde_json::json;
use support::start_local;

const PASSAGE: &str = "The cell is the basic unit of life. The nucleus stores the cell's DNA. \
Mitochondria release energy from glucose and make ATP. Ribosomes build proteins from amino acids.";

fn model_path() -> String {
    std::env::var("FLASHCARDS_TEST_LLM_MODEL").expect(
        "FLASHCARDS_TEST_LLM_MODEL is not set: run the tests with `cargo xtask test`, which \
         downloads SmolLM2's GGUF file",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn cards_come_from_the_model_file_run_in_process() {
    let path = model_path();
    let server = start_local(&path).await;
    let models: serde_json::Value = reqwest::get(format!("{}/v1/models", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["models"][0]["backend"], "local", "{models}");
    let stem = std::path::Path::new(&path).file_stem().unwrap();
    assert_eq!(
        models["models"][0]["id"],
        stem.to_str().unwrap(),
        "{models}"
    );

    let (status, answer) = server
        .generate(json!({"text": PASSAGE, "max_cards": 4}))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    println!("{}", serde_json::to_string_pretty(&answer).unwrap());
    let cards = answer["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 4, "{answer}");
    for card in cards {
        let back = card["back"]
            .as_str()
            .or_else(|| card["text"].as_str())
            .unwrap();
        let start = usize::try_from(card["source"]["start"].as_u64().unwrap()).unwrap();
        let end = usize::try_from(card["source"]["end"].as_u64().unwrap()).unwrap();
        let source: String = PASSAGE.chars().skip(start).take(end - start).collect();
        let answer_words = back
            .split(|c: char| !c.is_alphanumeric())
            .filter(|word| word.len() > 2 && !["c1"].contains(word));
        for word in answer_words {
            assert!(
                source.to_lowercase().contains(&word.to_lowercase()),
                "{word:?} of {card} is not in {source:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_model_asks_for_a_question_when_no_template_fits() {
    // A dated sentence: its question is the model's to phrase, so the model runs.
    let server = start_local(&model_path()).await;
    let (status, answer) = server
        .generate(
            json!({"text": "The Stockton and Darlington Railway opened in 1825.", "max_cards": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["usage"]["calls"].as_u64().unwrap() >= 1, "{answer}");
    assert!(
        answer["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{answer}"
    );
}

#[test]
fn exactly_one_backend_is_named() {
    let parse = |argv: &[&str]| config::parse_from(argv.iter().copied(), 8001);
    assert!(parse(&["flashcards-llm"]).is_err());
    assert!(
        parse(&[
            "flashcards-llm",
            "--model",
            "/models/m.gguf",
            "--upstream-url",
            "http://127.0.0.1:8080"
        ])
        .is_err()
    );
    let local: Args = parse(&["flashcards-llm", "--model", "/models/m.gguf"]).unwrap();
    assert_eq!(
        local.model.as_deref(),
        Some(std::path::Path::new("/models/m.gguf"))
    );
}

#[test]
fn a_missing_truncated_or_foreign_file_is_a_clear_error() {
    let load = |path: &str| {
        let args: Args = config::parse_from(["flashcards-llm", "--model", path], 8001).unwrap();
        from_args(&args).err().map(|err| err.to_string())
    };
    let missing = load("/nonexistent/model.gguf").unwrap();
    assert!(missing.contains("/nonexistent/model.gguf"), "{missing}");

    let mut truncated = tempfile::NamedTempFile::new().unwrap();
    let bytes = std::fs::read(model_path()).unwrap();
    truncated.write_all(&bytes[..bytes.len() / 3]).unwrap();
    let error = load(truncated.path().to_str().unwrap()).unwrap();
    assert!(error.contains("model"), "{error}");

    let mut foreign = tempfile::NamedTempFile::new().unwrap();
    foreign.write_all(b"PK\x03\x04 not a model").unwrap();
    let error = load(foreign.path().to_str().unwrap()).unwrap();
    assert!(error.contains(foreign.path().to_str().unwrap()), "{error}");
}
