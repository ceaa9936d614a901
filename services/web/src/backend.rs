//! The backend's API as the pages call it: the visitor's session cookie passed on, answers read
//! into the backend's own wire types, and each failure told apart (unreachable, refused with the
//! backend's message, unreadable).

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use flashcards_backend::auth::SESSION_COOKIE;
use flashcards_backend::pagination::Page;
use flashcards_bootstrap::error::ErrorBody;
use reqwest::{Method, StatusCode};
use serde::{Serialize, de::DeserializeOwned};

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("the backend URL {url:?} is not an http(s) URL")]
    BadUrl { url: String },
    /// Nothing answered, or not in time.
    #[error("the backend cannot be reached: {0}")]
    Unreachable(String),
    /// The backend answered with an error; `detail` is its message, written for people.
    #[error("{detail}")]
    Refused {
        status: StatusCode,
        code: String,
        detail: String,
    },
    /// The backend answered something that is not what its API says.
    #[error("the backend's answer to {what} could not be read: {problem}")]
    Unreadable { what: String, problem: String },
}

impl BackendError {
    /// Whether the visitor has to sign (again) in.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Self::Refused { status, .. } if *status == StatusCode::UNAUTHORIZED)
    }
}

/// A call's answer: its body and the cookies the backend set (a login's session).
#[derive(Debug)]
pub struct Answer<T> {
    pub body: T,
    pub set_cookies: Vec<HeaderValue>,
}

/// The backend's base URL and an HTTP client with the page timeout.
#[derive(Debug, Clone)]
pub struct Backend {
    base: String,
    http: reqwest::Client,
    /// For the pass-through, which must not cut long uploads or event streams short.
    unbounded: reqwest::Client,
}

impl Backend {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, BackendError> {
        let base = url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(BackendError::BadUrl {
                url: url.to_owned(),
            });
        }
        Ok(Self {
            base,
            http: flashcards_bootstrap::http_client::client(timeout),
            unbounded: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        })
    }

    /// `base + path_and_query`, for the pass-through.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    /// The client the pass-through sends with.
    pub fn pass_through_client(&self) -> &reqwest::Client {
        &self.unbounded
    }

    /// Calls `method path` with `session` (the visitor's cookie value, if any) and a JSON `body`,
    /// reading a JSON answer into `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        session: Option<&str>,
        body: Option<&impl Serialize>,
    ) -> Result<Answer<T>, BackendError> {
        let mut request = self.request(&self.http, method.clone(), path, session);
        if let Some(body) = body {
            request = request.json(body);
        }
        finish(&format!("{method} {path}"), request).await
    }

    /// `GET path` for the visitor with `session`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        session: &str,
    ) -> Result<T, BackendError> {
        Ok(self
            .call::<T>(Method::GET, path, Some(session), None::<&()>)
            .await?
            .body)
    }

    /// `method path` with a JSON `body` for the visitor with `session`.
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        session: &str,
        body: &impl Serialize,
    ) -> Result<T, BackendError> {
        Ok(self
            .call::<T>(method, path, Some(session), Some(body))
            .await?
            .body)
    }

    /// `method path` without a body for the visitor with `session`, its answer unread (a delete,
    /// or an action such as a retry).
    pub async fn act(&self, method: Method, path: &str, session: &str) -> Result<(), BackendError> {
        self.call::<serde_json::Value>(method, path, Some(session), None::<&()>)
            .await?;
        Ok(())
    }

    /// Every item of a paginated list at `path` (the backend's `Page`: `items` and `next`), asked
    /// for 200 at a time.
    pub async fn all_pages<T: DeserializeOwned>(
        &self,
        path: &str,
        session: &str,
    ) -> Result<Vec<T>, BackendError> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut page_path = format!("{path}{separator}limit=200");
            if let Some(after) = &after {
                page_path.push_str(&format!("&after={}", encode_query_value(after)));
            }
            let page = self
                .call::<Page<T>>(Method::GET, &page_path, Some(session), None::<&()>)
                .await?
                .body;
            items.extend(page.items);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// Posts a body as it came (an upload's multipart form, streamed, under its own
    /// `content_type`), without the page timeout, reading a JSON answer into `T`.
    pub async fn post_raw<T: DeserializeOwned>(
        &self,
        path: &str,
        session: &str,
        content_type: &str,
        body: reqwest::Body,
    ) -> Result<Answer<T>, BackendError> {
        let request = self
            .request(&self.unbounded, Method::POST, path, Some(session))
            .header(header::CONTENT_TYPE, content_type)
            .body(body);
        finish(&format!("POST {path}"), request).await
    }

    fn request(
        &self,
        client: &reqwest::Client,
        method: Method,
        path: &str,
        session: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let request = client.request(method, format!("{}{path}", self.base));
        match session {
            Some(session) => request.header(header::COOKIE, format!("{SESSION_COOKIE}={session}")),
            None => request,
        }
    }
}

/// Sends `request` and reads the answer: `T` from a success, the backend's message from an error.
async fn finish<T: DeserializeOwned>(
    what: &str,
    request: reqwest::RequestBuilder,
) -> Result<Answer<T>, BackendError> {
    let unreachable = |err: reqwest::Error| {
        BackendError::Unreachable(flashcards_bootstrap::http_client::describe(&err))
    };
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    let set_cookies = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    let bytes = response.bytes().await.map_err(unreachable)?;
    if !status.is_success() {
        let error: ErrorBody =
            serde_json::from_slice(&bytes).map_err(|err| BackendError::Unreadable {
                what: what.to_owned(),
                problem: format!("HTTP {status}: {err}"),
            })?;
        return Err(BackendError::Refused {
            status,
            code: error.error,
            detail: error.detail,
        });
    }
    // An empty answer (204) reads as JSON null.
    let bytes = if bytes.is_empty() {
        &b"null"[..]
    } else {
        &bytes[..]
    };
    let body = serde_json::from_slice(bytes).map_err(|err| BackendError::Unreadable {
        what: what.to_owned(),
        problem: err.to_string(),
    })?;
    Ok(Answer { body, set_cookies })
}

/// A query value with everything but unreserved characters percent-encoded.
pub fn encode_query_value(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The visitor's session cookie among a request's headers.
pub fn session(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty())
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_among_other_cookies_and_ignores_a_cleared_one() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; flashcards_session=fcs_1; x=y"),
        );
        assert_eq!(session(&headers), Some("fcs_1"));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("flashcards_session="),
        );
        assert_eq!(session(&headers), None);
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query_value("d-01_x.~"), "d-01_x.~");
        assert_eq!(encode_query_value("a&b=c d"), "a%26b%3Dc%20d");
    }

    #[test]
    fn only_http_urls_name_a_backend() {
        assert!(Backend::new("http://backend:8002/", Duration::from_secs(1)).is_ok());
        assert!(matches!(
            Backend::new("backend:8002", Duration::from_secs(1)),
            Err(BackendError::BadUrl { .. })
        ));
    }
}
