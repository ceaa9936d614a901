//! The LLM service as `main` assembles it, served on a loopback port, and what its tests ask it.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::{
    Json, Router,
    http::StatusCode as Status,
    routing::{get, post},
};
use flashcards_bootstrap::{
    ServiceBuilder, config,
    mlflow::{MlflowConfig, MlflowLogger},
    testing::{sample, scrape},
};
use flashcards_llm::{Args, LlmState, app, from_args, metrics::LlmMetrics};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub struct LlmServer {
    pub base: String,
    client: Client,
}

/// The service in front of `upstream`, configured by `extra` flags; MLflow logging is on when they
/// name a tracking server, as in `main`.
pub async fn start(upstream: &str, extra: &[&str]) -> LlmServer {
    let mut argv = vec!["--upstream-url", upstream];
    argv.extend_from_slice(extra);
    start_with(&argv).await
}

/// The service with the model file at `path` run in process.
pub async fn start_local(path: &str) -> LlmServer {
    start_with(&["--model", path]).await
}

async fn start_with(flags: &[&str]) -> LlmServer {
    let mut argv = vec!["flashcards-llm"];
    argv.extend_from_slice(flags);
    let args: Args = config::parse_from(argv, 8001).unwrap();
    let mut service = ServiceBuilder::new("flashcards-llm", "test");
    let metrics = LlmMetrics::register(service.registry());
    let mlflow = MlflowLogger::start(
        MlflowConfig::from_args(&args.mlflow, "flashcards-llm"),
        service.registry(),
    )
    .unwrap();
    let (backend, settings) = from_args(&args).expect("the model backend");
    let router = app(
        service,
        LlmState::new(backend, settings, metrics).with_mlflow(mlflow),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    LlmServer {
        base,
        client: Client::new(),
    }
}

impl LlmServer {
    /// `POST /v1/generate`: the status and the JSON answer (`Null` when the body is not JSON).
    pub async fn generate(&self, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}/v1/generate", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// One sample of `/metrics`, 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        sample(&scrape(&self.client, &self.base).await, series)
    }
}

/// A stand-in OpenAI-compatible upstream serving the model `model`, for what llama.cpp cannot be
/// made to do on demand. Chat request number `n` (from 0) is answered by `reply(n)`: `Some` as a
/// completion whose message is that JSON (10 prompt and 20 completion tokens), `None` as 503 with
/// `Retry-After: 0`. Returns its URL and the count of chat requests.
pub async fn stand_in_upstream(
    model: &'static str,
    reply: impl Fn(usize) -> Option<Value> + Clone + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let router = Router::new()
        .route(
            "/v1/models",
            get(move || async move { Json(json!({"data": [{"id": model}]})) }),
        )
        .route(
            "/v1/chat/completions",
            post(move || async move {
                let Some(reply) = reply(counter.fetch_add(1, Ordering::SeqCst)) else {
                    return Err((Status::SERVICE_UNAVAILABLE, [("retry-after", "0")], "busy"));
                };
                let content = reply.to_string();
                Ok(Json(json!({
                    "choices": [{"message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 20}
                })))
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, calls)
}
