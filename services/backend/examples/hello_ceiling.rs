//! A bare axum hello-world: the throughput ceiling `cargo xtask bench` compares the backend with.

use anyhow::Context;
use axum::{Router, routing::get};

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    let app = Router::new().route("/", get(|| async { "Hello, World!" }));
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("binding {address}"))?;
    axum::serve(listener, app).await.context("serving HTTP")?;
    Ok(())
}
