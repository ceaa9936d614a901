//! `FlashcardStack` (`flashcards.dev/v1alpha1`): one resource describing a whole stack. The CRD
//! YAML in `crds/` and in the chart is generated from these types (`cargo xtask gen`); a test fails
//! when the checked-in copies drift.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::ResourceRequirements, apimachinery::pkg::api::resource::Quantity,
};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "flashcards.dev";
pub const VERSION: &str = "v1alpha1";

/// The desired state of a flashcards stack.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "flashcards.dev",
    version = "v1alpha1",
    kind = "FlashcardStack",
    namespaced,
    status = "FlashcardStackStatus",
    shortname = "fcs",
    category = "flashcards",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Components","type":"string","jsonPath":".status.summary"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new(
    "!has(self.backend) || !has(self.backend.replicas) || self.backend.replicas <= 1 || (has(self.backend.database) && has(self.backend.database.postgres))"
).message("SQLite supports one backend replica: set spec.backend.database.postgres to run more"))]
#[serde(rename_all = "camelCase")]
pub struct FlashcardStackSpec {
    /// Image tag of every component unless a component names its own image; defaults to the
    /// operator's own version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Registry and repository prefix of the images (`<registry>/flashcards-<component>:<version>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_registry: Option<String>,
    /// Leave every child object as it is: no changes are applied while true.
    #[serde(default)]
    pub paused: bool,
    /// Scale every component to zero replicas, keeping data and configuration.
    #[serde(default)]
    pub stopped: bool,
    #[serde(default)]
    pub backend: BackendSpec,
    #[serde(default)]
    pub ocr: OcrSpec,
    #[serde(default)]
    pub llm: LlmSpec,
    #[serde(default)]
    pub web: WebSpec,
    #[serde(default)]
    pub redis: RedisSpec,
    #[serde(default)]
    pub mlflow: MlflowSpec,
    #[serde(default)]
    pub monitoring: MonitoringSpec,
}

/// What every component takes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSpec {
    /// Full image reference, overriding registry and version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Pods to run (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendSpec {
    #[serde(flatten)]
    pub component: ComponentSpec,
    #[serde(default)]
    pub database: DatabaseSpec,
    /// Accounts (emails) that administer the stack: they read the alerts Alertmanager posted
    /// (`GET /api/alerts`). Nobody does when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin_emails: Vec<String>,
    /// A Secret key holding the bearer token Alertmanager must send to the backend's webhook
    /// (`POST /alerts`); without it the webhook is open to whoever the NetworkPolicy admits
    /// (Alertmanager and Prometheus pods, the web front end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts_webhook_token_secret_ref: Option<SecretKeyRef>,
    /// Mark the session cookie `Secure` (`SECURE_COOKIES`): set it when browsers reach the stack
    /// over HTTPS, so that the cookie is never sent in clear text.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secure_cookies: bool,
}

/// SQLite on a volume (one replica), or PostgreSQL through a Secret holding its URL.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("!(has(self.sqlite) && has(self.postgres))").message("choose sqlite or postgres, not both"))]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlite: Option<SqliteSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresSpec>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SqliteSpec {
    /// Size of the volume holding the database file (default 1Gi). Moving to PostgreSQL keeps
    /// the volume (the stack still owns it and deletes it with itself).
    #[serde(default = "default_sqlite_storage")]
    pub storage: Quantity,
}

fn default_sqlite_storage() -> Quantity {
    Quantity("1Gi".to_owned())
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostgresSpec {
    /// The Secret key holding `postgres://user:password@host:port/database`.
    pub secret_ref: SecretKeyRef,
}

/// A key of a Secret in the stack's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OcrSpec {
    #[serde(flatten)]
    pub component: ComponentSpec,
    /// Tesseract languages the image must have (default `[eng]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub languages: Vec<String>,
    /// Word confidence (0-100) under which words are marked low-confidence; they leave the text
    /// only when a request asks for filtering (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub min_confidence: Option<f64>,
}

/// A local model, or an OpenAI-compatible upstream.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("!(has(self.local) && has(self.upstream))").message("choose local or upstream, not both"))]
#[serde(rename_all = "camelCase")]
pub struct LlmSpec {
    #[serde(flatten)]
    pub component: ComponentSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalModelSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamSpec>,
}

