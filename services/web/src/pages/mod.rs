//! The pages, one module per part of the app, and how a failed backend call becomes something a
//! person understands.

pub mod account;
pub mod auth;
pub mod cards;
pub mod decks;
pub mod documents;
pub mod layout;
pub mod stats;
pub mod study;

use axum::{
    Router,
    http::{StatusCode, Uri},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};

use crate::{WebState, backend::BackendError};

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/decks") }))
        .merge(auth::router())
        .merge(account::router())
        .merge(decks::router())
        .merge(cards::router())
        .merge(documents::router())
        .merge(study::router())
        .merge(stats::router())
        .fallback(not_found)
}

async fn not_found(uri: Uri) -> Response {
    tracing::debug!(path = uri.path(), "no such page");
    (
        StatusCode::NOT_FOUND,
        layout::message_page("Page not found", "There is no page at this address."),
    )
        .into_response()
}

/// A page that could not be rendered: the visitor is sent to sign in, or told what happened.
#[derive(Debug)]
pub struct PageError(pub BackendError);

impl From<BackendError> for PageError {
    fn from(err: BackendError) -> Self {
        Self(err)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self.0 {
            err if err.is_unauthorized() => Redirect::to("/sign-in").into_response(),
            BackendError::Refused { status, .. } if status == StatusCode::NOT_FOUND => (
                StatusCode::NOT_FOUND,
                layout::message_page(
                    "Not found",
                    "This was deleted, or it was never yours to see.",
                ),
            )
                .into_response(),
            BackendError::Unreachable(problem) => {
                tracing::warn!(%problem, "the backend cannot be reached");
                unavailable()
            }
            err => {
                tracing::error!(error = %err, "a page could not use the backend's answer");
                (
                    StatusCode::BAD_GATEWAY,
                    layout::message_page(
                        "Something went wrong",
                        "The flashcards server gave an answer this page could not use. \
                         Nothing was lost; try again, and tell whoever runs flashcards if it \
                         keeps happening.",
                    ),
                )
                    .into_response()
            }
        }
    }
}

/// `GET {collection}/{id}` for the visitor, `id` having come from the address: anything not shaped
/// like an id is "Not found" without asking the backend.
pub(super) async fn fetch_by_id<T: serde::de::DeserializeOwned>(
    state: &WebState,
    session: &str,
    collection: &str,
    id: &str,
) -> Result<T, PageError> {
    if !decks::is_id(id) {
        return Err(decks::not_found());
    }
    Ok(state
        .backend
        .call::<T>(
            reqwest::Method::GET,
            &format!("{collection}/{id}"),
            Some(session),
            None::<&()>,
        )
        .await?
        .body)
}

/// The page for a backend that is down.
pub fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(axum::http::header::RETRY_AFTER, "30")],
        layout::message_page(
            "Flashcards is unavailable",
            "The flashcards server cannot be reached right now. Nothing you saved is lost; try \
             again in a minute.",
        ),
    )
        .into_response()
}

/// The backend's message (`wrong email or password`) as a sentence on a page.
pub fn sentence(detail: &str) -> String {
    let mut chars = detail.trim().chars();
    let mut text: String = chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    if !text.is_empty() && !text.ends_with(['.', '!', '?']) {
        text.push('.');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::sentence;

    #[test]
    fn backend_messages_read_as_sentences() {
        assert_eq!(
            sentence("wrong email or password"),
            "Wrong email or password."
        );
        assert_eq!(sentence("Done."), "Done.");
        assert_eq!(sentence(""), "");
    }
}
