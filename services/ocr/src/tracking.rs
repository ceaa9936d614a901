//! What the OCR service logs to MLflow: one run per `POST /v1/ocr`, in the `flashcards-ocr`
//! experiment, refused and failed requests included (the error patterns).
//!
//! A run per request rather than one per batch of requests: MLflow params are fixed per run, and
//! language, page segmentation mode, confidence threshold and preprocessing differ per request, so
//! only a run per request lets the MLflow UI compare confidence across them (`params.psm = '6'`).
//! A recognition takes a good fraction of a second, so three small REST calls per request are cheap
//! beside it, and the logger's bounded queue sheds them under overload.
//!
//! - params: `file_type`, `language`, `psm`, `min_confidence`, `filter`, `binarize` (preprocessing
//!   setting);
//! - metrics: `processing_seconds`, `queued_seconds`, `pages`, `pages_recognised`, `words_total`,
//!   `words_kept`, `words_filtered`, `low_confidence_ratio`, and over Tesseract's words (not those of
//!   PDF text layers, which are always 100) `word_confidence_mean`, `_median`, `_p10`, `_min`, plus
//!   `page_confidence_mean` with the page number as its step;
//! - tags: `outcome` (`ocr_operations_total`'s status), `preprocessing` (the steps that ran),
//!   `service.version`, and on failure `error_code` and `error_detail`.

use std::time::Duration;

use flashcards_bootstrap::{ApiError, mlflow::RunRecord};

use crate::{
    metrics::Outcome,
    routes::{OcrResponse, PageSource},
};

/// What a request asked for, defaults applied, valid or not.
#[derive(Debug, Clone, Copy)]
pub struct Requested<'a> {
    pub language: &'a str,
    pub min_confidence: f32,
    /// Whether low-confidence words leave the text.
    pub filter: bool,
    pub psm: u8,
    pub binarize: bool,
}

/// The run of one request that ended with `outcome` after `elapsed`.
pub fn record(
    requested: &Requested<'_>,
    file_type: &str,
    outcome: Outcome,
    elapsed: Duration,
    result: Result<&OcrResponse, &ApiError>,
) -> RunRecord {
    let record = RunRecord::finished("recognize", elapsed)
        .param("file_type", file_type)
        .param("language", requested.language)
        .param("psm", requested.psm)
        .param("min_confidence", requested.min_confidence)
        .param("filter", requested.filter)
        .param("binarize", requested.binarize)
        .metric("processing_seconds", elapsed.as_secs_f64())
        .tag("outcome", outcome.label())
        .tag("service.version", env!("CARGO_PKG_VERSION"));
    match result {
        Ok(response) => recognised(record, response),
        Err(error) => record
            .tag("error_code", error.code())
            .tag("error_detail", error.to_string())
            .failed(),
    }
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn recognised(mut record: RunRecord, response: &OcrResponse) -> RunRecord {
    let pages = &response.pages;
    let kept: usize = pages.iter().map(|page| page.words.len()).sum();
    let filtered: usize = pages.iter().map(|page| page.filtered_words.len()).sum();
    let total = kept + filtered;
    let recognised: Vec<_> = pages
        .iter()
        .filter(|page| page.source == PageSource::Ocr)
        .collect();
    record = record
        .metric("queued_seconds", response.queued_ms / 1000.0)
        .metric("pages", pages.len() as f64)
        .metric("pages_recognised", recognised.len() as f64)
        .metric("words_total", total as f64)
        .metric("words_kept", kept as f64)
        .metric("words_filtered", filtered as f64);
    if total > 0 {
        record = record.metric("low_confidence_ratio", filtered as f64 / total as f64);
    }
    let confidences: Vec<f32> = recognised
        .iter()
        .flat_map(|page| page.words.iter().chain(&page.filtered_words))
        .map(|word| word.confidence)
        .collect();
    if let Some(stats) = ConfidenceStats::of(&confidences) {
        record = record
            .metric("word_confidence_mean", stats.mean)
            .metric("word_confidence_median", stats.median)
            .metric("word_confidence_p10", stats.p10)
            .metric("word_confidence_min", stats.min);
    }
    for page in &recognised {
        if let Some(mean) = page.mean_confidence {
            record = record.metric_at(
                "page_confidence_mean",
                f64::from(mean),
                u64::from(page.page),
            );
        }
    }
    record.tag("preprocessing", steps(response))
}

/// The distinct preprocessing steps of every page, in the order they first ran.
fn steps(response: &OcrResponse) -> String {
    let mut steps: Vec<&str> = Vec::new();
    for step in response.pages.iter().flat_map(|page| &page.preprocessing) {
        if !steps.contains(&step.as_str()) {
            steps.push(step);
        }
    }
    steps.join(",")
}

/// Summary of word confidences (0-100).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfidenceStats {
    pub mean: f64,
    pub median: f64,
    /// The 10th percentile (nearest rank): how bad the worst words are.
    pub p10: f64,
    pub min: f64,
}

impl ConfidenceStats {
    pub fn of(confidences: &[f32]) -> Option<Self> {
        let mut sorted: Vec<f64> = confidences.iter().copied().map(f64::from).collect();
        sorted.sort_by(f64::total_cmp);
        let (&min, count) = (sorted.first()?, sorted.len());
        let middle = count / 2;
        let median = if count % 2 == 0 {
            (sorted[middle - 1] + sorted[middle]) / 2.0
        } else {
            sorted[middle]
        };
        // Nearest rank: the smallest value with at least 10 % of the values at or below it.
        let p10 = sorted[count.div_ceil(10) - 1];
        #[allow(clippy::cast_precision_loss)]
        let mean = sorted.iter().sum::<f64>() / count as f64;
        Some(Self {
            mean,
            median,
            p10,
            min,
        })
    }
}