impl LlmSpec {
    /// The model the LLM pod runs itself: the one named, or the default one when no upstream is
    /// named either, so that an empty spec is a working stack.
    pub fn local_model(&self) -> Option<LocalModelSpec> {
        match (&self.upstream, &self.local) {
            (Some(_), _) => None,
            (None, local) => Some(local.clone().unwrap_or_default()),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalModelSpec {
    /// The model to serve (default `qwen2.5-coder-0.5b-instruct`, the model whose cards meet the
    /// quality goal; `smollm2-135m-instruct` is smaller and faster).
    #[serde(default = "default_local_model")]
    pub model: String,
    /// The model image: one carrying the GGUF file at `/models/<model>.gguf` and `cp` (default
    /// `<imageRegistry>/flashcards-model-<model>:<version>`). An init container copies the file
    /// into the LLM pod, so no registry or download is needed at run time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Room for the model file in the pod: the size limit of the volume it is copied to (default
    /// 2Gi).
    #[serde(default = "default_model_storage")]
    pub storage: Quantity,
}

/// The model a local LLM serves unless told otherwise: Qwen2.5-Coder-0.5B-Instruct meets the card
/// quality goal of docs/card-quality.md; SmolLM2-135M does not.
pub const DEFAULT_LOCAL_MODEL: &str = "qwen2.5-coder-0.5b-instruct";

fn default_local_model() -> String {
    DEFAULT_LOCAL_MODEL.to_owned()
}

fn default_model_storage() -> Quantity {
    Quantity("2Gi".to_owned())
}

impl Default for LocalModelSpec {
    fn default() -> Self {
        Self {
            model: default_local_model(),
            image: None,
            storage: default_model_storage(),
        }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamSpec {
    /// The OpenAI-compatible server, e.g. `http://ollama:11434`.
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')").message("upstream.url must be an http(s) URL"))]
    pub url: String,
    /// The model to ask for (default: the first the server lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The Secret key holding the API key, if the server needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<SecretKeyRef>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebSpec {
    #[serde(flatten)]
    pub component: ComponentSpec,
}

/// Redis for the backend, with redis_exporter for Prometheus. It runs as a cache: nothing is
/// persisted, and a restart empties it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisSpec {
    /// Run Redis (default false).
    #[serde(default)]
    pub enabled: bool,
    /// Run redis_exporter next to Redis for Prometheus (default true when Redis is enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter: Option<bool>,
    /// Full image reference of Redis (default `redis:7.2-alpine`); it runs as uid 999, the
    /// official image's `redis` user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Full image reference of redis_exporter (default `oliver006/redis_exporter:v1.67.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter_image: Option<String>,
    /// Resources of the Redis container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl RedisSpec {
    /// Whether redis_exporter runs: with Redis, unless turned off.
    pub fn exporter_enabled(&self) -> bool {
        self.enabled && self.exporter.unwrap_or(true)
    }
}

/// An MLflow tracking server for the OCR and LLM services' experiment data: runs in SQLite and
/// artifacts on one volume.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MlflowSpec {
    /// Run MLflow, and point the OCR and LLM services at it (default false).
    #[serde(default)]
    pub enabled: bool,
    /// Size of the volume for MLflow's runs and artifacts (default 1Gi). Disabling MLflow keeps
    /// the volume (`<stack>-mlflow-data`), and enabling it again finds the runs there; it is
    /// deleted with the stack, or by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Quantity>,
    /// Full image reference of MLflow (default `ghcr.io/mlflow/mlflow:v2.22.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Resources of the MLflow container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// Labels added to ServiceMonitors, the PrometheusRule and dashboards, e.g.
    /// `release: kube-prometheus-stack` so that Prometheus selects them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub service_monitors: ServiceMonitorsSpec,
    #[serde(default)]
    pub prometheus_rule: PrometheusRuleSpec,
    #[serde(default)]
    pub dashboards: DashboardsSpec,
}

/// The monitoring guide's five Grafana dashboards, in the `flashcards` folder: as ConfigMaps
/// labelled `grafana_dashboard: "1"` for Grafana's sidecar, and as GrafanaDashboards when the
/// grafana-operator's API is served.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DashboardsSpec {
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Labels of the grafana-operator `Grafana` instances, in any namespace, that load the
    /// GrafanaDashboards (their `instanceSelector`; `{}` selects every instance). Default
    /// `dashboards: grafana`, the grafana-operator's convention. A change replaces the
    /// GrafanaDashboards, since the grafana-operator does not let a selector change.
    #[serde(default = "default_grafana_instance_labels")]
    pub grafana_instance_labels: BTreeMap<String, String>,
}

impl Default for DashboardsSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            grafana_instance_labels: default_grafana_instance_labels(),
        }
    }
}

fn default_grafana_instance_labels() -> BTreeMap<String, String> {
    BTreeMap::from([("dashboards".to_owned(), "grafana".to_owned())])
}

fn enabled() -> bool {
    true
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorsSpec {
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// How often Prometheus scrapes each service (default 30s).
    #[serde(default = "default_interval")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub interval: String,
}

impl Default for ServiceMonitorsSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: default_interval(),
        }
    }
}

fn default_interval() -> String {
    "30s".to_owned()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusRuleSpec {
    #[serde(default = "enabled")]
    pub enabled: bool,
    #[serde(default)]
    pub thresholds: AlertThresholds,
    /// How long every alert's condition must hold before it fires, in place of each alert's own
    /// (1m or 5m for the critical ones, 10m for the warnings): shorter for a staging stack that
    /// should page at once, longer for a noisy one.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub for_: Option<String>,
}

impl Default for PrometheusRuleSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            thresholds: AlertThresholds::default(),
            for_: None,
        }
    }
}

