//! NetworkPolicy enforcement on the real node: kube-network-policies (the implementation kind
//! runs), as kind installs it: a privileged DaemonSet on the host network that reads the first
//! packet of each new pod connection from an nfqueue and drops those no policy allows. Without
//! it the operator's NetworkPolicies would be objects nothing enforces.
//!
//! It also tries to install the nftables rules that fill its queue; this kernel lacks
//! `CONFIG_NFT_QUEUE`, so they fail (it logs so and retries), and the node's iptables rules fill
//! the same queue instead (`node::queue_pod_connections`). The verdicts are its own.

use std::{fs, time::Duration};

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, api::ListParams};
use serde_json::{Value, json};

use crate::{
    ControlPlane, Error, NODE_NAME, node::POLICY_QUEUE, stack::is_ready, wait_for,
    workspace::free_port,
};

/// The image the DaemonSet runs, built by `cargo xtask` from the binary in the node's folder.
pub const NETWORK_POLICY_IMAGE: &str = "registry.k8s.io/networking/kube-network-policies:v0.8.0";

const NAME: &str = "kube-network-policies";
const NAMESPACE: &str = "kube-system";
const INSTALL_TIMEOUT: Duration = Duration::from_secs(120);

/// The objects to apply: its ServiceAccount, read-only RBAC for what it watches, and the
/// DaemonSet, kept on the real node (the kwok node's pods have no network to guard).
pub fn manifests(metrics_port: u16) -> Vec<Value> {
    let labels = json!({"app.kubernetes.io/name": NAME});
    vec![
        json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": NAME},
            "rules": [
                {"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["list", "watch"]},
                {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"],
                 "verbs": ["list", "watch"]},
            ],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": NAME},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
        }),
        json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "hostNetwork": true,
                        "nodeSelector": {"kubernetes.io/hostname": NODE_NAME},
                        "serviceAccountName": NAME,
                        "tolerations": [{"operator": "Exists"}],
                        "containers": [{
                            "name": NAME,
                            "image": NETWORK_POLICY_IMAGE,
                            "imagePullPolicy": "Never",
                            "args": [
                                format!("--hostname-override={NODE_NAME}"),
                                format!("--metrics-bind-address=127.0.0.1:{metrics_port}"),
                                format!("--nfqueue-id={POLICY_QUEUE}"),
                                "--v=2".to_owned(),
                            ],
                            // An nfqueue (and its nftables attempt) in the host's network namespace.
                            "securityContext": {"privileged": true,
                                                "capabilities": {"add": ["NET_ADMIN"]}},
                            "resources": {"requests": {"cpu": "50m", "memory": "50Mi"}},
                        }],
                    },
                },
            },
        }),
    ]
}

/// Applies [`manifests`] and waits until its pod runs and reads the queue, so that what starts
/// afterwards is guarded from its first connection.
pub async fn install(control_plane: &ControlPlane) -> Result<(), Error> {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": manifests(free_port()?)});
    crate::stack::apply_json(control_plane, NAME, &list)?;
    let pods: Api<Pod> = Api::namespaced(control_plane.client(), NAMESPACE);
    let selector = ListParams::default().labels(&format!("app.kubernetes.io/name={NAME}"));
    let waited = wait_for(
        "kube-network-policies running and reading its queue",
        INSTALL_TIMEOUT,
        async || {
            let running = pods.list(&selector).await?.items.iter().any(is_ready);
            let queues =
                fs::read_to_string(QUEUES).map_err(Error::io(format!("reading {QUEUES}")))?;
            Ok::<_, Error>((running && queue_is_read(&queues, POLICY_QUEUE)).then_some(()))
        },
    )
    .await;
    crate::stack::with_pods(control_plane, NAMESPACE, waited).await
}

/// The kernel's table of the nfqueues a program has bound.
const QUEUES: &str = "/proc/net/netfilter/nfnetlink_queue";

/// Whether a [`QUEUES`] listing has `queue` bound: its lines start with the queue's number.
fn queue_is_read(listing: &str, queue: u16) -> bool {
    listing
        .lines()
        .any(|line| line.split_whitespace().next() == Some(&queue.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemon_set_runs_the_image_privileged_on_the_real_node() {
        let objects = manifests(9999);
        let daemon_set = &objects[3];
        let pod = &daemon_set["spec"]["template"]["spec"];
        assert_eq!(pod["hostNetwork"], true);
        assert_eq!(pod["nodeSelector"]["kubernetes.io/hostname"], NODE_NAME);
        let container = &pod["containers"][0];
        assert_eq!(container["image"], NETWORK_POLICY_IMAGE);
        assert_eq!(container["securityContext"]["privileged"], true);
        assert!(container["args"].as_array().is_some_and(|args| {
            args.iter()
                .any(|arg| arg == "--metrics-bind-address=127.0.0.1:9999")
        }));
    }

    #[test]
    fn a_queue_is_read_once_its_number_is_listed() {
        let listing = "   98  3861843014     0 2   128     0     0        0  1\n";
        assert!(queue_is_read(listing, 98));
        assert!(!queue_is_read(listing, 9));
        assert!(!queue_is_read("", 98));
    }
}
