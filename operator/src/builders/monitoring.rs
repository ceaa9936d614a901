//! What kube-prometheus-stack picks up: a ServiceMonitor per component with metrics (every one but
//! MLflow; Redis's while redis_exporter runs) and one PrometheusRule
//! (`monitoring.coreos.com/v1`, built as dynamic objects since the operator does not own those
//! CRDs), and dashboard ConfigMaps labelled `grafana_dashboard: "1"` for Grafana's sidecar. All carry
//! the stack's extra monitoring labels (e.g. `release: kube-prometheus-stack`).

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

pub fn prometheus_rule(stack: &FlashcardStack) -> DynamicObject {
    let resource = prometheus_rule_resource();
    let name = format!("{}-alerts", stack_name(stack));
    let namespace = stack.metadata.namespace.clone().unwrap_or_default();
    let group = alerts::group(
        &Scope::stack(&namespace, &stack_name(stack)),
        &stack.spec.monitoring.prometheus_rule.thresholds,
    );
    let mut object = DynamicObject::new(&name, &resource);
    object.metadata = monitoring_metadata(stack, Component::Backend, name);
    object.data = json!({
        "spec": {"groups": [group]}
    });
    object
}

/// The monitoring guide's five dashboards, by file name and title.
pub const DASHBOARDS: [(&str, &str); 5] = [
    ("application-overview", "Flashcards: Application Overview"),
    ("ocr-service", "Flashcards: OCR Service"),
    ("llm-service", "Flashcards: LLM Service"),
    ("system-resources", "Flashcards: System Resources"),
    ("mlflow-integration", "Flashcards: MLflow Integration"),
];

/// One ConfigMap per dashboard for Grafana's sidecar, in the `flashcards` folder. The dashboards
/// carry their datasource and namespace variables; their panels come with the monitoring work.
pub fn dashboards(stack: &FlashcardStack) -> Vec<ConfigMap> {
    DASHBOARDS
        .iter()
        .map(|(file, title)| {
            let name = format!("{}-dashboard-{file}", stack_name(stack));
            let mut meta = monitoring_metadata(stack, Component::Web, name);
            meta.labels
                .get_or_insert_with(BTreeMap::new)
                .insert("grafana_dashboard".to_owned(), "1".to_owned());
            meta.annotations = Some(BTreeMap::from([(
                "k8s-sidecar-target-directory".to_owned(),
                "flashcards".to_owned(),
            )]));
            let dashboard = json!({
                "title": title,
                "uid": format!("flashcards-{file}"),
                "schemaVersion": 39,
                "tags": ["flashcards"],
                "templating": {"list": [
                    {"name": "datasource", "type": "datasource", "query": "prometheus"},
                    {"name": "namespace", "type": "query", "datasource": "${datasource}",
                     "query": "label_values(up, namespace)"},
                ]},
                "panels": [],
            });
            ConfigMap {
                metadata: meta,
                data: Some(BTreeMap::from([(
                    format!("{file}.json"),
                    dashboard.to_string(),
                )])),
                ..ConfigMap::default()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{builders::tests::stack, crd::FlashcardStackSpec};

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
            let (file, json) = map
                .data
                .clone()
                .expect("data")
                .into_iter()
                .next()
                .expect("one");
            assert!(file.ends_with(".json"));
            let dashboard: serde_json::Value = serde_json::from_str(&json).expect("JSON");
            assert!(
                dashboard["title"]
                    .as_str()
                    .expect("title")
                    .starts_with("Flashcards: ")
            );
        }
    }
}
