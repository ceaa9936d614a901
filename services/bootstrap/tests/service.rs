//! The shared router around a tiny demo service: what every flashcards service gets for free.

#![allow(clippy::unwrap_used)]

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use flashcards_bootstrap::{ServiceBuilder, extract::Json, health::Readiness};
use serde::Deserialize;
use serde_json::Value;
use tower::ServiceExt;
use utoipa_axum::{router::OpenApiRouter, routes};

#[derive(Deserialize, utoipa::ToSchema)]
struct Echo {
    text: String,
}

#[utoipa::path(post, path = "/echo/{id}", params(("id" = String, Path)), request_body = Echo,
    responses((status = 200, body = String)))]
async fn echo(Json(input): Json<Echo>) -> String {
    input.text
}

#[utoipa::path(get, path = "/boom", responses((status = 500)))]
async fn boom() -> &'static str {
    panic!("a bug in a handler")
}

fn demo(readiness: Readiness) -> axum::Router {
    ServiceBuilder::new("demo", "1.2.3")
        .body_limit_bytes(64)
        .readiness(readiness)
        .build(
            OpenApiRouter::new()
                .routes(routes!(echo))
                .routes(routes!(boom)),
        )
}

async fn call(app: &axum::Router, request: Request<Body>) -> (StatusCode, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn post(path: &str, body: &'static str) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn errors_are_json_with_the_right_status() {
    let app = demo(Readiness::always());
    assert_eq!(
        call(&app, post("/echo/1", r#"{"text":"hi"}"#)).await,
        (StatusCode::OK, "hi".into())
    );

    let cases = [
        (post("/echo/1", "{"), StatusCode::BAD_REQUEST, "bad_request"),
        (
            post("/echo/1", r#"{"txt":"hi"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            post(
                "/echo/1",
                r#"{"text":"this body is longer than the sixty-four byte limit of the demo"}"#,
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            Request::post("/echo/1").body(Body::from("{}")).unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (get("/nowhere"), StatusCode::NOT_FOUND, "not_found"),
        (
            get("/echo/1"),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (get("/boom"), StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    ];
    for (request, status, code) in cases {
        let (got, body) = call(&app, request).await;
        assert_eq!(got, status, "{body}");
        let body = json(&body);
        assert_eq!(body["error"], code);
        assert!(body["detail"].is_string());
    }
    let (_, missing) = call(&app, post("/echo/1", r#"{"txt":"hi"}"#)).await;
    assert!(
        json(&missing)["detail"].as_str().unwrap().contains("text"),
        "{missing}"
    );
}

#[tokio::test]
async fn metrics_use_route_templates() {
    let app = demo(Readiness::always());
    for id in ["a", "b", "c"] {
        call(&app, post(&format!("/echo/{id}"), r#"{"text":"x"}"#)).await;
    }
    call(&app, get("/boom")).await;
    call(&app, get("/random/path/42")).await;
    let (status, text) = call(&app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains(r#"http_requests_total{method="POST",route="/echo/{id}",status="200"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/boom",status="500"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_request_duration_seconds_count{method="POST",route="/echo/{id}"} 3"#),
        "{text}"
    );
    assert!(!text.contains("/random/path"), "{text}");
}

#[tokio::test]
async fn health_readiness_and_docs() {
    let app = demo(Readiness::new(|| async {
        Err("database unreachable".to_owned())
    }));
    let (status, body) = call(&app, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(&app, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(&body)["detail"], "database unreachable");

    let (status, spec) = call(&app, get("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    let spec = json(&spec);
    assert_eq!(spec["info"]["title"], "demo");
    assert_eq!(spec["info"]["version"], "1.2.3");
    assert!(spec["paths"]["/echo/{id}"]["post"].is_object(), "{spec}");

    let (status, page) = call(&app, get("/docs/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("swagger"),
        "the vendored Swagger UI is served"
    );
}
