//! Alertmanager's webhook notification (payload version 4) and the checks it must pass before
//! anything is stored, and the shared secret that may guard the webhook.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, header};
use flashcards_bootstrap::extract::json_from_bytes;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use utoipa::ToSchema;

use super::AlertStatus;

/// The only payload version Alertmanager has sent since 0.x; another one would mean another shape.
pub const VERSION: &str = "4";
/// More alerts than this in one notification are refused: the bound on one request's database
/// work. Alertmanager's `max_alerts` in the webhook_config keeps its groups under it.
pub const MAX_ALERTS: usize = 1000;
/// Labels, and annotations, per alert.
pub const MAX_PAIRS: usize = 64;
pub const MAX_NAME_CHARS: usize = 256;
pub const MAX_LABEL_VALUE_CHARS: usize = 2048;
/// Annotations carry prose (descriptions rendered from templates), so they may be longer.
pub const MAX_ANNOTATION_VALUE_CHARS: usize = 16_384;
pub const MAX_URL_CHARS: usize = 4096;
/// Alertmanager's fingerprints are 16 hex digits; this leaves room for other senders' hashes.
pub const MAX_FINGERPRINT_CHARS: usize = 64;

/// Go's zero `time.Time`, which Alertmanager sends as `endsAt` of alerts still firing.
const GO_ZERO_TIME_UNIX_SECS: i64 = -62_135_596_800;

/// A label set or annotations: names to values, all strings. Alertmanager may send `null` for an
/// empty one (a nil Go map).
pub type Pairs = BTreeMap<String, String>;

/// What Alertmanager POSTs to a webhook receiver
/// (<https://prometheus.io/docs/alerting/latest/configuration/#webhook_config>). Fields this
/// backend does not store are still type-checked; unknown fields are ignored, as newer
/// Alertmanagers add some.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Always "4".
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    /// How many alerts Alertmanager left out because of `max_alerts`.
    #[serde(default)]
    pub truncated_alerts: u64,
    /// `firing` or `resolved`: the group's status.
    pub status: String,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub group_labels: Option<Pairs>,
    #[serde(default)]
    pub common_labels: Option<Pairs>,
    #[serde(default)]
    pub common_annotations: Option<Pairs>,
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<NotifiedAlert>,
}

/// One alert of a notification.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotifiedAlert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Must include `alertname`; `severity` is stored apart when present.
    #[serde(default)]
    pub labels: Option<Pairs>,
    /// Conventionally `summary`, `description`, `runbook_url`.
    #[serde(default)]
    pub annotations: Option<Pairs>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339; `0001-01-01T00:00:00Z` (unset) while the alert fires.
    #[serde(default)]
    pub ends_at: String,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    /// Alertmanager's hash of the labels: the same alert has the same fingerprint in every
    /// notification.
    pub fingerprint: String,
}

/// A notification that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedNotification {
    pub status: AlertStatus,
    pub receiver: String,
    /// Alerts of the group that Alertmanager left out (its `max_alerts`).
    pub truncated_alerts: u64,
    pub alerts: Vec<ReceivedAlert>,
}

/// One alert as it is stored; times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedAlert {
    pub fingerprint: String,
    pub status: AlertStatus,
    pub alertname: String,
    pub severity: Option<String>,
    pub labels: Pairs,
    pub annotations: Pairs,
    pub starts_at: i64,
    pub ends_at: Option<i64>,
    pub generator_url: String,
}

/// Why a notification was refused; the text names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidNotification(String);

fn invalid(path: &str, problem: impl std::fmt::Display) -> InvalidNotification {
    InvalidNotification(format!("{path}: {problem}"))
}

/// Parses and checks a webhook body.
pub fn parse(body: &[u8]) -> Result<CheckedNotification, InvalidNotification> {
    // The `Json` extractor's parser, so a wrongly typed field is named.
    let notification = json_from_bytes::<Notification>(body).map_err(|err| {
        InvalidNotification(format!("not an Alertmanager webhook notification: {err}"))
    })?;
    check(notification)
}

