//! How the quality report judges a card, independently of the pipeline's own checks (so a
//! pipeline cannot grade itself): whether it covers a key fact, is grounded in the passage, leaks
//! its answer, or repeats another card. Pure functions over text.

use std::collections::HashSet;

/// A key fact of a passage, written before any model output was seen.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct KeyFact {
    pub question: String,
    pub answer: String,
    /// Other answers that are equally right.
    #[serde(default)]
    pub also: Vec<String>,
}

/// A card as the learner sees it: what is asked and what must be recalled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyCard {
    /// A basic card's front, or a cloze text with its deletions blanked.
    pub question: String,
    /// A basic card's back, or a cloze card's deleted texts.
    pub answer: String,
}

impl StudyCard {
    pub fn basic(front: &str, back: &str) -> Self {
        Self {
            question: front.to_owned(),
            answer: back.to_owned(),
        }
    }

    /// `{{c1::answer}}` / `{{c1::answer::hint}}` deletions become `[...]`.
    pub fn cloze(text: &str) -> Self {
        let mut question = String::new();
        let mut answers = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{c") {
            let Some(close) = rest[open..].find("}}") else {
                break;
            };
            question.push_str(&rest[..open]);
            question.push_str("[...]");
            let body = &rest[open + 3..open + close];
            if let Some((_, deleted)) = body.split_once("::") {
                answers.push(deleted.split("::").next().unwrap_or_default().to_owned());
            }
            rest = &rest[open + close + 2..];
        }
        question.push_str(rest);
        Self {
            question,
            answer: answers.join(" "),
        }
    }
}

/// Function words of English and German, and the words questions are made of: none of them
/// tells what a card is about.
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "of", "in", "on", "at", "to", "for", "by", "with", "from", "and", "or", "is",
    "are", "was", "were", "be", "been", "being", "it", "its", "this", "that", "these", "those",
    "as", "into", "than", "then", "which", "what", "who", "whom", "whose", "how", "why", "when",
    "where", "do", "does", "did", "has", "have", "had", "can", "called", "name", "term", "about",
    "der", "die", "das", "den", "dem", "des", "ein", "eine", "einen", "einem", "einer", "und",
    "oder", "ist", "sind", "war", "wurde", "wird", "von", "zu", "zum", "zur", "mit", "im", "am",
    "auf", "für", "wie", "was", "wer", "wann", "welche", "welcher", "welches", "wo", "man",
    "nennt", "heißt", "es", "sie", "er",
];

/// Lower-cased words with function words left out and plurals and possessives folded
/// (`cells`, `cell's` → `cell`), so that "the cell's DNA" and "DNA of cells" share their terms.
/// Single letters count (`F = ma` has two terms).
pub fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(|word| word.trim_matches('\'').to_lowercase())
        .map(|word| word.strip_suffix("'s").map(str::to_owned).unwrap_or(word))
        .filter(|word| !word.is_empty() && !STOPWORDS.contains(&word.as_str()))
        .map(|word| stem(&word))
        .collect()
}

fn stem(word: &str) -> String {
    let plural = word.chars().count() > 3
        && word.ends_with('s')
        && !["ss", "us", "is"].iter().any(|end| word.ends_with(end));
    if plural {
        word[..word.len() - 1].to_owned()
    } else {
        word.to_owned()
    }
}

fn set(words: &[String]) -> HashSet<&str> {
    words.iter().map(String::as_str).collect()
}

