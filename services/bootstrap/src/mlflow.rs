//! Experiment logging to an MLflow tracking server over its REST API (2.0), one MLflow run per
//! logged request, in the service's own experiment (created if missing).
//!
//! Asynchronous and bounded, so that MLflow can never fail or slow a request: handlers hand a
//! [`RunRecord`] to [`MlflowLogger::log`], which only `try_send`s it into a bounded queue (a full
//! queue drops the record); one background task sends the records one at a time, each HTTP call
//! with a short timeout and no retries. What happens shows in `mlflow_log_requests_total{service,
//! outcome}` (`success`, `failure`, `dropped`; one per record) and `mlflow_log_queue_depth{service}`,
//! and in one log line when logging starts failing and one when it recovers, never one per record.
//! Without a URL nothing is started or registered and [`MlflowLogger::log`] does not even build the
//! record.

use std::{
    borrow::Cow,
    fmt,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::{
    sync::{
        mpsc::{self, error::TrySendError},
        oneshot,
    },
    task::JoinHandle,
};

use crate::{
    config::MlflowArgs,
    http_client::{self, describe},
};

/// MLflow's limits for the values of params and tags (the lower of the 2.x and 3.x ones).
const MAX_PARAM_CHARS: usize = 6000;
const MAX_TAG_CHARS: usize = 5000;

/// Where and how to log; built from the common flags by [`MlflowConfig::from_args`].
#[derive(Clone)]
pub struct MlflowConfig {
    /// The tracking server's root, e.g. `http://mlflow:5000`; may carry `user:password@`, which
    /// is sent as basic auth and never logged.
    pub url: String,
    pub experiment: String,
    /// The service's name, e.g. `flashcards-ocr`: the `service` label of the logging metrics and
    /// every run's `mlflow.source.name` tag.
    pub service: &'static str,
    /// Records that may wait to be sent; more are dropped.
    pub queue_capacity: usize,
    /// Per HTTP call to MLflow.
    pub timeout: Duration,
}

impl MlflowConfig {
    /// `None` when `--mlflow-url` is not given: logging is off. The experiment is named after the
    /// service unless `--mlflow-experiment` names another.
    pub fn from_args(args: &MlflowArgs, service: &'static str) -> Option<Self> {
        let url = args
            .mlflow_url
            .as_ref()
            .filter(|url| !url.trim().is_empty())?;
        Some(Self {
            url: url.trim().to_owned(),
            experiment: args
                .mlflow_experiment
                .clone()
                .unwrap_or_else(|| service.to_owned()),
            service,
            queue_capacity: args.mlflow_queue.max(1),
            timeout: Duration::from_secs(args.mlflow_timeout_secs.max(1)),
        })
    }
}

/// Written by hand so that credentials in the URL never reach a log through `{:?}`.
impl fmt::Debug for MlflowConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MlflowConfig")
            .field("url", &redact(&self.url))
            .field("experiment", &self.experiment)
            .field("service", &self.service)
            .field("queue_capacity", &self.queue_capacity)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MlflowError {
    #[error("--mlflow-url {url:?} is not an http:// URL (https is not built in)")]
    InvalidUrl { url: String },
    #[error("{call}: {detail}")]
    Transport { call: &'static str, detail: String },
    #[error("{call} answered {status}: {error_code} {message}")]
    Api {
        call: &'static str,
        status: StatusCode,
        error_code: String,
        message: String,
    },
    #[error("experiment {0:?} is deleted; restore it or name another with --mlflow-experiment")]
    ExperimentDeleted(String),
}

/// How a logged run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Finished,
    Failed,
}

impl RunStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
        }
    }
}

