//! What kube-prometheus-stack picks up: a ServiceMonitor per component with metrics (every one but
//! MLflow; Redis's while redis_exporter runs) and one PrometheusRule
//! (`monitoring.coreos.com/v1`, built as dynamic objects since the operator does not own those
//! CRDs), and the dashboards of [`crate::dashboards`]: ConfigMaps labelled `grafana_dashboard: "1"`
//! for Grafana's sidecar, and GrafanaDashboards (`grafana.integreatly.org/v1beta1`, dynamic too)
//! for the grafana-operator. All carry the stack's extra monitoring labels (e.g.
//! `release: kube-prometheus-stack`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    api::{ApiResource, DynamicObject, GroupVersionKind},
    core::ObjectMeta,
};
use serde_json::json;

use super::{Component, metadata, object_name, selector_labels, stack_name};
use crate::{
    alerts::{self, Scope},
    crd::FlashcardStack,
    dashboards::{self, Dashboard},
    monitoring_files::route,
};

pub const MONITORING_GROUP: &str = "monitoring.coreos.com";

pub fn service_monitor_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        MONITORING_GROUP,
        "v1",
        "ServiceMonitor",
    ))
}

pub fn prometheus_rule_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        MONITORING_GROUP,
        "v1",
        "PrometheusRule",
    ))
}

/// The component's metadata plus the stack's monitoring labels.
fn monitoring_metadata(stack: &FlashcardStack, component: Component, name: String) -> ObjectMeta {
    let mut meta = metadata(stack, component, name);
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    labels.extend(stack.spec.monitoring.labels.clone());
    meta
}

/// The ServiceMonitor scraping `/metrics` on the component's metrics port; `None` for a
/// component without one.
pub fn service_monitor(stack: &FlashcardStack, component: Component) -> Option<DynamicObject> {
    let port = component.metrics_port(stack)?;
    let resource = service_monitor_resource();
    let mut object = DynamicObject::new(&object_name(stack, component), &resource);
    object.metadata = monitoring_metadata(stack, component, object_name(stack, component));
    object.data = json!({
        "spec": {
            "selector": {"matchLabels": selector_labels(stack, component)},
            "endpoints": [{
                "port": port,
                "path": "/metrics",
                "interval": stack.spec.monitoring.service_monitors.interval,
            }],
        }
    });
    Some(object)
}

pub fn alertmanager_config_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        MONITORING_GROUP,
        "v1alpha1",
        "AlertmanagerConfig",
    ))
}

pub fn prometheus_rule(stack: &FlashcardStack) -> DynamicObject {
    let resource = prometheus_rule_resource();
    let name = format!("{}-alerts", stack_name(stack));
    let namespace = stack.metadata.namespace.clone().unwrap_or_default();
    let spec = &stack.spec.monitoring.prometheus_rule;
    let mut group = alerts::group(
        &Scope::stack(&namespace, &stack_name(stack)),
        &spec.thresholds,
    );
    if let Some(for_) = &spec.for_ {
        for rule in group["rules"].as_array_mut().into_iter().flatten() {
            rule["for"] = json!(for_);
        }
    }
    let mut object = DynamicObject::new(&name, &resource);
    object.metadata = monitoring_metadata(stack, Component::Backend, name);
    object.data = json!({
        "spec": {"groups": [group]}
    });
    object
}

/// The monitoring guide's Alertmanager route for an Alertmanager that selects
/// AlertmanagerConfigs by the stack's monitoring labels: the stack's alerts, grouped by name, to
/// the backend's webhook (resolved ones too), with the bearer token from the Secret the backend
/// checks it against. The Prometheus Operator limits the route to the stack's namespace.
pub fn alertmanager_config(stack: &FlashcardStack) -> DynamicObject {
    let resource = alertmanager_config_resource();
    let name = format!("{}-alerts", stack_name(stack));
    let namespace = stack.metadata.namespace.clone().unwrap_or_default();
    let url = format!(
        "http://{}.{namespace}.svc:{}{}",
        object_name(stack, Component::Backend),
        Component::Backend.port(),
        route::WEBHOOK_PATH
    );
    let mut webhook = json!({"url": url, "sendResolved": true});
    if let Some(token) = &stack.spec.backend.alerts_webhook_token_secret_ref {
        webhook["httpConfig"] = json!({"authorization": {
            "type": "Bearer",
            "credentials": {"name": token.name, "key": token.key},
        }});
    }
    let receiver = "backend-webhook";
    let mut object = DynamicObject::new(&name, &resource);
    object.metadata = monitoring_metadata(stack, Component::Backend, name);
    object.data = json!({
        "spec": {
            "route": {
                "receiver": receiver,
                "groupBy": [route::GROUP_BY],
                "groupWait": route::GROUP_WAIT,
                "groupInterval": route::GROUP_INTERVAL,
                "repeatInterval": route::REPEAT_INTERVAL,
            },
            "receivers": [{"name": receiver, "webhookConfigs": [webhook]}],
        }
    });
    object
}

/// The ConfigMap or GrafanaDashboard of a dashboard.
fn dashboard_name(stack: &FlashcardStack, dashboard: &Dashboard) -> String {
    format!("{}-dashboard-{}", stack_name(stack), dashboard.file)
}

