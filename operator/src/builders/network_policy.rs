//! NetworkPolicies: each component accepts traffic only from what needs it. The web front end is
//! the entry point; the backend takes the web front end; OCR and LLM take the backend; Redis takes
//! the backend; MLflow takes OCR and LLM, which log to it. Prometheus (pods labelled
//! `app.kubernetes.io/name: prometheus` in any namespace) reaches every port it scrapes: the
//! services' `http` and redis_exporter's `metrics`. MLflow exports no metrics, so it gets none.
//! Alertmanager (`app.kubernetes.io/name: alertmanager`, any namespace) reaches the backend, whose
//! `POST /alerts` takes its webhook.

use k8s_openapi::{
    api::networking::v1::{
        NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
        NetworkPolicySpec,
    },
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};

use super::{Component, metadata, object_name, selector_labels};
use crate::crd::FlashcardStack;

pub fn network_policy(stack: &FlashcardStack, component: Component) -> NetworkPolicy {
    let pods = |component| NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(selector_labels(stack, component)),
            match_expressions: None,
        }),
        ..NetworkPolicyPeer::default()
    };
    let ingress = match component {
        Component::Web => vec![rule(None, "http")],
        Component::Backend => vec![rule(
            Some(vec![
                pods(Component::Web),
                monitoring("prometheus"),
                monitoring("alertmanager"),
            ]),
            "http",
        )],
        Component::Ocr | Component::Llm => vec![rule(
            Some(vec![pods(Component::Backend), monitoring("prometheus")]),
            "http",
        )],
        Component::Redis => {
            let mut rules = vec![rule(Some(vec![pods(Component::Backend)]), "redis")];
            if let Some(metrics) = component.metrics_port(stack) {
                rules.push(rule(Some(vec![monitoring("prometheus")]), metrics));
            }
            rules
        }
        Component::Mlflow => vec![rule(
            Some(vec![pods(Component::Ocr), pods(Component::Llm)]),
            "http",
        )],
    };
    NetworkPolicy {
        metadata: metadata(stack, component, object_name(stack, component)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(stack, component)),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(ingress),
            egress: None,
        }),
    }
}

/// Pods named `name` (`app.kubernetes.io/name`, as kube-prometheus-stack labels them) in any
/// namespace.
fn monitoring(name: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector::default()),
        pod_selector: Some(LabelSelector {
            match_labels: Some([("app.kubernetes.io/name".to_owned(), name.to_owned())].into()),
            match_expressions: None,
        }),
        ip_block: None,
    }
}

/// `from` may reach the named port; `None` means anyone.
fn rule(from: Option<Vec<NetworkPolicyPeer>>, port: &str) -> NetworkPolicyIngressRule {
    NetworkPolicyIngressRule {
        from,
        ports: Some(vec![NetworkPolicyPort {
            port: Some(IntOrString::String(port.to_owned())),
            protocol: Some("TCP".to_owned()),
            end_port: None,
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{builders::tests::stack, crd::FlashcardStackSpec};

    fn rules(spec: FlashcardStackSpec, component: Component) -> Vec<NetworkPolicyIngressRule> {
        network_policy(&stack(spec), component)
            .spec
            .and_then(|spec| spec.ingress)
            .expect("ingress")
    }

    fn peers(component: Component) -> Option<Vec<NetworkPolicyPeer>> {
        rules(FlashcardStackSpec::default(), component)[0]
            .from
            .clone()
    }

    /// The `label` label of each peer's pod selector.
    fn selected(peers: &[NetworkPolicyPeer], label: &str) -> Vec<String> {
        peers
            .iter()
            .filter_map(|peer| {
                peer.pod_selector
                    .as_ref()?
                    .match_labels
                    .as_ref()?
                    .get(label)
            })
            .cloned()
            .collect()
    }

    fn port(rule: &NetworkPolicyIngressRule) -> Option<IntOrString> {
        rule.ports.as_ref()?[0].port.clone()
    }

    #[test]
    fn only_callers_and_prometheus_reach_a_component() {
        assert!(peers(Component::Web).is_none(), "the entry point is open");
        let ocr = peers(Component::Ocr).expect("restricted");
        assert_eq!(
            selected(&ocr[..1], "app.kubernetes.io/component"),
            ["backend"]
        );
        assert_eq!(
            selected(&ocr[1..], "app.kubernetes.io/name"),
            ["prometheus"]
        );
        let backend = peers(Component::Backend).expect("restricted");
        assert_eq!(
            selected(&backend[..1], "app.kubernetes.io/component"),
            ["web"]
        );
        assert_eq!(
            selected(&backend[1..], "app.kubernetes.io/name"),
            ["prometheus", "alertmanager"],
            "Alertmanager posts to the backend's webhook"
        );
    }

    #[test]
    fn redis_takes_the_backend_and_prometheus_only_its_exporter() {
        let mut spec = FlashcardStackSpec::default();
        spec.redis.enabled = true;
        let redis = rules(spec.clone(), Component::Redis);
        assert_eq!(redis.len(), 2);
        let backend = redis[0].from.clone().expect("restricted");
        assert_eq!(
            selected(&backend, "app.kubernetes.io/component"),
            ["backend"]
        );
        assert_eq!(port(&redis[0]), Some(IntOrString::String("redis".into())));
        let scraper = redis[1].from.clone().expect("restricted");
        assert_eq!(selected(&scraper, "app.kubernetes.io/name"), ["prometheus"]);
        assert_eq!(port(&redis[1]), Some(IntOrString::String("metrics".into())));
        spec.redis.exporter = Some(false);
        assert_eq!(rules(spec, Component::Redis).len(), 1, "nothing to scrape");
    }

    #[test]
    fn mlflow_takes_the_services_that_log_to_it() {
        let mut spec = FlashcardStackSpec::default();
        spec.mlflow.enabled = true;
        let mlflow = rules(spec, Component::Mlflow);
        assert_eq!(mlflow.len(), 1);
        let callers = mlflow[0].from.clone().expect("restricted");
        assert_eq!(
            selected(&callers, "app.kubernetes.io/component"),
            ["ocr", "llm"]
        );
        assert!(
            selected(&callers, "app.kubernetes.io/name")
                .iter()
                .all(|name| name != "prometheus")
        );
        assert_eq!(port(&mlflow[0]), Some(IntOrString::String("http".into())));
    }
}
