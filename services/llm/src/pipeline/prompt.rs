//! The prompt for one card's question. Templates are versioned in code: a change of wording is a
//! new [`PROMPT_VERSION`], reported with every answer so results can be compared across versions.
//!
//! The model neither finds the facts nor picks the answer (small models copy the example or pick
//! the wrong thing); it gets one sentence and the answer taken from it, and phrases the question.
//! Small models copy the shape of examples far better than they follow a description, so the
//! prompt shows worked examples of each kind of answer (a named term, a subject, a number, a date,
//! an object) on topics unlike study notes, so that a copy of one is easy to spot. They come
//! first and never change, so a server with a prompt cache reads them once.

use serde_json::{Value, json};

pub const PROMPT_VERSION: &str = "cards-v4";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

/// `(sentence, answer, question)`: the worked examples.
pub const EXAMPLES: [(&str, &str, &str); 5] = [
    (
        "Molten rock below the ground is called magma.",
        "magma",
        "What is molten rock below the ground called?",
    ),
    (
        "Glaciers carve U-shaped valleys into mountains.",
        "Glaciers",
        "What carves U-shaped valleys into mountains?",
    ),
    (
        "Mount Everest rises 8,849 metres above sea level.",
        "8,849 metres",
        "How high does Mount Everest rise above sea level?",
    ),
    (
        "The Great Fire of London broke out in 1666.",
        "1666",
        "When did the Great Fire of London break out?",
    ),
    (
        "Lava cools into basalt, a dark volcanic rock.",
        "basalt",
        "What does lava cool into?",
    ),
];

/// Longest question, in characters, the schema allows.
pub const MAX_QUESTION_CHARS: u64 = 160;

/// Tokens the model may write for one question, with the JSON around it: more than the longest
/// question the schema allows can take when each token carries at least one of its characters, so
/// a schema-constrained answer ends before the limit cuts it.
pub const MAX_TOKENS_PER_CARD: u32 = 192;

fn user(sentence: &str, answer: &str) -> String {
    format!("Sentence: {sentence}\nAnswer: {answer}")
}

/// The chat messages asking for the question that `sentence` answers with `answer`.
pub fn messages(sentence: &str, answer: &str, language: Option<&str>) -> Vec<Message> {
    let mut rules = String::from(
        "You turn a sentence into a flashcard question. The answer is given; it is a phrase of \
         the sentence. Write the question that the sentence answers with exactly that answer, in \
         the sentence's own words. The question must not contain the answer. ",
    );
    if let Some(language) = language {
        rules.push_str(&format!("Write the question in {language}. "));
    }
    rules.push_str("Reply with JSON only.");
    let mut messages = vec![Message {
        role: "system",
        content: rules,
    }];
    for (sentence, answer, question) in EXAMPLES {
        messages.push(Message {
            role: "user",
            content: user(sentence, answer),
        });
        messages.push(Message {
            role: "assistant",
            content: json!({ "question": question }).to_string(),
        });
    }
    messages.push(Message {
        role: "user",
        content: user(sentence, answer),
    });
    messages
}

/// The JSON schema of the reply: one question.
pub fn output_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"question": {"type": "string", "maxLength": MAX_QUESTION_CHARS}},
        "required": ["question"],
        "additionalProperties": false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_ends_with_the_sentence_and_its_answer() {
        let messages = messages("Mitochondria make ATP.", "ATP", Some("German"));
        assert_eq!(messages.len(), 2 + 2 * EXAMPLES.len());
        assert_eq!(messages[0].role, "system");
        assert!(messages[0].content.contains("in German"));
        let last = messages.last().expect("a message");
        assert_eq!(last.role, "user");
        assert_eq!(
            last.content,
            "Sentence: Mitochondria make ATP.\nAnswer: ATP"
        );
        assert!(
            !super::messages("x", "x", None)[0]
                .content
                .contains("Write the question in")
        );
    }

    #[test]
    fn every_example_answers_with_a_phrase_of_its_sentence_and_keeps_it_out_of_the_question() {
        for (sentence, answer, question) in EXAMPLES {
            assert!(sentence.contains(answer), "{sentence}");
            assert!(!question.contains(answer), "{question}");
            assert!(question.ends_with('?'));
        }
        let reply: Value =
            serde_json::from_str(&messages("x", "x", None)[2].content).expect("JSON");
        assert!(reply["question"].is_string());
        assert_eq!(output_schema()["required"], json!(["question"]));
    }
}