/// Checks a decoded notification: version, statuses, sizes, times and text.
fn check(notification: Notification) -> Result<CheckedNotification, InvalidNotification> {
    if notification.version != VERSION {
        return Err(invalid(
            "version",
            format!(
                "must be \"{VERSION}\" (Alertmanager's webhook payload version), not {:?}",
                notification.version
            ),
        ));
    }
    let status = status(&notification.status).ok_or_else(|| invalid("status", STATUS_PROBLEM))?;
    if notification.alerts.len() > MAX_ALERTS {
        return Err(invalid(
            "alerts",
            format!(
                "at most {MAX_ALERTS} alerts per notification, not {} (set `max_alerts` in \
                 Alertmanager's webhook_config)",
                notification.alerts.len()
            ),
        ));
    }
    let alerts = notification
        .alerts
        .into_iter()
        .enumerate()
        .map(|(index, alert)| check_alert(&format!("alerts[{index}]"), alert))
        .collect::<Result<_, _>>()?;
    Ok(CheckedNotification {
        status,
        receiver: notification.receiver,
        truncated_alerts: notification.truncated_alerts,
        alerts,
    })
}

const STATUS_PROBLEM: &str = "must be \"firing\" or \"resolved\"";

fn status(text: &str) -> Option<AlertStatus> {
    match text {
        "firing" => Some(AlertStatus::Firing),
        "resolved" => Some(AlertStatus::Resolved),
        _ => None,
    }
}

fn check_alert(path: &str, alert: NotifiedAlert) -> Result<ReceivedAlert, InvalidNotification> {
    let at = |field: &str| format!("{path}.{field}");
    let fingerprint = alert.fingerprint;
    let fingerprint_ok = (1..=MAX_FINGERPRINT_CHARS).contains(&fingerprint.len())
        && fingerprint.bytes().all(|b| b.is_ascii_alphanumeric());
    if !fingerprint_ok {
        return Err(invalid(
            &at("fingerprint"),
            format!("must be 1 to {MAX_FINGERPRINT_CHARS} ASCII letters and digits"),
        ));
    }
    let status = status(&alert.status).ok_or_else(|| invalid(&at("status"), STATUS_PROBLEM))?;
    let labels = check_pairs(&at("labels"), alert.labels, MAX_LABEL_VALUE_CHARS)?;
    let annotations = check_pairs(
        &at("annotations"),
        alert.annotations,
        MAX_ANNOTATION_VALUE_CHARS,
    )?;
    let alertname = labels
        .get("alertname")
        .filter(|name| !name.is_empty())
        .ok_or_else(|| invalid(&at("labels.alertname"), "is required"))?
        .clone();
    let starts_at = time_ms(&alert.starts_at)
        .map_err(|problem| invalid(&at("startsAt"), problem))?
        .ok_or_else(|| invalid(&at("startsAt"), "must be set"))?;
    let ends_at = if alert.ends_at.is_empty() {
        None
    } else {
        time_ms(&alert.ends_at).map_err(|problem| invalid(&at("endsAt"), problem))?
    };
    check_text(&at("generatorURL"), &alert.generator_url, MAX_URL_CHARS)?;
    Ok(ReceivedAlert {
        fingerprint,
        status,
        alertname,
        severity: labels.get("severity").cloned(),
        labels,
        annotations,
        starts_at,
        ends_at,
        generator_url: alert.generator_url,
    })
}

fn check_pairs(
    path: &str,
    pairs: Option<Pairs>,
    max_value_chars: usize,
) -> Result<Pairs, InvalidNotification> {
    let pairs = pairs.unwrap_or_default();
    if pairs.len() > MAX_PAIRS {
        return Err(invalid(path, format!("at most {MAX_PAIRS} entries")));
    }
    for (name, value) in &pairs {
        if name.is_empty() {
            return Err(invalid(path, "names must not be empty"));
        }
        check_text(path, name, MAX_NAME_CHARS)?;
        check_text(&format!("{path}.{name}"), value, max_value_chars)?;
    }
    Ok(pairs)
}

/// Bounded. (Text with NUL, which PostgreSQL refuses, never gets here: `json_from_bytes` refuses it.)
fn check_text(path: &str, text: &str, max_chars: usize) -> Result<(), InvalidNotification> {
    if text.chars().count() > max_chars {
        return Err(invalid(path, format!("at most {max_chars} characters")));
    }
    Ok(())
}

