//! The `flashcards-ocr` binary as an operator runs it: flags, start-up with its engines, a clear error
//! without language data, and a clean exit on SIGTERM.

#![allow(clippy::unwrap_used)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const BINARY: &str = env!("CARGO_BIN_EXE_flashcards-ocr");

#[test]
fn help_documents_every_flag_with_its_env_variable() {
    let output = Command::new(BINARY).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for env in [
        "LISTEN",
        "LOG_FORMAT",
        "BODY_LIMIT_BYTES",
        "MLFLOW_URL",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_QUEUE",
        "MLFLOW_TIMEOUT_SECS",
        "TESSDATA_DIR",
        "OCR_DEFAULT_LANGUAGE",
        "OCR_ENGINES",
        "OCR_QUEUE",
        "OCR_DEADLINE_SECS",
        "OCR_MIN_CONFIDENCE",
        "OCR_MAX_UPLOAD_BYTES",
        "OCR_MAX_IMAGE_PIXELS",
        "OCR_MAX_PDF_PAGES",
    ] {
        assert!(
            help.contains(&format!("[env: {env}")),
            "{env} missing from:\n{help}"
        );
    }
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

fn get(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn serves_and_stops_cleanly_on_sigterm() {
    let mut child = Command::new(BINARY)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--engines",
            "1",
        ])
        .env("RUST_LOG", "info")
        .env_remove("OMP_THREAD_LIMIT")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    // The log line announcing the bound address tells where to connect.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            let event: serde_json::Value = serde_json::from_str(&line).ok()?;
            let message = event["message"].as_str()?;
            let url = message.split("http://").nth(1)?;
            Some(url.split_whitespace().next()?.to_owned())
        })
        .unwrap();

    assert!(get(&address, "/healthz").starts_with("HTTP/1.0 200"));
    assert!(get(&address, "/readyz").starts_with("HTTP/1.0 200"));
    assert!(get(&address, "/docs/").starts_with("HTTP/1.0 200"));
    assert!(get(&address, "/v1/languages").contains(r#""languages":["eng"]"#));
    let spec = get(&address, "/openapi.json");
    assert!(spec.contains("/v1/ocr"), "{spec}");

    // It restarted itself with the OpenMP limit, keeping its process id for the signal.
    let environment = std::fs::read(format!("/proc/{}/environ", child.id())).unwrap();
    assert!(
        environment
            .split(|byte| *byte == 0)
            .any(|entry| entry == b"OMP_THREAD_LIMIT=1")
    );

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
}
