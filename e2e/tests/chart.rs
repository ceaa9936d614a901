//! The Helm chart on the real control plane: it installs (CRD included), and the RBAC it grants
//! the operator's ServiceAccount covers what the operator does and nothing it does not need —
//! Secrets above all (checked by impersonation with `kubectl auth can-i`). And
//! manifests/install.yaml is that chart rendered, as `cargo xtask gen` writes it; `helm lint
//! --strict` passes it.

use std::{path::Path, time::Duration};

use anyhow::{Context as _, Result, ensure};
use flashcards_e2e::{ControlPlane, helm_binary, install_manifest, prometheus_crds, wait_for};

const RELEASE_NAMESPACE: &str = "flashcards-system";
const OPERATOR: &str = "system:serviceaccount:flashcards-system:flashcards-operator";

fn chart() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../charts/flashcards-operator")
        .display()
        .to_string()
}

/// `kubectl auth can-i <verb> <resource> --as <operator>` in `namespace`; `resource/sub` asks
/// about a subresource.
fn can(control_plane: &ControlPlane, verb: &str, resource: &str, namespace: &str) -> Result<bool> {
    let mut command = control_plane.kubectl();
    command.args(["auth", "can-i", verb, "-n", namespace, "--as", OPERATOR]);
    match resource.split_once('/') {
        Some((resource, subresource)) => command.args([resource, "--subresource", subresource]),
        None => command.arg(resource),
    };
    let output = command.output().context("running kubectl auth can-i")?;
    let answer = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    ensure!(
        answer == "yes" || answer == "no",
        "kubectl auth can-i {verb} {resource}: {answer} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(answer == "yes")
}

#[test]
fn helm_lint_passes_the_chart() -> Result<()> {
    let home = tempfile::tempdir()?;
    let output = std::process::Command::new(helm_binary()?)
        .args(["lint", "--strict", &chart()])
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success() && text.contains("0 chart(s) failed"),
        "helm lint: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

#[test]
fn install_manifest_is_the_chart_rendered() -> Result<()> {
    let rendered = install_manifest::render(&helm_binary()?, Path::new(&chart()))?;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/install.yaml");
    let checked_in = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: run `cargo xtask gen`", path.display()))?;
    ensure!(
        checked_in == rendered,
        "manifests/install.yaml differs from the chart rendered: run `cargo xtask gen`"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_installs_with_least_privilege() -> Result<()> {
    let control_plane = ControlPlane::start().await?;
    let install = control_plane
        .helm()
        .args([
            "install",
            "flashcards",
            &chart(),
            "--namespace",
            RELEASE_NAMESPACE,
        ])
        .args(["--create-namespace", "--wait=false"])
        .output()
        .context("running helm install")?;
    ensure!(
        install.status.success(),
        "helm install: {}",
        String::from_utf8_lossy(&install.stderr)
    );
    let crd = control_plane
        .kubectl()
        .args(["get", "crd", "flashcardstacks.flashcards.dev"])
        .output()?;
    ensure!(crd.status.success(), "the chart installs the CRD");

    // kubectl resolves resource names through discovery: the monitoring types must exist.
    let monitoring = control_plane
        .kubectl()
        .args(["apply", "--server-side", "-f"])
        .arg(prometheus_crds()?)
        .output()?;
    ensure!(
        monitoring.status.success(),
        "{}",
        String::from_utf8_lossy(&monitoring.stderr)
    );
    wait_for(
        "the ServiceMonitor CRD established",
        Duration::from_secs(60),
        async || {
            let output = control_plane
                .kubectl()
                .args(["get", "crd", "servicemonitors.monitoring.coreos.com", "-o"])
                .arg(r#"jsonpath={.status.conditions[?(@.type=="Established")].status}"#)
                .output()?;
            Ok::<_, std::io::Error>(
                (String::from_utf8_lossy(&output.stdout) == "True").then_some(()),
            )
        },
    )
    .await?;

    for (verb, resource) in [
        ("watch", "flashcardstacks.flashcards.dev"),
        ("patch", "flashcardstacks.flashcards.dev/status"),
        ("patch", "deployments.apps"),
        ("delete", "services"),
        ("create", "persistentvolumeclaims"),
        ("patch", "networkpolicies.networking.k8s.io"),
        ("patch", "servicemonitors.monitoring.coreos.com"),
        ("create", "events.events.k8s.io"),
    ] {
        ensure!(
            can(&control_plane, verb, resource, "study")?,
            "the operator cannot {verb} {resource}"
        );
    }
    ensure!(can(
        &control_plane,
        "update",
        "leases.coordination.k8s.io",
        RELEASE_NAMESPACE
    )?);
    for (verb, resource) in [
        ("get", "secrets"),
        ("list", "secrets"),
        ("create", "pods"),
        ("delete", "namespaces"),
        ("update", "flashcardstacks.flashcards.dev"),
        ("update", "leases.coordination.k8s.io"),
    ] {
        ensure!(
            !can(&control_plane, verb, resource, "study")?,
            "the operator should not {verb} {resource}"
        );
    }
    Ok(())
}
