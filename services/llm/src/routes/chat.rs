//! `POST /v1/chat/completions`: the model behind the service, OpenAI-compatible (whole answers
//! or server-sent events), so that other tools can use it as a local model server too.

use std::{
    convert::Infallible,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    extract::State,
    response::{
        IntoResponse, Response,
        sse::{Event, Sse},
    },
};
use flashcards_bootstrap::{ApiError, error::ErrorBody, extract::Json};
use futures::{Stream, StreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use utoipa::ToSchema;

use crate::{
    LlmState,
    backend::{ChatRequest, Completion, SamplingParams},
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
    /// Answer as server-sent events (`text/event-stream`), a chunk per piece of text.
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
    responses((status = 200, body = ChatCompletion,
            description = "the answer; with `stream: true`, `text/event-stream` chunks instead"),
        (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "busy, or the model is unavailable; see Retry-After")))]
pub async fn chat_completions(
    State(state): State<LlmState>,
    Json(input): Json<ChatCompletionInput>,
) -> Result<Response, ApiError> {
    state.metrics.request();
    let streaming = input.stream == Some(true);
    let request = validate(&state, input).inspect_err(|_| {
        state.metrics.error("invalid_request");
    })?;
    let permit = state.slot()?;
    let model = state.backend.model().await.unwrap_or_default();
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let id = format!("chatcmpl-{created}-{:x}", rand::random::<u64>());
    if streaming {
        return Ok(streamed(state, request, permit, Chunks { id, created, model }).into_response());
    }
    let _permit = permit;
    let _active = state.metrics.active();
    let completion = state.backend.complete(&request).await.map_err(|err| {
        state.metrics.error(err.kind());
        ApiError::Unavailable {
            detail: err.to_string(),
            retry_after_secs: Some(5),
        }
    })?;
    let finish_reason = finish_reason(&completion, &request);
    Ok(Json(ChatCompletion {
        id,
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
    })
    .into_response())
}

/// `length` when the answer used every token it was allowed, else `stop`.
fn finish_reason(completion: &Completion, request: &ChatRequest) -> &'static str {
    if completion.completion_tokens >= u64::from(request.max_tokens) {
        "length"
    } else {
        "stop"
    }
}

/// What every chunk of a streamed answer repeats.
struct Chunks {
    id: String,
    created: u64,
    model: String,
}

impl Chunks {
    fn event(&self, delta: &Value, finish_reason: Option<&str>) -> Event {
        Event::default().data(
            json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            })
            .to_string(),
        )
    }
}

/// What the generating task tells the stream.
enum Streamed {
    Piece(String),
    /// The finish reason.
    Finished(&'static str),
    Failed(String),
}

/// Stops the generating task when the stream is dropped (the client went away).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The answer as server-sent events, OpenAI's way: a chunk naming the role, a chunk per piece of
/// text, a last chunk with the finish reason, then `[DONE]`; an error midway is an `error` event.
/// The generation runs in a task of its own, stopped when the client goes away.
fn streamed(
    state: LlmState,
    request: ChatRequest,
    permit: OwnedSemaphorePermit,
    chunks: Chunks,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (events, received) = mpsc::channel::<Streamed>(64);
    let task = tokio::spawn(async move {
        let _permit = permit;
        let _active = state.metrics.active();
        let (pieces, mut pieced) = mpsc::channel::<String>(64);
        let relay = async {
            while let Some(piece) = pieced.recv().await {
                if events.send(Streamed::Piece(piece)).await.is_err() {
                    break;
                }
            }
        };
        let (result, ()) = tokio::join!(state.backend.complete_streaming(&request, pieces), relay);
        let last = match result {
            Ok(completion) => Streamed::Finished(finish_reason(&completion, &request)),
            Err(err) => {
                state.metrics.error(err.kind());
                Streamed::Failed(err.to_string())
            }
        };
        // A client that went away wants nothing more.
        let _ = events.send(last).await;
    });
    let guard = AbortOnDrop(task);
    let first = chunks.event(&json!({"role": "assistant", "content": ""}), None);
    let rest = stream::unfold(
        (received, guard, chunks, false),
        |(mut received, guard, chunks, finished)| async move {
            if finished {
                return None;
            }
            let (events, finished) = match received.recv().await? {
                Streamed::Piece(piece) => {
                    (vec![chunks.event(&json!({"content": piece}), None)], false)
                }
                Streamed::Finished(reason) => (
                    vec![
                        chunks.event(&json!({}), Some(reason)),
                        Event::default().data("[DONE]"),
                    ],
                    true,
                ),
                Streamed::Failed(message) => (
                    vec![
                        Event::default()
                            .event("error")
                            .data(json!({"error": {"message": message}}).to_string()),
                    ],
                    true,
                ),
            };
            Some((stream::iter(events), (received, guard, chunks, finished)))
        },
    )
    .flatten();
    Sse::new(stream::once(async { first }).chain(rest).map(Ok))
}

fn validate(state: &LlmState, input: ChatCompletionInput) -> Result<ChatRequest, ApiError> {
    let invalid = |detail: &str| Err(ApiError::Unprocessable(detail.to_owned()));
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
    if let Some(reason) = schema
        .as_ref()
        .and_then(|schema| state.backend.schema_error(schema))
    {
        return invalid(&format!("`response_format.json_schema.schema`: {reason}"));
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
