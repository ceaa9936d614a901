//! The whole stack on a real node, as an SRE installs it: `helm install` of the chart runs the
//! operator as a pod on its ServiceAccount's token, `kubectl apply` of the minimal example makes
//! every component's pod Running and Ready by its real probes, from the images `cargo xtask test`
//! built, and the FlashcardStack reports Ready. Then a learner, through the stack's web Service
//! (its ClusterIP, which kube-proxy routes from this machine), registers, uploads a rendered page,
//! reads its text, has the local model generate cards, accepts one, studies and rates it. The
//! status URLs answer by their cluster DNS names. Then a pod and a Service are deleted and a
//! Deployment scaled to nothing by hand: the operator heals the stack, and the learner's card is
//! still there (SQLite on its volume). The full example runs there too, on PostgreSQL with an
//! upstream model, watched by the Prometheus Operator's Prometheus and Alertmanager in the cluster
//! (see `check_monitoring`).

use std::{
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};
use flashcards_e2e::{
    ControlPlane, RealNode, full_example,
    learner::{Learner, call},
    prometheus_operator,
    stack::{self, STACK, STACK_NAMESPACE, STACK_READY_TIMEOUT, is_ready},
    wait_for,
};
use flashcards_operator::dashboards;
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Pod, Service},
};
use kube::{Api, api::ListParams};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// OCR of one page, and generation with the local model on two cores.
const JOB_TIMEOUT: Duration = Duration::from_secs(300);

fn succeed(command: &mut Command) -> Result<String> {
    Ok(stack::succeed(command)?)
}

/// One real node per machine: the tests take turns.
static NODE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_and_the_minimal_example_serve_on_a_real_node() -> Result<()> {
    let _turn = NODE.lock().await;
    let (control_plane, mut node) = full_example::cluster_with_operator().await?;
    let client = control_plane.client();
    stack::apply_example(&control_plane, "minimal")?;
    let applied = Instant::now();
    stack::wait_stack_ready(&control_plane, || node.check_running()).await?;
    eprintln!(
        "the minimal stack was Ready {:.0?} after kubectl apply",
        applied.elapsed()
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), STACK_NAMESPACE);

    check_status_urls(&control_plane, &node).await?;

    let services: Api<Service> = Api::namespaced(client.clone(), STACK_NAMESPACE);
    let web = full_example::web_url(&control_plane).await?;
    let learner = learner_flow(&web).await?;

    // Hands on the stack: a pod deleted, a Service deleted, a Deployment scaled to nothing.
    let before: Vec<String> = pods
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|pod| pod.metadata.uid)
        .collect();
    succeed(control_plane.kubectl().args([
        "delete",
        "pod",
        "-n",
        STACK_NAMESPACE,
        "-l",
        "app.kubernetes.io/component=backend",
        "--wait=false",
    ]))?;
    succeed(control_plane.kubectl().args([
        "delete",
        "service",
        "-n",
        STACK_NAMESPACE,
        &format!("{STACK}-web"),
    ]))?;
    succeed(control_plane.kubectl().args([
        "scale",
        "deployment",
        "-n",
        STACK_NAMESPACE,
        &format!("{STACK}-llm"),
        "--replicas=0",
    ]))?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), STACK_NAMESPACE);
    let healed = Instant::now();
    // Healed: the LLM Deployment back to one ready replica, the web Service back, and every pod
    // Ready with new backend and LLM pods in place of the old ones (none left terminating).
    wait_for("the stack healing", STACK_READY_TIMEOUT, async || {
        node.check_running()?;
        let llm = deployments.get(&format!("{STACK}-llm")).await?;
        let llm_back = llm.spec.replicas == Some(1)
            && llm.status.and_then(|status| status.ready_replicas) == Some(1);
        let web_back = services.get_opt(&format!("{STACK}-web")).await?.is_some();
        let list = pods.list(&ListParams::default()).await?;
        let settled = list
            .items
            .iter()
            .all(|pod| is_ready(pod) && pod.metadata.deletion_timestamp.is_none());
        let replaced = ["backend", "llm"].iter().all(|component| {
            list.items.iter().any(|pod| {
                let is_component = pod.metadata.labels.as_ref().is_some_and(|labels| {
                    labels
                        .get("app.kubernetes.io/component")
                        .is_some_and(|label| label == component)
                });
                let is_new = pod
                    .metadata
                    .uid
                    .as_ref()
                    .is_some_and(|uid| !before.contains(uid));
                is_component && is_new
            })
        });
        Ok::<_, anyhow::Error>((llm_back && web_back && settled && replaced).then_some(()))
    })
    .await?;
    eprintln!("the stack healed in {:.0?}", healed.elapsed());

    // The learner's account, deck and card outlived the backend's pod: SQLite is on its volume.
    // The new web Service has a new address, for which the cookie jar holds no session yet.
    let web = full_example::web_url(&control_plane).await?;
    let mut session = learner;
    session.learner.moved_to(&web);
    session.learner.sign_in(&session.credentials).await?;
    let cards = session
        .learner
        .poll(
            &format!("/api/decks/{}/cards", session.deck),
            JOB_TIMEOUT,
            |_| true,
        )
        .await?;
    ensure!(
        cards.to_string().contains(&session.card),
        "the accepted card is gone after the backend's pod was replaced: {cards}"
    );
    Ok(())
}

