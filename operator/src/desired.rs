//! Everything a stack should own, from the pure builders: what the reconciler applies, and what
//! it prunes (owned objects no longer in this set, but for the claims it keeps). Redis's and
//! MLflow's objects are in the set only while the stack enables them.

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, PersistentVolumeClaim, Service, ServiceAccount},
    networking::v1::NetworkPolicy,
    policy::v1::PodDisruptionBudget,
};
use kube::api::DynamicObject;
use serde::Serialize;

use crate::{
    builders::{
        Component, deployment::deployment, monitoring, network_policy::network_policy, pdb::budget,
        pvc, service::service, service_account::service_account,
    },
    crd::FlashcardStack,
    owned::{OwnedKind, Served},
};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Desired {
    pub service_accounts: Vec<ServiceAccount>,
    pub claims: Vec<PersistentVolumeClaim>,
    /// Names of claims never pruned, desired or not (see [`pvc::kept`]).
    pub kept_claims: Vec<String>,
    pub deployments: Vec<Deployment>,
    pub services: Vec<Service>,
    pub budgets: Vec<PodDisruptionBudget>,
    pub network_policies: Vec<NetworkPolicy>,
    pub dashboards: Vec<ConfigMap>,
    /// ServiceMonitors, the PrometheusRule and the AlertmanagerConfig: only when their CRDs are
    /// installed.
    pub monitoring: Vec<DynamicObject>,
    /// GrafanaDashboards: only when the grafana-operator's API is served.
    pub grafana_dashboards: Vec<DynamicObject>,
}

impl Desired {
    /// The desired objects of `kind`, as the API takes them.
    pub fn of_kind(&self, kind: OwnedKind) -> Result<Vec<DynamicObject>, serde_json::Error> {
        let of_monitoring_kind = |objects: &[DynamicObject]| {
            let name = kind.resource().kind;
            objects
                .iter()
                .filter(|object| object.types.as_ref().is_some_and(|t| t.kind == name))
                .cloned()
                .collect()
        };
        match kind {
            OwnedKind::ServiceAccount => erased(&self.service_accounts),
            OwnedKind::PersistentVolumeClaim => erased(&self.claims),
            OwnedKind::Deployment => erased(&self.deployments),
            OwnedKind::Service => erased(&self.services),
            OwnedKind::PodDisruptionBudget => erased(&self.budgets),
            OwnedKind::NetworkPolicy => erased(&self.network_policies),
            OwnedKind::ConfigMap => erased(&self.dashboards),
            OwnedKind::ServiceMonitor
            | OwnedKind::PrometheusRule
            | OwnedKind::AlertmanagerConfig => Ok(of_monitoring_kind(&self.monitoring)),
            OwnedKind::GrafanaDashboard => Ok(of_monitoring_kind(&self.grafana_dashboards)),
        }
    }

    /// Names of `kind` that are never pruned, desired or not.
    pub fn kept(&self, kind: OwnedKind) -> &[String] {
        match kind {
            OwnedKind::PersistentVolumeClaim => &self.kept_claims,
            _ => &[],
        }
    }
}

/// Typed objects as dynamic ones (their JSON carries `apiVersion` and `kind`).
fn erased<K: Serialize>(objects: &[K]) -> Result<Vec<DynamicObject>, serde_json::Error> {
    objects
        .iter()
        .map(|object| serde_json::from_value(serde_json::to_value(object)?))
        .collect()
}

