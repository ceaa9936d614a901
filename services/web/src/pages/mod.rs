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
    extract::{FromRequestParts, Path},
    http::{HeaderMap, StatusCode, Uri, request::Parts},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use flashcards_backend::auth::User;

use crate::{
    WebState,
    backend::{self, BackendError},
};

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
        .fallback(no_such_page)
}

async fn no_such_page(uri: Uri) -> Response {
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

/// The signed-in visitor: their session and account. Without a session, or with one the backend
/// no longer knows, the page sends them to sign in.
pub struct SignedIn {
    pub session: String,
    pub user: User,
}

impl FromRequestParts<WebState> for SignedIn {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, PageError> {
        let (session, user) = visitor(state, &parts.headers).await?;
        Ok(Self { session, user })
    }
}

/// The signed-in visitor's session and account; without a session, straight to signing in.
async fn visitor(state: &WebState, headers: &HeaderMap) -> Result<(String, User), PageError> {
    let session = backend::session(headers)
        .ok_or(PageError(BackendError::Refused {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized".to_owned(),
            detail: "not signed in".to_owned(),
        }))?
        .to_owned();
    let now = std::time::Instant::now();
    if let Some(user) = state.visitors.get(&session, now) {
        return Ok((session, user));
    }
    let user = state.backend.get::<User>("/api/auth/me", &session).await?;
    state.visitors.insert(&session, user.clone(), now);
    Ok((session, user))
}

/// An id from the address: anything not shaped like the backend's ids is "Not found" without
/// asking the backend, and never becomes part of a backend path.
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, PageError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) if is_id(&id) => Ok(Self(id)),
            _ => Err(not_found()),
        }
    }
}

/// Whether `value` looks like the backend's ids (letters, digits, `-`, `_`): anything else from
/// the address bar is no deck, and never becomes part of a backend path.
pub fn is_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

pub fn not_found() -> PageError {
    PageError(BackendError::Refused {
        status: StatusCode::NOT_FOUND,
        code: "not_found".to_owned(),
        detail: "no such deck".to_owned(),
    })
}

/// `GET {collection}/{id}` for the visitor, `id` having come from the address: anything not shaped
/// like an id is "Not found" without asking the backend.
pub(super) async fn fetch_by_id<T: serde::de::DeserializeOwned>(
    state: &WebState,
    session: &str,
    collection: &str,
    id: &str,
) -> Result<T, PageError> {
    if !is_id(id) {
        return Err(not_found());
    }
    Ok(state
        .backend
        .get::<T>(&format!("{collection}/{id}"), session)
        .await?)
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
    use super::{is_id, sentence};

    #[test]
    fn only_id_shaped_values_reach_a_backend_path() {
        assert!(is_id("0193a0b2-7c1e-7d3f-9a55-0123456789ab"));
        for hostile in ["", "..", "../auth/me", "a?b", "a%2F", &"x".repeat(65)] {
            assert!(!is_id(hostile), "{hostile}");
        }
    }

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
