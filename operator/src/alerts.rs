//! The monitoring guide's alert rules as data: the one source the operator's PrometheusRule (and
//! the generated rule files) are made from. Response time is the p95 of
//! `http_request_duration_seconds`; memory is cAdvisor's `container_memory_working_set_bytes`
//! against `container_spec_memory_limit_bytes`; disk is the kubelet's volume statistics of the
//! stack's claims.

use serde_json::json;

use crate::crd::AlertThresholds;

/// The rule group's name, in the PrometheusRule and in monitoring/alert_rules.yml.
pub const GROUP_NAME: &str = "flashcards.application";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Critical,
    Warning,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Warning => "warning",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    pub name: &'static str,
    pub expr: String,
    /// Prometheus duration, e.g. `5m`.
    pub for_: &'static str,
    pub severity: Severity,
    pub summary: String,
    pub description: String,
    /// The runbook's path in the repository (`monitoring/runbooks/<name>.md`).
    pub runbook: String,
}

/// The services with metrics that every stack runs.
const SERVICES: [&str; 4] = ["backend", "ocr", "llm", "web"];

/// Which series the rules look at: the jobs and pods of one stack, or every flashcards service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Matchers for the services' own series (`up`, HTTP metrics), e.g. `job=~"study-.*"`.
    pub jobs: String,
    /// Equality matchers for each service's `up` series, one service each: a service none of
    /// whose targets is discovered (no pod ready, so none in its endpoints) has no `up` series
    /// at all, which only `absent` sees, and `absent` takes its labels from equality matchers.
    pub services: Vec<String>,
    /// Matchers for cAdvisor's container series.
    pub containers: String,
    /// Matchers for the kubelet's volume series.
    pub volumes: String,
}

