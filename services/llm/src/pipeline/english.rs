//! Just enough English grammar to turn a statement into a question without a model: find the
//! verb after the subject (a lexicon of the verbs study notes use, and their endings) and make it
//! agree with "What". A small model asked to do this copies the answer into the question or asks
//! something else; these templates cannot.

/// Base forms of verbs common in study notes.
const VERBS: &[&str] = &[
    "absorb",
    "accept",
    "add",
    "adopt",
    "affect",
    "allow",
    "apply",
    "attack",
    "attract",
    "become",
    "belong",
    "compete",
    "consider",
    "continue",
    "cover",
    "differ",
    "equal",
    "exist",
    "fail",
    "involve",
    "lack",
    "look",
    "meet",
    "raise",
    "refer",
    "rely",
    "represent",
    "result",
    "seem",
    "serve",
    "sit",
    "slide",
    "stand",
    "tend",
    "vary",
    "want",
    "begin",
    "bind",
    "bond",
    "break",
    "bring",
    "build",
    "buy",
    "carry",
    "cause",
    "change",
    "compare",
    "condense",
    "connect",
    "consist",
    "contain",
    "control",
    "convert",
    "cool",
    "cost",
    "create",
    "cross",
    "cut",
    "decide",
    "declare",
    "decrease",
    "defeat",
    "define",
    "depend",
    "describe",
    "destroy",
    "determine",
    "develop",
    "die",
    "discover",
    "dissolve",
    "divide",
    "do",
    "drive",
    "eat",
    "elect",
    "end",
    "enter",
    "evaporate",
    "execute",
    "explain",
    "fall",
    "feed",
    "fight",
    "find",
    "fit",
    "flow",
    "follow",
    "form",
    "found",
    "give",
    "go",
    "grow",
    "happen",
    "have",
    "heat",
    "help",
    "hold",
    "include",
    "increase",
    "invade",
    "invent",
    "join",
    "keep",
    "kill",
    "lead",
    "leave",
    "lend",
    "let",
    "lie",
    "live",
    "lose",
    "make",
    "mean",
    "measure",
    "melt",
    "move",
    "need",
    "occur",
    "offer",
    "orbit",
    "owe",
    "pass",
    "pay",
    "perform",
    "produce",
    "protect",
    "provide",
    "prove",
    "publish",
    "pump",
    "push",
    "reach",
    "react",
    "receive",
    "reduce",
    "reflect",
    "release",
    "remain",
    "remove",
    "repel",
    "replace",
    "require",
    "return",
    "rise",
    "rule",
    "run",
    "say",
    "sell",
    "send",
    "separate",
    "set",
    "share",
    "show",
    "sign",
    "sink",
    "speed",
    "split",
    "spread",
    "start",
    "state",
    "stop",
    "store",
    "storm",
    "supply",
    "support",
    "surround",
    "take",
    "tell",
    "track",
    "trade",
    "transfer",
    "transport",
    "travel",
    "turn",
    "use",
    "vote",
    "win",
    "work",
    "write",
];

/// Irregular past forms (and participles) of the verbs above.
const IRREGULAR: &[&str] = &[
    "became", "began", "begun", "bound", "broke", "broken", "brought", "built", "bought", "came",
    "cut", "did", "done", "drove", "ate", "fell", "fed", "fought", "found", "gave", "given",
    "went", "gone", "grew", "grown", "had", "held", "kept", "led", "left", "lent", "lay", "lost",
    "made", "meant", "paid", "ran", "rose", "risen", "said", "sold", "sent", "set", "showed",
    "shown", "sank", "spread", "split", "took", "taken", "told", "won", "wrote", "written",
];

/// Verbs that are not content: forms of be, have and the modals.
const AUXILIARIES: &[&str] = &[
    "is", "are", "was", "were", "has", "have", "had", "can", "could", "will", "would", "may",
    "might", "must", "should", "does", "do", "did",
];

