//! The OCR service's metrics, with the monitoring guide's names.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// The `status` label of `ocr_operations_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The upload was refused (bad file, bad parameters, limits).
    Invalid,
    /// Engines and queue were full.
    Overloaded,
    /// The request ran past its deadline.
    Timeout,
    /// Our fault: a tool or the engine failed.
    Error,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Invalid => "invalid",
            Self::Overloaded => "overloaded",
            Self::Timeout => "timeout",
            Self::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OperationLabels {
    status: &'static str,
    file_type: &'static str,
}

const DURATION_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0,
];
const CONFIDENCE_BUCKETS: [f64; 10] = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0];
const WORD_BUCKETS: [f64; 11] = [
    0.0, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0,
];

#[derive(Clone)]
pub struct OcrMetrics {
    operations: Family<OperationLabels, Counter>,
    duration: Histogram,
    confidence: Histogram,
    words: Histogram,
    kept_words: Histogram,
    active: Gauge,
}

impl OcrMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            operations: Family::default(),
            duration: Histogram::new(DURATION_BUCKETS),
            confidence: Histogram::new(CONFIDENCE_BUCKETS),
            words: Histogram::new(WORD_BUCKETS),
            kept_words: Histogram::new(WORD_BUCKETS),
            active: Gauge::default(),
        };
        registry.register(
            "ocr_operations",
            "OCR requests by outcome and file type",
            metrics.operations.clone(),
        );
        registry.register(
            "ocr_processing_duration_seconds",
            "Time to process an admitted OCR request, reading the upload to answer",
            metrics.duration.clone(),
        );
        registry.register(
            "ocr_confidence_score",
            "Confidence (0-100) of each word Tesseract recognised",
            metrics.confidence.clone(),
        );
        registry.register(
            "ocr_word_count",
            "Words extracted per successful request, before confidence filtering",
            metrics.words.clone(),
        );
        registry.register(
            "ocr_filtered_words",
            "Words per successful request that remain after confidence filtering",
            metrics.kept_words.clone(),
        );
        registry.register(
            "ocr_active_requests",
            "OCR requests in the service now (waiting for an engine or being processed)",
            metrics.active.clone(),
        );
        metrics
    }

    pub fn operation(&self, outcome: Outcome, file_type: &'static str) {
        self.operations
            .get_or_create(&OperationLabels {
                status: outcome.label(),
                file_type,
            })
            .inc();
    }

    pub fn processed(&self, seconds: f64) {
        self.duration.observe(seconds);
    }

    pub fn recognised_word(&self, confidence: f32) {
        self.confidence.observe(f64::from(confidence));
    }

    pub fn words(&self, extracted: usize, kept: usize) {
        #[allow(clippy::cast_precision_loss)]
        {
            self.words.observe(extracted as f64);
            self.kept_words.observe(kept as f64);
        }
    }

    /// Counts the request as active until the guard is dropped.
    pub fn active(&self) -> ActiveGuard {
        self.active.inc();
        ActiveGuard(self.active.clone())
    }
}

pub struct ActiveGuard(Gauge);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
