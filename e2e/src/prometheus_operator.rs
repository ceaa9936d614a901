//! Monitoring in the cluster as kube-prometheus-stack sets it up: the Prometheus Operator, a
//! Prometheus that selects ServiceMonitors and PrometheusRules labelled
//! `release: kube-prometheus-stack` in every namespace, an Alertmanager that takes
//! AlertmanagerConfigs with the same label, and the kubelet's ServiceMonitor (its own metrics and
//! cAdvisor's), all in the `monitoring` namespace of the real node.
//!
//! Scrapes and rule evaluations are every 5 s so that the tests wait seconds, not minutes.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, api::ListParams};
use serde_json::{Value, json};

use crate::{
    ControlPlane, Error,
    stack::{apply_json, is_ready, succeed, with_pods},
    wait_for,
};

/// The images, under the names the operator and kube-prometheus-stack use; `cargo xtask` builds
/// them (the operator and Prometheus from their modules, Alertmanager from Debian's package).
pub const OPERATOR_IMAGE: &str = "quay.io/prometheus-operator/prometheus-operator:v0.85.0";
pub const CONFIG_RELOADER_IMAGE: &str =
    "quay.io/prometheus-operator/prometheus-config-reloader:v0.85.0";
pub const PROMETHEUS_IMAGE: &str = "quay.io/prometheus/prometheus:v3.5.0";
pub const ALERTMANAGER_IMAGE: &str = "quay.io/prometheus/alertmanager:v0.25.0";

pub const NAMESPACE: &str = "monitoring";
/// The label kube-prometheus-stack's Prometheus and Alertmanager select their objects by.
pub const RELEASE_LABEL: (&str, &str) = ("release", "kube-prometheus-stack");
/// The Prometheus and Alertmanager resources' name; their pods are `<kind>-<name>-0`.
pub const NAME: &str = "kube-prometheus-stack";
/// Prometheus' HTTP port in its pod.
pub const PROMETHEUS_PORT: u16 = 9090;
/// How often Prometheus scrapes the kubelet and evaluates rules.
pub const INTERVAL: &str = "5s";

const OPERATOR: &str = "prometheus-operator";
const PROMETHEUS_ACCOUNT: &str = "prometheus";
const READY_TIMEOUT: Duration = Duration::from_secs(300);
/// The in-cluster files every pod's ServiceAccount token comes with.
const ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The objects to apply after the CRDs: the operator with its RBAC, Prometheus with the read-only
/// access its discovery needs, Alertmanager, and the kubelet's ServiceMonitor.
pub fn manifests() -> Vec<Value> {
    let (release_key, release_value) = RELEASE_LABEL;
    let release = json!({ release_key: release_value });
    let operator_labels = json!({"app.kubernetes.io/name": OPERATOR});
    let non_root = json!({"runAsNonRoot": true, "runAsUser": 65534, "runAsGroup": 65534,
                          "fsGroup": 65534});
    let monitoring_group = [
        "alertmanagers",
        "alertmanagers/finalizers",
        "alertmanagers/status",
        "alertmanagerconfigs",
        "prometheuses",
        "prometheuses/finalizers",
        "prometheuses/status",
        "prometheusagents",
        "prometheusagents/finalizers",
        "prometheusagents/status",
        "thanosrulers",
        "thanosrulers/finalizers",
        "thanosrulers/status",
        "servicemonitors",
        "podmonitors",
        "probes",
        "prometheusrules",
        "scrapeconfigs",
    ];
    // The kubelet's own series (volume statistics among them) and cAdvisor's.
    let kubelet_endpoints: Vec<Value> = ["/metrics", "/metrics/cadvisor"]
        .map(|path| {
            json!({
                "port": "https-metrics",
                "path": path,
                "scheme": "https",
                "interval": INTERVAL,
                "honorLabels": true,
                "bearerTokenFile": format!("{ACCOUNT_DIR}/token"),
                "tlsConfig": {"caFile": format!("{ACCOUNT_DIR}/ca.crt")},
            })
        })
        .into();
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        service_account(OPERATOR),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": OPERATOR},
            // kube-prometheus-stack's operator role: its own resources, the StatefulSets,
            // Secrets and Services it makes, and the kubelet's Service.
            "rules": [
                {"apiGroups": ["monitoring.coreos.com"], "resources": monitoring_group,
                 "verbs": ["*"]},
                {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["*"]},
                {"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["*"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "delete"]},
                {"apiGroups": [""], "resources": ["services", "services/finalizers", "endpoints"],
                 "verbs": ["get", "create", "update", "delete"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                 "verbs": ["get", "create", "list", "update", "delete"]},
                {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]},
                {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["", "events.k8s.io"], "resources": ["events"],
                 "verbs": ["create", "patch"]},
                {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"],
                 "verbs": ["get"]},
            ],
        }),
        cluster_role_binding(OPERATOR),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": OPERATOR, "namespace": NAMESPACE, "labels": operator_labels},
            "spec": {
                "selector": {"matchLabels": operator_labels},
                "template": {
                    "metadata": {"labels": operator_labels},
                    "spec": {
                        "serviceAccountName": OPERATOR,
                        "securityContext": non_root,
                        "containers": [{
                            "name": OPERATOR,
                            "image": OPERATOR_IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "args": [
                                format!("--prometheus-config-reloader={CONFIG_RELOADER_IMAGE}"),
                                // The kubelet's Service and Endpoints, for its ServiceMonitor.
                                "--kubelet-service=kube-system/kubelet".to_owned(),
                            ],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "securityContext": {"allowPrivilegeEscalation": false,
                                                "readOnlyRootFilesystem": true,
                                                "capabilities": {"drop": ["ALL"]}},
                            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                        }],
                    },
                },
            },
        }),
        service_account(PROMETHEUS_ACCOUNT),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": PROMETHEUS_ACCOUNT},
            // Discovery of targets in every namespace, and the kubelet's metrics.
            "rules": [
                {"apiGroups": [""], "resources": ["nodes", "nodes/metrics", "services",
                                                  "endpoints", "pods"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"],
                 "verbs": ["get", "list", "watch"]},
                {"nonResourceURLs": ["/metrics", "/metrics/cadvisor"], "verbs": ["get"]},
            ],
        }),
        cluster_role_binding(PROMETHEUS_ACCOUNT),
        json!({
            "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "spec": {
                "image": PROMETHEUS_IMAGE,
                "version": "v3.5.0",
                "replicas": 1,
                "serviceAccountName": PROMETHEUS_ACCOUNT,
                "securityContext": non_root,
                "scrapeInterval": INTERVAL,
                "evaluationInterval": INTERVAL,
                "serviceMonitorSelector": {"matchLabels": release},
                "serviceMonitorNamespaceSelector": {},
                "ruleSelector": {"matchLabels": release},
                "ruleNamespaceSelector": {},
                "podMonitorSelector": {"matchLabels": release},
                "podMonitorNamespaceSelector": {},
                "alerting": {"alertmanagers": [{
                    "namespace": NAMESPACE, "name": "alertmanager-operated", "port": "web",
                }]},
                "resources": {"requests": {"cpu": "100m", "memory": "200Mi"}},
            },
        }),
        json!({
            "apiVersion": "monitoring.coreos.com/v1", "kind": "Alertmanager",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "spec": {
                "image": ALERTMANAGER_IMAGE,
                "version": "v0.25.0",
                "replicas": 1,
                "securityContext": non_root,
                "alertmanagerConfigSelector": {"matchLabels": release},
                "alertmanagerConfigNamespaceSelector": {},
                "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}},
            },
        }),
        json!({
            "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": {"name": "kubelet", "namespace": NAMESPACE, "labels": release},
            "spec": {
                "jobLabel": "k8s-app",
                "namespaceSelector": {"matchNames": ["kube-system"]},
                "selector": {"matchLabels": {"app.kubernetes.io/name": "kubelet"}},
                "endpoints": kubelet_endpoints,
            },
        }),
    ]
}