/// Adverbs that stand between a subject and its verb ("Rivers then carry …").
const ADVERBS: &[&str] = &[
    "also",
    "then",
    "often",
    "usually",
    "always",
    "never",
    "only",
    "still",
    "mainly",
    "mostly",
    "first",
    "later",
    "finally",
    "sometimes",
    "generally",
];

/// Whether `word` is a form of a known verb: the base, an irregular form, or a regular ending
/// (`-s`, `-es`, `-ies`, `-ed`, `-ied`, `-d`, `-ing`) on a known base.
fn known_verb(word: &str) -> bool {
    let known = |base: &str| VERBS.contains(&base);
    if known(word) || IRREGULAR.contains(&word) {
        return true;
    }
    let y = |stem: &str| format!("{stem}y");
    let e = |stem: &str| format!("{stem}e");
    [
        word.strip_suffix("ies").map(y),
        word.strip_suffix("ied").map(y),
        word.strip_suffix("es").map(str::to_owned),
        word.strip_suffix('s').map(str::to_owned),
        word.strip_suffix("ed").map(str::to_owned),
        word.strip_suffix("ed").map(e),
        word.strip_suffix('d').map(str::to_owned),
        word.strip_suffix("ing").map(str::to_owned),
        word.strip_suffix("ing").map(e),
    ]
    .into_iter()
    .flatten()
    .any(|stem| known(&stem))
}

/// Whether `word` is a verb form: a known verb, an auxiliary, or a regular ending on a Latinate
/// stem (`evaporates`, `ionises`, `classifies`).
pub fn is_verb(word: &str) -> bool {
    let lower = word.to_lowercase();
    AUXILIARIES.contains(&lower.as_str())
        || known_verb(&lower)
        || [
            "ates", "izes", "ises", "ifies", "ated", "ized", "ised", "ified",
        ]
        .iter()
        .any(|ending| lower.len() > ending.len() + 2 && lower.ends_with(ending))
}

/// The verb as it agrees with a singular subject ("What"): `build` → `builds`, `carry` →
/// `carries`, `have` → `has`; other forms stay.
pub fn singular(verb: &str) -> String {
    let lower = verb.to_lowercase();
    if VERBS.contains(&lower.as_str()) {
        return match lower.as_str() {
            "have" => "has".to_owned(),
            "do" => "does".to_owned(),
            "go" => "goes".to_owned(),
            _ if lower.ends_with('y') && !lower.ends_with("ay") && !lower.ends_with("oy") => {
                format!("{}ies", &lower[..lower.len() - 1])
            }
            _ if ["s", "sh", "ch", "x", "z"]
                .iter()
                .any(|end| lower.ends_with(end)) =>
            {
                format!("{lower}es")
            }
            _ => format!("{lower}s"),
        };
    }
    match lower.as_str() {
        "are" => "is".to_owned(),
        "were" => "was".to_owned(),
        _ => verb.to_owned(),
    }
}

/// Words ending in -ly that are not adverbs.
const NOT_ADVERBS: &[&str] = &[
    "monopoly",
    "oligopoly",
    "family",
    "supply",
    "apply",
    "reply",
    "assembly",
    "anomaly",
    "italy",
    "july",
    "butterfly",
    "ally",
    "rely",
    "multiply",
    "comply",
    "jelly",
    "lily",
    "poly",
    "belly",
];

pub fn is_adverb(word: &str) -> bool {
    let lower = word.to_lowercase();
    ADVERBS.contains(&lower.as_str())
        || (lower.len() > 4 && lower.ends_with("ly") && !NOT_ADVERBS.contains(&lower.as_str()))
}

/// Words a sentence may open with before its subject: a phrase up to a comma ("In a market, …").
const OPENERS: &[&str] = &[
    "in",
    "on",
    "at",
    "during",
    "after",
    "before",
    "for",
    "when",
    "if",
    "because",
    "although",
    "while",
    "by",
    "with",
    "under",
    "as",
    "since",
    "once",
    "unlike",
    "like",
    "according",
    "where",
    "whereas",
    "to",
    "from",
    "without",
    "despite",
    "after",
];

