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

/// From a slow CPU's few tokens a second to a GPU server's hundreds.
const TOKEN_RATE_BUCKETS: [f64; 10] =
    [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];

#[derive(Clone)]
pub struct LlmMetrics {
    requests: Counter,
    duration: Histogram,
    generated: Counter,
    active: Gauge,
    errors: Family<ErrorLabels, Counter>,
    prompt_tokens: Counter,
    completion_tokens: Counter,
    token_rate: Histogram,
}

impl LlmMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Counter::default(),
            duration: Histogram::new(DURATION_BUCKETS),
            generated: Counter::default(),
            active: Gauge::default(),
            errors: Family::default(),
            prompt_tokens: Counter::default(),
            completion_tokens: Counter::default(),
            token_rate: Histogram::new(TOKEN_RATE_BUCKETS),
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
        registry.register(
            "llm_prompt_tokens",
            "Prompt tokens the model read, over all model calls",
            metrics.prompt_tokens.clone(),
        );
        registry.register(
            "llm_completion_tokens",
            "Tokens the model wrote, over all model calls (their rate is the service's tokens/s)",
            metrics.completion_tokens.clone(),
        );
        registry.register(
            "llm_completion_tokens_per_second",
            "Tokens written per second of each model call, prompt included",
            metrics.token_rate.clone(),
        );
        metrics
    }

    /// One model call: its tokens, and how fast it wrote them.
    pub fn model_call(&self, prompt_tokens: u64, completion_tokens: u64, seconds: f64) {
        self.prompt_tokens.inc_by(prompt_tokens);
        self.completion_tokens.inc_by(completion_tokens);
        if completion_tokens > 0 && seconds > 0.0 {
            #[allow(clippy::cast_precision_loss)]
            self.token_rate.observe(completion_tokens as f64 / seconds);
        }
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
