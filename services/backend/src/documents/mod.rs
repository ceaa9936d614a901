//! Documents: uploaded photos, scans and PDFs, kept as sent (one copy per user and content) and read
//! by the OCR service into pages of text and words. An upload is stored and answered at once; the
//! OCR runs in the background ([`reading`]) and `GET /api/documents/{id}/events` follows it. When
//! the OCR service is down the document stays, marked `failed_retryable`, and
//! `POST /api/documents/{id}/ocr` tries again.

mod model;
pub mod ocr_client;
pub mod reading;
mod store;

use std::time::Duration;

use axum::{
    extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use flashcards_bootstrap::{
    ApiError,
    error::ErrorBody,
    extract::{Json, Path, Query},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use self::{
    model::sha256_hex,
    store::{Key, Stored},
};
pub use self::{
    model::{Document, DocumentDetail, DocumentPage, DocumentStatus, clean_file_name},
    store::{check_owned, document_not_found},
};
use crate::{
    AppState,
    auth::CurrentUser,
    events,
    limits::rates::Work,
    pagination::{Page, PageQuery},
    timestamp::rfc3339,
};
use flashcards_contracts::media::{self, Declared, SUPPORTED};
use ocr_client::OcrClient;

/// Where documents go for OCR, and how large an upload may be.
#[derive(Clone)]
pub struct DocumentSettings {
    pub ocr: OcrClient,
    pub max_upload_bytes: usize,
}

impl DocumentSettings {
    pub fn new(ocr_url: &str, ocr_timeout: Duration, max_upload_bytes: usize) -> Self {
        Self {
            ocr: OcrClient::new(ocr_url, ocr_timeout),
            max_upload_bytes,
        }
    }
}

pub fn router(max_upload_bytes: usize) -> OpenApiRouter<AppState> {
    let uploads = OpenApiRouter::new()
        .routes(routes!(list_documents, upload_document))
        .layer(DefaultBodyLimit::max(max_upload_bytes));
    OpenApiRouter::new()
        .merge(uploads)
        .routes(routes!(get_document))
        .routes(routes!(document_file))
        .routes(routes!(document_events))
        .routes(routes!(retry_ocr))
}

#[utoipa::path(get, path = "/api/documents", tag = "documents", params(PageQuery),
    responses((status = 200, body = Page<Document>), (status = 401, body = ErrorBody)))]
async fn list_documents(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<Document>>, ApiError> {
    let limit = page.limit()?;
    let documents = store::list(&state, &user.id, &page, limit).await?;
    Ok(Json(Page::from_rows(documents, limit, |d| &d.id)))
}

/// A file as uploaded.
struct Upload {
    file_name: String,
    content_type: String,
    bytes: Vec<u8>,
}

async fn read_upload(request: Request) -> Result<Upload, ApiError> {
    let mut form = Multipart::from_request(request, &()).await?;
    while let Some(field) = form.next_field().await? {
        if field.name() != Some("file") {
            continue;
        }
        let file_name = clean_file_name(field.file_name().unwrap_or_default());
        let content_type = field
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_ascii_lowercase();
        // What the OCR service reads; anything else is refused before it is stored.
        if media::declared(&content_type) == Declared::Unsupported {
            return Err(ApiError::UnsupportedMediaType(format!(
                "{content_type} is not supported; upload {SUPPORTED}"
            )));
        }
        let bytes = field.bytes().await?.to_vec();
        if bytes.is_empty() {
            return Err(ApiError::BadRequest("the file is empty".to_owned()));
        }
        return Ok(Upload {
            file_name,
            content_type,
            bytes,
        });
    }
    Err(ApiError::invalid(
        "file",
        "the multipart form has no `file` field",
    ))
}

#[utoipa::path(post, path = "/api/documents", tag = "documents",
    request_body(content = Vec<u8>, content_type = "multipart/form-data",
        description = "a form with a `file` field: PNG, JPEG, TIFF, WebP, BMP or PDF"),
    responses(
        (status = 201, body = DocumentDetail,
            description = "stored, and `processing`: follow it at /api/documents/{id}/events"),
        (status = 200, body = DocumentDetail, description = "the same file was uploaded before: that document"),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "the account's documents for the hour are spent")))]
