//! The prompt per chunk. Templates are versioned in code: a change of wording is a new
//! [`PROMPT_VERSION`], reported with every answer so results can be compared across versions.
//!
//! Small models copy the shape of an example far better than they follow a description, so the
//! prompt shows one worked example (a different topic) before the real text, and asks for the
//! source sentence (`quote`) first: writing it before the card anchors the card in the text.

use serde_json::json;

use super::cards::CardKind;

pub const PROMPT_VERSION: &str = "cards-v3";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

const EXAMPLE_TEXT: &str = "The heart pumps blood through the body. It has four chambers. \
                            Arteries carry blood away from the heart.";

/// The chat messages asking for up to `max_cards` cards of the given kinds from `chunk`.
pub fn messages(
    chunk: &str,
    max_cards: usize,
    kinds: &[CardKind],
    language: Option<&str>,
) -> Vec<Message> {
    let basic = kinds.contains(&CardKind::Basic);
    let cloze = kinds.contains(&CardKind::Cloze);
    let mut rules = String::from(
        "You make flashcards from a text. For each card, copy one sentence of the text into \
         \"quote\", then write a card that tests one fact of that sentence. ",
    );
    if basic {
        rules.push_str(
            "A basic card has a question in \"front\" and the short answer, taken from the \
             sentence, in \"back\"; the question must not contain the answer. ",
        );
    }
    if cloze {
        rules.push_str(
            "A cloze card has the sentence in \"text\" with its key term written as {{c1::term}}. ",
        );
    }
    rules.push_str("Use only facts from the text. Keep math in \\( \\) or \\[ \\]. ");
    match language {
        Some(language) => rules.push_str(&format!("Write the cards in {language}. ")),
        None => rules.push_str("Write the cards in the language of the text. "),
    }
    rules.push_str("Reply with JSON only.");

    let heart = json!({
        "quote": "The heart pumps blood through the body.",
        "kind": "basic",
        "front": "What pumps blood through the body?",
        "back": "The heart"
    });
    let chambers_basic = json!({
        "quote": "It has four chambers.",
        "kind": "basic",
        "front": "How many chambers does the heart have?",
        "back": "Four"
    });
    let chambers_cloze = json!({
        "quote": "It has four chambers.",
        "kind": "cloze",
        "text": "The heart has {{c1::four}} chambers."
    });
    let arteries_basic = json!({
        "quote": "Arteries carry blood away from the heart.",
        "kind": "basic",
        "front": "Which vessels carry blood away from the heart?",
        "back": "Arteries"
    });
    let arteries_cloze = json!({
        "quote": "Arteries carry blood away from the heart.",
        "kind": "cloze",
        "text": "{{c1::Arteries}} carry blood away from the heart."
    });
    let example = match (basic, cloze) {
        (true, true) => json!({"cards": [heart, chambers_cloze, arteries_basic]}),
        (false, true) => json!({"cards": [{
            "quote": "The heart pumps blood through the body.",
            "kind": "cloze",
            "text": "The {{c1::heart}} pumps blood through the body."
        }, chambers_cloze, arteries_cloze]}),
        _ => json!({"cards": [heart, chambers_basic, arteries_basic]}),
    };
    vec![
        Message {
            role: "system",
            content: rules,
        },
        Message {
            role: "user",
            content: format!(
                "Make 3 flashcards from this text, one for each fact it states:\n\n{EXAMPLE_TEXT}"
            ),
        },
        Message {
            role: "assistant",
            content: example.to_string(),
        },
        Message {
            role: "user",
            content: format!(
                "Make {max_cards} flashcards from this text, one for each fact it states:\n\n{chunk}"
            ),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_carries_the_text_the_kinds_and_the_language() {
        let cloze = messages("Cells divide.", 3, &[CardKind::Cloze], Some("German"));
        assert_eq!(
            cloze.iter().map(|m| m.role).collect::<Vec<_>>(),
            ["system", "user", "assistant", "user"]
        );
        assert!(cloze[0].content.contains("cloze card"));
        assert!(!cloze[0].content.contains("basic card"));
        assert!(cloze[0].content.contains("in German"));
        assert!(
            !cloze[2].content.contains("\"basic\""),
            "the example shows only cloze"
        );
        assert!(cloze[3].content.ends_with("Cells divide."));
        assert!(cloze[3].content.contains("Make 3 flashcards"));
        let both = messages("x", 1, &[CardKind::Basic, CardKind::Cloze], None);
        assert!(both[0].content.contains("language of the text"));
        assert!(both[2].content.contains("\"basic\"") && both[2].content.contains("\"cloze\""));
    }

    #[test]
    fn the_example_is_valid_output() {
        let both = messages("x", 1, &[CardKind::Basic, CardKind::Cloze], None);
        let cards = super::super::cards::parse_output(&both[2].content).expect("parses");
        assert_eq!(cards.len(), 3);
        assert!(
            cards
                .into_iter()
                .all(|card| card.and_then(super::super::cards::validate).is_ok())
        );
    }
}
