//! The `flashcards-ocr` binary as an operator runs it: flags, start-up with its engines, a clear error
//! without language data, and a clean exit on SIGTERM.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use flashcards_bootstrap::testing::binary::{MLFLOW_VARIABLES, Service, help_naming};

const BINARY: &str = env!("CARGO_BIN_EXE_flashcards-ocr");

#[test]
fn help_documents_every_flag_with_its_env_variable() {
    let help = help_naming(
        BINARY,
        &[
            MLFLOW_VARIABLES[0],
            MLFLOW_VARIABLES[1],
            MLFLOW_VARIABLES[2],
            MLFLOW_VARIABLES[3],
            "TESSDATA_DIR",
            "OCR_DEFAULT_LANGUAGE",
            "OCR_ENGINES",
            "OCR_QUEUE",
            "OCR_DEADLINE_SECS",
            "OCR_MIN_CONFIDENCE",
            "OCR_MAX_UPLOAD_BYTES",
            "OCR_MAX_IMAGE_PIXELS",
            "OCR_MAX_PDF_PAGES",
        ],
    );
    assert!(help.contains("[default: 0.0.0.0:8000]"), "{help}");
}

#[test]
fn missing_language_data_is_a_clear_start_up_error() {
    let output = Command::new(BINARY)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--tessdata-dir",
            "/nonexistent/tessdata",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("loading language eng from /nonexistent/tessdata"),
        "{stderr}"
    );
}

#[test]
fn serves_and_stops_cleanly_on_sigterm() {
    let mut command = Command::new(BINARY);
    command
        .args(["--engines", "1"])
        .env_remove("OMP_THREAD_LIMIT");
    let service = Service::start(command);

    assert!(service.get("/healthz").starts_with("HTTP/1.0 200"));
    assert!(service.get("/readyz").starts_with("HTTP/1.0 200"));
    assert!(service.get("/docs/").starts_with("HTTP/1.0 200"));
    assert!(
        service
            .get("/v1/languages")
            .contains(r#""languages":["eng"]"#)
    );
    let spec = service.get("/openapi.json");
    assert!(spec.contains("/v1/ocr"), "{spec}");

    // It restarted itself with the OpenMP limit, keeping its process id for the signal.
    let environment = std::fs::read(format!("/proc/{}/environ", service.pid())).unwrap();
    assert!(
        environment
            .split(|byte| *byte == 0)
            .any(|entry| entry == b"OMP_THREAD_LIMIT=1")
    );

    service.stop_with_sigterm();
}