/// One request's run: what it was asked (params), what it measured (metrics, optionally per step,
/// e.g. per page) and what happened (tags).
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub run_name: &'static str,
    pub start: SystemTime,
    pub end: SystemTime,
    pub status: RunStatus,
    pub params: Vec<(Cow<'static, str>, String)>,
    pub metrics: Vec<MetricValue>,
    pub tags: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricValue {
    /// A fixed name, or one made at run time (a report's per-subject figures).
    pub key: Cow<'static, str>,
    pub value: f64,
    pub step: u64,
}

impl RunRecord {
    /// A finished run that ends now and took `elapsed`.
    pub fn finished(run_name: &'static str, elapsed: Duration) -> Self {
        let end = SystemTime::now();
        Self {
            run_name,
            start: end.checked_sub(elapsed).unwrap_or(end),
            end,
            status: RunStatus::Finished,
            params: Vec::new(),
            metrics: Vec::new(),
            tags: Vec::new(),
        }
    }

    #[must_use]
    pub fn failed(mut self) -> Self {
        self.status = RunStatus::Failed;
        self
    }

    #[must_use]
    pub fn param(mut self, key: impl Into<Cow<'static, str>>, value: impl ToString) -> Self {
        self.params.push((key.into(), value.to_string()));
        self
    }

    #[must_use]
    pub fn metric(self, key: impl Into<Cow<'static, str>>, value: f64) -> Self {
        self.metric_at(key, value, 0)
    }

    #[must_use]
    pub fn metric_at(mut self, key: impl Into<Cow<'static, str>>, value: f64, step: u64) -> Self {
        self.metrics.push(MetricValue {
            key: key.into(),
            value,
            step,
        });
        self
    }

    #[must_use]
    pub fn tag(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.tags.push((key, value.into()));
        self
    }

    /// The first value logged for metric `key` (at any step).
    pub fn metric_value(&self, key: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|metric| metric.key == key)
            .map(|metric| metric.value)
    }

    pub fn param_value(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    pub fn tag_value(&self, key: &str) -> Option<&str> {
        find(&self.tags, key)
    }
}

fn find<'a>(entries: &'a [(&'static str, String)], key: &str) -> Option<&'a str> {
    entries
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, value)| value.as_str())
}

/// The handle handlers log through; cheap to clone. [`MlflowLogger::disabled`] (the default)
/// does nothing at all.
#[derive(Clone, Default)]
pub struct MlflowLogger(Option<Arc<Shared>>);

struct Shared {
    queue: mpsc::Sender<RunRecord>,
    metrics: LogMetrics,
    /// Set while records are being dropped, so that only the first drop logs a warning; the
    /// worker clears it once the queue is empty.
    dropping: Arc<AtomicBool>,
    capacity: usize,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl MlflowLogger {
    pub fn disabled() -> Self {
        Self(None)
    }

    /// Registers the logging metrics and starts the background task (call inside a Tokio
    /// runtime). `None` gives a disabled logger and registers nothing.
    pub fn start(
        config: Option<MlflowConfig>,
        registry: &mut Registry,
    ) -> Result<Self, MlflowError> {
        let Some(config) = config else {
            return Ok(Self::disabled());
        };
        let base = tracking_base(&config.url)?;
        let metrics = LogMetrics::register(registry, config.service);
        let client = Client::new(base, &config);
        let (queue, records) = mpsc::channel(config.queue_capacity.max(1));
        let (stop, stopped) = oneshot::channel();
        tracing::info!(
            mlflow = %redact(&config.url),
            experiment = %config.experiment,
            "logging runs to MLflow"
        );
        let dropping = Arc::new(AtomicBool::new(false));
        let worker = tokio::spawn(drain(
            client,
            records,
            stopped,
            metrics.clone(),
            dropping.clone(),
        ));
        Ok(Self(Some(Arc::new(Shared {
            queue,
            metrics,
            dropping,
            capacity: config.queue_capacity,
            stop: Mutex::new(Some(stop)),
            worker: Mutex::new(Some(worker)),
        }))))
    }

    /// Queues the record that `record` builds, without waiting; when logging is off `record` is
    /// not even called, and when the queue is full the record is dropped and counted.
    pub fn log(&self, record: impl FnOnce() -> RunRecord) {
        let Some(shared) = &self.0 else {
            return;
        };
        // Counted before sending so the worker's decrement can never come first.
        shared.metrics.depth.inc();
        let Err(refused) = shared.queue.try_send(record()) else {
            return;
        };
        shared.metrics.depth.dec();
        shared.metrics.dropped.inc();
        // A closed queue (after shutdown) needs no warning; a full one does, once.
        if matches!(refused, TrySendError::Full(_))
            && !shared.dropping.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                capacity = shared.capacity,
                "MLflow logging queue is full; dropping records until it drains \
                 (counted in mlflow_log_requests_total{{outcome=\"dropped\"}})"
            );
        }
    }

    /// Sends what is queued, for at most `within`, then stops the background task; records logged
    /// after this are dropped. For graceful shutdown, once the server has stopped.
    pub async fn shutdown(&self, within: Duration) {
        let Some(shared) = &self.0 else {
            return;
        };
        if let Some(stop) = lock(&shared.stop).take() {
            let _ = stop.send(());
        }
        let Some(mut worker) = lock(&shared.worker).take() else {
            return;
        };
        if tokio::time::timeout(within, &mut worker).await.is_err() {
            worker.abort();
            tracing::warn!(
                left = shared.metrics.depth.get(),
                "MLflow did not take the queued records before shutdown; they are lost"
            );
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The background task: sends records one at a time until stopped (then sends what is queued)
/// or until every logger is gone. Logs a line when sending starts failing and when it recovers,
/// and when a queue that overflowed has drained.
async fn drain(
    mut client: Client,
    mut records: mpsc::Receiver<RunRecord>,
    mut stop: oneshot::Receiver<()>,
    metrics: LogMetrics,
    dropping: Arc<AtomicBool>,
) {
    let mut stopping = false;
    let mut failures = 0_u64;
    loop {
        let record = if stopping {
            records.recv().await
        } else {
            tokio::select! {
                record = records.recv() => record,
                _ = &mut stop => {
                    // Refuses new records, keeps the queued ones for the loop to send.
                    records.close();
                    stopping = true;
                    continue;
                }
            }
        };
        let Some(record) = record else {
            break;
        };
        metrics.depth.dec();
        match client.log(&record).await {
            Ok(_) => {
                metrics.success.inc();
                if failures > 0 {
                    tracing::info!(failures, "MLflow logging recovered");
                    failures = 0;
                }
            }
            Err(err) => {
                metrics.failure.inc();
                failures += 1;
                if failures == 1 {
                    tracing::warn!(
                        mlflow = %client.redacted,
                        error = %err,
                        "MLflow logging failed; records are counted in \
                         mlflow_log_requests_total{{outcome=\"failure\"}} until it recovers"
                    );
                }
            }
        }
        if metrics.depth.get() == 0 && dropping.swap(false, Ordering::Relaxed) {
            tracing::info!("MLflow logging queue drained; records are no longer dropped");
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    service: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ServiceLabels {
    service: &'static str,
}

#[derive(Clone)]
struct LogMetrics {
    success: Counter,
    failure: Counter,
    dropped: Counter,
    depth: Gauge,
}

impl LogMetrics {
    fn register(registry: &mut Registry, service: &'static str) -> Self {
        let requests = Family::<OutcomeLabels, Counter>::default();
        let depth = Family::<ServiceLabels, Gauge>::default();
        registry.register(
            "mlflow_log_requests",
            "Records (one MLflow run each) by outcome: success, failure (MLflow unreachable or \
             answered an error) or dropped (the logging queue was full)",
            requests.clone(),
        );
        registry.register(
            "mlflow_log_queue_depth",
            "Records waiting to be sent to MLflow",
            depth.clone(),
        );
        // Every series exists from the start, so rates and dashboards see zeros, not gaps.
        let outcome = |outcome| {
            requests
                .get_or_create(&OutcomeLabels { service, outcome })
                .clone()
        };
        Self {
            success: outcome("success"),
            failure: outcome("failure"),
            dropped: outcome("dropped"),
            depth: depth.get_or_create(&ServiceLabels { service }).clone(),
        }
    }
}

/// The REST calls, with the experiment id cached once known.
struct Client {
    http: reqwest::Client,
    /// The API root, `<url>/api/2.0/mlflow/`, credentials included (reqwest sends them as basic
    /// auth); never logged.
    api: Url,
    /// The server's URL without credentials, for log lines.
    redacted: String,
    service: &'static str,
    experiment: String,
    experiment_id: Option<String>,
}

#[derive(Deserialize)]
struct ApiErrorBody {
    #[serde(default)]
    error_code: String,
    #[serde(default)]
    message: String,
}

impl Client {
    fn new(api: Url, config: &MlflowConfig) -> Self {
        Self {
            http: http_client::client(config.timeout),
            redacted: redact(&config.url),
            service: config.service,
            api,
            experiment: config.experiment.clone(),
            experiment_id: None,
        }
    }

    /// One run: create, log params/metrics/tags, set the final status; its id. A failed step
    /// ends the attempt; the record is not retried.
    async fn log(&mut self, record: &RunRecord) -> Result<String, MlflowError> {
        let experiment_id = self.experiment_id().await?;
        let created = self
            .post(
                "runs/create",
                &create_run_body(&experiment_id, record, self.service),
            )
            .await?;
        let run_id = created
            .pointer("/run/info/run_id")
            .and_then(Value::as_str)
            .ok_or_else(|| MlflowError::Transport {
                call: "runs/create",
                detail: format!("no run id in the answer {created}"),
            })?
            .to_owned();
        self.post("runs/log-batch", &log_batch_body(&run_id, record))
            .await?;
        self.post(
            "runs/update",
            &update_run_body(&run_id, record.status, record.end),
        )
        .await?;
        Ok(run_id)
    }

    /// The experiment's id: looked up by name, created if missing. When another replica creates
    /// it first (RESOURCE_ALREADY_EXISTS), it is looked up again.
    async fn experiment_id(&mut self) -> Result<String, MlflowError> {
        if let Some(id) = &self.experiment_id {
            return Ok(id.clone());
        }
        let id = match self.find_experiment().await? {
            Some(id) => id,
            None => match self
                .post("experiments/create", &json!({"name": self.experiment}))
                .await
            {
                Ok(created) => created
                    .get("experiment_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| MlflowError::Transport {
                        call: "experiments/create",
                        detail: format!("no experiment id in the answer {created}"),
                    })?,
                Err(MlflowError::Api { error_code, .. })
                    if error_code == "RESOURCE_ALREADY_EXISTS" =>
                {
                    self.find_experiment()
                        .await?
                        .ok_or_else(|| MlflowError::Transport {
                            call: "experiments/get-by-name",
                            detail: "the experiment exists but cannot be found".to_owned(),
                        })?
                }
                Err(err) => return Err(err),
            },
        };
        self.experiment_id = Some(id.clone());
        Ok(id)
    }

    async fn find_experiment(&self) -> Result<Option<String>, MlflowError> {
        const CALL: &str = "experiments/get-by-name";
        let request = self
            .http
            .get(self.endpoint(CALL))
            .query(&[("experiment_name", &self.experiment)]);
        match self.send(CALL, request).await {
            Ok(found) => {
                if found.pointer("/experiment/lifecycle_stage") == Some(&json!("deleted")) {
                    return Err(MlflowError::ExperimentDeleted(self.experiment.clone()));
                }
                Ok(found
                    .pointer("/experiment/experiment_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned))
            }
            Err(MlflowError::Api { error_code, .. }) if error_code == "RESOURCE_DOES_NOT_EXIST" => {
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    fn endpoint(&self, call: &str) -> Url {
        // `call` is one of our constants, always a valid relative path.
        self.api.join(call).unwrap_or_else(|_| self.api.clone())
    }

    async fn post(&self, call: &'static str, body: &Value) -> Result<Value, MlflowError> {
        self.send(call, self.http.post(self.endpoint(call)).json(body))
            .await
    }

    async fn send(
        &self,
        call: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, MlflowError> {
        let transport = |err: reqwest::Error| MlflowError::Transport {
            call,
            detail: describe(&err),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let text = response.text().await.map_err(transport)?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|err| MlflowError::Transport {
                call,
                detail: format!("unreadable answer ({err})"),
            });
        }
        let body: ApiErrorBody = serde_json::from_str(&text).unwrap_or(ApiErrorBody {
            error_code: String::new(),
            message: truncate(&text, 300),
        });
        Err(MlflowError::Api {
            call,
            status,
            error_code: body.error_code,
            message: truncate(&body.message, 300),
        })
    }
}

/// Logs one run in `experiment` (created if missing) at once and waits for it, for one-off
/// commands such as reports rather than services; `source` is its `mlflow.source.name`. The run's
/// id, or why MLflow did not take it.
pub async fn log_now(
    url: &str,
    experiment: &str,
    source: &'static str,
    record: &RunRecord,
) -> Result<String, MlflowError> {
    let config = MlflowConfig {
        url: url.to_owned(),
        experiment: experiment.to_owned(),
        service: source,
        queue_capacity: 1,
        timeout: Duration::from_secs(10),
    };
    Client::new(tracking_base(url)?, &config).log(record).await
}

/// Every run of `experiment` on the tracking server at `url` (up to 1000, newest first) as MLflow's
/// REST API returns them, none when there is no such experiment: for reading back what was logged.
pub async fn search_runs(url: &str, experiment: &str) -> Result<Vec<Value>, MlflowError> {
    let config = MlflowConfig {
        url: url.to_owned(),
        experiment: experiment.to_owned(),
        service: "search",
        queue_capacity: 1,
        timeout: Duration::from_secs(10),
    };
    let client = Client::new(tracking_base(url)?, &config);
    let Some(id) = client.find_experiment().await? else {
        return Ok(Vec::new());
    };
    let found = client
        .post(
            "runs/search",
            &json!({"experiment_ids": [id], "max_results": 1000}),
        )
        .await?;
    Ok(found["runs"].as_array().cloned().unwrap_or_default())
}

/// `<url>/api/2.0/mlflow/`, for joining call names onto. Only `http://`: the services are built
/// without TLS (as for the LLM upstream), so an `https://` URL is refused at start rather than
/// failing every record.
fn tracking_base(url: &str) -> Result<Url, MlflowError> {
    let invalid = || MlflowError::InvalidUrl { url: redact(url) };
    let parsed = Url::parse(url).map_err(|_| invalid())?;
    if parsed.scheme() != "http" || parsed.cannot_be_a_base() {
        return Err(invalid());
    }
    let root = format!("{}/", parsed.as_str().trim_end_matches('/'));
    Url::parse(&root)
        .and_then(|root| root.join("api/2.0/mlflow/"))
        .map_err(|_| invalid())
}

/// The URL without `user:password@`, for logs; text that does not parse is replaced whole, as it
/// might be a secret itself.
fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) => {
            if !parsed.username().is_empty() || parsed.password().is_some() {
                // Only URLs that cannot have credentials refuse these; they have none then.
                let _ = parsed.set_username("");
                let _ = parsed.set_password(None);
            }
            parsed.to_string()
        }
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

fn millis(time: SystemTime) -> u64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// At most `max` characters, cut on a character boundary.
fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// `runs/create`: the experiment, the run's name, when it started, and the standard source tag so
/// the MLflow UI shows which service logged it.
fn create_run_body(experiment_id: &str, record: &RunRecord, source: &str) -> Value {
    json!({
        "experiment_id": experiment_id,
        "run_name": record.run_name,
        "start_time": millis(record.start),
        "tags": [{"key": "mlflow.source.name", "value": source}],
    })
}

/// `runs/log-batch`: params, metrics and tags. Non-finite metrics are left out (JSON has no NaN
/// and MLflow refuses null); over-long values are cut to MLflow's limits.
fn log_batch_body(run_id: &str, record: &RunRecord) -> Value {
    let timestamp = millis(record.end);
    let params: Vec<Value> = record
        .params
        .iter()
        .map(|(key, value)| json!({"key": key, "value": truncate(value, MAX_PARAM_CHARS)}))
        .collect();
    let metrics: Vec<Value> = record
        .metrics
        .iter()
        .filter(|metric| metric.value.is_finite())
        .map(|metric| {
            json!({"key": metric.key, "value": metric.value, "timestamp": timestamp, "step": metric.step})
        })
        .collect();
    let tags: Vec<Value> = record
        .tags
        .iter()
        .map(|(key, value)| json!({"key": key, "value": truncate(value, MAX_TAG_CHARS)}))
        .collect();
    json!({"run_id": run_id, "params": params, "metrics": metrics, "tags": tags})
}

/// `runs/update`: the final status and end time.
fn update_run_body(run_id: &str, status: RunStatus, end: SystemTime) -> Value {
    json!({"run_id": run_id, "status": status.as_str(), "end_time": millis(end)})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RunRecord {
        let mut record = RunRecord::finished("recognize", Duration::from_millis(1500))
            .param("language", "eng")
            .param("psm", 3)
            .metric("words_total", 12.0)
            .metric("confidence_mean", f64::NAN)
            .metric_at("page_confidence_mean", 91.5, 2)
            .tag("outcome", "success")
            .tag("error_detail", "é".repeat(MAX_TAG_CHARS + 10));
        record.end = UNIX_EPOCH + Duration::from_millis(1_700_000_001_500);
        record.start = UNIX_EPOCH + Duration::from_millis(1_700_000_000_000);
        record
    }

    #[test]
    fn the_log_batch_body_carries_params_metrics_and_tags() {
        let body = log_batch_body("r1", &record());
        assert_eq!(body["run_id"], "r1");
        assert_eq!(
            body["params"],
            json!([{"key": "language", "value": "eng"}, {"key": "psm", "value": "3"}])
        );
        assert_eq!(
            body["metrics"],
            json!([
                {"key": "words_total", "value": 12.0, "timestamp": 1_700_000_001_500_u64, "step": 0},
                {"key": "page_confidence_mean", "value": 91.5, "timestamp": 1_700_000_001_500_u64, "step": 2},
            ]),
            "NaN is left out"
        );
        assert_eq!(
            body["tags"][0],
            json!({"key": "outcome", "value": "success"})
        );
        let detail = body["tags"][1]["value"].as_str().expect("string");
        assert_eq!(
            detail.chars().count(),
            MAX_TAG_CHARS,
            "cut on a char boundary"
        );
    }

    #[test]
    fn create_and_update_bodies_carry_times_in_milliseconds() {
        let record = record().failed();
        assert_eq!(
            create_run_body("7", &record, "flashcards-ocr"),
            json!({"experiment_id": "7", "run_name": "recognize", "start_time": 1_700_000_000_000_u64,
                "tags": [{"key": "mlflow.source.name", "value": "flashcards-ocr"}]})
        );
        assert_eq!(
            update_run_body("r1", record.status, record.end),
            json!({"run_id": "r1", "status": "FAILED", "end_time": 1_700_000_001_500_u64})
        );
    }

    #[test]
    fn a_finished_run_spans_its_elapsed_time() {
        let record = RunRecord::finished("x", Duration::from_secs(2));
        assert_eq!(
            record.end.duration_since(record.start).expect("ordered"),
            Duration::from_secs(2)
        );
        assert_eq!(record.status, RunStatus::Finished);
    }

    #[test]
    fn credentials_never_reach_the_log() {
        assert_eq!(
            redact("https://alice:s3cret@mlflow.example:5000/prefix"),
            "https://mlflow.example:5000/prefix"
        );
        assert_eq!(redact("http://token@mlflow:5000"), "http://mlflow:5000/");
        assert_eq!(redact("http://mlflow:5000"), "http://mlflow:5000/");
        assert_eq!(redact("not a url s3cret"), "<unparsable URL>");
        let config = MlflowConfig {
            url: "http://alice:s3cret@mlflow:5000".to_owned(),
            experiment: "e".to_owned(),
            service: "ocr",
            queue_capacity: 1,
            timeout: Duration::from_secs(1),
        };
        assert!(!format!("{config:?}").contains("s3cret"));
        let err = tracking_base("ftp://alice:s3cret@mlflow").expect_err("not http");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn the_api_root_keeps_a_path_prefix() {
        let base = |url| tracking_base(url).expect("valid").to_string();
        assert_eq!(
            base("http://mlflow:5000"),
            "http://mlflow:5000/api/2.0/mlflow/"
        );
        assert_eq!(
            base("http://example.org/mlflow/"),
            "http://example.org/mlflow/api/2.0/mlflow/"
        );
        assert!(tracking_base("https://example.org").is_err());
        assert!(tracking_base("mlflow:5000").is_err());
        assert!(tracking_base("").is_err());
    }

    #[test]
    fn logging_is_off_without_a_url() {
        let logger = MlflowLogger::start(None, &mut Registry::default()).expect("disabled");
        logger.log(|| unreachable!("a disabled logger builds no record"));
    }
}
