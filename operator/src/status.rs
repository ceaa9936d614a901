//! The stack's status from what the cluster reports, as a pure function, and whether it changed
//! enough to be written (timestamps alone never cause a write).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;

use crate::{
    builders::{Component, deployment::service_url},
    crd::{ComponentStatus, Condition, FlashcardStack, FlashcardStackStatus},
};

/// What the cluster says about the Deployment of one component the stack runs (Redis and MLflow
/// only while enabled, so that they count towards Ready and the summary then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub component: Component,
    pub ready: i32,
    pub desired: i32,
    /// The Deployment controller has acted on the latest spec and no pod of an older template is
    /// left: ready pods alone can be old ones in the middle of a rollout.
    pub rolled_out: bool,
}

impl Observed {
    /// `component`'s Deployment as it is live (`None`: missing), `desired` replicas wanted.
    pub fn of(component: Component, desired: i32, live: Option<&Deployment>) -> Self {
        let status = live.and_then(|deployment| deployment.status.as_ref());
        let seen = live.and_then(|deployment| deployment.metadata.generation)
            <= status.and_then(|status| status.observed_generation);
        let updated = status.and_then(|s| s.updated_replicas).unwrap_or(0);
        let total = status.and_then(|s| s.replicas).unwrap_or(0);
        Self {
            component,
            ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
            desired,
            rolled_out: live.is_some() && seen && updated >= desired && total == desired,
        }
    }

    /// Serving as asked: enough ready pods, all of the current template.
    fn settled(&self) -> bool {
        self.ready >= self.desired && self.rolled_out
    }
}

