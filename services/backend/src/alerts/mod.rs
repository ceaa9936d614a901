//! Alerts of the stack, as Alertmanager reports them: `POST /alerts` is its webhook receiver, and
//! `GET /api/alerts` shows what was received to the stack's administrators. One row per alert
//! (Alertmanager's fingerprint of its labels), so re-sent notifications change nothing but the
//! receive time and count.

pub mod webhook;

use std::{cmp::Ordering, collections::BTreeMap};

use axum::{
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode},
};
use flashcards_bootstrap::{
    ApiError,
    error::ErrorBody,
    extract::{Json, Query},
};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    auth::Admin,
    db::{QueryResultExt, fetch_json_rows},
    pagination::{DEFAULT_LIMIT, MAX_LIMIT, Page, check_limit},
    timestamp::rfc3339,
};
use webhook::{Notification, ReceivedAlert};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(receive_notification))
        .routes(routes!(list_alerts))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }

    fn from_stored(text: &str) -> Result<Self, ApiError> {
        match text {
            "firing" => Ok(Self::Firing),
            "resolved" => Ok(Self::Resolved),
            other => Err(ApiError::internal(
                "reading alert",
                format!("status {other:?}"),
            )),
        }
    }
}

/// Which firing of an alert a notification is about: Prometheus gives each firing its own start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Episode {
    pub status: AlertStatus,
    pub starts_at: i64,
}

/// What a notification does to an alert already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Take its status, times, labels and annotations.
    Update,
    /// Only count it as received: it is stale.
    CountOnly,
}

/// A later start is a new firing and always wins; an earlier one is a late re-send. Within one
/// firing, resolved is final: a firing notification that arrives after the resolved one (from a
/// second Alertmanager replica, or a retry) must not revive it, as nothing would resolve it again.
pub fn transition(stored: Episode, received: Episode) -> Transition {
    match received.starts_at.cmp(&stored.starts_at) {
        Ordering::Greater => Transition::Update,
        Ordering::Less => Transition::CountOnly,
        Ordering::Equal
            if stored.status == AlertStatus::Resolved && received.status == AlertStatus::Firing =>
        {
            Transition::CountOnly
        }
        Ordering::Equal => Transition::Update,
    }
}

#[utoipa::path(post, path = "/alerts", tag = "alerts", request_body = Notification,
    description = "Alertmanager's webhook receiver (payload version 4). With \
        `ALERTS_WEBHOOK_TOKEN` set it requires `Authorization: Bearer <token>`. Alerts are stored \
        by fingerprint, so a re-sent notification is harmless.",
    responses((status = 204, description = "stored"),
              (status = 400, body = ErrorBody,
               description = "not a valid Alertmanager notification; nothing stored"),
              (status = 401, body = ErrorBody, description = "missing or wrong bearer token"),
              (status = 413, body = ErrorBody)))]
async fn receive_notification(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    if !state.alerts_token.admits(&headers) {
        tracing::warn!("alert notification refused: missing or wrong bearer token");
        return Err(ApiError::Unauthorized(
            "send `Authorization: Bearer <ALERTS_WEBHOOK_TOKEN>`".to_owned(),
        ));
    }
    // Read as bytes so that every malformed payload, bad JSON or wrong shape, is the same 400.
    let notification = webhook::parse(&body?).map_err(|err| {
        // Alertmanager does not retry a 4xx: this line is where the lost notification shows.
        tracing::warn!(%err, "alert notification refused");
        ApiError::BadRequest(err.to_string())
    })?;
    store(&state, &notification.alerts).await?;
    for alert in &notification.alerts {
        state.metrics.alert_received(alert.status);
    }
    tracing::info!(
        receiver = %notification.receiver,
        status = notification.status.as_str(),
        alerts = notification.alerts.len(),
        "alert notification stored"
    );
    if notification.truncated_alerts > 0 {
        tracing::warn!(
            left_out = notification.truncated_alerts,
            "Alertmanager left alerts out of the notification (its max_alerts)"
        );
    }
    Ok(StatusCode::NO_CONTENT)
}

fn to_json(pairs: &BTreeMap<String, String>) -> Result<String, ApiError> {
    serde_json::to_string(pairs).map_err(|err| ApiError::internal("encoding alert", err))
}

