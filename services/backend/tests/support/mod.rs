//! Starts the real backend (the same router `main` serves) on a loopback port, over a fresh SQLite file
//! or a fresh database in the PostgreSQL server named by `FLASHCARDS_TEST_POSTGRES_URL` (which
//! `cargo xtask test` starts), with a manual clock the tests move.

#![allow(dead_code, clippy::unwrap_used)]

pub mod services;

use std::path::PathBuf;

use flashcards_backend::{
    AppState, app,
    clock::Clock,
    db,
    documents::DocumentSettings,
    generation::{jobs::Generation, llm_client::LlmClient},
    metrics::BackendMetrics,
    state::SessionSettings,
};
use flashcards_bootstrap::{ServiceBuilder, testing};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::{AnyConnection, Connection, Executor};

pub const T0: i64 = 1_800_000_000_000;
/// Longer than any review interval the tests step through, so only the expiry test outlives it.
pub const SESSION_TTL_MS: i64 = 400 * 86_400_000;
pub const PASSWORD: &str = "correct horse battery";

#[derive(Debug, Clone, Copy)]
pub enum Engine {
    Sqlite,
    Postgres,
}

pub struct TestServer {
    pub base: String,
    pub state: AppState,
    pub database_url: String,
    sqlite_file: Option<PathBuf>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(file) = &self.sqlite_file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
        }
    }
}

/// A new, empty database in the PostgreSQL server the tests are given.
pub async fn fresh_postgres_database() -> String {
    let admin = std::env::var("FLASHCARDS_TEST_POSTGRES_URL").expect(
        "FLASHCARDS_TEST_POSTGRES_URL is not set: run the tests with `cargo xtask test`, \
         which starts a throwaway PostgreSQL server",
    );
    sqlx::any::install_default_drivers();
    let name = format!("t_{}", uuid::Uuid::now_v7().simple());
    let mut conn = AnyConnection::connect(&admin).await.unwrap();
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    conn.close().await.unwrap();
    let (server, _) = admin.rsplit_once('/').unwrap();
    format!("{server}/{name}")
}

/// Where the backend under test sends documents unless a test starts an OCR service: the discard
/// port, where nothing answers.
const NO_OCR_SERVICE: &str = "http://127.0.0.1:9";
/// Where it sends text for cards unless a test starts an LLM service.
const NO_LLM_SERVICE: &str = "http://127.0.0.1:9";
/// Upload limit of the backend under test.
pub const MAX_UPLOAD_BYTES: usize = 2 * 1024 * 1024;

impl TestServer {
    pub async fn start(engine: Engine) -> Self {
        Self::start_with_ocr(engine, NO_OCR_SERVICE).await
    }

    pub async fn start_with_ocr(engine: Engine, ocr_url: &str) -> Self {
        Self::start_with(engine, ocr_url, NO_LLM_SERVICE, None).await
    }

    /// A backend with the given OCR and LLM services, on a fresh database or, with `database_url`,
    /// on an existing one (a restart). Its job sweeper looks for work every 100 ms.
    pub async fn start_with(
        engine: Engine,
        ocr_url: &str,
        llm_url: &str,
        database_url: Option<String>,
    ) -> Self {
        Self::start_configured(engine, ocr_url, llm_url, database_url, |state| state).await
    }

    /// A backend whose state `configure` completes (administrators, the alerts webhook token).
    pub async fn start_with_state(
        engine: Engine,
        configure: impl FnOnce(AppState) -> AppState,
    ) -> Self {
        Self::start_configured(engine, NO_OCR_SERVICE, NO_LLM_SERVICE, None, configure).await
    }

