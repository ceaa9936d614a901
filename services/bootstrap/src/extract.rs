//! Extractors whose rejections are [`ApiError`]s, so malformed input answers in the same JSON shape
//! as every other error (400 bad JSON, 415 wrong content type, 413 too large, 422 wrong fields).

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request, rejection::JsonRejection},
    http::{HeaderMap, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{ApiError, error::field_first};

/// A JSON request body (with `Content-Type: application/json` or `…+json`) parsed by
/// [`json_from_bytes`]; answers with `axum::Json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !has_json_content_type(request.headers()) {
            return Err(not_json());
        }
        let body = Body::from_request(request, state).await?;
        json_from_bytes(&body.0).map(Self)
    }
}

/// An optional JSON body: none at all (or only whitespace) is `None`, whatever its content type;
/// any other body is checked and parsed as for [`Json`].
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let json = has_json_content_type(request.headers());
        let body = Body::from_request(request, state).await?;
        if body.0.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        if !json {
            return Err(not_json());
        }
        json_from_bytes(&body.0).map(|value| Self(Some(value)))
    }
}

fn not_json() -> ApiError {
    ApiError::UnsupportedMediaType(
        "expected a body with `Content-Type: application/json`".to_owned(),
    )
}

/// Parses a JSON request body: 400 for what is not JSON; 422 with the field first for JSON that
/// does not fit `T`. Three cases serde would get wrong for an API: it calls a number where an enum's
/// name belongs a syntax error (so the body is checked to be well-formed before answering 400); it
/// fills a struct from an array by position (so a top-level array is refused: every body of these
/// APIs is an object); and it takes text with NUL characters, which PostgreSQL cannot store and
/// no client means to send (so they are refused, naming the field, whatever the database).
pub fn json_from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::Unprocessable(
            "body: expected a JSON object, not an array".to_owned(),
        ));
    }
    match axum::Json::<T>::from_bytes(bytes) {
        Ok(_) if has_nul_escape(bytes) => Err(nul_refusal(bytes)),
        Ok(axum::Json(value)) => Ok(value),
        Err(JsonRejection::JsonSyntaxError(err)) => {
            match serde_json::from_slice::<serde_json::Value>(bytes) {
                // Well-formed: decoding it again from a value gives serde's data error ("invalid
                // type: integer `3`, expected …") in place of the parser's "expected value".
                Ok(value) => Err(ApiError::Unprocessable(field_first(
                    &serde_path_to_error::deserialize::<_, T>(value)
                        .err()
                        .map_or_else(|| err.body_text(), |err| err.to_string()),
                ))),
                Err(_) => Err(JsonRejection::JsonSyntaxError(err).into()),
            }
        }
        Err(rejection) => Err(rejection.into()),
    }
}

/// Whether the JSON text holds a `\u0000` escape: a backslash that is not itself escaped, then
/// `u0000`. (A raw NUL byte is not valid JSON, so this is the only way to write one.)
fn has_nul_escape(bytes: &[u8]) -> bool {
    let mut backslashes = 0;
    for (at, byte) in bytes.iter().enumerate() {
        if *byte == b'\\' {
            backslashes += 1;
            continue;
        }
        if backslashes % 2 == 1 && bytes[at..].starts_with(b"u0000") {
            return true;
        }
        backslashes = 0;
    }
    false
}

/// The 422 for a body with a NUL character, naming where it is (`deck.name`, `tags[2]`).
fn nul_refusal(bytes: &[u8]) -> ApiError {
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    let place = nul_place(&value, String::new()).unwrap_or_default();
    let place = if place.is_empty() { "body" } else { &place };
    ApiError::invalid(place, "must not contain NUL characters (\\u0000)")
}

/// Where the first string (or key) with a NUL is, as a path; `Some("")` for the value itself.
fn nul_place(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(text) => text.contains('\0').then_some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| nul_place(item, format!("{path}[{index}]"))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let inner = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if key.contains('\0') {
                Some(inner)
            } else {
                nul_place(item, inner)
            }
        }),
        _ => None,
    }
}

/// `application/json`, or any `application/…+json`, parameters (`; charset=utf-8`) allowed.
fn has_json_content_type(headers: &HeaderMap) -> bool {
    let Some(essence) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
    else {
        return false;
    };
    // Compared without allocating: every JSON request passes here.
    let Some((kind, subtype)) = essence.trim().split_once('/') else {
        return false;
    };
    const SUFFIX: &str = "+json";
    let json_suffix = subtype.len() > SUFFIX.len()
        && subtype
            .get(subtype.len() - SUFFIX.len()..)
            .is_some_and(|end| end.eq_ignore_ascii_case(SUFFIX));
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || json_suffix)
}

