//! The monitoring guide's five Grafana dashboards as data (Grafana's dashboard JSON model, schema
//! version 39): the one source of the operator's dashboard ConfigMaps and GrafanaDashboards and of
//! the JSON files under monitoring/.
//!
//! Every dashboard picks its Prometheus through a `datasource` variable and narrows the services'
//! series with `namespace` and `instance` variables (multi-value, "All" by default). "All" is `.*`,
//! which also matches series without the label, so the same JSON serves a Prometheus outside
//! Kubernetes, where series carry no `namespace`. Thresholds are the alert rules' defaults.
//!
//! Only metrics that something really exports are queried: the services' own (the monitoring
//! guide's names), cAdvisor's and node-exporter's, redis_exporter's, and the services' MLflow
//! logging metrics `mlflow_log_requests_total{service,outcome}` (outcome `success`, `failure` or
//! `dropped`) and `mlflow_log_queue_depth{service}`.

use serde_json::{Value, json};

use crate::crd::AlertThresholds;

/// The Grafana folder the dashboards go in.
pub const FOLDER: &str = "flashcards";

/// One dashboard, delivered as `<file>.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    pub file: &'static str,
    pub title: &'static str,
    pub uid: String,
    pub json: Value,
}

/// The five dashboards, in the guide's order.
pub fn all() -> Vec<Dashboard> {
    let thresholds = AlertThresholds::default();
    vec![
        application_overview(&thresholds),
        ocr_service(&thresholds),
        llm_service(&thresholds),
        system_resources(&thresholds),
        mlflow_integration(&thresholds),
    ]
}

