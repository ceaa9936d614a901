//! `/api/*` passed through to the backend unchanged, bodies streamed both ways (uploads, and the
//! backend's server-sent events), so the browser's scripts and API clients see one origin. Only
//! the hop-by-hop headers, which describe one connection, stay behind.

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderName, StatusCode, header},
    response::{IntoResponse, Response},
};
use flashcards_bootstrap::ApiError;

use crate::WebState;

/// Headers about one connection rather than the message (RFC 9110, 7.6.1), and `Host`, which
/// names this server.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The headers worth passing on: all but the hop-by-hop ones, those the `Connection` header
/// names, and `Host`.
pub fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    headers
        .iter()
        .filter(|(name, _)| {
            !HOP_BY_HOP.contains(name)
                && *name != header::HOST
                && !named.iter().any(|n| n == name.as_str())
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// Sends the request on to the backend and streams its answer back; a backend that cannot be
/// reached is a JSON 502 in the API's own error shape.
pub async fn pass_through(State(state): State<WebState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), ToString::to_string);
    let backend = &state.backend;
    let sent = backend
        .pass_through_client()
        .request(parts.method.clone(), backend.url(&path_and_query))
        .headers(end_to_end(&parts.headers))
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        .send()
        .await;
    match sent {
        Ok(answer) => {
            let status = answer.status();
            let headers = end_to_end(answer.headers());
            let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            response
        }
        Err(err) => {
            tracing::warn!(
                error = %flashcards_bootstrap::http_client::describe(&err),
                "the backend cannot be reached"
            );
            (
                StatusCode::BAD_GATEWAY,
                ApiError::Unavailable {
                    detail: "the flashcards server cannot be reached; try again in a minute"
                        .to_owned(),
                    retry_after_secs: Some(30),
                },
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn connection_headers_stay_behind_and_the_rest_pass() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("web:8080"));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-trace"),
        );
        headers.insert("x-trace", HeaderValue::from_static("1"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("flashcards_session=a"),
        );
        headers.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        let passed = end_to_end(&headers);
        let names: Vec<&str> = passed.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["cookie", "sec-fetch-site"]);
    }
}
