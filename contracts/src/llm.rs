//! The LLM service's `POST /v1/generate`: text in, cards out, each with the span of the text that
//! supports it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where the LLM service makes cards.
pub const GENERATE_PATH: &str = "/v1/generate";

/// A card's kind, as the LLM service makes cards and the backend stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CardKind {
    /// A question (front) and its answer (back).
    #[default]
    Basic,
    /// A text with `{{c1::...}}` deletions (front) and optional extra notes (back).
    Cloze,
}

impl CardKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Basic => "basic",
            Self::Cloze => "cloze",
        }
    }

    /// The kind a stored or sent name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "basic" => Some(Self::Basic),
            "cloze" => Some(Self::Cloze),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateInput {
    /// The text to make cards from (OCR output, notes).
    pub text: String,
    /// At most this many cards (1–100, default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cards: Option<usize>,
    /// Which kinds to make (default both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinds: Option<Vec<CardKind>>,
    /// Language of the cards, e.g. `German` (default: the text's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// Character offsets into the request text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Card {
    pub kind: CardKind,
    /// A basic card's question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub front: Option<String>,
    /// A basic card's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back: Option<String>,
    /// A cloze card's text with `{{c1::...}}` deletions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The part of the request text that supports the answer.
    pub source: Span,
}

/// Something the pipeline did not keep, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Dropped {
    /// `invalid_output`, `ungrounded`, `empty`, `answer_leak`, `not_atomic`, `not_a_question`,
    /// `vague`, `example_copy`, `answer_mismatch` or `duplicate`.
    #[schema(value_type = String)]
    pub reason: Cow<'static, str>,
    pub detail: String,
    /// The card's question or cloze text, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub front: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Model calls made (one per card tried).
    pub calls: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GenerateOutput {
    pub cards: Vec<Card>,
    pub model: String,
    #[schema(value_type = String)]
    pub prompt_version: Cow<'static, str>,
    pub usage: Usage,
    /// Cards and outputs left out, with the reason.
    pub dropped: Vec<Dropped>,
    pub duration_ms: f64,
}
