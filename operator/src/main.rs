use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::Parser;
use flashcards_bootstrap::{CommonArgs, ServiceBuilder, config, logging, server};
use flashcards_operator::{
    controller::{self, Context},
    leader::Elector,
    metrics::OperatorMetrics,
};
use kube::{Client, runtime::events::Reporter};
use utoipa_axum::router::OpenApiRouter;

#[derive(Debug, Parser)]
#[command(
    name = "flashcards-operator",
    version,
    about = "The flashcards Kubernetes operator"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,

    /// Watch FlashcardStacks in this namespace only [default: all namespaces].
    #[arg(long, env = "WATCH_NAMESPACE")]
    watch_namespace: Option<String>,

    /// Elect a leader on a Lease so that only one replica reconciles.
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,

    /// Namespace of the leader-election Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,

    /// This replica's name in the Lease.
    #[arg(long, env = "POD_NAME", default_value = "flashcards-operator")]
    identity: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The operator's own /metrics, /healthz and /readyz listen on its port from the contracts.
    let args: Args = config::parse(flashcards_contracts::ports::OPERATOR);
    logging::init(args.common.log_format);
    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster or KUBECONFIG)")?;

    let mut service = ServiceBuilder::new("flashcards-operator", env!("CARGO_PKG_VERSION"));
    let metrics = OperatorMetrics::register(service.registry());
    let listener = tokio::net::TcpListener::bind(args.common.listen)
        .await
        .with_context(|| format!("binding {}", args.common.listen))?;
    tokio::spawn(server::serve(listener, service.build(OpenApiRouter::new())));

    if args.leader_election {
        let elector = Arc::new(Elector::new(
            client.clone(),
            &args.lease_namespace,
            "flashcards-operator",
            &args.identity,
        ));
        elector
            .acquire()
            .await
            .context("acquiring the leader lease")?;
        let keeper = elector.clone();
        tokio::spawn(async move {
            let err = keeper.keep().await;
            tracing::error!(%err, "lost the leader lease; exiting");
            std::process::exit(1);
        });
    }

    let context = Context::new(
        client.clone(),
        metrics,
        Reporter {
            controller: "flashcards-operator".to_owned(),
            instance: Some(args.identity.clone()),
        },
    );
    tracing::info!(namespace = ?args.watch_namespace, "reconciling FlashcardStacks");
    controller::run(
        client,
        args.watch_namespace.as_deref(),
        context,
        server::shutdown_signal(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    tracing::info!("stopped");
    Ok(())
}