/// Words that may open a sentence without a comma and are not its subject ("So the …").
const CONNECTIVES: &[&str] = &[
    "so",
    "thus",
    "therefore",
    "hence",
    "however",
    "also",
    "then",
    "finally",
];

/// A sentence cut at its subject: what opens it, the subject and the predicate from its verb on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// An opening phrase with its comma ("In a market,"), or empty.
    pub opener: String,
    pub subject: String,
    /// From the verb (or an adverb before it) to the end, without the final full stop.
    pub predicate: String,
}

/// Splits an English statement into opener, subject and predicate; `None` when no verb follows
/// a short subject (at most six words, no comma).
pub fn clause(sentence: &str) -> Option<Clause> {
    let sentence = sentence.trim().trim_end_matches(['.', '!']);
    let words: Vec<&str> = sentence.split_whitespace().collect();
    let mut start = 0;
    let first = words.first()?.trim_end_matches(',').to_lowercase();
    if OPENERS.contains(&first.as_str()) {
        let comma = words.iter().take(12).position(|word| word.ends_with(','));
        // "In many countries it is measured …": a short opener without its comma ends where a
        // pronoun takes up the subject.
        let pronoun = words
            .iter()
            .take(comma.unwrap_or(8).min(8))
            .position(|word| ["it", "they", "he", "she", "we"].contains(word));
        start = match (pronoun, comma) {
            (Some(at), _) if at >= 2 => at,
            (_, Some(comma)) => comma + 1,
            _ => return None,
        };
    } else if CONNECTIVES.contains(&first.as_str()) {
        start = 1;
    }
    let verb = (start + 1..words.len().min(start + 7)).find(|&at| {
        is_verb(words[at].trim_matches(|c: char| !c.is_alphanumeric()))
            || (is_adverb(words[at])
                && words
                    .get(at + 1)
                    .is_some_and(|next| is_verb(next.trim_matches(|c: char| !c.is_alphanumeric()))))
    })?;
    let subject = &words[start..verb];
    let relative =
        |word: &&str| ["who", "which", "that", "whose"].contains(&word.to_lowercase().as_str());
    if subject.iter().any(|word| word.ends_with([',', ';', ':'])) || subject.iter().any(relative) {
        return None;
    }
    // "an offer, an acceptance …": a noun in a list, not a verb ("rises, cools" is a list of verbs).
    let listed = words[verb].ends_with([',', ';', ':'])
        && words
            .get(verb + 1)
            .is_some_and(|next| ["a", "an", "the"].contains(&next.to_lowercase().as_str()));
    if listed {
        return None;
    }
    Some(Clause {
        opener: words[..start].join(" "),
        subject: subject.join(" "),
        predicate: words[verb..].join(" "),
    })
}

/// "What …?" (or "Who …?" for a person's name) asking for the clause's subject: its predicate with
/// its verbs made to agree with a singular subject.
pub fn subject_question(clause: &Clause) -> String {
    let asker = if is_name(&clause.subject) {
        "Who"
    } else {
        "What"
    };
    asked_by(clause, asker)
}

/// "What type of inflation …?": asks which kind of `kind` the clause's subject is, for a subject
/// that is a kind of the topic (`Cost-push inflation happens when …`).
pub fn kind_question(clause: &Clause, kind: &str) -> String {
    asked_by(clause, &format!("What type of {}", kind.to_lowercase()))
}