/// The status for `stack` given its components as observed, whether the monitoring CRDs exist, and
/// the time now (RFC 3339). Conditions keep their transition time while their status holds.
pub fn compute(
    stack: &FlashcardStack,
    observed: &[Observed],
    monitoring_crds: bool,
    now: &str,
) -> FlashcardStackStatus {
    let generation = stack.metadata.generation;
    let previous = stack.status.clone().unwrap_or_default();
    let components: BTreeMap<String, ComponentStatus> = observed
        .iter()
        .map(|o| {
            (
                o.component.name().to_owned(),
                ComponentStatus {
                    ready: o.ready,
                    desired: o.desired,
                },
            )
        })
        .collect();
    let serving = observed.iter().filter(|o| o.settled()).count();
    let all_ready = serving == observed.len() && !observed.is_empty();
    let stopped = stack.spec.stopped;
    let condition = |kind: &str, status: bool, reason: &str, message: String| {
        let status = if status { "True" } else { "False" };
        let since = previous
            .conditions
            .iter()
            .find(|c| c.r#type == kind && c.status == status)
            .map_or_else(|| now.to_owned(), |c| c.last_transition_time.clone());
        Condition {
            r#type: kind.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message,
            observed_generation: generation,
            last_transition_time: since,
        }
    };
    let not_ready: Vec<&str> = observed
        .iter()
        .filter(|o| !o.settled())
        .map(|o| o.component.name())
        .collect();
    let conditions = vec![
        condition(
            "Ready",
            all_ready,
            if stopped {
                "Stopped"
            } else if all_ready {
                "AllComponentsReady"
            } else {
                "ComponentsNotReady"
            },
            if all_ready {
                format!("{serving} of {} components ready", observed.len())
            } else {
                format!("waiting for {}", not_ready.join(", "))
            },
        ),
        condition(
            "Progressing",
            !all_ready,
            if all_ready { "Stable" } else { "RollingOut" },
            if all_ready {
                "nothing to roll out".to_owned()
            } else {
                format!("rolling out {}", not_ready.join(", "))
            },
        ),
        condition(
            "Degraded",
            observed.iter().any(|o| o.desired > 0 && o.ready == 0) && !stopped,
            "NoReadyPods",
            observed
                .iter()
                .filter(|o| o.desired > 0 && o.ready == 0)
                .map(|o| format!("{} has no ready pod", o.component.name()))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        condition(
            "MonitoringAvailable",
            monitoring_crds,
            if monitoring_crds {
                "CRDsPresent"
            } else {
                "CRDsMissing"
            },
            if monitoring_crds {
                "ServiceMonitors and the PrometheusRule are managed".to_owned()
            } else {
                "monitoring.coreos.com CRDs are not installed: ServiceMonitors and the PrometheusRule are skipped".to_owned()
            },
        ),
    ];
    FlashcardStackStatus {
        observed_generation: generation,
        conditions,
        urls: observed
            .iter()
            .map(|o| {
                (
                    o.component.name().to_owned(),
                    service_url(stack, o.component),
                )
            })
            .collect(),
        summary: format!("{serving}/{}", observed.len()),
        components,
    }
}

/// Whether `new` says something `old` did not; a write is only worth it then.
pub fn changed(old: Option<&FlashcardStackStatus>, new: &FlashcardStackStatus) -> bool {
    old != Some(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{builders::tests::stack, crd::FlashcardStackSpec};

    /// The flashcards services with these ready replicas, one desired each.
    fn observed(ready: [i32; 4]) -> Vec<Observed> {
        Component::ALL
            .iter()
            .take(4)
            .zip(ready)
            .map(|(component, ready)| Observed {
                component: *component,
                ready,
                desired: 1,
                rolled_out: true,
            })
            .collect()
    }

    fn condition<'a>(status: &'a FlashcardStackStatus, kind: &str) -> &'a Condition {
        status
            .conditions
            .iter()
            .find(|c| c.r#type == kind)
            .expect("condition")
    }

    fn deployment(
        generation: i64,
        seen: i64,
        replicas: i32,
        updated: i32,
        ready: i32,
    ) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "study-ocr", "generation": generation},
            "spec": {"selector": {}, "template": {}},
            "status": {
                "observedGeneration": seen,
                "replicas": replicas,
                "updatedReplicas": updated,
                "readyReplicas": ready,
            },
        }))
        .expect("a Deployment")
    }

    #[test]
    fn a_component_is_settled_once_its_rollout_is_done() {
        let done = Observed::of(Component::Ocr, 2, Some(&deployment(4, 4, 2, 2, 2)));
        assert!(done.settled());
        // Two ready pods, but one of them still of the old template.
        let rolling = Observed::of(Component::Ocr, 2, Some(&deployment(4, 4, 3, 1, 2)));
        assert_eq!(rolling.ready, 2);
        assert!(!rolling.settled());
        // The Deployment controller has not seen the new spec yet.
        assert!(!Observed::of(Component::Ocr, 2, Some(&deployment(5, 4, 2, 2, 2))).settled());
        assert!(!Observed::of(Component::Ocr, 1, None).settled());
        // Stopped: nothing left running is the goal.
        assert!(Observed::of(Component::Ocr, 0, Some(&deployment(6, 6, 0, 0, 0))).settled());

        let stack = stack(FlashcardStackSpec::default());
        let mut components = observed([1, 1, 1, 1]);
        components[1].rolled_out = false;
        let status = compute(&stack, &components, true, "t1");
        assert_eq!(condition(&status, "Ready").status, "False");
        assert_eq!(condition(&status, "Progressing").message, "rolling out ocr");
        assert_eq!(status.summary, "3/4");
    }

    #[test]
    fn ready_when_every_component_is() {
        let mut stack = stack(FlashcardStackSpec::default());
        stack.metadata.generation = Some(3);
        let status = compute(&stack, &observed([1, 1, 1, 1]), true, "t1");
        assert_eq!(status.summary, "4/4");
        assert_eq!(condition(&status, "Ready").status, "True");
        assert_eq!(condition(&status, "Progressing").status, "False");
        assert_eq!(condition(&status, "Degraded").status, "False");
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(condition(&status, "Ready").observed_generation, Some(3));
        assert_eq!(status.urls["backend"], "http://study-backend:8002");

        let waiting = compute(&stack, &observed([1, 0, 1, 1]), false, "t1");
        assert_eq!(waiting.summary, "3/4");
        assert_eq!(condition(&waiting, "Ready").message, "waiting for ocr");
        assert_eq!(condition(&waiting, "Degraded").status, "True");
        assert_eq!(
            condition(&waiting, "MonitoringAvailable").reason,
            "CRDsMissing"
        );
    }

    #[test]
    fn redis_and_mlflow_count_while_enabled() {
        let mut spec = FlashcardStackSpec::default();
        spec.redis.enabled = true;
        spec.mlflow.enabled = true;
        let both = stack(spec);
        let mut all = observed([1, 1, 1, 1]);
        all.extend(
            [Component::Redis, Component::Mlflow].map(|component| Observed {
                component,
                ready: 1,
                desired: 1,
                rolled_out: true,
            }),
        );
        let ready = compute(&both, &all, true, "t1");
        assert_eq!(ready.summary, "6/6");
        assert_eq!(condition(&ready, "Ready").status, "True");
        assert_eq!(
            ready.components["mlflow"],
            ComponentStatus {
                ready: 1,
                desired: 1
            }
        );
        assert_eq!(ready.urls["redis"], "redis://study-redis:6379");
        assert_eq!(ready.urls["mlflow"], "http://study-mlflow:5000");

        all[5].ready = 0;
        let waiting = compute(&both, &all, true, "t1");
        assert_eq!(waiting.summary, "5/6");
        assert_eq!(condition(&waiting, "Ready").status, "False");
        assert_eq!(condition(&waiting, "Ready").message, "waiting for mlflow");

        let neither = stack(FlashcardStackSpec::default());
        let without = compute(&neither, &observed([1, 1, 1, 1]), true, "t1");
        assert_eq!(without.summary, "4/4");
        assert!(!without.components.contains_key("redis"));
    }

    #[test]
    fn an_unchanged_status_keeps_its_times_and_needs_no_write() {
        let mut stack = stack(FlashcardStackSpec::default());
        let first = compute(&stack, &observed([1, 1, 1, 1]), true, "t1");
        stack.status = Some(first.clone());
        let again = compute(&stack, &observed([1, 1, 1, 1]), true, "t2");
        assert_eq!(condition(&again, "Ready").last_transition_time, "t1");
        assert!(!changed(stack.status.as_ref(), &again));
        let worse = compute(&stack, &observed([0, 1, 1, 1]), true, "t3");
        assert_eq!(condition(&worse, "Ready").last_transition_time, "t3");
        assert!(changed(stack.status.as_ref(), &worse));
    }
}
