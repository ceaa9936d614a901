//! Two `flashcards-backend` processes on one PostgreSQL database, as two replicas run, sharing
//! their login throttle and rate limits through a real Redis (Debian's `redis-server`, started
//! here); and what each does alone while that Redis is down.

#![allow(clippy::unwrap_used)]

mod support;

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use flashcards_bootstrap::testing::binary::Service;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use support::{PASSWORD, fresh_postgres_database};

const BINARY: &str = env!("CARGO_BIN_EXE_flashcards-backend");
/// What the log says once when Redis goes away.
const REDIS_GONE: &str = "Redis cannot be reached";

/// A throwaway `redis-server` on a free loopback port, nothing kept on disk.
struct Redis {
    child: Child,
    url: String,
}

impl Redis {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect(
                "starting redis-server (Debian's redis-server, which `cargo xtask test` installs)",
            );
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A backend replica on `database_url`, counting through `redis_url`, allowing two documents an
/// hour per account. OCR goes to the discard port: uploads are stored and wait for it.
fn replica(database_url: &str, redis_url: &str) -> Service {
    let mut command = Command::new(BINARY);
    command
        .args(["--database-url", database_url])
        .args(["--redis-url", redis_url])
        .args(["--documents-per-hour", "2"])
        .args(["--ocr-url", "http://127.0.0.1:9"]);
    Service::start(command)
}

async fn login(replica: &Service, email: &str, password: &str) -> reqwest::Response {
    Client::new()
        .post(format!("{}/api/auth/login", replica.url()))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn register(replica: &Service, email: &str) {
    let response = Client::new()
        .post(format!("{}/api/auth/register", replica.url()))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

/// Logged in on `replica`: the client's session cookie works on every replica (the session is in
/// the shared database, and cookies do not tell loopback ports apart).
async fn signed_in(replica: &Service, email: &str) -> Client {
    let client = Client::builder().cookie_store(true).build().unwrap();
    let response = client
        .post(format!("{}/api/auth/login", replica.url()))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    client
}

/// Uploads a distinct (unreadable, which OCR would find out later) PNG; the status and body.
async fn upload(client: &Client, replica: &Service, n: u8) -> (StatusCode, Value) {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend([n; 64]);
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name(format!("page-{n}.png"))
        .mime_str("image/png")
        .unwrap();
    let response = client
        .post(format!("{}/api/documents", replica.url()))
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_add_up_wrong_passwords_and_uploads_through_redis() {
    let redis = Redis::start();
    let database_url = fresh_postgres_database().await;
    let a = replica(&database_url, &redis.url);
    let b = replica(&database_url, &redis.url);
    register(&a, "ada@example.org").await;

    for n in 0..10 {
        let replica = if n % 2 == 0 { &a } else { &b };
        let response = login(replica, "ada@example.org", "wrong password").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {n}");
    }
    for replica in [&a, &b] {
        let response = login(replica, "ada@example.org", PASSWORD).await;
        assert_eq!(
            response.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "five wrong passwords on each replica lock the account on both"
        );
        let wait: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((890..=900).contains(&wait), "{wait}");
    }
    register(&b, "bob@example.org").await;
    assert_eq!(
        login(&a, "bob@example.org", PASSWORD).await.status(),
        StatusCode::OK,
        "other accounts log in"
    );

    let bob = signed_in(&a, "bob@example.org").await;
    assert_eq!(upload(&bob, &a, 1).await.0, StatusCode::CREATED);
    assert_eq!(upload(&bob, &b, 2).await.0, StatusCode::CREATED);
    for replica in [&a, &b] {
        let (status, body) = upload(&bob, replica, 3).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("at most 2 documents to read an hour"),
            "{body}"
        );
    }

    let keys = Command::new("redis-cli")
        .args(["-u", &redis.url, "--scan"])
        .output()
        .unwrap();
    let keys = String::from_utf8(keys.stdout).unwrap();
    assert!(keys.contains("flashcards:login-failures:"), "{keys}");
    assert!(
        !keys.contains("example.org"),
        "accounts are hashed in key names: {keys}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_redis_down_each_replica_counts_alone_and_nothing_fails() {
    let mut redis = Redis::start();
    let database_url = fresh_postgres_database().await;
    let a = replica(&database_url, &redis.url);
    register(&a, "ada@example.org").await;
    redis.stop();
    // B starts while Redis is down.
    let b = replica(&database_url, &redis.url);

    register(&b, "bob@example.org").await;
    assert_eq!(
        login(&b, "ada@example.org", PASSWORD).await.status(),
        StatusCode::OK
    );
    let ada = signed_in(&a, "ada@example.org").await;
    assert_eq!(upload(&ada, &a, 1).await.0, StatusCode::CREATED);
    let (status, deck) = {
        let response = ada
            .post(format!("{}/api/decks", b.url()))
            .json(&json!({"name": "Biology"}))
            .send()
            .await
            .unwrap();
        (response.status(), response.json::<Value>().await.unwrap())
    };
    assert_eq!(status, StatusCode::CREATED, "{deck}");

    for n in 0..10 {
        let response = login(&a, "bob@example.org", "wrong password").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {n}");
    }
    assert_eq!(
        login(&a, "bob@example.org", PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "A still throttles on its own counts"
    );
    assert_eq!(
        login(&b, "bob@example.org", PASSWORD).await.status(),
        StatusCode::OK,
        "B saw none of A's failures"
    );

    let logs = a.stop_with_sigterm();
    let gone = logs.iter().filter(|line| line.contains(REDIS_GONE)).count();
    assert_eq!(gone, 1, "logged once, not per request: {logs:#?}");
    assert!(
        !logs
            .iter()
            .any(|line| line.contains("127.0.0.1:") && line.contains("redis://")),
        "{logs:#?}"
    );
}