/// An RFC 3339 time in Unix milliseconds; `None` for Go's zero time, Alertmanager's "unset".
fn time_ms(text: &str) -> Result<Option<i64>, &'static str> {
    const PROBLEM: &str = "must be an RFC 3339 time";
    let time = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| PROBLEM)?;
    if time.unix_timestamp() == GO_ZERO_TIME_UNIX_SECS {
        return Ok(None);
    }
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000)
        .map(Some)
        .map_err(|_| PROBLEM)
}

/// The secret `POST /alerts` requires, if any. Only its SHA-256 is kept, so neither `Debug` nor a
/// memory dump shows it.
#[derive(Clone, Default)]
pub struct WebhookToken(Option<[u8; 32]>);

impl std::fmt::Debug for WebhookToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = if self.0.is_some() { "required" } else { "none" };
        f.debug_tuple("WebhookToken").field(&shown).finish()
    }
}

impl WebhookToken {
    /// No token: the webhook takes any caller that can reach it.
    pub fn open() -> Self {
        Self(None)
    }

    pub fn required(secret: &str) -> Self {
        Self(Some(Sha256::digest(secret.as_bytes()).into()))
    }

    pub fn is_required(&self) -> bool {
        self.0.is_some()
    }

    /// Whether the request carries `Authorization: Bearer <the token>` (or no token is required).
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.0 else {
            return true;
        };
        let Some(presented) = bearer(headers) else {
            return false;
        };
        // Comparing digests of equal length, without stopping at the first difference: how long
        // the comparison takes says nothing about the secret.
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        presented
            .iter()
            .zip(expected)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
    }
}

