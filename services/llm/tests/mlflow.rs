//! MLflow logging through the real service: each generation is a run in the LLM experiment of a
//! real tracking server (`cargo xtask test` starts one and names it in FLASHCARDS_TEST_MLFLOW_URL);
//! an MLflow that is down or stalls fails no request and slows none. The model is a stand-in that
//! answers at once with fixed cards, so the logged card counts are known.

#![allow(clippy::unwrap_used)]

mod support;

use std::{
    process,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use flashcards_bootstrap::{
    mlflow::search_runs,
    testing::{closed_port, mlflow_url, run_entry, run_tagged, stalled_server},
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{LlmServer, stand_in_upstream, start};

const TEXT: &str = "The French Revolution began in 1789.";

/// A stand-in upstream that answers every chat request with the question for the text's one fact
/// (a date, which the model phrases), or, when `failing`, with 503.
async fn upstream(failing: bool) -> String {
    let reply =
        move |_| (!failing).then(|| json!({"question": "When did the French Revolution begin?"}));
    stand_in_upstream("stand-in", reply).await.0
}

/// The service in front of a stand-in upstream (`failing` or not) that it does not retry.
async fn serve(failing: bool, flags: &[&str]) -> LlmServer {
    let mut extra = vec!["--upstream-retries", "0"];
    extra.extend_from_slice(flags);
    start(&upstream(failing).await, &extra).await
}

async fn generate(server: &LlmServer, body: Value) -> StatusCode {
    server.generate(body).await.0
}

async fn logged(server: &LlmServer, outcome: &str) -> f64 {
    server
        .metric(&format!(
            r#"mlflow_log_requests_total{{service="flashcards-llm",outcome="{outcome}"}}"#
        ))
        .await
}

/// Waits until `count` records ended with `outcome`.
async fn wait_for(server: &LlmServer, outcome: &str, count: f64) {
    let started = Instant::now();
    while logged(server, outcome).await < count {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{outcome} stayed at {} of {count}",
            logged(server, outcome).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn generations_and_their_errors_are_runs_with_model_parameters_and_card_counts() {
    let url = mlflow_url();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let experiment = format!("test-llm-{}-{}", process::id(), nanos.as_nanos());
    let flags = ["--mlflow-url", &url, "--mlflow-experiment", &experiment];
    let server = serve(false, &flags).await;
    let status = generate(
        &server,
        json!({"text": TEXT, "max_cards": 3, "kinds": ["basic"], "language": "English"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        generate(&server, json!({"text": "  "})).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let down = serve(true, &flags).await;
    assert_eq!(
        generate(&down, json!({"text": TEXT})).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    wait_for(&server, "success", 2.0).await;
    wait_for(&down, "success", 1.0).await;

    let runs = search_runs(&url, &experiment).await.unwrap();
    assert_eq!(runs.len(), 3, "{runs:#?}");
    let run = run_tagged(&runs, "outcome", "success");
    assert_eq!(run["info"]["status"], "FINISHED");
    assert_eq!(
        run_entry(run, "tags", "mlflow.source.name"),
        "flashcards-llm"
    );
    for (key, value) in [
        ("model", "stand-in"),
        ("backend", "openai-compatible"),
        ("temperature", "0"),
        ("prompt_version", "cards-v4"),
        ("max_cards", "3"),
        ("kinds", "basic"),
        ("language", "English"),
    ] {
        assert_eq!(run_entry(run, "params", key), value, "{key}");
    }
    #[allow(clippy::cast_precision_loss)]
    let chars = TEXT.chars().count() as f64;
    for (key, value) in [
        ("input_chars", chars),
        ("model_calls", 1.0),
        ("cards_generated", 1.0),
        ("cards_dropped", 0.0),
        ("cards_dropped_ungrounded", 0.0),
        ("cards_dropped_quality", 0.0),
        ("prompt_tokens", 10.0),
        ("completion_tokens", 20.0),
    ] {
        assert_eq!(run_entry(run, "metrics", key), value, "{key}");
    }
    assert!(
        run_entry(run, "metrics", "duration_seconds")
            .as_f64()
            .unwrap()
            > 0.0
    );

    let run = run_tagged(&runs, "outcome", "invalid_request");
    assert_eq!(run["info"]["status"], "FAILED");
    assert_eq!(run_entry(run, "tags", "error_type"), "invalid_request");
    assert_eq!(
        run_entry(run, "tags", "error_detail"),
        "text: must not be empty"
    );

    let run = run_tagged(&runs, "outcome", "upstream");
    assert_eq!(run["info"]["status"], "FAILED");
    assert!(
        run_entry(run, "tags", "error_detail")
            .as_str()
            .unwrap()
            .contains("503"),
        "{run}"
    );
    assert_eq!(run_entry(run, "params", "max_cards"), "10");
}

#[tokio::test]
async fn with_mlflow_down_generations_succeed_and_failures_are_counted() {
    let url = closed_port().await;
    let server = serve(false, &["--mlflow-url", &url]).await;
    for _ in 0..2 {
        assert_eq!(
            generate(&server, json!({"text": TEXT})).await,
            StatusCode::OK
        );
    }
    wait_for(&server, "failure", 2.0).await;
    assert_eq!(logged(&server, "success").await, 0.0);
    assert_eq!(
        server.metric("llm_generation_duration_seconds_count").await,
        2.0
    );
}

#[tokio::test]
async fn a_stalled_mlflow_drops_records_and_slows_no_generation() {
    let url = stalled_server().await;
    let timeout_secs = 120;
    let server = serve(
        false,
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
        assert_eq!(
            generate(&server, json!({"text": TEXT})).await,
            StatusCode::OK
        );
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
    assert_eq!(logged(&server, "dropped").await, 1.0);
    assert_eq!(
        server
            .metric(r#"mlflow_log_queue_depth{service="flashcards-llm"}"#)
            .await,
        1.0
    );
}
