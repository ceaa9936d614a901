//! NetworkPolicies: each component accepts traffic only from what needs it. The web front end is
//! the entry point; the backend takes the web front end; OCR and LLM take the backend; every
//! component's port is open to Prometheus (pods labelled `app.kubernetes.io/name: prometheus` in
//! any namespace) for `/metrics`.

use k8s_openapi::{
    api::networking::v1::{
        NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
        NetworkPolicySpec,
    },
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};

use super::{Component, metadata, object_name, selector_labels};
use crate::crd::FlashcardStack;

/// Who may call `component`, besides Prometheus; `None` means anyone.
fn callers(component: Component) -> Option<Component> {
    match component {
        Component::Web => None,
        Component::Backend => Some(Component::Web),
        Component::Ocr | Component::Llm => Some(Component::Backend),
    }
}

pub fn network_policy(stack: &FlashcardStack, component: Component) -> NetworkPolicy {
    let prometheus = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector::default()),
        pod_selector: Some(LabelSelector {
            match_labels: Some(
                [("app.kubernetes.io/name".to_owned(), "prometheus".to_owned())].into(),
            ),
            match_expressions: None,
        }),
        ip_block: None,
    };
    let from = callers(component).map(|caller| {
        vec![
            NetworkPolicyPeer {
                pod_selector: Some(LabelSelector {
                    match_labels: Some(selector_labels(stack, caller)),
                    match_expressions: None,
                }),
                ..NetworkPolicyPeer::default()
            },
            prometheus,
        ]
    });
    NetworkPolicy {
        metadata: metadata(stack, component, object_name(stack, component)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(stack, component)),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from,
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::String("http".to_owned())),
                    protocol: Some("TCP".to_owned()),
                    end_port: None,
                }]),
            }]),
            egress: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{builders::tests::stack, crd::FlashcardStackSpec};

    fn peers(component: Component) -> Option<Vec<NetworkPolicyPeer>> {
        let policy = network_policy(&stack(FlashcardStackSpec::default()), component);
        policy.spec.expect("spec").ingress.expect("ingress")[0]
            .from
            .clone()
    }

    #[test]
    fn only_callers_and_prometheus_reach_a_component() {
        assert!(peers(Component::Web).is_none(), "the entry point is open");
        let ocr = peers(Component::Ocr).expect("restricted");
        let caller = ocr[0]
            .pod_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone())
            .expect("labels");
        assert_eq!(caller["app.kubernetes.io/component"], "backend");
        let scraper = ocr[1]
            .pod_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone())
            .expect("labels");
        assert_eq!(scraper["app.kubernetes.io/name"], "prometheus");
        let backend = peers(Component::Backend).expect("restricted");
        let caller = backend[0]
            .pod_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone())
            .expect("labels");
        assert_eq!(caller["app.kubernetes.io/component"], "web");
    }
}
