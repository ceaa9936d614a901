//! The OCR service as the backend sees it: a file in, its pages out, in the service's own wire
//! types; failures sorted into worth retrying or not by the shared service client.

use std::time::Duration;

use flashcards_bootstrap::http_client::{self, ServiceError};
use flashcards_contracts::ocr::{OcrResponse, PageResult, RECOGNISE_PATH};

/// The name failures carry.
const SERVICE: &str = "OCR service";

#[derive(Clone)]
pub struct OcrClient {
    http: reqwest::Client,
    url: String,
}

impl OcrClient {
    /// `base_url` is the service's root (`http://ocr:8000`); `timeout` bounds a whole request.
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        Self {
            http: http_client::client(timeout),
            url: format!("{}{RECOGNISE_PATH}", base_url.trim_end_matches('/')),
        }
    }

    pub async fn recognise(
        &self,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<Vec<PageResult>, ServiceError> {
        let request = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(bytes);
        let answer: OcrResponse = http_client::call_json(SERVICE, request).await?;
        Ok(answer.pages)
    }
}
