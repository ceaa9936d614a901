//! The flashcards LLM service: flashcards from text through a model, each card grounded in a span of
//! the text. `app` builds the HTTP service; `main.rs` only parses flags and serves.

pub mod backend;
pub mod config;
pub mod metrics;
pub mod pipeline;
pub mod routes;
pub mod tracking;

use std::{sync::Arc, time::Duration};

use axum::Router;
use flashcards_bootstrap::{ServiceBuilder, health::Readiness, mlflow::MlflowLogger};
use tokio::sync::Semaphore;
use utoipa_axum::router::OpenApiRouter;

use backend::{
    ModelBackend, OpenAiUpstream, UpstreamSettings,
    local::{LoadError, LocalModel},
    metered::Metered,
};
pub use config::Args;
use metrics::LlmMetrics;

/// The LLM service's port in the design's service table.
pub const DEFAULT_PORT: u16 = flashcards_contracts::ports::LLM;

#[derive(Debug, Clone)]
pub struct Settings {
    pub max_concurrent_generations: usize,
    pub max_text_chars: usize,
}

/// What the handlers share; cheap to clone.
#[derive(Clone)]
pub struct LlmState {
    pub backend: Arc<dyn ModelBackend>,
    pub settings: Arc<Settings>,
    pub slots: Arc<Semaphore>,
    pub metrics: LlmMetrics,
    /// One run per generation, see [`tracking`]; off unless [`LlmState::with_mlflow`].
    pub mlflow: MlflowLogger,
}

impl LlmState {
    /// The state for `backend`, whose every model call `metrics` then counts.
    pub fn new(backend: Arc<dyn ModelBackend>, settings: Settings, metrics: LlmMetrics) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(settings.max_concurrent_generations.max(1))),
            backend: Arc::new(Metered::new(backend, metrics.clone())),
            settings: Arc::new(settings),
            metrics,
            mlflow: MlflowLogger::disabled(),
        }
    }

    /// A generation slot, held until dropped; when every slot is taken, the 503 to answer
    /// (counted as an `overload` error).
    pub fn slot(
        &self,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, flashcards_bootstrap::ApiError> {
        self.slots.clone().try_acquire_owned().map_err(|_| {
            self.metrics.error("overload");
            flashcards_bootstrap::ApiError::Unavailable {
                detail: format!(
                    "{} generations are already running",
                    self.settings.max_concurrent_generations
                ),
                retry_after_secs: Some(1),
            }
        })
    }

    #[must_use]
    pub fn with_mlflow(mut self, mlflow: MlflowLogger) -> Self {
        self.mlflow = mlflow;
        self
    }
}

/// The backend (a local model, loaded here, or an upstream server) and settings from the command
/// line.
pub fn from_args(args: &Args) -> Result<(Arc<dyn ModelBackend>, Settings), LoadError> {
    let backend: Arc<dyn ModelBackend> = match (&args.model, &args.upstream_url) {
        (Some(path), _) => {
            let threads = args.model_threads.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            });
            Arc::new(LocalModel::load(path, threads.max(1))?)
        }
        (None, url) => Arc::new(OpenAiUpstream::new(UpstreamSettings {
            url: url.clone().unwrap_or_default(),
            model: args.upstream_model.clone(),
            api_key: args.upstream_api_key.clone(),
            timeout: Duration::from_secs(args.upstream_timeout_secs.max(1)),
            retries: args.upstream_retries,
        })),
    };
    let settings = Settings {
        max_concurrent_generations: args.max_concurrent_generations.max(1),
        max_text_chars: args.max_text_chars,
    };
    Ok((backend, settings))
}

/// Everything the LLM service serves, with the shared bootstrap around it; ready when the model
/// answers. The caller registers the metrics into `service`'s registry first.
pub fn app(service: ServiceBuilder, state: LlmState) -> Router {
    let backend = state.backend.clone();
    let readiness = Readiness::new(move || {
        let backend = backend.clone();
        async move {
            backend
                .model()
                .await
                .map(drop)
                .map_err(|err| err.to_string())
        }
    });
    let api = OpenApiRouter::new()
        .merge(routes::router())
        .with_state(state);
    service.readiness(readiness).build(api)
}
