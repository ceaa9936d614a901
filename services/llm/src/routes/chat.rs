//! `POST /v1/chat/completions`: the model behind the service, OpenAI-compatible (non-streaming),
//! so that other tools can use it as a local model server too.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use flashcards_bootstrap::{ApiError, error::ErrorBody, extract::Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{
    LlmState,
    backend::{ChatRequest, SamplingParams},
    pipeline::prompt::Message,
};

/// Tokens an answer may have when the request names no limit.
const DEFAULT_MAX_TOKENS: u32 = 512;
/// The most tokens one answer may have.
const MAX_TOKENS: u32 = 4096;

/// OpenAI's request; fields it has that this service does not use (`n`, `user`, penalties) are
/// accepted and ignored, as other local servers do.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChatCompletionInput {
    /// Ignored: the service answers with its one model (see `GET /v1/models`).
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    /// At most this many tokens (1–4096, default 512).
    pub max_tokens: Option<u32>,
    /// 0 (the default) is greedy; at most 2.
    pub temperature: Option<f64>,
    /// Nucleus sampling, in (0, 1] (default 1).
    pub top_p: Option<f64>,
    pub seed: Option<u64>,
    /// `{"type": "text"}`, or `{"type": "json_schema", "json_schema": {"schema": {...}}}`.
    #[schema(value_type = Option<Object>)]
    pub response_format: Option<Value>,
    /// Must be false or absent: streaming is not served yet.
    pub stream: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletion {
    pub id: String,
    /// Always `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: ChatUsage,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Choice {
    pub index: u32,
    pub message: ChatMessage,
    /// `length` when the answer reached `max_tokens`, else `stop`.
    pub finish_reason: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

#[utoipa::path(post, path = "/v1/chat/completions", tag = "llm", request_body = ChatCompletionInput,
    responses((status = 200, body = ChatCompletion),
        (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "busy, or the model is unavailable; see Retry-After")))]
pub async fn chat_completions(
    State(state): State<LlmState>,
    Json(input): Json<ChatCompletionInput>,
) -> Result<Json<ChatCompletion>, ApiError> {
    state.metrics.request();
    let request = validate(&state, input).inspect_err(|_| {
        state.metrics.error("invalid_request");
    })?;
    let Ok(_permit) = state.slots.clone().try_acquire_owned() else {
        state.metrics.error("overload");
        return Err(ApiError::Unavailable {
            detail: format!(
                "{} generations are already running",
                state.settings.max_concurrent_generations
            ),
            retry_after_secs: Some(1),
        });
    };
    let _active = state.metrics.active();
    let completion = state.backend.complete(&request).await.map_err(|err| {
        state.metrics.error(err.kind());
        ApiError::Unavailable {
            detail: err.to_string(),
            retry_after_secs: Some(5),
        }
    })?;
    let model = state.backend.model().await.unwrap_or_default();
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let finish_reason = if completion.completion_tokens >= u64::from(request.max_tokens) {
        "length"
    } else {
        "stop"
    };
    Ok(Json(ChatCompletion {
        id: format!("chatcmpl-{created}-{:x}", rand::random::<u64>()),
        object: "chat.completion",
        created,
        model,
        choices: vec![Choice {
            index: 0,
            message: ChatMessage {
                role: "assistant".to_owned(),
                content: completion.content,
            },
            finish_reason,
        }],
        usage: ChatUsage {
            prompt_tokens: completion.prompt_tokens,
            completion_tokens: completion.completion_tokens,
            total_tokens: completion.prompt_tokens + completion.completion_tokens,
        },
    }))
}

fn validate(state: &LlmState, input: ChatCompletionInput) -> Result<ChatRequest, ApiError> {
    let invalid = |detail: &str| Err(ApiError::Unprocessable(detail.to_owned()));
    if input.stream == Some(true) {
        return invalid("streaming (`stream: true`) is not served yet; ask without it");
    }
    if input.messages.is_empty() {
        return invalid("`messages` is empty");
    }
    let characters: usize = input
        .messages
        .iter()
        .map(|message| message.content.chars().count())
        .sum();
    if characters > state.settings.max_text_chars {
        return invalid(&format!(
            "the messages hold {characters} characters; at most {} are accepted",
            state.settings.max_text_chars
        ));
    }
    let mut messages = Vec::with_capacity(input.messages.len());
    for message in input.messages {
        let role = match message.role.as_str() {
            "system" => "system",
            "user" => "user",
            "assistant" => "assistant",
            other => {
                return invalid(&format!(
                    "role {other:?} is not one of system, user, assistant"
                ));
            }
        };
        messages.push(Message {
            role,
            content: message.content,
        });
    }
    let max_tokens = input.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    if !(1..=MAX_TOKENS).contains(&max_tokens) {
        return invalid(&format!("`max_tokens` must be 1–{MAX_TOKENS}"));
    }
    let temperature = input.temperature.unwrap_or(0.0);
    if !(0.0..=2.0).contains(&temperature) {
        return invalid("`temperature` must be 0–2");
    }
    let top_p = input.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return invalid("`top_p` must be in (0, 1]");
    }
    let schema = match input.response_format {
        None => None,
        Some(format) => match format["type"].as_str() {
            Some("text") => None,
            Some("json_schema") => match &format["json_schema"]["schema"] {
                Value::Object(_) => Some(format["json_schema"]["schema"].clone()),
                _ => return invalid("`response_format.json_schema.schema` must be an object"),
            },
            _ => return invalid("`response_format.type` must be `text` or `json_schema`"),
        },
    };
    // A schema the model is not held to would be a promise the answer may break.
    if schema.is_some() && !state.backend.enforces_schema() {
        return invalid(
            "this model runs without schema-constrained decoding yet; ask without \
             `response_format` and check the answer",
        );
    }
    Ok(ChatRequest {
        messages,
        max_tokens,
        schema,
        sampling: SamplingParams {
            temperature,
            top_p,
            seed: input.seed,
        },
    })
}
