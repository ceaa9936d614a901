use std::time::Duration;

use anyhow::Context;
use flashcards_bootstrap::{
    ServiceBuilder, config, logging,
    mlflow::{MlflowConfig, MlflowLogger},
    server,
};
use flashcards_llm::{Args, DEFAULT_PORT, LlmState, app, from_args, metrics::LlmMetrics};

/// How long queued MLflow runs may take to send at shutdown, within Kubernetes' 30 s grace period.
const MLFLOW_DRAIN: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Args = config::parse(DEFAULT_PORT);
    logging::init(args.common.log_format);

    let mut service = ServiceBuilder::new("flashcards-llm", env!("CARGO_PKG_VERSION"))
        .body_limit_bytes(args.common.body_limit_bytes);
    let metrics = LlmMetrics::register(service.registry());
    let mlflow = MlflowLogger::start(
        MlflowConfig::from_args(&args.mlflow, "flashcards-llm"),
        service.registry(),
    )
    .context("starting MLflow logging")?;
    let (backend, settings) = from_args(&args).context("starting the model backend")?;
    let state = LlmState::new(backend, settings, metrics).with_mlflow(mlflow.clone());

    let listener = tokio::net::TcpListener::bind(args.common.listen)
        .await
        .with_context(|| format!("binding {}", args.common.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    tracing::info!("flashcards-llm listening on http://{address} (API docs at /docs)");
    server::serve(listener, app(service, state))
        .await
        .context("serving HTTP")?;
    mlflow.shutdown(MLFLOW_DRAIN).await;
    tracing::info!("stopped");
    Ok(())
}