async fn upload_document(
    State(state): State<AppState>,
    user: CurrentUser,
    request: Request,
) -> Result<(StatusCode, Json<DocumentDetail>), ApiError> {
    let upload = read_upload(request).await?;
    let sha256 = sha256_hex(&upload.bytes);
    if let Some(existing) = store::find(&state, &user.id, Key::Sha256(&sha256)).await? {
        return Ok((
            StatusCode::OK,
            Json(store::with_pages(&state, existing).await?),
        ));
    }
    state.take(Work::Document, &user.id).await?;
    let now = state.clock.now_ms();
    let document = Document {
        id: uuid::Uuid::now_v7().to_string(),
        file_name: upload.file_name,
        content_type: upload.content_type,
        size_bytes: i64::try_from(upload.bytes.len()).unwrap_or(i64::MAX),
        sha256,
        status: DocumentStatus::Processing,
        error: None,
        page_count: 0,
        created_at: rfc3339(now),
        updated_at: rfc3339(now),
    };
    match store::insert(&state, &user.id, &document, upload.bytes, now).await? {
        Stored::New => {}
        Stored::AlreadyThere => {
            let existing = store::find(&state, &user.id, Key::Sha256(&document.sha256))
                .await?
                .ok_or_else(document_not_found)?;
            return Ok((
                StatusCode::OK,
                Json(store::with_pages(&state, existing).await?),
            ));
        }
    }
    start_reading(&state, &document.id).await;
    // The answer is what was just stored: a new document has no pages yet.
    let detail = DocumentDetail {
        document,
        pages: Vec::new(),
    };
    Ok((StatusCode::CREATED, Json(detail)))
}

/// Starts reading a stored document here; if that fails, the sweeper starts it later.
async fn start_reading(state: &AppState, id: &str) {
    if let Err(err) = reading::claim_and_run(state, id).await {
        tracing::warn!(document = id, %err, "reading is left to the sweeper");
    }
}

#[utoipa::path(post, path = "/api/documents/{id}/ocr", tag = "documents",
    params(("id" = String, Path)),
    responses((status = 202, body = Document,
            description = "read again, in the background: follow it at /api/documents/{id}/events"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "it is being read now"),
        (status = 429, body = ErrorBody, description = "the account's documents for the hour are spent")))]
async fn retry_ocr(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Document>), ApiError> {
    let document = store::get(&state, &user.id, &id).await?;
    state.take(Work::Document, &user.id).await?;
    let now = state.clock.now_ms();
    if !store::requeue(&state, &user.id, &id, now).await? {
        return Err(ApiError::Conflict(format!(
            "{} is being read now; follow it at /api/documents/{id}/events",
            document.file_name
        )));
    }
    state.changes.notify(&id);
    start_reading(&state, &id).await;
    // The answer is the document as just queued; its events follow the reading from here.
    let queued = Document {
        status: DocumentStatus::Processing,
        error: None,
        updated_at: rfc3339(now),
        ..document
    };
    Ok((StatusCode::ACCEPTED, Json(queued)))
}

#[utoipa::path(get, path = "/api/documents/{id}/events", tag = "documents",
    params(("id" = String, Path)),
    responses((status = 200, content_type = "text/event-stream",
            description = "server-sent events: `document` with the document (no pages) at once and \
                at each change, ending after `done`, `failed` or `failed_retryable`; `error` if it \
                can no longer be read"),
        (status = 404, body = ErrorBody)))]
async fn document_events(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let first = store::get(&state, &user.id, &id).await?;
    let load = events::loader(&state, &user.id, &id, |state, user_id, id| async move {
        store::get(&state, &user_id, &id).await
    });
    let finished = |document: &Document| document.status != DocumentStatus::Processing;
    Ok(events::follow(&state.changes, &id, "document", first, load, finished).into_response())
}

#[utoipa::path(get, path = "/api/documents/{id}", tag = "documents",
    params(("id" = String, Path)),
    responses((status = 200, body = DocumentDetail), (status = 404, body = ErrorBody)))]
async fn get_document(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<DocumentDetail>, ApiError> {
    let document = store::get(&state, &user.id, &id).await?;
    Ok(Json(store::with_pages(&state, document).await?))
}

#[utoipa::path(get, path = "/api/documents/{id}/file", tag = "documents",
    params(("id" = String, Path)),
    responses((status = 200, description = "the file as uploaded", content_type = "application/octet-stream"),
              (status = 404, body = ErrorBody)))]
async fn document_file(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (content, content_type, file_name) = store::load_file(&state, &user.id, &id).await?;
    // Served as a download that browsers never sniff into something executable.
    let ascii_name: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_ ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut response = content.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(disposition) =
        HeaderValue::from_str(&format!("attachment; filename=\"{ascii_name}\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}
