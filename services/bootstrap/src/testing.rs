//! What the services' tests share about their dependencies: the MLflow server `cargo xtask test`
//! starts, and stand-ins for a dependency that is down or stalls. Only with the `test-support`
//! feature, which the services enable for their tests alone.

use tokio::net::TcpListener;

/// The tracking server named in FLASHCARDS_TEST_MLFLOW_URL.
///
/// # Panics
/// When the variable is not set, saying how to set it.
pub fn mlflow_url() -> String {
    std::env::var("FLASHCARDS_TEST_MLFLOW_URL").expect(
        "FLASHCARDS_TEST_MLFLOW_URL is not set: run the tests with `cargo xtask test`, which starts \
         an MLflow server, or start one with `cargo xtask mlflow` and set the variable to its URL",
    )
}

/// A URL where nothing listens.
///
/// # Panics
/// When no loopback port can be bound.
pub async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port");
    format!("http://{}", listener.local_addr().expect("its address"))
}

/// A server that accepts connections and never answers.
///
/// # Panics
/// When no loopback port can be bound.
pub async fn stalled_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}
