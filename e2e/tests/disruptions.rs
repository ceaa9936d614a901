//! What happens to real deployments, on the full example (two backend replicas on PostgreSQL,
//! two web and OCR replicas, the model behind an upstream) on a real node, each while our load
//! generator (`flashcards_e2e::load`) has learners study through the web Service:
//!
//! 1. a rolling update of the backend's image tag;
//! 2. the kubelet and containerd restarted;
//! 3. the apiserver restarted and the operator's pod killed mid-reconcile;
//! 4. the LLM service's pod killed during a generation job.
//!
//! Each must end with no failed request and every acknowledged review in PostgreSQL's
//! `review_logs`; each prints requests sent and failed, reviews acknowledged and found, and the
//! time to recover.

use std::{
    collections::BTreeSet,
    future::Future,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};
use flashcards_e2e::{
    ControlPlane, RealNode, full_example,
    learner::Learner,
    load::{Plan, Report, Workload},
    stack::{self, OPERATOR_NAMESPACE, STACK, STACK_NAMESPACE, is_ready},
    wait_for,
};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod};
use kube::{Api, api::ListParams};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The backend's image as the example names it, and the new tag the rolling update moves to
/// (the same image under another name, as a rebuilt release would be).
const BACKEND_IMAGE: &str = "ghcr.io/flashcards/flashcards-backend:0.1.0";
const ROLLED_BACKEND_IMAGE: &str = "ghcr.io/flashcards/flashcards-backend:0.1.0-rolled";

/// The database as `e2e/manifests/full-dependencies.yaml` makes it, from inside its pod.
const DATABASE_URL: &str = "postgres://flashcards:e2e-database-password@127.0.0.1:5432/postgres";

/// How long each disruption may take to settle.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(300);
/// The load goes on this long after the stack has recovered, to catch late failures.
const AFTER_RECOVERY: Duration = Duration::from_secs(5);

/// Three learners with ten cards each, a request each every 50 ms; bounded well above what a
/// scenario takes.
fn plan() -> Plan {
    Plan {
        learners: 3,
        cards_per_learner: 10,
        max_requests: 50_000,
        max_duration: Duration::from_secs(600),
        pause: Duration::from_millis(50),
    }
}

fn succeed(command: &mut std::process::Command) -> Result<String> {
    Ok(stack::succeed(command)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_example_rides_out_upgrades_and_failures_losing_nothing() -> Result<()> {
    let (mut control_plane, mut node) = full_example::cluster_with_operator().await?;
    full_example::dependencies(&control_plane, &mut node).await?;
    let web = full_example::apply(&control_plane, &mut node).await?;

    let workload = Workload::set_up(&web, plan(), "rolling").await?;
    node.tag_image(BACKEND_IMAGE, ROLLED_BACKEND_IMAGE)?;
    let (report, recovered) = under_load(&workload, rolling_update(&control_plane)).await?;
    check(
        "1. rolling update of the backend",
        &control_plane,
        &report,
        recovered,
    )?;

    let workload = Workload::set_up(&web, plan(), "runtime").await?;
    let (report, recovered) =
        under_load(&workload, restart_runtime(&control_plane, &mut node)).await?;
    check(
        "2. kubelet and containerd restarted",
        &control_plane,
        &report,
        recovered,
    )?;

    let workload = Workload::set_up(&web, plan(), "control").await?;
    let before = owned_objects(&control_plane)?;
    let (report, recovered) =
        under_load(&workload, restart_control(&mut control_plane, &mut node)).await?;
    check(
        "3. apiserver restarted, operator killed",
        &control_plane,
        &report,
        recovered,
    )?;
    let after = owned_objects(&control_plane)?;
    ensure!(
        before == after,
        "the operator's objects changed: before {before:?}, after {after:?}"
    );

    let workload = Workload::set_up(&web, plan(), "generation").await?;
    let (report, recovered) = under_load(&workload, kill_llm_mid_job(&control_plane, &web)).await?;
    check(
        "4. LLM pod killed mid-job",
        &control_plane,
        &report,
        recovered,
    )?;
    Ok(())
}

/// Runs `workload` while `disruption` happens, and on for [`AFTER_RECOVERY`] once it returns
/// the time the stack took to recover.
async fn under_load(
    workload: &Workload,
    disruption: impl Future<Output = Result<Duration>>,
) -> Result<(Report, Duration)> {
    let (stop, stopped) = watch::channel(false);
    let disturb = async {
        let recovered = disruption.await;
        tokio::time::sleep(AFTER_RECOVERY).await;
        let _receivers_gone = stop.send(true);
        recovered
    };
    let (report, recovered) = tokio::join!(workload.run(stopped), disturb);
    Ok((report, recovered?))
}

/// Prints the scenario's figures, then fails on any failed request or lost review.
fn check(
    scenario: &str,
    control_plane: &ControlPlane,
    report: &Report,
    recovered: Duration,
) -> Result<()> {
    eprintln!(
        "{scenario}: {} requests sent in {:.0?}, {} failed; recovered in {recovered:.1?}",
        report.sent, report.elapsed, report.failed
    );
    let stored = stored_reviews(control_plane)?;
    let lost = report.lost(&stored);
    eprintln!(
        "{scenario}: {} reviews acknowledged, {} found in the database",
        report.acknowledged.len(),
        report.acknowledged.len() - lost.len(),
    );
    ensure!(
        report.failed == 0,
        "{scenario}: {} requests failed, the first: {:#?}",
        report.failed,
        report.failures
    );
    ensure!(
        lost.is_empty(),
        "{scenario}: acknowledged reviews lost: {lost:?}"
    );
    ensure!(
        !report.acknowledged.is_empty(),
        "{scenario}: no review was acknowledged: the workload did not run"
    );
    Ok(())
}

/// Every review in PostgreSQL: `(card_id, ordinal, reviewed_at)`.
fn stored_reviews(control_plane: &ControlPlane) -> Result<BTreeSet<(String, u32, i64)>> {
    let rows = succeed(control_plane.kubectl().args([
        "exec",
        "-n",
        STACK_NAMESPACE,
        "deploy/postgres",
        "--",
        "psql",
        DATABASE_URL,
        "-tA",
        "-F",
        ",",
        "-c",
        "SELECT card_id, ordinal, reviewed_at FROM review_logs",
    ]))?;
    rows.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut fields = line.split(',');
            let mut next = || {
                fields
                    .next()
                    .with_context(|| format!("a short row: {line}"))
            };
            Ok((next()?.to_owned(), next()?.parse()?, next()?.parse()?))
        })
        .collect()
}