#[cfg(test)]
mod tests {
    use flashcards_bootstrap::mlflow::{MetricValue, RunStatus};

    use super::*;
    use crate::{
        file_type::FileKind,
        routes::{PageResult, PageTimings},
        words::{BoundingBox, Word},
    };

    fn word(text: &str, confidence: f32) -> Word {
        Word {
            text: text.into(),
            confidence,
            bbox: BoundingBox {
                x: 0,
                y: 0,
                width: 1,
                height: 1,
            },
            block: 1,
            line: 1,
            low_confidence: false,
        }
    }

    fn page(number: u32, source: PageSource, kept: &[f32], filtered: &[f32]) -> PageResult {
        PageResult {
            page: number,
            source,
            width: 10,
            height: 10,
            text: String::new(),
            mean_confidence: Some(50.0),
            words: kept.iter().map(|c| word("w", *c)).collect(),
            filtered_words: filtered.iter().map(|c| word("w", *c)).collect(),
            preprocessing: vec!["grayscale".into(), "upscale:2.00x".into()],
            timings: PageTimings::default(),
        }
    }

    const ASKED: Requested<'static> = Requested {
        language: "eng",
        min_confidence: 60.0,
        filter: false,
        psm: 3,
        binarize: false,
    };

    #[test]
    fn a_recognition_logs_its_settings_and_confidence_analysis() {
        let response = OcrResponse {
            file_type: FileKind::Pdf,
            language: "eng".into(),
            min_confidence: 60.0,
            filtered: true,
            page_seg_mode: 3,
            pages: vec![
                page(1, PageSource::TextLayer, &[100.0, 100.0], &[]),
                page(2, PageSource::Ocr, &[90.0, 80.0, 70.0], &[10.0]),
            ],
            queued_ms: 250.0,
            total_ms: 0.0,
        };
        let record = record(
            &ASKED,
            "pdf",
            Outcome::Success,
            Duration::from_millis(1500),
            Ok(&response),
        );
        assert_eq!(record.status, RunStatus::Finished);
        let params: Vec<(&str, &str)> = record
            .params
            .iter()
            .map(|(key, value)| (key.as_ref(), value.as_str()))
            .collect();
        assert_eq!(
            params,
            [
                ("file_type", "pdf"),
                ("language", "eng"),
                ("psm", "3"),
                ("min_confidence", "60"),
                ("filter", "false"),
                ("binarize", "false"),
            ]
        );
        assert_eq!(record.metric_value("processing_seconds"), Some(1.5));
        assert_eq!(record.metric_value("queued_seconds"), Some(0.25));
        assert_eq!(record.metric_value("pages"), Some(2.0));
        assert_eq!(record.metric_value("pages_recognised"), Some(1.0));
        assert_eq!(record.metric_value("words_total"), Some(6.0));
        assert_eq!(record.metric_value("words_kept"), Some(5.0));
        assert_eq!(record.metric_value("words_filtered"), Some(1.0));
        // Only Tesseract's words: the text layer's 100s would hide the bad ones.
        assert_eq!(record.metric_value("word_confidence_mean"), Some(62.5));
        assert_eq!(record.metric_value("word_confidence_median"), Some(75.0));
        assert_eq!(record.metric_value("word_confidence_min"), Some(10.0));
        assert!(record.metrics.contains(&MetricValue {
            key: "page_confidence_mean".into(),
            value: 50.0,
            step: 2
        }));
        assert_eq!(record.tag_value("outcome"), Some("success"));
        assert_eq!(
            record.tag_value("preprocessing"),
            Some("grayscale,upscale:2.00x")
        );
        assert_eq!(record.tag_value("error_code"), None);
    }

    #[test]
    fn a_failure_logs_its_error_pattern() {
        let error = ApiError::invalid("lang", "\"xyz\" is not installed");
        let asked = Requested {
            language: "xyz",
            ..ASKED
        };
        let record = record(
            &asked,
            "unknown",
            Outcome::Invalid,
            Duration::ZERO,
            Err(&error),
        );
        assert_eq!(record.status, RunStatus::Failed);
        assert_eq!(record.tag_value("outcome"), Some("invalid"));
        assert_eq!(record.tag_value("error_code"), Some("validation_failed"));
        assert_eq!(
            record.tag_value("error_detail"),
            Some("lang: \"xyz\" is not installed")
        );
        assert_eq!(record.metric_value("words_total"), None);
    }

    #[test]
    fn confidence_stats_take_the_median_and_the_tenth_percentile() {
        let stats = ConfidenceStats::of(&[50.0, 10.0, 90.0]).expect("values");
        assert_eq!((stats.median, stats.p10, stats.min), (50.0, 10.0, 10.0));
        assert_eq!(stats.mean, 50.0);
        let ranked: Vec<f32> = (1..=20).map(|n| n as f32).collect();
        let stats = ConfidenceStats::of(&ranked).expect("values");
        assert_eq!((stats.median, stats.p10), (10.5, 2.0));
        assert_eq!(ConfidenceStats::of(&[]), None);
        assert_eq!(
            ConfidenceStats::of(&[42.0]).map(|s| (s.median, s.p10)),
            Some((42.0, 42.0))
        );
    }
}
