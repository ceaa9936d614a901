//! What a card is, and the checks an incoming card must pass before it is stored.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cloze;
use crate::partial::{not_null, nullable};
use flashcards_bootstrap::ApiError;

pub const MAX_TEXT_LENGTH: usize = 20_000;
pub const MAX_TAGS: usize = 50;
pub const MAX_TAG_LENGTH: usize = 64;
const MAX_DOCUMENT_ID_LENGTH: usize = 100;

/// One kind of card from the LLM service to the study queue.
pub use flashcards_contracts::llm::CardKind;

/// Where a card came from: a span of a document's text and, optionally, a region of its page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceRef {
    pub document_id: String,
    /// 1-based page number.
    pub page: Option<i64>,
    /// Character offsets into the page text, `start <= end`.
    pub start: Option<i64>,
    pub end: Option<i64>,
    /// `[x, y, width, height]` in page pixels.
    pub bbox: Option<[f64; 4]>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Card {
    pub id: String,
    pub deck_id: String,
    pub kind: CardKind,
    pub front: String,
    pub back: String,
    pub tags: Vec<String>,
    pub source: Option<SourceRef>,
    /// The study items this card makes: `[1]` for a basic card, the cloze numbers for a cloze card.
    pub ordinals: Vec<u32>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCard {
    #[serde(default)]
    pub kind: CardKind,
    pub front: String,
    #[serde(default)]
    pub back: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub source: Option<SourceRef>,
}

/// A partial update: absent fields stay as they are; `"source": null` removes the source, `null`
/// for any other field is refused. Serialized (by the web app), absent fields are left out.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardChanges {
    /// Move the card to another of your decks.
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false)]
    pub deck_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false)]
    pub front: Option<String>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false)]
    pub back: Option<String>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false)]
    pub tags: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<SourceRef>)]
    pub source: Option<Option<SourceRef>>,
}

/// A card's content once validated: what gets stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CardContent {
    pub kind: CardKind,
    pub front: String,
    pub back: String,
    pub tags: Vec<String>,
    pub source: Option<SourceRef>,
}

impl CardContent {
    /// Checks every field and returns the content with tags deduplicated, plus its study ordinals.
    pub fn validate(mut self) -> Result<(Self, Vec<u32>), ApiError> {
        check_text("front", &self.front)?;
        check_text("back", &self.back)?;
        let ordinals = match self.kind {
            CardKind::Basic => {
                if self.front.trim().is_empty() {
                    return Err(ApiError::invalid("front", "must not be empty"));
                }
                if self.back.trim().is_empty() {
                    return Err(ApiError::invalid(
                        "back",
                        "must not be empty for a basic card",
                    ));
                }
                vec![1]
            }
            CardKind::Cloze => cloze::ordinals(&self.front)
                .map_err(|err| ApiError::invalid("front", err))?
                .into_iter()
                .collect(),
        };
        self.tags = check_tags(self.tags)?;
        if let Some(source) = &self.source {
            check_source(source)?;
        }
        Ok((self, ordinals))
    }
}

/// The study ordinals of stored content (already validated when it was written).
pub fn ordinals_of(kind: CardKind, front: &str) -> Vec<u32> {
    match kind {
        CardKind::Basic => vec![1],
        CardKind::Cloze => cloze::ordinals(front)
            .map(|set| set.into_iter().collect())
            .unwrap_or_default(),
    }
}

fn check_text(field: &str, text: &str) -> Result<(), ApiError> {
    if text.chars().count() > MAX_TEXT_LENGTH {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {MAX_TEXT_LENGTH} characters"),
        ));
    }
    Ok(())
}

