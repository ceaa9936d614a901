//! The authenticated user of a request: from the session cookie or an `Authorization: Bearer` token.

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, Method, header, request::Parts},
};
use flashcards_bootstrap::ApiError;
use sqlx::Row;

use super::token;
use crate::{AppState, db::QueryResultExt};

pub const SESSION_COOKIE: &str = "flashcards_session";

#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: String,
    /// The session or API token this request authenticated with.
    pub token_id: String,
}

/// A credential a request carries, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presented<'a> {
    Bearer(&'a str),
    /// The session cookie: what a browser sends on its own (a bearer token never is).
    Cookie(&'a str),
}

/// The credential a request carries: a bearer token wins over the cookie.
fn presented(headers: &HeaderMap) -> Option<Presented<'_>> {
    bearer_token(headers)
        .map(Presented::Bearer)
        .or_else(|| session_token(headers).map(Presented::Cookie))
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// A change (any method but GET, HEAD and OPTIONS) that a browser sends from a page of another
/// origin, as it says in `Sec-Fetch-Site`. The cookie's `SameSite=Lax` keeps it off cross-site
/// posts, but not off a sibling subdomain's (`same-site`); and since this API answers no CORS
/// preflight, its own pages always call it from the same origin. Clients that are not browsers
/// send no such header.
fn foreign_change(method: &Method, headers: &HeaderMap) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        && headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|site| {
                site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site")
            })
}

fn unauthorized() -> ApiError {
    ApiError::Unauthorized("log in or send an `Authorization: Bearer` token".to_owned())
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = match presented(&parts.headers).ok_or_else(unauthorized)? {
            Presented::Cookie(_) if foreign_change(&parts.method, &parts.headers) => {
                return Err(ApiError::Forbidden(
                    "a change made with the session cookie must come from the app's own origin \
                     (Sec-Fetch-Site: same-origin)"
                        .to_owned(),
                ));
            }
            Presented::Bearer(token) | Presented::Cookie(token) => token,
        };
        let digest = token::digest(presented);
        let now = state.clock.now_ms();
        if let Some(user) = state.credentials.get(&digest, now) {
            return Ok(user);
        }
        let row = sqlx::query(
            "SELECT id, user_id, expires_at FROM auth_tokens \
             WHERE token_hash = $1 AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(&digest)
        .bind(now)
        .fetch_optional(&state.db.read)
        .await
        .db("checking credentials")?
        .ok_or_else(unauthorized)?;
        let user = Self {
            token_id: row.try_get("id").db("reading credentials")?,
            id: row.try_get("user_id").db("reading credentials")?,
        };
        let expires_at = row.try_get("expires_at").db("reading credentials")?;
        state
            .credentials
            .insert(digest, user.clone(), expires_at, now);
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn finds_the_session_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; flashcards_session=fcs_abc; other=1"),
        );
        assert_eq!(presented(&headers), Some(Presented::Cookie("fcs_abc")));
    }

    #[test]
    fn bearer_wins_over_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("flashcards_session=fcs_a"),
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer fct_b"),
        );
        assert_eq!(presented(&headers), Some(Presented::Bearer("fct_b")));
    }

    #[test]
    fn only_changes_from_other_origins_are_foreign() {
        let with_site = |site: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert("sec-fetch-site", HeaderValue::from_static(site));
            headers
        };
        assert!(foreign_change(&Method::POST, &with_site("cross-site")));
        assert!(foreign_change(&Method::DELETE, &with_site("same-site")));
        assert!(!foreign_change(&Method::POST, &with_site("same-origin")));
        assert!(!foreign_change(&Method::PATCH, &with_site("none")));
        assert!(!foreign_change(&Method::GET, &with_site("cross-site")));
        assert!(
            !foreign_change(&Method::POST, &HeaderMap::new()),
            "not a browser"
        );
    }

    #[test]
    fn no_credential_is_none() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic Zm9vOmJhcg=="),
        );
        assert_eq!(presented(&headers), None);
    }
}
