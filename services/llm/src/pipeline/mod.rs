//! Text to flashcards: chunk → prompt → model → parse and validate → ground → filter → de-duplicate.
//! Every step but the model call is a pure function in its own module.

pub mod cards;
pub mod chunk;
pub mod ground;
pub mod prompt;
pub mod quality;
pub mod text;

use serde::Serialize;
use utoipa::ToSchema;

use crate::backend::{BackendError, ChatRequest, ModelBackend};
use cards::{Candidate, CardKind};

/// Tokens the model may write per chunk: room for about a dozen cards.
pub const MAX_TOKENS_PER_CHUNK: u32 = 768;

/// Character offsets into the request text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Card {
    pub kind: CardKind,
    /// A basic card's question.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub front: Option<String>,
    /// A basic card's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub back: Option<String>,
    /// A cloze card's text with `{{c1::...}}` deletions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The part of the request text that supports the answer.
    pub source: Span,
}

impl Card {
    fn from_candidate(candidate: Candidate, source: Span) -> Self {
        match candidate.kind {
            CardKind::Basic => Self {
                kind: CardKind::Basic,
                front: Some(candidate.front),
                back: Some(candidate.back),
                text: None,
                source,
            },
            CardKind::Cloze => Self {
                kind: CardKind::Cloze,
                front: None,
                back: None,
                text: Some(candidate.front),
                source,
            },
        }
    }
}

/// Something the pipeline did not keep, and why.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Dropped {
    /// `invalid_output`, `wrong_kind`, `ungrounded`, `empty`, `answer_leak`, `not_atomic`,
    /// `duplicate` or `over_limit`.
    pub reason: &'static str,
    pub detail: String,
    /// The card's question or cloze text, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub front: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub back: Option<String>,
}

