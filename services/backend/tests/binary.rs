//! The `flashcards-backend` binary as an operator runs it: flags, start-up on a fresh SQLite file,
//! and a clean exit on SIGTERM.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use flashcards_bootstrap::testing::binary::{Service, help_naming};

const BINARY: &str = env!("CARGO_BIN_EXE_flashcards-backend");

#[test]
fn help_documents_every_flag_with_its_env_variable() {
    let help = help_naming(
        BINARY,
        &[
            "DATABASE_URL",
            "DATABASE_MAX_CONNECTIONS",
            "SESSION_TTL_HOURS",
            "PAGE_CACHE_PAGES",
            "SECURE_COOKIES",
            "OCR_URL",
            "OCR_TIMEOUT_SECS",
            "MAX_UPLOAD_BYTES",
            "ADMIN_EMAILS",
        ],
    );
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

#[test]
fn serves_on_sqlite_and_stops_cleanly_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("flashcards-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let database = dir.join("cards.db");
    let mut command = Command::new(BINARY);
    command
        .arg("--database-url")
        .arg(format!("sqlite://{}", database.display()));
    let service = Service::start(command);

    assert!(service.get("/healthz").starts_with("HTTP/1.0 200"));
    assert!(service.get("/readyz").starts_with("HTTP/1.0 200"));
    assert!(service.get("/docs/").starts_with("HTTP/1.0 200"));
    let spec = service.get("/openapi.json");
    assert!(spec.contains("/api/cards/{id}/review"), "{spec}");
    assert!(database.exists(), "the SQLite file is created");
    assert!(dir.join("cards.db-wal").exists(), "WAL mode");

    let logs = service.stop_with_sigterm();
    assert!(
        logs.iter().any(|line| line.contains("SIGTERM received")),
        "{logs:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
