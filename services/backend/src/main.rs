use std::time::Duration;

use anyhow::Context;
use flashcards_backend::{
    AppState, Args, Command, DEFAULT_PORT,
    alerts::webhook::WebhookToken,
    app,
    auth::{self, Admins},
    background,
    clock::Clock,
    db,
    documents::DocumentSettings,
    generation::{
        jobs::{Generation, LLM_RETRY},
        llm_client::LlmClient,
    },
    limits::{Counters, rates::HourlyLimits},
    metrics::BackendMetrics,
    state::SessionSettings,
};
use flashcards_bootstrap::{ServiceBuilder, config, logging, server};

/// How often documents and jobs waiting, or left by a backend that died, are looked for.
const JOB_SWEEP_INTERVAL: Duration = Duration::from_secs(10);
/// How often expired sessions are deleted and `user_sessions_active` is recounted.
const SESSION_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Args = config::parse(DEFAULT_PORT);
    logging::init(args.common.log_format);

    let database = db::connect(&args.database_url, args.database_max_connections)
        .await
        .context("opening the database")?;
    tracing::info!(database = %db::redacted(&args.database_url), "database ready");
    if let Some(Command::AddUser { email }) = &args.command {
        return add_user(&database, email).await;
    }

    let mut service = ServiceBuilder::new("flashcards-backend", env!("CARGO_PKG_VERSION"))
        .body_limit_bytes(args.common.body_limit_bytes);
    let metrics = BackendMetrics::register(service.registry());
    let sessions = SessionSettings {
        ttl_ms: i64::from(args.session_ttl_hours) * 3_600_000,
        secure_cookies: args.secure_cookies,
    };
    let state = AppState::new(
        database,
        Clock::System,
        metrics,
        sessions,
        args.page_cache_mb.saturating_mul(1 << 20),
        DocumentSettings::new(
            &args.ocr_url,
            Duration::from_secs(args.ocr_timeout_secs),
            args.max_upload_bytes,
        ),
        Generation::new(
            LlmClient::new(&args.llm_url, Duration::from_secs(args.llm_timeout_secs)),
            LLM_RETRY,
        ),
    )
    .context("starting the review writer")?
    .with_admins(Admins::new(&args.admin_emails))
    .with_alerts_token(
        args.alerts_token
            .as_deref()
            .map_or_else(WebhookToken::open, WebhookToken::required),
    )
    .with_limits(
        counters(args.redis_url.as_deref())?,
        HourlyLimits {
            documents: args.documents_per_hour,
            generations: args.generations_per_hour,
        },
    );
    tracing::info!(
        admins = state.admins.len(),
        token_required = state.alerts_token.is_required(),
        "alerts: POST /alerts for Alertmanager, GET /api/alerts for administrators"
    );
    background::start_sweeper(state.clone(), JOB_SWEEP_INTERVAL);

    let sweeper = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SESSION_SWEEP_INTERVAL);
        loop {
            tick.tick().await;
            auth::sweep_expired(&sweeper).await;
        }
    });

    let listener = tokio::net::TcpListener::bind(args.common.listen)
        .await
        .with_context(|| format!("binding {}", args.common.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    tracing::info!("flashcards-backend listening on http://{address} (API docs at /docs)");
    let changes = state.changes.clone();
    let shutdown = async move {
        server::shutdown_signal().await;
        // Open event streams would otherwise hold the graceful shutdown until they end.
        changes.stop();
    };
    server::serve_until(listener, app(service, state), shutdown)
        .await
        .context("serving HTTP")?;
    tracing::info!("stopped");
    Ok(())
}

/// Where accounts' counts are kept: Redis and here with `--redis-url`, else here alone.
fn counters(redis_url: Option<&str>) -> anyhow::Result<Counters> {
    let Some(url) = redis_url else {
        tracing::info!("no Redis: login throttling and rate limits count on this replica alone");
        return Ok(Counters::default());
    };
    let counters = Counters::shared(url).context("reading --redis-url")?;
    tracing::info!("login throttling and rate limits are shared through Redis");
    Ok(counters)
}

/// `flashcards-backend add-user`: the password is the first line of standard input, so it stays out
/// of the process list and the shell history.
async fn add_user(database: &db::Database, email: &str) -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']).to_owned();
    let user = auth::create_account(database, Clock::System.now_ms(), email, password)
        .await
        .map_err(|err| anyhow::anyhow!("adding {email:?}: {err}"))?;
    println!("added {} (id {})", user.email, user.id);
    Ok(())
}
