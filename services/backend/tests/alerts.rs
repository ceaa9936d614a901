//! Alertmanager's webhook (`POST /alerts`) and the administrators' view of what it stored
//! (`GET /api/alerts`), on a SQLite file and on PostgreSQL. The fixtures are notifications that
//! Alertmanager 0.25 sent to a webhook receiver: two alerts of one group firing, then one resolved.

#![allow(clippy::unwrap_used)]

mod support;

use flashcards_backend::{
    alerts::webhook::WebhookToken,
    auth::{Admins, create_account},
    timestamp::rfc3339,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Engine, PASSWORD, T0, TestServer, User, into_parts};

const FIRING: &str = include_str!("fixtures/alertmanager-firing.json");
const RESOLVED: &str = include_str!("fixtures/alertmanager-resolved.json");
/// The fixtures' alerts: the backend's resolves, the OCR service's keeps firing.
const BACKEND: &str = "febd3c82ae34e5e0";
const OCR: &str = "b89d2f0c999c77e4";
const TOKEN: &str = "am-webhook-secret";
/// Listed with another case than the account is registered with: emails compare case-insensitively.
const ADMIN_EMAILS: [&str; 2] = ["Ops@Example.org", "root@example.org"];

macro_rules! on_both_databases {
    ($($scenario:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(super::Engine::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(super::Engine::Postgres).await;
                }
            )+
        }
    };
}

on_both_databases!(
    firing_then_resolved_is_one_resolved_row,
    re_sent_notifications_stay_one_row,
    bad_payloads_are_refused_and_store_nothing,
    the_token_is_required_when_configured,
    only_administrators_read_alerts,
);

async fn start(engine: Engine) -> TestServer {
    TestServer::start_with_state(engine, |state| state.with_admins(Admins::new(ADMIN_EMAILS))).await
}

/// The administrator, signed in; the account is made as `flashcards-backend add-user` makes it.
async fn administrator(server: &TestServer) -> User {
    create_account(&server.state.db, T0, "ops@example.org", PASSWORD.to_owned())
        .await
        .unwrap();
    server.login("ops@example.org").await
}

async fn notify(server: &TestServer, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
    notify_with(server, body, None).await
}

async fn notify_with(
    server: &TestServer,
    body: impl Into<reqwest::Body>,
    authorization: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = server
        .anonymous()
        .post(server.url("/alerts"))
        .header("content-type", "application/json")
        .header("user-agent", "Alertmanager/0.25.0")
        .body(body);
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    into_parts(request.send().await.unwrap()).await
}

async fn stored(server: &TestServer) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM alerts")
        .fetch_one(&server.state.db.read)
        .await
        .unwrap()
}

/// All alerts an administrator sees, by fingerprint.
async fn alerts(admin: &support::User, query: &str) -> Vec<Value> {
    let (status, page) = admin.get(&format!("/api/alerts{query}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().unwrap().clone()
}

fn find<'a>(alerts: &'a [Value], fingerprint: &str) -> &'a Value {
    alerts
        .iter()
        .find(|alert| alert["fingerprint"] == fingerprint)
        .unwrap_or_else(|| panic!("no alert {fingerprint} in {alerts:?}"))
}

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

async fn firing_then_resolved_is_one_resolved_row(engine: Engine) {
    let server = start(engine).await;
    let admin = administrator(&server).await;
    assert_eq!(notify(&server, FIRING).await.0, StatusCode::NO_CONTENT);
    assert_eq!(stored(&server).await, 2);
    server.state.clock.advance_ms(60_000);
    assert_eq!(notify(&server, RESOLVED).await.0, StatusCode::NO_CONTENT);
    assert_eq!(stored(&server).await, 2, "resolving updates the firing row");

    let listed = alerts(&admin, "").await;
    assert_eq!(listed.len(), 2);
    let backend = find(&listed, BACKEND);
    assert_eq!(backend["status"], "resolved");
    assert_eq!(backend["alertname"], "HighErrorRate");
    assert_eq!(backend["severity"], "critical");
    assert_eq!(backend["labels"]["service"], "backend");
    assert_eq!(backend["summary"], "backend: more than 5% of requests fail");
    assert_eq!(
        backend["runbook_url"],
        "https://github.com/example/flashcards/blob/main/monitoring/runbooks/HighErrorRate.md"
    );
    assert_eq!(
        backend["description"],
        backend["annotations"]["description"]
    );
    assert_eq!(backend["starts_at"], "2026-11-27T04:58:29.084Z");
    assert_eq!(backend["ends_at"], "2026-11-27T05:00:31.227Z");
    assert_eq!(backend["first_received_at"], rfc3339(T0));
    assert_eq!(backend["last_received_at"], rfc3339(T0 + 60_000));
    assert_eq!(backend["notifications"], 2);
    assert!(
        backend["generator_url"]
            .as_str()
            .unwrap()
            .starts_with("http://prometheus:9090/graph")
    );

    let ocr = find(&listed, OCR);
    assert_eq!(ocr["status"], "firing");
    assert_eq!(ocr["ends_at"], Value::Null);
    assert_eq!(ocr["notifications"], 2);

    let counted = |status: &'static str| {
        let server = &server;
        async move {
            server
                .metric(&format!(
                    "flashcards_alerts_received_total{{status=\"{status}\"}}"
                ))
                .await
        }
    };
    assert!((counted("firing").await - 3.0).abs() < f64::EPSILON);
    assert!((counted("resolved").await - 1.0).abs() < f64::EPSILON);
}

