//! The whole stack on a real node, as an SRE installs it: `helm install` of the chart runs the
//! operator as a pod on its ServiceAccount's token, `kubectl apply` of the minimal example makes
//! every component's pod Running and Ready by its real probes, from the images `cargo xtask test`
//! built, and the FlashcardStack reports Ready. Then a learner, through the stack's web Service
//! (its ClusterIP, which kube-proxy routes from this machine), registers, uploads a rendered page,
//! reads its text, has the local model generate cards, accepts one, studies and rates it.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};
use flashcards_e2e::{ControlPlane, NODE_ADDRESS, Options, RealNode, wait_for};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Pod, Service},
};
use kube::{Api, Client, api::ListParams};
use reqwest::{StatusCode, multipart};
use serde_json::{Value, json};

const RELEASE_NAMESPACE: &str = "flashcards-system";
const STACK_NAMESPACE: &str = "flashcards";
const STACK: &str = "study";

/// From apply to Ready includes copying the model out of its image and loading it.
const STACK_READY_TIMEOUT: Duration = Duration::from_secs(600);

/// OCR of one page, and generation with the local model on two cores.
const JOB_TIMEOUT: Duration = Duration::from_secs(300);

/// The web app's port in the Service (the contracts' default).
const WEB_PORT: u16 = flashcards_contracts::ports::WEB;

fn repository(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
        .display()
        .to_string()
}

fn succeed(command: &mut Command) -> Result<String> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    ensure!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
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

/// Each pod's name, phase and container states, for a failure message.
async fn describe_pods(client: &Client, namespace: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let Ok(list) = pods.list(&ListParams::default()).await else {
        return "(pods not listed)".to_owned();
    };
    list.items
        .iter()
        .map(|pod| {
            let status = pod.status.clone().unwrap_or_default();
            format!(
                "{} {:?} {:?}",
                pod.metadata.name.clone().unwrap_or_default(),
                status.phase,
                status.container_statuses
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_and_the_minimal_example_serve_on_a_real_node() -> Result<()> {
    let control_plane = ControlPlane::start_with(Options {
        node_address: Some(NODE_ADDRESS),
    })
    .await?;
    let mut node = RealNode::start(&control_plane).await?;
    let client = control_plane.client();

    succeed(control_plane.helm().args([
        "install",
        "flashcards",
        &repository("charts/flashcards-operator"),
        "--namespace",
        RELEASE_NAMESPACE,
        "--create-namespace",
        "--wait=false",
    ]))?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), RELEASE_NAMESPACE);
    let operator_ready = wait_for(
        "the operator's pod Ready",
        Duration::from_secs(180),
        async || {
            node.check_running()?;
            let deployment = deployments.get("flashcards-operator").await?;
            Ok::<_, anyhow::Error>(
                deployment
                    .status
                    .and_then(|status| status.ready_replicas)
                    .is_some_and(|ready| ready >= 1)
                    .then_some(()),
            )
        },
    )
    .await;
    if let Err(error) = operator_ready {
        anyhow::bail!(
            "{error}\n{}",
            describe_pods(&client, RELEASE_NAMESPACE).await
        );
    }

    succeed(
        control_plane
            .kubectl()
            .args(["create", "namespace", STACK_NAMESPACE]),
    )?;
    succeed(control_plane.kubectl().args([
        "apply",
        "-f",
        &repository("manifests/examples/minimal.yaml"),
    ]))?;
    let applied = Instant::now();
    let pods: Api<Pod> = Api::namespaced(client.clone(), STACK_NAMESPACE);
    let stack_ready = wait_for(
        "every pod of the minimal stack Ready and the FlashcardStack Ready",
        STACK_READY_TIMEOUT,
        async || {
            node.check_running()?;
            let list = pods.list(&ListParams::default()).await?;
            let all_ready = !list.items.is_empty() && list.items.iter().all(is_ready);
            let condition = succeed(control_plane.kubectl().args([
                "get",
                "flashcardstack",
                STACK,
                "-n",
                STACK_NAMESPACE,
                "-o",
                r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#,
            ]))?;
            Ok::<_, anyhow::Error>((all_ready && condition == "True").then_some(()))
        },
    )
    .await;
    if let Err(error) = stack_ready {
        anyhow::bail!("{error}\n{}", describe_pods(&client, STACK_NAMESPACE).await);
    }
    eprintln!(
        "the minimal stack was Ready {:.0?} after kubectl apply",
        applied.elapsed()
    );

    let services: Api<Service> = Api::namespaced(client.clone(), STACK_NAMESPACE);
    let web = services.get(&format!("{STACK}-web")).await?;
    let cluster_ip = web
        .spec
        .and_then(|spec| spec.cluster_ip)
        .context("the web Service has no cluster IP")?;
    learner_flow(&format!("http://{cluster_ip}:{WEB_PORT}")).await
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
async fn learner_flow(web: &str) -> Result<()> {
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
    call(
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
    let card = item["card_id"].as_str().context("a card id")?;
    call(
        client
            .post(format!("{web}/api/cards/{card}/review"))
            .json(&json!({"rating": "good", "ordinal": item["ordinal"]})),
        StatusCode::OK,
        "rating the card",
    )
    .await?;
    Ok(())
}