/// Stores a notification's alerts in one transaction: all or none.
async fn store(state: &AppState, alerts: &[ReceivedAlert]) -> Result<(), ApiError> {
    let now = state.clock.now_ms();
    let lock = state.db.engine.lock_rows();
    // One order for every notification, so two that share alerts cannot deadlock on PostgreSQL.
    let mut alerts: Vec<&ReceivedAlert> = alerts.iter().collect();
    alerts.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
    let mut tx = state.db.begin_write().await.db("starting transaction")?;
    for alert in alerts {
        let labels = to_json(&alert.labels)?;
        let annotations = to_json(&alert.annotations)?;
        let bind = |sql| {
            sqlx::query(sql)
                .bind(&alert.fingerprint)
                .bind(&alert.alertname)
                .bind(alert.severity.as_deref())
                .bind(alert.status.as_str())
                .bind(&labels)
                .bind(&annotations)
                .bind(alert.starts_at)
                .bind(alert.ends_at)
                .bind(&alert.generator_url)
                .bind(now)
        };
        let inserted = bind(
            "INSERT INTO alerts (fingerprint, alertname, severity, status, labels, \
             annotations, starts_at, ends_at, generator_url, first_received_at, \
             last_received_at, notifications) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, 1) \
             ON CONFLICT (fingerprint) DO NOTHING",
        )
        .execute(&mut *tx)
        .await
        .db("storing alert")?;
        if inserted.rows_affected() == 1 {
            continue;
        }
        let row = sqlx::query(&format!(
            "SELECT status, starts_at FROM alerts WHERE fingerprint = $1{lock}"
        ))
        .bind(&alert.fingerprint)
        .fetch_one(&mut *tx)
        .await
        .db("loading alert")?;
        let stored = Episode {
            status: AlertStatus::from_stored(&row.try_get::<String, _>(0).db("reading alert")?)?,
            starts_at: row.try_get(1).db("reading alert")?,
        };
        let received = Episode {
            status: alert.status,
            starts_at: alert.starts_at,
        };
        let update = match transition(stored, received) {
            Transition::Update => bind(
                "UPDATE alerts SET alertname = $2, severity = $3, status = $4, labels = $5, \
                 annotations = $6, starts_at = $7, ends_at = $8, generator_url = $9, \
                 last_received_at = $10, notifications = notifications + 1 WHERE fingerprint = $1",
            ),
            Transition::CountOnly => sqlx::query(
                "UPDATE alerts SET last_received_at = $2, notifications = notifications + 1 \
                 WHERE fingerprint = $1",
            )
            .bind(&alert.fingerprint)
            .bind(now),
        };
        update.execute(&mut *tx).await.db("updating alert")?;
    }
    tx.commit().await.db("committing alerts")
}

/// An alert as the last notification that mattered described it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    /// Alertmanager's fingerprint of the labels: the alert's identity.
    pub fingerprint: String,
    pub alertname: String,
    /// The `severity` label, if any.
    pub severity: Option<String>,
    pub status: AlertStatus,
    /// The conventional annotations, also present in `annotations`.
    pub summary: Option<String>,
    pub description: Option<String>,
    pub runbook_url: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// When this firing started (a new firing of the same alert moves it).
    pub starts_at: String,
    /// When it resolved; absent while it fires.
    pub ends_at: Option<String>,
    /// The Prometheus expression that fires it.
    pub generator_url: String,
    pub first_received_at: String,
    pub last_received_at: String,
    /// How many notifications carried this alert.
    pub notifications: i64,
}

const ALERT_COLUMNS: [&str; 12] = [
    "fingerprint",
    "alertname",
    "severity",
    "status",
    "labels",
    "annotations",
    "starts_at",
    "ends_at",
    "generator_url",
    "first_received_at",
    "last_received_at",
    "notifications",
];

#[derive(Deserialize)]
struct AlertRow {
    fingerprint: String,
    alertname: String,
    severity: Option<String>,
    status: AlertStatus,
    labels: String,
    annotations: String,
    starts_at: i64,
    ends_at: Option<i64>,
    generator_url: String,
    first_received_at: i64,
    last_received_at: i64,
    notifications: i64,
}

impl AlertRow {
    /// Where the next page starts: the alerts after this one, newest first.
    fn cursor(&self) -> String {
        format!("{}_{}", self.starts_at, self.fingerprint)
    }

    fn into_alert(self) -> Result<Alert, ApiError> {
        let parse = |json: &str| -> Result<BTreeMap<String, String>, ApiError> {
            serde_json::from_str(json).map_err(|err| ApiError::internal("reading alert", err))
        };
        let annotations = parse(&self.annotations)?;
        Ok(Alert {
            summary: annotations.get("summary").cloned(),
            description: annotations.get("description").cloned(),
            runbook_url: annotations.get("runbook_url").cloned(),
            labels: parse(&self.labels)?,
            annotations,
            fingerprint: self.fingerprint,
            alertname: self.alertname,
            severity: self.severity,
            status: self.status,
            starts_at: rfc3339(self.starts_at),
            ends_at: self.ends_at.map(rfc3339),
            generator_url: self.generator_url,
            first_received_at: rfc3339(self.first_received_at),
            last_received_at: rfc3339(self.last_received_at),
            notifications: self.notifications,
        })
    }
}

