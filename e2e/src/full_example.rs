//! The full example (`manifests/examples/full.yaml`) on a real node, as the tests that need it
//! set it up: a cluster with the operator installed by its chart, what the example expects to
//! find (`e2e/manifests/full-dependencies.yaml`: PostgreSQL and an upstream model), then the
//! stack itself.

use std::time::Instant;

use k8s_openapi::api::core::v1::Service;
use kube::Api;

use crate::{
    ControlPlane, Error, NODE_ADDRESS, Options, RealNode,
    stack::{self, STACK, STACK_NAMESPACE},
};

/// The web front end's port in its Service (the contracts' default).
const WEB_PORT: u16 = flashcards_contracts::ports::WEB;

/// The control plane set up for a real node, the node, and the operator installed by its chart.
pub async fn cluster_with_operator() -> Result<(ControlPlane, RealNode), Error> {
    let control_plane = ControlPlane::start_with(Options {
        node_address: Some(NODE_ADDRESS),
        ..Options::default()
    })
    .await?;
    let mut node = RealNode::start(&control_plane).await?;
    stack::install_operator(&control_plane, || node.check_running()).await?;
    Ok((control_plane, node))
}

/// What the full example needs before it is applied: the monitoring CRDs (so that its
/// ServiceMonitors, PrometheusRule and dashboards are made), and PostgreSQL and the upstream
/// model, Ready.
pub async fn dependencies(control_plane: &ControlPlane, node: &mut RealNode) -> Result<(), Error> {
    for crds in [crate::prometheus_crds()?, crate::grafana_dashboard_crd()?] {
        stack::succeed(
            control_plane
                .kubectl()
                .args(["apply", "--server-side", "-f"])
                .arg(crds),
        )?;
    }
    stack::ensure_namespace(control_plane, STACK_NAMESPACE)?;
    stack::succeed(
        control_plane
            .kubectl()
            .arg("apply")
            .arg("-f")
            .arg(stack::repository_path(
                "e2e/manifests/full-dependencies.yaml",
            )),
    )?;
    for (namespace, name) in [(STACK_NAMESPACE, "postgres"), ("llm", "ollama")] {
        stack::wait_deployment_ready(control_plane, namespace, name, || node.check_running())
            .await?;
    }
    Ok(())
}

/// `kubectl apply` of the full example; returns the web front end's URL once the stack is Ready.
pub async fn apply(control_plane: &ControlPlane, node: &mut RealNode) -> Result<String, Error> {
    stack::apply_example(control_plane, "full")?;
    let applied = Instant::now();
    stack::wait_stack_ready(control_plane, || node.check_running()).await?;
    eprintln!(
        "the full stack was Ready {:.0?} after kubectl apply",
        applied.elapsed()
    );
    web_url(control_plane).await
}

/// The web front end's URL: its Service's cluster IP, which kube-proxy routes from this machine.
pub async fn web_url(control_plane: &ControlPlane) -> Result<String, Error> {
    let services: Api<Service> = Api::namespaced(control_plane.client(), STACK_NAMESPACE);
    let web = services.get(&format!("{STACK}-web")).await?;
    let cluster_ip = web
        .spec
        .and_then(|spec| spec.cluster_ip)
        .ok_or_else(|| Error::Command {
            command: format!("reading Service {STACK}-web"),
            stderr: "it has no cluster IP".to_owned(),
        })?;
    Ok(format!("http://{cluster_ip}:{WEB_PORT}"))
}