/// The full example: two backend replicas on PostgreSQL, Redis with its exporter, MLflow, the
/// model behind an OpenAI-compatible upstream, two OCR replicas reading English and German,
/// monitoring objects; what it needs is provided as its comments say
/// (`e2e/manifests/full-dependencies.yaml`). Every pod Ready, the status URLs answer, and a learner
/// goes through the first session with cards from the upstream model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_example_serves_on_postgres_with_an_upstream_model() -> Result<()> {
    let _turn = NODE.lock().await;
    let (control_plane, mut node) = full_example::cluster_with_operator().await?;
    full_example::dependencies(&control_plane, &mut node).await?;
    // kube-prometheus-stack's part: the Prometheus Operator, Prometheus and Alertmanager.
    let prometheus = prometheus_operator::install(&control_plane, || node.check_running()).await?;
    let web = full_example::apply(&control_plane, &mut node).await?;
    check_status_urls(&control_plane, &node).await?;
    let monitors = succeed(control_plane.kubectl().args([
        "get",
        "servicemonitors,prometheusrules,grafanadashboards",
        "-n",
        STACK_NAMESPACE,
        "-o",
        "name",
    ]))?;
    ensure!(
        monitors.lines().count() >= 6,
        "the monitoring objects are missing: {monitors}"
    );
    learner_flow(&web).await?;
    check_network_policies(&control_plane).await?;
    check_monitoring(&control_plane, &mut node, &prometheus, &web).await?;
    Ok(())
}

/// The operator's NetworkPolicies, enforced by kube-network-policies on the node. A pod outside
/// the stack (in `default`) resolves the stack's names and reaches the web front end, which
/// anyone may, but not the backend, OCR or LLM ports. That the callers the policies name still
/// get through is shown by what passes around this check under the same enforcement: the
/// learner's flow (web to backend, backend to OCR and LLM), every target up (Prometheus), and
/// alerts reaching the backend (Alertmanager).
async fn check_network_policies(control_plane: &ControlPlane) -> Result<()> {
    const OUTSIDER: &str = "outsider";
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": OUTSIDER, "namespace": "default"},
        "spec": {
            "containers": [{
                "name": OUTSIDER,
                "image": flashcards_e2e::HELPER_IMAGE,
                "imagePullPolicy": "Never",
                "command": ["sleep", "infinity"],
            }],
            "terminationGracePeriodSeconds": 0,
        },
    });
    stack::apply_json(control_plane, OUTSIDER, &pod)?;
    succeed(control_plane.kubectl().args([
        "wait",
        "-n",
        "default",
        "--for=condition=Ready",
        "--timeout=120s",
        "pod",
        OUTSIDER,
    ]))?;
    let services: Api<Service> = Api::namespaced(control_plane.client(), STACK_NAMESPACE);
    for (component, allowed) in [
        ("web", true),
        ("backend", false),
        ("ocr", false),
        ("llm", false),
    ] {
        let name = format!("{STACK}-{component}.{STACK_NAMESPACE}.svc.cluster.local");
        let port = services
            .get(&format!("{STACK}-{component}"))
            .await?
            .spec
            .and_then(|spec| spec.ports)
            .and_then(|ports| ports.into_iter().next())
            .with_context(|| format!("the {component} Service has no port"))?
            .port;
        // The name first, on its own: a connection that fails for want of DNS proves nothing.
        let resolved = succeed(control_plane.kubectl().args([
            "exec", "-n", "default", OUTSIDER, "--", "getent", "hosts", &name,
        ]))?;
        let address = resolved
            .split_whitespace()
            .next()
            .with_context(|| format!("{name} did not resolve: {resolved:?}"))?
            .to_owned();
        let connected = control_plane
            .kubectl()
            .args([
                "exec", "-n", "default", OUTSIDER, "--", "timeout", "5", "bash", "-c",
            ])
            .arg(format!("exec 3<>/dev/tcp/{address}/{port}"))
            .output()?
            .status
            .success();
        ensure!(
            connected == allowed,
            "a pod outside the stack {} {component} at {address}:{port}",
            if connected {
                "reached"
            } else {
                "could not reach"
            }
        );
    }
    succeed(control_plane.kubectl().args([
        "delete",
        "pod",
        "-n",
        "default",
        OUTSIDER,
        "--wait=false",
    ]))?;
    eprintln!("outside the stack: web reached; backend, OCR and LLM refused");
    Ok(())
}

