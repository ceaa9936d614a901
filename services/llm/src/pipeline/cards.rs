//! The model's reply for one card and the card made from it. Small models wrap JSON in prose or
//! code fences and stop mid-object; each of those is reported, never trusted.

use serde::Deserialize;

pub use flashcards_contracts::llm::CardKind;

/// What the model wrote for one sentence: its question.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Reply {
    pub question: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    #[error("no JSON object in the model's answer")]
    NoJson,
    #[error("the model's JSON is cut off or malformed: {0}")]
    Malformed(String),
}

/// A card before the quality checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub kind: CardKind,
    /// A basic card's question, or a cloze card's text with `{{c1::...}}` deletions.
    pub front: String,
    /// A basic card's answer; empty for cloze.
    pub back: String,
}

impl Candidate {
    pub fn basic(question: &str, answer: &str) -> Self {
        Self {
            kind: CardKind::Basic,
            front: question.trim().to_owned(),
            back: answer.trim().to_owned(),
        }
    }

    /// The sentence with the first occurrence of `answer` (any case) deleted, or `None` when the
    /// sentence does not hold it.
    pub fn cloze(sentence: &str, answer: &str) -> Option<Self> {
        let (at, end) = find_ignoring_case(sentence, answer.trim())?;
        // `}}` inside the deletion, or a `}` ending it, would close it early (math like
        // `\sqrt{b^{2}}`); TeX ignores the space that keeps the braces apart, as Anki advises.
        let mut deleted = sentence[at..end].replace("}}", "} }");
        if deleted.ends_with('}') {
            deleted.push(' ');
        }
        Some(Self {
            kind: CardKind::Cloze,
            front: format!(
                "{}{{{{c1::{deleted}}}}}{}",
                &sentence[..at],
                &sentence[end..]
            ),
            back: String::new(),
        })
    }

    /// What the learner must recall: a basic card's back, a cloze card's deleted texts.
    pub fn answer(&self) -> String {
        match self.kind {
            CardKind::Basic => self.back.clone(),
            CardKind::Cloze => cloze_answers(&self.front).join(" "),
        }
    }
}

/// The byte range of the first occurrence of `needle` in `haystack`, compared character by
/// character without case.
pub fn find_ignoring_case(haystack: &str, needle: &str) -> Option<(usize, usize)> {
    let needle: Vec<char> = needle.chars().collect();
    if needle.is_empty() {
        return None;
    }
    haystack.char_indices().find_map(|(at, _)| {
        let mut chars = haystack[at..].char_indices();
        let mut end = at;
        for wanted in &needle {
            match chars.next() {
                Some((offset, c)) if c.to_lowercase().eq(wanted.to_lowercase()) => {
                    end = at + offset + c.len_utf8();
                }
                _ => return None,
            }
        }
        Some((at, end))
    })
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

/// The reply in the model's answer.
pub fn parse_reply(output: &str) -> Result<Reply, OutputError> {
    let json = extract_json(output)?;
    serde_json::from_str(json).map_err(|err| OutputError::Malformed(err.to_string()))
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
    fn the_reply_is_found_inside_prose_and_fences() {
        let output = "Sure!\n```json\n{\"question\": \"c\\\"}?\"}\n```\nHope it helps {x}";
        let json = extract_json(output).expect("found");
        assert!(
            json.starts_with("{\"question\"") && json.ends_with("\"}"),
            "{json}"
        );
        let reply = parse_reply(output).expect("parses");
        assert_eq!(reply.question, "c\"}?");
    }

    #[test]
    fn truncated_or_missing_json_is_an_error() {
        assert_eq!(extract_json("no json here"), Err(OutputError::NoJson));
        assert!(matches!(
            parse_reply("{\"question\": \"Wh"),
            Err(OutputError::Malformed(_))
        ));
        assert!(matches!(
            parse_reply("{\"answer\": \"ATP\"}"),
            Err(OutputError::Malformed(_))
        ));
    }

    #[test]
    fn a_cloze_deletes_the_answer_where_the_sentence_holds_it() {
        let card = Candidate::cloze("Mitochondria make ATP.", "atp").expect("found");
        assert_eq!(card.front, "Mitochondria make {{c1::ATP}}.");
        assert_eq!(card.answer(), "ATP");
        let umlaut = Candidate::cloze("Das Blut enthält Hämoglobin.", "hämoglobin").expect("found");
        assert_eq!(umlaut.front, "Das Blut enthält {{c1::Hämoglobin}}.");
        assert_eq!(Candidate::cloze("Mitochondria make ATP.", "DNA"), None);
        let nested =
            Candidate::cloze("So x = \\sqrt{b^{2}} holds.", "x = \\sqrt{b^{2}}").expect("found");
        assert_eq!(nested.front, "So {{c1::x = \\sqrt{b^{2} } }} holds.");
        assert_eq!(cloze_answers(&nested.front), ["x = \\sqrt{b^{2} }"]);
        assert_eq!(Candidate::basic(" Q? ", " A ").answer(), "A");
    }

    #[test]
    fn cloze_answers_skip_malformed_deletions() {
        assert_eq!(
            cloze_answers("{{c::x}} {{c1::}} {{c12::ok}} {{c3::open"),
            ["ok"]
        );
        assert_eq!(
            cloze_answers("The {{c1::heart}} pumps {{c2::blood::fluid}}."),
            ["heart", "blood"]
        );
    }
}
