//! The model's answer: finding the JSON in it, the schema it must match, and turning it into
//! candidate cards. Small models wrap JSON in prose or code fences and stop mid-object; each of
//! those is handled or reported, never trusted.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

/// The JSON schema the model is asked to follow (sent as `response_format` where supported). Each
/// kind asked for is its own object shape with every field required, so a grammar-constrained
/// model cannot leave a question or answer out; `quote` comes first, so the source sentence is
/// written before the card.
pub fn output_schema(kinds: &[CardKind]) -> Value {
    let shapes: Vec<Value> = kinds
        .iter()
        .map(|kind| match kind {
            CardKind::Basic => json!({
                "type": "object",
                "properties": {
                    "quote": {"type": "string"},
                    "kind": {"const": "basic"},
                    "front": {"type": "string"},
                    "back": {"type": "string"}
                },
                "required": ["quote", "kind", "front", "back"]
            }),
            CardKind::Cloze => json!({
                "type": "object",
                "properties": {
                    "quote": {"type": "string"},
                    "kind": {"const": "cloze"},
                    "text": {"type": "string"}
                },
                "required": ["quote", "kind", "text"]
            }),
        })
        .collect();
    let items = match <[Value; 1]>::try_from(shapes) {
        Ok([single]) => single,
        Err(shapes) => json!({"anyOf": shapes}),
    };
    json!({
        "type": "object",
        "properties": {"cards": {"type": "array", "items": items}},
        "required": ["cards"]
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CardKind {
    Basic,
    Cloze,
}

/// A card as the model wrote it, before any check.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RawCard {
    pub kind: String,
    #[serde(default)]
    pub front: String,
    #[serde(default)]
    pub back: String,
    #[serde(default)]
    pub text: String,
    /// The sentence of the source the card rests on, as the model copied it.
    #[serde(default)]
    pub quote: String,
}

#[derive(Debug, Deserialize)]
struct RawOutput {
    cards: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    #[error("no JSON object in the model's answer")]
    NoJson,
    #[error("the model's JSON is cut off or malformed: {0}")]
    Malformed(String),
}

/// A card that parsed, with what grounding needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub kind: CardKind,
    /// A basic card's question, or a cloze card's text with `{{c1::...}}` deletions.
    pub front: String,
    /// A basic card's answer; empty for cloze.
    pub back: String,
    pub quote: String,
}

impl Candidate {
    /// What the learner must recall: a basic card's back, a cloze card's deleted texts.
    pub fn answer(&self) -> String {
        match self.kind {
            CardKind::Basic => self.back.clone(),
            CardKind::Cloze => cloze_answers(&self.front).join(" "),
        }
    }
}

/// The first complete JSON object in `output`, skipping prose and code fences around it.
pub fn extract_json(output: &str) -> Result<&str, OutputError> {
    let start = output.find('{').ok_or(OutputError::NoJson)?;
    let mut depth = 0_usize;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, c) in output[start..].char_indices() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(&output[start..=start + offset]);
                }
            }
            _ => {}
        }
    }
    Err(OutputError::Malformed("the object never closes".to_owned()))
}

/// Cards from the model's answer: each item that has the card shape, or the reason it does not.
pub fn parse_output(output: &str) -> Result<Vec<Result<RawCard, String>>, OutputError> {
    let json = extract_json(output)?;
    let parsed: RawOutput =
        serde_json::from_str(json).map_err(|err| OutputError::Malformed(err.to_string()))?;
    Ok(parsed
        .cards
        .into_iter()
        .map(|item| serde_json::from_value::<RawCard>(item).map_err(|err| err.to_string()))
        .collect())
}

/// A raw card checked against its kind: a basic card needs front and back, a cloze card a text
/// with at least one well-formed deletion.
pub fn validate(raw: RawCard) -> Result<Candidate, String> {
    match raw.kind.trim().to_lowercase().as_str() {
        "basic" => Ok(Candidate {
            kind: CardKind::Basic,
            front: raw.front.trim().to_owned(),
            back: raw.back.trim().to_owned(),
            quote: raw.quote,
        }),
        "cloze" => {
            // Some models put the cloze text in `front`.
            let text = if raw.text.trim().is_empty() {
                raw.front
            } else {
                raw.text
            };
            let text = text.trim().to_owned();
            if cloze_answers(&text).is_empty() {
                return Err("a cloze card needs a {{c1::...}} deletion".to_owned());
            }
            Ok(Candidate {
                kind: CardKind::Cloze,
                front: text,
                back: String::new(),
                quote: raw.quote,
            })
        }
        other => Err(format!("unknown card kind {other:?}")),
    }
}

