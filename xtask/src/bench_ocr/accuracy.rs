//! The accuracy half of `cargo xtask bench-ocr`: the corpus's photographed-page conditions read by
//! the service and by the `tesseract` CLI, character error rate per condition side by side, and
//! what the confidence filter would take out of the text.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use flashcards_ocr_corpus::Sample;
use serde_json::Value;

use super::{fold_whitespace, levenshtein, measure, start_service, tesseract};
use crate::http;

/// The goal: mean character error rate over the conditions.
const GOAL_MEAN_CER: f64 = 0.01;

/// What the service answered for one page: its text, its words, the threshold it marked them by and
/// the preprocessing that ran.
struct ServiceReading {
    text: String,
    words: Vec<(String, f64)>,
    min_confidence: f64,
    preprocessing: Vec<String>,
}

/// Reads every sample with the service (default parameters: nothing filtered) and with the CLI,
/// and prints the comparison.
pub(super) fn run(samples: &[Sample], scratch: &Path) -> Result<()> {
    let files = samples
        .iter()
        .map(|sample| {
            let path = scratch.join(&sample.file_name);
            fs::write(&path, &sample.bytes)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        })
        .collect::<Result<Vec<PathBuf>>>()?;
    eprintln!(
        "reading {} photographed pages with flashcards-ocr ...",
        samples.len()
    );
    let service = read_with_service(samples)?;
    eprintln!("reading them with the tesseract CLI ...");
    let cli = measure(&files, |image| tesseract(image))?.texts;
    let rows = rows(samples, &service, &cli);
    print(&rows);
    let filter = filter_effect(samples, &service);
    println!(
        "low-confidence words (under {:.0}): {} — {} match the known text, {} do not; the filter is \
         off by default, so all of them stay in the text",
        filter.threshold, filter.total, filter.correct, filter.noise
    );
    Ok(())
}

fn read_with_service(samples: &[Sample]) -> Result<Vec<ServiceReading>> {
    let (_service, address) = start_service()?;
    let answers = measure(samples, |sample| {
        let response = http::send(
            address,
            "POST",
            "/v1/ocr",
            &[("Content-Type", sample.content_type)],
            &sample.bytes,
        )?
        .expect_status(200, "POST /v1/ocr")?;
        Ok(response.body)
    })?;
    answers.texts.iter().map(|body| reading(body)).collect()
}

fn reading(body: &str) -> Result<ServiceReading> {
    let body: Value =
        serde_json::from_str(body).with_context(|| format!("parsing the OCR response {body}"))?;
    let page = body
        .pointer("/pages/0")
        .with_context(|| format!("no page in the OCR response {body}"))?;
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    Ok(ServiceReading {
        text: page["text"].as_str().unwrap_or_default().to_owned(),
        words: page["words"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|word| {
                (
                    word["text"].as_str().unwrap_or_default().to_owned(),
                    word["confidence"].as_f64().unwrap_or_default(),
                )
            })
            .collect(),
        min_confidence: body["min_confidence"].as_f64().unwrap_or_default(),
        preprocessing: strings(&page["preprocessing"]),
    })
}

/// One condition's pages: characters of known text, and edits each side needed.
#[derive(Debug, Default, PartialEq)]
struct Row {
    condition: &'static str,
    pages: usize,
    characters: usize,
    service_edits: usize,
    cli_edits: usize,
    /// The service's preprocessing steps on the condition's first page.
    preprocessing: Vec<String>,
}

impl Row {
    #[allow(clippy::cast_precision_loss)]
    fn service_cer(&self) -> f64 {
        self.service_edits as f64 / self.characters.max(1) as f64
    }

    #[allow(clippy::cast_precision_loss)]
    fn cli_cer(&self) -> f64 {
        self.cli_edits as f64 / self.characters.max(1) as f64
    }
}

fn rows(samples: &[Sample], service: &[ServiceReading], cli: &[String]) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for ((sample, service), cli) in samples.iter().zip(service).zip(cli) {
        let expected = fold_whitespace(&sample.pages.join("\n"));
        if rows
            .last()
            .is_none_or(|row| row.condition != sample.condition)
        {
            rows.push(Row {
                condition: sample.condition,
                preprocessing: service.preprocessing.clone(),
                ..Row::default()
            });
        }
        let row = rows.last_mut().expect("pushed above");
        row.pages += 1;
        row.characters += expected.chars().count();
        row.service_edits += levenshtein(&expected, &fold_whitespace(&service.text));
        row.cli_edits += levenshtein(&expected, &fold_whitespace(cli));
    }
    rows
}

/// Whether the goal is met (no condition worse than the CLI, mean CER at most the goal), and the
/// two means.
#[allow(clippy::cast_precision_loss)]
fn verdict(rows: &[Row]) -> (bool, f64, f64) {
    let count = rows.len().max(1) as f64;
    let service_mean = rows.iter().map(Row::service_cer).sum::<f64>() / count;
    let cli_mean = rows.iter().map(Row::cli_cer).sum::<f64>() / count;
    let never_worse = rows.iter().all(|row| row.service_edits <= row.cli_edits);
    (
        never_worse && service_mean <= GOAL_MEAN_CER,
        service_mean,
        cli_mean,
    )
}