async fn re_sent_notifications_stay_one_row(engine: Engine) {
    let server = start(engine).await;
    let admin = administrator(&server).await;
    for _ in 0..3 {
        assert_eq!(notify(&server, FIRING).await.0, StatusCode::NO_CONTENT);
        server.state.clock.advance_ms(1_000);
    }
    assert_eq!(stored(&server).await, 2);
    let listed = alerts(&admin, "").await;
    let backend = find(&listed, BACKEND);
    assert_eq!(backend["notifications"], 3);
    assert_eq!(backend["first_received_at"], rfc3339(T0));
    assert_eq!(backend["last_received_at"], rfc3339(T0 + 2_000));

    // A firing notification arriving after the resolved one (another Alertmanager replica, a
    // retry) is counted but does not revive the alert.
    assert_eq!(notify(&server, RESOLVED).await.0, StatusCode::NO_CONTENT);
    assert_eq!(notify(&server, FIRING).await.0, StatusCode::NO_CONTENT);
    let backend = find(&alerts(&admin, "").await, BACKEND).clone();
    assert_eq!(backend["status"], "resolved");
    assert_eq!(backend["notifications"], 5);

    // The same alert firing again later starts a new firing in the same row.
    let mut again = fixture(FIRING);
    again["alerts"][0]["startsAt"] = json!("2026-11-27T06:00:00Z");
    again["alerts"][0]["annotations"]["description"] = json!("7.5% of backend requests failed.");
    assert_eq!(
        notify(&server, again.to_string()).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(stored(&server).await, 2);
    let listed = alerts(&admin, "").await;
    let backend = find(&listed, BACKEND);
    assert_eq!(backend["status"], "firing");
    assert_eq!(backend["starts_at"], "2026-11-27T06:00:00Z");
    assert_eq!(backend["ends_at"], Value::Null);
    assert_eq!(backend["description"], "7.5% of backend requests failed.");
    assert_eq!(backend["first_received_at"], rfc3339(T0));
    assert_eq!(
        listed[0]["fingerprint"], BACKEND,
        "the latest firing comes first"
    );
}

async fn bad_payloads_are_refused_and_store_nothing(engine: Engine) {
    let server = start(engine).await;
    let firing = fixture(FIRING);
    let changed = |change: &dyn Fn(&mut Value)| {
        let mut body = firing.clone();
        change(&mut body);
        body.to_string()
    };
    let too_many = changed(&|body| {
        let alert = body["alerts"][0].clone();
        body["alerts"] = (0..1001)
            .map(|i| {
                let mut alert = alert.clone();
                alert["fingerprint"] = json!(format!("{i:016x}"));
                alert
            })
            .collect();
    });
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "malformed JSON",
            r#"{"version": "4", "alerts": ["#.to_owned(),
            "not an Alertmanager",
        ),
        ("empty body", String::new(), "not an Alertmanager"),
        (
            "wrong version",
            changed(&|b| b["version"] = json!("3")),
            "version:",
        ),
        (
            "missing fingerprint",
            changed(&|b| {
                b["alerts"][1]
                    .as_object_mut()
                    .unwrap()
                    .remove("fingerprint");
            }),
            "missing field `fingerprint`",
        ),
        (
            "empty fingerprint",
            changed(&|b| b["alerts"][1]["fingerprint"] = json!("")),
            "alerts[1].fingerprint:",
        ),
        (
            "unknown alert status",
            changed(&|b| b["alerts"][1]["status"] = json!("pending")),
            "alerts[1].status:",
        ),
        (
            "unknown group status",
            changed(&|b| b["status"] = json!("silenced")),
            "status:",
        ),
        (
            "non-string label",
            changed(&|b| b["alerts"][0]["labels"]["code"] = json!(500)),
            "invalid type",
        ),
        (
            "bad time",
            changed(&|b| b["alerts"][0]["startsAt"] = json!("an hour ago")),
            "alerts[0].startsAt:",
        ),
        ("too many alerts", too_many, "alerts: at most 1000"),
    ];
    for (case, body, expected) in cases {
        let (status, answer) = notify(&server, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {answer}");
        assert_eq!(answer["error"], "bad_request", "{case}");
        let detail = answer["detail"].as_str().unwrap();
        assert!(detail.contains(expected), "{case}: {detail}");
    }
    let (status, answer) = notify(&server, vec![b' '; 2 * 1024 * 1024]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(
        stored(&server).await,
        0,
        "a notification is stored whole or not at all"
    );
    assert_eq!(
        server
            .metric("flashcards_alerts_received_total{status=\"firing\"}")
            .await,
        0.0
    );
}

async fn the_token_is_required_when_configured(engine: Engine) {
    let server = TestServer::start_with_state(engine, |state| {
        state.with_alerts_token(WebhookToken::required(TOKEN))
    })
    .await;
    for authorization in [
        None,
        Some("Bearer not-the-token"),
        Some(&*format!("Bearer {TOKEN}x")),
        Some(&*format!("Basic {TOKEN}")),
    ] {
        let (status, answer) = notify_with(&server, FIRING, authorization).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization:?}");
        assert_eq!(answer["error"], "unauthorized");
        assert!(!answer.to_string().contains(TOKEN));
    }
    assert_eq!(
        notify(&server, "not even JSON").await.0,
        StatusCode::UNAUTHORIZED,
        "callers without the token learn nothing about payloads"
    );
    assert_eq!(stored(&server).await, 0);
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        notify_with(&server, FIRING, Some(&bearer)).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(stored(&server).await, 2);
}

