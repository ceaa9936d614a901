//! Documents: uploaded photos, scans and PDFs, kept as sent (one copy per user and content) and read
//! by the OCR service into pages of text and words. An upload is stored and answered at once; the
//! OCR runs in the background ([`reading`]) and `GET /api/documents/{id}/events` follows it. When
//! the OCR service is down the document stays, marked `failed_retryable`, and
//! `POST /api/documents/{id}/ocr` tries again.

pub mod ocr_client;
pub mod reading;

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
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    auth::CurrentUser,
    db::{QueryResultExt, fetch_json_rows, is_unique_violation},
    events,
    pagination::{Page, PageQuery},
    timestamp::rfc3339,
};
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

/// What the OCR service reads; anything else is refused before it is stored.
const ACCEPTED_TYPES: [&str; 7] = [
    "image/png",
    "image/jpeg",
    "image/tiff",
    "image/webp",
    "image/bmp",
    "application/pdf",
    "application/octet-stream",
];
const MAX_FILE_NAME_CHARS: usize = 255;

/// Where a document is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    /// OCR is running.
    Processing,
    /// Pages are stored.
    Done,
    /// The OCR service was unreachable or overloaded; `POST /api/documents/{id}/ocr` retries.
    FailedRetryable,
    /// The OCR service cannot read this file (corrupt, encrypted, too large, ...).
    Failed,
}

