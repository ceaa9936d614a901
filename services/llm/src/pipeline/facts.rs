//! What is worth a card, decided before the model is asked: which sentences state facts a student
//! would learn (names, terms being defined, dates, numbers, formulas, code) and, in each, the
//! phrases that can be a card's answer. The model then only phrases a question for an answer
//! taken from the text, which keeps every card grounded and atomic by construction.

use super::{
    cards::find_ignoring_case,
    english,
    sentences::Sentence,
    text::{MONTHS, STOPWORDS, content_words},
};

/// Words after which a term is named (`is called the discriminant`, `heißt Hohlmuskel`).
const NAMING: [&str; 11] = [
    "called",
    "known as",
    "termed",
    "named",
    "referred to as",
    "defined as",
    "heißt",
    "heißen",
    "genannt",
    "nennt man",
    "bezeichnet als",
];

/// Words that end a named term: the next clause begins.
const CLAUSE: [&str; 14] = [
    "and", "which", "that", "because", "where", "when", "while", "but", "so", "if", "und", "weil",
    "wenn", "aber",
];

/// Words that are never part of an answer phrase: common verbs and adverbs.
const NOT_ANSWERS: [&str; 46] = [
    "also", "have", "has", "had", "make", "makes", "made", "can", "could", "will", "would", "may",
    "must", "should", "very", "often", "usually", "only", "each", "every", "such", "most", "more",
    "many", "much", "not", "no", "there", "so", "then", "says", "say", "states", "state", "called",
    "known", "named", "given", "example", "always", "cannot", "like", "using", "statt", "means",
    "mean",
];

const NUMBER_WORDS: [&str; 20] = [
    "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun", "zehn",
];

/// A sentence chosen for a card, and how the card is made.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    /// Index of the sentence in the text's sentences.
    pub sentence: usize,
    pub plan: Plan,
    /// How much the sentence looks like something to learn; see [`worth`].
    pub worth: f64,
}

/// The answer a card of a sentence asks for, and its question where a template fits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// A phrase of the sentence.
    pub answer: String,
    /// A question made from the sentence's own words; `None` leaves it to the model.
    pub question: Option<String>,
    /// Whether a model may phrase the question (not for languages the templates and the small
    /// models handle badly: those get cloze cards).
    pub ask_model: bool,
}

/// Every sentence that offers an answer, best first (ties keep the text's order).
pub fn rank(sentences: &[Sentence]) -> Vec<Fact> {
    let topic = topic(sentences);
    let mut known = topic.clone();
    let mut entries = 0_usize;
    let mut facts: Vec<Fact> = sentences
        .iter()
        .enumerate()
        .filter_map(|(index, sentence)| {
            let planned = match glossary(&sentence.text) {
                // A vocabulary list is learnt both ways, every other entry asking for the
                // meaning, and the meaning first: a learner recognises a word before using it.
                Some((term, meaning)) => {
                    entries += 1;
                    if !entries.is_multiple_of(2) {
                        Some(Plan {
                            question: Some(format!("What does '{term}' mean?")),
                            answer: meaning,
                            ask_model: false,
                        })
                    } else {
                        plan(&sentence.text, &known)
                    }
                }
                None if index == 0 => {
                    let mut opening = known.clone();
                    opening.extend(english::clause(&sentence.text).into_iter().flat_map(
                        |clause| {
                            content_words(&clause.subject)
                                .iter()
                                .map(|word| singular(word))
                                .collect::<Vec<_>>()
                        },
                    ));
                    plan(&sentence.text, &opening)
                }
                None => plan(&sentence.text, &known),
            };
            known.extend(
                content_words(&sentence.text)
                    .iter()
                    .map(|word| singular(word)),
            );
            planned.map(|plan| Fact {
                sentence: index,
                worth: worth(&sentence.text, index),
                plan,
            })
        })
        .collect();
    // A later sentence that comes back to an answer (`The converse: if a^2 + b^2 = c^2 …`) would
    // ask the same again; the sentence that first states it keeps it.
    let mut answers: Vec<String> = Vec::new();
    facts.retain(|fact| {
        let answer = super::text::normalised(&fact.plan.answer);
        let new = !answers.contains(&answer);
        answers.push(answer);
        new
    });
    facts.sort_by(|a, b| {
        b.worth
            .total_cmp(&a.worth)
            .then(a.sentence.cmp(&b.sentence))
    });
    facts
}

/// The words the text is about: content words in at least three of its sentences (and in more
/// than one in four). A card whose answer is the topic asks what the learner already knows.
pub fn topic(sentences: &[Sentence]) -> Vec<String> {
    let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for sentence in sentences {
        let mut words = content_words(&sentence.text);
        words.iter_mut().for_each(|word| *word = singular(word));
        words.sort();
        words.dedup();
        for word in words {
            *counts.entry(word).or_default() += 1;
        }
    }
    let mut topic: Vec<String> = counts
        .into_iter()
        .filter(|(_, count)| *count >= 3 && *count * 4 > sentences.len())
        .map(|(word, _)| word)
        .collect();
    topic.sort();
    topic
}

/// A plural's singular, roughly (`cells` → `cell`), for counting a word's sentences.
fn singular(word: &str) -> String {
    match word.strip_suffix('s') {
        Some(stem) if stem.chars().count() > 2 && !stem.ends_with('s') => stem.to_owned(),
        _ => word.to_owned(),
    }
}

/// Whether every content word of `phrase` is known: a topic word or one of an earlier sentence.
fn is_topic(phrase: &str, topic: &[String]) -> bool {
    let words = content_words(phrase);
    !words.is_empty() && words.iter().all(|word| topic.contains(&singular(word)))
}

/// A score of how much a sentence states something to learn: a defined term, a date, a number, a
/// formula or code, named things and specialist words count; a very short line or a long
/// rambling one, or an opening sentence that only introduces the topic, count less.
pub fn worth(sentence: &str, position: usize) -> f64 {
    // Entries of a vocabulary list are worth the same: they are learnt in the list's order.
    if glossary(sentence).is_some() {
        return 3.0;
    }
    let tokens = tokens(sentence);
    let words = tokens.len();
    let mut score = 0.0;
    if !naming(sentence).is_empty() || meaning(sentence).is_some() {
        score += 3.0;
    } else if definition(sentence).is_some() || identification(sentence).is_some() {
        score += 2.0;
    }
    if !dates(sentence).is_empty() {
        score += 2.5;
    }
    if tokens.iter().any(|t| is_number(t)) {
        score += 1.0;
    }
    if !formulas(sentence).is_empty() || !code(sentence).is_empty() {
        score += 2.0;
    }
    let named = tokens
        .iter()
        .skip(1)
        .filter(|t| t.chars().next().is_some_and(char::is_uppercase))
        .count();
    score += (named.min(3) as f64) * 0.5;
    let specialist = tokens
        .iter()
        .filter(|t| t.chars().count() >= 9 && t.chars().all(char::is_alphabetic))
        .count();
    score += (specialist.min(3) as f64) * 0.4;
    if words < 4 {
        score -= 2.0;
    } else if words > 35 {
        score -= 1.0;
    }
    if position == 0 && score < 1.0 {
        score -= 0.5;
    }
    score
}