/// The raw request body with [`ApiError`] rejections (a JSON 413 beyond the body limit).
#[derive(Debug, Clone, Default)]
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Ok(Self(Bytes::from_request(request, state).await?))
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` with [`ApiError`] rejections; a value with a NUL character (`%00`) is
/// refused naming its parameter, as in a body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        let query = parts.uri.query().unwrap_or_default();
        if let Some(name) = query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find_map(|(name, value)| value.contains("%00").then_some(name))
        {
            return Err(ApiError::invalid(
                name,
                "must not contain NUL characters (%00)",
            ));
        }
        Ok(Self(value))
    }
}

/// `axum::extract::Path` with [`ApiError`] rejections; an id with a NUL character (`%00`) names
/// nothing that can exist, so it is a 404 on every database.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        if parts.uri.path().contains("%00") {
            return Err(ApiError::NotFound(
                "no such object: its id has a NUL character".to_owned(),
            ));
        }
        Ok(Self(value))
    }
}

#[cfg(test)]
mod tests {
    use axum::{body::Body as RequestBody, http::Uri};
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Rating {
        Good,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Review {
        rating: Rating,
    }

    fn problem(body: &str) -> (u16, String) {
        let err = json_from_bytes::<Review>(body.as_bytes()).expect_err(body);
        (err.status().as_u16(), err.to_string())
    }

    #[test]
    fn bodies_of_the_wrong_shape_are_422_naming_the_field() {
        assert_eq!(
            json_from_bytes::<Review>(br#" {"rating": "good"} "#).expect("parses"),
            Review {
                rating: Rating::Good
            }
        );
        for body in [
            r#"{"rating": 3}"#,
            r#"{"rating": null}"#,
            r#"{"rating": "meh"}"#,
        ] {
            let (status, detail) = problem(body);
            assert_eq!(status, 422, "{body}: {detail}");
            assert!(detail.starts_with("rating: "), "{body}: {detail}");
        }
        let (_, detail) = problem(r#"{"rating": 3}"#);
        assert!(
            detail.starts_with("rating: invalid type: integer `3`"),
            "says what is wrong: {detail}"
        );
        let (status, detail) = problem("null");
        assert_eq!(status, 422);
        assert!(detail.starts_with("body: invalid type: null"), "{detail}");
        let (status, detail) = problem(r#"{"rating": "good", "rating": "good"}"#);
        assert_eq!(status, 422);
        assert!(
            detail.starts_with("rating: is given more than once"),
            "{detail}"
        );
        let (status, detail) = problem(r#"{"rating": "good", "extra": 1}"#);
        assert_eq!(status, 422);
        assert!(detail.starts_with("extra: "), "{detail}");
    }

    #[test]
    fn an_array_never_stands_in_for_an_object() {
        assert_eq!(
            problem(r#" ["good"]"#),
            (422, "body: expected a JSON object, not an array".to_owned())
        );
    }

    #[test]
    fn what_is_not_json_is_400() {
        for body in [
            "",
            "{",
            r#"{"rating": 3"#,
            r#"{"rating": "good"} x"#,
            "rating",
        ] {
            assert_eq!(problem(body).0, 400, "{body:?}");
        }
    }

    #[test]
    fn json_content_types_are_told_apart() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, value.parse().expect("header"));
            has_json_content_type(&headers)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/jsonp"));
        assert!(!with("text/json"));
        assert!(!with("application/+json"));
        assert!(!has_json_content_type(&HeaderMap::new()));
    }

    #[tokio::test]
    async fn the_extractor_checks_the_content_type_and_the_body() {
        let request = |content_type: &str, body: &'static str| {
            Request::builder()
                .header(header::CONTENT_TYPE, content_type)
                .body(RequestBody::from(body))
                .expect("request")
        };
        let parsed =
            Json::<Review>::from_request(request("application/json", r#"{"rating":"good"}"#), &())
                .await
                .expect("parses");
        assert_eq!(parsed.0.rating, Rating::Good);
        let wrong_type =
            Json::<Review>::from_request(request("text/plain", r#"{"rating":"good"}"#), &())
                .await
                .expect_err("text/plain");
        assert_eq!(wrong_type.status().as_u16(), 415);
        let wrong_shape =
            Json::<Review>::from_request(request("application/json", r#"{"rating":4}"#), &())
                .await
                .expect_err("a number");
        assert_eq!(wrong_shape.status().as_u16(), 422);
    }

    #[tokio::test]
    async fn an_optional_body_may_be_absent_but_not_anything_else() {
        let request = |content_type: Option<&str>, body: &'static str| {
            let mut request = Request::builder();
            if let Some(content_type) = content_type {
                request = request.header(header::CONTENT_TYPE, content_type);
            }
            request.body(RequestBody::from(body)).expect("request")
        };
        for (content_type, body) in [(None, ""), (Some("text/plain"), " \n")] {
            let absent = OptionalJson::<Review>::from_request(request(content_type, body), &())
                .await
                .expect("no body");
            assert_eq!(absent.0, None);
        }
        let given = OptionalJson::<Review>::from_request(
            request(Some("application/json"), r#"{"rating":"good"}"#),
            &(),
        )
        .await
        .expect("a body");
        assert_eq!(given.0.map(|review| review.rating), Some(Rating::Good));
        for (content_type, body, status) in [
            (Some("text/plain"), r#"{"rating":"good"}"#, 415),
            (None, r#"{"rating":"good"}"#, 415),
            (Some("application/json"), r#"{"rating":"good""#, 400),
            (Some("application/json"), r#"{"rating":1}"#, 422),
        ] {
            let refused = OptionalJson::<Review>::from_request(request(content_type, body), &())
                .await
                .expect_err(body);
            assert_eq!(refused.status().as_u16(), status, "{content_type:?} {body}");
        }
    }

    #[test]
    fn text_with_nul_is_refused_naming_where() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Deck {
            name: String,
            tags: Vec<String>,
        }
        let refused = |body: &str| {
            let err = json_from_bytes::<Deck>(body.as_bytes()).expect_err(body);
            (err.status().as_u16(), err.to_string())
        };
        assert_eq!(
            refused(r#"{"name": "a\u0000b", "tags": []}"#),
            (
                422,
                "name: must not contain NUL characters (\\u0000)".to_owned()
            )
        );
        assert!(
            refused(r#"{"name": "a", "tags": ["x", "\u0000"]}"#)
                .1
                .starts_with("tags[1]: ")
        );
        for fine in [
            r#"{"name": "a\\u0000b", "tags": []}"#,
            r#"{"name": "\\\\u0000", "tags": []}"#,
            r#"{"name": "\u0001", "tags": []}"#,
        ] {
            assert!(json_from_bytes::<Deck>(fine.as_bytes()).is_ok(), "{fine}");
        }
    }

    #[tokio::test]
    async fn a_nul_in_the_url_is_refused() {
        use axum::{Router, routing::get};
        use tower::ServiceExt;

        #[derive(Debug, Deserialize)]
        struct After {
            after: Option<String>,
        }
        let router = Router::new()
            .route(
                "/decks/{id}",
                get(|Path(id): Path<String>| async move { id }),
            )
            .route(
                "/cards",
                get(|Query(query): Query<After>| async move { query.after.unwrap_or_default() }),
            );
        let status_of = |uri: &'static str| {
            let router = router.clone();
            async move {
                let request = Request::builder()
                    .uri(uri)
                    .body(RequestBody::empty())
                    .expect("request");
                let response = router.oneshot(request).await.expect("response");
                let status = response.status().as_u16();
                let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                    .await
                    .expect("body");
                (status, String::from_utf8_lossy(&body).into_owned())
            }
        };
        assert_eq!(status_of("/decks/a%20b").await, (200, "a b".to_owned()));
        assert_eq!(status_of("/decks/a%00b").await.0, 404);
        assert_eq!(status_of("/cards?after=x").await, (200, "x".to_owned()));
        let (status, body) = status_of("/cards?after=x%00").await;
        assert_eq!(status, 422);
        assert!(
            body.contains(r#""detail":"after: must not contain NUL"#),
            "{body}"
        );
    }

    #[derive(Debug, Deserialize)]
    struct Page {
        #[allow(dead_code)]
        limit: u32,
    }

    #[test]
    fn a_query_value_that_does_not_fit_is_422_naming_it() {
        for query in [
            "limit=-1",
            "limit=99999999999999999999",
            "limit=1.5",
            "limit=",
        ] {
            let uri: Uri = format!("/cards?{query}").parse().expect("uri");
            let err =
                ApiError::from(axum::extract::Query::<Page>::try_from_uri(&uri).expect_err(query));
            assert_eq!(err.status().as_u16(), 422, "{query}");
            assert!(err.to_string().starts_with("limit: "), "{query}: {err}");
        }
    }
}
