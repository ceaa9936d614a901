//! The operator's own metrics: reconciles by result and their duration.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

const DURATION_BUCKETS: [f64; 9] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Clone)]
pub struct OperatorMetrics {
    reconciles: Family<ResultLabels, Counter>,
    duration: Histogram,
}

impl OperatorMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            reconciles: Family::default(),
            duration: Histogram::new(DURATION_BUCKETS),
        };
        registry.register(
            "flashcards_operator_reconciles",
            "Reconciles of FlashcardStacks by result (success, error)",
            metrics.reconciles.clone(),
        );
        registry.register(
            "flashcards_operator_reconcile_duration_seconds",
            "Time to reconcile one FlashcardStack",
            metrics.duration.clone(),
        );
        metrics
    }

    pub fn reconciled(&self, ok: bool, seconds: f64) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: if ok { "success" } else { "error" },
            })
            .inc();
        self.duration.observe(seconds);
    }
}
