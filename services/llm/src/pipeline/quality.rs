//! Filters on cards that parsed and are grounded: empty ones, ones whose question gives the answer
//! away, is not a question, leans on a pronoun or copies the prompt's example, ones that ask for
//! more than one fact; then exact and near duplicates.

use super::{
    cards::{Candidate, CardKind},
    prompt::EXAMPLES,
    text::{content_words, jaccard, normalised, words},
};

/// A basic card's answer longer than this is a list or an explanation, not one fact.
pub const MAX_ANSWER_WORDS: usize = 12;
/// A cloze card hiding more than this asks for too much at once.
pub const MAX_CLOZE_DELETIONS: usize = 3;
/// Cards whose words overlap this much (Jaccard) with an earlier one are near duplicates.
pub const NEAR_DUPLICATE: f64 = 0.8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Empty,
    AnswerLeak,
    NotAtomic,
    NotAQuestion,
    Vague,
    ExampleCopy,
    AnswerMismatch,
}

impl Rejection {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::AnswerLeak => "answer_leak",
            Self::NotAtomic => "not_atomic",
            Self::NotAQuestion => "not_a_question",
            Self::Vague => "vague",
            Self::ExampleCopy => "example_copy",
            Self::AnswerMismatch => "answer_mismatch",
        }
    }
}

/// Why the card is not worth studying, if it is not.
pub fn check(card: &Candidate) -> Option<Rejection> {
    match card.kind {
        CardKind::Basic => {
            if normalised(&card.front).is_empty() || normalised(&card.back).is_empty() {
                return Some(Rejection::Empty);
            }
            // An answer of function words alone (the keyword `for`) is compared word for word.
            let (answer, question) = match content_words(&card.back) {
                answer if answer.is_empty() => (words(&card.back), words(&card.front)),
                answer => (answer, content_words(&card.front)),
            };
            if !answer.is_empty() && answer.iter().all(|word| question.contains(word)) {
                return Some(Rejection::AnswerLeak);
            }
            let words = card.back.split_whitespace().count();
            if words > MAX_ANSWER_WORDS || card.back.trim().contains('\n') {
                return Some(Rejection::NotAtomic);
            }
            if !card.front.trim_end().ends_with(['?', '？']) {
                return Some(Rejection::NotAQuestion);
            }
            if leans_on_pronoun(&card.front) {
                return Some(Rejection::Vague);
            }
            if copies_example(&card.front) {
                return Some(Rejection::ExampleCopy);
            }
            if !fits(&card.front, &card.back) {
                return Some(Rejection::AnswerMismatch);
            }
            None
        }
        CardKind::Cloze => {
            let answers = super::cards::cloze_answers(&card.front);
            if answers.is_empty() {
                return Some(Rejection::Empty);
            }
            if answers.len() > MAX_CLOZE_DELETIONS
                || answers
                    .iter()
                    .any(|answer| answer.split_whitespace().count() > MAX_ANSWER_WORDS)
            {
                return Some(Rejection::NotAtomic);
            }
            let visible = strip_deletions(&card.front);
            if words(&visible)
                .first()
                .is_some_and(|first| PRONOUNS.contains(&first.as_str()))
            {
                return Some(Rejection::Vague);
            }
            // The hidden text must not also stand in plain sight.
            let visible = normalised(&strip_deletions(&card.front));
            if answers.iter().any(|answer| {
                let answer = normalised(answer);
                !answer.is_empty() && format!(" {visible} ").contains(&format!(" {answer} "))
            }) {
                return Some(Rejection::AnswerLeak);
            }
            None
        }
    }
}

/// Whether the kind of question fits its answer: a year answers "When …" or "In which year …",
/// and a when-question wants a date; "How many/much …" wants a number; a short phrase cannot
/// answer "Why …" or "How does …" (those want an explanation). A small model phrasing a question
/// for a given answer gets this wrong often ("What was the French Revolution?" → "1789").
pub fn fits(question: &str, answer: &str) -> bool {
    // "When an acid reacts with a base, what is …?": the question is what follows the opener.
    let asked = question
        .rsplit_once(", ")
        .filter(|(_, main)| {
            words(main).first().is_some_and(|first| {
                ["what", "which", "who", "when", "how"].contains(&first.as_str())
            })
        })
        .map_or(question, |(_, main)| main);
    let asked = words(asked);
    let first = asked.first().map_or("", String::as_str);
    let second = asked.get(1).map_or("", String::as_str);
    let answer_words = words(answer);
    let year = answer_words
        .iter()
        .any(|word| word.len() == 4 && word.chars().all(|c| c.is_ascii_digit()));
    let number = answer_words.iter().any(|word| {
        word.chars().any(|c| c.is_ascii_digit()) || NUMBER_WORDS.contains(&word.as_str())
    });
    let asks_time = ["when", "wann"].contains(&first)
        || asked.windows(2).any(|pair| {
            ["which", "what", "welchem", "welcher"].contains(&pair[0].as_str())
                && ["year", "date", "century", "day", "jahr"].contains(&pair[1].as_str())
        });
    let asks_count = first == "how" && COUNTED.contains(&second);
    let asks_explanation = ["why", "warum"].contains(&first) || (first == "how" && !asks_count);
    if year && !asks_time && !asks_count {
        return false;
    }
    if (asks_time || asks_count) && !number {
        return false;
    }
    !(asks_explanation && answer_words.len() <= 5)
}