impl DocumentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "processing",
            Self::Done => "done",
            Self::FailedRetryable => "failed_retryable",
            Self::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Document {
    pub id: String,
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    /// SHA-256 of the file, hex: the same file uploaded twice is one document.
    pub sha256: String,
    pub status: DocumentStatus,
    /// Why OCR failed, for `failed` and `failed_retryable`.
    pub error: Option<String>,
    pub page_count: i64,
    #[serde(skip_deserializing)]
    pub created_at: String,
    #[serde(skip_deserializing)]
    pub updated_at: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DocumentPage {
    pub page: i64,
    /// `ocr` or `text_layer` (read directly from a PDF).
    pub source: String,
    pub width: i64,
    pub height: i64,
    pub text: String,
    pub mean_confidence: Option<f64>,
    /// Words kept in `text`: `{text, confidence, bbox: {x, y, width, height}, block, line}`.
    #[schema(value_type = Vec<Object>)]
    pub words: Value,
    /// Words under the OCR confidence threshold, left out of `text`.
    #[schema(value_type = Vec<Object>)]
    pub filtered_words: Value,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DocumentDetail {
    #[serde(flatten)]
    pub document: Document,
    pub pages: Vec<DocumentPage>,
}

const DOCUMENT_COLUMNS: [&str; 10] = [
    "id",
    "file_name",
    "content_type",
    "size_bytes",
    "sha256",
    "status",
    "error",
    "page_count",
    "created_at",
    "updated_at",
];

#[derive(Deserialize)]
struct DocumentRow {
    #[serde(flatten)]
    document: Document,
    created_at: i64,
    updated_at: i64,
}

impl From<DocumentRow> for Document {
    fn from(row: DocumentRow) -> Self {
        Self {
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
            ..row.document
        }
    }
}

const PAGE_COLUMNS: [&str; 8] = [
    "page",
    "source",
    "width",
    "height",
    "text",
    "mean_confidence",
    "words",
    "filtered_words",
];

#[derive(Deserialize)]
struct PageRow {
    page: i64,
    source: String,
    width: i64,
    height: i64,
    text: String,
    mean_confidence: Option<f64>,
    words: String,
    filtered_words: String,
}

impl PageRow {
    fn into_page(self) -> Result<DocumentPage, ApiError> {
        let parse = |json: &str| {
            serde_json::from_str(json)
                .map_err(|err| ApiError::internal("reading stored words", err))
        };
        Ok(DocumentPage {
            page: self.page,
            source: self.source,
            width: self.width,
            height: self.height,
            text: self.text,
            mean_confidence: self.mean_confidence,
            words: parse(&self.words)?,
            filtered_words: parse(&self.filtered_words)?,
        })
    }
}

pub fn document_not_found() -> ApiError {
    ApiError::NotFound("no such document".to_owned())
}

/// A 404 unless the user has the document.
pub async fn check_owned(state: &AppState, user_id: &str, id: &str) -> Result<(), ApiError> {
    sqlx::query("SELECT 1 FROM documents WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .fetch_optional(&state.db.read)
        .await
        .db("checking the document")?
        .map(|_| ())
        .ok_or_else(document_not_found)
}

async fn find_document(
    state: &AppState,
    user_id: &str,
    condition: &str,
    value: &str,
) -> Result<Option<Document>, ApiError> {
    let sql = state.db.engine.select_json(
        "documents",
        &DOCUMENT_COLUMNS,
        &format!("WHERE user_id = $1 AND {condition} = $2"),
    );
    let query = sqlx::query_scalar(&sql).bind(user_id).bind(value);
    let rows: Vec<DocumentRow> = fetch_json_rows(query, &state.db.read, "loading document").await?;
    Ok(rows.into_iter().next().map(Document::from))
}

async fn document_detail(
    state: &AppState,
    user_id: &str,
    id: &str,
) -> Result<DocumentDetail, ApiError> {
    let document = find_document(state, user_id, "id", id)
        .await?
        .ok_or_else(document_not_found)?;
    with_pages(state, document).await
}

/// The document with its stored pages.
async fn with_pages(state: &AppState, document: Document) -> Result<DocumentDetail, ApiError> {
    let sql = state.db.engine.json_rows(
        &format!(
            "SELECT {} FROM document_pages WHERE document_id = $1",
            PAGE_COLUMNS.join(", ")
        ),
        &PAGE_COLUMNS,
        "page",
    );
    let query = sqlx::query_scalar(&sql).bind(&document.id);
    let rows: Vec<PageRow> = fetch_json_rows(query, &state.db.read, "loading pages").await?;
    let pages = rows
        .into_iter()
        .map(PageRow::into_page)
        .collect::<Result<_, _>>()?;
    Ok(DocumentDetail { document, pages })
}

#[utoipa::path(get, path = "/api/documents", tag = "documents", params(PageQuery),
    responses((status = 200, body = Page<Document>), (status = 401, body = ErrorBody)))]
async fn list_documents(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<Document>>, ApiError> {
    let limit = page.limit()?;
    let sql = state.db.engine.select_json(
        "documents",
        &DOCUMENT_COLUMNS,
        "WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    );
    let query = sqlx::query_scalar(&sql)
        .bind(&user.id)
        .bind(page.after())
        .bind(i64::from(limit) + 1);
    let rows: Vec<DocumentRow> =
        fetch_json_rows(query, &state.db.read, "listing documents").await?;
    let documents = rows.into_iter().map(Document::from).collect();
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
        if !ACCEPTED_TYPES.contains(&content_type.as_str()) {
            return Err(ApiError::UnsupportedMediaType(format!(
                "{content_type} is not supported; upload PNG, JPEG, TIFF, WebP, BMP or PDF"
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

/// The file name without any folder, control characters or excess length.
pub fn clean_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_FILE_NAME_CHARS)
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        "upload".to_owned()
    } else {
        cleaned.to_owned()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[utoipa::path(post, path = "/api/documents", tag = "documents",
    request_body(content = Vec<u8>, content_type = "multipart/form-data",
        description = "a form with a `file` field: PNG, JPEG, TIFF, WebP, BMP or PDF"),
    responses(
        (status = 201, body = DocumentDetail,
            description = "stored, and `processing`: follow it at /api/documents/{id}/events"),
        (status = 200, body = DocumentDetail, description = "the same file was uploaded before: that document"),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
async fn upload_document(
    State(state): State<AppState>,
    user: CurrentUser,
    request: Request,
) -> Result<(StatusCode, Json<DocumentDetail>), ApiError> {
    let upload = read_upload(request).await?;
    let sha256 = sha256_hex(&upload.bytes);
    if let Some(existing) = find_document(&state, &user.id, "sha256", &sha256).await? {
        return Ok((StatusCode::OK, Json(with_pages(&state, existing).await?)));
    }
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
    let inserted = sqlx::query(
        "INSERT INTO documents (id, user_id, sha256, file_name, content_type, size_bytes, content, \
         status, page_count, lease_until, ocr_attempts, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 0, 0, $9, $9)",
    )
    .bind(&document.id)
    .bind(&user.id)
    .bind(&document.sha256)
    .bind(&document.file_name)
    .bind(&document.content_type)
    .bind(document.size_bytes)
    .bind(upload.bytes)
    .bind(document.status.as_str())
    .bind(now)
    .execute(&state.db.write)
    .await;
    match inserted {
        Ok(_) => {}
        // The same file arrived twice at once: the other upload stored it.
        Err(err) if is_unique_violation(&err) => {
            let existing = find_document(&state, &user.id, "sha256", &document.sha256)
                .await?
                .ok_or_else(document_not_found)?;
            return Ok((StatusCode::OK, Json(with_pages(&state, existing).await?)));
        }
        Err(err) => return Err(crate::db::query_error("storing the upload", &err)),
    }
    start_reading(&state, &document.id).await;
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
        (status = 409, body = ErrorBody, description = "it is being read now")))]
async fn retry_ocr(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Document>), ApiError> {
    let document = find_document(&state, &user.id, "id", &id)
        .await?
        .ok_or_else(document_not_found)?;
    let requeued = sqlx::query(
        "UPDATE documents SET status = 'processing', error = NULL, lease_until = 0, \
         ocr_attempts = 0, updated_at = $1 WHERE id = $2 AND user_id = $3 AND status <> 'processing'",
    )
    .bind(state.clock.now_ms())
    .bind(&id)
    .bind(&user.id)
    .execute(&state.db.write)
    .await
    .db("queueing the document")?;
    if requeued.rows_affected() == 0 {
        return Err(ApiError::Conflict(format!(
            "{} is being read now; follow it at /api/documents/{id}/events",
            document.file_name
        )));
    }
    state.changes.notify(&id);
    start_reading(&state, &id).await;
    let document = find_document(&state, &user.id, "id", &id)
        .await?
        .ok_or_else(document_not_found)?;
    Ok((StatusCode::ACCEPTED, Json(document)))
}

/// The original upload: bytes, content type and file name.
async fn load_file(
    state: &AppState,
    user_id: &str,
    id: &str,
) -> Result<(Vec<u8>, String, String), ApiError> {
    sqlx::query_as::<_, (Vec<u8>, String, String)>(
        "SELECT content, content_type, file_name FROM documents WHERE id = $1 AND user_id = $2",
    )
    .bind(id)
    .bind(user_id)
    .fetch_optional(&state.db.read)
    .await
    .db("loading the file")?
    .ok_or_else(document_not_found)
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
    let first = find_document(&state, &user.id, "id", &id)
        .await?
        .ok_or_else(document_not_found)?;
    let load = events::loader(&state, &user.id, &id, |state, user_id, id| async move {
        find_document(&state, &user_id, "id", &id)
            .await?
            .ok_or_else(document_not_found)
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
    Ok(Json(document_detail(&state, &user.id, &id).await?))
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
    let (content, content_type, file_name) = load_file(&state, &user.id, &id).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_folders_and_control_characters() {
        assert_eq!(clean_file_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_file_name("C:\\notes\\bio.pdf"), "bio.pdf");
        assert_eq!(clean_file_name("a\u{0}b\nc.png"), "abc.png");
        assert_eq!(clean_file_name(""), "upload");
        assert_eq!(clean_file_name(".."), "upload");
        assert_eq!(clean_file_name(&"x".repeat(400)).len(), MAX_FILE_NAME_CHARS);
    }

    #[test]
    fn hashes_are_lowercase_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
