//! Installing the stack as an SRE does: the operator's chart with helm, then an example
//! FlashcardStack with kubectl, waiting for each to be Ready.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod};
use kube::{Api, api::ListParams};

use crate::{ControlPlane, Error, wait::wait_for};

/// The namespace the chart is installed in, and the release's name.
pub const OPERATOR_NAMESPACE: &str = "flashcards-system";
pub const RELEASE: &str = "flashcards";

/// The examples' namespace and stack name.
pub const STACK_NAMESPACE: &str = "flashcards";
pub const STACK: &str = "study";

/// From apply to Ready includes copying the model out of its image and loading it.
pub const STACK_READY_TIMEOUT: Duration = Duration::from_secs(600);

/// The operator's pod starting and winning its Lease.
const OPERATOR_READY_TIMEOUT: Duration = Duration::from_secs(180);

/// A path in the repository.
pub fn repository_path(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// Runs a command to its end; a failure carries its output.
pub fn succeed(command: &mut Command) -> Result<String, Error> {
    let description = format!("{command:?}");
    let output = command
        .output()
        .map_err(Error::io(format!("running {description}")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(Error::Command {
            command: description,
            stderr: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        })
    }
}

/// `kubectl apply` of `objects` (one object or a `List`), written to `<name>.json` in the
/// control plane's folder first, where it stays for a look after a failure.
pub fn apply_json(
    control_plane: &ControlPlane,
    name: &str,
    objects: &serde_json::Value,
) -> Result<(), Error> {
    let path = control_plane.dir().join(format!("{name}.json"));
    std::fs::write(&path, objects.to_string())
        .map_err(Error::io(format!("writing {}", path.display())))?;
    succeed(control_plane.kubectl().arg("apply").arg("-f").arg(&path))?;
    Ok(())
}

/// `helm install` of the repository's chart, then waits until the operator's pod is Ready;
/// `check` runs on every poll (to fail early when a node process dies).
pub async fn install_operator(
    control_plane: &ControlPlane,
    mut check: impl FnMut() -> Result<(), Error>,
) -> Result<(), Error> {
    succeed(
        control_plane
            .helm()
            .args(["install", RELEASE])
            .arg(repository_path("charts/flashcards-operator"))
            .args([
                "--namespace",
                OPERATOR_NAMESPACE,
                "--create-namespace",
                "--wait=false",
            ]),
    )?;
    let deployments: Api<Deployment> = Api::namespaced(control_plane.client(), OPERATOR_NAMESPACE);
    let ready = wait_for(
        "the operator's pod Ready",
        OPERATOR_READY_TIMEOUT,
        async || {
            check()?;
            let deployment = deployments.get("flashcards-operator").await?;
            Ok::<_, Error>(
                deployment
                    .status
                    .and_then(|status| status.ready_replicas)
                    .is_some_and(|ready| ready >= 1)
                    .then_some(()),
            )
        },
    )
    .await;
    with_pods(control_plane, OPERATOR_NAMESPACE, ready).await
}

/// Creates `namespace` unless it exists.
pub fn ensure_namespace(control_plane: &ControlPlane, namespace: &str) -> Result<(), Error> {
    let exists = control_plane
        .kubectl()
        .args(["get", "namespace", namespace])
        .output()
        .map_err(Error::io("running kubectl get namespace"))?
        .status
        .success();
    if !exists {
        succeed(
            control_plane
                .kubectl()
                .args(["create", "namespace", namespace]),
        )?;
    }
    Ok(())
}

/// Creates [`STACK_NAMESPACE`] unless it exists and applies `manifests/examples/<example>.yaml`.
pub fn apply_example(control_plane: &ControlPlane, example: &str) -> Result<(), Error> {
    ensure_namespace(control_plane, STACK_NAMESPACE)?;
    succeed(
        control_plane
            .kubectl()
            .arg("apply")
            .arg("-f")
            .arg(repository_path(&format!(
                "manifests/examples/{example}.yaml"
            ))),
    )?;
    Ok(())
}

/// A merge patch of the example's FlashcardStack, as `kubectl patch --type=merge` sends it.
pub fn patch_stack(control_plane: &ControlPlane, patch: &serde_json::Value) -> Result<(), Error> {
    succeed(control_plane.kubectl().args([
        "patch",
        "flashcardstack",
        STACK,
        "-n",
        STACK_NAMESPACE,
        "--type=merge",
        "-p",
        &patch.to_string(),
    ]))?;
    Ok(())
}

/// Waits until every pod of the stack is Ready and the FlashcardStack's Ready condition is True.
pub async fn wait_stack_ready(
    control_plane: &ControlPlane,
    mut check: impl FnMut() -> Result<(), Error>,
) -> Result<(), Error> {
    let pods: Api<Pod> = Api::namespaced(control_plane.client(), STACK_NAMESPACE);
    let ready = wait_for(
        "every pod of the stack Ready and the FlashcardStack Ready",
        STACK_READY_TIMEOUT,
        async || {
            check()?;
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
            Ok::<_, Error>((all_ready && condition == "True").then_some(()))
        },
    )
    .await;
    with_pods(control_plane, STACK_NAMESPACE, ready).await
}

/// Waits until Deployment `namespace/name` has `replicas` ready.
pub async fn wait_deployment_ready(
    control_plane: &ControlPlane,
    namespace: &str,
    name: &str,
    mut check: impl FnMut() -> Result<(), Error>,
) -> Result<(), Error> {
    let deployments: Api<Deployment> = Api::namespaced(control_plane.client(), namespace);
    let ready = wait_for(
        format!("Deployment {namespace}/{name} ready"),
        STACK_READY_TIMEOUT,
        async || {
            check()?;
            let deployment = deployments.get(name).await?;
            let wanted = deployment.spec.replicas.unwrap_or(1);
            Ok::<_, Error>(
                (deployment.status.and_then(|status| status.ready_replicas) == Some(wanted))
                    .then_some(()),
            )
        },
    )
    .await;
    with_pods(control_plane, namespace, ready).await
}

/// Whether a pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition.type_ == "Ready" && condition.status == "True")
        })
}

/// A failed wait, with each pod's phase and container states added to its message.
pub async fn with_pods<T>(
    control_plane: &ControlPlane,
    namespace: &str,
    outcome: Result<T, Error>,
) -> Result<T, Error> {
    let error = match outcome {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    let pods: Api<Pod> = Api::namespaced(control_plane.client(), namespace);
    let described = match pods.list(&ListParams::default()).await {
        Ok(list) => list
            .items
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
            .join("\n"),
        Err(list_error) => format!("(pods not listed: {list_error})"),
    };
    Err(Error::Command {
        command: format!("waiting on the pods in {namespace}"),
        stderr: format!("{error}\n{described}"),
    })
}
