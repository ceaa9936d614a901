//! Grounding: an answer is a phrase of its sentence by construction (see `facts`), so what is
//! checked here is the question: most of what it mentions must stand in the sentence or the one
//! before it (which may name what "it" refers to), or the card tests something the notes do not
//! say.

use super::text::{content_words, words};

/// Words that join two clauses of one sentence (a comma, semicolon or colon also ends one).
const JOINERS: [&str; 5] = ["and", "but", "while", "whereas", "whilst"];

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
    if !names_stand_in(question, support) {
        return false;
    }
    let support = content_words(support);
    let found = asked
        .iter()
        .filter(|word| support.iter().any(|known| same_word(word, known)))
        .count();
    found as f64 / asked.len() as f64 >= MIN_QUESTION_SUPPORT
}

/// Whether every name the question mentions (a capitalised word after its first) stands in the
/// support: a small model adds names the notes never mention ("When did the border between East
/// Germany and Poland open?"), and a card about them tests nothing the learner wrote down.
fn names_stand_in(question: &str, support: &str) -> bool {
    let support = words(support);
    question
        .split_whitespace()
        .skip(1)
        .map(|word| word.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|word| word.chars().next().is_some_and(char::is_uppercase))
        .flat_map(words)
        .all(|name| support.iter().any(|known| same_word(&name, known)))
}

/// The sentence's clauses: split at commas, semicolons, colons and joining words.
fn clauses(sentence: &str) -> Vec<String> {
    let mut clauses = vec![String::new()];
    for word in sentence.split_whitespace() {
        let bare = word
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase();
        if JOINERS.contains(&bare.as_str()) {
            clauses.push(String::new());
            continue;
        }
        let current = clauses.last_mut().expect("one clause at least");
        current.push(' ');
        current.push_str(word);
        if word.ends_with([',', ';', ':']) {
            clauses.push(String::new());
        }
    }
    clauses.retain(|clause| !clause.trim().is_empty());
    clauses
}

/// Whether a question asks about the clause its answer stands in, not about another clause of the
/// sentence: "Protons carry a positive charge, electrons a negative charge" does not support
/// "What does a proton carry?" → "negative charge". The question must share a word with the
/// answer's clause (besides the answer), or with the clause after it when the answer's clause holds
/// nothing else ("…, the Central Powers, led by Germany"). An answer that spans clauses passes.
pub fn asks_within_clause(question: &str, sentence: &str, answer: &str) -> bool {
    let clauses = clauses(sentence);
    let answer_words = content_words(answer);
    let lower_answer = answer.to_lowercase();
    let Some(at) = clauses
        .iter()
        .position(|clause| clause.to_lowercase().contains(&lower_answer))
    else {
        return true;
    };
    let others = |clause: &str| -> Vec<String> {
        content_words(clause)
            .into_iter()
            .filter(|word| !answer_words.iter().any(|known| same_word(word, known)))
            .collect()
    };
    let mut context = others(&clauses[at]);
    if context.is_empty() {
        context = clauses
            .get(at + 1)
            .map(|next| others(next))
            .unwrap_or_default();
    }
    if context.is_empty() {
        return true;
    }
    content_words(question)
        .iter()
        .any(|word| context.iter().any(|known| same_word(word, known)))
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
    fn a_question_naming_what_the_notes_do_not_is_not_supported() {
        let sentence = "After mass peaceful protests in East Germany, the border was opened on \
                        9 November 1989.";
        assert!(!supports_question(
            "When did the border between East Germany and Poland open?",
            sentence
        ));
        assert!(supports_question(
            "When was the border of East Germany opened?",
            sentence
        ));
        assert!(supports_question(
            "What does Newton's third law say?",
            "Newton's third law says that every action has a reaction."
        ));
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

    #[test]
    fn a_question_must_ask_about_the_answers_own_clause() {
        let charges =
            "Protons carry a positive charge, electrons a negative charge, and neutrons no charge.";
        assert!(!asks_within_clause(
            "What does a proton carry?",
            charges,
            "a negative charge"
        ));
        assert!(asks_within_clause(
            "What charge do electrons carry?",
            charges,
            "a negative charge"
        ));
        let war =
            "The First World War began in 1914 and ended with an armistice on 11 November 1918.";
        assert!(!asks_within_clause(
            "When did the First World War begin?",
            war,
            "11 November 1918"
        ));
        assert!(asks_within_clause(
            "When did the First World War end?",
            war,
            "11 November 1918"
        ));
        assert!(asks_within_clause(
            "When did the First World War begin?",
            war,
            "1914"
        ));
        let alliances = "Europe was split into two alliances: the Allies, and the Central Powers, led by Germany.";
        assert!(asks_within_clause(
            "Which alliance was led by Germany?",
            alliances,
            "the Central Powers"
        ));
    }
}
