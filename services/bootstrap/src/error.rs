//! The one error type every service answers with: JSON `{"error": <code>, "detail": <text>}` and the
//! status code that fits. Internal details are logged, never sent to the client.

use axum::{
    Json,
    extract::{
        multipart::{MultipartError, MultipartRejection},
        rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection},
    },
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (bad JSON syntax, bad query string).
    #[error("{0}")]
    BadRequest(String),
    /// No valid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Unknown id, or an object owned by someone else: both look the same from outside.
    /// Signed in, but not allowed to.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The object already exists (duplicate registration, ...).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Well-formed but invalid: the detail names the field.
    #[error("{0}")]
    Unprocessable(String),
    /// The client asked too often; it may try again after the given seconds.
    #[error("{detail}")]
    TooManyRequests {
        detail: String,
        retry_after_secs: u64,
    },
    /// A dependency is down or the service is saturated; clients may retry after the given seconds.
    #[error("{detail}")]
    Unavailable {
        detail: String,
        retry_after_secs: Option<u64>,
    },
    /// A bug or an I/O failure; the detail is logged, the client sees a generic message.
    #[error("{0}")]
    Internal(String),
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code, e.g. `not_found`.
    pub error: String,
    /// Human-readable explanation.
    pub detail: String,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Unprocessable(_) => "validation_failed",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::Unavailable { .. } => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// A 422 for one field: `"<field>: <problem>"`.
    pub fn invalid(field: &str, problem: impl std::fmt::Display) -> Self {
        Self::Unprocessable(format!("{field}: {problem}"))
    }

    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        Self::Internal(format!("{context}: {err}"))
    }

    /// The error a client-side status maps to, for rejections that only carry a status and a text.
    fn from_client_status(status: StatusCode, detail: String) -> Self {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge(detail),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType(detail),
            StatusCode::UNPROCESSABLE_ENTITY => Self::Unprocessable(detail),
            StatusCode::FORBIDDEN => Self::Forbidden(detail),
            status if status.is_server_error() => Self::Internal(detail),
            _ => Self::BadRequest(detail),
        }
    }

    /// What a client is told: internal details stay in the log.
    pub fn body(&self) -> ErrorBody {
        let detail = match self {
            Self::Internal(_) => "internal error; see the service log".to_owned(),
            other => other.to_string(),
        };
        ErrorBody {
            error: self.code().to_owned(),
            detail,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        let retry_after = match self {
            Self::TooManyRequests {
                retry_after_secs, ..
            } => Some(retry_after_secs),
            Self::Unavailable {
                retry_after_secs, ..
            } => retry_after_secs,
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// What axum puts before serde's message for a body that parses but does not fit the type.
const DATA_ERROR_PREFIX: &str = "Failed to deserialize the JSON body into the target type: ";

/// Puts the offending field first, as every other 422 does: serde says ``missing field `front` ``,
/// ``unknown field `colour`, expected ...`` and ``duplicate field `name` `` for top-level fields,
/// `front: invalid type ...` for nested or typed ones, and nothing before what is wrong with the
/// body as a whole (`invalid type: null, expected ...`), which is then the `body`'s.
pub(crate) fn field_first(message: &str) -> String {
    for (prefix, problem) in [
        ("missing field `", "is required"),
        ("unknown field `", "is not a known field"),
        ("duplicate field `", "is given more than once"),
    ] {
        if let Some((field, rest)) = message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once('`'))
        {
            let rest = rest.trim_start_matches(',').trim();
            return if rest.is_empty() {
                format!("{field}: {problem}")
            } else {
                format!("{field}: {problem} ({rest})")
            };
        }
    }
    if ["invalid type: ", "invalid value: ", "invalid length "]
        .iter()
        .any(|whole| message.starts_with(whole))
    {
        return format!("body: {message}");
    }
    message.to_owned()
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        Self::from_client_status(rejection.status(), rejection.body_text())
    }
}

impl From<MultipartRejection> for ApiError {
    fn from(rejection: MultipartRejection) -> Self {
        Self::from_client_status(rejection.status(), rejection.body_text())
    }
}

impl From<MultipartError> for ApiError {
    fn from(error: MultipartError) -> Self {
        Self::from_client_status(error.status(), error.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let detail = match &rejection {
            JsonRejection::MissingJsonContentType(_) => {
                "expected a body with `Content-Type: application/json`".to_owned()
            }
            JsonRejection::JsonDataError(_) => {
                let text = rejection.body_text();
                field_first(text.strip_prefix(DATA_ERROR_PREFIX).unwrap_or(&text))
            }
            _ => rejection.body_text(),
        };
        Self::from_client_status(rejection.status(), detail)
    }
}

/// What axum puts before serde's message for a query string that does not fit the type.
const QUERY_ERROR_PREFIX: &str = "Failed to deserialize query string: ";

/// A query string always parses; one whose values do not fit (`limit=-1`) is a 422 naming the
/// parameter, like a body field.
impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        let text = rejection.body_text();
        Self::Unprocessable(field_first(
            text.strip_prefix(QUERY_ERROR_PREFIX).unwrap_or(&text),
        ))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::from_client_status(rejection.status(), rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(err: ApiError) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = err.into_response();
        let status = response.status();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().expect("ascii").to_owned());
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        (
            status,
            retry,
            serde_json::from_slice(&bytes).expect("json body"),
        )
    }

    #[tokio::test]
    async fn every_variant_maps_to_its_status_and_code() {
        let cases = [
            (ApiError::BadRequest("x".into()), 400, "bad_request"),
            (ApiError::Unauthorized("x".into()), 401, "unauthorized"),
            (ApiError::Forbidden("x".into()), 403, "forbidden"),
            (ApiError::NotFound("x".into()), 404, "not_found"),
            (
                ApiError::MethodNotAllowed("x".into()),
                405,
                "method_not_allowed",
            ),
            (ApiError::Conflict("x".into()), 409, "conflict"),
            (
                ApiError::PayloadTooLarge("x".into()),
                413,
                "payload_too_large",
            ),
            (
                ApiError::UnsupportedMediaType("x".into()),
                415,
                "unsupported_media_type",
            ),
            (
                ApiError::Unprocessable("x".into()),
                422,
                "validation_failed",
            ),
            (
                ApiError::Unavailable {
                    detail: "x".into(),
                    retry_after_secs: None,
                },
                503,
                "unavailable",
            ),
            (ApiError::Internal("x".into()), 500, "internal"),
        ];
        for (err, status, code) in cases {
            let (got_status, _, body) = body_of(err).await;
            assert_eq!(got_status.as_u16(), status);
            assert_eq!(body["error"], code);
            assert!(body["detail"].is_string());
        }
    }

    #[tokio::test]
    async fn internal_details_stay_in_the_log() {
        let (_, _, body) = body_of(ApiError::internal("db", "password=hunter2")).await;
        assert!(!body["detail"].as_str().expect("str").contains("hunter2"));
    }

    #[tokio::test]
    async fn unavailable_and_too_many_requests_set_retry_after() {
        let (status, retry, body) = body_of(ApiError::Unavailable {
            detail: "queue full".into(),
            retry_after_secs: Some(2),
        })
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("2"));
        assert_eq!(body["detail"], "queue full");
        let (status, retry, body) = body_of(ApiError::TooManyRequests {
            detail: "slow down".into(),
            retry_after_secs: 60,
        })
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry.as_deref(), Some("60"));
        assert_eq!(body["error"], "too_many_requests");
    }

    #[test]
    fn serde_messages_are_rewritten_field_first() {
        assert_eq!(
            field_first("missing field `front` at line 1 column 12"),
            "front: is required (at line 1 column 12)"
        );
        assert_eq!(
            field_first("unknown field `colour`, expected `front` or `back` at line 1 column 9"),
            "colour: is not a known field (expected `front` or `back` at line 1 column 9)"
        );
        assert_eq!(
            field_first("front: invalid type: integer `1`, expected a string"),
            "front: invalid type: integer `1`, expected a string"
        );
        assert_eq!(
            field_first("duplicate field `name` at line 1 column 20"),
            "name: is given more than once (at line 1 column 20)"
        );
        assert_eq!(
            field_first("invalid type: null, expected a map at line 1 column 4"),
            "body: invalid type: null, expected a map at line 1 column 4"
        );
    }

    #[tokio::test]
    async fn invalid_names_the_field() {
        let (status, _, body) = body_of(ApiError::invalid("front", "must not be empty")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["detail"], "front: must not be empty");
    }
}