/// The learner's traffic and the stack's own, watched by the Prometheus Operator's Prometheus as
/// kube-prometheus-stack runs it: every target up, the nine alerts loaded, the kubelet's and
/// cAdvisor's series behind the System Resources dashboard, and the OCR service taken down
/// twice (crash-looping, then hung: running but not ready) with ServiceDown reaching the
/// backend through Alertmanager each time and resolving on recovery.
async fn check_monitoring(
    control_plane: &ControlPlane,
    node: &mut RealNode,
    prometheus: &str,
    web: &str,
) -> Result<()> {
    // The SRE's steps: the operator's own ServiceMonitor, and alerts that wait 10 s, not minutes.
    succeed(
        control_plane
            .helm()
            .args(["upgrade", stack::RELEASE])
            .arg(stack::repository_path("charts/flashcards-operator"))
            .args([
                "--namespace",
                stack::OPERATOR_NAMESPACE,
                "--reuse-values",
                "--set",
                "serviceMonitor.enabled=true",
                "--set",
                "serviceMonitor.interval=5s",
                "--set",
                "serviceMonitor.labels.release=kube-prometheus-stack",
            ]),
    )?;
    stack::patch_stack(
        control_plane,
        &json!({"spec": {"monitoring": {
            "serviceMonitors": {"interval": "5s"},
            "prometheusRule": {"for": "10s"},
        }}}),
    )?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;

    let jobs = [
        "study-backend",
        "study-ocr",
        "study-llm",
        "study-web",
        "study-redis",
        "flashcards-operator-metrics",
        "kubelet",
    ];
    let started = Instant::now();
    wait_for(
        "every target discovered and up",
        Duration::from_secs(240),
        async || {
            node.check_running()?;
            let up = query(&http, prometheus, "up").await?;
            let down: Vec<&Value> = up.iter().filter(|series| value(series) != 1.0).collect();
            let found: Vec<&str> = up
                .iter()
                .filter_map(|series| series["metric"]["job"].as_str())
                .collect();
            let missing: Vec<&&str> = jobs.iter().filter(|job| !found.contains(job)).collect();
            Ok::<_, anyhow::Error>((down.is_empty() && missing.is_empty()).then_some(()))
        },
    )
    .await?;
    eprintln!(
        "Prometheus found every target up {:.0?} after the ServiceMonitors changed",
        started.elapsed()
    );

    let alerts: Vec<String> = wait_for(
        "the PrometheusRule's alerts loaded",
        Duration::from_secs(120),
        async || {
            let rules = get_json(&http, &format!("{prometheus}/api/v1/rules")).await?;
            let names: Vec<String> = rules["data"]["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|group| {
                    group["file"]
                        .as_str()
                        .is_some_and(|file| file.contains("study-alerts"))
                })
                .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
                .filter(|rule| rule["type"] == "alerting" && rule["duration"] == 10.0)
                .filter_map(|rule| rule["name"].as_str().map(str::to_owned))
                .collect();
            Ok::<_, anyhow::Error>((names.len() == 9).then_some(names))
        },
    )
    .await?;
    eprintln!(
        "Prometheus loaded the stack's alerts: {}",
        alerts.join(", ")
    );

    // The System Resources dashboard's container and Redis panels, and the kubelet's volume
    // series the disk alerts read.
    let block_io = host_accounts_block_io();
    let mut queries: Vec<String> = dashboards::all()
        .iter()
        .filter(|dashboard| dashboard.file == "system-resources")
        .flat_map(dashboards::queries)
        .filter(|expr| expr.contains("container_") || expr.contains("redis_"))
        .filter(|expr| block_io || !expr.contains("container_fs_"))
        .collect();
    queries.push(format!(
        r#"kubelet_volume_stats_capacity_bytes{{namespace="{STACK_NAMESPACE}"}}"#
    ));
    for expr in queries {
        let instant = expr
            .replace("$__rate_interval", "1m")
            .replace("$namespace", STACK_NAMESPACE)
            .replace("$instance", ".*");
        wait_for(
            format!("data for {instant}"),
            Duration::from_secs(90),
            async || {
                let result = query(&http, prometheus, &instant).await?;
                Ok::<_, anyhow::Error>((!result.is_empty()).then_some(()))
            },
        )
        .await?;
    }

    // The administrator reads the alerts; the full example names sre@example.org.
    let admin = admin_session(control_plane, web).await?;
    check_memory_alert(control_plane, node, &http, prometheus, &admin, web).await?;
    check_disk_alert(control_plane, &http, prometheus, &admin, web).await?;
    for (how, signal) in [
        ("crash-looping", "KILL"),
        ("hung, running but not ready", "STOP"),
    ] {
        let disturbed = Instant::now();
        // An alert that began before this disturbance (the last one's, its `up == 0` twin) is not
        // this one's.
        let since = OffsetDateTime::now_utc();
        let disturbance = tokio::spawn(signal_ocr_processes(signal));
        let fired = alert_in_api(
            &admin,
            web,
            format!("ServiceDown for study-ocr firing in GET /api/alerts ({how})"),
            Duration::from_secs(240),
            |alerts| ocr_alert(alerts, "firing", since),
        )
        .await;
        disturbance.abort();
        signal_ocr_processes_once("CONT");
        let fired = fired?;
        eprintln!(
            "OCR {how}: ServiceDown reached the backend {:.0?} after it began",
            disturbed.elapsed()
        );
        let recovered = Instant::now();
        let resolved = alert_in_api(
            &admin,
            web,
            format!("ServiceDown for study-ocr resolved in GET /api/alerts ({how})"),
            Duration::from_secs(360),
            |alerts| {
                find_alert(alerts, "resolved", |alert| {
                    same_alert(alert, &fired) && began_since(alert, since)
                })
            },
        )
        .await;
        stack::with_pods(control_plane, STACK_NAMESPACE, resolved).await?;
        node.check_running()?;
        eprintln!(
            "OCR {how}: the resolved notification arrived {:.0?} after the disturbance stopped",
            recovered.elapsed()
        );
    }
    Ok(())
}

