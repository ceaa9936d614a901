use std::{os::unix::process::CommandExt, process::Command, time::Duration};

use anyhow::Context;
use flashcards_bootstrap::{config, logging, server};
use flashcards_ocr::{Args, DEFAULT_PORT, Settings, build};

/// libtesseract parallelises one page over OpenMP threads; the pool already runs one engine per
/// core, so those threads would only fight each other. OpenMP reads its limit once, when it loads,
/// so the process restarts itself with the limit set when the environment lacks one.
const OPENMP_LIMIT: &str = "OMP_THREAD_LIMIT";

/// How long queued MLflow runs may take to send at shutdown, within Kubernetes' 30 s grace period.
const MLFLOW_DRAIN: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::var_os(OPENMP_LIMIT).is_none() {
        let program = std::env::current_exe().context("locating this program to restart it")?;
        let err = Command::new(program)
            .args(std::env::args_os().skip(1))
            .env(OPENMP_LIMIT, "1")
            .exec();
        return Err(err).context("restarting with OMP_THREAD_LIMIT=1");
    }
    let args: Args = config::parse(DEFAULT_PORT);
    logging::init(args.common.log_format);

    let settings = Settings::from_args(&args);
    let body_limit_bytes = args.common.body_limit_bytes;
    let (router, state) = tokio::task::spawn_blocking(move || build(settings, body_limit_bytes))
        .await
        .context("starting the engines")?
        .context("starting the service")?;
    tracing::info!(
        engines = state.settings.engines,
        queue = state.settings.queue,
        languages = ?state.languages,
        "engines ready"
    );

    let listener = tokio::net::TcpListener::bind(args.common.listen)
        .await
        .with_context(|| format!("binding {}", args.common.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    tracing::info!("flashcards-ocr listening on http://{address} (API docs at /docs)");
    server::serve(listener, router)
        .await
        .context("serving HTTP")?;
    state.mlflow.shutdown(MLFLOW_DRAIN).await;
    tracing::info!("stopped");
    Ok(())
}