/// "How many …", "How long …": questions a number answers.
const COUNTED: [&str; 9] = [
    "many", "much", "long", "high", "far", "fast", "old", "big", "often",
];

const NUMBER_WORDS: [&str; 12] = [
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "hundred",
    "thousand",
];

/// Pronouns that leave a card without its subject once it is away from its text.
const PRONOUNS: [&str; 11] = [
    "it", "its", "they", "them", "their", "this", "these", "he", "she", "es", "sie",
];

/// Words after which a pronoun refers back inside the question ("substances that release ions
/// when they dissolve").
const SUBORDINATORS: [&str; 8] = [
    "that", "which", "who", "when", "where", "if", "because", "while",
];

/// Whether the question refers to something by a pronoun alone ("How many chambers does it
/// have?"). A possessive after something the question names ("the distance from the centre of a
/// circle to its edge"), or a pronoun in a clause that follows what it stands for ("substances that
/// … when they dissolve"), points inside the question and is fine.
pub fn leans_on_pronoun(question: &str) -> bool {
    let words = words(question);
    let content = content_words(question);
    let mut named = false;
    let mut subordinate = false;
    for word in &words {
        if PRONOUNS.contains(&word.as_str()) {
            let possessive = ["its", "their"].contains(&word.as_str());
            if !(named && (possessive || subordinate)) {
                return true;
            }
        } else if SUBORDINATORS.contains(&word.as_str()) {
            subordinate = named;
        } else if content.contains(word) {
            named = true;
        }
    }
    false
}

/// Whether the question is about the prompt's worked example rather than the text: most of its
/// words come from the example.
pub fn copies_example(question: &str) -> bool {
    let question = content_words(question);
    let example: Vec<String> = EXAMPLES
        .iter()
        .flat_map(|(sentence, _, _)| content_words(sentence))
        .collect();
    !question.is_empty()
        && question
            .iter()
            .filter(|word| example.contains(word))
            .count()
            * 2
            > question.len()
}

/// The cloze text with its deletions removed.
fn strip_deletions(text: &str) -> String {
    let mut visible = String::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{c") {
        visible.push_str(&rest[..open]);
        match rest[open..].find("}}") {
            Some(close) => rest = &rest[open + close + 2..],
            None => {
                rest = "";
                break;
            }
        }
    }
    visible.push_str(rest);
    visible
}

/// Which cards repeat an earlier one, exactly (same words) or nearly (word overlap ≥
/// [`NEAR_DUPLICATE`]); the first of each group is kept.
pub fn duplicates(cards: &[Candidate]) -> Vec<bool> {
    let signatures: Vec<(String, Vec<String>)> = cards
        .iter()
        .map(|card| {
            let whole = format!("{} {}", card.front, card.back);
            (normalised(&whole), content_words(&whole))
        })
        .collect();
    (0..cards.len())
        .map(|index| {
            signatures[..index].iter().any(|earlier| {
                earlier.0 == signatures[index].0
                    || jaccard(&earlier.1, &signatures[index].1) >= NEAR_DUPLICATE
            })
        })
        .collect()
}

/// Math in Anki's MathJax delimiters: `$$x$$` becomes `\[x\]` and `$x$` becomes `\(x\)`;
/// escaped dollars (`\$`) stay.
pub fn mathjax(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        if c == '\\' && chars.get(index + 1) == Some(&'$') {
            out.push_str("\\$");
            index += 2;
            continue;
        }
        if c == '$' {
            let display = chars.get(index + 1) == Some(&'$');
            let open = if display { 2 } else { 1 };
            let closing = find_closing(&chars, index + open, display);
            if let Some(end) = closing {
                let inner: String = chars[index + open..end].iter().collect();
                if display {
                    out.push_str(&format!("\\[{inner}\\]"));
                } else {
                    out.push_str(&format!("\\({inner}\\)"));
                }
                index = end + open;
                continue;
            }
        }
        out.push(c);
        index += 1;
    }
    out
}