/// HighMemoryUsage on cAdvisor's series: the web component gets a small memory limit, one of its
/// pods is driven to 95 % of it (a file in its `/dev/shm`, which is memory charged to the
/// container), the alert reaches the backend, and resolves once the file is gone.
async fn check_memory_alert(
    control_plane: &ControlPlane,
    node: &mut RealNode,
    http: &reqwest::Client,
    prometheus: &str,
    admin: &reqwest::Client,
    web: &str,
) -> Result<()> {
    const LIMIT: u64 = 64 << 20;
    stack::patch_stack(
        control_plane,
        &json!({"spec": {"web": {"resources": {"limits": {"memory": "64Mi"}}}}}),
    )?;
    let pods: Api<Pod> = Api::namespaced(control_plane.client(), STACK_NAMESPACE);
    // A web pod of the new ReplicaSet, Ready, whose limit Prometheus already sees.
    let pod = wait_for(
        "a web pod with the 64Mi limit, seen by cAdvisor",
        Duration::from_secs(180),
        async || {
            node.check_running()?;
            let limited = query(
                http,
                prometheus,
                &format!(
                    r#"container_spec_memory_limit_bytes{{namespace="{STACK_NAMESPACE}", container="web"}} == {LIMIT}"#
                ),
            )
            .await?;
            let listed = pods
                .list(&ListParams::default().labels("app.kubernetes.io/component=web"))
                .await?;
            Ok::<_, anyhow::Error>(listed.items.into_iter().find_map(|candidate| {
                let name = candidate.metadata.name.clone()?;
                let seen = limited
                    .iter()
                    .any(|series| series["metric"]["pod"] == name.as_str());
                (seen && is_ready(&candidate) && candidate.metadata.deletion_timestamp.is_none())
                    .then_some(name)
            }))
        },
    )
    .await?;
    let working_set = format!(
        r#"container_memory_working_set_bytes{{namespace="{STACK_NAMESPACE}", pod="{pod}", container="web"}}"#
    );
    let used = query(http, prometheus, &working_set)
        .await?
        .first()
        .map(value)
        .context("no working set for the web pod")?;
    let fill = (LIMIT as f64 * 0.95 - used).max(0.0) as u64;
    let arrived = fill_until_alert(
        control_plane,
        admin,
        web,
        Filling {
            target: &pod,
            container: "web",
            file: "/dev/shm/fill",
            bytes: fill,
        },
        ("HighMemoryUsage", "pod", &pod),
    )
    .await?;
    eprintln!(
        "web pod at 95% of its 64Mi limit ({used:.0} bytes before, {fill} added): \
         HighMemoryUsage reached the backend {arrived:.0?} later and resolved once freed"
    );
    Ok(())
}

