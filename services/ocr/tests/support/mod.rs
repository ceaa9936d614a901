//! Runs the real OCR service (the router `main` serves, real libtesseract engines) on a loopback port.

#![allow(dead_code, clippy::unwrap_used)]

use flashcards_bootstrap::{config, testing};
use flashcards_ocr::{Args, OcrState, Settings, build};
use reqwest::{Client, Response};
use tokio::sync::oneshot;

pub struct OcrServer {
    pub base: String,
    pub state: OcrState,
    pub client: Client,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for OcrServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The flags' defaults, with two engines.
pub fn default_settings() -> Settings {
    let args: Args = config::parse_from(["flashcards-ocr"], 8000).unwrap();
    let mut settings = Settings::from_args(&args);
    settings.engines = 2;
    settings.queue = 4;
    settings
}

pub async fn start(settings: Settings) -> OcrServer {
    let (router, state) = tokio::task::spawn_blocking(move || build(settings, 1024 * 1024))
        .await
        .unwrap()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(flashcards_bootstrap::server::serve_until(
        listener,
        router,
        async move {
            let _ = stopped.await;
        },
    ));
    OcrServer {
        base,
        state,
        client: Client::new(),
        stop: Some(stop),
    }
}

impl OcrServer {
    pub async fn ocr(&self, query: &str, content_type: &str, bytes: Vec<u8>) -> Response {
        self.client
            .post(format!("{}/v1/ocr{query}", self.base))
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .unwrap()
    }

    pub async fn metrics(&self) -> String {
        testing::scrape(&self.client, &self.base).await
    }
}

/// Character accuracy: 1 − edit distance / expected length, after folding runs of whitespace.
pub fn character_accuracy(expected: &str, actual: &str) -> f64 {
    let fold = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let (expected, actual): (Vec<char>, Vec<char>) = (
        fold(expected).chars().collect(),
        fold(actual).chars().collect(),
    );
    let mut previous: Vec<usize> = (0..=actual.len()).collect();
    for (i, want) in expected.iter().enumerate() {
        let mut current = vec![i + 1; actual.len() + 1];
        for (j, got) in actual.iter().enumerate() {
            let substitution = previous[j] + usize::from(want != got);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    let distance = previous[actual.len()];
    #[allow(clippy::cast_precision_loss)]
    let accuracy = 1.0 - distance as f64 / expected.len().max(1) as f64;
    accuracy
}
