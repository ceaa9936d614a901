//! `POST /v1/generate`, `GET /v1/models` and (in [`chat`]) `POST /v1/chat/completions`.

pub mod chat;

use std::time::Instant;

use axum::extract::State;
use flashcards_bootstrap::{ApiError, error::ErrorBody, extract::Json};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    LlmState,
    backend::BackendError,
    pipeline::{self, cards::CardKind, prompt::PROMPT_VERSION},
    tracking::{self, Generated},
};

pub fn router() -> OpenApiRouter<LlmState> {
    OpenApiRouter::new()
        .routes(routes!(generate))
        .routes(routes!(models))
        .routes(routes!(chat::chat_completions))
}

pub const DEFAULT_MAX_CARDS: usize = 10;
pub const MAX_CARDS: usize = 100;
const MAX_LANGUAGE_CHARS: usize = 40;

pub use flashcards_contracts::llm::{GenerateInput, GenerateOutput};

#[utoipa::path(post, path = "/v1/generate", tag = "llm", request_body = GenerateInput,
    responses((status = 200, body = GenerateOutput),
        (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "busy, or the model upstream is down; see Retry-After")))]
async fn generate(
    State(state): State<LlmState>,
    Json(input): Json<GenerateInput>,
) -> Result<Json<GenerateOutput>, ApiError> {
    let received = Instant::now();
    state.metrics.request();
    let request = match validate(&state, input) {
        Ok(request) => request,
        Err(err) => {
            state.metrics.error("invalid_request");
            log_run(&state, None, "invalid_request", received, Err(&err));
            return Err(err);
        }
    };
    let _permit = match state.slot() {
        Ok(permit) => permit,
        Err(err) => {
            log_run(&state, Some(&request), "overload", received, Err(&err));
            return Err(err);
        }
    };
    // Dropped with this future when the client disconnects, which also drops the upstream call.
    let _active = state.metrics.active();
    let started = Instant::now();
    let result = pipeline::generate(state.backend.as_ref(), &request).await;
    let generation = match result {
        Ok(generation) => generation,
        Err(err) => {
            state.metrics.error(err.kind());
            tracing::warn!(%err, "generation failed");
            let answer = unavailable(&err);
            log_run(&state, Some(&request), err.kind(), received, Err(&answer));
            return Err(answer);
        }
    };
    for _ in 0..generation.invalid_outputs {
        state.metrics.error("invalid_output");
    }
    let model = state.backend.model().await.unwrap_or_default();
    state
        .metrics
        .finished(started.elapsed().as_secs_f64(), generation.cards.len());
    log_run(
        &state,
        Some(&request),
        "success",
        received,
        Ok(Generated {
            model: &model,
            generation: &generation,
        }),
    );
    Ok(Json(GenerateOutput {
        cards: generation.cards,
        model,
        prompt_version: PROMPT_VERSION.into(),
        usage: generation.usage,
        dropped: generation.dropped,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    }))
}

/// Queues the request's MLflow run; builds nothing when logging is off.
fn log_run(
    state: &LlmState,
    request: Option<&pipeline::Request>,
    outcome: &'static str,
    received: Instant,
    result: Result<Generated<'_>, &ApiError>,
) {
    state.mlflow.log(|| {
        tracking::record(
            request,
            state.backend.kind(),
            outcome,
            received.elapsed(),
            result,
        )
    });
}

fn unavailable(err: &BackendError) -> ApiError {
    ApiError::Unavailable {
        detail: err.to_string(),
        retry_after_secs: Some(5),
    }
}

fn validate(state: &LlmState, input: GenerateInput) -> Result<pipeline::Request, ApiError> {
    let settings = &state.settings;
    let length = input.text.chars().count();
    if input.text.trim().is_empty() {
        return Err(ApiError::invalid("text", "must not be empty"));
    }
    if length > settings.max_text_chars {
        return Err(ApiError::invalid(
            "text",
            format!(
                "is {length} characters; the limit is {}",
                settings.max_text_chars
            ),
        ));
    }
    let max_cards = input.max_cards.unwrap_or(DEFAULT_MAX_CARDS);
    if !(1..=MAX_CARDS).contains(&max_cards) {
        return Err(ApiError::invalid(
            "max_cards",
            format!("must be between 1 and {MAX_CARDS}"),
        ));
    }
    let mut kinds = input
        .kinds
        .unwrap_or_else(|| vec![CardKind::Basic, CardKind::Cloze]);
    kinds.sort_by_key(|kind| *kind == CardKind::Cloze);
    kinds.dedup();
    if kinds.is_empty() {
        return Err(ApiError::invalid("kinds", "must name basic, cloze or both"));
    }
    let language = input
        .language
        .map(|language| language.trim().to_owned())
        .filter(|language| !language.is_empty());
    if let Some(language) = &language
        && (language.chars().count() > MAX_LANGUAGE_CHARS
            || !language
                .chars()
                .all(|c| c.is_alphabetic() || c == ' ' || c == '-'))
    {
        return Err(ApiError::invalid(
            "language",
            "must be a language name such as German",
        ));
    }
    Ok(pipeline::Request {
        text: input.text,
        max_cards,
        kinds,
        language,
    })
}

/// The service's model, in OpenAI's list shape (`object`, `data`) for tools that speak it, and
/// with the backend and prompt version for ours.
#[derive(Debug, Serialize, ToSchema)]
pub struct Models {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<OpenAiModel>,
    pub models: Vec<ModelInfo>,
    pub prompt_version: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiModel {
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// Always `flashcards`.
    pub owned_by: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelInfo {
    pub id: String,
    /// Where completions come from: `local` (a model file run in process) or an
    /// `openai-compatible` upstream.
    pub backend: &'static str,
}

#[utoipa::path(get, path = "/v1/models", tag = "llm",
    responses((status = 200, body = Models), (status = 503, body = ErrorBody)))]
async fn models(State(state): State<LlmState>) -> Result<Json<Models>, ApiError> {
    let id = state
        .backend
        .model()
        .await
        .map_err(|err| unavailable(&err))?;
    Ok(Json(Models {
        object: "list",
        data: vec![OpenAiModel {
            id: id.clone(),
            object: "model",
            owned_by: "flashcards",
        }],
        models: vec![ModelInfo {
            id,
            backend: state.backend.kind(),
        }],
        prompt_version: PROMPT_VERSION,
    }))
}