/// HighDiskUsage on the kubelet's volume series: MLflow's volume (on the node's small volume
/// file system) filled to 90 %, the alert reaches the backend, and resolves once emptied.
async fn check_disk_alert(
    control_plane: &ControlPlane,
    http: &reqwest::Client,
    prometheus: &str,
    admin: &reqwest::Client,
    web: &str,
) -> Result<()> {
    let claim = format!("{STACK}-mlflow-data");
    let stat = async |metric: &str| -> Result<f64> {
        query(
            http,
            prometheus,
            &format!(
                r#"kubelet_volume_stats_{metric}_bytes{{namespace="{STACK_NAMESPACE}", persistentvolumeclaim="{claim}"}}"#
            ),
        )
        .await?
        .first()
        .map(value)
        .with_context(|| format!("no kubelet_volume_stats_{metric}_bytes for {claim}"))
    };
    let capacity = stat("capacity").await?;
    let available = stat("available").await?;
    let fill = (capacity * 0.9 - (capacity - available)).max(0.0) as u64;
    let target = format!("deployment/{STACK}-mlflow");
    let arrived = fill_until_alert(
        control_plane,
        admin,
        web,
        Filling {
            target: &target,
            container: "mlflow",
            file: "/mlflow/fill",
            bytes: fill,
        },
        ("HighDiskUsage", "persistentvolumeclaim", &claim),
    )
    .await?;
    eprintln!(
        "MLflow's volume filled to 90% of {capacity:.0} bytes: HighDiskUsage reached the \
         backend {arrived:.0?} later and resolved once emptied"
    );
    Ok(())
}

/// A file of zeros written in a pod's container, through `kubectl exec`.
struct Filling<'a> {
    /// A pod's name or `deployment/<name>`.
    target: &'a str,
    container: &'a str,
    file: &'a str,
    bytes: u64,
}

