//! The `flashcards-backend` binary as an operator runs it: flags, start-up on a fresh SQLite file,
//! and a clean exit on SIGTERM.

#![allow(clippy::unwrap_used)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const BINARY: &str = env!("CARGO_BIN_EXE_flashcards-backend");

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
        "DATABASE_URL",
        "DATABASE_MAX_CONNECTIONS",
        "SESSION_TTL_HOURS",
        "PAGE_CACHE_PAGES",
        "SECURE_COOKIES",
        "OCR_URL",
        "OCR_TIMEOUT_SECS",
        "MAX_UPLOAD_BYTES",
        "ADMIN_EMAILS",
    ] {
        assert!(
            help.contains(&format!("[env: {env}")),
            "{env} missing from:\n{help}"
        );
    }
    assert!(help.contains("[default: 0.0.0.0:8002]"), "{help}");
}

#[test]
fn help_never_shows_the_alerts_token() {
    let output = Command::new(BINARY)
        .arg("--help")
        .env("ALERTS_WEBHOOK_TOKEN", "am-s3cret")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("[env: ALERTS_WEBHOOK_TOKEN]"), "{help}");
    assert!(!help.contains("am-s3cret"), "{help}");
}

#[test]
fn an_unusable_database_is_a_clear_start_up_error() {
    let output = Command::new(BINARY)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "mysql://u:topsecret@h/db",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unsupported database URL"), "{stderr}");
    assert!(
        !stderr.contains("topsecret"),
        "passwords stay out of errors: {stderr}"
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
fn serves_on_sqlite_and_stops_cleanly_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("flashcards-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let database = dir.join("cards.db");
    let mut child = Command::new(BINARY)
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--database-url")
        .arg(format!("sqlite://{}", database.display()))
        .env("RUST_LOG", "info")
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
    let spec = get(&address, "/openapi.json");
    assert!(spec.contains("/api/cards/{id}/review"), "{spec}");
    assert!(database.exists(), "the SQLite file is created");
    assert!(dir.join("cards.db-wal").exists(), "WAL mode");

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
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|line| line.contains("SIGTERM received")),
        "{rest:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
