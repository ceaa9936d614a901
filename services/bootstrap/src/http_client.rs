//! What every service's HTTP clients share (the backend's clients of OCR and the LLM, the LLM's
//! upstream, MLflow logging): one way to build a client, and one way to describe its errors
//! without the URLs they carry (which may hold credentials).

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
