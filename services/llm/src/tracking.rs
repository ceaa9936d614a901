//! What the LLM service logs to MLflow: one run per `POST /v1/generate`, in the `flashcards-llm`
//! experiment, refused and failed generations included.
//!
//! A run per generation, as MLflow params are fixed per run and the asked card count, kinds and
//! language differ per request; a generation takes seconds, so the REST calls cost nothing beside it.
//!
//! - params: `model` (when it answered), `backend`, `temperature`, `prompt_version`,
//!   `max_tokens_per_card`, `max_cards`, `kinds`, `language`;
//! - metrics: `duration_seconds`, `input_chars`, and for a generation that ran `model_calls`,
//!   `cards_generated`, `cards_dropped`, `cards_dropped_quality` (the quality filter's reasons),
//!   `cards_dropped_<reason>` for every reason, `invalid_outputs`, `prompt_tokens`,
//!   `completion_tokens` and `completion_tokens_per_second`;
//! - tags: `outcome` (`success` or `llm_generation_errors_total`'s type), `service.version`, and
//!   on failure `error_type` and `error_detail`.

use std::time::Duration;

use flashcards_bootstrap::{ApiError, mlflow::RunRecord};

use crate::{
    backend::TEMPERATURE,
    pipeline::{
        Generation, Request,
        cards::CardKind,
        prompt::{MAX_TOKENS_PER_CARD, PROMPT_VERSION},
    },
};

/// Every reason a card is dropped for, with its metric.
const DROP_REASONS: [(&str, &str); 10] = [
    ("ungrounded", "cards_dropped_ungrounded"),
    ("empty", "cards_dropped_empty"),
    ("answer_leak", "cards_dropped_answer_leak"),
    ("not_atomic", "cards_dropped_not_atomic"),
    ("not_a_question", "cards_dropped_not_a_question"),
    ("vague", "cards_dropped_vague"),
    ("example_copy", "cards_dropped_example_copy"),
    ("answer_mismatch", "cards_dropped_answer_mismatch"),
    ("duplicate", "cards_dropped_duplicate"),
    ("invalid_output", "cards_dropped_invalid_output"),
];

/// The quality filter's reasons (see `pipeline::quality`).
const QUALITY_REASONS: [&str; 7] = [
    "empty",
    "answer_leak",
    "not_atomic",
    "not_a_question",
    "vague",
    "example_copy",
    "answer_mismatch",
];

/// What came of a generation that ran: the model's name and the pipeline's result.
pub struct Generated<'a> {
    pub model: &'a str,
    pub generation: &'a Generation,
}

