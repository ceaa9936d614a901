//! The control plane works end to end: a Deployment's pods are created by the controller-manager,
//! scheduled by the scheduler onto kwok's fake node, made Ready by kwok, and garbage collected
//! with their ReplicaSet once the Deployment is deleted; the apiserver restarts with its data and
//! audits writes by user; the Prometheus Operator's CRDs install.

use std::{fs, process::Output, time::Duration};

use anyhow::{Context, Result, ensure};
use flashcards_e2e::{ControlPlane, prometheus_crds, wait_for};
use k8s_openapi::{
    api::{
        apps::v1::{Deployment, ReplicaSet},
        core::v1::{Namespace, Pod},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api,
    api::{DeleteParams, ListParams, PostParams},
};
use serde_json::json;

const NAMESPACE: &str = "smoke";

/// Generous: the first pods wait for the controllers' informers and the node's readiness.
const TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_a_deployment_runs_on_the_fake_node_and_is_garbage_collected() -> Result<()> {
    let mut control_plane = ControlPlane::start().await?;
    let client = control_plane.client();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": NAMESPACE } }))?,
        )
        .await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    deployments
        .create(&PostParams::default(), &serde_json::from_value(web())?)
        .await?;

    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let by_app = ListParams::default().labels("app=web");
    let ready = wait_for("2 ready pods", TIMEOUT, async || {
        let list = pods.list(&by_app).await?;
        let ready: Vec<Pod> = list.items.into_iter().filter(is_ready).collect();
        Ok::<_, kube::Error>((ready.len() == 2).then_some(ready))
    })
    .await?;
    for pod in &ready {
        let node = pod.spec.as_ref().and_then(|spec| spec.node_name.as_deref());
        ensure!(
            node == Some(control_plane.fake_node_name()),
            "pod {:?} is on {node:?}, not the fake node",
            pod.metadata.name
        );
    }
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), NAMESPACE);
    ensure!(
        replica_sets.list(&by_app).await?.items.len() == 1,
        "expected one ReplicaSet"
    );

    deployments
        .delete("web", &DeleteParams::background())
        .await?;
    wait_for(
        "the garbage collector removing the ReplicaSet and its pods",
        TIMEOUT,
        async || {
            let replica_sets = replica_sets.list(&by_app).await?.items.len();
            let pods = pods.list(&by_app).await?.items.len();
            Ok::<_, kube::Error>((replica_sets == 0 && pods == 0).then_some(()))
        },
    )
    .await?;

    // The admin kubeconfig works for kubectl too, and both report a release version (unstamped
    // builds say v0.0.0-master).
    let version = run(control_plane.kubectl().args(["version", "-o", "json"]))?;
    let version: serde_json::Value = serde_json::from_slice(&version.stdout)?;
    let server = version.pointer("/serverVersion/gitVersion");
    let client_version = version.pointer("/clientVersion/gitVersion");
    ensure!(
        server.is_some_and(|v| v.as_str().is_some_and(|v| v.starts_with("v1.")))
            && server == client_version,
        "kubectl version: {version}"
    );
    control_plane.check_running()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_the_apiserver_restarts_with_its_data_and_audits_writes_by_user() -> Result<()> {
    let mut control_plane = ControlPlane::start().await?;
    let namespaces: Api<Namespace> = Api::all(control_plane.client());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": "kept" } }))?,
        )
        .await?;

    control_plane.restart_apiserver().await?;
    // The same client reconnects, and etcd kept the namespace.
    namespaces.get("kept").await?;

    // The stopped apiserver has flushed its audit events.
    let audit = fs::read_to_string(control_plane.audit_log_path())?;
    let mut admin_namespace_creates = 0;
    for line in audit.lines() {
        let event: serde_json::Value = serde_json::from_str(line)?;
        if event["verb"] == "create"
            && event["user"]["username"] == "admin"
            && event["objectRef"]["resource"] == "namespaces"
        {
            admin_namespace_creates += 1;
        }
        ensure!(event["verb"] != "get", "reads are not audited: {line}");
    }
    ensure!(
        admin_namespace_creates == 1,
        "audited namespace creations by admin: {admin_namespace_creates}"
    );
    control_plane.check_running()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_the_prometheus_operator_crds_install() -> Result<()> {
    let crds = prometheus_crds()?;
    let control_plane = ControlPlane::start().await?;
    // Server-side: the CRDs are too big for client-side apply's last-applied annotation.
    run(control_plane
        .kubectl()
        .args(["apply", "--server-side", "-f"])
        .arg(&crds))?;
    // Not `kubectl wait`, which fails outright on a CRD that has no conditions yet.
    let definitions: Api<CustomResourceDefinition> = Api::all(control_plane.client());
    for name in [
        "servicemonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
    ] {
        wait_for(format!("CRD {name} established"), TIMEOUT, async || {
            let definition = definitions.get(name).await?;
            let established = definition
                .status
                .and_then(|status| status.conditions)
                .is_some_and(|conditions| {
                    conditions
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            Ok::<_, kube::Error>(established.then_some(()))
        })
        .await?;
    }
    Ok(())
}

/// Two replicas of a pod that kwok will pretend to run.
fn web() -> serde_json::Value {
    json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": {
                    "containers": [{ "name": "web", "image": "registry.k8s.io/pause:3.10" }],
                },
            },
        },
    })
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition.type_ == "Ready" && condition.status == "True")
        })
}

/// Runs a command and fails with its stderr unless it succeeds.
fn run(command: &mut std::process::Command) -> Result<Output> {
    let output = command
        .output()
        .with_context(|| format!("running {:?}", command.get_program()))?;
    ensure!(
        output.status.success(),
        "{command:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output)
}
