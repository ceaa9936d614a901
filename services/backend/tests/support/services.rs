//! The other services the backend calls, run for real in this process: the OCR service (with
//! libtesseract) and the LLM service (in front of the llama.cpp server `cargo xtask test` starts).

use std::net::SocketAddr;

use flashcards_bootstrap::{ServiceBuilder, config};
use tokio::{
    net::{TcpListener, TcpSocket},
    sync::oneshot,
    task::JoinHandle,
};

/// A loopback port kept for a service that is down: bound but not listening, so connections to it
/// are refused as they are to a stopped pod, while another test's `bind` to port 0 cannot take
/// it before the service comes back on it (a port taken by another test's server would answer the
/// backend with that server's 404, which the backend rightly takes for a final refusal). Only the
/// instant between a stopped service closing its listener and [`OcrService::stop`] binding the
/// port leaves it free.
pub struct HeldPort {
    socket: TcpSocket,
    address: SocketAddr,
}

impl HeldPort {
    /// A fresh port nothing listens on.
    pub fn new() -> Self {
        Self::at("127.0.0.1:0".parse().unwrap())
    }

    /// `address`, just given up by a service. Reusing the address lets it be held while the
    /// stopped service's connections linger in TIME_WAIT; a `bind` to port 0 still never picks a
    /// port held this way.
    fn at(address: SocketAddr) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(address).unwrap();
        let address = socket.local_addr().unwrap();
        Self { socket, address }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The service comes back: the same socket starts listening, with no moment the port is free.
    pub fn listen(self) -> TcpListener {
        self.socket.listen(1024).unwrap()
    }
}

/// The real OCR service on a loopback address, stoppable and restartable on the same port.
pub struct OcrService {
    pub address: SocketAddr,
    stop: oneshot::Sender<()>,
    serving: JoinHandle<std::io::Result<()>>,
}

impl OcrService {
    /// On a fresh loopback port.
    pub async fn start() -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap()).await
    }

    pub async fn start_on(listener: TcpListener) -> Self {
        let args: flashcards_ocr::Args = config::parse_from(["flashcards-ocr"], 8000).unwrap();
        let mut settings = flashcards_ocr::Settings::from_args(&args);
        settings.engines = 1;
        let (router, _) =
            tokio::task::spawn_blocking(move || flashcards_ocr::build(settings, 1024 * 1024))
                .await
                .unwrap()
                .unwrap();
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
            stop,
            serving,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Stops serving and keeps the port for [`OcrService::start_on`] with [`HeldPort::listen`].
    pub async fn stop(self) -> HeldPort {
        let _ = self.stop.send(());
        self.serving.await.unwrap().unwrap();
        HeldPort::at(self.address)
    }
}

/// The LLM service on a fresh loopback port, generating with the llama.cpp server named by
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
