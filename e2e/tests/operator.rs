//! The operator against the real control plane: the CRD installs, invalid stacks are refused by
//! the apiserver's own validation, and the full example becomes a Ready stack whose children are
//! owned, come back when deleted or changed by hand, and whose pods kwok runs; monitoring CRDs
//! installed afterwards bring its ServiceMonitors and rule; spec changes
//! propagate, `paused` leaves children alone, `stopped` scales to zero, and deleting the stack
//! removes its children. (The minimal example needs volumes, which no provisioner binds here.)

use std::{path::Path, process::Output, time::Duration};

use anyhow::{Context as _, Result, ensure};
use flashcards_e2e::{ControlPlane, prometheus_crds, wait_for};
use flashcards_operator::{
    FlashcardStack,
    controller::{self, Context},
    metrics::OperatorMetrics,
};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Namespace, Service},
};
use kube::{
    Api, ResourceExt,
    api::{
        ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
    },
    runtime::events::Reporter,
};
use serde_json::json;

const NAMESPACE: &str = "flashcards";
/// The bound the stack must reach Ready within, from the moment the operator starts.
const READY_WITHIN: Duration = Duration::from_secs(120);

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
        .display()
        .to_string()
}

fn run(command: &mut std::process::Command) -> Result<Output> {
    let output = command.output().context("running kubectl")?;
    Ok(output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_a_stack_becomes_ready_and_keeps_its_children() -> Result<()> {
    let control_plane = ControlPlane::start().await?;
    let client = control_plane.client();

    let crd = run(control_plane.kubectl().args([
        "apply",
        "--server-side",
        "-f",
        &repo("crds/flashcardstack.yaml"),
    ]))?;
    ensure!(
        crd.status.success(),
        "{}",
        String::from_utf8_lossy(&crd.stderr)
    );
    // Right after creation a CRD has no conditions yet, which `kubectl wait` treats as an error.
    wait_for("the CRD established", Duration::from_secs(60), async || {
        let output = run(control_plane
            .kubectl()
            .args(["get", "crd", "flashcardstacks.flashcards.dev", "-o"])
            .arg(r#"jsonpath={.status.conditions[?(@.type=="Established")].status}"#))
        .map_err(|err| std::io::Error::other(err.to_string()))?;
        Ok::<_, std::io::Error>((String::from_utf8_lossy(&output.stdout) == "True").then_some(()))
    })
    .await?;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?,
        )
        .await?;

    // The apiserver itself refuses invalid stacks, with the CRD's messages.
    let stacks: Api<FlashcardStack> = Api::namespaced(client.clone(), NAMESPACE);
    for (spec, message) in [
        (
            json!({"backend": {"replicas": 3}}),
            "SQLite supports one backend replica",
        ),
        (
            json!({"ocr": {"replicas": -1}}),
            "should be greater than or equal to 0",
        ),
        (
            json!({"llm": {"upstream": {"url": "ftp://x"}}}),
            "upstream.url must be an http(s) URL",
        ),
    ] {
        let invalid: FlashcardStack = serde_json::from_value(json!({
            "apiVersion": "flashcards.dev/v1alpha1", "kind": "FlashcardStack",
            "metadata": {"name": "invalid"}, "spec": spec,
        }))?;
        let refused = stacks
            .create(&PostParams::default(), &invalid)
            .await
            .err()
            .context("an invalid stack was accepted")?;
        ensure!(refused.to_string().contains(message), "{refused}");
    }

    let example =
        run(control_plane
            .kubectl()
            .args(["apply", "-f", &repo("manifests/examples/full.yaml")]))?;
    ensure!(
        example.status.success(),
        "{}",
        String::from_utf8_lossy(&example.stderr)
    );

    let mut registry = prometheus_client::registry::Registry::default();
    let context = Context::new(
        client.clone(),
        OperatorMetrics::register(&mut registry),
        Reporter {
            controller: "flashcards-operator".into(),
            instance: Some("e2e".into()),
        },
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(controller::run(client.clone(), None, context, async move {
        let _ = stopped.await;
    }));

    let waited = wait_for("the stack Ready", READY_WITHIN, async || {
        let stack = stacks.get("study").await?;
        let status = stack.status.unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .any(|c| c.r#type == "Ready" && c.status == "True");
        Ok::<_, kube::Error>((ready && status.summary == "4/4").then_some(status))
    })
    .await;
    let ready = match waited {
        Ok(status) => status,
        Err(err) => {
            let seen = stacks.get("study").await.map(|stack| stack.status);
            let pods =
                run(control_plane
                    .kubectl()
                    .args(["get", "pods,deploy,pvc", "-n", NAMESPACE]))?;
            anyhow::bail!(
                "{err}\nstatus: {seen:?}\n{}",
                String::from_utf8_lossy(&pods.stdout)
            );
        }
    };
    ensure!(ready.observed_generation == Some(1), "{ready:?}");

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    for component in ["backend", "ocr", "llm", "web"] {
        let deployment = deployments.get(&format!("study-{component}")).await?;
        let owner = deployment
            .metadata
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .next()
            .context("no owner")?;
        ensure!(owner.kind == "FlashcardStack" && owner.name == "study");
        ensure!(deployment.spec.replicas == Some(if component == "llm" { 1 } else { 2 }));
        services.get(&format!("study-{component}")).await?;
    }

    // Drift: a deleted Service and a Deployment scaled by hand come back.
    services
        .delete("study-ocr", &DeleteParams::default())
        .await?;
    deployments
        .patch(
            "study-web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await?;
    wait_for("drift repaired", Duration::from_secs(60), async || {
        let service = services.get_opt("study-ocr").await?;
        let web = deployments.get("study-web").await?;
        Ok::<_, kube::Error>((service.is_some() && web.spec.replicas == Some(2)).then_some(()))
    })
    .await?;

    // `kubectl get` shows the printer columns.
    let listed = run(control_plane.kubectl().args([
        "get",
        "flashcardstacks",
        "-n",
        NAMESPACE,
        "--no-headers",
    ]))?;
    let line = String::from_utf8_lossy(&listed.stdout).to_string();
    ensure!(
        line.contains("study") && line.contains("True") && line.contains("4/4"),
        "{line}"
    );

    // Monitoring CRDs installed after the stack: its ServiceMonitors and rule appear, labelled as
    // the stack asks, without restarting the operator.
    let crds = prometheus_crds()?;
    let installed = run(control_plane
        .kubectl()
        .args(["apply", "--server-side", "-f"])
        .arg(&crds))?;
    ensure!(
        installed.status.success(),
        "{}",
        String::from_utf8_lossy(&installed.stderr)
    );
    let monitors = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "monitoring.coreos.com",
        "v1",
        "ServiceMonitor",
    ));
    let rules = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "monitoring.coreos.com",
        "v1",
        "PrometheusRule",
    ));
    let monitors: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &monitors);
    let rules: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &rules);
    let monitor = wait_for("the ServiceMonitors", Duration::from_secs(90), async || {
        let found = monitors.get_opt("study-backend").await.ok().flatten();
        let rule = rules.get_opt("study-alerts").await.ok().flatten();
        Ok::<_, kube::Error>(found.zip(rule).map(|(monitor, _)| monitor))
    })
    .await?;
    ensure!(
        monitor.labels().get("release").map(String::as_str) == Some("kube-prometheus-stack"),
        "{:?}",
        monitor.labels()
    );

    // A spec change propagates and observedGeneration follows it.
    stacks
        .patch(
            "study",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"ocr": {"replicas": 3}}})),
        )
        .await?;
    wait_for("the new replicas", Duration::from_secs(60), async || {
        let ocr = deployments.get("study-ocr").await?;
        let stack = stacks.get("study").await?;
        let generation = stack.metadata.generation;
        let observed = stack.status.and_then(|status| status.observed_generation);
        Ok::<_, kube::Error>((ocr.spec.replicas == Some(3) && observed == generation).then_some(()))
    })
    .await?;

    // Paused: hand changes stay. Stopped: everything scales to zero.
    stacks
        .patch(
            "study",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": true}})),
        )
        .await?;
    // The operator must have seen the pause (its status carries the new generation) before the
    // hand change, or a reconcile already under way could undo it.
    wait_for("the pause observed", Duration::from_secs(60), async || {
        let stack = stacks.get("study").await?;
        let observed = stack.status.and_then(|status| status.observed_generation);
        Ok::<_, kube::Error>((observed == stack.metadata.generation).then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    services
        .delete("study-llm", &DeleteParams::default())
        .await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    ensure!(
        services.get_opt("study-llm").await?.is_none(),
        "a paused stack's children are left alone"
    );
    stacks
        .patch(
            "study",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": false, "stopped": true}})),
        )
        .await?;
    wait_for("everything at zero", Duration::from_secs(60), async || {
        let mut all_zero = services.get_opt("study-llm").await?.is_some();
        for component in ["backend", "ocr", "llm", "web"] {
            let deployment = deployments.get(&format!("study-{component}")).await?;
            all_zero &= deployment.spec.replicas == Some(0);
        }
        Ok::<_, kube::Error>(all_zero.then_some(()))
    })
    .await?;

    // Deleting the stack removes everything it owned (the controller-manager's garbage collector).
    stacks.delete("study", &DeleteParams::default()).await?;
    wait_for("the children gone", Duration::from_secs(90), async || {
        let left = deployments.list(&Default::default()).await?.items.len()
            + services.list(&Default::default()).await?.items.len();
        Ok::<_, kube::Error>((left == 0).then_some(()))
    })
    .await?;

    let _ = stop.send(());
    operator.await.context("the operator task")?;
    Ok(())
}
