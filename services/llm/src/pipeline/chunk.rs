//! Splitting long text into pieces that fit the model's context, at paragraph, then sentence, then
//! word boundaries, keeping each piece's character offsets in the original text.

/// A piece of the request text; `start..end` are character (not byte) offsets into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// Splits `text` into chunks of at most `max_chars` characters (`max_chars` ≥ 1). Paragraphs are
/// packed together while they fit; a paragraph too long alone is split at sentence ends, and a
/// sentence too long alone at spaces (or anywhere, as a last resort). Chunks never start or end
/// with whitespace and blank text gives none.
pub fn split(text: &str, max_chars: usize) -> Vec<Chunk> {
    let max_chars = max_chars.max(1);
    let chars: Vec<char> = text.chars().collect();
    let mut pieces = Vec::new();
    for (start, end) in paragraphs(&chars) {
        if end - start <= max_chars {
            pieces.push((start, end));
        } else {
            for (s, e) in sentences(&chars, start, end) {
                if e - s <= max_chars {
                    pieces.push((s, e));
                } else {
                    pieces.extend(words(&chars, s, e, max_chars));
                }
            }
        }
    }
    // Pack neighbouring pieces while they fit, so the model sees as much context as allowed.
    let mut chunks: Vec<(usize, usize)> = Vec::new();
    for (start, end) in pieces {
        match chunks.last_mut() {
            Some(last) if end - last.0 <= max_chars => last.1 = end,
            _ => chunks.push((start, end)),
        }
    }
    chunks
        .into_iter()
        .map(|(start, end)| Chunk {
            start,
            end,
            text: chars[start..end].iter().collect(),
        })
        .collect()
}

/// `(start, end)` of each paragraph (separated by blank lines), trimmed.
fn paragraphs(chars: &[char]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = 0;
    let mut index = 0;
    while index < chars.len() {
        if chars[index] == '\n' {
            let mut next = index + 1;
            while next < chars.len() && chars[next].is_whitespace() && chars[next] != '\n' {
                next += 1;
            }
            if next < chars.len() && chars[next] == '\n' {
                spans.extend(trimmed(chars, start, index));
                start = next + 1;
                index = next + 1;
                continue;
            }
        }
        index += 1;
    }
    spans.extend(trimmed(chars, start, chars.len()));
    spans
}

/// Character spans of the sentences of `text`, for grounding answers in them.
pub fn sentence_spans(text: &str) -> Vec<(usize, usize)> {
    let chars: Vec<char> = text.chars().collect();
    paragraphs(&chars)
        .into_iter()
        .flat_map(|(start, end)| sentences(&chars, start, end))
        .collect()
}

/// Sentences of `chars[start..end]`: each ends after `.`, `!` or `?` followed by whitespace.
fn sentences(chars: &[char], start: usize, end: usize) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut from = start;
    for index in start..end {
        let ends_sentence = matches!(chars[index], '.' | '!' | '?')
            && chars.get(index + 1).is_none_or(|next| next.is_whitespace());
        if ends_sentence {
            spans.extend(trimmed(chars, from, index + 1));
            from = index + 1;
        }
    }
    spans.extend(trimmed(chars, from, end));
    spans
}

/// `chars[start..end]` cut into pieces of at most `max` characters at spaces where possible.
fn words(chars: &[char], start: usize, end: usize, max: usize) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut from = start;
    while end - from > max {
        let limit = from + max;
        let cut = (from + 1..=limit)
            .rev()
            .find(|&index| chars[index].is_whitespace())
            .unwrap_or(limit);
        spans.extend(trimmed(chars, from, cut));
        from = cut;
        while from < end && chars[from].is_whitespace() {
            from += 1;
        }
    }
    spans.extend(trimmed(chars, from, end));
    spans
}

fn trimmed(chars: &[char], mut start: usize, mut end: usize) -> Option<(usize, usize)> {
    while start < end && chars[start].is_whitespace() {
        start += 1;
    }
    while end > start && chars[end - 1].is_whitespace() {
        end -= 1;
    }
    (start < end).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(text: &str, chunk: &Chunk) -> String {
        text.chars()
            .skip(chunk.start)
            .take(chunk.end - chunk.start)
            .collect()
    }

    #[test]
    fn short_text_is_one_chunk_without_surrounding_blanks() {
        let text = "\n  Cells divide.  \n";
        let chunks = split(text, 100);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, "Cells divide.");
        assert_eq!(slice(text, &chunks[0]), chunks[0].text);
        assert!(split("  \n\n ", 10).is_empty());
    }

    #[test]
    fn paragraphs_are_packed_then_sentences_then_words() {
        let text = "First para one.\n\nSecond para two.\n\nA long third paragraph. It has sentences. \
                    Several of them here.";
        let chunks = split(text, 40);
        for chunk in &chunks {
            assert!(chunk.end - chunk.start <= 40, "{chunk:?}");
            assert_eq!(slice(text, chunk), chunk.text, "offsets point at the text");
        }
        assert_eq!(chunks[0].text, "First para one.\n\nSecond para two.");
        assert_eq!(chunks[1].text, "A long third paragraph.");
        let words = split("aaaa bbbb cccc dddd", 9);
        let texts: Vec<&str> = words.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["aaaa bbbb", "cccc dddd"]);
        let unbroken = split("abcdefghij", 4);
        assert_eq!(unbroken.len(), 3);
    }

    #[test]
    fn offsets_count_characters_not_bytes() {
        let text = "Über Zellen.\n\nÄpfel fallen.";
        let chunks = split(text, 14);
        assert_eq!(chunks[1].text, "Äpfel fallen.");
        assert_eq!(chunks[1].start, 14);
        assert_eq!(slice(text, &chunks[1]), "Äpfel fallen.");
    }
}