async fn only_administrators_read_alerts(engine: Engine) {
    let server = start(engine).await;
    assert_eq!(notify(&server, FIRING).await.0, StatusCode::NO_CONTENT);
    assert_eq!(notify(&server, RESOLVED).await.0, StatusCode::NO_CONTENT);
    let mut later = fixture(FIRING);
    later["alerts"] = json!([later["alerts"][0].clone()]);
    later["alerts"][0]["fingerprint"] = json!("0000000000000001");
    later["alerts"][0]["startsAt"] = json!("2026-11-27T07:00:00Z");
    later["alerts"][0]["labels"]["alertname"] = json!("ServiceDown");
    assert_eq!(
        notify(&server, later.to_string()).await.0,
        StatusCode::NO_CONTENT
    );

    let (status, body) = into_parts(
        server
            .anonymous()
            .get(server.url("/api/alerts"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthorized");

    let ada = server.user("ada@example.org").await;
    let (status, body) = ada.get("/api/alerts").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "forbidden");
    assert!(body["detail"].as_str().unwrap().contains("ADMIN_EMAILS"));

    // Registration refuses an administrator's email (anyone could claim it first): that account
    // is made on the command line, with what `flashcards-backend add-user` calls.
    let (status, body) = into_parts(server.register(" OPS@example.org").await).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("add-user"),
        "{body}"
    );
    let admin = administrator(&server).await;
    let all = alerts(&admin, "").await;
    let order: Vec<&str> = all
        .iter()
        .map(|alert| alert["fingerprint"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["0000000000000001", BACKEND, OCR],
        "latest start first"
    );

    let firing = alerts(&admin, "?status=firing").await;
    assert_eq!(firing.len(), 2);
    assert!(firing.iter().all(|alert| alert["status"] == "firing"));
    let resolved = alerts(&admin, "?status=resolved").await;
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0]["fingerprint"], BACKEND);

    let (status, first) = admin.get("/api/alerts?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let next = first["next"].as_str().unwrap();
    let (_, second) = admin
        .get(&format!("/api/alerts?limit=2&after={next}"))
        .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["items"][0]["fingerprint"], OCR);
    assert!(second.get("next").is_none());
    let (_, firing_page) = admin
        .get(&format!("/api/alerts?status=firing&limit=1&after={next}"))
        .await;
    assert_eq!(firing_page["items"][0]["fingerprint"], OCR);

    assert_eq!(
        admin.get("/api/alerts?status=pending").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        admin.get("/api/alerts?after=somewhere").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        admin.get("/api/alerts?limit=0").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // Without ADMIN_EMAILS nobody is an administrator.
    let unconfigured = TestServer::start(engine).await;
    let ops = unconfigured.user("ops@example.org").await;
    assert_eq!(ops.get("/api/alerts").await.0, StatusCode::FORBIDDEN);
}
