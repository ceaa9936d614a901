//! What every service's HTTP clients share (the backend's clients of OCR and the LLM, the LLM's
//! upstream, MLflow logging): one way to build a client, one way to describe its errors without
//! the URLs they carry (which may hold credentials), and one way to call a service of the stack
//! and sort its failures into worth retrying or not.

use std::time::Duration;

/// A client whose requests end after `timeout`, and whose connections are given up after 5 s.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default()
}

/// reqwest's error without the URL it carries, plus its cause (connection refused, timed out).
pub fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind} ({cause})")
    }
}

/// Why a call to one of the stack's services did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Down, overloaded, timed out or failing: the same request may work later.
    #[error("the {service} is unavailable: {detail}")]
    Unavailable {
        service: &'static str,
        detail: String,
    },
    /// The service refused the request itself (a 4xx other than 429): trying again will not help.
    #[error("the {service} refused it: {detail}")]
    Rejected {
        service: &'static str,
        detail: String,
    },
}

impl ServiceError {
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// What the service said, without the service's name.
    pub fn detail(&self) -> &str {
        match self {
            Self::Unavailable { detail, .. } | Self::Rejected { detail, .. } => detail,
        }
    }
}

/// The error body every service answers with (`{"error": ..., "detail": ...}`); only the detail is
/// read, so a service's own codes need not be known here.
#[derive(serde::Deserialize)]
struct ErrorDetail {
    detail: String,
}

/// Sends `request` to `service` (its name in messages, e.g. "OCR service") and reads its JSON
/// answer into `T`. A 4xx other than 429 is [`ServiceError::Rejected`] with the service's
/// explanation; anything else that is not an answer (no connection, a timeout, 429, a 5xx, an
/// unreadable body) is [`ServiceError::Unavailable`].
pub async fn call_json<T: serde::de::DeserializeOwned>(
    service: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<T, ServiceError> {
    let unavailable = |detail: String| ServiceError::Unavailable { service, detail };
    let response = request
        .send()
        .await
        .map_err(|err| unavailable(describe(&err)))?;
    let status = response.status();
    if status.is_success() {
        return response
            .json()
            .await
            .map_err(|err| unavailable(format!("unreadable answer: {}", describe(&err))));
    }
    let detail = response
        .json::<ErrorDetail>()
        .await
        .map_or_else(|_| status.to_string(), |body| body.detail);
    if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
        Err(ServiceError::Rejected { service, detail })
    } else {
        Err(unavailable(format!("{status}: {detail}")))
    }
}
