//! Where completions come from. [`ModelBackend`] is the seam; [`local::LocalModel`] runs a GGUF
//! model in process, and this module's [`OpenAiUpstream`] speaks the OpenAI chat-completions
//! protocol (llama.cpp's server, Ollama, vLLM) with timeouts and jittered retries.

pub mod local;
pub mod metered;

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use flashcards_bootstrap::http_client;
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::pipeline::prompt::Message;

#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub max_tokens: u32,
    /// The JSON schema the answer must follow, if the backend can enforce one.
    pub schema: Option<Value>,
    pub sampling: SamplingParams,
}

/// How the next token is picked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// 0 is greedy.
    pub temperature: f64,
    /// Only the likeliest tokens whose probabilities add up to this are drawn from (1 = all).
    pub top_p: f64,
    pub seed: Option<u64>,
}

impl SamplingParams {
    /// The pipeline's: greedy, so the same text gives the same cards.
    pub const GREEDY: Self = Self {
        temperature: TEMPERATURE,
        top_p: 1.0,
        seed: None,
    };
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Completion {
    pub content: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("the model did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the model upstream is unavailable: {0}")]
    Unavailable(String),
    #[error("the model upstream refused the request: {0}")]
    Rejected(String),
}

impl BackendError {
    /// The `type` label of `llm_generation_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::Unavailable(_) | Self::Rejected(_) => "upstream",
        }
    }
}

pub type BackendFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'a>>;

/// Sampling temperature of every request: greedy decoding, so the same text gives the same cards.
pub const TEMPERATURE: f64 = 0.0;

pub trait ModelBackend: Send + Sync {
    /// Where completions come from, as `/v1/models` and MLflow report it.
    fn kind(&self) -> &'static str;
    /// The model's name as reported to clients.
    fn model<'a>(&'a self) -> BackendFuture<'a, String>;
    fn complete<'a>(&'a self, request: &'a ChatRequest) -> BackendFuture<'a, Completion>;
    /// Like [`ModelBackend::complete`], handing each piece of the answer to `pieces` as it is
    /// made; a backend that cannot stream sends the whole answer as one piece.
    fn complete_streaming<'a>(
        &'a self,
        request: &'a ChatRequest,
        pieces: tokio::sync::mpsc::Sender<String>,
    ) -> BackendFuture<'a, Completion> {
        Box::pin(async move {
            let completion = self.complete(request).await?;
            // A receiver that went away wants nothing more.
            let _ = pieces.send(completion.content.clone()).await;
            Ok(completion)
        })
    }
    /// Why `schema` cannot constrain what the model writes, if it cannot; a backend that only
    /// passes the schema on has nothing to say.
    fn schema_error(&self, _schema: &Value) -> Option<String> {
        None
    }
}

#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// The server's root, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// The model to ask for; `None` takes the first one the server lists.
    pub model: Option<String>,
    pub api_key: Option<String>,
    /// Per attempt.
    pub timeout: Duration,
    /// Further attempts after a 429, a 5xx or a refused connection.
    pub retries: u32,
}

pub struct OpenAiUpstream {
    http: reqwest::Client,
    settings: UpstreamSettings,
    model: Mutex<Option<String>>,
    /// Cleared when the server refuses `response_format` with a schema; answers are validated anyway.
    schema_supported: AtomicBool,
}

impl OpenAiUpstream {
    pub fn new(settings: UpstreamSettings) -> Self {
        Self {
            model: Mutex::new(settings.model.clone()),
            http: http_client::client(settings.timeout),
            settings,
            schema_supported: AtomicBool::new(true),
        }
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.settings.url.trim_end_matches('/'))
    }

    fn authorised(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.settings.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    async fn discover_model(&self) -> Result<String, BackendError> {
        if let Some(model) = self
            .model
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Ok(model);
        }
        let response = self
            .authorised(self.http.get(self.endpoint("/v1/models")))
            .send()
            .await
            .map_err(|err| self.transport_error(&err))?;
        if !response.status().is_success() {
            return Err(BackendError::Unavailable(format!(
                "listing models answered {}",
                response.status()
            )));
        }
        let listing: ModelList = response
            .json()
            .await
            .map_err(|err| BackendError::Unavailable(format!("unreadable model list: {err}")))?;
        let model = listing
            .data
            .into_iter()
            .next()
            .map(|model| model.id)
            .ok_or_else(|| BackendError::Unavailable("the upstream lists no model".to_owned()))?;
        *self.model.lock().unwrap_or_else(PoisonError::into_inner) = Some(model.clone());
        Ok(model)
    }

    fn transport_error(&self, err: &reqwest::Error) -> BackendError {
        if err.is_timeout() {
            BackendError::Timeout(self.settings.timeout)
        } else {
            BackendError::Unavailable(http_client::describe(err))
        }
    }

    async fn attempt(&self, model: &str, request: &ChatRequest) -> Result<Completion, Attempt> {
        let with_schema = request
            .schema
            .as_ref()
            .filter(|_| self.schema_supported.load(Ordering::Relaxed));
        let body = chat_body(model, request, with_schema);
        let response = self
            .authorised(self.http.post(self.endpoint("/v1/chat/completions")))
            .json(&body)
            .send()
            .await
            .map_err(|err| match self.transport_error(&err) {
                timeout @ BackendError::Timeout(_) => Attempt::Final(timeout),
                other => Attempt::Retry(other, None),
            })?;
        let status = response.status();
        if status.is_success() {
            let answer: ChatAnswer = response.json().await.map_err(|err| {
                Attempt::Final(BackendError::Unavailable(format!(
                    "unreadable completion: {err}"
                )))
            })?;
            return Ok(answer.into_completion());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().await.unwrap_or_default();
        let detail = format!("{status}: {}", text.chars().take(300).collect::<String>());
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(Attempt::Retry(
                BackendError::Unavailable(detail),
                retry_after,
            ));
        }
        if with_schema.is_some() && status == reqwest::StatusCode::BAD_REQUEST {
            tracing::warn!(%detail, "upstream refused response_format; asking without it");
            self.schema_supported.store(false, Ordering::Relaxed);
            return Err(Attempt::Retry(
                BackendError::Rejected(detail),
                Some(Duration::ZERO),
            ));
        }
        Err(Attempt::Final(BackendError::Rejected(detail)))
    }
}