/// The deleted texts of a cloze (`{{c1::answer}}` or `{{c1::answer::hint}}`), in order.
pub fn cloze_answers(text: &str) -> Vec<String> {
    let mut answers = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{c") {
        let after = &rest[open + 3..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        let Some(body) = after[digits..].strip_prefix("::").filter(|_| digits > 0) else {
            rest = &rest[open + 3..];
            continue;
        };
        let Some(close) = body.find("}}") else { break };
        let answer = body[..close].split("::").next().unwrap_or_default().trim();
        if !answer.is_empty() {
            answers.push(answer.to_owned());
        }
        rest = &body[close + 2..];
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_offers_only_the_kinds_asked_for() {
        let basic = output_schema(&[CardKind::Basic]);
        let items = &basic["properties"]["cards"]["items"];
        assert_eq!(items["properties"]["kind"]["const"], "basic");
        assert_eq!(items["required"], json!(["quote", "kind", "front", "back"]));
        let both = output_schema(&[CardKind::Basic, CardKind::Cloze]);
        let shapes = both["properties"]["cards"]["items"]["anyOf"]
            .as_array()
            .expect("anyOf");
        assert_eq!(shapes.len(), 2);
        assert_eq!(shapes[1]["required"], json!(["quote", "kind", "text"]));
    }

    #[test]
    fn json_is_found_inside_prose_and_fences() {
        let output = "Sure! Here are cards:\n```json\n{\"cards\": [{\"kind\": \"basic\", \"front\": \"a {b}\", \"back\": \"c\\\"}\", \"quote\": \"q\"}]}\n```\nHope it helps {x}";
        let json = extract_json(output).expect("found");
        assert!(
            json.starts_with("{\"cards\"") && json.ends_with("]}"),
            "{json}"
        );
        let cards = parse_output(output).expect("parses");
        assert_eq!(cards.len(), 1);
        assert_eq!(cards[0].as_ref().expect("card").back, "c\"}");
    }

    #[test]
    fn truncated_or_missing_json_is_an_error() {
        assert_eq!(extract_json("no json here"), Err(OutputError::NoJson));
        assert!(matches!(
            parse_output("{\"cards\": [{\"kind\": \"basic\", \"front\": \"Wh"),
            Err(OutputError::Malformed(_))
        ));
        assert!(matches!(
            parse_output("{\"deck\": []}"),
            Err(OutputError::Malformed(_))
        ));
    }

    #[test]
    fn items_of_the_wrong_shape_are_reported_one_by_one() {
        let cards = parse_output(
            r#"{"cards": [42, {"kind": "basic", "front": "F", "back": "B", "quote": ""}]}"#,
        )
        .expect("parses");
        assert!(cards[0].is_err());
        assert!(cards[1].is_ok());
    }

    #[test]
    fn validation_by_kind() {
        let raw = |kind: &str, front: &str, text: &str| RawCard {
            kind: kind.into(),
            front: front.into(),
            back: "B".into(),
            text: text.into(),
            quote: String::new(),
        };
        assert_eq!(validate(raw("Basic", " F ", "")).expect("basic").front, "F");
        let cloze = validate(raw(
            "cloze",
            "",
            "The {{c1::heart}} pumps {{c2::blood::fluid}}.",
        ))
        .expect("cloze");
        assert_eq!(cloze.answer(), "heart blood");
        let in_front = validate(raw("cloze", "{{c1::ATP}} is energy", "")).expect("front");
        assert_eq!(in_front.answer(), "ATP");
        assert!(validate(raw("cloze", "", "no deletion")).is_err());
        assert!(validate(raw("essay", "F", "")).is_err());
    }

    #[test]
    fn cloze_answers_skip_malformed_deletions() {
        assert_eq!(
            cloze_answers("{{c::x}} {{c1::}} {{c12::ok}} {{c3::open"),
            ["ok"]
        );
    }
}