impl Scope {
    /// The services of the stack `name` in `namespace` (ServiceMonitors name jobs after Services).
    pub fn stack(namespace: &str, name: &str) -> Self {
        let any = SERVICES.join("|");
        Self {
            jobs: format!(r#"namespace="{namespace}", job=~"{name}-({any})""#),
            services: SERVICES
                .map(|service| format!(r#"namespace="{namespace}", job="{name}-{service}""#))
                .into(),
            containers: format!(
                r#"namespace="{namespace}", pod=~"{name}-({any})-.*", container!="""#
            ),
            volumes: format!(r#"namespace="{namespace}", persistentvolumeclaim=~"{name}-.*""#),
        }
    }

    /// Every flashcards service, for Prometheus set up by hand (monitoring/prometheus.yml names
    /// the jobs `flashcards-<service>`); containers and volumes as the operator names them, in
    /// any namespace.
    pub fn standalone() -> Self {
        let any = SERVICES.join("|");
        Self {
            jobs: format!(r#"job=~"flashcards-({any})""#),
            services: SERVICES
                .map(|service| format!(r#"job="flashcards-{service}""#))
                .into(),
            containers: format!(r#"container=~"{any}""#),
            volumes: r#"persistentvolumeclaim=~".+-(backend|mlflow)-data""#.to_owned(),
        }
    }
}

/// The rules as a Prometheus rule group (the shape both a rule file and a PrometheusRule hold).
pub fn group(scope: &Scope, thresholds: &AlertThresholds) -> serde_json::Value {
    let rules: Vec<_> = rules(scope, thresholds)
        .into_iter()
        .map(|rule| {
            json!({
                "alert": rule.name,
                "expr": rule.expr,
                "for": rule.for_,
                "labels": {"severity": rule.severity.label()},
                "annotations": {
                    "summary": rule.summary,
                    "description": rule.description,
                    "runbook_url": rule.runbook,
                },
            })
        })
        .collect();
    json!({"name": GROUP_NAME, "rules": rules})
}

fn rule(
    name: &'static str,
    severity: Severity,
    for_: &'static str,
    expr: String,
    summary: &str,
    description: String,
) -> AlertRule {
    AlertRule {
        name,
        expr,
        for_,
        severity,
        summary: summary.to_owned(),
        description,
        runbook: format!("monitoring/runbooks/{name}.md"),
    }
}

fn percent(share: f64) -> String {
    format!("{}%", (share * 100.0).round())
}

/// The guide's alerts, critical then warning, with the stack's thresholds.
pub fn rules(scope: &Scope, thresholds: &AlertThresholds) -> Vec<AlertRule> {
    let Scope {
        jobs,
        services,
        containers,
        volumes,
    } = scope;
    // Down: scraped and failing, or not discovered at all.
    let down = services
        .iter()
        .fold(format!("up{{{jobs}}} == 0"), |expr, service| {
            format!("{expr} or absent(up{{{service}}})")
        });
    let error_rate = |window: &str| {
        format!(
            r#"sum by (namespace, job) (rate(http_requests_total{{{jobs}, status=~"5.."}}[{window}])) / sum by (namespace, job) (rate(http_requests_total{{{jobs}}}[{window}]))"#
        )
    };
    let p95 = format!(
        "histogram_quantile(0.95, sum by (namespace, job, le) (rate(http_request_duration_seconds_bucket{{{jobs}}}[5m])))"
    );
    let memory = format!(
        "max by (namespace, pod, container) (container_memory_working_set_bytes{{{containers}}}) / max by (namespace, pod, container) (container_spec_memory_limit_bytes{{{containers}}} > 0)"
    );
    let disk = format!(
        "1 - max by (namespace, persistentvolumeclaim) (kubelet_volume_stats_available_bytes{{{volumes}}}) / max by (namespace, persistentvolumeclaim) (kubelet_volume_stats_capacity_bytes{{{volumes}}})"
    );
    let t = thresholds;
    vec![
        rule(
            "ServiceDown",
            Severity::Critical,
            "1m",
            down,
            "Service {{ $labels.job }} is down",
            "Prometheus cannot scrape {{ $labels.job }} (metric: up), or finds no target of it \
             (no pod ready), for 1 minute."
                .to_owned(),
        ),
        rule(
            "HighErrorRate",
            Severity::Critical,
            "5m",
            format!("{} > {}", error_rate("5m"), t.error_rate_critical),
            "High error rate on {{ $labels.job }}",
            format!(
                "More than {} of requests answered 5xx over 5 minutes (http_requests_total); now {{{{ $value | humanizePercentage }}}}.",
                percent(t.error_rate_critical)
            ),
        ),
        rule(
            "HighResponseTime",
            Severity::Critical,
            "5m",
            format!("{p95} > {}", t.latency_critical_seconds),
            "High response time on {{ $labels.job }}",
            format!(
                "p95 of http_request_duration_seconds above {} s for 5 minutes; now {{{{ $value | humanizeDuration }}}}.",
                t.latency_critical_seconds
            ),
        ),
        rule(
            "HighMemoryUsage",
            Severity::Critical,
            "5m",
            format!("{memory} > {}", t.memory_critical),
            "Container {{ $labels.container }} of {{ $labels.pod }} is near its memory limit",
            format!(
                "container_memory_working_set_bytes above {} of container_spec_memory_limit_bytes for 5 minutes.",
                percent(t.memory_critical)
            ),
        ),
        rule(
            "HighDiskUsage",
            Severity::Critical,
            "5m",
            format!("{disk} > {}", t.disk_critical),
            "Volume {{ $labels.persistentvolumeclaim }} is almost full",
            format!(
                "More than {} of the volume used (kubelet_volume_stats_available_bytes, kubelet_volume_stats_capacity_bytes) for 5 minutes.",
                percent(t.disk_critical)
            ),
        ),
        rule(
            "ModerateErrorRate",
            Severity::Warning,
            "10m",
            format!("{} > {}", error_rate("10m"), t.error_rate_warning),
            "Elevated error rate on {{ $labels.job }}",
            format!(
                "More than {} of requests answered 5xx over 10 minutes (http_requests_total); now {{{{ $value | humanizePercentage }}}}.",
                percent(t.error_rate_warning)
            ),
        ),
        rule(
            "ElevatedResponseTime",
            Severity::Warning,
            "10m",
            format!("{p95} > {}", t.latency_warning_seconds),
            "Elevated response time on {{ $labels.job }}",
            format!(
                "p95 of http_request_duration_seconds above {} s for 10 minutes; now {{{{ $value | humanizeDuration }}}}.",
                t.latency_warning_seconds
            ),
        ),
        rule(
            "ElevatedMemoryUsage",
            Severity::Warning,
            "10m",
            format!("{memory} > {}", t.memory_warning),
            "Container {{ $labels.container }} of {{ $labels.pod }} uses much of its memory limit",
            format!(
                "container_memory_working_set_bytes above {} of container_spec_memory_limit_bytes for 10 minutes.",
                percent(t.memory_warning)
            ),
        ),
        rule(
            "ElevatedDiskUsage",
            Severity::Warning,
            "10m",
            format!("{disk} > {}", t.disk_warning),
            "Volume {{ $labels.persistentvolumeclaim }} is filling up",
            format!(
                "More than {} of the volume used (kubelet_volume_stats_available_bytes, kubelet_volume_stats_capacity_bytes) for 10 minutes.",
                percent(t.disk_warning)
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guides_nine_alerts_with_its_thresholds_and_durations() {
        let rules = rules(&Scope::stack("ns", "study"), &AlertThresholds::default());
        let summary: Vec<(&str, &str, &str)> = rules
            .iter()
            .map(|r| (r.name, r.severity.label(), r.for_))
            .collect();
        assert_eq!(
            summary,
            [
                ("ServiceDown", "critical", "1m"),
                ("HighErrorRate", "critical", "5m"),
                ("HighResponseTime", "critical", "5m"),
                ("HighMemoryUsage", "critical", "5m"),
                ("HighDiskUsage", "critical", "5m"),
                ("ModerateErrorRate", "warning", "10m"),
                ("ElevatedResponseTime", "warning", "10m"),
                ("ElevatedMemoryUsage", "warning", "10m"),
                ("ElevatedDiskUsage", "warning", "10m"),
            ]
        );
        assert!(
            rules[0]
                .expr
                .starts_with(r#"up{namespace="ns", job=~"study-(backend|ocr|llm|web)"} == 0 or "#)
        );
        assert!(
            rules[0]
                .expr
                .contains(r#" or absent(up{namespace="ns", job="study-ocr"})"#),
            "{}",
            rules[0].expr
        );
        assert!(rules[1].expr.ends_with("> 0.05"), "{}", rules[1].expr);
        assert!(
            rules[2].expr.contains("histogram_quantile(0.95") && rules[2].expr.ends_with("> 5")
        );
        assert!(rules[6].expr.ends_with("> 2"));
        assert!(rules[3].expr.ends_with("> 0.9") && rules[7].expr.ends_with("> 0.75"));
        assert!(rules[4].expr.ends_with("> 0.85") && rules[8].expr.ends_with("> 0.7"));
        assert_eq!(rules[5].runbook, "monitoring/runbooks/ModerateErrorRate.md");
    }

    #[test]
    fn thresholds_come_from_the_spec() {
        let thresholds = AlertThresholds {
            error_rate_critical: 0.2,
            ..AlertThresholds::default()
        };
        let rules = rules(&Scope::stack("ns", "study"), &thresholds);
        assert!(rules[1].expr.ends_with("> 0.2"));
        assert!(rules[1].description.contains("20%"));
    }
}
