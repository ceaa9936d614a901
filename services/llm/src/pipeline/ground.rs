//! Grounding: an answer is a phrase of its sentence by construction (see `facts`), so what is
//! checked here is the question: most of what it mentions must stand in the sentence or the one
//! before it (which may name what "it" refers to), or the card tests something the notes do not
//! say.

use super::text::content_words;

/// Share of the question's content words the supporting text must hold.
pub const MIN_QUESTION_SUPPORT: f64 = 0.5;

/// Words that frame a question rather than state a fact ("What is X called?", "In which year …").
const FRAMING: [&str; 16] = [
    "called", "name", "named", "term", "year", "many", "much", "kind", "type", "mean", "means",
    "word", "happens", "happen", "welchem", "jahr",
];

/// Endings dropped before words are compared, longest first.
const ENDINGS: [&str; 10] = ["ions", "ing", "ion", "ies", "ed", "es", "er", "s", "e", "d"];

/// The word without its first ending that leaves at least three letters.
fn stem(word: &str) -> &str {
    ENDINGS
        .iter()
        .find_map(|ending| {
            word.strip_suffix(ending)
                .filter(|stem| stem.chars().count() >= 3)
        })
        .unwrap_or(word)
}

/// Whether two words are forms of one word (`stores`/`store`, `produced`/`produces`).
fn same_word(left: &str, right: &str) -> bool {
    left == right || stem(left) == stem(right)
}

/// Whether `support` (the card's sentence, with its neighbour) holds enough of the question.
#[allow(clippy::cast_precision_loss)] // word counts far below 2^52
pub fn supports_question(question: &str, support: &str) -> bool {
    let asked: Vec<String> = content_words(question)
        .into_iter()
        .filter(|word| !FRAMING.contains(&word.as_str()))
        .collect();
    if asked.is_empty() {
        return false;
    }
    let support = content_words(support);
    let found = asked
        .iter()
        .filter(|word| support.iter().any(|known| same_word(word, known)))
        .count();
    found as f64 / asked.len() as f64 >= MIN_QUESTION_SUPPORT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_question_about_the_sentence_is_supported() {
        let sentence = "The nucleus stores the cell's DNA.";
        assert!(supports_question("What does the nucleus store?", sentence));
        assert!(supports_question(
            "Which part of the cell stores DNA?",
            sentence
        ));
        assert!(supports_question(
            "What is the name of the part storing DNA?",
            sentence
        ));
    }

    #[test]
    fn a_question_about_something_else_is_not() {
        let sentence = "The nucleus stores the cell's DNA.";
        assert!(!supports_question(
            "Which vessels carry blood away from the heart?",
            sentence
        ));
        assert!(
            !supports_question("What is it called?", sentence),
            "nothing asked"
        );
    }

    #[test]
    fn word_forms_match_but_different_words_do_not() {
        assert!(same_word("stores", "store"));
        assert!(same_word("produced", "produces"));
        assert!(same_word("cells", "cell"));
        assert!(same_word("storing", "stores"));
        assert!(!same_word("began", "begin"));
        assert!(!same_word("protein", "proton"));
    }
}
