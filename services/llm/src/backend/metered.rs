//! Any backend, with every model call counted in the service's metrics: prompt and completion
//! tokens and the call's tokens per second, whichever route made the call.

use std::{sync::Arc, time::Instant};

use tokio::sync::mpsc;

use super::{BackendFuture, ChatRequest, Completion, ModelBackend};
use crate::metrics::LlmMetrics;

pub struct Metered {
    inner: Arc<dyn ModelBackend>,
    metrics: LlmMetrics,
}

impl Metered {
    pub fn new(inner: Arc<dyn ModelBackend>, metrics: LlmMetrics) -> Self {
        Self { inner, metrics }
    }

    fn count(&self, completion: &Completion, started: Instant) {
        self.metrics.model_call(
            completion.prompt_tokens,
            completion.completion_tokens,
            started.elapsed().as_secs_f64(),
        );
    }
}

impl ModelBackend for Metered {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn model<'a>(&'a self) -> BackendFuture<'a, String> {
        self.inner.model()
    }

    fn complete<'a>(&'a self, request: &'a ChatRequest) -> BackendFuture<'a, Completion> {
        Box::pin(async move {
            let started = Instant::now();
            let completion = self.inner.complete(request).await?;
            self.count(&completion, started);
            Ok(completion)
        })
    }

    fn complete_streaming<'a>(
        &'a self,
        request: &'a ChatRequest,
        pieces: mpsc::Sender<String>,
    ) -> BackendFuture<'a, Completion> {
        Box::pin(async move {
            let started = Instant::now();
            let completion = self.inner.complete_streaming(request, pieces).await?;
            self.count(&completion, started);
            Ok(completion)
        })
    }

    fn schema_error(&self, schema: &serde_json::Value) -> Option<String> {
        self.inner.schema_error(schema)
    }
}