/// How to make a card of `sentence`, the first that applies: a glossary line asks for its term;
/// a named term (`X is called Y`), a meaning (`X means Y`) and a definition (`X is Y`) get a
/// question from their own words; a date, formula, code or quantity is the answer of a question
/// the model phrases; else the subject of the sentence (with a question from its predicate), or
/// its first noun-like phrase.
pub fn plan(sentence: &str, topic: &[String]) -> Option<Plan> {
    let english = !is_german(sentence);
    // Every answer must be a phrase of the sentence, or its card could not show where it stands.
    let asked = |answer: String, question: Option<String>| {
        find_ignoring_case(sentence, &answer).map(|_| Plan {
            answer,
            question: question.filter(|_| english),
            ask_model: english,
        })
    };
    if let Some((term, meaning)) = glossary(sentence) {
        return asked(term, Some(format!("What is the word for '{meaning}'?")));
    }
    if let Some((answer, question)) = named(sentence) {
        return asked(answer, question);
    }
    if let Some((answer, question)) = meaning(sentence) {
        return asked(answer, Some(question));
    }
    if let Some(planned) =
        identification(sentence).and_then(|(answer, question)| asked(answer, question))
    {
        return Some(planned);
    }
    if let Some(planned) = named_aside(sentence)
        .or_else(|| explained_name(sentence))
        .and_then(|answer| asked(answer, None))
    {
        return Some(planned);
    }
    let tokens = tokens(sentence);
    let dates = dates(sentence);
    if !dates.is_empty()
        && let Some(planned) = actor(sentence).and_then(|name| asked(name, None))
    {
        return Some(planned);
    }
    let exact = dates
        .into_iter()
        .map(|date| {
            let question = passive_date_question(sentence, &date);
            (date, question)
        })
        .chain(
            formulas(sentence)
                .into_iter()
                .map(|formula| (formula, None)),
        )
        .find_map(|(answer, question)| asked(answer, question));
    if exact.is_some() {
        return exact;
    }
    if let Some(planned) = unit(sentence).and_then(|(answer, question)| asked(answer, question)) {
        return Some(planned);
    }
    if let Some(planned) = english
        .then(|| differentia(sentence, topic))
        .flatten()
        .and_then(|answer| asked(answer, None))
    {
        return Some(planned);
    }
    if let Some(planned) =
        definition(sentence).and_then(|(answer, question)| asked(answer, question))
    {
        return Some(planned);
    }
    let exact = opening_term(sentence)
        .into_iter()
        .chain(code(sentence))
        .chain(quantities(&tokens))
        .chain(german_definition(sentence).filter(|_| !english))
        .find_map(|answer| asked(answer, None));
    if exact.is_some() {
        return exact;
    }
    if english
        && let Some(planned) = reported(sentence, topic).and_then(|answer| asked(answer, None))
    {
        return Some(planned);
    }
    if english {
        let clause = english::clause(sentence).filter(|clause| !reports(&clause.predicate));
        if let Some(clause) = clause {
            let subject = trim_examples(&clause.subject);
            let pronoun = !usable_subject(&clause.subject);
            if !pronoun && !is_topic(&subject, topic) {
                let question = match kind_of_topic(&subject, topic) {
                    Some(kind) => english::kind_question(&clause, &kind),
                    None => english::subject_question(&clause),
                };
                return asked(subject, Some(question));
            }
            // A pronoun or the topic is no answer: ask for what the sentence says of it.
            let object = object_phrase(&clause.predicate, topic).or_else(|| {
                phrases(&self::tokens(&clause.predicate))
                    .into_iter()
                    .find(|phrase| !is_topic(phrase, topic))
            });
            if let Some(planned) = object.and_then(|object| asked(object, None)) {
                return Some(planned);
            }
        }
    }
    let mut phrases = if english {
        phrases(&tokens)
    } else {
        german_noun(&tokens).into_iter().collect()
    };
    phrases.sort_by_key(|phrase| std::cmp::Reverse(phrase.split(' ').count()));
    phrases.into_iter().find_map(|phrase| asked(phrase, None))
}

/// `Current is measured in amperes (A)` → (`amperes`, "In what unit is current measured?"):
/// units are facts to learn, and the sentence's subject is what is measured.
fn unit(sentence: &str) -> Option<(String, Option<String>)> {
    let words: Vec<&str> = sentence.split_whitespace().collect();
    let at = words
        .windows(2)
        .position(|pair| pair[0] == "measured" && pair[1] == "in")?;
    let unit = words
        .get(at + 2)?
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_owned();
    let verb_at = at
        .checked_sub(1)
        .filter(|&before| ["is", "are"].contains(&words[before]));
    // A short opening before "is measured" is the subject, commas and all ("Potential
    // difference, or voltage,"); a longer one says more, and the clause's own subject is used.
    let subject = verb_at.and_then(|verb_at| {
        if (1..=6).contains(&verb_at) {
            Some(words[..verb_at].join(" "))
        } else {
            english::clause(sentence).map(|clause| clause.subject)
        }
    });
    let question = subject
        .filter(|subject| usable_subject(subject))
        .zip(verb_at)
        .map(|(subject, verb_at)| {
            format!(
                "In what unit {} {} measured?",
                words[verb_at],
                english::lower_first(&subject)
            )
        });
    Some((unit, question))
}

/// What a law or rule says (`The third law says that every action has an equal and opposite
/// reaction`): the new information comes last, so the answer is the complement's last phrase
/// that is not the topic, the longest of those ending there.
fn reported(sentence: &str, topic: &[String]) -> Option<String> {
    let clause = english::clause(sentence)?;
    if !reports(&clause.predicate) {
        return None;
    }
    let (_, complement) = clause.predicate.split_once(" that ")?;
    // The first thing said: "that the defendant owed them a duty of care, that the duty …".
    let complement = complement.split(", ").next().unwrap_or(complement);
    let complement = complement.trim_end_matches(['.', '!']);
    phrases(&tokens(complement))
        .into_iter()
        .filter(|phrase| !is_topic(phrase, topic))
        .filter_map(|phrase| {
            let (start, end) = find_ignoring_case(complement, &phrase)?;
            Some((end, start, phrase))
        })
        .max_by_key(|(end, start, _)| (*end, std::cmp::Reverse(*start)))
        .map(|(end, start, phrase)| {
            // "a duty of care": a phrase joined by `of` to another is one phrase.
            let content = |word: &&str| !is_prose(word) && word.chars().all(char::is_alphanumeric);
            let after: Vec<&str> = complement[end..]
                .strip_prefix(" of ")
                .unwrap_or_default()
                .split_whitespace()
                .take_while(content)
                .collect();
            let mut before: Vec<&str> = complement[..start]
                .strip_suffix(" of ")
                .unwrap_or_default()
                .split_whitespace()
                .rev()
                .take_while(content)
                .collect();
            before.reverse();
            [before.join(" "), phrase, after.join(" ")]
                .into_iter()
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join(" of ")
        })
}

/// A predicate that reports what something says ("says that …"): its subject is not the fact.
fn reports(predicate: &str) -> bool {
    let mut words = predicate.split_whitespace().map(str::to_lowercase);
    let mut verb = words.next().unwrap_or_default();
    // "must prove that …": what has to be shown is the fact, not who shows it.
    if ["must", "should", "has", "have"].contains(&verb.as_str()) {
        verb = words
            .next()
            .filter(|next| next != "to")
            .or_else(|| words.next())
            .unwrap_or_default();
    }
    [
        "says",
        "say",
        "states",
        "state",
        "shows",
        "show",
        "means",
        "suggests",
        "prove",
        "proves",
        "establish",
    ]
    .contains(&verb.as_str())
}

/// German function words; one of them, and no English one, makes a sentence German.
const GERMAN: [&str; 14] = [
    "der", "die", "das", "und", "ist", "ein", "eine", "den", "dem", "mit", "von", "nicht", "sich",
    "zu",
];

/// English function words (not `in`, which German shares).
const ENGLISH: [&str; 8] = ["the", "of", "and", "is", "are", "a", "an", "to"];

/// A sentence is German when it holds more German function words than English ones.
fn is_german(sentence: &str) -> bool {
    let words: Vec<String> = sentence
        .split_whitespace()
        .map(|word| {
            word.trim_matches(|c: char| !c.is_alphabetic())
                .to_lowercase()
        })
        .collect();
    let count = |list: &[&str]| {
        words
            .iter()
            .filter(|word| list.contains(&word.as_str()))
            .count()
    };
    count(&GERMAN) > count(&ENGLISH)
}

/// The first noun of a German sentence after its first word: German nouns are capitalised.
fn german_noun(tokens: &[String]) -> Option<String> {
    tokens
        .iter()
        .skip(1)
        .find(|token| {
            token.chars().next().is_some_and(char::is_uppercase)
                && !STOPWORDS.contains(&token.to_lowercase().as_str())
        })
        .cloned()
}

