//! The OCR service as the backend sees it: send a file, get pages back, and tell apart the failures
//! worth retrying (the service is down, overloaded or slow) from a file it will never read.

use std::time::Duration;

use flashcards_bootstrap::http_client;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum OcrError {
    /// Down, overloaded, timed out or failing: the same upload may work later.
    #[error("the OCR service is unavailable: {0}")]
    Unavailable(String),
    /// The OCR service refused the file itself (corrupt, encrypted, too large, ...).
    #[error("{0}")]
    Rejected(String),
}

impl OcrError {
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// One page as the OCR service reports it; words are kept as the service sent them.
#[derive(Debug, Clone, Deserialize)]
pub struct OcrPage {
    pub page: i64,
    pub source: String,
    pub width: i64,
    pub height: i64,
    pub text: String,
    pub mean_confidence: Option<f64>,
    pub words: Value,
    pub filtered_words: Value,
}

#[derive(Debug, Deserialize)]
struct OcrAnswer {
    pages: Vec<OcrPage>,
}

#[derive(Debug, Deserialize)]
struct OcrErrorBody {
    detail: String,
}

#[derive(Clone)]
pub struct OcrClient {
    http: reqwest::Client,
    url: String,
}

impl OcrClient {
    /// `base_url` is the service's root (`http://ocr:8000`); `timeout` bounds a whole request.
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        let http = http_client::client(timeout);
        Self {
            http,
            url: format!("{}/v1/ocr", base_url.trim_end_matches('/')),
        }
    }

    pub async fn recognise(
        &self,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<Vec<OcrPage>, OcrError> {
        let response = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(bytes)
            .send()
            .await
            .map_err(|err| OcrError::Unavailable(http_client::describe(&err)))?;
        let status = response.status();
        if status.is_success() {
            let answer: OcrAnswer = response.json().await.map_err(|err| {
                OcrError::Unavailable(format!(
                    "unreadable answer: {}",
                    http_client::describe(&err)
                ))
            })?;
            return Ok(answer.pages);
        }
        let detail = response
            .json::<OcrErrorBody>()
            .await
            .map_or_else(|_| status.to_string(), |body| body.detail);
        if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
            Err(OcrError::Rejected(detail))
        } else {
            Err(OcrError::Unavailable(format!("{status}: {detail}")))
        }
    }
}