fn service_account(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": NAMESPACE},
    })
}

fn cluster_role_binding(name: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}],
    })
}

/// Applies the Prometheus Operator's CRDs and [`manifests`], then waits until Prometheus and
/// Alertmanager run; returns Prometheus' base URL (its pod's address, which this machine
/// reaches over the node's bridge).
pub async fn install(
    control_plane: &ControlPlane,
    mut check: impl FnMut() -> Result<(), Error>,
) -> Result<String, Error> {
    succeed(
        control_plane
            .kubectl()
            .args(["apply", "--server-side", "-f"])
            .arg(crate::prometheus_crds()?),
    )?;
    succeed(control_plane.kubectl().args([
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd",
        "prometheuses.monitoring.coreos.com",
        "alertmanagers.monitoring.coreos.com",
        "alertmanagerconfigs.monitoring.coreos.com",
        "servicemonitors.monitoring.coreos.com",
    ]))?;
    let list = json!({"apiVersion": "v1", "kind": "List", "items": manifests()});
    apply_json(control_plane, "prometheus-operator", &list)?;
    let pods: Api<Pod> = Api::namespaced(control_plane.client(), NAMESPACE);
    let waited = wait_for(
        "the Prometheus Operator, Prometheus and Alertmanager Ready",
        READY_TIMEOUT,
        async || {
            check()?;
            let list = pods.list(&ListParams::default()).await?;
            let ready = |name: &str| {
                list.items.iter().find(|pod| {
                    pod.metadata
                        .labels
                        .as_ref()
                        .and_then(|labels| labels.get("app.kubernetes.io/name"))
                        .is_some_and(|label| label == name)
                        && is_ready(pod)
                })
            };
            let address = ready("prometheus")
                .and_then(|pod| pod.status.as_ref()?.pod_ip.clone())
                .map(|ip| format!("http://{ip}:{PROMETHEUS_PORT}"));
            let others = ready(OPERATOR).is_some() && ready("alertmanager").is_some();
            Ok::<_, Error>(address.filter(|_| others))
        },
    )
    .await;
    with_pods(control_plane, NAMESPACE, waited).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_selects_the_release_label_in_every_namespace() {
        let objects = manifests();
        let prometheus = objects
            .iter()
            .find(|object| object["kind"] == "Prometheus")
            .expect("a Prometheus");
        let spec = &prometheus["spec"];
        for selector in ["serviceMonitorSelector", "ruleSelector"] {
            assert_eq!(
                spec[selector]["matchLabels"]["release"],
                "kube-prometheus-stack"
            );
        }
        assert_eq!(spec["serviceMonitorNamespaceSelector"], json!({}));
        assert_eq!(spec["ruleNamespaceSelector"], json!({}));
        assert_eq!(spec["image"], PROMETHEUS_IMAGE);
    }

    #[test]
    fn the_kubelet_is_scraped_for_its_own_and_cadvisor_series() {
        let objects = manifests();
        let monitor = objects
            .iter()
            .find(|object| object["kind"] == "ServiceMonitor")
            .expect("the kubelet's ServiceMonitor");
        let paths: Vec<&str> = monitor["spec"]["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|endpoint| endpoint["path"].as_str())
            .collect();
        assert_eq!(paths, ["/metrics", "/metrics/cadvisor"]);
    }
}
