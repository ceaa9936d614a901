//! The LLM service as the backend sees it: text in, cards with spans out, in the service's own
//! wire types; failures sorted into worth retrying or not by the shared service client.

use std::time::Duration;

use flashcards_bootstrap::http_client::{self, ServiceError};
use flashcards_contracts::llm::{Card, CardKind, GENERATE_PATH, GenerateInput, GenerateOutput};

/// The name failures carry.
const SERVICE: &str = "LLM service";

#[derive(Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    url: String,
}

impl LlmClient {
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        Self {
            http: http_client::client(timeout),
            url: format!("{}{GENERATE_PATH}", base_url.trim_end_matches('/')),
        }
    }

    pub async fn generate(
        &self,
        text: &str,
        max_cards: usize,
        kinds: &[CardKind],
    ) -> Result<Vec<Card>, ServiceError> {
        let input = GenerateInput {
            text: text.to_owned(),
            max_cards: Some(max_cards),
            kinds: Some(kinds.to_vec()),
            language: None,
        };
        let request = self.http.post(&self.url).json(&input);
        let answer: GenerateOutput = http_client::call_json(SERVICE, request).await?;
        Ok(answer.cards)
    }
}