/// Writes the file, waits until `alertname` with `label = value` fires in `GET /api/alerts`,
/// removes the file and waits until the same alert is resolved there; returns how long the
/// alert took to arrive.
async fn fill_until_alert(
    control_plane: &ControlPlane,
    admin: &reqwest::Client,
    web: &str,
    filling: Filling<'_>,
    (alertname, label, value): (&str, &str, &str),
) -> Result<Duration> {
    let exec = |script: String| {
        succeed(control_plane.kubectl().args([
            "exec",
            "-n",
            STACK_NAMESPACE,
            filling.target,
            "-c",
            filling.container,
            "--",
            "sh",
            "-c",
            &script,
        ]))
    };
    exec(format!(
        "head -c {} /dev/zero > {}",
        filling.bytes, filling.file
    ))?;
    let filled = Instant::now();
    let fired = alert_in_api(
        admin,
        web,
        format!("{alertname} for {value} firing in GET /api/alerts"),
        Duration::from_secs(240),
        |alerts| {
            find_alert(alerts, "firing", |alert| {
                alert["labels"]["alertname"] == alertname && alert["labels"][label] == value
            })
        },
    )
    .await;
    exec(format!("rm -f {}", filling.file))?;
    let fired = fired?;
    let arrived = filled.elapsed();
    alert_in_api(
        admin,
        web,
        format!("{alertname} for {value} resolved in GET /api/alerts"),
        Duration::from_secs(240),
        |alerts| find_alert(alerts, "resolved", |alert| same_alert(alert, &fired)),
    )
    .await?;
    Ok(arrived)
}

/// Waits up to `timeout` until `GET /api/alerts`, read by the administrator, holds an alert
/// `pick` finds; returns it.
async fn alert_in_api(
    admin: &reqwest::Client,
    web: &str,
    what: String,
    timeout: Duration,
    pick: impl Fn(&Value) -> Option<Value>,
) -> Result<Value, flashcards_e2e::Error> {
    wait_for(what, timeout, async || {
        let alerts = call(
            admin.get(format!("{web}/api/alerts")),
            StatusCode::OK,
            "alerts",
        )
        .await?;
        match pick(&alerts) {
            Some(alert) => Ok(Some(alert)),
            // Reported if the wait times out: what the backend held instead.
            None => Err(anyhow::anyhow!(
                "GET /api/alerts held: {}",
                alert_lines(&alerts)
            )),
        }
    })
    .await
}

/// One `alertname job status starts_at fingerprint` entry per alert, for failure messages.
fn alert_lines(alerts: &Value) -> String {
    let lines: Vec<String> = alerts["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|alert| {
            format!(
                "{} {} {} {} {}",
                alert["labels"]["alertname"],
                alert["labels"]["job"],
                alert["status"],
                alert["starts_at"],
                alert["fingerprint"]
            )
        })
        .collect();
    lines.join("; ")
}

/// Whether this machine's kernel counts block I/O per cgroup, which cAdvisor's
/// `container_fs_{reads,writes}_bytes_total` come from. Some virtual machines count none at all
/// (cgroup v1's root `blkio.throttle.io_service_bytes` stays `Total 0`, even after direct I/O):
/// there those panels can have no data, and the check says so instead of waiting for it.
fn host_accounts_block_io() -> bool {
    let counted = std::fs::read_to_string("/sys/fs/cgroup/blkio/blkio.throttle.io_service_bytes")
        .map(|stats| stats.trim() != "Total 0")
        .unwrap_or(true);
    if !counted {
        eprintln!(
            "this kernel counts no block I/O per cgroup: the disk I/O panels are not checked"
        );
    }
    counted
}