/// 1: the backend's image moves to a new tag; recovered once every backend pod runs it, Ready,
/// and no old one is left.
async fn rolling_update(control_plane: &ControlPlane) -> Result<Duration> {
    stack::patch_stack(
        control_plane,
        &json!({"spec": {"backend": {"image": ROLLED_BACKEND_IMAGE}}}),
    )?;
    let started = Instant::now();
    let pods: Api<Pod> = Api::namespaced(control_plane.client(), STACK_NAMESPACE);
    let deployments: Api<Deployment> = Api::namespaced(control_plane.client(), STACK_NAMESPACE);
    wait_for(
        "every backend pod on the new image and Ready",
        RECOVERY_TIMEOUT,
        async || {
            let wanted = deployments
                .get(&format!("{STACK}-backend"))
                .await?
                .spec
                .replicas
                .unwrap_or(1);
            let listed = pods
                .list(&ListParams::default().labels("app.kubernetes.io/component=backend"))
                .await?;
            let rolled = listed
                .items
                .iter()
                .filter(|pod| {
                    pod.spec.as_ref().is_some_and(|spec| {
                        spec.containers[0].image.as_deref() == Some(ROLLED_BACKEND_IMAGE)
                    }) && is_ready(pod)
                })
                .count();
            let settled = listed.items.len() == rolled && rolled == usize::try_from(wanted)?;
            Ok::<_, anyhow::Error>(settled.then_some(()))
        },
    )
    .await?;
    Ok(started.elapsed())
}

/// 2: containerd and the kubelet restarted; recovered once both answer and the stack's pods are
/// all Ready, the same containers as before (no restart counted).
async fn restart_runtime(control_plane: &ControlPlane, node: &mut RealNode) -> Result<Duration> {
    let before = container_restarts(control_plane).await?;
    let started = Instant::now();
    node.restart_runtime().await?;
    stack::wait_stack_ready(control_plane, || node.check_running()).await?;
    let recovered = started.elapsed();
    let after = container_restarts(control_plane).await?;
    ensure!(
        before == after,
        "containers restarted with the runtime: before {before:?}, after {after:?}"
    );
    Ok(recovered)
}

/// Each pod of the stack with its containers' restart count.
async fn container_restarts(control_plane: &ControlPlane) -> Result<Vec<(String, i32)>> {
    let pods: Api<Pod> = Api::namespaced(control_plane.client(), STACK_NAMESPACE);
    let mut counts: Vec<(String, i32)> = pods
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|pod| {
            let restarts = pod
                .status
                .and_then(|status| status.container_statuses)
                .into_iter()
                .flatten()
                .map(|container| container.restart_count)
                .sum();
            (pod.metadata.name.unwrap_or_default(), restarts)
        })
        .collect();
    counts.sort();
    Ok(counts)
}

