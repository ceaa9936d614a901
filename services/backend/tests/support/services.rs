//! The other services the backend calls, run for real in this process: the OCR service (with
//! libtesseract) and the LLM service (in front of the llama.cpp server `cargo xtask test` starts).

use std::net::SocketAddr;

use flashcards_bootstrap::{ServiceBuilder, config};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// The real OCR service on a loopback address, stoppable and restartable on the same port.
pub struct OcrService {
    pub address: SocketAddr,
    stop: Option<(oneshot::Sender<()>, JoinHandle<std::io::Result<()>>)>,
}

impl OcrService {
    pub async fn start_on(address: SocketAddr) -> Self {
        let args: flashcards_ocr::Args = config::parse_from(["flashcards-ocr"], 8000).unwrap();
        let mut settings = flashcards_ocr::Settings::from_args(&args);
        settings.engines = 1;
        let (router, _) =
            tokio::task::spawn_blocking(move || flashcards_ocr::build(settings, 1024 * 1024))
                .await
                .unwrap()
                .unwrap();
        let listener = TcpListener::bind(address).await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(flashcards_bootstrap::server::serve_until(
            listener,
            router,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            address,
            stop: Some((stop, serving)),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub async fn stop(&mut self) {
        if let Some((stop, serving)) = self.stop.take() {
            let _ = stop.send(());
            serving.await.unwrap().unwrap();
        }
    }
}

/// The LLM service on a loopback port, generating with the llama.cpp server named by
/// `FLASHCARDS_TEST_LLM_URL`.
pub async fn start_llm() -> String {
    start_llm_on(TcpListener::bind("127.0.0.1:0").await.unwrap()).await
}

/// The LLM service on `listener`, for a test that brings it up at an address it chose before.
pub async fn start_llm_on(listener: TcpListener) -> String {
    let upstream = std::env::var("FLASHCARDS_TEST_LLM_URL").expect(
        "FLASHCARDS_TEST_LLM_URL is not set: run the tests with `cargo xtask test`, which starts \
         llama.cpp's server with SmolLM2",
    );
    let args: flashcards_llm::Args =
        config::parse_from(["flashcards-llm", "--upstream-url", &upstream], 8001).unwrap();
    let mut service = ServiceBuilder::new("flashcards-llm", "test");
    let metrics = flashcards_llm::metrics::LlmMetrics::register(service.registry());
    let (backend, settings) = flashcards_llm::from_args(&args).expect("the upstream backend");
    let router = flashcards_llm::app(
        service,
        flashcards_llm::LlmState::new(backend, settings, metrics),
    );
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}
