//! MLflow logging through the real service: each recognition is a run in the OCR experiment of a
//! real tracking server (`cargo xtask test` starts one and names it in FLASHCARDS_TEST_MLFLOW_URL);
//! an MLflow that is down or stalls fails no request and slows none.

#![allow(clippy::unwrap_used)]

mod support;

use std::{
    process,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use flashcards_bootstrap::{
    config,
    mlflow::search_runs,
    testing::{closed_port, mlflow_url, run_entry, sample, stalled_server},
};
use flashcards_ocr::{Args, Settings};
use flashcards_ocr_corpus as corpus;
use serde_json::Value;
use support::{OcrServer, start};

/// The flags' defaults plus `mlflow_flags`, with two engines.
fn settings(mlflow_flags: &[&str]) -> Settings {
    let mut argv = vec!["flashcards-ocr"];
    argv.extend_from_slice(mlflow_flags);
    let args: Args = config::parse_from(argv, 8000).unwrap();
    let mut settings = Settings::from_args(&args);
    settings.engines = 2;
    settings.queue = 4;
    settings
}

fn outcome(metrics: &str, outcome: &str) -> f64 {
    sample(
        metrics,
        &format!(r#"mlflow_log_requests_total{{service="flashcards-ocr",outcome="{outcome}"}}"#),
    )
}

/// Waits until the service has counted `count` records with `outcome_name`.
async fn wait_for(server: &OcrServer, outcome_name: &str, count: f64) {
    let started = Instant::now();
    loop {
        let metrics = server.metrics().await;
        if outcome(&metrics, outcome_name) >= count {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{outcome_name} stayed under {count}:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn recognitions_and_refusals_are_runs_with_confidence_analysis_and_error_patterns() {
    let url = mlflow_url();
    assert_eq!(
        settings(&["--mlflow-url", &url]).mlflow.unwrap().experiment,
        "flashcards-ocr",
        "the service's experiment unless told otherwise"
    );
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let experiment = format!("test-ocr-{}-{}", process::id(), nanos.as_nanos());
    let server = start(settings(&[
        "--mlflow-url",
        &url,
        "--mlflow-experiment",
        &experiment,
    ]))
    .await;
    let image = corpus::clean_png().unwrap();
    let response = server
        .ocr(
            "?psm=6&min_confidence=70",
            image.content_type,
            image.bytes.clone(),
        )
        .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let refused = server
        .ocr("?lang=xyz", image.content_type, image.bytes.clone())
        .await;
    assert_eq!(refused.status(), 422);
    wait_for(&server, "success", 2.0).await;

    let runs = search_runs(&url, &experiment).await.unwrap();
    assert_eq!(runs.len(), 2, "{runs:#?}");
    let (recognised, refused): (Vec<&Value>, Vec<&Value>) = runs
        .iter()
        .partition(|run| run_entry(run, "tags", "outcome") == "success");
    let run = recognised[0];
    assert_eq!(run["info"]["status"], "FINISHED");
    assert_eq!(
        run_entry(run, "tags", "mlflow.source.name"),
        "flashcards-ocr"
    );
    for (key, value) in [
        ("file_type", "png"),
        ("language", "eng"),
        ("psm", "6"),
        ("min_confidence", "70"),
        ("filter", "true"),
        ("binarize", "false"),
    ] {
        assert_eq!(run_entry(run, "params", key), value, "{key}");
    }
    let page = &answer["pages"][0];
    let kept = page["words"].as_array().unwrap();
    let filtered = page["filtered_words"].as_array().unwrap();
    #[allow(clippy::cast_precision_loss)]
    let (kept_count, filtered_count) = (kept.len() as f64, filtered.len() as f64);
    assert!(kept_count > 10.0, "{answer}");
    assert_eq!(run_entry(run, "metrics", "pages"), 1.0);
    assert_eq!(run_entry(run, "metrics", "words_kept"), kept_count);
    assert_eq!(run_entry(run, "metrics", "words_filtered"), filtered_count);
    assert_eq!(
        run_entry(run, "metrics", "words_total"),
        kept_count + filtered_count
    );
    let mean = run_entry(run, "metrics", "word_confidence_mean")
        .as_f64()
        .unwrap();
    let page_mean = page["mean_confidence"].as_f64().unwrap();
    assert!((mean - page_mean).abs() < 0.01, "{mean} vs {page_mean}");
    let median = run_entry(run, "metrics", "word_confidence_median")
        .as_f64()
        .unwrap();
    assert!((70.0..=100.0).contains(&median), "{median}");
    assert!(
        run_entry(run, "metrics", "processing_seconds")
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(
        run_entry(run, "tags", "preprocessing")
            .as_str()
            .unwrap()
            .contains("grayscale")
    );

    let run = refused[0];
    assert_eq!(run["info"]["status"], "FAILED");
    assert_eq!(run_entry(run, "tags", "outcome"), "invalid");
    assert_eq!(run_entry(run, "tags", "error_code"), "validation_failed");
    assert!(
        run_entry(run, "tags", "error_detail")
            .as_str()
            .unwrap()
            .contains("xyz")
    );
    assert_eq!(run_entry(run, "params", "language"), "xyz");
}

#[tokio::test]
async fn with_mlflow_down_requests_succeed_and_failures_are_counted() {
    let url = closed_port().await;
    let server = start(settings(&["--mlflow-url", &url])).await;
    let image = corpus::clean_png().unwrap();
    for _ in 0..2 {
        let response = server
            .ocr("", image.content_type, image.bytes.clone())
            .await;
        assert_eq!(response.status(), 200);
    }
    wait_for(&server, "failure", 2.0).await;
    let metrics = server.metrics().await;
    assert_eq!(outcome(&metrics, "success"), 0.0);
    assert_eq!(
        sample(
            &metrics,
            r#"ocr_operations_total{status="success",file_type="png"}"#
        ),
        2.0
    );
}

#[tokio::test]
async fn a_stalled_mlflow_drops_records_and_slows_no_request() {
    let url = stalled_server().await;
    let timeout_secs = 120;
    let server = start(settings(&[
        "--mlflow-url",
        &url,
        "--mlflow-queue",
        "1",
        "--mlflow-timeout-secs",
        &timeout_secs.to_string(),
    ]))
    .await;
    let image = corpus::clean_png().unwrap();
    for _ in 0..3 {
        let started = Instant::now();
        let response = server
            .ocr("", image.content_type, image.bytes.clone())
            .await;
        assert_eq!(response.status(), 200);
        // Waiting on MLflow would take the whole timeout.
        assert!(
            started.elapsed() < Duration::from_secs(timeout_secs / 4),
            "{:?}",
            started.elapsed()
        );
    }
    // The first record waits on the server, the second in the queue; the third has no room.
    let metrics = server.metrics().await;
    assert_eq!(outcome(&metrics, "dropped"), 1.0, "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            r#"mlflow_log_queue_depth{service="flashcards-ocr"}"#
        ),
        1.0
    );
    assert_eq!(
        outcome(&metrics, "success") + outcome(&metrics, "failure"),
        0.0
    );
}
