//! The operator's leader election on the real apiserver's Leases: the first replica leads; a
//! second cannot take the Lease while the leader renews it; once the leader stops renewing (a
//! crashed process), the second takes over after the Lease expires, the transition is counted,
//! and the old leader, renewing again, learns it lost.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, Result, ensure};
use flashcards_e2e::ControlPlane;
use flashcards_operator::leader::{Elector, LEASE_DURATION};
use k8s_openapi::api::{coordination::v1::Lease, core::v1::Namespace};
use kube::{Api, api::PostParams};
use serde_json::json;

const NAMESPACE: &str = "flashcards-system";
const LEASE: &str = "flashcards-operator";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_election_hands_over_only_after_the_lease_expires() -> Result<()> {
    let control_plane = ControlPlane::start().await?;
    let client = control_plane.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?,
        )
        .await?;

    let first = Arc::new(Elector::new(client.clone(), NAMESPACE, LEASE, "first"));
    let second = Elector::new(client.clone(), NAMESPACE, LEASE, "second");
    first.acquire().await?;
    let renewing = tokio::spawn({
        let first = first.clone();
        async move { first.keep().await }
    });

    // Longer than the Lease lasts: renewals keep it the first's.
    let waited = LEASE_DURATION + Duration::from_secs(5);
    ensure!(
        tokio::time::timeout(waited, second.acquire())
            .await
            .is_err(),
        "the second replica took a Lease that was being renewed"
    );

    // The first stops renewing, as a crashed process would; the second leads once it expires.
    renewing.abort();
    let stopped = tokio::time::Instant::now();
    tokio::time::timeout(LEASE_DURATION * 3, second.acquire())
        .await
        .context("the second replica never took the expired Lease")??;
    let took = stopped.elapsed();
    ensure!(
        took + Duration::from_secs(6) >= LEASE_DURATION,
        "taken {took:?} after the last renewal stopped, before the Lease could expire"
    );

    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let spec = leases.get(LEASE).await?.spec.context("a Lease spec")?;
    ensure!(
        spec.holder_identity.as_deref() == Some("second") && spec.lease_transitions == Some(1),
        "{spec:?}"
    );

    // The first, renewing again, finds it lost and says so instead of leading on.
    let lost = tokio::time::timeout(Duration::from_secs(30), first.keep())
        .await
        .context("the old leader kept renewing a Lease it had lost")?;
    ensure!(lost.to_string().contains("taken over"), "{lost}");
    Ok(())
}