/// Every PromQL expression the dashboard's panels query, in panel order.
pub fn queries(dashboard: &Dashboard) -> Vec<String> {
    dashboard.json["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|panel| panel["targets"].as_array().into_iter().flatten())
        .filter_map(|target| target["expr"].as_str().map(str::to_owned))
        .collect()
}

fn application_overview(t: &AlertThresholds) -> Dashboard {
    let requests =
        |by: &str, extra: &str| sum(by, &rate(&select("http_requests_total", APP, extra)));
    // Zero rather than no data while nothing has failed: the 5xx series exist only after the
    // first error.
    let errors = |by: &str| {
        format!(
            "({} or {} * 0) / {}",
            requests(by, r#"status=~"5..""#),
            requests(by, ""),
            requests(by, "")
        )
    };
    let successes = format!(
        "{} / {}",
        requests("job", r#"status=~"[23]..""#),
        requests("job", "")
    );
    dashboard(
        "application-overview",
        "Flashcards: Application Overview",
        "Health, request rates, response times, error and success rates of the flashcards services.",
        variables(&[]),
        vec![
            stat(
                "Services up",
                "none",
                "Whether Prometheus can scrape each service (up); ServiceDown fires after a minute down.",
                vec![(format!("min by (job) ({})", select("up", APP, "")), "{{job}}")],
            )
            .up_down()
            .width(9),
            stat(
                "Request rate",
                "reqps",
                "HTTP requests per second over every service.",
                vec![(requests("", ""), "requests")],
            )
            .width(5),
            stat(
                "Error rate",
                "percentunit",
                "Share of HTTP requests answered 5xx; the alerts fire at these thresholds.",
                vec![(errors(""), "5xx")],
            )
            .thresholds(rising(t.error_rate_warning, t.error_rate_critical))
            .width(5),
            stat(
                "p95 response time",
                "s",
                "95th percentile of HTTP request duration over every service.",
                vec![(quantile(0.95, "", "http_request_duration_seconds"), "p95")],
            )
            .thresholds(rising(t.latency_warning_seconds, t.latency_critical_seconds))
            .width(5),
            timeseries(
                "Request rate by service",
                "reqps",
                "HTTP requests per second, per scrape job (one per service).",
                vec![(requests("job", ""), "{{job}}")],
            ),
            timeseries(
                "Requests by status",
                "reqps",
                "HTTP requests per second by response status.",
                vec![(requests("status", ""), "{{status}}")],
            )
            .stacked(),
            timeseries(
                "Response time by service",
                "s",
                "Median and 95th percentile of HTTP request duration per service.",
                vec![
                    (
                        quantile(0.5, "job", "http_request_duration_seconds"),
                        "{{job}} p50",
                    ),
                    (
                        quantile(0.95, "job", "http_request_duration_seconds"),
                        "{{job}} p95",
                    ),
                ],
            )
            .thresholds(rising(t.latency_warning_seconds, t.latency_critical_seconds)),
            timeseries(
                "Error rate by service",
                "percentunit",
                "Share of each service's HTTP requests answered 5xx.",
                vec![(errors("job"), "{{job}}")],
            )
            .thresholds(rising(t.error_rate_warning, t.error_rate_critical)),
            timeseries(
                "Success rate by service",
                "percentunit",
                "Share of each service's HTTP requests answered 2xx or 3xx (4xx count as unsuccessful).",
                vec![(successes, "{{job}}")],
            )
            .limits(0.0, 1.0),
            timeseries(
                "Slowest routes (p95)",
                "s",
                "The five route templates with the highest 95th percentile duration.",
                vec![(
                    format!(
                        "topk(5, {})",
                        quantile(0.95, "job, route", "http_request_duration_seconds")
                    ),
                    "{{job}} {{route}}",
                )],
            )
            .thresholds(rising(t.latency_warning_seconds, t.latency_critical_seconds)),
            timeseries(
                "Flashcard operations",
                "ops",
                "Card creates, reads, updates, deletes and reviews per second (backend).",
                vec![(
                    sum(
                        "operation",
                        &rate(&select("flashcard_operations_total", APP, "")),
                    ),
                    "{{operation}}",
                )],
            )
            .stacked(),
            timeseries(
                "Active user sessions",
                "short",
                "Login sessions neither expired nor logged out (backend).",
                vec![(sum("", &select("user_sessions_active", APP, "")), "sessions")],
            ),
        ],
    )
}

fn ocr_service(t: &AlertThresholds) -> Dashboard {
    let operations =
        |by: &str, extra: &str| sum(by, &rate(&select("ocr_operations_total", APP, extra)));
    let mean_words = |histogram: &str| {
        format!(
            "{} / {}",
            sum("", &rate(&select(&format!("{histogram}_sum"), APP, ""))),
            sum("", &rate(&select(&format!("{histogram}_count"), APP, "")))
        )
    };
    let kept_share = format!(
        "{} / {}",
        sum("", &rate(&select("ocr_filtered_words_sum", APP, ""))),
        sum("", &rate(&select("ocr_word_count_sum", APP, "")))
    );
    dashboard(
        "ocr-service",
        "Flashcards: OCR Service",
        "OCR operations, recognition confidence, file types and processing time.",
        variables(&[]),
        vec![
            stat(
                "OCR requests",
                "reqps",
                "OCR requests per second, whatever their outcome.",
                vec![(operations("", ""), "requests")],
            ),
            stat(
                "Success rate",
                "percentunit",
                "Share of OCR requests that succeeded (the rest: invalid, overloaded, timeout, error).",
                vec![(
                    format!(
                        "{} / {}",
                        operations("", r#"status="success""#),
                        operations("", "")
                    ),
                    "success",
                )],
            )
            .thresholds(falling(1.0 - t.error_rate_critical, 1.0 - t.error_rate_warning)),
            stat(
                "Active requests",
                "short",
                "OCR requests in the service now, waiting for an engine or being processed.",
                vec![(sum("", &select("ocr_active_requests", APP, "")), "active")],
            ),
            stat(
                "Median word confidence",
                "percent",
                "Median Tesseract confidence (0-100) of recognised words; low values mean poor scans.",
                vec![(quantile(0.5, "", "ocr_confidence_score"), "median")],
            )
            // Red below the OCR service's default minimum confidence, where words are dropped.
            .thresholds(falling(60.0, 80.0)),
            timeseries(
                "Operations by status",
                "reqps",
                "OCR requests per second by outcome.",
                vec![(operations("status", ""), "{{status}}")],
            )
            .stacked(),
            timeseries(
                "Operations by file type",
                "reqps",
                "OCR requests per second by uploaded file type.",
                vec![(operations("file_type", ""), "{{file_type}}")],
            )
            .stacked(),
            heatmap(
                "Confidence distribution",
                "percent",
                "How many recognised words fell in each confidence band (0-100).",
                "ocr_confidence_score",
            ),
            timeseries(
                "Processing time",
                "s",
                "Median and 95th percentile time to process a request.",
                vec![
                    (
                        quantile(0.5, "", "ocr_processing_duration_seconds"),
                        "p50",
                    ),
                    (
                        quantile(0.95, "", "ocr_processing_duration_seconds"),
                        "p95",
                    ),
                ],
            )
            .thresholds(rising(t.latency_warning_seconds, t.latency_critical_seconds)),
            timeseries(
                "Words per request",
                "short",
                "Mean words extracted per successful request, before and after confidence filtering.",
                vec![
                    (mean_words("ocr_word_count"), "extracted"),
                    (mean_words("ocr_filtered_words"), "kept"),
                ],
            ),
            timeseries(
                "Share of words kept",
                "percentunit",
                "Share of extracted words that pass the confidence filter.",
                vec![(kept_share, "kept")],
            )
            .limits(0.0, 1.0),
            heatmap(
                "Processing time distribution",
                "s",
                "How many requests took how long, over time.",
                "ocr_processing_duration_seconds",
            )
            .width(24),
        ],
    )
}

fn llm_service(t: &AlertThresholds) -> Dashboard {
    let requests = sum("", &rate(&select("llm_generation_requests_total", APP, "")));
    let errors = |by: &str| sum(by, &rate(&select("llm_generation_errors_total", APP, "")));
    let cards = sum(
        "",
        &rate(&select("llm_flashcards_generated_total", APP, "")),
    );
    let generations = sum(
        "",
        &rate(&select("llm_generation_duration_seconds_count", APP, "")),
    );
    let cards_per_generation = format!("{cards} / {generations}");
    dashboard(
        "llm-service",
        "Flashcards: LLM Service",
        "Card generation requests, duration, cards generated and errors by type.",
        variables(&[]),
        vec![
            stat(
                "Generation requests",
                "reqps",
                "Card generation requests per second.",
                vec![(requests.clone(), "requests")],
            ),
            stat(
                "Error share",
                "percentunit",
                "Generation errors per generation request.",
                vec![(
                    format!("({} or {requests} * 0) / {requests}", errors("")),
                    "errors",
                )],
            )
            .thresholds(rising(t.error_rate_warning, t.error_rate_critical)),
            stat(
                "Active generations",
                "short",
                "Generations running now.",
                vec![(sum("", &select("llm_active_generations", APP, "")), "active")],
            ),
            stat(
                "Cards per generation",
                "short",
                "Flashcards returned per generation that reached the model.",
                vec![(cards_per_generation.clone(), "cards")],
            ),
            timeseries(
                "Requests and errors",
                "reqps",
                "Generation requests and errors per second.",
                vec![(requests, "requests"), (errors(""), "errors")],
            ),
            timeseries(
                "Errors by type",
                "reqps",
                "Generation errors per second: invalid_request, overload, timeout, upstream, invalid_output.",
                vec![(errors("type"), "{{type}}")],
            )
            .stacked(),
            timeseries(
                "Generation duration",
                "s",
                "Median, 95th and 99th percentile time to answer a generation that reached the model.",
                vec![
                    (
                        quantile(0.5, "", "llm_generation_duration_seconds"),
                        "p50",
                    ),
                    (
                        quantile(0.95, "", "llm_generation_duration_seconds"),
                        "p95",
                    ),
                    (
                        quantile(0.99, "", "llm_generation_duration_seconds"),
                        "p99",
                    ),
                ],
            ),
            heatmap(
                "Generation duration distribution",
                "s",
                "How many generations took how long, over time.",
                "llm_generation_duration_seconds",
            ),
            timeseries(
                "Flashcards generated",
                "cpm",
                "Flashcards returned to clients per minute.",
                vec![(format!("{cards} * 60"), "cards")],
            ),
            timeseries(
                "Cards per generation over time",
                "short",
                "Mean flashcards per generation: how productive the model is on the texts it gets.",
                vec![(cards_per_generation, "cards")],
            ),
        ],
    )
}

fn system_resources(t: &AlertThresholds) -> Dashboard {
    let memory_share = format!(
        "max by (pod, container) ({}) / max by (pod, container) ({} > 0)",
        select("container_memory_working_set_bytes", CONTAINERS, ""),
        select("container_spec_memory_limit_bytes", CONTAINERS, "")
    );
    let per_container =
        |metric: &str| sum("pod, container", &rate(&select(metric, CONTAINERS, "")));
    let per_pod = |metric: &str| sum("pod", &rate(&select(metric, PODS, "")));
    // The memory alerts' shares, for node CPU and memory too.
    let saturation = || rising(t.memory_warning, t.memory_critical);
    dashboard(
        "system-resources",
        "Flashcards: System Resources",
        "Containers (cAdvisor), nodes (node-exporter) and Redis (redis_exporter).",
        variables(&[query_variable(
            "node",
            "Node",
            "label_values(node_load1, instance)",
        )]),
        vec![
            timeseries(
                "Container CPU",
                "short",
                "CPU cores used per container (cAdvisor).",
                vec![(
                    per_container("container_cpu_usage_seconds_total"),
                    "{{pod}} {{container}}",
                )],
            ),
            timeseries(
                "Container memory",
                "bytes",
                "Working set memory per container (cAdvisor): what the kernel cannot reclaim.",
                vec![(
                    sum(
                        "pod, container",
                        &select("container_memory_working_set_bytes", CONTAINERS, ""),
                    ),
                    "{{pod}} {{container}}",
                )],
            ),
            timeseries(
                "Memory against limit",
                "percentunit",
                "Working set as a share of each container's memory limit; the memory alerts fire at these thresholds.",
                vec![(memory_share.clone(), "{{pod}} {{container}}")],
            )
            .thresholds(saturation())
            .width(18),
            gauge(
                "Fullest container",
                "percentunit",
                "The highest working set against limit among the containers.",
                vec![(format!("max({memory_share})"), "fullest")],
            )
            .thresholds(saturation())
            .limits(0.0, 1.0),
            timeseries(
                "Pod network",
                "Bps",
                "Bytes per second received and sent per pod (cAdvisor).",
                vec![
                    (
                        per_pod("container_network_receive_bytes_total"),
                        "{{pod}} received",
                    ),
                    (
                        per_pod("container_network_transmit_bytes_total"),
                        "{{pod}} sent",
                    ),
                ],
            ),
            timeseries(
                "Container disk I/O",
                "Bps",
                "Bytes per second read and written per container (cAdvisor).",
                vec![
                    (
                        per_container("container_fs_reads_bytes_total"),
                        "{{pod}} {{container}} read",
                    ),
                    (
                        per_container("container_fs_writes_bytes_total"),
                        "{{pod}} {{container}} written",
                    ),
                ],
            ),
            timeseries(
                "Node CPU busy",
                "percentunit",
                "Share of CPU time not idle per node (node-exporter).",
                vec![(
                    format!(
                        "1 - avg by (instance) ({})",
                        rate(&select("node_cpu_seconds_total", NODES, r#"mode="idle""#))
                    ),
                    "{{instance}}",
                )],
            )
            .thresholds(saturation())
            .limits(0.0, 1.0),
            timeseries(
                "Node load",
                "short",
                "One-minute load average per node (node-exporter).",
                vec![(select("node_load1", NODES, ""), "{{instance}}")],
            ),
            timeseries(
                "Node memory used",
                "percentunit",
                "Share of node memory not available to new work (node-exporter).",
                vec![(
                    format!(
                        "1 - {} / {}",
                        select("node_memory_MemAvailable_bytes", NODES, ""),
                        select("node_memory_MemTotal_bytes", NODES, "")
                    ),
                    "{{instance}}",
                )],
            )
            .thresholds(saturation())
            .limits(0.0, 1.0),
            timeseries(
                "Node filesystem free",
                "bytes",
                "Bytes available per mounted filesystem (node-exporter), virtual filesystems left out.",
                vec![(
                    select(
                        "node_filesystem_avail_bytes",
                        NODES,
                        r#"fstype!~"tmpfs|overlay|squashfs""#,
                    ),
                    "{{instance}} {{mountpoint}}",
                )],
            ),
            timeseries(
                "Redis clients",
                "short",
                "Connected clients (redis_exporter).",
                vec![(
                    sum("instance", &select("redis_connected_clients", APP, "")),
                    "{{instance}}",
                )],
            )
            .width(6),
            timeseries(
                "Redis memory",
                "bytes",
                "Memory Redis uses (redis_exporter).",
                vec![(
                    sum("instance", &select("redis_memory_used_bytes", APP, "")),
                    "{{instance}}",
                )],
            )
            .width(6),
            timeseries(
                "Redis commands",
                "ops",
                "Commands processed per second (redis_exporter).",
                vec![(
                    sum(
                        "instance",
                        &rate(&select("redis_commands_processed_total", APP, "")),
                    ),
                    "{{instance}}",
                )],
            )
            .width(6),
            timeseries(
                "Redis keys",
                "short",
                "Keys per database (redis_exporter).",
                vec![(sum("db", &select("redis_db_keys", APP, "")), "{{db}}")],
            )
            .width(6),
        ],
    )
}

fn mlflow_integration(t: &AlertThresholds) -> Dashboard {
    // With a ServiceMonitor the target's `service` label (the Kubernetes Service) takes the place
    // of the metric's own, so `by (service)` names the service either way.
    let logged =
        |by: &str, extra: &str| sum(by, &rate(&select("mlflow_log_requests_total", APP, extra)));
    let success_share = |by: &str| {
        format!(
            "{} / {}",
            logged(by, r#"outcome="success""#),
            logged(by, "")
        )
    };
    let dropped = sum(
        "",
        &format!(
            "increase({}[$__range])",
            select("mlflow_log_requests_total", APP, r#"outcome="dropped""#)
        ),
    );
    let cards = sum(
        "",
        &rate(&select("llm_flashcards_generated_total", APP, "")),
    );
    let generations = sum(
        "",
        &rate(&select("llm_generation_duration_seconds_count", APP, "")),
    );
    let logging = falling(1.0 - t.error_rate_critical, 1.0 - t.error_rate_warning);
    dashboard(
        "mlflow-integration",
        "Flashcards: MLflow Integration",
        "What the services log to MLflow (OCR confidence and error patterns; LLM latency, card counts \
         and errors) and whether logging succeeds. Logging is asynchronous: an MLflow outage shows \
         here, never in requests.",
        variables(&[]),
        vec![
            stat(
                "Logging success rate",
                "percentunit",
                "Share of MLflow log requests that succeeded.",
                vec![(success_share(""), "success")],
            )
            .thresholds(logging.clone()),
            stat(
                "Log requests",
                "reqps",
                "Requests per second to the MLflow tracking server, whatever their outcome.",
                vec![(logged("", ""), "requests")],
            ),
            stat(
                "Dropped records",
                "short",
                "Records dropped in the time range because the bounded logging queue was full.",
                vec![(dropped, "dropped")],
            )
            .thresholds(rising(1.0, 100.0)),
            stat(
                "Queue depth",
                "short",
                "Records waiting to be sent to MLflow, over every service.",
                vec![(
                    sum("", &select("mlflow_log_queue_depth", APP, "")),
                    "queued",
                )],
            ),
            timeseries(
                "Log requests by outcome",
                "reqps",
                "MLflow log requests per second per service: success, failure (MLflow answered an error or was unreachable), dropped (queue full).",
                vec![(logged("service, outcome", ""), "{{service}} {{outcome}}")],
            )
            .stacked(),
            timeseries(
                "Success rate by service",
                "percentunit",
                "Share of each service's MLflow log requests that succeeded.",
                vec![(success_share("service"), "{{service}}")],
            )
            .thresholds(logging)
            .limits(0.0, 1.0),
            timeseries(
                "Queue depth by service",
                "short",
                "Records waiting to be sent to MLflow per service.",
                vec![(
                    sum("service", &select("mlflow_log_queue_depth", APP, "")),
                    "{{service}}",
                )],
            ),
            timeseries(
                "OCR confidence logged",
                "percent",
                "Word confidence (0-100) the OCR service records in its confidence analysis: 10th percentile and median.",
                vec![
                    (quantile(0.1, "", "ocr_confidence_score"), "p10"),
                    (quantile(0.5, "", "ocr_confidence_score"), "median"),
                ],
            ),
            timeseries(
                "LLM latency logged",
                "s",
                "Generation latency the LLM service records per run: median and 95th percentile.",
                vec![
                    (
                        quantile(0.5, "", "llm_generation_duration_seconds"),
                        "p50",
                    ),
                    (
                        quantile(0.95, "", "llm_generation_duration_seconds"),
                        "p95",
                    ),
                ],
            ),
            timeseries(
                "Cards per generation logged",
                "short",
                "Mean flashcards per generation, the card count the LLM service records per run.",
                vec![(format!("{cards} / {generations}"), "cards")],
            ),
            timeseries(
                "Error patterns logged",
                "reqps",
                "Failures the services record: OCR outcomes other than success, LLM errors by type.",
                vec![
                    (
                        sum(
                            "status",
                            &rate(&select(
                                "ocr_operations_total",
                                APP,
                                r#"status!="success""#,
                            )),
                        ),
                        "ocr {{status}}",
                    ),
                    (
                        sum(
                            "type",
                            &rate(&select("llm_generation_errors_total", APP, "")),
                        ),
                        "llm {{type}}",
                    ),
                ],
            )
            .stacked()
            .width(24),
        ],
    )
}

// Series scopes. The services' and redis_exporter's series carry the target's namespace and
// instance; cAdvisor's instance is the node, so containers are picked by namespace (without the
// pod-level and pause-container series); node-exporter's by node.
const APP: &str = r#"namespace=~"$namespace", instance=~"$instance""#;
const CONTAINERS: &str = r#"namespace=~"$namespace", container!="", container!="POD""#;
const PODS: &str = r#"namespace=~"$namespace""#;
const NODES: &str = r#"instance=~"$node""#;

/// `metric{scope, extra}`.
fn select(metric: &str, scope: &str, extra: &str) -> String {
    if extra.is_empty() {
        format!("{metric}{{{scope}}}")
    } else {
        format!("{metric}{{{scope}, {extra}}}")
    }
}

fn rate(selector: &str) -> String {
    format!("rate({selector}[$__rate_interval])")
}

/// `sum by (by) (expr)`, or a plain `sum` when `by` is empty.
fn sum(by: &str, expr: &str) -> String {
    if by.is_empty() {
        format!("sum({expr})")
    } else {
        format!("sum by ({by}) ({expr})")
    }
}

/// The `q` quantile of a service histogram's observations, per `by`.
fn quantile(q: f64, by: &str, histogram: &str) -> String {
    let by = if by.is_empty() {
        "le".to_owned()
    } else {
        format!("{by}, le")
    };
    format!(
        "histogram_quantile({q}, sum by ({by}) ({}))",
        rate(&select(&format!("{histogram}_bucket"), APP, ""))
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    TimeSeries,
    Stat,
    Gauge,
    Heatmap,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::TimeSeries => "timeseries",
            Self::Stat => "stat",
            Self::Gauge => "gauge",
            Self::Heatmap => "heatmap",
        }
    }

    /// Default width (of Grafana's 24 columns) and height.
    fn size(self) -> (u32, u32) {
        match self {
            Self::Stat => (6, 4),
            Self::Gauge => (6, 8),
            Self::TimeSeries | Self::Heatmap => (12, 8),
        }
    }
}

/// A panel before layout: what it shows, as data.
struct Panel {
    kind: Kind,
    title: &'static str,
    description: &'static str,
    /// Grafana unit id of the values.
    unit: &'static str,
    /// Query and legend of each series.
    targets: Vec<(String, &'static str)>,
    /// Threshold steps, the base first; `None` for no meaningful thresholds.
    steps: Option<Vec<Value>>,
    mappings: Vec<Value>,
    limits: Option<(f64, f64)>,
    stacked: bool,
    width: u32,
    /// A heatmap's y axis: the unit of its histogram's buckets.
    bucket_unit: Option<&'static str>,
}

fn panel(
    kind: Kind,
    title: &'static str,
    unit: &'static str,
    description: &'static str,
    targets: Vec<(String, &'static str)>,
) -> Panel {
    Panel {
        kind,
        title,
        description,
        unit,
        targets,
        steps: None,
        mappings: Vec::new(),
        limits: None,
        stacked: false,
        width: kind.size().0,
        bucket_unit: None,
    }
}

fn timeseries(
    title: &'static str,
    unit: &'static str,
    description: &'static str,
    targets: Vec<(String, &'static str)>,
) -> Panel {
    panel(Kind::TimeSeries, title, unit, description, targets)
}

fn stat(
    title: &'static str,
    unit: &'static str,
    description: &'static str,
    targets: Vec<(String, &'static str)>,
) -> Panel {
    panel(Kind::Stat, title, unit, description, targets)
}

fn gauge(
    title: &'static str,
    unit: &'static str,
    description: &'static str,
    targets: Vec<(String, &'static str)>,
) -> Panel {
    panel(Kind::Gauge, title, unit, description, targets)
}

/// Observations per bucket of `histogram` over time; the panel's unit counts observations,
/// `bucket_unit` labels the buckets.
fn heatmap(
    title: &'static str,
    bucket_unit: &'static str,
    description: &'static str,
    histogram: &str,
) -> Panel {
    let buckets = select(&format!("{histogram}_bucket"), APP, "");
    Panel {
        bucket_unit: Some(bucket_unit),
        ..panel(
            Kind::Heatmap,
            title,
            "short",
            description,
            vec![(
                sum("le", &format!("increase({buckets}[$__rate_interval])")),
                "{{le}}",
            )],
        )
    }
}

fn step(color: &str, value: Option<f64>) -> Value {
    json!({"color": color, "value": value})
}

/// Green, orange from `warning`, red from `critical`: for values that are bad when high.
fn rising(warning: f64, critical: f64) -> Vec<Value> {
    vec![
        step("green", None),
        step("orange", Some(warning)),
        step("red", Some(critical)),
    ]
}

/// Red, orange from `critical`, green from `warning`: for values that are bad when low.
fn falling(critical: f64, warning: f64) -> Vec<Value> {
    vec![
        step("red", None),
        step("orange", Some(critical)),
        step("green", Some(warning)),
    ]
}

impl Panel {
    fn thresholds(self, steps: Vec<Value>) -> Self {
        Self {
            steps: Some(steps),
            ..self
        }
    }

    /// 0 as a red "Down", 1 as a green "Up": for `up`.
    fn up_down(self) -> Self {
        Self {
            steps: Some(vec![step("red", None), step("green", Some(1.0))]),
            mappings: vec![json!({"type": "value", "options": {
                "0": {"text": "Down", "color": "red", "index": 0},
                "1": {"text": "Up", "color": "green", "index": 1},
            }})],
            ..self
        }
    }

    fn limits(self, min: f64, max: f64) -> Self {
        Self {
            limits: Some((min, max)),
            ..self
        }
    }

    fn stacked(self) -> Self {
        Self {
            stacked: true,
            ..self
        }
    }

    fn width(self, width: u32) -> Self {
        Self { width, ..self }
    }

    /// The panel's JSON model with its id and place.
    fn render(&self, id: usize, x: u32, y: u32) -> Value {
        let (_, height) = self.kind.size();
        let targets: Vec<Value> = self
            .targets
            .iter()
            .zip('A'..='Z')
            .map(|((expr, legend), ref_id)| {
                let mut target = json!({
                    "refId": ref_id.to_string(),
                    "datasource": datasource(),
                    "expr": expr,
                    "legendFormat": legend,
                    "range": true,
                    "editorMode": "code",
                });
                if self.kind == Kind::Heatmap {
                    target["format"] = json!("heatmap");
                }
                target
            })
            .collect();
        let mut defaults = json!({
            "unit": self.unit,
            "color": {"mode": if self.kind == Kind::TimeSeries { "palette-classic" } else { "thresholds" }},
            "thresholds": {
                "mode": "absolute",
                "steps": self.steps.clone().unwrap_or_else(|| vec![step("green", None)]),
            },
            "mappings": self.mappings,
        });
        if let Some((min, max)) = self.limits {
            defaults["min"] = json!(min);
            defaults["max"] = json!(max);
        }
        if self.kind == Kind::TimeSeries {
            defaults["custom"] = json!({
                "drawStyle": "line",
                "lineWidth": 1,
                "fillOpacity": if self.stacked { 30 } else { 10 },
                "showPoints": "never",
                "spanNulls": false,
                "stacking": {"mode": if self.stacked { "normal" } else { "none" }, "group": "A"},
                "thresholdsStyle": {"mode": if self.steps.is_some() { "dashed" } else { "off" }},
            });
        }
        json!({
            "id": id,
            "type": self.kind.name(),
            "title": self.title,
            "description": self.description,
            "gridPos": {"x": x, "y": y, "w": self.width, "h": height},
            "datasource": datasource(),
            "targets": targets,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": self.options(),
        })
    }

    fn options(&self) -> Value {
        let last = json!({"calcs": ["lastNotNull"], "fields": "", "values": false});
        match self.kind {
            Kind::TimeSeries => json!({
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": true},
                "tooltip": {"mode": "multi", "sort": "desc"},
            }),
            Kind::Stat => json!({
                "reduceOptions": last,
                "colorMode": "value",
                "graphMode": "area",
                "justifyMode": "auto",
                "orientation": "auto",
                "textMode": "auto",
            }),
            Kind::Gauge => json!({
                "reduceOptions": last,
                "orientation": "auto",
                "showThresholdLabels": false,
                "showThresholdMarkers": true,
            }),
            Kind::Heatmap => json!({
                "calculate": false,
                "cellGap": 1,
                "color": {"mode": "scheme", "scheme": "Oranges", "exponent": 0.5, "steps": 64},
                "yAxis": {"axisPlacement": "left", "unit": self.bucket_unit},
                "rowsFrame": {"layout": "auto"},
                "legend": {"show": true},
                "tooltip": {"mode": "single", "yHistogram": true},
            }),
        }
    }
}

/// Every panel and query reads from the dashboard's `datasource` variable.
fn datasource() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

/// Places panels left to right in rows of 24 columns, a row as tall as its tallest panel, and
/// numbers them from 1.
fn layout(panels: &[Panel]) -> Vec<Value> {
    let (mut x, mut y, mut row_height) = (0, 0, 0);
    panels
        .iter()
        .enumerate()
        .map(|(index, panel)| {
            if x + panel.width > 24 {
                (x, y, row_height) = (0, y + row_height, 0);
            }
            let rendered = panel.render(index + 1, x, y);
            x += panel.width;
            row_height = row_height.max(panel.kind.size().1);
            rendered
        })
        .collect()
}

/// A query variable over Prometheus label values, several or all selectable; "All" is `.*` so
/// that series without the label still match.
fn query_variable(name: &str, label: &str, query: &str) -> Value {
    json!({
        "name": name,
        "label": label,
        "type": "query",
        "datasource": datasource(),
        "definition": query,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "sort": 1,
        "multi": true,
        "includeAll": true,
        "allValue": ".*",
        "current": {"selected": true, "text": ["All"], "value": ["$__all"]},
    })
}

/// `datasource`, `namespace` and `instance`, then `extra`.
fn variables(extra: &[Value]) -> Vec<Value> {
    let mut variables = vec![
        json!({
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "refresh": 1,
            "current": {},
        }),
        query_variable("namespace", "Namespace", "label_values(up, namespace)"),
        query_variable(
            "instance",
            "Instance",
            r#"label_values(up{namespace=~"$namespace"}, instance)"#,
        ),
    ];
    variables.extend_from_slice(extra);
    variables
}

fn dashboard(
    file: &'static str,
    title: &'static str,
    description: &str,
    variables: Vec<Value>,
    panels: Vec<Panel>,
) -> Dashboard {
    let uid = format!("flashcards-{file}");
    let json = json!({
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["flashcards"],
        "schemaVersion": 39,
        "editable": true,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "browser",
        // The other flashcards dashboards, keeping the chosen variables and time range.
        "links": [{
            "type": "dashboards",
            "title": "Flashcards",
            "tags": ["flashcards"],
            "asDropdown": true,
            "includeVars": true,
            "keepTime": true,
        }],
        "templating": {"list": variables},
        "panels": layout(&panels),
    });
    Dashboard {
        file,
        title,
        uid,
        json,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn panels(dashboard: &Dashboard) -> &Vec<Value> {
        dashboard.json["panels"].as_array().expect("panels")
    }

    fn panel<'a>(dashboard: &'a Dashboard, title: &str) -> &'a Value {
        panels(dashboard)
            .iter()
            .find(|panel| panel["title"] == title)
            .unwrap_or_else(|| panic!("no panel {title}"))
    }

    fn steps(panel: &Value) -> Vec<Option<f64>> {
        panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|step| step["value"].as_f64())
            .collect()
    }

    /// The metric names a query selects (every selector here carries matchers).
    fn metrics(query: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut rest = query;
        while let Some(brace) = rest.find('{') {
            let name: String = rest[..brace]
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if !name.is_empty() {
                names.push(name);
            }
            rest = &rest[brace + 1..];
            rest = &rest[rest.find('}').map_or(rest.len(), |end| end + 1)..];
        }
        names
    }

    /// What the services, cAdvisor, node-exporter and redis_exporter export.
    const EXPORTED: [&str; 32] = [
        "up",
        "http_requests_total",
        "http_request_duration_seconds",
        "flashcard_operations_total",
        "user_sessions_active",
        "ocr_operations_total",
        "ocr_processing_duration_seconds",
        "ocr_confidence_score",
        "ocr_word_count",
        "ocr_filtered_words",
        "ocr_active_requests",
        "llm_generation_requests_total",
        "llm_generation_duration_seconds",
        "llm_flashcards_generated_total",
        "llm_active_generations",
        "llm_generation_errors_total",
        "mlflow_log_requests_total",
        "mlflow_log_queue_depth",
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "container_spec_memory_limit_bytes",
        "container_network_receive_bytes_total",
        "container_network_transmit_bytes_total",
        "container_fs_reads_bytes_total",
        "container_fs_writes_bytes_total",
        "node_cpu_seconds_total",
        "node_memory_MemAvailable_bytes",
        "node_memory_MemTotal_bytes",
        "node_filesystem_avail_bytes",
        "node_load1",
        "redis_connected_clients",
        "redis_memory_used_bytes",
    ];
    const EXPORTED_TOO: [&str; 2] = ["redis_commands_processed_total", "redis_db_keys"];

    fn exported(name: &str) -> bool {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        EXPORTED.contains(&family) || EXPORTED_TOO.contains(&family)
    }

    #[test]
    fn the_guides_five_dashboards() {
        let all = all();
        let summary: Vec<(&str, &str, &str)> = all
            .iter()
            .map(|d| (d.file, d.title, d.uid.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "application-overview",
                    "Flashcards: Application Overview",
                    "flashcards-application-overview"
                ),
                (
                    "ocr-service",
                    "Flashcards: OCR Service",
                    "flashcards-ocr-service"
                ),
                (
                    "llm-service",
                    "Flashcards: LLM Service",
                    "flashcards-llm-service"
                ),
                (
                    "system-resources",
                    "Flashcards: System Resources",
                    "flashcards-system-resources"
                ),
                (
                    "mlflow-integration",
                    "Flashcards: MLflow Integration",
                    "flashcards-mlflow-integration"
                ),
            ]
        );
        for dashboard in &all {
            assert_eq!(dashboard.json["uid"], dashboard.uid.as_str());
            assert_eq!(dashboard.json["title"], dashboard.title);
            assert_eq!(dashboard.json["schemaVersion"], 39);
            assert!(panels(dashboard).len() >= 8, "{}", dashboard.title);
        }
    }

    #[test]
    fn the_datasource_is_a_variable_and_namespace_and_instance_are_templated() {
        for dashboard in all() {
            let variables = dashboard.json["templating"]["list"]
                .as_array()
                .expect("variables");
            assert_eq!(variables[0]["name"], "datasource");
            assert_eq!(variables[0]["type"], "datasource");
            assert_eq!(variables[0]["query"], "prometheus");
            for (variable, name) in variables[1..3].iter().zip(["namespace", "instance"]) {
                assert_eq!(variable["name"], name);
                assert_eq!(variable["type"], "query");
                assert_eq!(variable["multi"], true);
                assert_eq!(variable["includeAll"], true);
                assert_eq!(variable["allValue"], ".*");
                assert_eq!(variable["datasource"]["uid"], "${datasource}");
                assert!(
                    variable["definition"]
                        .as_str()
                        .expect("query")
                        .starts_with("label_values(")
                );
            }
        }
    }

    #[test]
    fn every_panel_is_complete_and_in_its_own_place() {
        for dashboard in all() {
            let mut ids = BTreeSet::new();
            let mut cells = BTreeSet::new();
            for panel in panels(&dashboard) {
                let title = panel["title"].as_str().expect("title");
                assert!(ids.insert(panel["id"].as_u64().expect("id")), "{title}");
                assert!(
                    ["timeseries", "stat", "gauge", "heatmap"]
                        .contains(&panel["type"].as_str().expect("type"))
                );
                assert!(
                    !panel["description"]
                        .as_str()
                        .expect("description")
                        .is_empty()
                );
                assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
                assert!(
                    !panel["fieldConfig"]["defaults"]["unit"]
                        .as_str()
                        .expect("unit")
                        .is_empty()
                );
                let targets = panel["targets"].as_array().expect("targets");
                assert!(!targets.is_empty(), "{title}");
                for target in targets {
                    assert_eq!(target["datasource"]["uid"], "${datasource}");
                }
                let grid = &panel["gridPos"];
                let [x, y, w, h] =
                    ["x", "y", "w", "h"].map(|key| grid[key].as_u64().expect("gridPos"));
                assert!(x + w <= 24, "{title}");
                for column in x..x + w {
                    for row in y..y + h {
                        assert!(cells.insert((column, row)), "{title} overlaps");
                    }
                }
            }
        }
    }

    #[test]
    fn every_query_is_scoped_and_names_exported_metrics() {
        for dashboard in all() {
            let queries = queries(&dashboard);
            assert_eq!(
                queries.len(),
                panels(&dashboard)
                    .iter()
                    .map(|panel| panel["targets"].as_array().expect("targets").len())
                    .sum::<usize>()
            );
            for query in queries {
                assert!(
                    query.contains(r#"namespace=~"$namespace""#)
                        || query.contains(r#"instance=~"$node""#),
                    "{query}"
                );
                if !query.contains("container") && !query.contains("node_") {
                    assert!(query.contains(r#"instance=~"$instance""#), "{query}");
                }
                assert_eq!(query.matches('(').count(), query.matches(')').count());
                assert_eq!(query.matches('{').count(), query.matches('}').count());
                assert_eq!(query.matches('"').count() % 2, 0, "{query}");
                let names = metrics(&query);
                assert!(!names.is_empty(), "{query}");
                for name in names {
                    assert!(exported(&name), "{name} in {query}");
                }
            }
        }
    }

    #[test]
    fn thresholds_are_the_alerts() {
        let all = all();
        let overview = &all[0];
        assert_eq!(
            steps(panel(overview, "Error rate")),
            [None, Some(0.02), Some(0.05)]
        );
        assert_eq!(
            steps(panel(overview, "p95 response time")),
            [None, Some(2.0), Some(5.0)]
        );
        assert_eq!(
            panel(overview, "Error rate by service")["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]
                ["mode"],
            "dashed"
        );
        let system = &all[3];
        assert_eq!(
            steps(panel(system, "Memory against limit")),
            [None, Some(0.75), Some(0.9)]
        );
        assert_eq!(panel(system, "Fullest container")["type"], "gauge");
        let ocr = &all[1];
        assert_eq!(
            steps(panel(ocr, "Success rate")),
            [None, Some(0.95), Some(0.98)]
        );
    }

    #[test]
    fn heatmaps_read_histogram_buckets() {
        let ocr = &all()[1];
        let heatmap = panel(ocr, "Confidence distribution");
        assert_eq!(heatmap["targets"][0]["format"], "heatmap");
        assert_eq!(heatmap["options"]["calculate"], false);
        assert_eq!(heatmap["options"]["yAxis"]["unit"], "percent");
        assert!(
            heatmap["targets"][0]["expr"]
                .as_str()
                .expect("expr")
                .starts_with("sum by (le) (increase(ocr_confidence_score_bucket{")
        );
    }

    #[test]
    fn mlflow_panels_read_the_logging_metrics() {
        let mlflow = &all()[4];
        let queries = queries(mlflow).join("\n");
        assert!(queries.contains(r#"mlflow_log_requests_total{namespace=~"$namespace", instance=~"$instance", outcome="success"}"#));
        assert!(queries.contains(r#"outcome="dropped""#));
        assert!(queries.contains("sum by (service) (mlflow_log_queue_depth{"));
    }
}
