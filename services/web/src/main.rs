use anyhow::Context;
use flashcards_bootstrap::{ServiceBuilder, config, logging, server};
use flashcards_web::{Args, DEFAULT_PORT, WebState, app};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Args = config::parse(DEFAULT_PORT);
    logging::init(args.common.log_format);

    let state = WebState::from_args(&args).context("reading the backend's URL")?;
    let service = ServiceBuilder::new("flashcards-web", env!("CARGO_PKG_VERSION"));
    let listener = tokio::net::TcpListener::bind(args.common.listen)
        .await
        .with_context(|| format!("binding {}", args.common.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    tracing::info!("flashcards-web listening on http://{address}");
    server::serve(listener, app(service, state))
        .await
        .context("serving HTTP")?;
    tracing::info!("stopped");
    Ok(())
}
