//! The whole stack on a real node, as an SRE installs it: `helm install` of the chart runs the
//! operator as a pod on its ServiceAccount's token, `kubectl apply` of the minimal example makes
//! every component's pod Running and Ready by its real probes, from the images `cargo xtask test`
//! built, and the FlashcardStack reports Ready. Then a learner, through the stack's web Service
//! (its ClusterIP, which kube-proxy routes from this machine), registers, uploads a rendered page,
//! reads its text, has the local model generate cards, accepts one, studies and rates it. The
//! status URLs answer by their cluster DNS names. Then a pod and a Service are deleted and a
//! Deployment scaled to nothing by hand: the operator heals the stack, and the learner's card is
//! still there (SQLite on its volume). The full example runs there too, on PostgreSQL with an
//! upstream model.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};
use flashcards_e2e::{
    ControlPlane, NODE_ADDRESS, Options, RealNode,
    stack::{self, STACK, STACK_NAMESPACE, STACK_READY_TIMEOUT, is_ready},
    wait_for,
};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Pod, Service},
};
use kube::{Api, api::ListParams};
use reqwest::{StatusCode, multipart};
use serde_json::{Value, json};

/// OCR of one page, and generation with the local model on two cores.
const JOB_TIMEOUT: Duration = Duration::from_secs(300);

/// The web app's port in the Service (the contracts' default).
const WEB_PORT: u16 = flashcards_contracts::ports::WEB;

fn succeed(command: &mut Command) -> Result<String> {
    Ok(stack::succeed(command)?)
}