    async fn start_configured(
        engine: Engine,
        ocr_url: &str,
        llm_url: &str,
        database_url: Option<String>,
        configure: impl FnOnce(AppState) -> AppState,
    ) -> Self {
        let (database_url, sqlite_file) = match (engine, database_url) {
            (_, Some(url)) => (url, None),
            (Engine::Sqlite, None) => {
                let file = std::env::temp_dir()
                    .join(format!("flashcards-test-{}.db", uuid::Uuid::now_v7()));
                (format!("sqlite://{}", file.display()), Some(file))
            }
            (Engine::Postgres, None) => (fresh_postgres_database().await, None),
        };
        let database = db::connect(&database_url, 4).await.unwrap();
        let mut service = ServiceBuilder::new("flashcards-backend", "test");
        let metrics = BackendMetrics::register(service.registry());
        let sessions = SessionSettings {
            ttl_ms: SESSION_TTL_MS,
            secure_cookies: false,
        };
        let documents = DocumentSettings::new(
            ocr_url,
            std::time::Duration::from_secs(60),
            MAX_UPLOAD_BYTES,
        );
        let state = AppState::new(
            database,
            Clock::manual(T0),
            metrics,
            sessions,
            64 << 20,
            documents,
            // A short retry budget: the tests with the LLM service down end in seconds.
            Generation::new(
                LlmClient::new(llm_url, std::time::Duration::from_secs(300)),
                std::time::Duration::from_secs(5),
            ),
        )
        .unwrap();
        let state = configure(state);
        flashcards_backend::background::start_sweeper(
            state.clone(),
            std::time::Duration::from_millis(100),
        );
        let router = app(service, state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            base,
            state,
            database_url,
            sqlite_file,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A client without credentials.
    pub fn anonymous(&self) -> Client {
        Client::new()
    }

    pub async fn register(&self, email: &str) -> Response {
        self.post_credentials("/api/auth/register", email, PASSWORD)
            .await
    }

    /// `POST /api/auth/login` with these credentials, from a client without cookies.
    pub async fn attempt_login(&self, email: &str, password: &str) -> Response {
        self.post_credentials("/api/auth/login", email, password)
            .await
    }

    async fn post_credentials(&self, path: &str, email: &str, password: &str) -> Response {
        self.anonymous()
            .post(self.url(path))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// Registers `email` and logs in: the returned client carries the session cookie.
    pub async fn user(&self, email: &str) -> User {
        assert_eq!(self.register(email).await.status(), StatusCode::CREATED);
        self.login(email).await
    }

    pub async fn login(&self, email: &str) -> User {
        let client = Client::builder().cookie_store(true).build().unwrap();
        let response = client
            .post(self.url("/api/auth/login"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        User {
            client,
            base: self.base.clone(),
            id: body["user"]["id"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn metrics(&self) -> String {
        testing::scrape(&self.anonymous(), &self.base).await
    }

    /// The value of one sample line of `/metrics`, e.g. `flashcard_operations_total{operation="create"}`.
    pub async fn metric(&self, series: &str) -> f64 {
        testing::sample(&self.metrics().await, series)
    }

    pub fn advance_days(&self, days: f64) {
        #[allow(clippy::cast_possible_truncation)]
        self.state.clock.advance_ms((days * 86_400_000.0) as i64);
    }

    pub fn now_ms(&self) -> i64 {
        self.state.clock.now_ms()
    }
}

/// How long [`User::events`] waits for a stream to end: a few pages of OCR or SmolLM2 generation on
/// two cores.
pub const EVENTS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// `event:`/`data:` blocks of a server-sent event stream; comments (keep-alives) are skipped.
pub fn parse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = String::from("message");
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event:") {
                    event = name.trim().to_owned();
                } else if let Some(line) = line.strip_prefix("data:") {
                    data.push(line.strip_prefix(' ').unwrap_or(line));
                }
            }
            (!data.is_empty()).then(|| (event, serde_json::from_str(&data.join("\n")).unwrap()))
        })
        .collect()
}

/// A logged-in user: requests go out with the session cookie.
pub struct User {
    pub client: Client,
    pub base: String,
    pub id: String,
}

impl User {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        into_parts(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        into_parts(self.client.delete(self.url(path)).send().await.unwrap()).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        into_parts(
            self.client
                .post(self.url(path))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Uploads a file as the `file` field of a multipart form.
    pub async fn upload(
        &self,
        file_name: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> (StatusCode, Value) {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(file_name.to_owned())
            .mime_str(content_type)
            .unwrap();
        let form = reqwest::multipart::Form::new().part("file", part);
        into_parts(
            self.client
                .post(self.url("/api/documents"))
                .multipart(form)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Uploads a file and waits, following its events, until it has been read: the document with
    /// its pages.
    pub async fn upload_and_read(
        &self,
        file_name: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> (StatusCode, Value) {
        let (status, document) = self.upload(file_name, content_type, bytes).await;
        if !status.is_success() {
            return (status, document);
        }
        let id = document["id"].as_str().unwrap();
        self.events(&format!("/api/documents/{id}/events")).await;
        let (_, detail) = self.get(&format!("/api/documents/{id}")).await;
        (status, detail)
    }

    /// The server-sent events of `path` until the server ends the stream: `(event, data)` pairs.
    /// Panics after [`EVENTS_TIMEOUT`].
    pub async fn events(&self, path: &str) -> Vec<(String, Value)> {
        let mut response = self.get_raw(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut text = String::new();
        let deadline = tokio::time::Instant::now() + EVENTS_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, response.chunk()).await {
                Ok(chunk) => match chunk.unwrap() {
                    Some(bytes) => text.push_str(std::str::from_utf8(&bytes).unwrap()),
                    None => return parse_events(&text),
                },
                Err(_) => panic!("{path} still open after {EVENTS_TIMEOUT:?}: {text}"),
            }
        }
    }

    /// The raw answer to a GET, for non-JSON bodies.
    pub async fn get_raw(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        into_parts(
            self.client
                .patch(self.url(path))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// POST with a raw body and content type, for malformed input.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        into_parts(
            self.client
                .post(self.url(path))
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn deck(&self, name: &str) -> String {
        let (status, body) = self.post("/api/decks", json!({"name": name})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn card(&self, deck: &str, card: Value) -> Value {
        let (status, body) = self.post(&format!("/api/decks/{deck}/cards"), card).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    pub async fn basic(&self, deck: &str, front: &str, back: &str) -> String {
        self.card(deck, json!({"front": front, "back": back})).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// Status and JSON body (`Null` for an empty body). Every non-empty body must be JSON.
pub async fn into_parts(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    if bytes.is_empty() {
        return (status, Value::Null);
    }
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|err| panic!("{status}: body is not JSON ({err}): {bytes:?}"));
    (status, body)
}

/// Runs each scenario against SQLite and PostgreSQL as separate tests.
#[macro_export]
macro_rules! on_both_databases {
    ($($scenario:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario($crate::support::TestServer::start($crate::support::Engine::Sqlite).await).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario($crate::support::TestServer::start($crate::support::Engine::Postgres).await).await;
                }
            )+
        }
    };
}
