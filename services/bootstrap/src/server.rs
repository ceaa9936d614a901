//! Assembles a service's router with everything shared around it, and serves it until SIGTERM/SIGINT.

use std::{future::Future, sync::Arc};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request, State},
    http::header,
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
    routing::get,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::openapi::Info;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    ApiError,
    health::{Readiness, healthz, readyz},
    http_metrics::{HttpMetrics, track},
};

const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Builds a service: register metrics into [`ServiceBuilder::registry`], set readiness and limits, then
/// [`ServiceBuilder::build`] the router around the service's own OpenAPI-documented routes.
pub struct ServiceBuilder {
    name: &'static str,
    version: &'static str,
    registry: Registry,
    http_metrics: HttpMetrics,
    readiness: Readiness,
    body_limit_bytes: usize,
}

impl ServiceBuilder {
    pub fn new(name: &'static str, version: &'static str) -> Self {
        let mut registry = Registry::default();
        let http_metrics = HttpMetrics::register(&mut registry);
        Self {
            name,
            version,
            registry,
            http_metrics,
            readiness: Readiness::always(),
            body_limit_bytes: 1024 * 1024,
        }
    }

    /// The registry the service adds its own metrics to; exposed on `/metrics`.
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    pub fn body_limit_bytes(mut self, bytes: usize) -> Self {
        self.body_limit_bytes = bytes;
        self
    }

    pub fn readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }

    /// The complete router: the service's routes, `/openapi.json`, `/docs`, `/healthz`, `/readyz`,
    /// `/metrics`, JSON 404/405 answers, body limit, HTTP metrics and panic containment.
    pub fn build(self, api: OpenApiRouter) -> Router {
        let (routes, mut openapi) = api.split_for_parts();
        openapi.info = Info::new(self.name, self.version);
        crate::openapi::add_error_responses(&mut openapi);
        let registry = Arc::new(self.registry);
        routes
            .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz).with_state(self.readiness))
            .route("/metrics", get(metrics).with_state(registry))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(DefaultBodyLimit::max(self.body_limit_bytes))
            .layer(from_fn_with_state(self.http_metrics, track))
    }

    /// A router of pages rather than an API (the web app): the site's own routes and fallback,
    /// plus `/healthz`, `/readyz`, `/metrics`, HTTP metrics and panic containment; no OpenAPI
    /// document, and no body limit of its own, since the site streams uploads on to the backend,
    /// which enforces its limit (form extractors keep axum's default).
    pub fn build_site(self, site: Router) -> Router {
        let registry = Arc::new(self.registry);
        site.route("/healthz", get(healthz))
            .route("/readyz", get(readyz).with_state(self.readiness))
            .route("/metrics", get(metrics).with_state(registry))
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(from_fn_with_state(self.http_metrics, track))
    }
}

async fn metrics(State(registry): State<Arc<Registry>>) -> Response {
    let mut text = String::new();
    match encode(&mut text, &registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text).into_response(),
        Err(err) => ApiError::internal("encoding metrics", err).into_response(),
    }
}

async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(format!("no route for {}", request.uri().path()))
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "{} is not allowed on {}",
        request.method(),
        request.uri().path()
    ))
}

fn panic_response(_panic: Box<dyn std::any::Any + Send>) -> Response {
    ApiError::Internal("handler panicked".to_owned()).into_response()
}

/// Serves until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve_until(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves until SIGTERM or SIGINT.
pub async fn serve(listener: TcpListener, app: Router) -> std::io::Result<()> {
    serve_until(listener, app, shutdown_signal()).await
}

/// Completes on SIGTERM (Kubernetes stopping the pod) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