/// A page cursor: the start time and fingerprint of the last alert of the previous page.
fn parse_cursor(cursor: &str) -> Result<(i64, &str), ApiError> {
    cursor
        .split_once('_')
        .and_then(|(ms, fingerprint)| Some((ms.parse().ok()?, fingerprint)))
        .ok_or_else(|| ApiError::invalid("after", "must be the `next` value of a previous page"))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// Only alerts with this status.
    pub status: Option<AlertStatus>,
    /// Items per page (1–200, default 50).
    pub limit: Option<u32>,
    /// The `next` value of the previous page.
    pub after: Option<String>,
}

#[utoipa::path(get, path = "/api/alerts", tag = "alerts", params(AlertQuery),
    description = "Alerts received from Alertmanager, the latest to start first; for the accounts \
        named in `ADMIN_EMAILS` only.",
    responses((status = 200, body = Page<Alert>), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody, description = "not an administrator")))]
async fn list_alerts(
    State(state): State<AppState>,
    _admin: Admin,
    Query(query): Query<AlertQuery>,
) -> Result<Json<Page<Alert>>, ApiError> {
    let limit = check_limit(query.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    // The first page continues "after" a start no alert can have.
    let (after_ms, after_fingerprint) = match &query.after {
        Some(cursor) => parse_cursor(cursor)?,
        None => (i64::MAX, ""),
    };
    let subquery = format!(
        "SELECT {} FROM alerts \
         WHERE (starts_at < $1 OR (starts_at = $1 AND fingerprint < $2)) \
         AND ($3 = '' OR status = $3) \
         ORDER BY starts_at DESC, fingerprint DESC LIMIT $4",
        ALERT_COLUMNS.join(", ")
    );
    let sql = state.db.engine.json_rows(
        &subquery,
        &ALERT_COLUMNS,
        "starts_at DESC, fingerprint DESC",
    );
    let query = sqlx::query_scalar(&sql)
        .bind(after_ms)
        .bind(after_fingerprint)
        .bind(query.status.map_or("", AlertStatus::as_str))
        .bind(i64::from(limit) + 1);
    let mut rows: Vec<AlertRow> = fetch_json_rows(query, &state.db.read, "listing alerts").await?;
    let next = (rows.len() > limit as usize)
        .then(|| {
            rows.truncate(limit as usize);
            rows.last().map(AlertRow::cursor)
        })
        .flatten();
    let items = rows
        .into_iter()
        .map(AlertRow::into_alert)
        .collect::<Result<_, _>>()?;
    Ok(Json(Page { items, next }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_000_000;

    fn episode(status: AlertStatus, starts_at: i64) -> Episode {
        Episode { status, starts_at }
    }

    #[test]
    fn within_one_firing_resolved_is_final() {
        use AlertStatus::{Firing, Resolved};
        let cases = [
            (Firing, Firing, Transition::Update),
            (Firing, Resolved, Transition::Update),
            (Resolved, Resolved, Transition::Update),
            (Resolved, Firing, Transition::CountOnly),
        ];
        for (stored, received, expected) in cases {
            assert_eq!(
                transition(episode(stored, T), episode(received, T)),
                expected,
                "{stored:?} then {received:?}"
            );
        }
    }

    #[test]
    fn a_later_start_is_a_new_firing_and_an_earlier_one_is_stale() {
        use AlertStatus::{Firing, Resolved};
        assert_eq!(
            transition(episode(Resolved, T), episode(Firing, T + 1)),
            Transition::Update
        );
        assert_eq!(
            transition(episode(Firing, T), episode(Resolved, T - 1)),
            Transition::CountOnly
        );
    }

    #[test]
    fn cursors_round_trip_even_before_1970() {
        for (ms, fingerprint) in [(1_772_355_600_123, "a1b2c3d4e5f60718"), (-5, "ff")] {
            let cursor = format!("{ms}_{fingerprint}");
            assert_eq!(parse_cursor(&cursor).ok(), Some((ms, fingerprint)));
        }
        for bad in ["", "abc", "12", "x_ab"] {
            assert!(parse_cursor(bad).is_err(), "{bad}");
        }
    }
}
