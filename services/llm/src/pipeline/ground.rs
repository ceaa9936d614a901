//! Grounding: a card is kept only when its answer is supported by the source. The support is the
//! sentence (or two neighbouring sentences) of the chunk containing most of the answer's content
//! words; the card records that span.

use super::{
    cards::Candidate,
    chunk::{Chunk, sentence_spans},
    text::{content_words, coverage},
};

/// Share of the answer's content words the supporting span must contain.
pub const MIN_SUPPORT: f64 = 0.75;

/// The character span (in the whole request text) supporting the card's answer, or `None` when no
/// part of the chunk supports it.
pub fn ground(card: &Candidate, chunk: &Chunk) -> Option<(usize, usize)> {
    let answer = content_words(&card.answer());
    if answer.is_empty() {
        return None;
    }
    let quote = content_words(&card.quote);
    let spans = sentence_spans(&chunk.text);
    let chars: Vec<char> = chunk.text.chars().collect();
    let text_of = |(start, end): (usize, usize)| chars[start..end].iter().collect::<String>();
    // Single sentences first, then pairs of neighbours for answers spread over two sentences.
    let windows = spans
        .iter()
        .copied()
        .chain(spans.windows(2).map(|pair| (pair[0].0, pair[1].1)));
    let mut best: Option<((usize, usize), f64, f64, usize)> = None;
    for span in windows {
        let words = content_words(&text_of(span));
        let support = coverage(&answer, &words);
        if support < MIN_SUPPORT {
            continue;
        }
        // Prefer more support, then the span the model quoted, then the shorter span.
        let quoted = coverage(&quote, &words);
        let length = span.1 - span.0;
        let better = best.is_none_or(|(_, best_support, best_quoted, best_length)| {
            (support, quoted, std::cmp::Reverse(length))
                > (best_support, best_quoted, std::cmp::Reverse(best_length))
        });
        if better {
            best = Some((span, support, quoted, length));
        }
    }
    best.map(|((start, end), ..)| (chunk.start + start, chunk.start + end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::cards::CardKind;

    fn chunk(text: &str, start: usize) -> Chunk {
        Chunk {
            start,
            end: start + text.chars().count(),
            text: text.to_owned(),
        }
    }

    fn basic(front: &str, back: &str, quote: &str) -> Candidate {
        Candidate {
            kind: CardKind::Basic,
            front: front.into(),
            back: back.into(),
            quote: quote.into(),
        }
    }

    const TEXT: &str = "Mitochondria produce most of the cell's ATP. Ribosomes build proteins. \
                        The nucleus holds the DNA.";

    #[test]
    fn the_supporting_sentence_becomes_the_span() {
        let source = chunk(TEXT, 100);
        let card = basic("What builds proteins?", "Ribosomes", "");
        let (start, end) = ground(&card, &source).expect("grounded");
        let sentence: String = TEXT.chars().skip(start - 100).take(end - start).collect();
        assert_eq!(sentence, "Ribosomes build proteins.");
    }

    #[test]
    fn an_answer_not_in_the_text_is_ungrounded() {
        let source = chunk(TEXT, 0);
        assert_eq!(
            ground(
                &basic("What is the powerhouse?", "Chloroplasts", ""),
                &source
            ),
            None
        );
        assert_eq!(
            ground(&basic("Q?", "the", ""), &source),
            None,
            "no content words"
        );
    }

    #[test]
    fn the_quote_breaks_ties_and_cloze_answers_count() {
        let text = "Cells need ATP. Mitochondria make ATP.";
        let source = chunk(text, 0);
        let card = basic("What do cells use?", "ATP", "Mitochondria make ATP.");
        assert_eq!(ground(&card, &source), Some((16, 38)));
        let cloze = Candidate {
            kind: CardKind::Cloze,
            front: "The {{c1::nucleus}} holds the {{c2::DNA}}.".into(),
            back: String::new(),
            quote: String::new(),
        };
        let (start, end) = ground(&cloze, &chunk(TEXT, 0)).expect("grounded");
        assert_eq!(&TEXT[start..end], "The nucleus holds the DNA.");
    }

    #[test]
    fn answers_spanning_two_sentences_use_both() {
        let text = "Plants use light. They make glucose from carbon dioxide.";
        let card = basic("What do plants do?", "use light to make glucose", "");
        let (start, end) = ground(&card, &chunk(text, 0)).expect("grounded");
        assert_eq!(&text[start..end], text);
    }
}
