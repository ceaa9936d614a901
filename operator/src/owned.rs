//! Every kind of object a FlashcardStack owns, listed once. The controller applies, prunes and
//! watches exactly these kinds, [`crate::desired::Desired::of_kind`] says which objects of each
//! a stack wants, and a test checks that the chart's RBAC lets the operator manage each of them:
//! adding a kind is one line here, and the compiler then asks for its API, the API it needs, and
//! its desired objects.

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, PersistentVolumeClaim, Service, ServiceAccount},
    networking::v1::NetworkPolicy,
    policy::v1::PodDisruptionBudget,
};
use kube::api::ApiResource;

use crate::builders::monitoring;

/// Declares the kinds with [`OwnedKind::ALL`] in the same order, so the list cannot miss one.
macro_rules! owned_kinds {
    ($($kind:ident),+ $(,)?) => {
        /// A kind of object a stack owns.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum OwnedKind {
            $($kind),+
        }

        impl OwnedKind {
            /// In the order they are applied: what pods use before the pods, the pods before
            /// what watches them. Pruning goes the other way, so pods stop before what they use
            /// goes.
            pub const ALL: &'static [OwnedKind] = &[$(OwnedKind::$kind),+];
        }
    };
}

owned_kinds!(
    ServiceAccount,
    PersistentVolumeClaim,
    Deployment,
    Service,
    PodDisruptionBudget,
    NetworkPolicy,
    ConfigMap,
    ServiceMonitor,
    PrometheusRule,
    AlertmanagerConfig,
    GrafanaDashboard,
);

/// An API the cluster may or may not serve; kinds of an API it does not serve are left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionalApi {
    /// The Prometheus Operator's CRDs (`monitoring.coreos.com/v1`).
    PrometheusOperator,
    /// Its AlertmanagerConfig (`monitoring.coreos.com/v1alpha1`), a CRD of its own that not every
    /// installation has.
    AlertmanagerConfig,
    /// The grafana-operator's (`grafana.integreatly.org`).
    GrafanaOperator,
}

/// Which optional APIs the cluster serves, as discovery found them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Served {
    pub prometheus_operator: bool,
    pub alertmanager_config: bool,
    pub grafana_operator: bool,
}

impl Served {
    pub fn serves(self, kind: OwnedKind) -> bool {
        match kind.needs() {
            None => true,
            Some(OptionalApi::PrometheusOperator) => self.prometheus_operator,
            Some(OptionalApi::AlertmanagerConfig) => self.alertmanager_config,
            Some(OptionalApi::GrafanaOperator) => self.grafana_operator,
        }
    }
}

impl OwnedKind {
    /// Where the kind lives in the API: group, version, kind and plural.
    pub fn resource(self) -> ApiResource {
        match self {
            Self::ServiceAccount => ApiResource::erase::<ServiceAccount>(&()),
            Self::PersistentVolumeClaim => ApiResource::erase::<PersistentVolumeClaim>(&()),
            Self::Deployment => ApiResource::erase::<Deployment>(&()),
            Self::Service => ApiResource::erase::<Service>(&()),
            Self::PodDisruptionBudget => ApiResource::erase::<PodDisruptionBudget>(&()),
            Self::NetworkPolicy => ApiResource::erase::<NetworkPolicy>(&()),
            Self::ConfigMap => ApiResource::erase::<ConfigMap>(&()),
            Self::ServiceMonitor => monitoring::service_monitor_resource(),
            Self::PrometheusRule => monitoring::prometheus_rule_resource(),
            Self::AlertmanagerConfig => monitoring::alertmanager_config_resource(),
            Self::GrafanaDashboard => monitoring::grafana_dashboard_resource(),
        }
    }

    /// The optional API the kind belongs to, if it is not always served.
    pub fn needs(self) -> Option<OptionalApi> {
        match self {
            Self::ServiceAccount
            | Self::PersistentVolumeClaim
            | Self::Deployment
            | Self::Service
            | Self::PodDisruptionBudget
            | Self::NetworkPolicy
            | Self::ConfigMap => None,
            Self::ServiceMonitor | Self::PrometheusRule => Some(OptionalApi::PrometheusOperator),
            Self::AlertmanagerConfig => Some(OptionalApi::AlertmanagerConfig),
            Self::GrafanaDashboard => Some(OptionalApi::GrafanaOperator),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed_once_with_its_own_api() {
        let mut kinds: Vec<String> = OwnedKind::ALL
            .iter()
            .map(|kind| kind.resource().kind)
            .collect();
        assert_eq!(kinds.len(), 11);
        kinds.dedup();
        assert_eq!(kinds.len(), OwnedKind::ALL.len());
        for kind in OwnedKind::ALL {
            assert_eq!(format!("{kind:?}"), kind.resource().kind);
        }
    }

    #[test]
    fn kinds_of_an_api_the_cluster_lacks_are_not_served() {
        let bare = Served::default();
        assert!(bare.serves(OwnedKind::Deployment));
        assert!(!bare.serves(OwnedKind::ServiceMonitor));
        assert!(!bare.serves(OwnedKind::GrafanaDashboard));
        let prometheus = Served {
            prometheus_operator: true,
            ..Served::default()
        };
        assert!(prometheus.serves(OwnedKind::PrometheusRule));
        assert!(!prometheus.serves(OwnedKind::AlertmanagerConfig));
        assert!(!prometheus.serves(OwnedKind::GrafanaDashboard));
    }
}
