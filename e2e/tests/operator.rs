//! The operator binary against the real control plane, installed as a user would: the Helm chart
//! installs the CRD and RBAC, and the operator runs as a local process with a token of the chart's
//! ServiceAccount, so everything below also proves that the chart's RBAC is enough.
//!
//! Invalid stacks are refused by the apiserver; the minimal example becomes Ready (its volumes
//! bound to PersistentVolumes made here, as a provisioner would) with owned children, and then the
//! operator sits idle without writing; applying the full example over it and changing the version
//! propagate; drift is repaired; monitoring CRDs installed afterwards bring ServiceMonitors and the
//! rule, and the grafana-operator's CRD brings GrafanaDashboards; the stack converges after the apiserver and the operator restart; `paused` leaves
//! children alone, `stopped` scales to zero, and deleting the stack removes its children.

use std::{
    fs,
    path::Path,
    process::{Command, Output},
    time::Duration,
};

use anyhow::{Context as _, Result, bail, ensure};
use flashcards_e2e::{
    ControlPlane, Process, audit, grafana_dashboard_crd, prometheus_crds, wait_for,
    workspace::{self, free_port},
};
use flashcards_operator::FlashcardStack;
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{
        ConfigMap, Namespace, PersistentVolume, PersistentVolumeClaim, Service, ServiceAccount,
    },
    networking::v1::NetworkPolicy,
    policy::v1::PodDisruptionBudget,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{
        ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
        PostParams,
    },
};
use serde::de::DeserializeOwned;
use serde_json::json;

const NAMESPACE: &str = "flashcards";
const RELEASE_NAMESPACE: &str = "flashcards-system";
/// The chart's ServiceAccount ([`OPERATOR_USER`]).
const SERVICE_ACCOUNT: &str = "flashcards-operator";
/// The bound a stack must reach Ready within, from the moment it is applied.
const READY_WITHIN: Duration = Duration::from_secs(120);
/// How long the operator is watched for writes once the stack is Ready.
const IDLE_WINDOW: Duration = Duration::from_secs(60);

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
        .display()
        .to_string()
}

/// Runs a command and fails with its stderr unless it succeeds.
fn succeed(command: &mut Command) -> Result<Output> {
    let output = command
        .output()
        .with_context(|| format!("running {:?}", command.get_program()))?;
    ensure!(
        output.status.success(),
        "{:?} {:?}: {}",
        command.get_program(),
        command.get_args().collect::<Vec<_>>(),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output)
}

/// Starts the operator binary with `kubeconfig`, electing a leader on its Lease in the release
/// namespace as the chart's Deployment does.
fn start_operator(control_plane: &ControlPlane, kubeconfig: &Path, port: u16) -> Result<Process> {
    let mut command = Command::new(workspace::binary("flashcards-operator")?);
    command
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--lease-namespace", RELEASE_NAMESPACE])
        .args(["--identity", "e2e-operator"]);
    Ok(control_plane.start_process("flashcards-operator", command)?)
}

/// Waits until the stack is Ready with every component ready (`summary` such as `4/4`) and its
/// status describes the current generation.
async fn wait_ready(
    control_plane: &ControlPlane,
    operator: &mut Process,
    stacks: &Api<FlashcardStack>,
    summary: &str,
) -> Result<()> {
    let waited = wait_for(
        format!("the stack Ready {summary}"),
        READY_WITHIN,
        async || {
            operator
                .check_running()
                .map_err(|err| std::io::Error::other(err.to_string()))?;
            let stack = stacks.get("study").await.map_err(std::io::Error::other)?;
            let status = stack.status.unwrap_or_default();
            let ready = status
                .conditions
                .iter()
                .any(|c| c.r#type == "Ready" && c.status == "True");
            let current = status.observed_generation == stack.metadata.generation;
            Ok::<_, std::io::Error>((ready && current && status.summary == summary).then_some(()))
        },
    )
    .await;
    if let Err(err) = waited {
        let seen = stacks.get("study").await.map(|stack| stack.status);
        let objects =
            succeed(
                control_plane
                    .kubectl()
                    .args(["get", "pods,deploy,pvc,pv", "-n", NAMESPACE]),
            )?;
        bail!(
            "{err}\nstatus: {seen:?}\n{}\noperator log:\n{}",
            String::from_utf8_lossy(&objects.stdout),
            operator.log_tail()
        );
    }
    Ok(())
}

/// Every object of kind `K` in the stack's namespace labelled as the stack's, after checking that
/// the stack is its controlling owner.
async fn owned<K>(client: &kube::Client, stack: &FlashcardStack) -> Result<Vec<K>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), NAMESPACE);
    let listed = api
        .list(&ListParams::default().labels("app.kubernetes.io/instance=study"))
        .await?;
    for object in &listed.items {
        let owner = object
            .owner_references()
            .iter()
            .find(|owner| owner.controller == Some(true))
            .with_context(|| format!("{} {} has no owner", K::kind(&()), object.name_any()))?;
        ensure!(
            owner.kind == "FlashcardStack" && Some(&owner.uid) == stack.metadata.uid.as_ref(),
            "{} {} is owned by {owner:?}",
            K::kind(&()),
            object.name_any()
        );
    }
    Ok(listed.items)
}