/// An instant query's result vector.
async fn query(http: &reqwest::Client, prometheus: &str, expr: &str) -> Result<Vec<Value>> {
    let answer = http
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await?;
    let status = answer.status();
    let body: Value = answer.json().await?;
    ensure!(status.is_success(), "query {expr}: {status} {body}");
    Ok(body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value> {
    let answer = http.get(url).send().await?;
    ensure!(
        answer.status().is_success(),
        "GET {url}: {}",
        answer.status()
    );
    Ok(answer.json().await?)
}

/// The value of one series of an instant vector.
fn value(series: &Value) -> f64 {
    series["value"][1]
        .as_str()
        .and_then(|value| value.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The backend's ServiceDown alert for the OCR service with `status` that began at `since` or
/// later, if it holds one.
fn ocr_alert(alerts: &Value, status: &str, since: OffsetDateTime) -> Option<Value> {
    find_alert(alerts, status, |alert| {
        alert["labels"]["alertname"] == "ServiceDown"
            && alert["labels"]["job"] == format!("{STACK}-ocr")
            && began_since(alert, since)
    })
}

/// Whether `alert`'s episode began at `since` or later: not one left over from an earlier
/// disturbance.
fn began_since(alert: &Value, since: OffsetDateTime) -> bool {
    alert["starts_at"]
        .as_str()
        .and_then(|starts| OffsetDateTime::parse(starts, &Rfc3339).ok())
        .is_some_and(|starts| starts >= since)
}

/// The first alert with `status` in a `GET /api/alerts` answer that `matches` accepts.
fn find_alert(alerts: &Value, status: &str, matches: impl Fn(&Value) -> bool) -> Option<Value> {
    alerts["items"]
        .as_array()?
        .iter()
        .find(|alert| alert["status"] == status && matches(alert))
        .cloned()
}

/// Whether `alert` is the one `fired` was: the same labels, so the same fingerprint. Not the same
/// `starts_at`: an alert that flapped before it resolved is resolved as a later episode, and the
/// backend keeps only the latest episode per alert.
fn same_alert(alert: &Value, fired: &Value) -> bool {
    alert["fingerprint"] == fired["fingerprint"]
}

/// A session of the stack's administrator, made the way whoever runs the stack makes it:
/// `flashcards-backend add-user` in a backend pod (registration refuses the admins' emails).
async fn admin_session(control_plane: &ControlPlane, web: &str) -> Result<reqwest::Client> {
    let credentials = json!({"email": "sre@example.org", "password": "correct horse battery"});
    let mut exec = control_plane.kubectl();
    exec.args([
        "exec",
        "-i",
        "-n",
        STACK_NAMESPACE,
        &format!("deployment/{STACK}-backend"),
        "--",
        "/usr/local/bin/flashcards-backend",
        "add-user",
        "--email",
        "sre@example.org",
    ])
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut child = exec.spawn().context("running kubectl exec")?;
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().context("kubectl exec's stdin")?;
        writeln!(
            stdin,
            "{}",
            credentials["password"].as_str().unwrap_or_default()
        )?;
    }
    let output = child.wait_with_output()?;
    ensure!(
        output.status.success(),
        "add-user in the backend pod: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(30))
        .build()?;
    call(
        client
            .post(format!("{web}/api/auth/login"))
            .json(&credentials),
        StatusCode::OK,
        "logging in as the administrator",
    )
    .await?;
    Ok(client)
}

/// Sends `signal` to the in-cluster OCR processes every half second, as a crash (KILL: the
/// kubelet restarts them and backs off into CrashLoopBackOff) or a hang (STOP: the pods stay
/// Running, their probes time out, they leave the endpoints) would; until aborted.
async fn signal_ocr_processes(signal: &'static str) {
    loop {
        signal_ocr_processes_once(signal);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Sends `signal` once to every OCR process in a pod's cgroup (not to ones the other tests run).
fn signal_ocr_processes_once(signal: &str) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let command = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cgroup = std::fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
        if String::from_utf8_lossy(&command).contains("flashcards-ocr")
            && cgroup.contains("kubepods")
        {
            let _gone_meanwhile = Command::new("kill")
                .args([&format!("-{signal}"), &pid])
                .status();
        }
    }
}

/// Every URL in the FlashcardStack's status answers, its host name resolved by the cluster's DNS
/// as a pod in the stack's namespace would: the services' `GET /healthz`, MLflow's `GET /health`,
/// a connection for Redis.
async fn check_status_urls(control_plane: &ControlPlane, node: &RealNode) -> Result<()> {
    let urls = succeed(control_plane.kubectl().args([
        "get",
        "flashcardstack",
        STACK,
        "-n",
        STACK_NAMESPACE,
        "-o",
        "jsonpath={.status.urls}",
    ]))?;
    let urls: std::collections::BTreeMap<String, String> = serde_json::from_str(&urls)?;
    ensure!(urls.len() >= 4, "too few status URLs: {urls:?}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    for (component, url) in &urls {
        let (scheme, rest) = url
            .split_once("://")
            .with_context(|| format!("{component}'s URL {url} has no scheme"))?;
        let (host, port) = rest
            .split_once(':')
            .with_context(|| format!("{component}'s URL {url} has no port"))?;
        let address = node
            .resolve(&format!("{host}.{STACK_NAMESPACE}.svc.cluster.local"))
            .await?;
        let path = match (scheme, component.as_str()) {
            ("http", "mlflow") => "/health",
            ("http", _) => "/healthz",
            _ => {
                let port: u16 = port.parse()?;
                wait_for(
                    format!("{component}: a connection to {url} at {address}"),
                    Duration::from_secs(60),
                    async || {
                        tokio::net::TcpStream::connect((address, port))
                            .await
                            .map(|_| Some(()))
                    },
                )
                .await?;
                continue;
            }
        };
        // A Service's rules reach kube-proxy's nftables a moment after its pods are Ready.
        wait_for(
            format!("{component}: GET {url}{path} at {address} answering 200"),
            Duration::from_secs(60),
            async || {
                let answer = http
                    .get(format!("http://{address}:{port}{path}"))
                    .send()
                    .await
                    .map_err(|error| format!("{error:?}"))?;
                Ok::<_, String>((answer.status() == StatusCode::OK).then_some(()))
            },
        )
        .await?;
    }
    Ok(())
}

/// What the learner made, to look for after the stack is disturbed.
struct FirstSession {
    learner: Learner,
    credentials: Value,
    deck: String,
    card: String,
}

/// A learner's first session, through the web app's same-origin API.
async fn learner_flow(web: &str) -> Result<FirstSession> {
    let (email, password) = ("ada@example.org", "correct horse battery");
    let learner = Learner::sign_up(web, email, password).await?;
    let deck = learner.create_deck("Biology").await?;
    let page = flashcards_ocr_corpus::clean_png()?;
    let document = learner
        .upload(&page.file_name, page.content_type, page.bytes.clone())
        .await?;
    let read = learner
        .poll(
            &format!("/api/documents/{document}"),
            JOB_TIMEOUT,
            |detail| detail["status"] != "queued" && detail["status"] != "processing",
        )
        .await?;
    ensure!(read["status"] == "done", "the page was not read: {read}");
    let text = read["pages"][0]["text"].as_str().unwrap_or_default();
    let expected: Vec<&str> = page.pages[0].split_whitespace().collect();
    let found = expected
        .iter()
        .filter(|word| text.split_whitespace().any(|read| read == **word))
        .count();
    // Tesseract reads the clean page nearly word for word.
    ensure!(
        found * 10 >= expected.len() * 9,
        "{found} of the page's {} words read: {text:?}",
        expected.len()
    );

    let job = learner.generate(&document, &deck, 3).await?;
    let finished = learner.finished_job(&job, JOB_TIMEOUT).await?;
    ensure!(
        finished["status"] == "done",
        "generation failed: {finished}"
    );
    let drafts = learner.drafts(&document).await?;
    let draft = drafts
        .first()
        .with_context(|| format!("no drafts: {drafts:?}"))?;
    let draft = draft["id"].as_str().context("a draft id")?;
    let accepted = call(
        learner
            .post(&format!("/api/drafts/{draft}/accept"))
            .json(&Value::Null),
        StatusCode::CREATED,
        "accepting a draft",
    )
    .await?;

    let session = call(
        learner.get(&format!("/api/decks/{deck}/study")),
        StatusCode::OK,
        "opening a study session",
    )
    .await?;
    let item = session["items"]
        .as_array()
        .and_then(|items| items.first())
        .with_context(|| format!("nothing to study: {session}"))?;
    let studied = item["card_id"].as_str().context("a card id")?;
    call(
        learner
            .post(&format!("/api/cards/{studied}/review"))
            .json(&json!({"rating": "good", "ordinal": item["ordinal"]})),
        StatusCode::OK,
        "rating the card",
    )
    .await?;
    let card = accepted["id"]
        .as_str()
        .context("the accepted card's id")?
        .to_owned();
    Ok(FirstSession {
        learner,
        credentials: json!({"email": email, "password": password}),
        deck,
        card,
    })
}
