//! The flashcards OCR service: images and PDFs to text with per-word confidence and boxes, on a pool of
//! libtesseract engines behind a bounded queue. `app` builds the HTTP service; `main.rs` parses flags,
//! starts the engines and serves.

pub mod config;
pub mod engine;
pub mod file_type;
pub mod metrics;
pub mod pdf;
pub mod pool;
pub mod preprocess;
pub mod recognition;
pub mod routes;
pub mod tracking;
pub mod words;

use std::{path::PathBuf, sync::Arc, time::Duration};

use axum::Router;
use flashcards_bootstrap::{
    ServiceBuilder,
    mlflow::{MlflowConfig, MlflowError, MlflowLogger},
};
use utoipa_axum::router::OpenApiRouter;

pub use config::Args;
use engine::{Engine, EngineError};
use metrics::OcrMetrics;
use pool::EnginePool;

/// The OCR service's port in the design's service table.
pub const DEFAULT_PORT: u16 = flashcards_contracts::ports::OCR;

/// Limits and defaults of a running service.
#[derive(Debug, Clone)]
pub struct Settings {
    pub tessdata_dir: PathBuf,
    pub default_language: String,
    pub engines: usize,
    pub queue: usize,
    pub deadline: Duration,
    pub min_confidence: f32,
    pub max_upload_bytes: usize,
    pub max_image_pixels: u64,
    pub max_pdf_pages: u32,
    /// Where runs are logged; `None`: not at all.
    pub mlflow: Option<MlflowConfig>,
}

impl Settings {
    pub fn from_args(args: &Args) -> Self {
        let engines = args.engines.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        });
        Self {
            tessdata_dir: args.tessdata_dir.clone(),
            default_language: args.default_language.clone(),
            engines: engines.max(1),
            queue: args.queue.unwrap_or(engines * 2),
            deadline: Duration::from_secs(args.deadline_secs.max(1)),
            min_confidence: args.min_confidence.clamp(0.0, 100.0),
            max_upload_bytes: args.max_upload_bytes,
            max_image_pixels: args.max_image_pixels,
            max_pdf_pages: args.max_pdf_pages,
            mlflow: MlflowConfig::from_args(&args.mlflow, "flashcards-ocr"),
        }
    }
}

/// What the handlers share; cheap to clone.
#[derive(Clone)]
pub struct OcrState {
    pub pool: Arc<EnginePool>,
    pub settings: Arc<Settings>,
    /// Languages installed in the tessdata folder.
    pub languages: Arc<Vec<String>>,
    pub metrics: OcrMetrics,
    /// One run per request, see [`tracking`].
    pub mlflow: MlflowLogger,
}

impl OcrState {
    /// Loads `settings.engines` engines (in parallel: each takes a fraction of a second) and reads
    /// the installed languages.
    pub fn start(
        settings: Settings,
        metrics: OcrMetrics,
        mlflow: MlflowLogger,
    ) -> Result<Self, EngineError> {
        let engines = std::thread::scope(|scope| {
            let loading: Vec<_> = (0..settings.engines)
                .map(|_| {
                    scope.spawn(|| Engine::new(&settings.tessdata_dir, &settings.default_language))
                })
                .collect();
            loading
                .into_iter()
                .map(|handle| {
                    handle.join().unwrap_or_else(|_| {
                        Err(EngineError::Panicked("loading an engine".to_owned()))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        let languages = engines
            .first()
            .map(Engine::installed_languages)
            .transpose()?
            .unwrap_or_default();
        Ok(Self {
            pool: EnginePool::new(engines, settings.queue),
            settings: Arc::new(settings),
            languages: Arc::new(languages),
            metrics,
            mlflow,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("starting the Tesseract engines: {0}")]
    Engine(#[from] EngineError),
    #[error("starting MLflow logging: {0}")]
    Mlflow(#[from] MlflowError),
}

/// The whole service from its settings: engines loaded (blocking: call it off the async threads,
/// inside the Tokio runtime, which MLflow logging runs on), metrics registered, routes built.
pub fn build(
    settings: Settings,
    body_limit_bytes: usize,
) -> Result<(Router, OcrState), BuildError> {
    let mut service = ServiceBuilder::new("flashcards-ocr", env!("CARGO_PKG_VERSION"))
        .body_limit_bytes(body_limit_bytes);
    let metrics = OcrMetrics::register(service.registry());
    let mlflow = MlflowLogger::start(settings.mlflow.clone(), service.registry())?;
    let state = OcrState::start(settings, metrics, mlflow)?;
    Ok((app(service, state.clone()), state))
}

/// Everything the OCR service serves, with the shared bootstrap around it. The caller registers the
/// metrics into `service`'s registry first (see [`OcrMetrics::register`]).
pub fn app(service: ServiceBuilder, state: OcrState) -> Router {
    let api = OpenApiRouter::new()
        .merge(routes::router(state.settings.max_upload_bytes))
        .with_state(state);
    service.build(api)
}
