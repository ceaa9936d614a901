//! Cloze deletions in Anki's syntax: `{{c1::answer}}` or `{{c1::answer::hint}}`. Each distinct number is
//! one study item; deletions sharing a number are asked together.

use std::collections::BTreeSet;

/// Highest cloze number accepted (Anki has no practical limit; this bounds the items one card makes).
pub const MAX_CLOZE_NUMBER: u32 = 500;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClozeError {
    #[error("no cloze deletion found; write one as {{{{c1::text}}}}")]
    NoDeletions,
    #[error("cloze deletion at character {0} is not closed with }}}}")]
    Unclosed(usize),
    #[error("cloze deletion at character {0} has no number (write c1, c2, ...)")]
    BadNumber(usize),
    #[error("cloze number at character {0} must be between 1 and {MAX_CLOZE_NUMBER}")]
    NumberOutOfRange(usize),
    #[error("cloze deletion at character {0} is empty")]
    Empty(usize),
    #[error("nested cloze deletions (at character {0}) are not supported")]
    Nested(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Deletion<'a> {
    /// Byte range of the whole `{{...}}` in the text.
    start: usize,
    end: usize,
    number: u32,
    answer: &'a str,
    hint: Option<&'a str>,
}

/// Character offset of a byte offset, for error messages people can count.
fn char_offset(text: &str, byte: usize) -> usize {
    text[..byte].chars().count()
}

fn parse(text: &str) -> Result<Vec<Deletion<'_>>, ClozeError> {
    let mut deletions = Vec::new();
    let mut cursor = 0;
    while let Some(found) = text[cursor..].find("{{c") {
        let start = cursor + found;
        let at = char_offset(text, start);
        let after_c = start + 3;
        let digits = text[after_c..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        if digits == 0 || !text[after_c + digits..].starts_with("::") {
            // `{{c` not followed by `<number>::` is ordinary text (e.g. `{{code}}`), unless it looks
            // like an attempt with a missing number.
            if text[after_c..].starts_with("::") {
                return Err(ClozeError::BadNumber(at));
            }
            cursor = after_c;
            continue;
        }
        let number: u32 = text[after_c..after_c + digits]
            .parse()
            .map_err(|_| ClozeError::NumberOutOfRange(at))?;
        if number == 0 || number > MAX_CLOZE_NUMBER {
            return Err(ClozeError::NumberOutOfRange(at));
        }
        let body_start = after_c + digits + 2;
        let close = text[body_start..]
            .find("}}")
            .ok_or(ClozeError::Unclosed(at))?;
        let body = &text[body_start..body_start + close];
        if let Some(inner) = body.find("{{c") {
            return Err(ClozeError::Nested(char_offset(text, body_start + inner)));
        }
        let (answer, hint) = match body.split_once("::") {
            Some((answer, hint)) => (answer, Some(hint)),
            None => (body, None),
        };
        if answer.trim().is_empty() {
            return Err(ClozeError::Empty(at));
        }
        let end = body_start + close + 2;
        deletions.push(Deletion {
            start,
            end,
            number,
            answer,
            hint,
        });
        cursor = end;
    }
    Ok(deletions)
}

/// The cloze numbers of a text: one study item each. Errors when there are none or the syntax is broken.
pub fn ordinals(text: &str) -> Result<BTreeSet<u32>, ClozeError> {
    let numbers: BTreeSet<u32> = parse(text)?.into_iter().map(|d| d.number).collect();
    if numbers.is_empty() {
        return Err(ClozeError::NoDeletions);
    }
    Ok(numbers)
}

/// Question and answer for study item `ordinal`: its deletions hidden as `[...]` (or `[hint]`) in the
/// question and shown in the answer; every other deletion shows its text in both.
pub fn render(text: &str, ordinal: u32) -> Result<(String, String), ClozeError> {
    let deletions = parse(text)?;
    let mut prompt = String::with_capacity(text.len());
    let mut answer = String::with_capacity(text.len());
    let mut cursor = 0;
    for deletion in &deletions {
        prompt.push_str(&text[cursor..deletion.start]);
        answer.push_str(&text[cursor..deletion.start]);
        if deletion.number == ordinal {
            prompt.push('[');
            prompt.push_str(deletion.hint.unwrap_or("..."));
            prompt.push(']');
        } else {
            prompt.push_str(deletion.answer);
        }
        answer.push_str(deletion.answer);
        cursor = deletion.end;
    }
    prompt.push_str(&text[cursor..]);
    answer.push_str(&text[cursor..]);
    Ok((prompt, answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_numbers_are_the_study_items() {
        let text =
            "{{c1::Paris}} is the capital of {{c2::France}}; {{c1::it}} lies on the {{c3::Seine}}.";
        assert_eq!(ordinals(text), Ok(BTreeSet::from([1, 2, 3])));
    }

    #[test]
    fn gaps_in_numbering_are_kept() {
        assert_eq!(
            ordinals("{{c2::a}} and {{c5::b}}"),
            Ok(BTreeSet::from([2, 5]))
        );
    }

    #[test]
    fn render_hides_only_the_asked_number() {
        let text = "{{c1::Paris}} is the capital of {{c2::France::country}}.";
        assert_eq!(
            render(text, 1),
            Ok((
                "[...] is the capital of France.".to_owned(),
                "Paris is the capital of France.".to_owned()
            ))
        );
        assert_eq!(
            render(text, 2),
            Ok((
                "Paris is the capital of [country].".to_owned(),
                "Paris is the capital of France.".to_owned()
            ))
        );
    }

    #[test]
    fn mathjax_inside_a_deletion_survives() {
        let text = r"Energy: {{c1::\(E = mc^2\)}}";
        assert_eq!(render(text, 1).expect("renders").1, r"Energy: \(E = mc^2\)");
    }

    #[test]
    fn non_ascii_text_renders_without_splitting_characters() {
        let text = "Größe: {{c1::Äpfel}} — ünd {{c2::日本}}";
        assert_eq!(
            render(text, 2).expect("renders").0,
            "Größe: Äpfel — ünd [...]"
        );
    }

    #[test]
    fn broken_syntax_is_reported_with_its_position() {
        assert_eq!(ordinals("plain text"), Err(ClozeError::NoDeletions));
        assert_eq!(ordinals("ä {{c1::open"), Err(ClozeError::Unclosed(2)));
        assert_eq!(ordinals("{{c::x}}"), Err(ClozeError::BadNumber(0)));
        assert_eq!(ordinals("{{c0::x}}"), Err(ClozeError::NumberOutOfRange(0)));
        assert_eq!(
            ordinals("{{c99999999999::x}}"),
            Err(ClozeError::NumberOutOfRange(0))
        );
        assert_eq!(ordinals("{{c1::  }}"), Err(ClozeError::Empty(0)));
        assert_eq!(
            ordinals("{{c1::a {{c2::b}} c}}"),
            Err(ClozeError::Nested(8))
        );
    }

    #[test]
    fn braces_that_are_not_clozes_are_text() {
        assert_eq!(ordinals("{{code}} {{c1::x}}"), Ok(BTreeSet::from([1])));
    }

    #[test]
    fn hostile_input_never_panics() {
        for text in [
            "{{c",
            "{{c1",
            "{{c1:",
            "{{c1::",
            "{{c1::}",
            "}}{{c1::x}}}}",
            "{{c1::a::}}",
            "{{c١::x}}",
            "{{c1::\u{0}}}",
            "{{{{c1::x}}}}",
        ] {
            let _ = ordinals(text);
            let _ = render(text, 1);
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Text built from the pieces the parser looks for, so random input hits its edge cases.
        fn cloze_like() -> impl Strategy<Value = String> {
            prop::collection::vec(
                prop_oneof![
                    Just("{{c".to_owned()),
                    Just("::".to_owned()),
                    Just("}}".to_owned()),
                    Just("{".to_owned()),
                    Just("}".to_owned()),
                    "[0-9]{1,3}",
                    "[a-zä日 ]{0,4}",
                ],
                0..24,
            )
            .prop_map(|pieces| pieces.concat())
        }

        proptest! {
            #[test]
            fn any_text_parses_or_fails_cleanly(text in cloze_like()) {
                if let Ok(numbers) = ordinals(&text) {
                    for number in numbers {
                        let (prompt, answer) = render(&text, number).expect("valid text renders");
                        prop_assert!(prompt.contains('['));
                        let marker = format!("{{{{c{number}::");
                        prop_assert!(!answer.contains(&marker), "{} still in {}", marker, answer);
                    }
                }
            }

            #[test]
            fn generated_clozes_round_trip(words in prop::collection::vec("[a-z]{1,8}", 1..6)) {
                let text = words
                    .iter()
                    .enumerate()
                    .map(|(n, word)| format!("{{{{c{}::{word}}}}}", n + 1))
                    .collect::<Vec<_>>()
                    .join(" and ");
                let expected: BTreeSet<u32> = (1..=u32::try_from(words.len()).expect("small")).collect();
                prop_assert_eq!(ordinals(&text).expect("valid"), expected);
                let (_, answer) = render(&text, 1).expect("renders");
                prop_assert_eq!(answer, words.join(" and "));
            }
        }
    }
}
