//! Words as the service reports them, read from Tesseract's TSV output, and the pure decisions made on
//! them: which pass the confidence filter, how the kept ones read as text, the page's mean confidence.

pub use flashcards_contracts::ocr::{BoundingBox, Word};

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("unreadable Tesseract TSV line {line}: {reason}")]
pub struct TsvError {
    pub line: usize,
    pub reason: &'static str,
}

/// Tesseract's TSV columns: level page block par line word left top width height conf text.
const TSV_COLUMNS: usize = 12;
/// TSV level of a word row.
const WORD_LEVEL: &str = "5";

/// The words of a TSV page, in reading order, with page-wide line numbers.
pub fn parse_tsv(tsv: &str) -> Result<Vec<Word>, TsvError> {
    let mut words = Vec::new();
    let mut current_line: Option<(u32, u32, u32)> = None;
    let mut line_number = 0;
    for (index, row) in tsv.lines().enumerate() {
        if row.is_empty() || row.starts_with("level") {
            continue;
        }
        let cells: Vec<&str> = row.splitn(TSV_COLUMNS, '\t').collect();
        if cells.len() < TSV_COLUMNS - 1 {
            return Err(TsvError {
                line: index + 1,
                reason: "too few columns",
            });
        }
        if cells[0] != WORD_LEVEL {
            continue;
        }
        let text = cells.get(11).map_or("", |text| text.trim());
        if text.is_empty() {
            continue;
        }
        let number = |column: usize| -> Result<u32, TsvError> {
            cells[column].parse().map_err(|_| TsvError {
                line: index + 1,
                reason: "a number column is not a number",
            })
        };
        let key = (number(2)?, number(3)?, number(4)?);
        if current_line != Some(key) {
            current_line = Some(key);
            line_number += 1;
        }
        let confidence: f32 = cells[10].parse().map_err(|_| TsvError {
            line: index + 1,
            reason: "the confidence is not a number",
        })?;
        words.push(Word {
            text: text.to_owned(),
            confidence: confidence.clamp(0.0, 100.0),
            bbox: BoundingBox {
                x: number(6)?,
                y: number(7)?,
                width: number(8)?,
                height: number(9)?,
            },
            block: key.0,
            line: line_number,
            low_confidence: false,
        });
    }
    Ok(words)
}

/// Marks the words under `min_confidence`; with `filter`, those leave the kept words and are
/// returned apart: `(kept, filtered)`.
pub fn split_by_confidence(
    mut words: Vec<Word>,
    min_confidence: f32,
    filter: bool,
) -> (Vec<Word>, Vec<Word>) {
    for word in &mut words {
        word.low_confidence = word.confidence < min_confidence;
    }
    if filter {
        words.into_iter().partition(|word| !word.low_confidence)
    } else {
        (words, Vec::new())
    }
}

/// The kept words as text: words of a line joined by spaces, lines by newlines, blocks by a blank line.
pub fn text_of(words: &[Word]) -> String {
    let mut text = String::new();
    let mut previous: Option<&Word> = None;
    for word in words {
        if let Some(before) = previous {
            text.push_str(if word.block != before.block {
                "\n\n"
            } else if word.line != before.line {
                "\n"
            } else {
                " "
            });
        }
        text.push_str(&word.text);
        previous = Some(word);
    }
    text
}

/// Mean confidence of the given words, `None` when there are none.
pub fn mean_confidence(words: &[Word]) -> Option<f32> {
    if words.is_empty() {
        return None;
    }
    #[allow(clippy::cast_precision_loss)] // a page has far fewer than 2^24 words
    let count = words.len() as f32;
    Some(words.iter().map(|word| word.confidence).sum::<f32>() / count)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TSV: &str = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext
1\t1\t0\t0\t0\t0\t0\t0\t800\t600\t-1\t
2\t1\t1\t0\t0\t0\t10\t10\t300\t60\t-1\t
5\t1\t1\t1\t1\t1\t10\t10\t80\t20\t96.5\tHello
5\t1\t1\t1\t1\t2\t100\t10\t90\t20\t42.0\twor1d
5\t1\t1\t1\t2\t1\t10\t40\t80\t20\t91\tnext
5\t1\t1\t1\t2\t2\t95\t40\t10\t20\t12\t 
5\t1\t2\t1\t1\t1\t10\t300\t80\t20\t88\tBlock
";

    #[test]
    fn reads_words_with_boxes_blocks_and_page_wide_lines() {
        let words = parse_tsv(TSV).expect("parses");
        let summary: Vec<(&str, u32, u32)> = words
            .iter()
            .map(|word| (word.text.as_str(), word.block, word.line))
            .collect();
        assert_eq!(
            summary,
            [
                ("Hello", 1, 1),
                ("wor1d", 1, 1),
                ("next", 1, 2),
                ("Block", 2, 3)
            ]
        );
        assert_eq!(
            words[1].bbox,
            BoundingBox {
                x: 100,
                y: 10,
                width: 90,
                height: 20
            }
        );
        assert!((words[0].confidence - 96.5).abs() < f32::EPSILON);
    }

    #[test]
    fn a_garbled_row_is_an_error_not_a_panic() {
        let err = parse_tsv("5\t1\tx\t1\t1\t1\t1\t1\t1\t1\t50\tword").expect_err("bad number");
        assert_eq!(err.line, 1);
        assert!(parse_tsv("5\t1").is_err());
    }

    #[test]
    fn the_filter_splits_at_the_threshold_inclusive() {
        let words = parse_tsv(TSV).expect("parses");
        let (kept, filtered) = split_by_confidence(words, 88.0, true);
        let names = |words: &[Word]| words.iter().map(|w| w.text.clone()).collect::<Vec<_>>();
        assert_eq!(names(&kept), ["Hello", "next", "Block"]);
        assert_eq!(names(&filtered), ["wor1d"]);
        assert!(filtered[0].low_confidence && !kept[0].low_confidence);
    }

    #[test]
    fn without_filtering_low_confidence_words_stay_marked() {
        let words = parse_tsv(TSV).expect("parses");
        let (kept, filtered) = split_by_confidence(words, 88.0, false);
        assert!(filtered.is_empty());
        let marked: Vec<&str> = kept
            .iter()
            .filter(|word| word.low_confidence)
            .map(|word| word.text.as_str())
            .collect();
        assert_eq!(marked, ["wor1d"]);
        assert_eq!(text_of(&kept), "Hello wor1d\nnext\n\nBlock");
    }

    #[test]
    fn text_keeps_lines_and_separates_blocks() {
        let words = parse_tsv(TSV).expect("parses");
        assert_eq!(text_of(&words), "Hello wor1d\nnext\n\nBlock");
        assert_eq!(text_of(&[]), "");
    }

    #[test]
    fn mean_confidence_of_nothing_is_none() {
        assert_eq!(mean_confidence(&[]), None);
        let words = parse_tsv(TSV).expect("parses");
        let mean = mean_confidence(&words[..2]).expect("two words");
        assert!((mean - 69.25).abs() < 1e-4);
    }
}
