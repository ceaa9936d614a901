//! `http_requests_total{method,route,status}` and `http_request_duration_seconds{method,route}`,
//! recorded by an axum middleware. `route` is the matched route template (`/api/cards/{id}`), never the
//! raw path, so label cardinality stays bounded whatever clients send.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    http::Method,
    middleware::Next,
    response::Response,
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

/// Route label for requests that matched no route (404 fallback).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Bucket bounds in seconds; 2 s and 5 s are the monitoring guide's response-time alert thresholds.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DurationLabels {
    method: String,
    route: String,
}

/// The HTTP metric families; cheap to clone (shared counters).
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<DurationLabels, Histogram>,
}

impl HttpMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<DurationLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(DURATION_BUCKETS)
        });
        registry.register(
            "http_requests",
            "HTTP requests by method, route template and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request duration by method and route template",
            duration.clone(),
        );
        Self { requests, duration }
    }

    fn record(&self, method: &Method, route: &str, status: u16, seconds: f64) {
        let method = normalise_method(method).to_owned();
        let route = route.to_owned();
        self.requests
            .get_or_create(&RequestLabels {
                method: method.clone(),
                route: route.clone(),
                status,
            })
            .inc();
        self.duration
            .get_or_create(&DurationLabels { method, route })
            .observe(seconds);
    }
}

/// Standard methods keep their name; anything else is folded into one label value.
fn normalise_method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The middleware; install with `axum::middleware::from_fn_with_state(metrics, track)` as a router layer
/// so the matched route is known.
pub async fn track(State(metrics): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
        .to_owned();
    let response = next.run(request).await;
    metrics.record(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusual_methods_share_one_label() {
        let custom = Method::from_bytes(b"BREW").expect("method");
        assert_eq!(normalise_method(&custom), "OTHER");
        assert_eq!(normalise_method(&Method::PATCH), "PATCH");
    }

    #[test]
    fn records_counter_and_histogram_per_route() {
        let mut registry = Registry::default();
        let metrics = HttpMetrics::register(&mut registry);
        metrics.record(&Method::GET, "/api/cards/{id}", 200, 0.003);
        metrics.record(&Method::GET, "/api/cards/{id}", 200, 3.0);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains(
                r#"http_requests_total{method="GET",route="/api/cards/{id}",status="200"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"http_request_duration_seconds_bucket{le="5.0",method="GET",route="/api/cards/{id}"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"http_request_duration_seconds_bucket{le="2.0",method="GET",route="/api/cards/{id}"} 1"#),
            "{text}"
        );
    }
}
