//! The `flashcards-llm` binary as an operator runs it: flags, readiness that follows the upstream,
//! and a clean exit on SIGTERM.

#![allow(clippy::unwrap_used)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const BINARY: &str = env!("CARGO_BIN_EXE_flashcards-llm");

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
        "UPSTREAM_URL",
        "UPSTREAM_MODEL",
        "UPSTREAM_API_KEY",
        "UPSTREAM_TIMEOUT_SECS",
        "UPSTREAM_RETRIES",
        "MAX_CONCURRENT_GENERATIONS",
        "CHUNK_CHARS",
        "MAX_TEXT_CHARS",
    ] {
        assert!(
            help.contains(&format!("[env: {env}")),
            "{env} missing from:\n{help}"
        );
    }
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

fn get(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn not_ready_without_its_upstream_and_stops_cleanly_on_sigterm() {
    let mut child = Command::new(BINARY)
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(["--upstream-url", "http://127.0.0.1:9"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
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
    let ready = get(&address, "/readyz");
    assert!(ready.starts_with("HTTP/1.0 503"), "{ready}");
    assert!(ready.contains("unavailable"), "{ready}");
    let spec = get(&address, "/openapi.json");
    assert!(spec.contains("/v1/generate"), "{spec}");

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