/// The objects `stack` should own, of the kinds the cluster serves (the Prometheus and grafana
/// operators' APIs may be missing; the rest is desired all the same).
pub fn desired(stack: &FlashcardStack, served: Served) -> Desired {
    let spec = &stack.spec.monitoring;
    let mut desired = Desired {
        claims: pvc::claims(stack),
        kept_claims: pvc::kept(stack),
        ..Desired::default()
    };
    for component in Component::enabled_in(stack) {
        desired
            .service_accounts
            .push(service_account(stack, component));
        desired.deployments.push(deployment(stack, component));
        desired.services.push(service(stack, component));
        desired.budgets.extend(budget(stack, component));
        desired
            .network_policies
            .push(network_policy(stack, component));
        if served.prometheus_operator && spec.service_monitors.enabled {
            desired
                .monitoring
                .extend(monitoring::service_monitor(stack, component));
        }
    }
    if served.prometheus_operator && spec.prometheus_rule.enabled {
        desired.monitoring.push(monitoring::prometheus_rule(stack));
        // Alerts that reach no one would be half the guide's promise.
        if served.alertmanager_config {
            desired
                .monitoring
                .push(monitoring::alertmanager_config(stack));
        }
    }
    if spec.dashboards.enabled {
        desired.dashboards = monitoring::dashboards(stack);
        if served.grafana_operator {
            desired.grafana_dashboards = monitoring::grafana_dashboards(stack);
        }
    }
    desired
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{builders::tests::stack, crd::FlashcardStackSpec};

    /// The Prometheus Operator's APIs (all of them) and the grafana-operator's, served or not.
    fn served(prometheus_operator: bool, grafana_operator: bool) -> Served {
        Served {
            prometheus_operator,
            alertmanager_config: prometheus_operator,
            grafana_operator,
        }
    }

    #[test]
    fn every_owned_kind_has_desired_objects_in_a_full_stack() {
        let mut spec = FlashcardStackSpec::default();
        spec.redis.enabled = true;
        spec.mlflow.enabled = true;
        // Disruption budgets come with more than one replica.
        spec.web.component.replicas = Some(2);
        let all = desired(&stack(spec), served(true, true));
        for &kind in OwnedKind::ALL {
            let objects = all.of_kind(kind).expect("serialisable");
            assert!(!objects.is_empty(), "{kind:?}");
            for object in objects {
                assert_eq!(
                    object.types.map(|types| types.kind),
                    Some(kind.resource().kind),
                    "{kind:?}"
                );
            }
        }
        assert_eq!(
            all.kept(OwnedKind::PersistentVolumeClaim),
            all.kept_claims.as_slice()
        );
        assert!(all.kept(OwnedKind::Deployment).is_empty());
    }

    #[test]
    fn a_default_stack_owns_every_component_and_its_monitoring() {
        let all = desired(&stack(FlashcardStackSpec::default()), served(true, false));
        assert_eq!(all.deployments.len(), 4);
        assert_eq!(all.services.len(), 4);
        assert_eq!(all.service_accounts.len(), 4);
        assert_eq!(all.network_policies.len(), 4);
        assert_eq!(
            all.claims.len(),
            1,
            "the SQLite volume (the model comes from its image)"
        );
        assert!(all.budgets.is_empty(), "one replica each");
        assert_eq!(
            all.monitoring.len(),
            6,
            "four ServiceMonitors, the rule and Alertmanager's route"
        );
        assert_eq!(all.dashboards.len(), 5);
    }

    #[test]
    fn monitoring_follows_the_crds_and_the_toggles() {
        let without_crds = desired(&stack(FlashcardStackSpec::default()), served(false, false));
        assert!(without_crds.monitoring.is_empty());
        assert_eq!(
            without_crds.deployments.len(),
            4,
            "the rest is still desired"
        );
        let mut spec = FlashcardStackSpec::default();
        spec.monitoring.service_monitors.enabled = false;
        spec.monitoring.dashboards.enabled = false;
        let partial = desired(&stack(spec), served(true, false));
        assert_eq!(partial.monitoring.len(), 2, "the rule and its route alone");
        let without_route = desired(
            &stack(FlashcardStackSpec::default()),
            Served {
                prometheus_operator: true,
                ..Served::default()
            },
        );
        assert!(
            without_route
                .of_kind(OwnedKind::AlertmanagerConfig)
                .is_ok_and(|objects| objects.is_empty()),
            "no AlertmanagerConfig where its CRD is missing"
        );
        assert!(partial.dashboards.is_empty());
    }

    #[test]
    fn grafana_dashboards_follow_the_grafana_api_and_the_toggle() {
        let with_api = desired(&stack(FlashcardStackSpec::default()), served(false, true));
        assert_eq!(
            names(&with_api.grafana_dashboards),
            [
                "study-dashboard-application-overview",
                "study-dashboard-ocr-service",
                "study-dashboard-llm-service",
                "study-dashboard-system-resources",
                "study-dashboard-mlflow-integration"
            ],
            "independent of the Prometheus Operator's CRDs"
        );
        assert!(with_api.monitoring.is_empty());
        let without_api = desired(&stack(FlashcardStackSpec::default()), served(true, false));
        assert!(without_api.grafana_dashboards.is_empty());
        assert_eq!(
            without_api.dashboards.len(),
            5,
            "the sidecar's ConfigMaps still"
        );
        let mut spec = FlashcardStackSpec::default();
        spec.monitoring.dashboards.enabled = false;
        let off = desired(&stack(spec), served(true, true));
        assert!(off.grafana_dashboards.is_empty() && off.dashboards.is_empty());
    }

    fn names<K: kube::Resource>(objects: &[K]) -> Vec<String> {
        objects
            .iter()
            .filter_map(|object| object.meta().name.clone())
            .collect()
    }

    #[test]
    fn redis_and_mlflow_are_owned_only_while_enabled() {
        let mut spec = FlashcardStackSpec::default();
        spec.redis.enabled = true;
        spec.mlflow.enabled = true;
        let on = desired(&stack(spec.clone()), served(true, false));
        for kind in [
            names(&on.deployments),
            names(&on.services),
            names(&on.service_accounts),
            names(&on.network_policies),
        ] {
            assert_eq!(
                kind,
                [
                    "study-backend",
                    "study-ocr",
                    "study-llm",
                    "study-web",
                    "study-redis",
                    "study-mlflow"
                ]
            );
        }
        assert_eq!(
            names(&on.claims),
            ["study-backend-data", "study-mlflow-data"]
        );
        assert_eq!(
            names(&on.monitoring),
            [
                "study-backend",
                "study-ocr",
                "study-llm",
                "study-web",
                "study-redis",
                "study-alerts",
                "study-alerts"
            ],
            "redis_exporter is scraped, MLflow has no metrics"
        );
        assert!(on.budgets.is_empty(), "Redis and MLflow run one pod each");

        let off = desired(&stack(FlashcardStackSpec::default()), served(true, false));
        assert_eq!(off.deployments.len(), 4);
        assert_eq!(off.services.len(), 4);
        assert_eq!(off.service_accounts.len(), 4);
        assert_eq!(off.network_policies.len(), 4);
        assert_eq!(names(&off.claims), ["study-backend-data"]);
        assert_eq!(
            off.kept_claims,
            ["study-backend-data", "study-mlflow-data"],
            "disabling MLflow keeps its runs"
        );

        spec.redis.exporter = Some(false);
        let quiet = desired(&stack(spec), served(true, false));
        assert_eq!(quiet.deployments.len(), 6);
        assert_eq!(
            quiet.monitoring.len(),
            6,
            "the services' monitors, the rule and its route"
        );
    }

    #[test]
    fn the_full_example_runs_six_components() {
        let full: FlashcardStack =
            serde_yaml::from_str(include_str!("../../manifests/examples/full.yaml"))
                .expect("the example parses");
        let all = desired(&full, served(true, false));
        assert_eq!(all.deployments.len(), 6, "the printer column reads 6/6");
        assert_eq!(
            names(&all.claims),
            ["study-mlflow-data"],
            "PostgreSQL and an upstream model need no other volume"
        );
    }
}