/// Harmonic mean of precision and recall of the card's answer terms against the key answer's.
#[allow(clippy::cast_precision_loss)]
pub fn answer_f1(card: &str, key: &str) -> f64 {
    let (card, key) = (terms(card), terms(key));
    let (card, key) = (set(&card), set(&key));
    let shared = card.intersection(&key).count();
    if shared == 0 {
        return 0.0;
    }
    let precision = shared as f64 / card.len() as f64;
    let recall = shared as f64 / key.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// An answer matches a key answer closely when it is the key answer give or take one word on a
/// one-word answer ("the cell's DNA" for "DNA"), not merely a longer text containing it.
pub const MIN_ANSWER_F1: f64 = 0.66;

/// Share of the key question's terms (those not in the answer) the card's question must ask
/// about: a third, and at least one term.
pub const MIN_QUESTION_SHARE: f64 = 1.0 / 3.0;

pub fn answer_matches(answer: &str, fact: &KeyFact) -> bool {
    std::iter::once(&fact.answer)
        .chain(&fact.also)
        .any(|key| answer_f1(answer, key) >= MIN_ANSWER_F1)
}

/// Whether the card's question is about what the key question is about.
#[allow(clippy::cast_precision_loss)]
pub fn asks_for(question: &str, fact: &KeyFact) -> bool {
    let answer = terms(&fact.answer);
    let key: Vec<String> = terms(&fact.question)
        .into_iter()
        .filter(|term| !answer.contains(term))
        .collect();
    let key = set(&key);
    if key.is_empty() {
        return true;
    }
    let asked = terms(question);
    let shared = key.intersection(&set(&asked)).count();
    shared >= 1 && shared as f64 / key.len() as f64 >= MIN_QUESTION_SHARE - 1e-9
}

/// A card covers a key fact when it asks for it and its answer matches the key answer closely.
pub fn covers(card: &StudyCard, fact: &KeyFact) -> bool {
    answer_matches(&card.answer, fact) && asks_for(&card.question, fact)
}

/// Sentences of a passage as the pipeline reads them (OCR line breaks mended, list lines alone):
/// what a card may be grounded in.
pub fn sentences(text: &str) -> Vec<String> {
    flashcards_llm::pipeline::sentences::split(text)
        .into_iter()
        .map(|sentence| sentence.text)
        .collect()
}

/// Whether one sentence of the passage, or two neighbours, hold most of the card: three quarters
/// of the answer's terms and half of the question's.
#[allow(clippy::cast_precision_loss)]
pub fn grounded(card: &StudyCard, passage: &[String]) -> bool {
    let answer = terms(&card.answer);
    if answer.is_empty() {
        return false;
    }
    let question = terms(&card.question);
    let share = |needles: &[String], haystack: &HashSet<&str>| {
        if needles.is_empty() {
            return 1.0;
        }
        needles
            .iter()
            .filter(|needle| haystack.contains(needle.as_str()))
            .count() as f64
            / needles.len() as f64
    };
    let windows = passage
        .iter()
        .map(|sentence| terms(sentence))
        .chain(passage.windows(2).map(|pair| terms(&pair.join(" "))));
    windows.into_iter().any(|window| {
        let window = set(&window);
        share(&answer, &window) >= 0.75 && share(&question, &window) >= 0.5
    })
}

/// Whether the question gives its answer away: every answer term stands in the question.
pub fn leaks(card: &StudyCard) -> bool {
    let answer = terms(&card.answer);
    let question = terms(&card.question);
    !answer.is_empty() && answer.iter().all(|term| question.contains(term))
}

/// Cards that ask what an earlier card asks: the same answer and a similar question (half of
/// their terms shared).
#[allow(clippy::cast_precision_loss)]
pub fn duplicates(cards: &[StudyCard]) -> usize {
    let similar = |left: &StudyCard, right: &StudyCard| {
        let (lq, rq) = (terms(&left.question), terms(&right.question));
        let (lq, rq) = (set(&lq), set(&rq));
        let union = lq.union(&rq).count().max(1);
        let overlap = lq.intersection(&rq).count() as f64 / union as f64;
        let same_answer = answer_f1(&left.answer, &right.answer) >= MIN_ANSWER_F1;
        same_answer && overlap >= 0.5
    };
    (0..cards.len())
        .filter(|&index| {
            cards[..index]
                .iter()
                .any(|earlier| similar(earlier, &cards[index]))
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(question: &str, answer: &str, also: &[&str]) -> KeyFact {
        KeyFact {
            question: question.into(),
            answer: answer.into(),
            also: also.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    #[test]
    fn terms_fold_case_plurals_and_function_words() {
        assert_eq!(terms("The cell's DNA"), ["cell", "dna"]);
        assert_eq!(
            terms("What do Mitochondria make?"),
            ["mitochondria", "make"]
        );
        assert_eq!(terms("F = ma"), ["f", "ma"]);
        assert_eq!(
            terms("Welche Kammer pumpt das Blut?"),
            ["welche", "kammer", "pumpt", "blut"]
                .into_iter()
                .filter(|t| *t != "welche")
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn an_answer_must_match_closely_not_merely_contain_the_key() {
        let atp = fact("What do mitochondria make?", "ATP", &[]);
        assert!(answer_matches("ATP", &atp));
        assert!(
            answer_matches("the cell's ATP", &atp),
            "one word more on one word"
        );
        assert!(!answer_matches("energy from glucose and ATP", &atp));
        assert!(!answer_matches("Mitochondria", &atp));
        let napoleon = fact(
            "Who took power in 1799?",
            "Napoleon Bonaparte",
            &["Napoleon"],
        );
        assert!(answer_matches("Napoleon", &napoleon));
        assert!(answer_matches(
            "in 1789",
            &fact("When did it begin?", "1789", &[])
        ));
    }

    #[test]
    fn a_card_covers_a_fact_only_when_it_asks_for_it() {
        let begin = fact("When did the French Revolution begin?", "1789", &[]);
        let stormed = fact("In which year was the Bastille stormed?", "1789", &[]);
        let card = StudyCard::cloze("The French Revolution began in {{c1::1789}}.");
        assert_eq!(card.question, "The French Revolution began in [...].");
        assert_eq!(card.answer, "1789");
        assert!(covers(&card, &begin));
        assert!(!covers(&card, &stormed), "same answer, another fact");
        let basic = StudyCard::basic("What do mitochondria produce?", "ATP");
        assert!(covers(
            &basic,
            &fact("What do mitochondria make?", "ATP", &[])
        ));
        assert!(!covers(
            &StudyCard::basic("Which vessels carry blood away from the heart?", "ATP"),
            &fact("What do mitochondria make?", "ATP", &[])
        ));
    }

    #[test]
    fn grounding_needs_question_and_answer_in_the_passage() {
        let passage = sentences(
            "Mitochondria make ATP. The nucleus stores the cell's DNA.\nRibo-\nsomes build proteins.",
        );
        assert_eq!(passage.len(), 3, "{passage:?}");
        assert!(grounded(
            &StudyCard::basic("What does the nucleus store?", "DNA"),
            &passage
        ));
        assert!(grounded(
            &StudyCard::basic("What do ribosomes build?", "proteins"),
            &passage
        ));
        assert!(!grounded(
            &StudyCard::basic(
                "Which vessels carry blood away from the heart?",
                "Mitochondria"
            ),
            &passage
        ));
        assert!(!grounded(
            &StudyCard::basic("What does the nucleus store?", "RNA"),
            &passage
        ));
    }

    #[test]
    fn vocabulary_lines_are_sentences_of_their_own() {
        let passage = sentences("abundant – plentiful\nbrief – short\nThe end.");
        assert_eq!(
            passage,
            ["abundant – plentiful", "brief – short", "The end."]
        );
    }

    #[test]
    fn leaks_and_duplicates() {
        assert!(leaks(&StudyCard::basic(
            "Do mitochondria make ATP?",
            "mitochondria"
        )));
        assert!(!leaks(&StudyCard::basic("What makes ATP?", "Mitochondria")));
        let cards = [
            StudyCard::basic("What makes ATP?", "Mitochondria"),
            StudyCard::basic("Which organelle makes ATP?", "mitochondria"),
            StudyCard::basic("What stores DNA?", "the nucleus"),
            StudyCard::cloze("The {{c1::nucleus}} stores the cell's DNA."),
        ];
        assert_eq!(duplicates(&cards), 2);
    }
}
