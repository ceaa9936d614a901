//! What every flashcards service shares, written once: configuration, logging, the Prometheus registry
//! with the HTTP metrics middleware, `/metrics`, `/healthz`, `/readyz`, the JSON error type and the
//! extractors that produce it, OpenAPI with Swagger UI at `/docs`, body limits and graceful shutdown,
//! and the MLflow run logging of the services that log experiment data.

pub mod config;
pub mod error;
pub mod extract;
pub mod health;
pub mod http_client;
pub mod http_metrics;
pub mod logging;
pub mod mlflow;
pub mod openapi;
pub mod server;
#[cfg(feature = "test-support")]
pub mod testing;

pub use config::CommonArgs;
pub use error::ApiError;
pub use server::ServiceBuilder;