fn find_closing(chars: &[char], from: usize, display: bool) -> Option<usize> {
    (from..chars.len()).find(|&at| {
        chars[at] == '$'
            && chars.get(at.wrapping_sub(1)) != Some(&'\\')
            && (!display || chars.get(at + 1) == Some(&'$'))
            && at > from
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(front: &str, back: &str) -> Candidate {
        Candidate {
            kind: CardKind::Basic,
            front: front.into(),
            back: back.into(),
        }
    }

    fn cloze(text: &str) -> Candidate {
        Candidate {
            kind: CardKind::Cloze,
            front: text.into(),
            back: String::new(),
        }
    }

    #[test]
    fn empty_leaky_and_sprawling_cards_are_rejected() {
        assert_eq!(check(&basic("What makes ATP?", "Mitochondria")), None);
        assert_eq!(
            check(&basic("Name the organelle that makes ATP.", "Mitochondria")),
            Some(Rejection::NotAQuestion)
        );
        assert_eq!(
            check(&basic("How many chambers does it have?", "four")),
            Some(Rejection::Vague)
        );
        assert_eq!(
            check(&basic(
                "What carves U-shaped valleys into mountains?",
                "ATP"
            )),
            Some(Rejection::ExampleCopy)
        );
        assert_eq!(
            check(&basic("What was the French Revolution?", "1789")),
            Some(Rejection::AnswerMismatch)
        );
        assert_eq!(
            check(&basic(
                "How does a proton carry a charge?",
                "negative charge"
            )),
            Some(Rejection::AnswerMismatch)
        );
        assert_eq!(
            check(&basic(
                "What does a `for` loop run once for each item?",
                "for"
            )),
            Some(Rejection::AnswerLeak)
        );
        assert_eq!(
            check(&basic("What is its capital?", "Paris")),
            Some(Rejection::Vague)
        );
        assert_eq!(
            check(&basic("When did the cell divide?", "the nucleus")),
            Some(Rejection::AnswerMismatch)
        );
        for (question, answer) in [
            ("When did the French Revolution begin?", "1789"),
            ("In which year was Louis XVI executed?", "1793"),
            (
                "How many chromosomes does a human cell contain?",
                "46 chromosomes",
            ),
            ("How many chambers does the heart have?", "four"),
            ("What is the unit of force?", "the newton"),
            (
                "What is the distance from the centre of a circle to its edge called?",
                "the radius",
            ),
            (
                "What are substances that release ions when they dissolve in water called?",
                "Acids",
            ),
            (
                "When an acid reacts with a base, what is the reaction called?",
                "neutralisation",
            ),
        ] {
            assert_eq!(check(&basic(question, answer)), None, "{question}");
        }
        assert_eq!(check(&basic("  ", "x")), Some(Rejection::Empty));
        assert_eq!(check(&basic("Q?", "?!")), Some(Rejection::Empty));
        assert_eq!(
            check(&basic("Do mitochondria make ATP?", "mitochondria")),
            Some(Rejection::AnswerLeak)
        );
        assert_eq!(
            check(&basic(
                "Describe the cell.",
                "It has a nucleus, ribosomes, mitochondria, a membrane, a wall and also chloroplasts"
            )),
            Some(Rejection::NotAtomic)
        );
        assert_eq!(check(&cloze("The {{c1::heart}} pumps blood.")), None);
        assert_eq!(
            check(&cloze("The {{c1::heart}} is a heart.")),
            Some(Rejection::AnswerLeak)
        );
        assert_eq!(
            check(&cloze("{{c1::a}} {{c2::b}} {{c3::c}} {{c4::d}}")),
            Some(Rejection::NotAtomic)
        );
    }

    #[test]
    fn duplicates_exact_and_near_keep_the_first() {
        let cards = [
            basic("What produces ATP?", "Mitochondria"),
            basic("what produces ATP", "mitochondria."),
            basic("Which organelle builds proteins?", "Ribosomes"),
            basic("Which organelle builds the proteins?", "Ribosomes"),
            basic("Where is DNA kept?", "Nucleus"),
        ];
        assert_eq!(duplicates(&cards), [false, true, false, true, false]);
    }

    #[test]
    fn dollar_math_becomes_mathjax() {
        assert_eq!(mathjax("Area is $\\pi r^2$."), "Area is \\(\\pi r^2\\).");
        assert_eq!(mathjax("$$E = mc^2$$"), "\\[E = mc^2\\]");
        assert_eq!(mathjax("costs \\$5 and $3"), "costs \\$5 and $3");
        assert_eq!(mathjax("already \\(x\\)"), "already \\(x\\)");
    }
}
