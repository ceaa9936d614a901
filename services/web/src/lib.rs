//! `flashcards-web`: the app learners use in a browser. Pages are rendered on the server from the
//! backend's API (`pages`), `/api/*` is passed through to the backend on the same origin
//! (`proxy`), so the backend's session cookie and its `Sec-Fetch-Site` check work unchanged, and
//! every answer carries strict security headers (`security`). Stylesheets and scripts are
//! embedded in the binary under content-hashed names (`assets`), KaTeX among them, which typesets
//! the maths in cards (`math`).

pub mod assets;
pub mod backend;
pub mod math;
pub mod pages;
pub mod proxy;
pub mod security;
pub mod visitors;

use std::{sync::Arc, time::Duration};

use axum::{Router, middleware, routing::any};
use clap::Parser;
use flashcards_bootstrap::{ServiceBuilder, config::CommonArgs};
use flashcards_contracts::flags::web as flags;

use crate::backend::Backend;

/// The monitoring guide's frontend port.
pub const DEFAULT_PORT: u16 = flashcards_contracts::ports::WEB;

#[derive(Debug, Clone, Parser)]
#[command(name = "flashcards-web", version, about = "The flashcards web app")]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// The backend's base URL, e.g. `http://flashcards-backend:8002`: pages are rendered from its
    /// API and `/api/*` is passed through to it.
    #[arg(long = flags::BACKEND_URL.long, env = flags::BACKEND_URL.env)]
    pub backend_url: String,

    /// Longest wait for one backend answer while rendering a page, in seconds (passed-through
    /// `/api/*` requests, uploads among them, are not cut short).
    #[arg(long, env = "BACKEND_TIMEOUT_SECS", default_value_t = 30)]
    pub backend_timeout_secs: u64,
}

/// What every handler shares.
#[derive(Clone)]
pub struct WebState {
    pub backend: Backend,
    pub visitors: Arc<visitors::Visitors>,
}

impl WebState {
    pub fn from_args(args: &Args) -> Result<Self, backend::BackendError> {
        Ok(Self {
            backend: Backend::new(
                &args.backend_url,
                Duration::from_secs(args.backend_timeout_secs),
            )?,
            visitors: Arc::default(),
        })
    }
}

/// The whole site: pages, assets, the API pass-through, the service endpoints (`/healthz`,
/// `/readyz`, `/metrics`) and the security headers on all of them.
pub fn app(service: ServiceBuilder, state: WebState) -> Router {
    let site = pages::router()
        .merge(assets::router())
        .route("/api", any(proxy::pass_through))
        .route("/api/{*rest}", any(proxy::pass_through))
        .with_state(state);
    service
        .build_site(site)
        .layer(middleware::from_fn(security::headers))
        .layer(middleware::from_fn(security::same_origin_changes))
}