/// The alert thresholds of the monitoring guide, adjustable per stack.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertThresholds {
    /// Share of requests answered 5xx over 5 minutes above which the critical error-rate alert
    /// fires (default 0.05).
    #[serde(default = "default_error_rate_critical")]
    pub error_rate_critical: f64,
    /// The same over 10 minutes for the warning (default 0.02).
    #[serde(default = "default_error_rate_warning")]
    pub error_rate_warning: f64,
    /// p95 response time in seconds over 5 minutes for the critical alert (default 5).
    #[serde(default = "default_latency_critical")]
    pub latency_critical_seconds: f64,
    /// The same over 10 minutes for the warning (default 2).
    #[serde(default = "default_latency_warning")]
    pub latency_warning_seconds: f64,
    /// Container memory working set as a share of its limit for the critical alert (default 0.9).
    #[serde(default = "default_memory_critical")]
    pub memory_critical: f64,
    /// The same for the warning (default 0.75).
    #[serde(default = "default_memory_warning")]
    pub memory_warning: f64,
    /// Used share of a stack volume for the critical alert (default 0.85).
    #[serde(default = "default_disk_critical")]
    pub disk_critical: f64,
    /// The same for the warning (default 0.7).
    #[serde(default = "default_disk_warning")]
    pub disk_warning: f64,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        Self {
            error_rate_critical: default_error_rate_critical(),
            error_rate_warning: default_error_rate_warning(),
            latency_critical_seconds: default_latency_critical(),
            latency_warning_seconds: default_latency_warning(),
            memory_critical: default_memory_critical(),
            memory_warning: default_memory_warning(),
            disk_critical: default_disk_critical(),
            disk_warning: default_disk_warning(),
        }
    }
}

fn default_error_rate_critical() -> f64 {
    0.05
}
fn default_error_rate_warning() -> f64 {
    0.02
}
fn default_latency_critical() -> f64 {
    5.0
}
fn default_latency_warning() -> f64 {
    2.0
}
fn default_memory_critical() -> f64 {
    0.9
}
fn default_memory_warning() -> f64 {
    0.75
}
fn default_disk_critical() -> f64 {
    0.85
}
fn default_disk_warning() -> f64 {
    0.7
}

/// What the operator last saw.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlashcardStackStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing`, `Degraded` and `MonitoringAvailable`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Ready and desired replicas per component.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub components: BTreeMap<String, ComponentStatus>,
    /// In-cluster URLs of the services.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub urls: BTreeMap<String, String>,
    /// Components ready out of components, e.g. `4/4` (the printer column).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
}

/// A standard Kubernetes condition.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    pub r#type: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// RFC 3339.
    pub last_transition_time: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    pub ready: i32,
    pub desired: i32,
}

/// The CRD as YAML, as it is checked in (`crds/`, the chart's `crds/`).
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    let yaml = serde_yaml::to_string(&FlashcardStack::crd())?;
    Ok(format!(
        "# Generated from operator/src/crd.rs by `cargo xtask gen`; do not edit.\n{yaml}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_spec_means_the_defaults() {
        let empty: FlashcardStackSpec = serde_json::from_str("{}").expect("parses");
        assert_eq!(empty, FlashcardStackSpec::default());
        assert!(empty.monitoring.prometheus_rule.enabled);
        assert!(empty.monitoring.service_monitors.enabled);
        assert!(empty.monitoring.dashboards.enabled);
        assert!(
            (empty
                .monitoring
                .prometheus_rule
                .thresholds
                .error_rate_critical
                - 0.05)
                .abs()
                < 1e-12
        );
    }

    #[test]
    fn a_local_model_defaults_to_the_one_that_meets_the_card_goal() {
        let spec: FlashcardStackSpec =
            serde_json::from_str(r#"{"llm": {"local": {}}}"#).expect("parses");
        let local = spec.llm.local.clone().expect("a local model");
        assert_eq!(local.model, "qwen2.5-coder-0.5b-instruct");
        assert_eq!(spec.llm.local_model(), Some(local));
        // No model named and no upstream either: the default model, not a pod without one.
        assert_eq!(
            LlmSpec::default().local_model(),
            Some(LocalModelSpec::default())
        );
        let yaml = crd_yaml().expect("renders");
        assert!(
            yaml.contains("default: qwen2.5-coder-0.5b-instruct"),
            "{yaml}"
        );
    }

    #[test]
    fn the_crd_carries_the_cel_rules() {
        let yaml = crd_yaml().expect("renders");
        assert!(yaml.contains("SQLite supports one backend replica"));
        assert!(yaml.contains("choose local or upstream, not both"));
        assert!(yaml.contains("upstream.url must be an http(s) URL"));
        assert!(yaml.contains("shortNames:\n    - fcs"));
    }
}
