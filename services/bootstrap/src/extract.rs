//! Extractors whose rejections are [`ApiError`]s, so malformed input answers in the same JSON shape
//! as every other error (400 bad JSON, 415 wrong content type, 413 too large, 422 wrong fields).

use axum::{
    extract::FromRequest,
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::ApiError;

/// `axum::Json` with [`ApiError`] rejections.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` with [`ApiError`] rejections.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `axum::extract::Path` with [`ApiError`] rejections.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);
