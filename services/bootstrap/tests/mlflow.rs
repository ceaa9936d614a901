//! MLflow run logging against a real tracking server, which `cargo xtask test` starts and names in
//! FLASHCARDS_TEST_MLFLOW_URL, and against servers that are down or never answer.

#![allow(clippy::unwrap_used)]

use std::{
    process,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use flashcards_bootstrap::{
    mlflow::{MlflowConfig, MlflowLogger, RunRecord, log_now, search_runs},
    testing::{closed_port, mlflow_url, run_entry, sample, stalled_server},
};
use prometheus_client::{encoding::text::encode, registry::Registry};

/// An experiment name no other test (or earlier run against the same server) uses.
fn unique(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("test-{name}-{}-{nanos}", process::id())
}

fn config(url: &str, experiment: &str, queue_capacity: usize, timeout: Duration) -> MlflowConfig {
    MlflowConfig {
        url: url.to_owned(),
        experiment: experiment.to_owned(),
        service: "demo",
        queue_capacity,
        timeout,
    }
}

fn exposition(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

fn outcome(registry: &Registry, outcome: &str) -> f64 {
    sample(
        &exposition(registry),
        &format!(r#"mlflow_log_requests_total{{service="demo",outcome="{outcome}"}}"#),
    )
}

/// Waits until `outcome` has counted `count` records.
async fn wait_for(registry: &Registry, outcome_name: &str, count: f64) {
    let started = Instant::now();
    while outcome(registry, outcome_name) < count {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{outcome_name} stayed at {} of {count}",
            outcome(registry, outcome_name)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn demo_record(outcome: &str) -> RunRecord {
    let record = RunRecord::finished("demo", Duration::from_millis(1200))
        .param("language", "eng")
        .param("psm", 6)
        .metric("words_total", 42.0)
        .metric("not_a_number", f64::NAN)
        .metric_at("page_confidence_mean", 88.5, 2)
        .tag("outcome", outcome);
    if outcome == "success" {
        record
    } else {
        record.tag("error_code", "internal").failed()
    }
}

#[tokio::test]
async fn runs_land_in_the_experiment_with_params_metrics_tags_and_status() {
    let url = mlflow_url();
    let experiment = unique("content");
    let mut registry = Registry::default();
    let logger = MlflowLogger::start(
        Some(config(&url, &experiment, 16, Duration::from_secs(10))),
        &mut registry,
    )
    .unwrap();
    logger.log(|| demo_record("success"));
    logger.log(|| demo_record("error"));
    wait_for(&registry, "success", 2.0).await;
    assert_eq!(outcome(&registry, "failure"), 0.0);
    assert_eq!(
        sample(
            &exposition(&registry),
            r#"mlflow_log_queue_depth{service="demo"}"#
        ),
        0.0
    );

    let runs = search_runs(&url, &experiment).await.unwrap();
    assert_eq!(runs.len(), 2, "{runs:#?}");
    for run in &runs {
        assert_eq!(run["info"]["run_name"], "demo");
        assert_eq!(run_entry(run, "params", "language"), "eng");
        assert_eq!(run_entry(run, "params", "psm"), "6");
        assert_eq!(run_entry(run, "metrics", "words_total"), 42.0);
        assert_eq!(run_entry(run, "metrics", "page_confidence_mean"), 88.5);
        assert!(run_entry(run, "metrics", "not_a_number").is_null());
        assert_eq!(run_entry(run, "tags", "mlflow.source.name"), "demo");
        let (start, end) = (
            run["info"]["start_time"].as_i64().unwrap(),
            run["info"]["end_time"].as_i64().unwrap(),
        );
        assert!((1150..=1250).contains(&(end - start)), "{start}..{end}");
        let expected = match run_entry(run, "tags", "outcome").as_str().unwrap() {
            "success" => "FINISHED",
            _ => {
                assert_eq!(run_entry(run, "tags", "error_code"), "internal");
                "FAILED"
            }
        };
        assert_eq!(run["info"]["status"], expected);
    }
}

#[tokio::test]
async fn a_one_off_run_is_logged_at_once_with_metric_names_made_at_run_time() {
    let url = mlflow_url();
    let experiment = unique("report");
    let subject = "computer_science";
    let record = RunRecord::finished("report", Duration::from_secs(3))
        .param("model", "demo-model")
        .metric(format!("pipeline.key_fact_coverage.{subject}"), 0.75);
    let run_id = log_now(&url, &experiment, "demo-report", &record)
        .await
        .unwrap();
    let runs = search_runs(&url, &experiment).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["info"]["run_id"], run_id.as_str());
    assert_eq!(runs[0]["info"]["status"], "FINISHED");
    assert_eq!(run_entry(&runs[0], "params", "model"), "demo-model");
    assert_eq!(
        run_entry(
            &runs[0],
            "metrics",
            "pipeline.key_fact_coverage.computer_science"
        ),
        0.75
    );
    assert_eq!(
        run_entry(&runs[0], "tags", "mlflow.source.name"),
        "demo-report"
    );
    assert!(
        log_now(&closed_port().await, &experiment, "demo-report", &record)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn replicas_racing_to_create_the_experiment_share_it() {
    let url = mlflow_url();
    let experiment = unique("race");
    // Separate loggers, as separate replicas would be: each looks the experiment up, finds
    // nothing and creates it; all but one are told it exists already.
    let loggers: Vec<MlflowLogger> = (0..4)
        .map(|_| {
            MlflowLogger::start(
                Some(config(&url, &experiment, 4, Duration::from_secs(10))),
                &mut Registry::default(),
            )
            .unwrap()
        })
        .collect();
    for logger in &loggers {
        logger.log(|| demo_record("success"));
    }
    for logger in &loggers {
        logger.shutdown(Duration::from_secs(30)).await;
    }
    assert_eq!(search_runs(&url, &experiment).await.unwrap().len(), 4);
}

#[tokio::test]
async fn shutdown_sends_what_is_queued() {
    let url = mlflow_url();
    let experiment = unique("drain");
    let mut registry = Registry::default();
    let logger = MlflowLogger::start(
        Some(config(&url, &experiment, 16, Duration::from_secs(10))),
        &mut registry,
    )
    .unwrap();
    for _ in 0..5 {
        logger.log(|| demo_record("success"));
    }
    logger.shutdown(Duration::from_secs(60)).await;
    assert_eq!(outcome(&registry, "success"), 5.0);
    // After shutdown records are refused, and counted as dropped.
    logger.log(|| demo_record("success"));
    assert_eq!(outcome(&registry, "dropped"), 1.0);
    assert_eq!(search_runs(&url, &experiment).await.unwrap().len(), 5);
}

#[tokio::test]
async fn an_unreachable_server_counts_failures_and_never_blocks() {
    let url = closed_port().await;
    let mut registry = Registry::default();
    let logger = MlflowLogger::start(
        Some(config(&url, "flashcards-demo", 16, Duration::from_secs(5))),
        &mut registry,
    )
    .unwrap();
    let started = Instant::now();
    for _ in 0..3 {
        logger.log(|| demo_record("success"));
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
    wait_for(&registry, "failure", 3.0).await;
    assert_eq!(outcome(&registry, "success"), 0.0);
    assert_eq!(outcome(&registry, "dropped"), 0.0);
}

#[tokio::test]
async fn a_stalled_server_fills_the_queue_and_further_records_are_dropped() {
    let url = stalled_server().await;
    let mut registry = Registry::default();
    let logger = MlflowLogger::start(
        Some(config(&url, "flashcards-demo", 2, Duration::from_secs(60))),
        &mut registry,
    )
    .unwrap();
    logger.log(|| demo_record("success"));
    // The worker takes the first record and waits on the server with it.
    let started = Instant::now();
    while sample(
        &exposition(&registry),
        r#"mlflow_log_queue_depth{service="demo"}"#,
    ) > 0.0
    {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    for _ in 0..10 {
        logger.log(|| demo_record("success"));
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        sample(
            &exposition(&registry),
            r#"mlflow_log_queue_depth{service="demo"}"#
        ),
        2.0
    );
    assert_eq!(outcome(&registry, "dropped"), 8.0);
    assert_eq!(
        outcome(&registry, "success") + outcome(&registry, "failure"),
        0.0
    );
    // Shutdown gives up on the stalled server in the time it is given.
    let started = Instant::now();
    logger.shutdown(Duration::from_millis(200)).await;
    assert!(started.elapsed() < Duration::from_secs(2));
}
