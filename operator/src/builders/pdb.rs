//! PodDisruptionBudgets for components with more than one replica: a drain keeps at least one
//! pod serving. With one replica a budget would only block node drains, so there is none.

use k8s_openapi::{
    api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};

use super::{Component, metadata, object_name, selector_labels};
use crate::crd::FlashcardStack;

pub fn budget(stack: &FlashcardStack, component: Component) -> Option<PodDisruptionBudget> {
    (component.replicas(stack) > 1).then(|| PodDisruptionBudget {
        metadata: metadata(stack, component, object_name(stack, component)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(stack, component)),
                match_expressions: None,
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{builders::tests::stack, crd::FlashcardStackSpec};

    #[test]
    fn only_replicated_components_get_a_budget() {
        let mut spec = FlashcardStackSpec::default();
        assert!(budget(&stack(spec.clone()), Component::Web).is_none());
        spec.web.component.replicas = Some(2);
        let pdb = budget(&stack(spec.clone()), Component::Web).expect("a budget");
        assert_eq!(
            pdb.spec.and_then(|s| s.max_unavailable),
            Some(IntOrString::Int(1))
        );
        spec.stopped = true;
        assert!(
            budget(&stack(spec), Component::Web).is_none(),
            "stopped: no pods to protect"
        );
    }
}