/// One real node per machine: the tests take turns.
static NODE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The control plane set up for a real node, the node, and the operator installed by its chart.
async fn cluster_with_operator() -> Result<(ControlPlane, RealNode)> {
    let control_plane = ControlPlane::start_with(Options {
        node_address: Some(NODE_ADDRESS),
        ..Options::default()
    })
    .await?;
    let mut node = RealNode::start(&control_plane).await?;
    stack::install_operator(&control_plane, || node.check_running()).await?;
    Ok((control_plane, node))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_and_the_minimal_example_serve_on_a_real_node() -> Result<()> {
    let _turn = NODE.lock().await;
    let (control_plane, mut node) = cluster_with_operator().await?;
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
    let web = web_url(&services).await?;
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
    let web = web_url(&services).await?;
    call(
        learner
            .client
            .post(format!("{web}/api/auth/login"))
            .json(&learner.credentials),
        StatusCode::OK,
        "logging in again",
    )
    .await?;
    let cards = poll(
        &learner.client,
        &format!("{web}/api/decks/{}/cards", learner.deck),
        |_| true,
    )
    .await?;
    ensure!(
        cards.to_string().contains(&learner.card),
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
    let (control_plane, mut node) = cluster_with_operator().await?;
    // The monitoring CRDs, so that the example's ServiceMonitors, PrometheusRule and dashboards
    // are made.
    succeed(
        control_plane
            .kubectl()
            .args(["apply", "--server-side", "-f"])
            .arg(flashcards_e2e::prometheus_crds()?),
    )?;
    succeed(
        control_plane
            .kubectl()
            .args(["apply", "--server-side", "-f"])
            .arg(flashcards_e2e::grafana_dashboard_crd()?),
    )?;
    stack::ensure_namespace(&control_plane, STACK_NAMESPACE)?;
    succeed(
        control_plane
            .kubectl()
            .arg("apply")
            .arg("-f")
            .arg(stack::repository_path(
                "e2e/manifests/full-dependencies.yaml",
            )),
    )?;
    for (namespace, name) in [(STACK_NAMESPACE, "postgres"), ("llm", "ollama")] {
        stack::wait_deployment_ready(&control_plane, namespace, name, || node.check_running())
            .await?;
    }
    stack::apply_example(&control_plane, "full")?;
    let applied = Instant::now();
    stack::wait_stack_ready(&control_plane, || node.check_running()).await?;
    eprintln!(
        "the full stack was Ready {:.0?} after kubectl apply",
        applied.elapsed()
    );
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
    let services: Api<Service> = Api::namespaced(control_plane.client(), STACK_NAMESPACE);
    learner_flow(&web_url(&services).await?).await?;
    Ok(())
}

/// The web app's URL through its Service's cluster IP.
async fn web_url(services: &Api<Service>) -> Result<String> {
    let web = services.get(&format!("{STACK}-web")).await?;
    let cluster_ip = web
        .spec
        .and_then(|spec| spec.cluster_ip)
        .context("the web Service has no cluster IP")?;
    Ok(format!("http://{cluster_ip}:{WEB_PORT}"))
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
struct Learner {
    client: reqwest::Client,
    credentials: Value,
    deck: String,
    card: String,
}

/// Polls `GET url` until `done` holds for the JSON answer, which it returns.
async fn poll(client: &reqwest::Client, url: &str, done: impl Fn(&Value) -> bool) -> Result<Value> {
    let started = Instant::now();
    loop {
        let response = client.get(url).send().await?;
        ensure!(
            response.status() == StatusCode::OK,
            "GET {url}: {}",
            response.status()
        );
        let body: Value = response.json().await?;
        if done(&body) {
            return Ok(body);
        }
        ensure!(
            started.elapsed() < JOB_TIMEOUT,
            "GET {url} still says {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A JSON request that must answer `expected`; returns the body.
async fn call(request: reqwest::RequestBuilder, expected: StatusCode, what: &str) -> Result<Value> {
    let response = request.send().await.with_context(|| what.to_owned())?;
    let status = response.status();
    let text = response.text().await?;
    ensure!(status == expected, "{what}: {status} {text}");
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A learner's first session, through the web app's same-origin API.
async fn learner_flow(web: &str) -> Result<Learner> {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(120))
        .build()?;
    let credentials = json!({"email": "ada@example.org", "password": "correct horse battery"});
    call(
        client
            .post(format!("{web}/api/auth/register"))
            .json(&credentials),
        StatusCode::CREATED,
        "registering",
    )
    .await?;
    call(
        client
            .post(format!("{web}/api/auth/login"))
            .json(&credentials),
        StatusCode::OK,
        "logging in",
    )
    .await?;
    let deck = call(
        client
            .post(format!("{web}/api/decks"))
            .json(&json!({"name": "Biology"})),
        StatusCode::CREATED,
        "creating a deck",
    )
    .await?;
    let deck = deck["id"].as_str().context("a deck id")?.to_owned();

    let page = flashcards_ocr_corpus::clean_png()?;
    let part = multipart::Part::bytes(page.bytes.clone())
        .file_name(page.file_name.clone())
        .mime_str(page.content_type)?;
    let document = call(
        client
            .post(format!("{web}/api/documents"))
            .multipart(multipart::Form::new().part("file", part)),
        StatusCode::CREATED,
        "uploading a page",
    )
    .await?;
    let document = document["id"].as_str().context("a document id")?.to_owned();
    let read = poll(
        &client,
        &format!("{web}/api/documents/{document}"),
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

    let job = call(
        client
            .post(format!("{web}/api/documents/{document}/generate"))
            .json(&json!({"deck_id": deck, "max_cards": 3})),
        StatusCode::ACCEPTED,
        "starting generation",
    )
    .await?;
    let job = job["id"].as_str().context("a job id")?.to_owned();
    let finished = poll(&client, &format!("{web}/api/jobs/{job}"), |job| {
        job["status"] != "queued" && job["status"] != "running"
    })
    .await?;
    ensure!(
        finished["status"] == "done",
        "generation failed: {finished}"
    );
    let drafts = call(
        client.get(format!("{web}/api/documents/{document}/drafts")),
        StatusCode::OK,
        "listing drafts",
    )
    .await?;
    let draft = drafts["items"]
        .as_array()
        .and_then(|drafts| drafts.first())
        .with_context(|| format!("no drafts: {drafts}"))?;
    let draft = draft["id"].as_str().context("a draft id")?;
    let accepted = call(
        client
            .post(format!("{web}/api/drafts/{draft}/accept"))
            .json(&Value::Null),
        StatusCode::CREATED,
        "accepting a draft",
    )
    .await?;

    let session = call(
        client.get(format!("{web}/api/decks/{deck}/study")),
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
        client
            .post(format!("{web}/api/cards/{studied}/review"))
            .json(&json!({"rating": "good", "ordinal": item["ordinal"]})),
        StatusCode::OK,
        "rating the card",
    )
    .await?;
    let card = accepted["id"]
        .as_str()
        .context("the accepted card's id")?
        .to_owned();
    Ok(Learner {
        client,
        credentials,
        deck,
        card,
    })
}