impl Dropped {
    fn card(reason: &'static str, detail: impl Into<String>, card: &Candidate) -> Self {
        Self {
            reason,
            detail: detail.into(),
            front: Some(card.front.clone()),
            back: (!card.back.is_empty()).then(|| card.back.clone()),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Model calls made (one per chunk).
    pub calls: u64,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub text: String,
    pub max_cards: usize,
    pub kinds: Vec<CardKind>,
    pub language: Option<String>,
    pub chunk_chars: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Generation {
    pub cards: Vec<Card>,
    pub dropped: Vec<Dropped>,
    pub usage: Usage,
    /// Chunks whose model output could not be read at all.
    pub invalid_outputs: usize,
}

/// Runs the pipeline; the model is the only I/O, and a failed call fails the whole generation.
pub async fn generate(
    backend: &dyn ModelBackend,
    request: &Request,
) -> Result<Generation, BackendError> {
    let chunks = chunk::split(&request.text, request.chunk_chars);
    let per_chunk = request.max_cards.div_ceil(chunks.len().max(1)).max(1);
    let mut generation = Generation::default();
    let mut kept: Vec<(Candidate, Span)> = Vec::new();
    for chunk in &chunks {
        let messages = prompt::messages(
            &chunk.text,
            per_chunk,
            &request.kinds,
            request.language.as_deref(),
        );
        let completion = backend
            .complete(&ChatRequest {
                messages,
                max_tokens: MAX_TOKENS_PER_CHUNK,
                schema: Some(cards::output_schema(&request.kinds)),
            })
            .await?;
        generation.usage.prompt_tokens += completion.prompt_tokens;
        generation.usage.completion_tokens += completion.completion_tokens;
        generation.usage.calls += 1;
        let outcome = review_output(&completion.content, chunk, &request.kinds);
        generation.invalid_outputs += usize::from(outcome.unreadable);
        generation.dropped.extend(outcome.dropped);
        kept.extend(outcome.kept);
    }
    finish(&mut generation, kept, request.max_cards);
    Ok(generation)
}

/// What one chunk's model output yields.
#[derive(Debug, Default)]
pub struct ChunkOutcome {
    pub kept: Vec<(Candidate, Span)>,
    pub dropped: Vec<Dropped>,
    /// The output held no readable JSON at all.
    pub unreadable: bool,
}

/// Parses, validates, grounds and filters one chunk's output.
pub fn review_output(output: &str, chunk: &chunk::Chunk, kinds: &[CardKind]) -> ChunkOutcome {
    let mut outcome = ChunkOutcome::default();
    let items = match cards::parse_output(output) {
        Ok(items) => items,
        Err(err) => {
            outcome.unreadable = true;
            outcome.dropped.push(Dropped {
                reason: "invalid_output",
                detail: err.to_string(),
                front: None,
                back: None,
            });
            return outcome;
        }
    };
    for item in items {
        let candidate = match item.and_then(cards::validate) {
            Ok(candidate) => candidate,
            Err(detail) => {
                outcome.dropped.push(Dropped {
                    reason: "invalid_output",
                    detail,
                    front: None,
                    back: None,
                });
                continue;
            }
        };
        let candidate = Candidate {
            front: quality::mathjax(&candidate.front),
            back: quality::mathjax(&candidate.back),
            ..candidate
        };
        if !kinds.contains(&candidate.kind) {
            outcome.dropped.push(Dropped::card(
                "wrong_kind",
                format!("{:?} cards were not asked for", candidate.kind),
                &candidate,
            ));
            continue;
        }
        let Some((start, end)) = ground::ground(&candidate, chunk) else {
            outcome.dropped.push(Dropped::card(
                "ungrounded",
                "no sentence of the text supports the answer",
                &candidate,
            ));
            continue;
        };
        if let Some(rejection) = quality::check(&candidate) {
            outcome.dropped.push(Dropped::card(
                rejection.reason(),
                "filtered out",
                &candidate,
            ));
            continue;
        }
        outcome.kept.push((candidate, Span { start, end }));
    }
    outcome
}

/// De-duplicates across chunks and keeps at most `max_cards`.
fn finish(generation: &mut Generation, kept: Vec<(Candidate, Span)>, max_cards: usize) {
    let candidates: Vec<Candidate> = kept.iter().map(|(card, _)| card.clone()).collect();
    let repeats = quality::duplicates(&candidates);
    for ((candidate, span), repeated) in kept.into_iter().zip(repeats) {
        if repeated {
            generation.dropped.push(Dropped::card(
                "duplicate",
                "repeats an earlier card",
                &candidate,
            ));
        } else if generation.cards.len() >= max_cards {
            generation.dropped.push(Dropped::card(
                "over_limit",
                format!("max_cards is {max_cards}"),
                &candidate,
            ));
        } else {
            generation.cards.push(Card::from_candidate(candidate, span));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "Mitochondria produce most of the cell's ATP. Ribosomes build proteins.";

    fn whole() -> chunk::Chunk {
        chunk::split(TEXT, 1000).remove(0)
    }

    #[test]
    fn a_chunk_output_is_sorted_into_kept_and_dropped_with_reasons() {
        let output = r#"Here you go: {"cards": [
            {"kind": "basic", "front": "What builds proteins?", "back": "Ribosomes", "quote": "Ribosomes build proteins."},
            {"kind": "basic", "front": "What is the capital of France?", "back": "Paris", "quote": ""},
            {"kind": "basic", "front": "Do ribosomes build proteins?", "back": "ribosomes", "quote": ""},
            {"kind": "cloze", "text": "{{c1::Mitochondria}} produce most of the cell's ATP.", "quote": ""},
            {"kind": "poem", "quote": ""}
        ]}"#;
        let outcome = review_output(output, &whole(), &[CardKind::Basic, CardKind::Cloze]);
        let reasons: Vec<&str> = outcome.dropped.iter().map(|d| d.reason).collect();
        assert_eq!(reasons, ["ungrounded", "answer_leak", "invalid_output"]);
        assert_eq!(outcome.kept.len(), 2);
        let (_, span) = &outcome.kept[0];
        assert_eq!(&TEXT[span.start..span.end], "Ribosomes build proteins.");
        assert!(!outcome.unreadable);
    }

    #[test]
    fn spans_stay_inside_the_chunk_whatever_the_model_claims() {
        let text = "Intro.\n\nÜber alles: Die Zelle teilt sich. Der Kern enthält die DNA.";
        let chunks = chunk::split(text, 30);
        let chunk = chunks.last().expect("a chunk");
        let output = r#"{"cards": [
            {"kind": "basic", "front": "Was enthält der Kern?", "back": "die DNA", "quote": "Der Kern enthält die DNA. And more the model made up."},
            {"kind": "basic", "front": "Was teilt sich?", "back": "Die Zelle", "quote": "ignored"},
            {"kind": "basic", "front": "x", "back": "y", "quote": "z", "start": -5, "end": 9999}
        ]}"#;
        let outcome = review_output(output, chunk, &[CardKind::Basic]);
        let chars: Vec<char> = text.chars().collect();
        for (card, span) in &outcome.kept {
            assert!(
                chunk.start <= span.start && span.end <= chunk.end,
                "{span:?}"
            );
            let supported: String = chars[span.start..span.end].iter().collect();
            assert!(supported.contains(card.back.as_str()), "{supported:?}");
        }
        assert!(!outcome.kept.is_empty());
    }

    #[test]
    fn kinds_not_asked_for_and_unreadable_output_are_reported() {
        let output = r#"{"cards": [{"kind": "cloze", "text": "{{c1::Ribosomes}} build proteins.", "quote": ""}]}"#;
        let outcome = review_output(output, &whole(), &[CardKind::Basic]);
        assert_eq!(outcome.dropped[0].reason, "wrong_kind");
        let outcome = review_output("{\"cards\": [{\"kind\": \"ba", &whole(), &[CardKind::Basic]);
        assert!(outcome.unreadable);
        assert_eq!(outcome.dropped[0].reason, "invalid_output");
    }

    #[test]
    fn duplicates_and_cards_over_the_limit_are_dropped_last() {
        let card = |front: &str, back: &str| {
            (
                Candidate {
                    kind: CardKind::Basic,
                    front: front.into(),
                    back: back.into(),
                    quote: String::new(),
                },
                Span { start: 0, end: 1 },
            )
        };
        let mut generation = Generation::default();
        finish(
            &mut generation,
            vec![
                card("What builds proteins?", "Ribosomes"),
                card("What builds proteins", "ribosomes"),
                card("What makes ATP?", "Mitochondria"),
                card("Where is DNA?", "Nucleus"),
            ],
            2,
        );
        assert_eq!(generation.cards.len(), 2);
        let reasons: Vec<&str> = generation.dropped.iter().map(|d| d.reason).collect();
        assert_eq!(reasons, ["duplicate", "over_limit"]);
    }
}
