//! `/healthz` (the process is alive) and `/readyz` (its dependencies answer).

use std::{future::Future, pin::Pin, sync::Arc};

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde_json::json;

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A readiness probe: `Ok` when every dependency is reachable, `Err(what is not)` otherwise.
#[derive(Clone)]
pub struct Readiness(Arc<dyn Fn() -> CheckFuture + Send + Sync>);

impl Readiness {
    pub fn new<F, Fut>(check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self(Arc::new(move || Box::pin(check())))
    }

    /// For services without dependencies.
    pub fn always() -> Self {
        Self::new(|| async { Ok(()) })
    }

    pub async fn check(&self) -> Result<(), String> {
        (self.0)().await
    }
}

pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(State(readiness): State<Readiness>) -> impl IntoResponse {
    match readiness.check().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(detail) => {
            tracing::warn!(%detail, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "not_ready", "detail": detail})),
            )
        }
    }
}
