//! The service running its model itself (`--model`): SmolLM2's GGUF file, the one llama.cpp
//! serves in the other tests (`FLASHCARDS_TEST_LLM_MODEL`, set by `cargo xtask test`).

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;

use flashcards_bootstrap::config;
use flashcards_llm::{
    Args, from_args,
    pipeline::{cards, prompt},
};
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
    assert_eq!(models["object"], "list", "{models}");
    assert_eq!(
        models["data"][0]["id"], models["models"][0]["id"],
        "{models}"
    );
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

/// `POST /v1/chat/completions` on `server`: the status and the JSON answer.
async fn chat(base: &str, body: serde_json::Value) -> (StatusCode, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_local_model_answers_openai_chat_completions() {
    let server = start_local(&model_path()).await;
    let (status, answer) = chat(
        &server.base,
        json!({
            "model": "anything",
            "messages": [{"role": "user", "content": "Name three primary colours."}],
            "max_tokens": 12,
            "n": 1,
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["choices"][0]["message"]["role"], "assistant");
    assert!(
        !answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .is_empty(),
        "{answer}"
    );
    let usage = &answer["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 5, "{answer}");
    assert!(
        usage["completion_tokens"].as_u64().unwrap() <= 12,
        "{answer}"
    );
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
    // Every model call is counted, with its tokens per second.
    #[allow(clippy::cast_precision_loss)]
    let written = usage["completion_tokens"].as_u64().unwrap() as f64;
    assert_eq!(server.metric("llm_completion_tokens_total").await, written);
    assert_eq!(
        server
            .metric("llm_completion_tokens_per_second_count")
            .await,
        1.0
    );
    assert!(server.metric("llm_prompt_tokens_total").await > 5.0);

    // Sampled with a seed: the same seed, the same answer.
    let sampled = json!({
        "messages": [{"role": "user", "content": "Write a word."}],
        "max_tokens": 8, "temperature": 1.0, "top_p": 0.9, "seed": 42,
    });
    let (_, first) = chat(&server.base, sampled.clone()).await;
    let (_, second) = chat(&server.base, sampled).await;
    assert_eq!(
        first["choices"][0]["message"]["content"],
        second["choices"][0]["message"]["content"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_requests_it_cannot_honour_are_refused_with_the_reason() {
    let server = start_local(&model_path()).await;
    let user = json!([{"role": "user", "content": "hi"}]);
    for (body, reason) in [
        (json!({"messages": []}), "empty"),
        (
            json!({"messages": [{"role": "tool", "content": "x"}]}),
            "role",
        ),
        (json!({"messages": user, "max_tokens": 0}), "max_tokens"),
        (json!({"messages": user, "temperature": 3.5}), "temperature"),
        (
            json!({"messages": user, "response_format": {"type": "json_schema",
                "json_schema": {"schema": {"type": "object",
                    "properties": {"n": {"type": "integer", "minimum": 5, "maximum": 1}},
                    "required": ["n"]}}}}),
            "response_format.json_schema.schema",
        ),
    ] {
        let (status, answer) = chat(&server.base, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert!(answer.to_string().contains(reason), "{reason}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_answer_is_the_whole_answer_in_pieces() {
    let server = start_local(&model_path()).await;
    let ask = |stream: bool| {
        json!({
            "messages": [{"role": "user", "content": "Name three primary colours."}],
            "max_tokens": 16,
            "stream": stream,
        })
    };
    let (_, whole) = chat(&server.base, ask(false)).await;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", server.base))
        .json(&ask(true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let body = response.text().await.unwrap();
    let data: Vec<&str> = body
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{body}");
    let chunks: Vec<serde_json::Value> = data[..data.len() - 1]
        .iter()
        .map(|chunk| serde_json::from_str(chunk).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks.len() > 3, "one chunk per piece: {body}");
    let text: String = chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        text,
        whole["choices"][0]["message"]["content"].as_str().unwrap()
    );
    let last = chunks.last().unwrap();
    assert_eq!(
        last["choices"][0]["finish_reason"],
        whole["choices"][0]["finish_reason"]
    );
    assert!(
        chunks
            .iter()
            .all(|chunk| chunk["object"] == "chat.completion.chunk")
    );
}

/// The bar for constrained decoding: 100 answers sampled at temperature 1.0, each from its
/// own seed, with the pipeline's prompt and token limit, all parse against the card schema.
#[tokio::test(flavor = "multi_thread")]
async fn sampled_answers_always_parse_against_the_card_schema() {
    let server = start_local(&model_path()).await;
    let messages: Vec<serde_json::Value> = prompt::messages(
        "Mitochondria release energy from glucose and make ATP.",
        "ATP",
        None,
    )
    .iter()
    .map(|message| json!({"role": message.role, "content": message.content}))
    .collect();
    let mut longest = 0;
    for seed in 0..100 {
        let (status, answer) = chat(
            &server.base,
            json!({
                "messages": messages,
                "max_tokens": prompt::MAX_TOKENS_PER_CARD,
                "temperature": 1.0,
                "seed": seed,
                "response_format": {"type": "json_schema",
                    "json_schema": {"name": "card", "schema": prompt::output_schema()}},
            }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "seed {seed}: {answer}");
        let choice = &answer["choices"][0];
        let content = choice["message"]["content"].as_str().unwrap();
        assert_eq!(choice["finish_reason"], "stop", "seed {seed}: {content:?}");
        // The whole answer is the document: no prose around it for a lenient parser to skip.
        let document: serde_json::Value = serde_json::from_str(content)
            .unwrap_or_else(|err| panic!("seed {seed}: {content:?} is not JSON: {err}"));
        let reply = cards::parse_reply(content)
            .unwrap_or_else(|err| panic!("seed {seed}: {content:?}: {err}"));
        assert_eq!(document["question"], reply.question.as_str());
        let chars = reply.question.chars().count();
        assert!(
            chars as u64 <= prompt::MAX_QUESTION_CHARS,
            "seed {seed}: {chars} characters"
        );
        longest = longest.max(chars);
    }
    println!("100 sampled answers parse; the longest question has {longest} characters");
}
