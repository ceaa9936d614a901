//! The LLM service as the backend sees it: text in, cards with spans out; failures sorted into worth
//! retrying (down, busy, slow) or not.

use std::time::Duration;

use flashcards_bootstrap::http_client;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("the LLM service is unavailable: {0}")]
    Unavailable(String),
    #[error("the LLM service refused the text: {0}")]
    Rejected(String),
}

#[derive(Debug, Serialize)]
struct GenerateBody<'a> {
    text: &'a str,
    max_cards: usize,
    kinds: &'a [String],
}

#[derive(Debug, Clone, Deserialize)]
pub struct Span {
    pub start: i64,
    pub end: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GeneratedCard {
    pub kind: String,
    #[serde(default)]
    pub front: Option<String>,
    #[serde(default)]
    pub back: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    pub source: Span,
}

#[derive(Debug, Deserialize)]
struct GenerateAnswer {
    cards: Vec<GeneratedCard>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    detail: String,
}

#[derive(Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    url: String,
}

impl LlmClient {
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        let http = http_client::client(timeout);
        Self {
            http,
            url: format!("{}/v1/generate", base_url.trim_end_matches('/')),
        }
    }

    pub async fn generate(
        &self,
        text: &str,
        max_cards: usize,
        kinds: &[String],
    ) -> Result<Vec<GeneratedCard>, LlmError> {
        let response = self
            .http
            .post(&self.url)
            .json(&GenerateBody {
                text,
                max_cards,
                kinds,
            })
            .send()
            .await
            .map_err(|err| LlmError::Unavailable(http_client::describe(&err)))?;
        let status = response.status();
        if status.is_success() {
            let answer: GenerateAnswer = response
                .json()
                .await
                .map_err(|err| LlmError::Unavailable(format!("unreadable answer: {err}")))?;
            return Ok(answer.cards);
        }
        let detail = response
            .json::<ErrorBody>()
            .await
            .map_or_else(|_| status.to_string(), |body| body.detail);
        if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
            Err(LlmError::Rejected(detail))
        } else {
            Err(LlmError::Unavailable(format!("{status}: {detail}")))
        }
    }
}