/// A PersistentVolume of `size` on the (fake) node's disk, with no storage class, so that claims
/// without one bind to it: what a provisioner would do in a real cluster.
fn volume(name: &str, size: &str) -> Result<PersistentVolume> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            // No deleter exists for hostPath volumes; a released one simply stays.
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": format!("/var/lib/e2e/{name}")},
        },
    }))?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_installed_by_the_chart_runs_a_stack_through_its_life() -> Result<()> {
    let mut control_plane = ControlPlane::start().await?;
    let client = control_plane.client();

    // The chart brings the CRD and the RBAC; its Deployment runs no replica, as the operator
    // runs here as a local process.
    succeed(
        control_plane
            .helm()
            .args(["install", "flashcards", &repo("charts/flashcards-operator")])
            .args(["--namespace", RELEASE_NAMESPACE, "--create-namespace"])
            .args(["--set", "replicas=0", "--wait=false"]),
    )?;
    // Right after creation a CRD has no conditions yet, which `kubectl wait` treats as an error.
    wait_for("the CRD established", Duration::from_secs(60), async || {
        let output = control_plane
            .kubectl()
            .args(["get", "crd", "flashcardstacks.flashcards.dev", "-o"])
            .arg(r#"jsonpath={.status.conditions[?(@.type=="Established")].status}"#)
            .output()?;
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

    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    // SQLite for the minimal example (its model comes from the model image), MLflow's runs for
    // the full one.
    for name in ["e2e-volume-1", "e2e-volume-2"] {
        volumes
            .create(&PostParams::default(), &volume(name, "5Gi")?)
            .await?;
    }

    let kubeconfig = control_plane
        .service_account_kubeconfig(RELEASE_NAMESPACE, SERVICE_ACCOUNT)
        .await?;
    let port = free_port()?;
    let mut operator = start_operator(&control_plane, &kubeconfig, port)?;

    // The minimal example: SQLite and a local model, each on a volume.
    succeed(control_plane.kubectl().args([
        "apply",
        "-f",
        &repo("manifests/examples/minimal.yaml"),
    ]))?;
    wait_ready(&control_plane, &mut operator, &stacks, "4/4").await?;
    let stack = stacks.get("study").await?;
    let deployments = owned::<Deployment>(&client, &stack).await?;
    ensure!(deployments.len() == 4, "{deployments:?}");
    ensure!(owned::<Service>(&client, &stack).await?.len() == 4);
    ensure!(owned::<ServiceAccount>(&client, &stack).await?.len() == 4);
    ensure!(owned::<NetworkPolicy>(&client, &stack).await?.len() == 4);
    ensure!(owned::<ConfigMap>(&client, &stack).await?.len() == 5);
    ensure!(
        owned::<PodDisruptionBudget>(&client, &stack)
            .await?
            .is_empty(),
        "one replica each: no budgets"
    );
    // The LLM pod copies its model from the model image, as the API server accepted it.
    let llm = Api::<Deployment>::namespaced(client.clone(), NAMESPACE)
        .get("study-llm")
        .await?;
    let init = llm
        .spec
        .template
        .spec
        .and_then(|pod| pod.init_containers)
        .unwrap_or_default();
    ensure!(
        init.len() == 1
            && init[0].image.as_deref().is_some_and(|image| {
                image.ends_with("/flashcards-model-qwen2.5-coder-0.5b-instruct:0.1.0")
            }),
        "{init:?}"
    );
    // SQLite's claim alone: the model is copied from its image into an emptyDir.
    let claims = owned::<PersistentVolumeClaim>(&client, &stack).await?;
    ensure!(
        claims.len() == 1
            && claims.iter().all(|claim| {
                claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
            }),
        "{claims:?}"
    );

    // Idle: once Ready, the operator sends nothing but its leader Lease's renewals and discovery:
    // it reads the live objects from its watches. An annotation added by hand to an owned object
    // (not a field the operator sets) triggers a reconcile, which must find nothing to write.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let audit_start = fs::metadata(control_plane.audit_log_path())?.len();
    let reconciles_before = reconciles(port).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    services
        .patch(
            "study-backend",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"e2e.flashcards.dev/touched": "yes"}}}),
            ),
        )
        .await?;
    tokio::time::sleep(IDLE_WINDOW).await;
    let requests = audit::operator_requests(control_plane.audit_log_path(), audit_start)?;
    let (expected, others): (Vec<_>, Vec<_>) = requests.into_iter().partition(|request| {
        let lease = request.resource == "leases" && request.name == "flashcards-operator";
        let discovery = request.resource.is_empty() && request.verb == "get";
        // A watch that ends (they time out after minutes) is logged when it does.
        lease || discovery || request.verb == "watch"
    });
    ensure!(
        others.is_empty(),
        "an idle operator sent: {others:?} (besides {} for the lease, discovery and watches)",
        expected.len()
    );
    let reconciles_during = reconciles(port).await? - reconciles_before;
    ensure!(
        reconciles_during >= 1.0,
        "the operator did not reconcile on the hand-added annotation"
    );
    eprintln!(
        "idle for {IDLE_WINDOW:?}: {reconciles_during} reconciles, no request besides {} for the \
         lease, discovery and watches",
        expected.len()
    );

    // The full example over it: more replicas, PostgreSQL, an upstream model, Redis, MLflow.
    succeed(
        control_plane
            .kubectl()
            .args(["apply", "-f", &repo("manifests/examples/full.yaml")]),
    )?;
    wait_ready(&control_plane, &mut operator, &stacks, "6/6").await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    for component in ["backend", "ocr", "web"] {
        let deployment = deployments.get(&format!("study-{component}")).await?;
        ensure!(deployment.spec.replicas == Some(2));
    }
    let stack = stacks.get("study").await?;
    // The SQLite file stays (user data), MLflow's volume is new; no claim for the model.
    wait_for("the stack's claims", Duration::from_secs(60), async || {
        let left = owned::<PersistentVolumeClaim>(&client, &stack)
            .await
            .map_err(|err| std::io::Error::other(err.to_string()))?;
        let mut names: Vec<String> = left.iter().map(ResourceExt::name_any).collect();
        names.sort();
        Ok::<_, std::io::Error>(
            (names == ["study-backend-data", "study-mlflow-data"]).then_some(()),
        )
    })
    .await?;

    // A version change reaches every image; observedGeneration follows.
    stacks
        .patch(
            "study",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"version": "0.2.0", "ocr": {"replicas": 3}}})),
        )
        .await?;
    wait_ready(&control_plane, &mut operator, &stacks, "6/6").await?;
    let ocr = deployments.get("study-ocr").await?;
    let spec = ocr.spec;
    ensure!(spec.replicas == Some(3));
    let image = spec
        .template
        .spec
        .and_then(|pod| pod.containers.into_iter().next())
        .and_then(|container| container.image);
    ensure!(
        image.as_deref() == Some("ghcr.io/flashcards/flashcards-ocr:0.2.0"),
        "{image:?}"
    );

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
        let replicas = web.spec.replicas;
        Ok::<_, kube::Error>((service.is_some() && replicas == Some(2)).then_some(()))
    })
    .await?;

    // `kubectl get` shows the printer columns, once the pods scaled back are gone.
    let mut line = String::new();
    let shown = wait_for("kubectl get showing Ready 6/6", READY_WITHIN, async || {
        let listed = control_plane
            .kubectl()
            .args(["get", "flashcardstacks", "-n", NAMESPACE, "--no-headers"])
            .output()?;
        line = String::from_utf8_lossy(&listed.stdout).into_owned();
        let columns: Vec<&str> = line.split_whitespace().collect();
        Ok::<_, std::io::Error>(columns.starts_with(&["study", "True", "6/6"]).then_some(()))
    })
    .await;
    ensure!(shown.is_ok(), "kubectl get flashcardstacks: {line}");

    // Monitoring CRDs installed after the stack: its ServiceMonitors and rule appear, labelled as
    // the stack asks, without restarting the operator.
    succeed(
        control_plane
            .kubectl()
            .args(["apply", "--server-side", "-f"])
            .arg(prometheus_crds()?),
    )?;
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

    // The operator watches the monitoring kinds once it has found their CRDs: a ServiceMonitor
    // edited by hand is put back well before the next resync (30 s) would.
    let interval = monitor.data["spec"]["endpoints"][0]["interval"].clone();
    monitors
        .patch(
            "study-backend",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"endpoints": [{"port": "http", "interval": "5m"}]}})),
        )
        .await?;
    wait_for(
        "the edited ServiceMonitor put back",
        Duration::from_secs(15),
        async || {
            let live = monitors.get("study-backend").await?;
            Ok::<_, kube::Error>(
                (live.data["spec"]["endpoints"][0]["interval"] == interval).then_some(()),
            )
        },
    )
    .await?;

    // Field removal: the monitoring labels dropped from the spec leave the ServiceMonitor too, as
    // the operator re-applies what it no longer sets.
    stacks
        .patch(
            "study",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"monitoring": {"labels": null}}})),
        )
        .await?;
    wait_for(
        "the dropped label gone from the ServiceMonitor",
        Duration::from_secs(60),
        async || {
            let live = monitors.get("study-backend").await?;
            Ok::<_, kube::Error>((!live.labels().contains_key("release")).then_some(()))
        },
    )
    .await?;

    // The grafana-operator's CRD installed later: the dashboards come as GrafanaDashboards too,
    // accepted by the real schema, selecting the Grafana instances the stack names.
    succeed(
        control_plane
            .kubectl()
            .args(["apply", "--server-side", "-f"])
            .arg(grafana_dashboard_crd()?),
    )?;
    let grafana = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "grafana.integreatly.org",
        "v1beta1",
        "GrafanaDashboard",
    ));
    let grafana: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &grafana);
    let dashboards = wait_for(
        "the GrafanaDashboards",
        Duration::from_secs(90),
        async || {
            let listed = grafana.list(&ListParams::default()).await.ok();
            Ok::<_, kube::Error>(listed.filter(|list| list.items.len() == 5))
        },
    )
    .await?;
    for dashboard in &dashboards.items {
        let spec = &dashboard.data["spec"];
        ensure!(
            spec["instanceSelector"]["matchLabels"]["dashboards"] == "grafana"
                && spec["json"]
                    .as_str()
                    .is_some_and(|json| json.contains("\"panels\"")),
            "{}: {spec}",
            dashboard.name_any()
        );
        ensure!(
            dashboard
                .owner_references()
                .iter()
                .any(|owner| owner.kind == "FlashcardStack"),
            "{} is not owned",
            dashboard.name_any()
        );
    }

    // The apiserver restarts while the operator is down; hand changes made meanwhile are undone
    // once the operator is back, with the same token, and the stack is Ready again.
    operator.stop();
    control_plane.restart_apiserver().await?;
    services
        .delete("study-backend", &DeleteParams::default())
        .await?;
    deployments
        .patch(
            "study-llm",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await?;
    let mut operator = start_operator(&control_plane, &kubeconfig, port)?;
    wait_for("convergence after restarts", READY_WITHIN, async || {
        let service = services.get_opt("study-backend").await?;
        let llm = deployments.get("study-llm").await?;
        let replicas = llm.spec.replicas;
        Ok::<_, kube::Error>((service.is_some() && replicas == Some(1)).then_some(()))
    })
    .await?;
    wait_ready(&control_plane, &mut operator, &stacks, "6/6").await?;

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
        for deployment in deployments.list(&ListParams::default()).await? {
            all_zero &= deployment.spec.replicas == Some(0);
        }
        Ok::<_, kube::Error>(all_zero.then_some(()))
    })
    .await?;

    // Deleting the stack removes everything it owned (the controller-manager's garbage collector).
    stacks.delete("study", &DeleteParams::default()).await?;
    wait_for("the children gone", Duration::from_secs(90), async || {
        let left = deployments.list(&ListParams::default()).await?.items.len()
            + services.list(&ListParams::default()).await?.items.len();
        Ok::<_, kube::Error>((left == 0).then_some(()))
    })
    .await?;

    operator.check_running()?;
    control_plane.check_running()?;
    Ok(())
}

/// The operator's count of reconciles, from its own `/metrics`.
async fn reconciles(port: u16) -> Result<f64> {
    let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse()?);
    let metrics = kube::Client::try_from(config)?;
    let body = metrics
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await?;
    body.lines()
        .filter(|line| line.starts_with("flashcards_operator_reconciles_total"))
        .map(|line| {
            line.rsplit(' ')
                .next()
                .unwrap_or_default()
                .parse::<f64>()
                .context("a counter value")
        })
        .sum()
}
