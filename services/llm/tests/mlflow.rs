//! MLflow logging through the real service: each generation is a run in the LLM experiment of a
//! real tracking server (`cargo xtask test` starts one and names it in FLASHCARDS_TEST_MLFLOW_URL);
//! an MLflow that is down or stalls fails no request and slows none. The model is a stand-in that
//! answers at once with fixed cards, so the logged card counts are known.

#![allow(clippy::unwrap_used)]

use std::{
    process,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    http::StatusCode as Status,
    routing::{get, post},
};
use flashcards_bootstrap::{
    ServiceBuilder, config,
    mlflow::{MlflowConfig, MlflowLogger, search_runs},
    testing::{closed_port, mlflow_url, stalled_server},
};
use flashcards_llm::{Args, LlmState, app, from_args, metrics::LlmMetrics};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const TEXT: &str = "Cells need energy. The energy is stored in a molecule called ATP.";

/// A stand-in OpenAI-compatible upstream: answers every chat request with one grounded card and
/// one the text does not support, or, when `failing`, with 503.
async fn upstream(failing: bool) -> String {
    let router = Router::new()
        .route(
            "/v1/models",
            get(|| async { Json(json!({"data": [{"id": "stand-in"}]})) }),
        )
        .route(
            "/v1/chat/completions",
            post(move || async move {
                if failing {
                    return Err((Status::SERVICE_UNAVAILABLE, "down for maintenance"));
                }
                let content = json!({"cards": [
                    {"quote": "The energy is stored in a molecule called ATP.", "kind": "basic",
                        "front": "Which molecule stores energy?", "back": "ATP"},
                    {"quote": "", "kind": "basic", "front": "What is the capital of France?",
                        "back": "Paris"}]});
                Ok(Json(json!({
                    "choices": [{"message": {"role": "assistant", "content": content.to_string()}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 20}
                })))
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

struct LlmServer {
    base: String,
    client: Client,
}

/// The service as `main` assembles it, MLflow logging from the flags included.
async fn start(upstream: &str, extra: &[&str]) -> LlmServer {
    let mut argv = vec![
        "flashcards-llm",
        "--upstream-url",
        upstream,
        "--upstream-retries",
        "0",
    ];
    argv.extend_from_slice(extra);
    let args: Args = config::parse_from(argv, 8001).unwrap();
    let mut service = ServiceBuilder::new("flashcards-llm", "test");
    let metrics = LlmMetrics::register(service.registry());
    let mlflow = MlflowLogger::start(
        MlflowConfig::from_args(&args.common, "flashcards-llm"),
        service.registry(),
    )
    .unwrap();
    let (backend, settings) = from_args(&args);
    let router = app(
        service,
        LlmState::new(backend, settings, metrics).with_mlflow(mlflow),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    LlmServer {
        base,
        client: Client::new(),
    }
}

impl LlmServer {
    async fn generate(&self, body: Value) -> StatusCode {
        self.client
            .post(format!("{}/v1/generate", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn metric(&self, series: &str) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0.0, |value| value.trim().parse().unwrap())
    }

    async fn logged(&self, outcome: &str) -> f64 {
        self.metric(&format!(
            r#"mlflow_log_requests_total{{service="flashcards-llm",outcome="{outcome}"}}"#
        ))
        .await
    }

    /// Waits until `count` records ended with `outcome`.
    async fn wait_for(&self, outcome: &str, count: f64) {
        let started = Instant::now();
        while self.logged(outcome).await < count {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{outcome} stayed at {} of {count}",
                self.logged(outcome).await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn entry<'a>(run: &'a Value, list: &str, key: &str) -> &'a Value {
    run["data"][list]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["key"] == key)
        .map_or(&Value::Null, |entry| &entry["value"])
}

fn run_with<'a>(runs: &'a [Value], outcome: &str) -> &'a Value {
    runs.iter()
        .find(|run| entry(run, "tags", "outcome") == outcome)
        .unwrap_or_else(|| panic!("no {outcome} run in {runs:#?}"))
}

#[tokio::test]
async fn generations_and_their_errors_are_runs_with_model_parameters_and_card_counts() {
    let url = mlflow_url();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let experiment = format!("test-llm-{}-{}", process::id(), nanos.as_nanos());
    let flags = ["--mlflow-url", &url, "--mlflow-experiment", &experiment];
    let server = start(&upstream(false).await, &flags).await;
    let status = server
        .generate(json!({"text": TEXT, "max_cards": 3, "kinds": ["basic"], "language": "English"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        server.generate(json!({"text": "  "})).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let down = start(&upstream(true).await, &flags).await;
    assert_eq!(
        down.generate(json!({"text": TEXT})).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    server.wait_for("success", 2.0).await;
    down.wait_for("success", 1.0).await;

    let runs = search_runs(&url, &experiment).await.unwrap();
    assert_eq!(runs.len(), 3, "{runs:#?}");
    let run = run_with(&runs, "success");
    assert_eq!(run["info"]["status"], "FINISHED");
    assert_eq!(entry(run, "tags", "mlflow.source.name"), "flashcards-llm");
    for (key, value) in [
        ("model", "stand-in"),
        ("backend", "openai-compatible"),
        ("temperature", "0"),
        ("prompt_version", "cards-v3"),
        ("max_cards", "3"),
        ("kinds", "basic"),
        ("language", "English"),
    ] {
        assert_eq!(entry(run, "params", key), value, "{key}");
    }
    #[allow(clippy::cast_precision_loss)]
    let chars = TEXT.chars().count() as f64;
    for (key, value) in [
        ("input_chars", chars),
        ("chunks", 1.0),
        ("cards_generated", 1.0),
        ("cards_dropped", 1.0),
        ("cards_dropped_ungrounded", 1.0),
        ("cards_dropped_quality", 0.0),
        ("prompt_tokens", 10.0),
        ("completion_tokens", 20.0),
    ] {
        assert_eq!(entry(run, "metrics", key), value, "{key}");
    }
    assert!(entry(run, "metrics", "duration_seconds").as_f64().unwrap() > 0.0);

    let run = run_with(&runs, "invalid_request");
    assert_eq!(run["info"]["status"], "FAILED");
    assert_eq!(entry(run, "tags", "error_type"), "invalid_request");
    assert_eq!(
        entry(run, "tags", "error_detail"),
        "text: must not be empty"
    );

    let run = run_with(&runs, "upstream");
    assert_eq!(run["info"]["status"], "FAILED");
    assert!(
        entry(run, "tags", "error_detail")
            .as_str()
            .unwrap()
            .contains("503"),
        "{run}"
    );
    assert_eq!(entry(run, "params", "max_cards"), "10");
}

#[tokio::test]
async fn with_mlflow_down_generations_succeed_and_failures_are_counted() {
    let url = closed_port().await;
    let server = start(&upstream(false).await, &["--mlflow-url", &url]).await;
    for _ in 0..2 {
        assert_eq!(server.generate(json!({"text": TEXT})).await, StatusCode::OK);
    }
    server.wait_for("failure", 2.0).await;
    assert_eq!(server.logged("success").await, 0.0);
    assert_eq!(
        server.metric("llm_generation_duration_seconds_count").await,
        2.0
    );
}

#[tokio::test]
async fn a_stalled_mlflow_drops_records_and_slows_no_generation() {
    let url = stalled_server().await;
    let timeout_secs = 120;
    let server = start(
        &upstream(false).await,
        &[
            "--mlflow-url",
            &url,
            "--mlflow-queue",
            "1",
            "--mlflow-timeout-secs",
            &timeout_secs.to_string(),
        ],
    )
    .await;
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(server.generate(json!({"text": TEXT})).await, StatusCode::OK);
        // Waiting on MLflow would take the whole timeout.
        assert!(
            started.elapsed() < Duration::from_secs(timeout_secs / 4),
            "{:?}",
            started.elapsed()
        );
        // Lets the logger take the first record before the next one comes.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The first record waits on the server, the second in the queue; the third has no room.
    assert_eq!(server.logged("dropped").await, 1.0);
    assert_eq!(
        server
            .metric(r#"mlflow_log_queue_depth{service="flashcards-llm"}"#)
            .await,
        1.0
    );
}
