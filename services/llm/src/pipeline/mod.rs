//! Text to flashcards: sentences → facts worth a card, ranked, each with its answer taken from
//! the sentence → a question from the sentence's own words where a template fits, else phrased by
//! the model → checks (a question, supported by the sentence, giving nothing away) → else a cloze
//! of the sentence → de-duplicate. Every step but the model call is a pure function in its own
//! module.

pub mod cards;
pub mod english;
pub mod facts;
pub mod ground;
pub mod prompt;
pub mod quality;
pub mod sentences;
pub mod text;

pub use flashcards_contracts::llm::{Card, CardKind, Dropped, Span, Usage};

use crate::backend::{BackendError, ChatRequest, ModelBackend, SamplingParams};
use cards::Candidate;
use sentences::Sentence;

/// The card `candidate` makes, supported by `source`.
fn finished_card(candidate: Candidate, source: Span) -> Card {
    match candidate.kind {
        CardKind::Basic => Card {
            kind: CardKind::Basic,
            front: Some(candidate.front),
            back: Some(candidate.back),
            text: None,
            source,
        },
        CardKind::Cloze => Card {
            kind: CardKind::Cloze,
            front: None,
            back: None,
            text: Some(candidate.front),
            source,
        },
    }
}

/// `candidate` left out for `reason`.
fn dropped(reason: &'static str, detail: impl Into<String>, candidate: &Candidate) -> Dropped {
    Dropped {
        reason: reason.into(),
        detail: detail.into(),
        front: Some(candidate.front.clone()),
        back: (!candidate.back.is_empty()).then(|| candidate.back.clone()),
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub text: String,
    pub max_cards: usize,
    pub kinds: Vec<CardKind>,
    pub language: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Generation {
    pub cards: Vec<Card>,
    pub dropped: Vec<Dropped>,
    pub usage: Usage,
    /// Model replies that could not be read at all.
    pub invalid_outputs: usize,
}

/// Model calls one generation may make: one per card asked, and half as many again (at least 2)
/// for cards that fail their checks.
pub fn call_budget(max_cards: usize) -> usize {
    max_cards + (max_cards / 2).max(2)
}

/// Runs the pipeline; the model is the only I/O, and a failed call fails the whole generation.
/// The best facts are tried first, in rounds: each round takes as many untried facts as cards are
/// still missing, in the text's order, until `max_cards` cards are kept or the facts run out. The
/// cards come back in the text's order.
pub async fn generate(
    backend: &dyn ModelBackend,
    request: &Request,
) -> Result<Generation, BackendError> {
    let sentences = sentences::split(&request.text);
    let mut untried = facts::rank(&sentences).into_iter();
    let budget = call_budget(request.max_cards) as u64;
    let mut generation = Generation::default();
    let mut kept: Vec<(Candidate, Span, usize)> = Vec::new();
    loop {
        let wanted = request.max_cards.saturating_sub(kept.len());
        let mut round: Vec<facts::Fact> = untried.by_ref().take(wanted).collect();
        if round.is_empty() {
            break;
        }
        round.sort_by_key(|fact| fact.sentence);
        for fact in round {
            let sentence = &sentences[fact.sentence];
            let wants_question = fact.plan.question.is_none()
                && fact.plan.ask_model
                && request.kinds.contains(&CardKind::Basic)
                && generation.usage.calls < budget;
            let mut question = fact.plan.question.clone();
            if wants_question {
                let completion = backend
                    .complete(&ChatRequest {
                        messages: prompt::messages(
                            &sentence.text,
                            &fact.plan.answer,
                            request.language.as_deref(),
                        ),
                        max_tokens: prompt::MAX_TOKENS_PER_CARD,
                        schema: Some(prompt::output_schema()),
                        sampling: SamplingParams::GREEDY,
                    })
                    .await?;
                generation.usage.prompt_tokens += completion.prompt_tokens;
                generation.usage.completion_tokens += completion.completion_tokens;
                generation.usage.calls += 1;
                match cards::parse_reply(&completion.content) {
                    Ok(reply)
                        if !ground::asks_within_clause(
                            &reply.question,
                            &sentence.text,
                            &fact.plan.answer,
                        ) =>
                    {
                        generation.dropped.push(Dropped {
                            reason: "ungrounded".into(),
                            detail: "the question asks about another clause than its answer's"
                                .to_owned(),
                            front: Some(reply.question),
                            back: Some(fact.plan.answer.clone()),
                        });
                    }
                    Ok(reply) => question = Some(reply.question),
                    Err(err) => {
                        generation.invalid_outputs += 1;
                        generation.dropped.push(Dropped {
                            reason: "invalid_output".into(),
                            detail: err.to_string(),
                            front: None,
                            back: None,
                        });
                    }
                }
            }
            let before = fact.sentence.checked_sub(1).map(|index| &sentences[index]);
            let made = card(
                &fact.plan.answer,
                question.as_deref(),
                sentence,
                before,
                &request.kinds,
            );
            generation.dropped.extend(made.rejected);
            let Some((candidate, span)) = made.card else {
                continue;
            };
            match kept
                .iter()
                .find(|(card, _, index)| same_fact((card, *index), (&candidate, fact.sentence)))
            {
                Some((earlier, ..)) => {
                    let detail = format!("asks what the card \"{}\" asks", earlier.front);
                    generation
                        .dropped
                        .push(dropped("duplicate", detail, &candidate));
                }
                None => kept.push((candidate, span, fact.sentence)),
            }
        }
    }
    kept.sort_by_key(|(_, span, _)| span.start);
    generation.cards = kept
        .into_iter()
        .map(|(candidate, span, _)| finished_card(candidate, span))
        .collect();
    Ok(generation)
}

/// A card made for one fact, and what was tried and rejected on the way.
#[derive(Debug, Default)]
pub struct Made {
    pub card: Option<(Candidate, Span)>,
    pub rejected: Vec<Dropped>,
}

/// The card for `answer` of `sentence`: a basic card when `question` passes the checks (a
/// question, supported by the sentence and the one `before` it, not giving the answer away), else
/// (or when only cloze is asked for) the sentence with the answer deleted. A sentence that opens
/// with a pronoun takes the sentence before it into its cloze, so that the card says what the
/// pronoun stands for.
pub fn card(
    answer: &str,
    question: Option<&str>,
    sentence: &Sentence,
    before: Option<&Sentence>,
    kinds: &[CardKind],
) -> Made {
    let mut made = Made::default();
    let answer_text = quality::mathjax(answer.trim());
    let span = Span {
        start: sentence.start,
        end: sentence.end,
    };
    if let (Some(question), true) = (question, kinds.contains(&CardKind::Basic)) {
        let basic = Candidate::basic(&quality::mathjax(question), &answer_text);
        let support = match before {
            Some(before) => format!("{} {}", before.text, sentence.text),
            None => sentence.text.clone(),
        };
        match quality::check(&basic) {
            None if ground::supports_question(&basic.front, &support) => {
                made.card = Some((basic, span));
                return made;
            }
            None => made.rejected.push(dropped(
                "ungrounded",
                "the sentence does not support the question",
                &basic,
            )),
            Some(rejection) => {
                made.rejected
                    .push(dropped(rejection.reason(), "filtered out", &basic));
            }
        }
    }
    if !kinds.contains(&CardKind::Cloze) {
        return made;
    }
    let leans_back =
        quality::leans_on_pronoun(sentence.text.split_whitespace().next().unwrap_or_default());
    let (text, span) = match before {
        Some(before) if leans_back => (
            format!("{} {}", before.text, sentence.text),
            Span {
                start: before.start,
                end: sentence.end,
            },
        ),
        _ => (sentence.text.clone(), span),
    };
    // The deletion is searched in the sentence itself, after the context sentence.
    let offset = text.len() - sentence.text.len();
    let Some(cloze) = Candidate::cloze(&text[offset..], answer.trim()) else {
        made.rejected.push(Dropped {
            reason: "ungrounded".into(),
            detail: "the answer is not a phrase of the sentence".to_owned(),
            front: Some(sentence.text.clone()),
            back: Some(answer.to_owned()),
        });
        return made;
    };
    let cloze = Candidate {
        front: quality::mathjax(&format!("{}{}", &text[..offset], cloze.front)),
        ..cloze
    };
    match quality::check(&cloze) {
        None => made.card = Some((cloze, span)),
        Some(rejection) => made
            .rejected
            .push(dropped(rejection.reason(), "filtered out", &cloze)),
    }
    made
}

/// Whether two cards, each with its sentence, test one fact: near duplicates by their words, or
/// the same answer asked of the same sentence or by a similar question.
fn same_fact(left: (&Candidate, usize), right: (&Candidate, usize)) -> bool {
    let ((left, left_sentence), (right, right_sentence)) = (left, right);
    let same_answer = text::normalised(&left.answer()) == text::normalised(&right.answer());
    let similar_question = text::jaccard(
        &text::content_words(&left.front),
        &text::content_words(&right.front),
    ) >= 0.5;
    quality::duplicates(&[left.clone(), right.clone()])[1]
        || (same_answer && (left_sentence == right_sentence || similar_question))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentence(text: &str) -> Sentence {
        Sentence {
            start: 0,
            end: text.chars().count(),
            text: text.to_owned(),
        }
    }

    const BOTH: [CardKind; 2] = [CardKind::Basic, CardKind::Cloze];

    fn kept(made: Made) -> Candidate {
        made.card.expect("a card").0
    }

    #[test]
    fn a_good_question_makes_a_basic_card() {
        let s = sentence("Mitochondria release energy and make ATP.");
        let card = kept(card(
            "ATP",
            Some("What do mitochondria make?"),
            &s,
            None,
            &BOTH,
        ));
        assert_eq!(card, Candidate::basic("What do mitochondria make?", "ATP"));
    }

    #[test]
    fn a_rejected_question_falls_back_to_a_cloze_when_allowed() {
        let s = sentence("Mitochondria release energy and make ATP.");
        let leaky = Some("Do mitochondria make ATP?");
        let made = card("ATP", leaky, &s, None, &BOTH);
        assert_eq!(made.rejected[0].reason, "answer_leak");
        assert_eq!(
            kept(made).front,
            "Mitochondria release energy and make {{c1::ATP}}."
        );
        let made = card("ATP", leaky, &s, None, &[CardKind::Basic]);
        assert!(made.card.is_none());
        let off_topic = Some("Which vessels carry blood away from the heart?");
        let made = card("ATP", off_topic, &s, None, &[CardKind::Basic]);
        assert_eq!(made.rejected[0].reason, "ungrounded");
        let cloze_only = kept(card(
            "ATP",
            Some("What do mitochondria make?"),
            &s,
            None,
            &[CardKind::Cloze],
        ));
        assert_eq!(cloze_only.kind, CardKind::Cloze);
    }

    #[test]
    fn a_cloze_of_a_sentence_opening_with_a_pronoun_keeps_the_sentence_before() {
        let before = sentence("The heart pumps blood.");
        let after = Sentence {
            start: 23,
            end: 44,
            text: "It has four chambers.".to_owned(),
        };
        let (card, span) = card("four", None, &after, Some(&before), &BOTH)
            .card
            .expect("cloze");
        assert_eq!(
            card.front,
            "The heart pumps blood. It has {{c1::four}} chambers."
        );
        assert_eq!(span, Span { start: 0, end: 44 });
    }

    #[test]
    fn an_answer_outside_the_sentence_is_dropped() {
        let s = sentence("Mitochondria make ATP.");
        let made = card("Arteries", None, &s, None, &BOTH);
        assert!(made.card.is_none());
        assert_eq!(made.rejected[0].reason, "ungrounded");
    }

    #[test]
    fn the_same_fact_asked_twice_is_a_duplicate() {
        let first = Candidate::basic("What do mitochondria make?", "ATP");
        let produce = Candidate::basic("What do the mitochondria produce?", "ATP");
        assert!(
            same_fact((&first, 3), (&produce, 3)),
            "one sentence, one answer"
        );
        assert!(
            !same_fact((&first, 3), (&produce, 4)),
            "the answer of two facts"
        );
        let nucleus = Candidate::basic("What stores DNA?", "the nucleus");
        assert!(!same_fact((&first, 3), (&nucleus, 3)));
    }
}