fn print(rows: &[Row]) {
    println!();
    println!("character error rate on photographed pages (whitespace folded; lower is better)");
    println!(
        "{:<16} {:>5} {:>15} {:>14}  {:<5}  preprocessing (first page)",
        "condition", "pages", "flashcards-ocr", "tesseract CLI", ""
    );
    for row in rows {
        let mark = if row.service_edits <= row.cli_edits {
            "ok"
        } else {
            "WORSE"
        };
        println!(
            "{:<16} {:>5} {:>14.2}% {:>13.2}%  {mark:<5}  {}",
            row.condition,
            row.pages,
            100.0 * row.service_cer(),
            100.0 * row.cli_cer(),
            row.preprocessing.join(" ")
        );
    }
    let (met, service_mean, cli_mean) = verdict(rows);
    println!(
        "{:<16} {:>5} {:>14.2}% {:>13.2}%  goal: mean <= {:.0}% and no condition worse than the CLI   {}",
        "mean",
        "",
        100.0 * service_mean,
        100.0 * cli_mean,
        100.0 * GOAL_MEAN_CER,
        if met { "PASS" } else { "MISS" }
    );
}

/// Low-confidence words of the service's readings, and how many of them are words of the known
/// text (which a filter would wrongly take out) or noise (which it would rightly take out).
#[derive(Debug, PartialEq)]
struct FilterEffect {
    threshold: f64,
    total: usize,
    correct: usize,
    noise: usize,
}

fn filter_effect(samples: &[Sample], service: &[ServiceReading]) -> FilterEffect {
    let mut effect = FilterEffect {
        threshold: service
            .first()
            .map_or(0.0, |reading| reading.min_confidence),
        total: 0,
        correct: 0,
        noise: 0,
    };
    for (sample, reading) in samples.iter().zip(service) {
        let mut known: HashMap<String, usize> = HashMap::new();
        for word in sample.pages.join(" ").split_whitespace() {
            *known.entry(word.to_owned()).or_default() += 1;
        }
        for (text, confidence) in &reading.words {
            if *confidence >= reading.min_confidence {
                continue;
            }
            effect.total += 1;
            match known.get_mut(text) {
                Some(left) if *left > 0 => {
                    *left -= 1;
                    effect.correct += 1;
                }
                _ => effect.noise += 1,
            }
        }
    }
    effect
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(condition: &'static str, text: &str) -> Sample {
        Sample {
            name: condition.to_owned(),
            file_name: format!("{condition}.png"),
            content_type: "image/png",
            bytes: Vec::new(),
            pages: vec![text.to_owned()],
            condition,
        }
    }

    fn read(text: &str, words: &[(&str, f64)]) -> ServiceReading {
        ServiceReading {
            text: text.to_owned(),
            words: words
                .iter()
                .map(|(word, confidence)| ((*word).to_owned(), *confidence))
                .collect(),
            min_confidence: 60.0,
            preprocessing: vec!["grayscale".to_owned()],
        }
    }

    #[test]
    fn error_rates_add_up_per_condition() {
        let samples = [
            sample("blur", "abcd\nefgh"),
            sample("blur", "ijkl"),
            sample("skew", "mnop"),
        ];
        let service = [read("abcd efgh", &[]), read("ijkx", &[]), read("mnop", &[])];
        let cli = ["abcd efgh".to_owned(), "ijxx".to_owned(), "mnox".to_owned()];
        let rows = rows(&samples, &service, &cli);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (
                rows[0].pages,
                rows[0].characters,
                rows[0].service_edits,
                rows[0].cli_edits
            ),
            (2, 13, 1, 2)
        );
        assert_eq!((rows[1].service_edits, rows[1].cli_edits), (0, 1));
        let (met, service_mean, _) = verdict(&rows);
        assert!(!met, "mean {service_mean} is over 1%");
        let worse = [Row {
            condition: "x",
            pages: 1,
            characters: 1000,
            service_edits: 2,
            cli_edits: 1,
            preprocessing: Vec::new(),
        }];
        assert!(!verdict(&worse).0, "worse than the CLI");
        let fine = [Row {
            cli_edits: 5,
            ..worse.into_iter().next().expect("one row")
        }];
        assert!(verdict(&fine).0);
    }

    #[test]
    fn the_filter_effect_counts_known_words_and_noise() {
        let samples = [sample("noise", "the cell wall")];
        let service = [read(
            "the ce11 wall wall",
            &[
                ("the", 90.0),
                ("ce11", 20.0),
                ("wall", 50.0),
                ("wall", 40.0),
            ],
        )];
        assert_eq!(
            filter_effect(&samples, &service),
            FilterEffect {
                threshold: 60.0,
                total: 3,
                correct: 1,
                noise: 2
            }
        );
    }
}
