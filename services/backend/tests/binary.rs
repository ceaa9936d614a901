//! The `flashcards-backend` binary as an operator runs it: flags, start-up on a fresh SQLite file,
//! and a clean exit on SIGTERM.

#![allow(clippy::unwrap_used)]

use std::{
    io::Write,
    process::{Command, Output, Stdio},
};

use flashcards_bootstrap::testing::binary::{MLFLOW_VARIABLES, Service, help_naming};

const BINARY: &str = env!("CARGO_BIN_EXE_flashcards-backend");

#[test]
fn help_documents_every_flag_with_its_env_variable() {
    let help = help_naming(
        BINARY,
        &[
            "DATABASE_URL",
            "DATABASE_MAX_CONNECTIONS",
            "SESSION_TTL_HOURS",
            "PAGE_CACHE_MB",
            "SECURE_COOKIES",
            "OCR_URL",
            "OCR_TIMEOUT_SECS",
            "MAX_UPLOAD_BYTES",
            "ADMIN_EMAILS",
            "REDIS_URL",
            "DOCUMENTS_PER_HOUR",
            "GENERATIONS_PER_HOUR",
        ],
    );
    assert!(help.contains("[default: 0.0.0.0:8002]"), "{help}");
    for variable in MLFLOW_VARIABLES {
        assert!(
            !help.contains(variable),
            "the backend logs nothing to MLflow, so takes no {variable}"
        );
    }
}

#[test]
fn help_never_shows_the_alerts_token_or_the_database_or_redis_url() {
    let output = Command::new(BINARY)
        .arg("--help")
        .env("ALERTS_WEBHOOK_TOKEN", "am-s3cret")
        .env("DATABASE_URL", "postgres://app:db-s3cret@db/cards")
        .env("REDIS_URL", "redis://:redis-s3cret@redis:6379")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("[env: ALERTS_WEBHOOK_TOKEN]"), "{help}");
    assert!(help.contains("[env: DATABASE_URL]"), "{help}");
    assert!(help.contains("[env: REDIS_URL]"), "{help}");
    assert!(!help.contains("s3cret"), "{help}");
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
    openapi_lists_errors_and_sign_in(&spec);
    assert!(database.exists(), "the SQLite file is created");
    assert!(dir.join("cards.db-wal").exists(), "WAL mode");

    let logs = service.stop_with_sigterm();
    assert!(
        logs.iter().any(|line| line.contains("SIGTERM received")),
        "{logs:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `flashcards-backend add-user` with `password` on standard input.
fn add_user(database_url: &str, email: &str, password: &str) -> Output {
    let mut child = Command::new(BINARY)
        .args(["add-user", "--email", email])
        .env("DATABASE_URL", database_url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn add_user_makes_the_administrator_that_registration_refuses() {
    let dir = std::env::temp_dir().join(format!("flashcards-add-user-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let database_url = format!("sqlite://{}", dir.join("cards.db").display());

    let added = add_user(&database_url, "Root@Example.org", "root-password-1");
    let stdout = String::from_utf8_lossy(&added.stdout);
    assert!(added.status.success(), "{added:?}");
    assert!(stdout.contains("added root@example.org"), "{stdout}");
    for (email, password, problem) in [
        ("root@example.org", "root-password-1", "already exists"),
        ("brief@example.org", "tiny1", "password"),
        ("not-an-email", "long-enough-password", "email"),
    ] {
        let refused = add_user(&database_url, email, password);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{email}: {stderr}");
        assert!(stderr.contains(problem), "{email}: {stderr}");
        assert!(
            !stderr.contains(password),
            "the password stays out: {stderr}"
        );
    }

    let mut command = Command::new(BINARY);
    command
        .env("DATABASE_URL", &database_url)
        .env("ADMIN_EMAILS", "root@example.org,ops@example.org");
    let service = Service::start(command);
    let registered = service.post_json(
        "/api/auth/register",
        r#"{"email": "ops@example.org", "password": "ops-password-1"}"#,
    );
    assert!(registered.starts_with("HTTP/1.0 403"), "{registered}");
    let login = service.post_json(
        "/api/auth/login",
        r#"{"email": "root@example.org", "password": "root-password-1"}"#,
    );
    assert!(login.starts_with("HTTP/1.0 200"), "{login}");
    let cookie = login
        .lines()
        .find_map(|line| line.strip_prefix("set-cookie: "))
        .and_then(|value| value.split(';').next())
        .unwrap()
        .to_owned();
    let alerts = service.http("GET", "/api/alerts", &[("Cookie", &cookie)], "");
    assert!(alerts.starts_with("HTTP/1.0 200"), "{alerts}");
    service.stop_with_sigterm();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The document lists what the shared extractors and sign-in answer, not only what each route's
/// annotation says.
fn openapi_lists_errors_and_sign_in(response: &str) {
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    let spec: serde_json::Value = serde_json::from_str(body).unwrap();
    let statuses = |path: &str, method: &str| -> Vec<String> {
        let operation = &spec["paths"][path][method];
        operation["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path}: {operation}"))
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(
        statuses("/api/decks", "post"),
        ["201", "400", "401", "413", "415", "422"]
    );
    assert!(statuses("/api/decks/{id}/cards", "get").contains(&"422".to_owned()));
    assert!(statuses("/api/cards/{id}", "delete").contains(&"404".to_owned()));
    assert_eq!(
        statuses("/alerts", "post"),
        ["204", "400", "401", "413"],
        "the webhook answers every bad body 400"
    );
    assert!(statuses("/api/auth/login", "post").contains(&"429".to_owned()));
    assert!(spec["paths"]["/api/auth/login"]["post"]["security"].is_null());
    assert_eq!(
        spec["paths"]["/api/decks"]["get"]["security"],
        serde_json::json!([{"session": []}, {"token": []}])
    );
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["session"]["in"], "cookie");
    assert_eq!(schemes["token"]["scheme"], "bearer");
    assert!(
        spec["paths"]["/api/drafts/{id}/accept"]["post"]["requestBody"]["required"]
            .as_bool()
            .is_none_or(|required| !required),
        "the edits are optional"
    );
}