/// The credentials of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use axum::http::HeaderValue;
    use serde_json::{Value, json};

    fn alert(fingerprint: &str, status: &str) -> Value {
        let ends_at = if status == "resolved" {
            "2026-03-01T10:30:00Z"
        } else {
            "0001-01-01T00:00:00Z"
        };
        json!({
            "status": status,
            "labels": {"alertname": "HighErrorRate", "severity": "critical", "service": "backend"},
            "annotations": {
                "summary": "backend error rate above 5%",
                "runbook_url": "https://example.org/runbooks/HighErrorRate"
            },
            "startsAt": "2026-03-01T10:00:00.123456789+01:00",
            "endsAt": ends_at,
            "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
            "fingerprint": fingerprint
        })
    }

    fn notification(alerts: Vec<Value>) -> Value {
        json!({
            "version": "4",
            "groupKey": "{}:{alertname=\"HighErrorRate\"}",
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "flashcards",
            "groupLabels": {"alertname": "HighErrorRate"},
            "commonLabels": {"alertname": "HighErrorRate"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": alerts
        })
    }

    fn parse_value(value: &Value) -> Result<CheckedNotification, InvalidNotification> {
        parse(value.to_string().as_bytes())
    }

    fn problem(value: &Value) -> String {
        parse_value(value).unwrap_err().to_string()
    }

    #[test]
    fn a_real_notification_is_read_with_its_times() {
        let checked = parse_value(&notification(vec![
            alert("a1b2c3d4e5f60718", "firing"),
            alert("0123456789abcdef", "resolved"),
        ]))
        .unwrap();
        assert_eq!(checked.status, AlertStatus::Firing);
        assert_eq!(checked.receiver, "flashcards");
        let [firing, resolved] = checked.alerts.as_slice() else {
            panic!("two alerts");
        };
        assert_eq!(firing.alertname, "HighErrorRate");
        assert_eq!(firing.severity.as_deref(), Some("critical"));
        // 09:00:00.123 UTC; the nanoseconds below a millisecond are dropped.
        assert_eq!(firing.starts_at, 1_772_355_600_123);
        assert_eq!(firing.ends_at, None, "Go's zero time means unset");
        assert_eq!(resolved.status, AlertStatus::Resolved);
        assert_eq!(resolved.ends_at, Some(1_772_361_000_000));
        assert_eq!(
            resolved.annotations["summary"],
            "backend error rate above 5%"
        );
    }

    #[test]
    fn null_maps_are_empty_and_unknown_fields_are_ignored() {
        let mut body = notification(vec![alert("ab", "firing")]);
        body["commonAnnotations"] = Value::Null;
        body["alerts"][0]["annotations"] = Value::Null;
        body["somethingNew"] = json!(1);
        let checked = parse_value(&body).unwrap();
        assert!(checked.alerts[0].annotations.is_empty());
    }

    #[test]
    fn each_problem_names_its_field() {
        assert!(problem(&json!("not an object")).starts_with("not an Alertmanager"));
        let mut wrong_type = notification(vec![alert("ab", "firing")]);
        wrong_type["alerts"][0]["labels"] = json!({"alertname": 5});
        let detail = problem(&wrong_type);
        assert!(
            detail.starts_with(
                "not an Alertmanager webhook notification: alerts[0].labels.alertname: invalid type"
            ),
            "{detail}"
        );
        let mut wrong_version = notification(vec![]);
        wrong_version["version"] = json!("3");
        assert!(problem(&wrong_version).starts_with("version: must be \"4\""));

        let cases: [(&str, Value, &str); 8] = [
            ("fingerprint", json!(""), "alerts[0].fingerprint:"),
            ("fingerprint", json!("ab/../cd"), "alerts[0].fingerprint:"),
            ("status", json!("pending"), "alerts[0].status:"),
            ("startsAt", json!("yesterday"), "alerts[0].startsAt:"),
            (
                "startsAt",
                json!("0001-01-01T00:00:00Z"),
                "alerts[0].startsAt: must be set",
            ),
            ("endsAt", json!("2026-13-01T00:00:00Z"), "alerts[0].endsAt:"),
            (
                "labels",
                json!({"severity": "critical"}),
                "alerts[0].labels.alertname: is required",
            ),
            (
                "annotations",
                json!({"summary": "a\u{0}b"}),
                "not an Alertmanager webhook notification: alerts[0].annotations.summary: must not \
                 contain NUL",
            ),
        ];
        for (field, value, expected) in cases {
            let mut body = notification(vec![alert("ab", "firing")]);
            body["alerts"][0][field] = value;
            let problem = problem(&body);
            assert!(problem.starts_with(expected), "{field}: {problem}");
        }
    }

    #[test]
    fn missing_fields_and_non_string_labels_are_refused() {
        let mut no_fingerprint = notification(vec![alert("ab", "firing")]);
        no_fingerprint["alerts"][0]
            .as_object_mut()
            .unwrap()
            .remove("fingerprint");
        assert!(problem(&no_fingerprint).contains("missing field `fingerprint`"));
        let mut numeric = notification(vec![alert("ab", "firing")]);
        numeric["alerts"][0]["labels"]["code"] = json!(500);
        assert!(problem(&numeric).contains("invalid type: integer `500`"));
        let mut bad_status = notification(vec![]);
        bad_status["status"] = json!("unknown");
        assert!(problem(&bad_status).starts_with("status:"));
    }

    #[test]
    fn sizes_are_bounded() {
        let many = (0..=MAX_ALERTS)
            .map(|i| alert(&format!("f{i}"), "firing"))
            .collect();
        assert!(problem(&notification(many)).starts_with("alerts: at most 1000"));
        let mut long = notification(vec![alert("ab", "firing")]);
        long["alerts"][0]["labels"]["instance"] = json!("x".repeat(MAX_LABEL_VALUE_CHARS + 1));
        assert!(problem(&long).starts_with("alerts[0].labels.instance: at most"));
        let mut wide = notification(vec![alert("ab", "firing")]);
        for i in 0..MAX_PAIRS {
            wide["alerts"][0]["labels"][format!("l{i}")] = json!("v");
        }
        assert!(problem(&wide).starts_with("alerts[0].labels: at most"));
        let long_fingerprint = "f".repeat(MAX_FINGERPRINT_CHARS + 1);
        assert!(
            problem(&notification(vec![alert(&long_fingerprint, "firing")]))
                .starts_with("alerts[0].fingerprint:")
        );
    }

    #[test]
    fn the_token_is_compared_whole_and_never_shown() {
        let token = WebhookToken::required("s3cret-token");
        let headers = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            headers
        };
        assert!(token.admits(&headers("Bearer s3cret-token")));
        assert!(token.admits(&headers("bearer  s3cret-token ")));
        assert!(!token.admits(&headers("Bearer s3cret")));
        assert!(!token.admits(&headers("Bearer s3cret-token2")));
        assert!(!token.admits(&headers("Basic s3cret-token")));
        assert!(!token.admits(&HeaderMap::new()));
        assert!(WebhookToken::open().admits(&HeaderMap::new()));
        assert!(!format!("{token:?}").contains("s3cret"));
    }
}
