//! The text's sentences, each with its span in the text and a clean reading: OCR output breaks
//! lines mid-sentence and hyphenates words across them, and notes hold lists (`word – meaning`)
//! whose lines are facts of their own. Cards are written from the clean reading; their source
//! span points at the original text.

/// One sentence (or one list line); `start..end` are character offsets into the whole text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentence {
    pub start: usize,
    pub end: usize,
    /// The sentence with hyphenated line breaks mended and whitespace runs made single spaces.
    pub text: String,
}

/// A character of the clean reading and where it stands in the original text.
type Mapped = (char, usize);

/// Splits `text` into sentences: blank lines end paragraphs, list lines (bullets, numbered items,
/// `term – meaning`) stand alone, and prose lines are joined (a word hyphenated at a line end is
/// joined without its hyphen) before being cut after `.`, `!` or `?` — but not after an ordinal
/// or a single initial (`30. Januar`, `F. Ebert`) or a common abbreviation.
pub fn split(text: &str) -> Vec<Sentence> {
    let chars: Vec<char> = text.chars().collect();
    let mut sentences = Vec::new();
    let mut paragraph: Vec<Mapped> = Vec::new();
    for (start, end) in lines(&chars) {
        let line = &chars[start..end];
        let blank = line.iter().all(|c| c.is_whitespace());
        if blank || is_list_item(line) {
            sentences.extend(cut(&std::mem::take(&mut paragraph)));
            if !blank {
                let item: Vec<Mapped> = collapse(line.iter().copied().zip(start..end));
                sentences.extend(whole(&item));
            }
            continue;
        }
        join_line(&mut paragraph, line, start);
    }
    sentences.extend(cut(&paragraph));
    sentences
}

/// `(start, end)` of each line, without its `\n`.
fn lines(chars: &[char]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = 0;
    for (index, c) in chars.iter().enumerate() {
        if *c == '\n' {
            spans.push((start, index));
            start = index + 1;
        }
    }
    spans.push((start, chars.len()));
    spans
}

/// A line that is an item of a list rather than part of running prose.
fn is_list_item(line: &[char]) -> bool {
    let text: String = line.iter().collect();
    let trimmed = text.trim_start();
    let bullet = ["- ", "• ", "* ", "– "]
        .iter()
        .any(|bullet| trimmed.starts_with(bullet));
    let digits = trimmed.chars().take_while(char::is_ascii_digit).count();
    let numbered = digits > 0
        && matches!(trimmed[digits..].chars().next(), Some('.' | ')'))
        && trimmed[digits + 1..].starts_with(' ');
    let glossary = text.contains(" – ") || text.contains(" — ") || text.contains('\t');
    bullet || numbered || glossary
}

/// Appends a prose line to the paragraph: after a word hyphenated at the line's end the next
/// line continues the word; otherwise a space separates them.
fn join_line(paragraph: &mut Vec<Mapped>, line: &[char], start: usize) {
    let mapped: Vec<Mapped> = line.iter().copied().zip(start..).collect();
    let mut first = 0;
    while first < mapped.len() && mapped[first].0.is_whitespace() {
        first += 1;
    }
    let continues_word = mapped.get(first).is_some_and(|(c, _)| c.is_lowercase());
    while paragraph.last().is_some_and(|(c, _)| c.is_whitespace()) {
        paragraph.pop();
    }
    let hyphenated = paragraph.len() >= 2
        && paragraph[paragraph.len() - 1].0 == '-'
        && paragraph[paragraph.len() - 2].0.is_alphabetic();
    if hyphenated && continues_word {
        paragraph.pop();
    } else if let Some(&(_, at)) = paragraph.last() {
        paragraph.push((' ', at + 1));
    }
    paragraph.extend(collapse(mapped[first..].iter().copied()));
}

/// Runs of whitespace become one space.
fn collapse(chars: impl Iterator<Item = Mapped>) -> Vec<Mapped> {
    let mut out: Vec<Mapped> = Vec::new();
    for (c, at) in chars {
        if c.is_whitespace() {
            if out.last().is_some_and(|(last, _)| *last != ' ') {
                out.push((' ', at));
            }
        } else {
            out.push((c, at));
        }
    }
    out
}

use super::text::MONTHS;

/// Abbreviations after which a full stop does not end a sentence.
const ABBREVIATIONS: [&str; 12] = [
    "e.g", "i.e", "etc", "vs", "dr", "mr", "mrs", "st", "z.b", "bzw", "usw", "ca",
];

/// The paragraph's sentences.
fn cut(paragraph: &[Mapped]) -> Vec<Sentence> {
    let mut sentences = Vec::new();
    let mut from = 0;
    for index in 0..paragraph.len() {
        let c = paragraph[index].0;
        let at_end = paragraph
            .get(index + 1)
            .is_none_or(|(next, _)| next.is_whitespace());
        if matches!(c, '.' | '!' | '?') && at_end && !(c == '.' && keeps_going(paragraph, index)) {
            sentences.extend(whole(&paragraph[from..=index]));
            from = index + 1;
        }
    }
    sentences.extend(whole(&paragraph[from..]));
    sentences
}

