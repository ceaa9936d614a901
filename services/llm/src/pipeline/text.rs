//! Word-level text comparison shared by grounding, filtering and de-duplication.

/// Short words that carry no fact, in English and German; an answer made only of them cannot be
/// grounded or compared.
pub const STOPWORDS: &[&str] = &[
    "a", "an", "the", "of", "in", "on", "at", "to", "for", "by", "with", "from", "and", "or", "is",
    "are", "was", "were", "be", "been", "it", "its", "this", "that", "these", "those", "as",
    "into", "than", "then", "which", "what", "who", "how", "why", "when", "where", "do", "does",
    "did", "der", "die", "das", "den", "dem", "des", "ein", "eine", "einen", "einem", "einer",
    "und", "oder", "ist", "sind", "war", "von", "zu", "zum", "zur", "mit", "im", "am", "auf",
    "für", "wie", "was", "wer", "wann", "wo", "sie", "es", "er", "nach", "bei", "durch", "aus",
    "über", "unter", "vor", "wird", "wurde", "hat", "haben", "sich", "nicht", "auch", "als",
    "dass",
];

/// Month names, English and German, for dates.
pub const MONTHS: [&str; 24] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "januar",
    "februar",
    "märz",
    "april",
    "mai",
    "juni",
    "juli",
    "august",
    "september",
    "oktober",
    "november",
    "dezember",
];

/// Lower-cased words (letters and digits), in order.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The words that carry content: not stopwords, and at least two characters unless a number.
pub fn content_words(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .filter(|word| {
            !STOPWORDS.contains(&word.as_str())
                && (word.chars().count() > 1 || word.chars().all(|c| c.is_ascii_digit()))
        })
        .collect()
}

/// Text folded for exact comparison: its words joined by single spaces.
pub fn normalised(text: &str) -> String {
    words(text).join(" ")
}

/// Jaccard similarity of two word sets.
#[allow(clippy::cast_precision_loss)]
pub fn jaccard(left: &[String], right: &[String]) -> f64 {
    use std::collections::HashSet;
    let left: HashSet<&String> = left.iter().collect();
    let right: HashSet<&String> = right.iter().collect();
    let union = left.union(&right).count();
    if union == 0 {
        return 1.0;
    }
    left.intersection(&right).count() as f64 / union as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_fold_case_and_punctuation() {
        assert_eq!(
            words("The Cell's   wall, (mostly)!"),
            ["the", "cell", "s", "wall", "mostly"]
        );
        assert_eq!(
            content_words("What is the role of ATP in 2 cells?"),
            ["role", "atp", "2", "cells"]
        );
        assert_eq!(normalised("  Hello,\nWorld "), "hello world");
    }

    #[test]
    fn jaccard_of_word_sets() {
        let a = content_words("mitochondria produce ATP");
        let b = content_words("In cells, mitochondria produce most ATP.");
        assert!((jaccard(&a, &a) - 1.0).abs() < f64::EPSILON);
        assert!(jaccard(&a, &b) < 1.0);
    }
}