/// A subject worth asking for: not a pronoun, not only function words.
fn usable_subject(subject: &str) -> bool {
    let words: Vec<String> = subject
        .split_whitespace()
        .map(|word| {
            word.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .collect();
    let pronoun = words.first().is_some_and(|first| {
        [
            "it", "they", "this", "these", "those", "he", "she", "we", "you", "its", "their",
        ]
        .contains(&first.as_str())
    });
    !pronoun
        && words
            .iter()
            .any(|word| !STOPWORDS.contains(&word.as_str()) && !not_answer(word))
}

/// `Cost-push inflation` when the text is about inflation: the topic word the subject ends on,
/// which the subject names a kind of.
fn kind_of_topic(subject: &str, topic: &[String]) -> Option<String> {
    let words: Vec<&str> = subject.split_whitespace().collect();
    let (head, modifiers) = words.split_last()?;
    // "Each enzyme" is every enzyme, not a kind of one.
    let modified = modifiers
        .iter()
        .any(|word| !STOPWORDS.contains(&word.to_lowercase().as_str()))
        && !modifiers.iter().any(|word| not_answer(word));
    (modified && is_topic(head, topic)).then(|| singular(head))
}

/// The subject without the examples it lists ("Precipitation such as rain or snow").
fn trim_examples(subject: &str) -> String {
    let lower = subject.to_lowercase();
    [" such as ", " like ", " including ", " e.g. "]
        .iter()
        .filter_map(|marker| lower.find(marker))
        .min()
        .map_or_else(|| subject.to_owned(), |at| subject[..at].to_owned())
}

/// The copula and the words before it (`X is`), when a sentence reads `X is/are/was/were …`:
/// `(opener, subject, copula, rest)`.
fn copula(sentence: &str) -> Option<(String, String, String, String)> {
    let clause = english::clause(sentence)?;
    let mut words = clause.predicate.split_whitespace();
    let verb = words.next()?;
    if !["is", "are", "was", "were"].contains(&verb) {
        return None;
    }
    Some((
        clause.opener,
        clause.subject,
        verb.to_owned(),
        words.collect::<Vec<_>>().join(" "),
    ))
}

fn opened(opener: &str, question: &str) -> String {
    if opener.is_empty() {
        let mut chars = question.chars();
        chars
            .next()
            .map(|first| first.to_uppercase().chain(chars).collect())
            .unwrap_or_default()
    } else {
        format!("{opener} {question}")
    }
}

/// `X is called Y` → (Y, "What is X called?"); `… pores called stomata` → (Y, "What are the
/// pores called?").
fn named(sentence: &str) -> Option<(String, Option<String>)> {
    let term = naming(sentence).into_iter().next()?;
    let copula_question = copula(sentence).and_then(|(opener, subject, verb, rest)| {
        let lower = rest.to_lowercase();
        // "are therefore called", "is also known as": the adverb does not change the question.
        let lower = lower
            .split_once(' ')
            .filter(|(first, _)| NAMING_ADVERBS.contains(first))
            .map_or(lower.as_str(), |(_, after)| after);
        [
            "called ",
            "known as ",
            "termed ",
            "named ",
            "referred to as ",
        ]
        .iter()
        .any(|marker| lower.starts_with(marker))
        .then(|| {
            opened(
                &opener,
                &format!("what {verb} {} called?", english::lower_first(&subject)),
            )
        })
        .filter(|_| usable_subject(&subject))
    });
    let question = copula_question.or_else(|| named_phrase(sentence));
    Some((clause_end(&term), question))
}

/// Adverbs that may stand between a copula and `called`.
const NAMING_ADVERBS: [&str; 8] = [
    "therefore",
    "also",
    "often",
    "usually",
    "sometimes",
    "commonly",
    "generally",
    "thus",
];

/// Whether a noun is plural by its ending ("pores", not "process", "virus" or "axis").
fn plural(noun: &str) -> bool {
    noun.ends_with('s')
        && !["ss", "us", "is"]
            .iter()
            .any(|ending| noun.ends_with(ending))
}

/// `… tiny pores on the leaf called stomata` → "What are the tiny pores on the leaf called?": the
/// phrase before `called`, back to a verb or punctuation. An apposition that only says what kind
/// of thing the term is (`Workers moved to cities, a process called urbanisation`) asks about the
/// clause it follows: "Workers moved to cities: what is this process called?".
fn named_phrase(sentence: &str) -> Option<String> {
    let words: Vec<&str> = sentence.split_whitespace().collect();
    let marker = words.iter().position(|word| *word == "called")?;
    let mut start = marker;
    while start > 0 && marker - start < 8 {
        let word = words[start - 1];
        let bare = word.trim_matches(|c: char| !c.is_alphanumeric());
        let stops = start < marker && word.ends_with([',', ';', ':']);
        if stops || english::is_verb(bare) {
            break;
        }
        start -= 1;
    }
    let mut phrase: Vec<String> = words[start..marker]
        .iter()
        .map(|word| word.trim_end_matches([',', ';', ':']).to_owned())
        .collect();
    while phrase
        .first()
        .is_some_and(|word| PREPOSITIONS.contains(&word.to_lowercase().as_str()))
    {
        phrase.remove(0);
    }
    if !phrase.iter().any(|word| !is_prose(word)) {
        return None;
    }
    let head = phrase
        .iter()
        .take_while(|word| !PREPOSITIONS.contains(&word.to_lowercase().as_str()))
        .last()?;
    let verb = if plural(head) { "are" } else { "is" };
    let indefinite = ["a", "an"].contains(&phrase[0].to_lowercase().as_str());
    if indefinite && phrase.len() == 2 && start > 0 && words[start - 1].ends_with(',') {
        let clause = words[..start].join(" ");
        let clause = clause.trim_end_matches(',');
        let noun = phrase[1].to_lowercase();
        return Some(format!("{clause}: what {verb} this {noun} called?"));
    }
    let article = ["the", "a", "an"].contains(&phrase[0].to_lowercase().as_str());
    let phrase = english::lower_first(&phrase.join(" "));
    Some(if article {
        format!("What {verb} {phrase} called?")
    } else {
        format!("What {verb} the {phrase} called?")
    })
}

/// Prepositions that open a phrase inside a sentence.
const PREPOSITIONS: [&str; 15] = [
    "in", "on", "at", "of", "into", "through", "from", "with", "by", "for", "under", "over",
    "without", "between", "during",
];

/// Particles of phrasal verbs (`speed up`, `break down`).
const PARTICLES: [&str; 4] = ["up", "down", "out", "off"];

/// `In a covalent bond, two atoms share …`: the term the sentence opens on, when it names one.
fn opening_term(sentence: &str) -> Option<String> {
    let words: Vec<&str> = sentence.split_whitespace().collect();
    let opens = words.first()?.eq_ignore_ascii_case("in")
        && ["a", "an"].contains(&words.get(1)?.to_lowercase().as_str());
    if !opens {
        return None;
    }
    let comma = words.iter().take(6).position(|word| word.ends_with(','))?;
    (comma >= 2).then(|| words[2..=comma].join(" ").trim_end_matches(',').to_owned())
}

/// `Das Herz ist ein Hohlmuskel, …`: a German definition's short predicate.
fn german_definition(sentence: &str) -> Option<String> {
    let words: Vec<&str> = sentence.split_whitespace().collect();
    let at = words
        .iter()
        .take(5)
        .position(|word| ["ist", "sind", "war", "waren"].contains(word))?;
    let mut predicate = Vec::new();
    for word in &words[at + 1..] {
        predicate.push(word.trim_end_matches([',', '.', ';']));
        if word.ends_with([',', '.', ';']) {
            break;
        }
    }
    (at >= 1 && !predicate.is_empty() && predicate.len() <= 4).then(|| predicate.join(" "))
}

/// Adjectives that make a subject pick out one thing: `The leading case … is`, `Der erste
/// Reichspräsident war`.
const SPECIFYING: [&str; 16] = [
    "first",
    "last",
    "only",
    "leading",
    "main",
    "chief",
    "principal",
    "immediate",
    "erste",
    "ersten",
    "letzte",
    "letzten",
    "einzige",
    "wichtigste",
    "größte",
    "bekannteste",
];

/// Words ending like a superlative that are not one.
const NOT_SUPERLATIVES: [&str; 8] = [
    "forest", "interest", "harvest", "protest", "request", "honest", "modest", "suggest",
];

/// `The leading case on duty of care is Donoghue v Stevenson (1932), …` → (`Donoghue v
/// Stevenson`, "What is the leading case on duty of care?"): a subject that picks out one thing
/// is answered by the name after the copula, which is the fact even in a dated sentence. A short
/// subject (`The immediate trigger`) needs the sentence's context, so the model phrases that one;
/// a superlative (`The largest rainforest`) stands alone.
fn identification(sentence: &str) -> Option<(String, Option<String>)> {
    let words: Vec<&str> = sentence.split_whitespace().collect();
    let lower = |at: usize| {
        words.get(at).map(|word| {
            word.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
    };
    let article = lower(0)?;
    let adjective = lower(1)?;
    let superlative = adjective.chars().count() > 5
        && adjective.ends_with("est")
        && !NOT_SUPERLATIVES.contains(&adjective.as_str());
    if !["the", "der", "die", "das"].contains(&article.as_str())
        || !(SPECIFYING.contains(&adjective.as_str()) || superlative)
    {
        return None;
    }
    let copula = (3..words.len().min(9)).find(|&at| {
        ["is", "are", "was", "were", "ist", "sind", "war", "waren"].contains(&words[at])
            && !words[at - 1].ends_with(',')
    })?;
    let complement = clause_end(&words[copula + 1..].join(" "));
    // The name, without the year in brackets or where and when it happened.
    let mut name: Vec<&str> = Vec::new();
    for word in complement.split_whitespace() {
        let place_or_time = name.len() >= 2 && ["in", "on", "at", "during"].contains(&word);
        if word.starts_with('(') || place_or_time {
            break;
        }
        name.push(word);
    }
    if name.is_empty() || name.len() > 8 {
        return None;
    }
    let subject = words[..copula].join(" ");
    let question = ((copula >= 4 || superlative) && !is_german(sentence))
        .then(|| format!("What {} {}?", words[copula], english::lower_first(&subject)));
    Some((name.join(" "), question))
}

/// `The Treaty of Versailles, signed in 1919, forced Germany …` → `The Treaty of Versailles`:
/// a named subject whose date stands in an aside; the date is said in passing, the name is what
/// the sentence is about.
fn named_aside(sentence: &str) -> Option<String> {
    let mut parts = sentence.splitn(3, ", ");
    let subject = parts.next()?;
    let aside = parts.next()?;
    parts.next()?;
    let named = subject.split_whitespace().count() <= 6
        && subject
            .split_whitespace()
            .skip(1)
            .any(|word| word.chars().next().is_some_and(char::is_uppercase));
    let participle = aside.split_whitespace().next().is_some_and(|first| {
        first.chars().count() > 3 && first.ends_with("ed") || english::is_verb(first)
    });
    (named && participle && !dates(aside).is_empty()).then(|| subject.to_owned())
}

/// `… a crowd stormed the Bastille, a fortress and prison in Paris` → `the Bastille`: a name
/// the sentence stops to explain is what it wants learnt, more than when it happened.
fn explained_name(sentence: &str) -> Option<String> {
    let words: Vec<&str> = sentence.split_whitespace().collect();
    let capitalised = |word: &str| word.chars().next().is_some_and(char::is_uppercase);
    let comma = (1..words.len().saturating_sub(1)).find(|&at| {
        words[at].ends_with(',') && ["a", "an"].contains(&words[at + 1]) && capitalised(words[at])
    })?;
    let mut start = comma;
    while start > 1 && (capitalised(words[start - 1]) || words[start - 1] == "of") {
        start -= 1;
    }
    if words[start] == "of" {
        start += 1;
    }
    if start > 0 && words[start - 1] == "the" {
        start -= 1;
    }
    let name = words[start..=comma].join(" ");
    // "In Python, a list …": the comma closes an opening phrase, not a name's explanation.
    let opener = PREPOSITIONS.contains(&words[0].to_lowercase().as_str())
        && words[1..start].iter().all(|word| *word == "the");
    (start > 0 && !opener).then(|| name.trim_end_matches(',').to_owned())
}

/// `X means Y` → (Y, "What does X mean?").
fn meaning(sentence: &str) -> Option<(String, String)> {
    let words: Vec<&str> = sentence.split_whitespace().collect();
    let at = words.iter().position(|word| *word == "means")?;
    if at == 0 || at > 4 || words[..at].iter().any(|word| word.ends_with(',')) {
        return None;
    }
    let term = words[..at].join(" ");
    let answer = clause_end(&words[at + 1..].join(" "));
    (!answer.is_empty()).then(|| {
        (
            answer,
            format!("What does {} mean?", english::lower_first(&term)),
        )
    })
}

/// `X is Y`: a short Y is the answer to "What is X?"; a long Y defines X, the answer to
/// "What is Y called?".
fn definition(sentence: &str) -> Option<(String, Option<String>)> {
    let (opener, subject, verb, rest) = copula(sentence)?;
    let first = rest.split_whitespace().next()?;
    // "is measured in …", "are held together …": passive, not a definition.
    let bare = first.trim_matches(|c: char| !c.is_alphanumeric());
    let passive = english::is_verb(bare) || (bare.len() > 4 && bare.ends_with("ed"));
    if !usable_subject(&subject) || passive || first.starts_with(':') {
        return None;
    }
    // "X is where …": X is the term the rest describes; the model phrases that question.
    if ["where", "when"].contains(&bare.to_lowercase().as_str()) {
        return Some((subject, None));
    }
    let short = clause_end(&rest);
    if short.is_empty() {
        return None;
    }
    // "the amount that sellers offer": the relative clause is the definition, not an aside.
    let cut = short.split_whitespace().count();
    let after_comma = rest
        .split_whitespace()
        .nth(cut.saturating_sub(1))
        .is_some_and(|last| last.ends_with(','));
    let relative = !after_comma
        && rest
            .split_whitespace()
            .nth(cut)
            .is_some_and(|next| ["that", "which", "who"].contains(&next));
    if short.split_whitespace().count() <= 4 && !relative {
        let asker = if short.split_whitespace().count() >= 2
            && short
                .split_whitespace()
                .all(|word| word.chars().next().is_some_and(char::is_uppercase))
        {
            "who"
        } else {
            "what"
        };
        let question = opened(
            &opener,
            &format!("{asker} {verb} {}?", english::lower_first(&subject)),
        );
        return Some((short, Some(question)));
    }
    if subject.split_whitespace().count() > 3 {
        return None;
    }
    let described = rest
        .split([',', ';', ':'])
        .next()
        .unwrap_or_default()
        .trim_end_matches(['.', '!'])
        .trim()
        .to_owned();
    let question = opened(&opener, &format!("what {verb} {described} called?"));
    Some((subject, Some(question)))
}

/// `Acids are substances that release hydrogen ions …` → `hydrogen ions`: when the term defined
/// is the topic, the learner knows it already, and what sets it apart (the object of the
/// relative clause after its kind) is the fact to learn.
fn differentia(sentence: &str, topic: &[String]) -> Option<String> {
    let (_, subject, _, rest) = copula(sentence)?;
    if !is_topic(&subject, topic) {
        return None;
    }
    let words: Vec<&str> = rest.split_whitespace().collect();
    let relative = words
        .iter()
        .take(6)
        .position(|word| ["that", "which", "who"].contains(word))?;
    // "the process by which …" and "a rise, which …" describe; they do not set apart.
    let before = words.get(relative.checked_sub(1)?)?;
    if before.ends_with(',') || PREPOSITIONS.contains(&before.to_lowercase().as_str()) {
        return None;
    }
    // "substances that release …": the relative clause's own verb, so the kind is its subject.
    let verb = words.get(relative + 1)?;
    if !english::is_verb(verb.trim_matches(|c: char| !c.is_alphabetic())) {
        return None;
    }
    let object = words[relative + 2..].join(" ");
    object_phrase(&object, topic).or_else(|| {
        // "speed up chemical reactions": the verb's particle is not part of its object.
        let run: Vec<&str> = object
            .split_whitespace()
            .skip_while(|word| PARTICLES.contains(word))
            .take_while(|word| {
                word.chars().all(char::is_alphanumeric)
                    && !is_prose(word)
                    && !not_answer(word)
                    && !PREPOSITIONS.contains(word)
                    && !PARTICLES.contains(word)
            })
            .collect();
        (!run.is_empty()).then(|| run.join(" "))
    })
}

/// A phrase up to the end of its clause: the first comma, semicolon or relative word.
fn clause_end(phrase: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for word in phrase.split_whitespace() {
        let bare = word
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase();
        if [
            "which", "that", "who", "where", "because", "when", "while", "so",
        ]
        .contains(&bare.as_str())
        {
            break;
        }
        kept.push(word);
        if word.ends_with([',', ';', ':', '.', '!', '?']) {
            break;
        }
    }
    kept.join(" ")
        .trim_end_matches([',', ';', ':', '.', '!', '?'])
        .to_owned()
}

/// The sentence's words with their punctuation stripped, `cell's` kept whole.
fn tokens(sentence: &str) -> Vec<String> {
    sentence
        .split_whitespace()
        .map(|word| {
            word.trim_matches(|c: char| !c.is_alphanumeric() && !matches!(c, '%' | '°' | '+'))
                .to_owned()
        })
        .filter(|word| !word.is_empty())
        .collect()
}

fn is_number(word: &str) -> bool {
    word.chars().any(|c| c.is_ascii_digit())
        && word
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | '%' | '°'))
}

fn is_year(word: &str) -> bool {
    word.len() == 4
        && word.chars().all(|c| c.is_ascii_digit())
        && matches!(word.as_bytes()[0], b'1' | b'2')
}

/// `term – meaning` of a glossary line, without the part of speech in brackets.
fn glossary(sentence: &str) -> Option<(String, String)> {
    let (term, meaning) = sentence
        .split_once(" – ")
        .or_else(|| sentence.split_once(" — "))
        .or_else(|| sentence.split_once('\t'))?;
    let term = match term.split_once(" (") {
        Some((term, _)) => term,
        None => term,
    };
    let term = term.trim_start_matches(['-', '•', '*', ' ']).trim();
    let meaning = meaning.trim().trim_end_matches('.');
    (!term.is_empty() && !meaning.is_empty()).then(|| (term.to_owned(), meaning.to_owned()))
}

/// The terms a sentence names (`... is called the discriminant`): the words after a naming word,
/// up to the end of its clause.
fn naming(sentence: &str) -> Vec<String> {
    let words: Vec<&str> = sentence.split_whitespace().collect();
    let bare: Vec<String> = words
        .iter()
        .map(|word| {
            word.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .collect();
    let mut terms = Vec::new();
    for marker in NAMING {
        let marker: Vec<&str> = marker.split(' ').collect();
        for at in 0..bare.len() {
            let end = at + marker.len();
            if end > bare.len() || bare[at..end].iter().zip(&marker).any(|(w, m)| w != m) {
                continue;
            }
            if words[end - 1].ends_with([',', ';', ':', '.']) {
                continue;
            }
            let mut term: Vec<&str> = Vec::new();
            for (word, plain) in words[end..].iter().zip(&bare[end..]) {
                let content = term
                    .iter()
                    .any(|word| !is_prose(word.trim_matches(|c: char| !c.is_alphanumeric())));
                let verb = content && english::is_verb(plain);
                if CLAUSE.contains(&plain.as_str()) || term.len() >= 6 || verb {
                    break;
                }
                term.push(word);
                if word.ends_with([',', ';', ':', '.', '!', '?', ')']) {
                    break;
                }
            }
            if !term.is_empty() {
                terms.push(term.join(" "));
            }
        }
    }
    terms
}

/// The person who acts in a sentence: a name of two or more capitalised words followed by a verb
/// of action (`James Watt patented`) or after `by` (`invented by James Hargreaves`). In a dated
/// sentence the student learns who did it; the date is asked where the event is the subject
/// (`King Louis XVI was executed in 1793`).
fn actor(sentence: &str) -> Option<String> {
    let words: Vec<&str> = sentence.split_whitespace().collect();
    let capitalised = |word: &str| {
        let bare = word.trim_end_matches([',', '.', ';', ':']);
        bare.chars().next().is_some_and(char::is_uppercase)
            && bare.chars().all(char::is_alphabetic)
            && !STOPWORDS.contains(&bare.to_lowercase().as_str())
            && !MONTHS.iter().any(|month| month.eq_ignore_ascii_case(bare))
    };
    let mut at = 0;
    while at < words.len() {
        let run = words[at..]
            .iter()
            .take_while(|word| capitalised(word))
            .count();
        let last = words.get(at + run.max(1) - 1).copied().unwrap_or_default();
        // A comma inside the run ends the name ("Britain, France and Russia" is no one).
        let whole = words[at..at + run]
            .iter()
            .rev()
            .skip(1)
            .all(|word| !word.ends_with(','));
        if run >= 2 && whole {
            let name = words[at..at + run]
                .join(" ")
                .trim_end_matches([',', '.', ';', ':'])
                .to_owned();
            let before = at.checked_sub(1).map(|before| words[before].to_lowercase());
            let after = words.get(at + run).map(|word| {
                word.trim_matches(|c: char| !c.is_alphabetic())
                    .to_lowercase()
            });
            let acts = !last.ends_with([',', '.', ';', ':'])
                && after.is_some_and(|verb| {
                    (english::is_verb(&verb) || verb.ends_with("ed"))
                        && !["is", "are", "was", "were", "has", "have", "had"]
                            .contains(&verb.as_str())
                });
            // "The French Revolution began": a thing, not a person.
            let thing = before
                .as_deref()
                .is_some_and(|word| ["the", "a", "an"].contains(&word))
                || words[at] == "The";
            if !thing && (acts || before.as_deref() == Some("by")) {
                return Some(name);
            }
        }
        at += run.max(1);
    }
    None
}

/// `After the protests, the border was opened on 9 November 1989.` → "After the protests, when
/// was the border opened?": a passive event ending on its date needs no model to ask for it.
fn passive_date_question(sentence: &str, date: &str) -> Option<String> {
    let clause = english::clause(sentence)?;
    if !usable_subject(&clause.subject) {
        return None;
    }
    let predicate = clause.predicate.trim_end_matches(['.', '!']);
    let rest = predicate
        .strip_suffix(date)?
        .trim_end()
        .strip_suffix(" in")
        .or_else(|| predicate.strip_suffix(date)?.trim_end().strip_suffix(" on"))?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    let (auxiliary, verbs) = words.split_first()?;
    let (participle, adverbs) = verbs.split_last()?;
    let passive = ["was", "were"].contains(auxiliary)
        && participle.chars().all(char::is_alphabetic)
        && (participle.ends_with("ed")
            || participle.ends_with("en")
            || english::is_verb(participle))
        && adverbs.iter().all(|word| word.ends_with("ly"));
    // A dated event's subject without an article is most often a name (`Germany was …`).
    let articled = clause
        .subject
        .split_whitespace()
        .next()
        .is_some_and(|first| DETERMINERS.contains(&first.to_lowercase().as_str()));
    let subject = if articled {
        english::lower_first(&clause.subject)
    } else {
        clause.subject.clone()
    };
    passive.then(|| {
        opened(
            &clause.opener,
            &format!("when {auxiliary} {subject} {}?", verbs.join(" ")),
        )
    })
}

/// Dates as the sentence writes them: `14 July 1789`, `30. Januar 1933`, `July 1789`, or a year
/// alone; the full date first.
fn dates(sentence: &str) -> Vec<String> {
    let words: Vec<&str> = sentence.split_whitespace().collect();
    let bare = |word: &str| {
        word.trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase()
    };
    let mut dates = Vec::new();
    for (index, word) in words.iter().enumerate() {
        if !is_year(&bare(word)) {
            continue;
        }
        let month = index
            .checked_sub(1)
            .filter(|&at| MONTHS.contains(&bare(words[at]).as_str()));
        let day = month.and_then(|at| at.checked_sub(1)).filter(|&at| {
            let day = bare(words[at]);
            day.len() <= 2 && day.chars().all(|c| c.is_ascii_digit())
        });
        let first = day.or(month).unwrap_or(index);
        let date = words[first..=index]
            .join(" ")
            .trim_start_matches(|c: char| !c.is_alphanumeric())
            .trim_end_matches(|c: char| !c.is_alphanumeric())
            .to_owned();
        dates.push(date);
        if first != index {
            dates.push(bare(word));
        }
    }
    // A full date says more than a year alone.
    dates.sort_by_key(|date| !date.contains(' '));
    dates
}

/// Math between `\(`…`\)` or `\[`…`\]`, and plain equations (`V = I × R`).
fn formulas(sentence: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (open, close) in [("\\(", "\\)"), ("\\[", "\\]"), ("$", "$")] {
        let mut rest = sentence;
        while let Some(start) = rest.find(open) {
            let after = &rest[start + open.len()..];
            let Some(end) = after.find(close) else { break };
            let inner = after[..end].trim();
            if !inner.is_empty() {
                found.push(inner.to_owned());
            }
            rest = &after[end + close.len()..];
        }
    }
    let equation = [" = ", " → ", " -> "]
        .into_iter()
        .find(|sign| sentence.contains(sign));
    if let (true, Some(sign), false) = (found.is_empty(), equation, sentence.contains('`')) {
        // The equation's words around `=`: stop at a word of prose on either side.
        let tokens: Vec<&str> = sentence.split_whitespace().collect();
        if let Some(equals) = tokens.iter().position(|t| *t == sign.trim()) {
            // Symbols, digits and one- or two-letter names are math; a longer word is prose.
            let math = |t: &str| {
                t.chars().count() <= 2
                    || t.chars()
                        .any(|c| c.is_ascii_digit() || "=+-×*/^()²³√πΔ→".contains(c))
            };
            let left = tokens[..equals]
                .iter()
                .rev()
                .take_while(|t| math(t))
                .count();
            let right = tokens[equals + 1..].iter().take_while(|t| math(t)).count();
            let mut equation = &tokens[equals - left..=equals + right];
            // Short words of prose at its ends (`so`, `by`) are not part of it.
            while equation.first().is_some_and(|t| is_prose(t)) {
                equation = &equation[1..];
            }
            while equation.last().is_some_and(|t| is_prose(t)) {
                equation = &equation[..equation.len() - 1];
            }
            if equation.first() != Some(&sign.trim()) && equation.last() != Some(&sign.trim()) {
                found.push(
                    equation
                        .join(" ")
                        .trim_end_matches(['.', ',', ';'])
                        .to_owned(),
                );
            }
        }
    }
    found
}

fn not_answer(word: &str) -> bool {
    NOT_ANSWERS.contains(&word.to_lowercase().as_str())
}

fn is_prose(word: &str) -> bool {
    let lower = word.to_lowercase();
    STOPWORDS.contains(&lower.as_str()) || CLAUSE.contains(&lower.as_str())
}

/// Code between backticks, and calls written in the prose: `len(nums)`, `O(log n)`.
fn code(sentence: &str) -> Vec<String> {
    let parts: Vec<&str> = sentence.split('`').collect();
    let mut found: Vec<String> = parts
        .iter()
        .enumerate()
        .skip(1)
        .step_by(2)
        .map(|(at, code)| {
            let before = parts[at - 1]
                .trim_end()
                .rsplit(' ')
                .next()
                .unwrap_or_default()
                .to_lowercase();
            (before, code.trim())
        })
        // "written in square brackets like `[3, 1, 4]`": an example shows the fact, it is not it.
        .filter(|(before, code)| {
            !code.is_empty() && !["like", "e.g.", "as"].contains(&before.as_str())
        })
        .map(|(before, code)| {
            // "The method `nums.append(5)`": the method is the fact, the call its example.
            let introduced = ["method", "function"].contains(&before.as_str());
            match code.split_once('(') {
                Some((callee, _)) if introduced => callee
                    .rsplit('.')
                    .next()
                    .filter(|name| !name.is_empty())
                    .unwrap_or(code)
                    .to_owned(),
                _ => code.to_owned(),
            }
        })
        .collect();
    let prose: String = sentence.split('`').step_by(2).collect::<Vec<_>>().join(" ");
    let mut rest = prose.as_str();
    while let Some(open) = rest.find('(') {
        let name: String = rest[..open]
            .chars()
            .rev()
            .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '.'))
            .collect();
        let close = rest[open..].find(')').map(|at| open + at);
        match close {
            Some(close) if !name.is_empty() && close - open < 40 => {
                let start = open - name.len();
                found.push(rest[start..=close].to_owned());
                rest = &rest[close + 1..];
            }
            _ => rest = &rest[open + 1..],
        }
    }
    found
}

/// A number with the unit or noun after it: `37 °C`, `10 cm`, `four chambers`.
fn quantities(tokens: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        let number = is_number(token) || NUMBER_WORDS.contains(&token.to_lowercase().as_str());
        if !number || is_year(token) {
            continue;
        }
        match tokens.get(index + 1) {
            Some(unit) if !is_prose(unit) && !is_number(unit) && !not_answer(unit) => {
                found.push(format!("{token} {unit}"));
            }
            _ => found.push(token.clone()),
        }
    }
    found
}

/// Articles and possessives that open a noun phrase.
const DETERMINERS: [&str; 5] = ["the", "a", "an", "its", "their"];

/// The first noun phrase of a predicate that is not the topic: words after an article, up to the
/// next function word or punctuation (`takes place in the chloroplasts, which …` →
/// `chloroplasts`). An article marks a noun where a bare word (`lie close to`) may be an adverb.
fn object_phrase(predicate: &str, topic: &[String]) -> Option<String> {
    // The main clause only: a relative clause says something of its own.
    let words: Vec<&str> = predicate
        .split_whitespace()
        .take_while(|word| !["which", "that", "who", "whom", "where"].contains(word))
        .collect();
    // A name needs no article (`began in Britain`): it opens its phrase itself.
    let opens = |at: usize| {
        let word = words[at];
        if DETERMINERS.contains(&word.to_lowercase().as_str()) {
            Some(at + 1)
        } else {
            let name = at > 0
                && word.chars().next().is_some_and(char::is_uppercase)
                && !is_prose(word)
                && !DETERMINERS.contains(&words[at - 1].to_lowercase().as_str());
            name.then_some(at)
        }
    };
    (0..words.len()).filter_map(opens).find_map(|start| {
        let mut phrase: Vec<&str> = Vec::new();
        for word in &words[start..] {
            let bare = word.trim_matches(|c: char| !c.is_alphanumeric());
            // "(CPI)": a bracket adds an aside to the phrase, not a word of it.
            if word.starts_with('(')
                || bare.is_empty()
                || is_prose(bare)
                || not_answer(bare)
                || english::is_verb(bare)
            {
                break;
            }
            phrase.push(bare);
            // "a small, dense nucleus": a comma between adjectives does not end the phrase.
            let listed = word.ends_with(',')
                && words.get(start + phrase.len()).is_some_and(|next| {
                    !is_prose(next)
                        && !next.ends_with("ly")
                        && !DETERMINERS.contains(&next.to_lowercase().as_str())
                });
            if listed {
                phrase.clear();
                continue;
            }
            if word.ends_with([',', ';', ':', '.', '!', '?']) || phrase.len() == 4 {
                break;
            }
        }
        let phrase = phrase.join(" ");
        (!phrase.is_empty() && !is_topic(&phrase, topic)).then_some(phrase)
    })
}

/// Runs of content words (between punctuation and function words), longest first, then their
/// last word (the head of an English noun phrase): `cell wall`, `cellulose`, `hydrogen ions`.
fn phrases(tokens: &[String]) -> Vec<String> {
    let mut runs: Vec<Vec<&str>> = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for token in tokens {
        // Code and formulas are answers of their own (see `code`, `formulas`), not words.
        let code_like = token.contains(['(', ')', '[', ']', '`', '=']);
        if token.is_empty()
            || is_prose(token)
            || not_answer(token)
            || code_like
            || english::is_verb(token)
        {
            if !current.is_empty() {
                runs.push(std::mem::take(&mut current));
            }
        } else {
            current.push(token);
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    let mut found = Vec::new();
    for run in &runs {
        if run.len() <= 4 {
            found.push(run.join(" "));
        }
        if run.len() > 1 {
            found.push(run[run.len() - 2..].join(" "));
            found.push((*run.last().unwrap_or(&"")).to_owned());
            found.push(run[0].to_owned());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each line a sentence of its own (offsets are not looked at here).
    fn sentences_of(lines: &[&str]) -> Vec<Sentence> {
        lines
            .iter()
            .map(|text| Sentence {
                start: 0,
                end: text.len(),
                text: (*text).to_owned(),
            })
            .collect()
    }

    fn planned(sentence: &str) -> (String, Option<String>) {
        let plan = plan(sentence, &[]).expect(sentence);
        (plan.answer, plan.question)
    }

    fn answer(sentence: &str) -> String {
        planned(sentence).0
    }

    #[test]
    fn named_terms_meanings_and_definitions_get_questions_of_their_own_words() {
        assert_eq!(
            planned("The expression \\(b^2 - 4ac\\) is called the discriminant."),
            (
                "the discriminant".to_owned(),
                Some("What is the expression \\(b^2 - 4ac\\) called?".to_owned())
            )
        );
        assert_eq!(
            planned(
                "In a right-angled triangle, the longest side is called the hypotenuse; it lies opposite."
            ),
            (
                "the hypotenuse".to_owned(),
                Some("In a right-angled triangle, what is the longest side called?".to_owned())
            )
        );
        assert_eq!(
            planned("Negligence means a failure to take reasonable care, judged by a person."),
            (
                "a failure to take reasonable care".to_owned(),
                Some("What does negligence mean?".to_owned())
            )
        );
        assert_eq!(
            planned("Firms in perfect competition are therefore called price takers."),
            (
                "price takers".to_owned(),
                Some("What are firms in perfect competition called?".to_owned())
            )
        );
        assert_eq!(
            planned("Workers moved from the countryside to cities, a process called urbanisation."),
            (
                "urbanisation".to_owned(),
                Some(
                    "Workers moved from the countryside to cities: what is this process called?"
                        .to_owned()
                )
            )
        );
        assert_eq!(
            planned("The unit of force is the newton."),
            (
                "the newton".to_owned(),
                Some("What is the unit of force?".to_owned())
            )
        );
        assert_eq!(
            planned("Supply is the amount that sellers offer at each price."),
            (
                "Supply".to_owned(),
                Some("What is the amount that sellers offer at each price called?".to_owned())
            )
        );
        assert_eq!(
            answer("Pores on the leaf called stomata release gas."),
            "stomata"
        );
        assert_eq!(
            planned(
                "Oxygen leaves through tiny pores on the underside of the leaf called stomata."
            ),
            (
                "stomata".to_owned(),
                Some("What are the tiny pores on the underside of the leaf called?".to_owned())
            )
        );
        assert_eq!(
            planned(
                "A crime requires two elements: a guilty act, called the actus reus, and more."
            ),
            (
                "the actus reus".to_owned(),
                Some("What is a guilty act called?".to_owned())
            )
        );
        assert_eq!(
            planned(
                "An oligopoly is a market dominated by a few large firms, such as phone networks."
            ),
            (
                "An oligopoly".to_owned(),
                Some("What is a market dominated by a few large firms called?".to_owned())
            )
        );
    }

    #[test]
    fn dates_formulas_code_and_quantities_are_answers_for_the_model_to_ask() {
        for (sentence, expected) in [
            (
                "On 14 July 1789 a crowd stormed the Bastille.",
                "14 July 1789",
            ),
            ("The French Revolution began in 1789.", "1789"),
            ("It is written \\(F = ma\\).", "F = ma"),
            (
                "Ohm's law says that so V = I × R, where R is the resistance.",
                "V = I × R",
            ),
            ("The function `len(nums)` counts items.", "len"),
            ("The call `sorted(nums)` returns a copy.", "sorted(nums)"),
            (
                "In 1769 James Watt patented an improved steam engine.",
                "James Watt",
            ),
            (
                "The spinning jenny was invented by James Hargreaves around 1764.",
                "James Hargreaves",
            ),
            ("Binary search runs in O(log n) time.", "O(log n)"),
            ("Most enzymes work best at 37 °C here.", "37 °C"),
            ("The heart has four chambers.", "four chambers"),
        ] {
            let plan = plan(sentence, &[]).expect(sentence);
            assert_eq!(plan.answer, expected, "{sentence}");
            assert_eq!(plan.question, None, "{sentence}");
            assert!(plan.ask_model);
        }
        assert!(!answer("written like `nums = [3, 1, 4]` here").starts_with('='));
        assert!(!answer("Lists are written in square brackets like `[3, 1, 4]`.").contains('['));
        assert_eq!(
            answer("The third law says that every action has an equal and opposite reaction."),
            "opposite reaction"
        );
        assert_eq!(
            answer("The war began in 1914 and ended on 11 November 1918."),
            "11 November 1918"
        );
        assert_eq!(
            answer("In a covalent bond, two non-metal atoms share a pair of electrons."),
            "covalent bond"
        );
    }

    #[test]
    fn otherwise_the_subject_is_asked_for() {
        assert_eq!(
            planned("Ribosomes build proteins from amino acids."),
            (
                "Ribosomes".to_owned(),
                Some("What builds proteins from amino acids?".to_owned())
            )
        );
        assert_eq!(
            answer("Precipitation such as rain or snow returns the water to the ground."),
            "Precipitation"
        );
    }

    #[test]
    fn a_pronoun_or_topic_subject_is_answered_by_the_first_noun_phrase_after_it() {
        assert_eq!(
            answer(
                "It takes place in the chloroplasts, which contain the green pigment chlorophyll."
            ),
            "chloroplasts"
        );
        assert_eq!(
            plan(
                "The Industrial Revolution began in Britain in the second half of the century.",
                &["industrial".to_owned(), "revolution".to_owned()]
            )
            .expect("a plan")
            .answer,
            "Britain"
        );
        assert_eq!(
            plan(
                "The plates sit on a small, dense layer of rock.",
                &["plate".to_owned()]
            )
            .expect("a plan")
            .answer,
            "dense layer"
        );
    }

    #[test]
    fn a_passive_event_ending_on_its_date_asks_when() {
        assert_eq!(
            planned("King Louis XVI was executed in 1793."),
            (
                "1793".to_owned(),
                Some("When was King Louis XVI executed?".to_owned())
            )
        );
        assert_eq!(
            planned("After mass protests, the border was opened on 9 November 1989."),
            (
                "9 November 1989".to_owned(),
                Some("After mass protests, when was the border opened?".to_owned())
            )
        );
        assert_eq!(
            planned("Germany was officially reunified on 3 October 1990.")
                .1
                .as_deref(),
            Some("When was Germany officially reunified?")
        );
        // Active, or more after the date: the model phrases it.
        assert_eq!(planned("The French Revolution began in 1789.").1, None);
        assert_eq!(
            planned("The wall was built in 1961 to stop people leaving.").1,
            None
        );
    }

    #[test]
    fn a_later_sentence_with_the_same_answer_gives_way_to_the_first() {
        let facts = rank(&sentences_of(&[
            "Pythagoras' theorem states that \\(a^2 + b^2 = c^2\\), where c is the hypotenuse.",
            "The converse is also true: if the sides satisfy \\(a^2 + b^2 = c^2\\), the angle is right.",
        ]));
        assert_eq!(facts.len(), 1, "{facts:?}");
        assert_eq!(facts[0].sentence, 0);
    }

    #[test]
    fn what_must_be_proved_is_the_fact() {
        assert_eq!(
            answer(
                "To succeed, the claimant must prove that the defendant owed them a duty of care, that the duty was breached."
            ),
            "duty of care"
        );
    }

    #[test]
    fn a_name_the_sentence_explains_is_the_answer() {
        assert_eq!(
            answer("On 14 July 1789 a crowd stormed the Bastille, a fortress and prison in Paris."),
            "the Bastille"
        );
        // The comma of an opening phrase explains nothing.
        assert_ne!(
            answer("In Python, a list stores an ordered collection of items."),
            "Python"
        );
    }

    #[test]
    fn a_pronoun_after_a_short_opener_is_the_subject() {
        assert_eq!(
            answer(
                "In many countries it is measured with the Consumer Price Index (CPI), which tracks prices."
            ),
            "Consumer Price Index"
        );
    }

    #[test]
    fn a_kind_of_the_topic_is_asked_for_by_its_kind() {
        let inflation = ["inflation".to_owned()];
        assert_eq!(
            plan(
                "Cost-push inflation happens when production costs, such as wages, rise.",
                &inflation
            )
            .expect("a plan")
            .question
            .as_deref(),
            Some("What type of inflation happens when production costs, such as wages, rise?")
        );
        // "Each enzyme" is every enzyme.
        assert_eq!(
            plan(
                "Each enzyme has an active site with a specific shape.",
                &["enzyme".to_owned()]
            )
            .expect("a plan")
            .question
            .as_deref(),
            Some("What has an active site with a specific shape?")
        );
    }

    #[test]
    fn the_opening_sentence_subject_is_the_topic() {
        let facts = rank(&sentences_of(&[
            "Tropical rainforests lie close to the equator, mainly between the tropics.",
            "The largest rainforest is the Amazon, which covers much of Brazil.",
        ]));
        let answers: Vec<&str> = facts.iter().map(|fact| fact.plan.answer.as_str()).collect();
        assert!(answers.contains(&"equator"), "{answers:?}");
    }

    #[test]
    fn a_subject_that_picks_out_one_thing_is_answered_by_the_name_after_it() {
        assert_eq!(
            planned(
                "The leading case on duty of care is Donoghue v Stevenson (1932), in which a woman found a snail."
            ),
            (
                "Donoghue v Stevenson".to_owned(),
                Some("What is the leading case on duty of care?".to_owned())
            )
        );
        assert_eq!(
            planned("The largest rainforest is the Amazon, which covers much of Brazil."),
            (
                "the Amazon".to_owned(),
                Some("What is the largest rainforest?".to_owned())
            )
        );
        // Too short to stand alone: the model phrases it from the sentence.
        assert_eq!(
            planned(
                "The immediate trigger was the assassination of Archduke Franz Ferdinand in Sarajevo on 28 June 1914."
            ),
            (
                "the assassination of Archduke Franz Ferdinand".to_owned(),
                None
            )
        );
        assert_eq!(
            answer("Der erste Reichspräsident war Friedrich Ebert."),
            "Friedrich Ebert"
        );
        assert!(
            worth("Der erste Reichspräsident war Friedrich Ebert.", 3)
                > worth("Die Republik hatte viele Parteien in Berlin.", 3)
        );
        // "forest" ends like a superlative and is none.
        assert_eq!(
            identification("The forest floor is dark and damp, with little light."),
            None
        );
    }

    #[test]
    fn a_date_in_an_aside_leaves_the_named_subject_as_the_answer() {
        assert_eq!(
            answer("The Treaty of Versailles, signed in 1919, forced Germany to pay reparations."),
            "The Treaty of Versailles"
        );
        assert_eq!(answer("King Louis XVI was executed in 1793."), "1793");
    }

    #[test]
    fn a_topic_defined_by_what_it_does_is_asked_for_that() {
        let acids = ["acid".to_owned()];
        let answer_of = |sentence: &str| plan(sentence, &acids).expect(sentence).answer;
        assert_eq!(
            answer_of("Acids are substances that release hydrogen ions (H+) in water."),
            "hydrogen ions"
        );
        assert_eq!(
            plan(
                "A stack is a data structure that follows the LIFO rule: last in, first out.",
                &["stack".to_owned()]
            )
            .expect("a plan")
            .answer,
            "LIFO"
        );
        assert_eq!(
            plan(
                "Enzymes are biological catalysts that speed up chemical reactions without being used up.",
                &["enzyme".to_owned()]
            )
            .expect("a plan")
            .answer,
            "chemical reactions"
        );
        // A term that is not the topic is still asked for by its definition.
        assert_eq!(
            answer("Acids are substances that release hydrogen ions (H+) in water."),
            "Acids"
        );
        // "the process by which …" describes the kind; it does not set it apart.
        assert_eq!(
            plan(
                "Photosynthesis is the process by which green plants make their own food.",
                &["photosynthesis".to_owned()]
            )
            .expect("a plan")
            .answer,
            "Photosynthesis"
        );
    }

    #[test]
    fn units_and_what_is_said_of_the_topic_are_answers() {
        assert_eq!(
            planned(
                "Electric current is the rate of flow of charge and is measured in amperes (A)."
            ),
            (
                "amperes".to_owned(),
                Some("In what unit is electric current measured?".to_owned())
            )
        );
        assert_eq!(
            planned("Potential difference, or voltage, is measured in volts (V)."),
            (
                "volts".to_owned(),
                Some("In what unit is potential difference, or voltage, measured?".to_owned())
            )
        );
        let topic = ["vapour".to_owned(), "water".to_owned()];
        let plan = plan(
            "The water vapour rises, cools and condenses into clouds.",
            &topic,
        )
        .expect("planned");
        assert_eq!(plan.answer, "clouds");
        let sentences =
            sentences_of(&["Water falls.", "Water rises.", "Water flows.", "Ice melts."]);
        assert_eq!(super::topic(&sentences), ["water"]);
    }

    #[test]
    fn a_glossary_line_asks_for_its_term() {
        assert_eq!(
            planned("ephemeral (adj.) – lasting for a very short time"),
            (
                "ephemeral".to_owned(),
                Some("What is the word for 'lasting for a very short time'?".to_owned())
            )
        );
    }

    #[test]
    fn a_vocabulary_list_is_asked_both_ways_in_its_order_meaning_first() {
        let lines = [
            "ephemeral (adj.) – lasting for a very short time",
            "ubiquitous (adj.) – present or found everywhere",
            "meticulous (adj.) – showing great attention to detail",
        ];
        let asked: Vec<(String, Option<String>)> = rank(&sentences_of(&lines))
            .into_iter()
            .map(|fact| (fact.plan.answer, fact.plan.question))
            .collect();
        assert_eq!(
            asked,
            [
                (
                    "lasting for a very short time".to_owned(),
                    Some("What does 'ephemeral' mean?".to_owned())
                ),
                (
                    "ubiquitous".to_owned(),
                    Some("What is the word for 'present or found everywhere'?".to_owned())
                ),
                (
                    "showing great attention to detail".to_owned(),
                    Some("What does 'meticulous' mean?".to_owned())
                ),
            ]
        );
    }

    #[test]
    fn german_sentences_are_left_to_cloze_cards() {
        let plan =
            plan("Die Arterien transportieren das Blut vom Herzen weg.", &[]).expect("planned");
        assert_eq!(plan.answer, "Arterien");
        assert_eq!(plan.question, None);
        assert!(!plan.ask_model);
        assert_eq!(
            answer("Im Jahr 1923 erlebte das Land eine Hyperinflation."),
            "1923"
        );
        assert_eq!(
            answer("Das Herz ist ein Hohlmuskel, der das Blut durch den Körper pumpt."),
            "ein Hohlmuskel"
        );
        assert_eq!(
            answer("Der erste Reichspräsident war Friedrich Ebert."),
            "Friedrich Ebert"
        );
        // `in` is German too: these are German sentences.
        for german in [
            "Die Weimarer Republik war die erste parlamentarische Demokratie in Deutschland.",
            "In den feinen Kapillaren findet der Austausch von Sauerstoff und Kohlenstoffdioxid statt.",
        ] {
            assert!(is_german(german), "{german}");
        }
        assert!(!is_german("The die is cast in the game."));
    }

    #[test]
    fn sentences_with_facts_outrank_introductions() {
        let intro = worth("The cell is the basic unit of life.", 0);
        let date = worth("The French Revolution began in 1789.", 1);
        let term = worth("This tendency is called inertia.", 2);
        assert!(date > intro && term > intro, "{intro} {date} {term}");
        let sentences: Vec<Sentence> = [
            "The cell is the unit of life.",
            "Mitochondria make ATP in 1890.",
        ]
        .iter()
        .enumerate()
        .map(|(index, text)| Sentence {
            start: index * 40,
            end: index * 40 + text.len(),
            text: (*text).to_owned(),
        })
        .collect();
        assert_eq!(rank(&sentences)[0].sentence, 1);
    }
}
