//! The flashcards backend: users and sessions, decks, cards (basic and cloze) and FSRS study, over
//! SQLite or PostgreSQL, and the stack's alerts from Alertmanager. `app` builds the whole HTTP
//! service; `main.rs` only parses flags and serves.

pub mod alerts;
pub mod auth;
pub mod background;
pub mod cards;
pub mod clock;
pub mod config;
pub mod db;
pub mod decks;
pub mod documents;
pub mod events;
pub mod generation;
pub mod limits;
pub mod metrics;
pub mod pagination;
pub mod partial;
pub mod state;
pub mod study;
pub mod timestamp;

use axum::Router;
use flashcards_bootstrap::{ServiceBuilder, health::Readiness};
use utoipa_axum::router::OpenApiRouter;

pub use config::{Args, Command};
pub use state::AppState;

/// The backend's port in the design's service table.
pub const DEFAULT_PORT: u16 = flashcards_contracts::ports::BACKEND;

/// Everything the backend serves, with the shared bootstrap around it. The caller registers the
/// backend's metrics into `service`'s registry first (see [`metrics::BackendMetrics::register`]).
pub fn app(service: ServiceBuilder, state: AppState) -> Router {
    let db = state.db.read.clone();
    let readiness = Readiness::new(move || {
        let db = db.clone();
        async move { db::ping(&db).await.map_err(|err| err.to_string()) }
    });
    let mut api = OpenApiRouter::new()
        .merge(auth::router())
        .merge(decks::router())
        .merge(cards::router())
        .merge(cards::transfer::imports(state.documents.max_upload_bytes))
        .merge(study::router())
        .merge(documents::router(state.documents.max_upload_bytes))
        .merge(generation::router())
        .merge(alerts::router())
        .with_state(state);
    auth::document_sign_in(api.get_openapi_mut());
    service.readiness(readiness).build(api)
}
