//! The LLM service's metrics, with the monitoring guide's names.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ErrorLabels {
    r#type: &'static str,
}

const DURATION_BUCKETS: [f64; 12] = [
    0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

#[derive(Clone)]
pub struct LlmMetrics {
    requests: Counter,
    duration: Histogram,
    generated: Counter,
    active: Gauge,
    errors: Family<ErrorLabels, Counter>,
}

impl LlmMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Counter::default(),
            duration: Histogram::new(DURATION_BUCKETS),
            generated: Counter::default(),
            active: Gauge::default(),
            errors: Family::default(),
        };
        registry.register(
            "llm_generation_requests",
            "Card generation requests received",
            metrics.requests.clone(),
        );
        registry.register(
            "llm_generation_duration_seconds",
            "Time to answer a generation request that reached the model",
            metrics.duration.clone(),
        );
        registry.register(
            "llm_flashcards_generated",
            "Flashcards returned to clients",
            metrics.generated.clone(),
        );
        registry.register(
            "llm_active_generations",
            "Generations running now",
            metrics.active.clone(),
        );
        registry.register(
            "llm_generation_errors",
            "Generation errors by type: invalid_request, overload, timeout, upstream, invalid_output",
            metrics.errors.clone(),
        );
        metrics
    }

    pub fn request(&self) {
        self.requests.inc();
    }

    pub fn error(&self, kind: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels { r#type: kind })
            .inc();
    }

    pub fn finished(&self, seconds: f64, cards: usize) {
        self.duration.observe(seconds);
        self.generated
            .inc_by(u64::try_from(cards).unwrap_or(u64::MAX));
    }

    /// Counts a generation as active until the guard is dropped (also when its client leaves).
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