/// Tags as Anki has them: no spaces inside, no duplicates; order kept.
fn check_tags(tags: Vec<String>) -> Result<Vec<String>, ApiError> {
    if tags.len() > MAX_TAGS {
        return Err(ApiError::invalid(
            "tags",
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    let mut kept: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag = tag.trim().to_owned();
        if tag.is_empty()
            || tag.chars().count() > MAX_TAG_LENGTH
            || tag.chars().any(char::is_whitespace)
        {
            return Err(ApiError::invalid(
                "tags",
                format!("each tag must be 1 to {MAX_TAG_LENGTH} characters without spaces"),
            ));
        }
        if !kept.contains(&tag) {
            kept.push(tag);
        }
    }
    Ok(kept)
}

fn check_source(source: &SourceRef) -> Result<(), ApiError> {
    let id_len = source.document_id.chars().count();
    if id_len == 0 || id_len > MAX_DOCUMENT_ID_LENGTH {
        return Err(ApiError::invalid(
            "source.document_id",
            format!("must be 1 to {MAX_DOCUMENT_ID_LENGTH} characters"),
        ));
    }
    if source.page.is_some_and(|page| page < 1) {
        return Err(ApiError::invalid("source.page", "must be 1 or more"));
    }
    match (source.start, source.end) {
        (Some(start), _) if start < 0 => {
            return Err(ApiError::invalid("source.start", "must not be negative"));
        }
        (Some(start), Some(end)) if end < start => {
            return Err(ApiError::invalid(
                "source.end",
                "must not be before source.start",
            ));
        }
        (None, Some(_)) | (Some(_), None) => {
            return Err(ApiError::invalid(
                "source.start",
                "start and end go together",
            ));
        }
        _ => {}
    }
    if let Some([x, y, width, height]) = source.bbox {
        let finite = [x, y, width, height].iter().all(|v| v.is_finite());
        if !finite || width < 0.0 || height < 0.0 {
            return Err(ApiError::invalid(
                "source.bbox",
                "must be [x, y, width, height] with finite numbers and no negative size",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(kind: CardKind, front: &str, back: &str) -> CardContent {
        CardContent {
            kind,
            front: front.to_owned(),
            back: back.to_owned(),
            tags: vec![],
            source: None,
        }
    }

    fn detail(err: ApiError) -> String {
        err.to_string()
    }

    #[test]
    fn a_basic_card_is_one_item_and_needs_both_sides() {
        let (_, ordinals) = content(CardKind::Basic, "Q", "A")
            .validate()
            .expect("valid");
        assert_eq!(ordinals, [1]);
        let err = content(CardKind::Basic, "Q", " ")
            .validate()
            .expect_err("no back");
        assert!(detail(err).starts_with("back:"));
    }

    #[test]
    fn a_cloze_card_is_one_item_per_number() {
        let (_, ordinals) = content(CardKind::Cloze, "{{c1::a}} {{c2::b}} {{c1::c}}", "")
            .validate()
            .expect("valid");
        assert_eq!(ordinals, [1, 2]);
        let err = content(CardKind::Cloze, "no deletions", "")
            .validate()
            .expect_err("invalid");
        assert!(detail(err).starts_with("front:"));
    }

    #[test]
    fn tags_are_deduplicated_and_checked() {
        let mut c = content(CardKind::Basic, "Q", "A");
        c.tags = vec!["bio".into(), " bio ".into(), "cell::organelle".into()];
        let (c, _) = c.validate().expect("valid");
        assert_eq!(c.tags, ["bio", "cell::organelle"]);
        let mut spaced = content(CardKind::Basic, "Q", "A");
        spaced.tags = vec!["two words".into()];
        assert!(detail(spaced.validate().expect_err("space")).starts_with("tags:"));
    }

    #[test]
    fn source_references_must_make_sense() {
        let source = |page, start, end, bbox| SourceRef {
            document_id: "doc".into(),
            page,
            start,
            end,
            bbox,
        };
        assert!(
            check_source(&source(
                Some(1),
                Some(0),
                Some(10),
                Some([1.0, 2.0, 3.0, 4.0])
            ))
            .is_ok()
        );
        assert!(check_source(&source(Some(0), None, None, None)).is_err());
        assert!(check_source(&source(None, Some(5), Some(2), None)).is_err());
        assert!(check_source(&source(None, Some(5), None, None)).is_err());
        assert!(check_source(&source(None, None, None, Some([0.0, 0.0, -1.0, 1.0]))).is_err());
    }

    #[test]
    fn null_source_differs_from_absent_source() {
        let absent: CardChanges = serde_json::from_str("{}").expect("json");
        assert_eq!(absent.source, None);
        let cleared: CardChanges = serde_json::from_str(r#"{"source": null}"#).expect("json");
        assert_eq!(cleared.source, Some(None));
    }

    #[test]
    fn oversized_text_is_rejected() {
        let long = "x".repeat(MAX_TEXT_LENGTH + 1);
        assert!(
            detail(
                content(CardKind::Basic, &long, "A")
                    .validate()
                    .expect_err("long")
            )
            .starts_with("front:")
        );
    }
}