fn asked_by(clause: &Clause, asker: &str) -> String {
    let words: Vec<&str> = clause.predicate.split_whitespace().collect();
    let mut agreed = Vec::with_capacity(words.len());
    let mut expect_verb = true;
    for word in &words {
        let bare = word.trim_matches(|c: char| !c.is_alphanumeric());
        if expect_verb && is_verb(bare) && !is_adverb(bare) {
            agreed.push(word.replacen(bare, &singular(bare), 1));
            expect_verb = false;
        } else {
            agreed.push((*word).to_owned());
            // A verb after "and" shares the subject: "… and makes ATP".
            if bare.eq_ignore_ascii_case("and") {
                expect_verb = true;
            } else if !is_adverb(bare) {
                expect_verb = false;
            }
        }
    }
    let question = format!("{asker} {}?", agreed.join(" "));
    if clause.opener.is_empty() {
        question
    } else {
        format!(
            "{} {}{}",
            clause.opener,
            lower_first(asker),
            &question[asker.len()..]
        )
    }
}

/// A person's name: two or more capitalised words and no article ("Napoleon Bonaparte").
fn is_name(subject: &str) -> bool {
    let words: Vec<&str> = subject.split_whitespace().collect();
    words.len() >= 2
        && words
            .iter()
            .all(|word| word.chars().next().is_some_and(char::is_uppercase))
        && !["The", "A", "An"].contains(&words[0])
}

/// The phrase with its first letter lower-cased, unless it opens with an acronym (`DNA`) or a
/// name of two capitalised words.
pub fn lower_first(phrase: &str) -> String {
    let mut words = phrase.split_whitespace();
    let capital = |word: Option<&str>| {
        word.and_then(|word| word.chars().next())
            .is_some_and(char::is_uppercase)
    };
    let first = words.next();
    let acronym = first.is_some_and(|word| word.chars().skip(1).any(char::is_uppercase));
    if acronym || (capital(first) && capital(words.next())) {
        return phrase.to_owned();
    }
    let mut chars = phrase.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_are_known_by_form() {
        for verb in [
            "stores",
            "build",
            "carries",
            "executed",
            "began",
            "evaporates",
            "makes",
        ] {
            assert!(is_verb(verb), "{verb}");
        }
        for word in ["nucleus", "cell", "mitochondria", "protein", "DNA", "the"] {
            assert!(!is_verb(word), "{word}");
        }
        assert_eq!(singular("build"), "builds");
        assert_eq!(singular("carry"), "carries");
        assert_eq!(singular("have"), "has");
        assert_eq!(singular("are"), "is");
        assert_eq!(singular("stores"), "stores");
    }

    #[test]
    fn a_statement_becomes_a_question_for_its_subject() {
        let ask = |sentence: &str| subject_question(&clause(sentence).expect(sentence));
        assert_eq!(
            ask("The nucleus stores the cell's DNA."),
            "What stores the cell's DNA?"
        );
        assert_eq!(
            ask("Mitochondria release energy from glucose and make ATP."),
            "What releases energy from glucose and makes ATP?"
        );
        assert_eq!(
            ask("Napoleon Bonaparte took power in 1799."),
            "Who took power in 1799?"
        );
        assert_eq!(
            ask("In a market, buyers pay for goods."),
            "In a market, what pays for goods?"
        );
        assert_eq!(
            ask("Rivers then carry water back."),
            "What then carries water back?"
        );
        assert_eq!(
            clause("An oligopoly is a market.").expect("clause").subject,
            "An oligopoly"
        );
        assert_eq!(
            clause("Heat from the Sun evaporates water.")
                .expect("clause")
                .subject,
            "Heat from the Sun"
        );
    }

    #[test]
    fn no_clause_without_a_verb_after_a_short_subject() {
        assert_eq!(
            clause("Water, air and land, all of them together here."),
            None
        );
        assert_eq!(
            clause("In a market with many sellers and buyers all around them"),
            None
        );
    }

    #[test]
    fn phrases_lose_their_capital_unless_names() {
        assert_eq!(lower_first("The unit of force"), "the unit of force");
        assert_eq!(lower_first("Supply"), "supply");
        assert_eq!(lower_first("DNA polymerase"), "DNA polymerase");
        assert_eq!(lower_first("Newton's First Law"), "Newton's First Law");
    }
}