enum Attempt {
    Retry(BackendError, Option<Duration>),
    Final(BackendError),
}

impl ModelBackend for OpenAiUpstream {
    fn kind(&self) -> &'static str {
        "openai-compatible"
    }

    fn model<'a>(&'a self) -> BackendFuture<'a, String> {
        Box::pin(self.discover_model())
    }

    fn complete<'a>(&'a self, request: &'a ChatRequest) -> BackendFuture<'a, Completion> {
        Box::pin(async move {
            let model = self.discover_model().await?;
            let mut attempt = 0;
            loop {
                match self.attempt(&model, request).await {
                    Ok(completion) => return Ok(completion),
                    Err(Attempt::Final(err)) => return Err(err),
                    Err(Attempt::Retry(err, wait)) => {
                        if attempt >= self.settings.retries {
                            return Err(err);
                        }
                        let wait = wait.unwrap_or_else(|| backoff(attempt, &mut rand::rng()));
                        tracing::debug!(%err, ?wait, attempt, "retrying the upstream");
                        tokio::time::sleep(wait.min(MAX_BACKOFF)).await;
                        attempt += 1;
                    }
                }
            }
        })
    }
}

const BASE_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Exponential backoff with full jitter: a random wait up to 200 ms × 2^attempt, so clients that
/// failed together do not retry together.
pub fn backoff(attempt: u32, rng: &mut impl Rng) -> Duration {
    let ceiling = BASE_BACKOFF
        .saturating_mul(2_u32.saturating_pow(attempt))
        .min(MAX_BACKOFF);
    ceiling.mul_f64(rng.random_range(0.0..=1.0))
}

/// The chat-completions request body; the schema goes in `response_format` as llama.cpp and
/// OpenAI both read it.
pub fn chat_body(model: &str, request: &ChatRequest, schema: Option<&Value>) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|message| json!({"role": message.role, "content": message.content}))
        .collect();
    let mut body = json!({
        "model": model,
        "messages": messages,
        "max_tokens": request.max_tokens,
        "temperature": request.sampling.temperature,
        "top_p": request.sampling.top_p,
    });
    if let Some(seed) = request.sampling.seed {
        body["seed"] = json!(seed);
    }
    if let Some(schema) = schema {
        body["response_format"] = json!({
            "type": "json_object",
            "schema": schema,
        });
    }
    body
}

#[derive(Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
}

#[derive(Deserialize)]
struct ModelEntry {
    id: String,
}

#[derive(Deserialize)]
struct ChatAnswer {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

impl ChatAnswer {
    fn into_completion(self) -> Completion {
        let usage = self.usage.unwrap_or_default();
        Completion {
            content: self
                .choices
                .into_iter()
                .next()
                .and_then(|choice| choice.message.content)
                .unwrap_or_default(),
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let mut rng = StdRng::seed_from_u64(1);
        for attempt in 0..10 {
            let wait = backoff(attempt, &mut rng);
            let ceiling = BASE_BACKOFF * 2_u32.pow(attempt);
            assert!(wait <= ceiling.min(MAX_BACKOFF), "{attempt}: {wait:?}");
        }
        let waits: Vec<Duration> = (0..20).map(|_| backoff(3, &mut rng)).collect();
        assert!(waits.windows(2).any(|pair| pair[0] != pair[1]), "jittered");
    }

    #[test]
    fn the_schema_rides_in_response_format() {
        let request = ChatRequest {
            messages: vec![Message {
                role: "user",
                content: "hi".into(),
            }],
            max_tokens: 10,
            schema: None,
            sampling: SamplingParams::GREEDY,
        };
        let schema = json!({"type": "object"});
        let body = chat_body("m", &request, Some(&schema));
        assert_eq!(body["response_format"]["schema"], schema);
        assert_eq!(body["messages"][0]["content"], "hi");
        assert!(
            chat_body("m", &request, None)
                .get("response_format")
                .is_none()
        );
    }
}