/// One ConfigMap per dashboard for Grafana's sidecar, in the `flashcards` folder. Every stack
/// delivers the same files (the dashboards choose namespaces through a variable), so several
/// stacks share one dashboard each.
pub fn dashboards(stack: &FlashcardStack) -> Vec<ConfigMap> {
    dashboards::all()
        .into_iter()
        .map(|dashboard| {
            let name = dashboard_name(stack, &dashboard);
            let mut meta = monitoring_metadata(stack, Component::Web, name);
            meta.labels
                .get_or_insert_with(BTreeMap::new)
                .insert("grafana_dashboard".to_owned(), "1".to_owned());
            meta.annotations = Some(BTreeMap::from([(
                "k8s-sidecar-target-directory".to_owned(),
                dashboards::FOLDER.to_owned(),
            )]));
            ConfigMap {
                metadata: meta,
                data: Some(BTreeMap::from([(
                    format!("{}.json", dashboard.file),
                    dashboard.json.to_string(),
                )])),
                ..ConfigMap::default()
            }
        })
        .collect()
}

pub const GRAFANA_GROUP: &str = "grafana.integreatly.org";

pub fn grafana_dashboard_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        GRAFANA_GROUP,
        "v1beta1",
        "GrafanaDashboard",
    ))
}

/// The same dashboards as GrafanaDashboards for the grafana-operator, in the same folder, for the
/// `Grafana` instances labelled as the stack says. Those usually live in another namespace, hence
/// the cross-namespace import.
pub fn grafana_dashboards(stack: &FlashcardStack) -> Vec<DynamicObject> {
    let resource = grafana_dashboard_resource();
    dashboards::all()
        .into_iter()
        .map(|dashboard| {
            let name = dashboard_name(stack, &dashboard);
            let mut object = DynamicObject::new(&name, &resource);
            object.metadata = monitoring_metadata(stack, Component::Web, name);
            object.data = json!({
                "spec": {
                    "instanceSelector": {
                        "matchLabels": stack.spec.monitoring.dashboards.grafana_instance_labels,
                    },
                    "allowCrossNamespaceImport": true,
                    "folder": dashboards::FOLDER,
                    "json": dashboard.json.to_string(),
                }
            });
            object
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        builders::tests::stack,
        crd::{FlashcardStackSpec, SecretKeyRef},
    };

    fn monitored() -> FlashcardStack {
        let mut spec = FlashcardStackSpec::default();
        spec.monitoring
            .labels
            .insert("release".into(), "kube-prometheus-stack".into());
        spec.monitoring.service_monitors.interval = "15s".into();
        stack(spec)
    }

    #[test]
    fn service_monitors_scrape_the_named_port_with_the_stacks_labels() {
        let monitor = service_monitor(&monitored(), Component::Ocr).expect("a monitor");
        assert_eq!(
            monitor.types.as_ref().map(|t| t.kind.as_str()),
            Some("ServiceMonitor")
        );
        let labels = monitor.metadata.labels.clone().expect("labels");
        assert_eq!(labels["release"], "kube-prometheus-stack");
        assert_eq!(monitor.data["spec"]["endpoints"][0]["port"], "http");
        assert_eq!(monitor.data["spec"]["endpoints"][0]["interval"], "15s");
        assert_eq!(
            monitor.data["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"],
            "ocr"
        );
        assert!(monitor.metadata.owner_references.is_some());
    }

    #[test]
    fn redis_is_scraped_through_its_exporter_and_mlflow_not_at_all() {
        let mut stack = monitored();
        stack.spec.redis.enabled = true;
        stack.spec.mlflow.enabled = true;
        let redis = service_monitor(&stack, Component::Redis).expect("the exporter's");
        assert_eq!(redis.metadata.name.as_deref(), Some("study-redis"));
        assert_eq!(redis.data["spec"]["endpoints"][0]["port"], "metrics");
        assert_eq!(redis.data["spec"]["endpoints"][0]["path"], "/metrics");
        assert_eq!(
            redis.data["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"],
            "redis"
        );
        assert!(service_monitor(&stack, Component::Mlflow).is_none());
        stack.spec.redis.exporter = Some(false);
        assert!(service_monitor(&stack, Component::Redis).is_none());
    }

    #[test]
    fn the_stacks_for_replaces_every_alerts_own() {
        let mut stack = monitored();
        let fors = |stack: &FlashcardStack| -> Vec<String> {
            let rule = prometheus_rule(stack);
            rule.data["spec"]["groups"][0]["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|rule| rule["for"].as_str().unwrap_or_default().to_owned())
                .collect()
        };
        assert!(fors(&stack).contains(&"5m".to_owned()), "the guide's own");
        stack.spec.monitoring.prometheus_rule.for_ = Some("15s".into());
        assert_eq!(fors(&stack), vec!["15s"; 9]);
    }

    #[test]
    fn alertmanager_reaches_the_backends_webhook_with_the_named_token() {
        let mut stack = monitored();
        stack.spec.backend.alerts_webhook_token_secret_ref = Some(SecretKeyRef {
            name: "study-alerts".into(),
            key: "token".into(),
        });
        let config = alertmanager_config(&stack);
        assert_eq!(
            config.types.as_ref().map(|t| t.api_version.as_str()),
            Some("monitoring.coreos.com/v1alpha1")
        );
        assert_eq!(
            config.metadata.labels.clone().expect("labels")["release"],
            "kube-prometheus-stack"
        );
        let spec = &config.data["spec"];
        assert_eq!(spec["route"]["receiver"], spec["receivers"][0]["name"]);
        assert_eq!(spec["route"]["groupBy"], json!(["alertname"]));
        assert_eq!(
            [
                &spec["route"]["groupWait"],
                &spec["route"]["groupInterval"],
                &spec["route"]["repeatInterval"]
            ],
            ["10s", "10s", "1h"],
            "the guide's timings"
        );
        let webhook = &spec["receivers"][0]["webhookConfigs"][0];
        assert_eq!(
            webhook["url"],
            "http://study-backend.flashcards.svc:8002/alerts"
        );
        assert_eq!(webhook["sendResolved"], true);
        assert_eq!(
            webhook["httpConfig"]["authorization"]["credentials"],
            json!({"name": "study-alerts", "key": "token"})
        );
        stack.spec.backend.alerts_webhook_token_secret_ref = None;
        let open = alertmanager_config(&stack);
        assert!(open.data["spec"]["receivers"][0]["webhookConfigs"][0]["httpConfig"].is_null());
    }

    #[test]
    fn the_rule_holds_every_alert_with_severity_and_runbook() {
        let rule = prometheus_rule(&monitored());
        let rules = rule.data["spec"]["groups"][0]["rules"]
            .as_array()
            .expect("rules");
        assert_eq!(rules.len(), 9);
        assert_eq!(rules[0]["alert"], "ServiceDown");
        assert_eq!(rules[0]["labels"]["severity"], "critical");
        assert!(
            rules[0]["expr"]
                .as_str()
                .expect("expr")
                .contains(r#"namespace="flashcards""#)
        );
        assert!(
            rules
                .iter()
                .all(|r| r["annotations"]["runbook_url"].is_string())
        );
        assert_eq!(
            rule.metadata.labels.expect("labels")["release"],
            "kube-prometheus-stack"
        );
    }

    #[test]
    fn five_dashboards_for_the_grafana_sidecar() {
        let maps = dashboards(&monitored());
        assert_eq!(maps.len(), 5);
        for map in &maps {
            let labels = map.metadata.labels.clone().expect("labels");
            assert_eq!(labels["grafana_dashboard"], "1");
            assert_eq!(labels["release"], "kube-prometheus-stack");
            assert_eq!(
                map.metadata.annotations.clone().expect("annotations")["k8s-sidecar-target-directory"],
                "flashcards"
            );
            let (file, json) = map
                .data
                .clone()
                .expect("data")
                .into_iter()
                .next()
                .expect("one");
            assert!(file.ends_with(".json"));
            let dashboard: serde_json::Value = serde_json::from_str(&json).expect("JSON");
            let title = dashboard["title"].as_str().expect("title");
            assert!(title.starts_with("Flashcards: "));
            let panels = dashboard["panels"].as_array().expect("panels");
            assert!(!panels.is_empty(), "{title}");
            for panel in panels {
                assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
                assert!(
                    panel["fieldConfig"]["defaults"]["unit"].is_string(),
                    "{title}"
                );
            }
        }
        assert_eq!(
            maps[0].metadata.name.as_deref(),
            Some("study-dashboard-application-overview")
        );
    }

    #[test]
    fn grafana_dashboards_select_the_labelled_instances_in_the_folder() {
        let mut stack = monitored();
        let objects = grafana_dashboards(&stack);
        assert_eq!(objects.len(), 5);
        let first = &objects[0];
        let types = first.types.clone().expect("types");
        assert_eq!(
            (types.api_version.as_str(), types.kind.as_str()),
            ("grafana.integreatly.org/v1beta1", "GrafanaDashboard")
        );
        assert_eq!(
            first.metadata.name.as_deref(),
            Some("study-dashboard-application-overview")
        );
        assert_eq!(
            first.metadata.labels.clone().expect("labels")["release"],
            "kube-prometheus-stack"
        );
        assert!(first.metadata.owner_references.is_some());
        let spec = &first.data["spec"];
        assert_eq!(
            spec["instanceSelector"]["matchLabels"],
            json!({"dashboards": "grafana"})
        );
        assert_eq!(spec["allowCrossNamespaceImport"], true);
        assert_eq!(spec["folder"], "flashcards");
        let model: serde_json::Value =
            serde_json::from_str(spec["json"].as_str().expect("a string")).expect("JSON");
        assert_eq!(model["uid"], "flashcards-application-overview");

        stack.spec.monitoring.dashboards.grafana_instance_labels =
            BTreeMap::from([("team".to_owned(), "learning".to_owned())]);
        assert_eq!(
            grafana_dashboards(&stack)[4].data["spec"]["instanceSelector"]["matchLabels"],
            json!({"team": "learning"})
        );
    }
}
