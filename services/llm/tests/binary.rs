//! The `flashcards-llm` binary as an operator runs it: flags, readiness that follows the upstream,
//! and a clean exit on SIGTERM.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use flashcards_bootstrap::testing::binary::{MLFLOW_VARIABLES, Service, help_naming};

const BINARY: &str = env!("CARGO_BIN_EXE_flashcards-llm");

#[test]
fn help_documents_every_flag_with_its_env_variable() {
    let help = help_naming(
        BINARY,
        &[
            MLFLOW_VARIABLES[0],
            MLFLOW_VARIABLES[1],
            MLFLOW_VARIABLES[2],
            MLFLOW_VARIABLES[3],
            "UPSTREAM_URL",
            "UPSTREAM_MODEL",
            "UPSTREAM_API_KEY",
            "UPSTREAM_TIMEOUT_SECS",
            "UPSTREAM_RETRIES",
            "MAX_CONCURRENT_GENERATIONS",
            "MAX_TEXT_CHARS",
        ],
    );
    assert!(help.contains("[default: 0.0.0.0:8001]"), "{help}");
}

#[test]
fn an_upstream_is_required_and_its_key_never_printed() {
    let output = Command::new(BINARY)
        .env_remove("UPSTREAM_URL")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--upstream-url"));
    let help = Command::new(BINARY)
        .arg("--help")
        .env("UPSTREAM_API_KEY", "sk-very-secret")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("sk-very-secret"));
}

#[test]
fn an_upstream_that_is_not_an_http_url_is_refused_at_start() {
    for (upstream, problem) in [
        ("", "not an absolute URL"),
        ("localhost:8080", "localhost:// is not http"),
        ("ftp://models", "ftp:// is not http"),
    ] {
        let output = Command::new(BINARY)
            .args(["--upstream-url", upstream])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{upstream:?} was taken");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("--upstream-url") && stderr.contains(problem),
            "{upstream:?}: {stderr}"
        );
    }
}

#[test]
fn not_ready_without_its_upstream_and_stops_cleanly_on_sigterm() {
    let mut command = Command::new(BINARY);
    command.args(["--upstream-url", "http://127.0.0.1:9"]);
    let service = Service::start(command);

    assert!(service.get("/healthz").starts_with("HTTP/1.0 200"));
    let ready = service.get("/readyz");
    assert!(ready.starts_with("HTTP/1.0 503"), "{ready}");
    assert!(ready.contains("unavailable"), "{ready}");
    let spec = service.get("/openapi.json");
    assert!(spec.contains("/v1/generate"), "{spec}");

    service.stop_with_sigterm();
}