/// Whether the full stop at `index` belongs to an ordinal, an initial or an abbreviation.
fn keeps_going(paragraph: &[Mapped], index: usize) -> bool {
    let word: String = paragraph[..index]
        .iter()
        .rev()
        .take_while(|(c, _)| !c.is_whitespace() && *c != '(')
        .map(|(c, _)| *c)
        .collect::<Vec<char>>()
        .into_iter()
        .rev()
        .collect();
    let next_is_lower = paragraph
        .get(index + 2)
        .is_some_and(|(c, _)| c.is_lowercase());
    let next_word: String = paragraph[(index + 2).min(paragraph.len())..]
        .iter()
        .take_while(|(c, _)| c.is_alphabetic())
        .flat_map(|(c, _)| c.to_lowercase())
        .collect();
    // A German date's day: `30. Januar`.
    let ordinal = !word.is_empty()
        && word.chars().count() <= 2
        && word.chars().all(|c| c.is_ascii_digit())
        && MONTHS.contains(&next_word.as_str());
    let initial = word.chars().count() == 1 && word.chars().all(char::is_uppercase);
    ordinal || initial || next_is_lower || ABBREVIATIONS.contains(&word.to_lowercase().as_str())
}

/// The mapped characters as a sentence, trimmed, OCR's digit-for-letter misreads mended; none
/// when they are blank.
fn whole(chars: &[Mapped]) -> Option<Sentence> {
    let first = chars.iter().position(|(c, _)| !c.is_whitespace())?;
    let last = chars.iter().rposition(|(c, _)| !c.is_whitespace())?;
    let text: Vec<char> = chars[first..=last].iter().map(|(c, _)| *c).collect();
    Some(Sentence {
        start: chars[first].1,
        end: chars[last].1 + 1,
        text: mend_misreads(&text),
    })
}

/// OCR reads `o` as `0` and `l` as `1` inside words (`0nly`, `inventi0ns`, `int0`, `a1so`). A
/// digit is mended only in a word of lower-case letters: `0` before at least three letters or
/// after at least two, `1` between two letters. Numbers with units (`10cm`, `1st`, `v0`) and
/// names like `H1N1` keep their digits.
fn mend_misreads(text: &[char]) -> String {
    let mut out = text.to_vec();
    let mut start = 0;
    while start < text.len() {
        if !text[start].is_alphanumeric() {
            start += 1;
            continue;
        }
        let end = (start..text.len())
            .find(|&at| !text[at].is_alphanumeric())
            .unwrap_or(text.len());
        let word = &text[start..end];
        let lower = word.iter().all(|c| c.is_ascii_digit() || c.is_lowercase());
        let digits = word.iter().filter(|c| c.is_ascii_digit()).count();
        if lower && digits == 1 {
            let at = word.iter().position(char::is_ascii_digit).unwrap_or(0);
            let (before, after) = (at, word.len() - at - 1);
            let mended = match word[at] {
                '0' if after >= 3 || before >= 2 => Some('o'),
                '1' if before >= 1 && after >= 1 => Some('l'),
                _ => None,
            };
            if let Some(letter) = mended {
                out[start + at] = letter;
            }
        }
        start = end;
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<String> {
        split(text).into_iter().map(|s| s.text).collect()
    }

    #[test]
    fn prose_is_cut_into_sentences_with_their_spans() {
        let text = "Cells divide. Mitochondria make ATP!  Why? Because.";
        let sentences = split(text);
        assert_eq!(
            texts(text),
            [
                "Cells divide.",
                "Mitochondria make ATP!",
                "Why?",
                "Because."
            ]
        );
        let chars: Vec<char> = text.chars().collect();
        for sentence in &sentences {
            let original: String = chars[sentence.start..sentence.end].iter().collect();
            assert_eq!(original, sentence.text);
        }
    }

    #[test]
    fn ocr_line_breaks_and_hyphenation_are_mended() {
        let text = "Enzymes are cata-\nlysts that speed up re-\nactions. Each\nenzyme  has a site.";
        let sentences = split(text);
        assert_eq!(
            texts(text),
            [
                "Enzymes are catalysts that speed up reactions.",
                "Each enzyme has a site."
            ]
        );
        assert_eq!(sentences[0].start, 0);
        let chars: Vec<char> = text.chars().collect();
        assert_eq!(chars[sentences[0].end - 1], '.');
        assert_eq!(chars[sentences[1].start], 'E');
        assert_eq!(sentences[1].end, chars.len());
    }

    #[test]
    fn digits_misread_for_letters_are_mended() {
        assert_eq!(
            texts("It fits 0nly one. After inventi0ns, ab0ut int0 a1so 0f."),
            ["It fits only one.", "After inventions, about into also 0f."]
        );
        assert_eq!(
            texts("Add 10cm on the 1st day; v0 and H1N1 and x1 stay."),
            ["Add 10cm on the 1st day; v0 and H1N1 and x1 stay."]
        );
    }

    #[test]
    fn list_lines_stand_alone() {
        assert_eq!(
            texts("ubiquitous (adj.) – found everywhere\nbrief – short\n\nThe end. Really."),
            [
                "ubiquitous (adj.) – found everywhere",
                "brief – short",
                "The end.",
                "Really."
            ]
        );
        assert_eq!(
            texts("Steps:\n1. Heat it.\n2. Stir it\n- a bullet"),
            ["Steps:", "1. Heat it.", "2. Stir it", "- a bullet"]
        );
    }

    #[test]
    fn ordinals_initials_and_abbreviations_do_not_end_a_sentence() {
        assert_eq!(
            texts("Am 30. Januar 1933 endete sie. F. Ebert war Präsident, z.B. in 1919. Gut."),
            [
                "Am 30. Januar 1933 endete sie.",
                "F. Ebert war Präsident, z.B. in 1919.",
                "Gut."
            ]
        );
        assert_eq!(
            texts("It began in 1789. Then it ended."),
            ["It began in 1789.", "Then it ended."]
        );
        assert_eq!(
            texts("So `xs[0]` is 3. The end."),
            ["So `xs[0]` is 3.", "The end."]
        );
    }

    #[test]
    fn blank_text_has_no_sentences() {
        assert!(split(" \n\n  ").is_empty());
        assert!(split("").is_empty());
    }
}