/// The run of one request: `request` once it was valid, `outcome` as counted in the metrics.
pub fn record(
    request: Option<&Request>,
    backend: &str,
    outcome: &'static str,
    elapsed: Duration,
    result: Result<Generated<'_>, &ApiError>,
) -> RunRecord {
    let mut record = RunRecord::finished("generate", elapsed)
        .param("backend", backend)
        .param("temperature", TEMPERATURE)
        .param("prompt_version", PROMPT_VERSION)
        .param("max_tokens_per_card", MAX_TOKENS_PER_CARD)
        .metric("duration_seconds", elapsed.as_secs_f64())
        .tag("outcome", outcome)
        .tag("service.version", env!("CARGO_PKG_VERSION"));
    if let Some(request) = request {
        record = asked(record, request);
    }
    match result {
        Ok(generated) => ran(record, &generated, elapsed),
        Err(error) => record
            .tag("error_type", outcome)
            .tag("error_detail", error.to_string())
            .failed(),
    }
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn asked(record: RunRecord, request: &Request) -> RunRecord {
    let kinds: Vec<&str> = request
        .kinds
        .iter()
        .map(|kind| match kind {
            CardKind::Basic => "basic",
            CardKind::Cloze => "cloze",
        })
        .collect();
    record
        .param("max_cards", request.max_cards)
        .param("kinds", kinds.join(","))
        .param("language", request.language.as_deref().unwrap_or("auto"))
        .metric("input_chars", request.text.chars().count() as f64)
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn ran(record: RunRecord, generated: &Generated<'_>, elapsed: Duration) -> RunRecord {
    let generation = generated.generation;
    let dropped = |reason: &str| {
        generation
            .dropped
            .iter()
            .filter(|dropped| dropped.reason == reason)
            .count()
    };
    let usage = generation.usage;
    let mut record = record
        .param("model", generated.model)
        .metric("model_calls", usage.calls as f64)
        .metric("cards_generated", generation.cards.len() as f64)
        .metric("cards_dropped", generation.dropped.len() as f64)
        .metric(
            "cards_dropped_quality",
            QUALITY_REASONS
                .iter()
                .map(|reason| dropped(reason))
                .sum::<usize>() as f64,
        )
        .metric("invalid_outputs", generation.invalid_outputs as f64)
        .metric("prompt_tokens", usage.prompt_tokens as f64)
        .metric("completion_tokens", usage.completion_tokens as f64);
    for (reason, key) in DROP_REASONS {
        record = record.metric(key, dropped(reason) as f64);
    }
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        record = record.metric(
            "completion_tokens_per_second",
            usage.completion_tokens as f64 / seconds,
        );
    }
    record
}

#[cfg(test)]
mod tests {
    use flashcards_bootstrap::mlflow::RunStatus;

    use super::*;
    use crate::pipeline::{Card, Dropped, Span, Usage};

    fn request() -> Request {
        Request {
            text: "Zellen teilen sich.".to_owned(),
            max_cards: 5,
            kinds: vec![CardKind::Basic, CardKind::Cloze],
            language: None,
        }
    }

    fn dropped(reason: &'static str) -> Dropped {
        Dropped {
            reason: reason.into(),
            detail: String::new(),
            front: None,
            back: None,
        }
    }

    #[test]
    fn a_generation_logs_model_parameters_and_card_counts() {
        let generation = Generation {
            cards: vec![Card {
                kind: CardKind::Basic,
                front: Some("Was teilt sich?".into()),
                back: Some("Zellen".into()),
                text: None,
                source: Span { start: 0, end: 19 },
            }],
            dropped: vec![
                dropped("ungrounded"),
                dropped("ungrounded"),
                dropped("answer_leak"),
                dropped("duplicate"),
            ],
            usage: Usage {
                prompt_tokens: 300,
                completion_tokens: 80,
                calls: 1,
            },
            invalid_outputs: 0,
        };
        let record = record(
            Some(&request()),
            "openai-compatible",
            "success",
            Duration::from_secs(2),
            Ok(Generated {
                model: "SmolLM2-135M-Instruct",
                generation: &generation,
            }),
        );
        assert_eq!(record.status, RunStatus::Finished);
        assert_eq!(record.param_value("model"), Some("SmolLM2-135M-Instruct"));
        assert_eq!(record.param_value("backend"), Some("openai-compatible"));
        assert_eq!(record.param_value("temperature"), Some("0"));
        assert_eq!(record.param_value("prompt_version"), Some(PROMPT_VERSION));
        assert_eq!(record.param_value("max_cards"), Some("5"));
        assert_eq!(record.param_value("kinds"), Some("basic,cloze"));
        assert_eq!(record.param_value("language"), Some("auto"));
        assert_eq!(record.metric_value("duration_seconds"), Some(2.0));
        assert_eq!(record.metric_value("input_chars"), Some(19.0));
        assert_eq!(record.metric_value("model_calls"), Some(1.0));
        assert_eq!(record.metric_value("cards_generated"), Some(1.0));
        assert_eq!(record.metric_value("cards_dropped"), Some(4.0));
        assert_eq!(record.metric_value("cards_dropped_ungrounded"), Some(2.0));
        assert_eq!(record.metric_value("cards_dropped_quality"), Some(1.0));
        assert_eq!(record.metric_value("cards_dropped_vague"), Some(0.0));
        assert_eq!(
            record.metric_value("completion_tokens_per_second"),
            Some(40.0)
        );
        assert_eq!(record.tag_value("outcome"), Some("success"));
        assert_eq!(record.tag_value("error_type"), None);
    }

    #[test]
    fn a_failed_generation_logs_its_error() {
        let error = ApiError::Unavailable {
            detail: "the model did not answer within 120s".into(),
            retry_after_secs: Some(5),
        };
        let timed_out = record(
            Some(&request()),
            "openai-compatible",
            "timeout",
            Duration::from_secs(120),
            Err(&error),
        );
        assert_eq!(timed_out.status, RunStatus::Failed);
        assert_eq!(timed_out.tag_value("error_type"), Some("timeout"));
        assert_eq!(
            timed_out.tag_value("error_detail"),
            Some("the model did not answer within 120s")
        );
        assert_eq!(timed_out.param_value("model"), None);
        assert_eq!(timed_out.metric_value("cards_generated"), None);

        let invalid = ApiError::invalid("text", "must not be empty");
        let refused = record(
            None,
            "openai-compatible",
            "invalid_request",
            Duration::ZERO,
            Err(&invalid),
        );
        assert_eq!(refused.param_value("max_cards"), None);
        assert_eq!(
            refused.tag_value("error_detail"),
            Some("text: must not be empty")
        );
    }
}