/// 3: a change to the stack (web scaled to three), then at once the operator's pod killed and the
/// apiserver restarted; recovered once the change is made, the status reports it, and the
/// operator's new pod is Ready. Then scaled back, as it was.
async fn restart_control(
    control_plane: &mut ControlPlane,
    node: &mut RealNode,
) -> Result<Duration> {
    stack::patch_stack(control_plane, &json!({"spec": {"web": {"replicas": 3}}}))?;
    let started = Instant::now();
    succeed(control_plane.kubectl().args([
        "delete",
        "pods",
        "-n",
        OPERATOR_NAMESPACE,
        "-l",
        "app.kubernetes.io/name=flashcards-operator",
        "--grace-period=0",
        "--force",
        "--wait=false",
    ]))?;
    control_plane.restart_apiserver().await?;
    let deployments: Api<Deployment> = Api::namespaced(control_plane.client(), STACK_NAMESPACE);
    wait_for(
        "the web Deployment at three Ready replicas, made by the operator",
        RECOVERY_TIMEOUT,
        async || {
            node.check_running()?;
            let web = deployments.get(&format!("{STACK}-web")).await?;
            let scaled = web.spec.replicas == Some(3)
                && web.status.and_then(|status| status.ready_replicas) == Some(3);
            Ok::<_, anyhow::Error>(scaled.then_some(()))
        },
    )
    .await?;
    wait_for(
        "the FlashcardStack's status observing the change, Ready",
        RECOVERY_TIMEOUT,
        async || {
            let stack = stack_json(control_plane)?;
            let generation = stack["metadata"]["generation"].as_i64();
            let current = stack["status"]["observedGeneration"].as_i64() == generation;
            let ready = stack["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|condition| condition["type"] == "Ready" && condition["status"] == "True");
            Ok::<_, anyhow::Error>((current && ready).then_some(()))
        },
    )
    .await?;
    stack::wait_deployment_ready(
        control_plane,
        OPERATOR_NAMESPACE,
        "flashcards-operator",
        || node.check_running(),
    )
    .await?;
    let recovered = started.elapsed();
    stack::patch_stack(control_plane, &json!({"spec": {"web": {"replicas": 2}}}))?;
    stack::wait_stack_ready(control_plane, || node.check_running()).await?;
    Ok(recovered)
}

/// 4: a learner's generation job, and the LLM service's pod killed while the job runs; recovered
/// once the job is done. Its drafts are as many as it says it made, none twice.
async fn kill_llm_mid_job(control_plane: &ControlPlane, web: &str) -> Result<Duration> {
    let learner = Learner::sign_up(web, "gen@example.org", "generation survives").await?;
    let deck = learner.create_deck("Generation").await?;
    let page = flashcards_ocr_corpus::clean_png()?;
    let document = learner
        .upload(&page.file_name, page.content_type, page.bytes.clone())
        .await?;
    learner
        .poll(
            &format!("/api/documents/{document}"),
            RECOVERY_TIMEOUT,
            |detail| detail["status"] == "done",
        )
        .await?;
    let job = learner.generate(&document, &deck, 3).await?;
    let running = learner
        .poll(&format!("/api/jobs/{job}"), RECOVERY_TIMEOUT, |job| {
            job["status"] != "queued"
        })
        .await?;
    ensure!(
        running["status"] == "running",
        "the job was not running when the pod was to be killed: {running}"
    );
    let started = Instant::now();
    succeed(control_plane.kubectl().args([
        "delete",
        "pods",
        "-n",
        STACK_NAMESPACE,
        "-l",
        "app.kubernetes.io/component=llm",
        "--grace-period=0",
        "--force",
        "--wait=false",
    ]))?;
    let finished = learner.finished_job(&job, RECOVERY_TIMEOUT).await?;
    let recovered = started.elapsed();
    ensure!(
        finished["status"] == "done",
        "the job did not finish: {finished}"
    );
    let drafts = learner.drafts(&document).await?;
    let fronts: BTreeSet<&str> = drafts
        .iter()
        .filter_map(|draft| draft["front"].as_str())
        .collect();
    ensure!(
        finished["drafts_created"].as_u64() == Some(u64::try_from(drafts.len())?)
            && fronts.len() == drafts.len()
            && !drafts.is_empty(),
        "drafts lost or made twice: the job says {}, there are {}: {drafts:?}",
        finished["drafts_created"],
        drafts.len()
    );
    Ok(recovered)
}

/// The kinds and names of what the operator made for the stack, labelled as its own.
fn owned_objects(control_plane: &ControlPlane) -> Result<Vec<String>> {
    let listed = succeed(control_plane.kubectl().args([
        "get",
        "deployments,services,serviceaccounts,configmaps,persistentvolumeclaims,\
         networkpolicies,poddisruptionbudgets,servicemonitors,prometheusrules,grafanadashboards",
        "-n",
        STACK_NAMESPACE,
        "-l",
        &format!("app.kubernetes.io/instance={STACK}"),
        "-o",
        "name",
    ]))?;
    let mut names: Vec<String> = listed.lines().map(str::to_owned).collect();
    names.sort();
    Ok(names)
}

fn stack_json(control_plane: &ControlPlane) -> Result<Value> {
    let text = succeed(control_plane.kubectl().args([
        "get",
        "flashcardstack",
        STACK,
        "-n",
        STACK_NAMESPACE,
        "-o",
        "json",
    ]))?;
    Ok(serde_json::from_str(&text)?)
}
