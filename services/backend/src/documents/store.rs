//! The documents' SQL: every query of the `documents` and `document_pages` tables the API makes,
//! each scoped to the user who owns the rows. Reading a document's pages is [`reading`]'s.
//!
//! [`reading`]: super::reading

use flashcards_bootstrap::ApiError;
use serde::Deserialize;

use super::model::{Document, DocumentDetail, DocumentPage, DocumentStatus};
use crate::{
    AppState,
    db::{QueryResultExt, fetch_json_rows, is_unique_violation},
    pagination::PageQuery,
    timestamp::rfc3339,
};
use flashcards_contracts::ocr::PageSource;

pub fn document_not_found() -> ApiError {
    ApiError::NotFound("no such document".to_owned())
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
    source: PageSource,
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

/// Which document of the user's: by id, or by its content's hash.
#[derive(Debug, Clone, Copy)]
pub enum Key<'a> {
    Id(&'a str),
    Sha256(&'a str),
}

pub async fn find(
    state: &AppState,
    user_id: &str,
    key: Key<'_>,
) -> Result<Option<Document>, ApiError> {
    let (column, value) = match key {
        Key::Id(id) => ("id", id),
        Key::Sha256(hash) => ("sha256", hash),
    };
    let sql = state.db.engine.select_json(
        "documents",
        &DOCUMENT_COLUMNS,
        &format!("WHERE user_id = $1 AND {column} = $2"),
    );
    let query = sqlx::query_scalar(&sql).bind(user_id).bind(value);
    let rows: Vec<DocumentRow> = fetch_json_rows(query, &state.db.read, "loading document").await?;
    Ok(rows.into_iter().next().map(Document::from))
}

/// The user's document by id, or 404.
pub async fn get(state: &AppState, user_id: &str, id: &str) -> Result<Document, ApiError> {
    find(state, user_id, Key::Id(id))
        .await?
        .ok_or_else(document_not_found)
}

/// A page of the user's documents, oldest first.
pub async fn list(
    state: &AppState,
    user_id: &str,
    page: &PageQuery,
    limit: u32,
) -> Result<Vec<Document>, ApiError> {
    let sql = state.db.engine.select_json(
        "documents",
        &DOCUMENT_COLUMNS,
        "WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    );
    let query = sqlx::query_scalar(&sql)
        .bind(user_id)
        .bind(page.after())
        .bind(i64::from(limit) + 1);
    let rows: Vec<DocumentRow> =
        fetch_json_rows(query, &state.db.read, "listing documents").await?;
    Ok(rows.into_iter().map(Document::from).collect())
}

/// What storing an upload came to.
pub enum Stored {
    New,
    /// The same file arrived twice at once, and the other upload stored it.
    AlreadyThere,
}

/// Stores a new document, `processing`, with its file.
pub async fn insert(
    state: &AppState,
    user_id: &str,
    document: &Document,
    content: Vec<u8>,
    now_ms: i64,
) -> Result<Stored, ApiError> {
    let inserted = sqlx::query(
        "INSERT INTO documents (id, user_id, sha256, file_name, content_type, size_bytes, content, \
         status, page_count, lease_until, ocr_attempts, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 0, 0, $9, $9)",
    )
    .bind(&document.id)
    .bind(user_id)
    .bind(&document.sha256)
    .bind(&document.file_name)
    .bind(&document.content_type)
    .bind(document.size_bytes)
    .bind(content)
    .bind(document.status.as_str())
    .bind(now_ms)
    .execute(&state.db.write)
    .await;
    match inserted {
        Ok(_) => Ok(Stored::New),
        Err(err) if is_unique_violation(&err) => Ok(Stored::AlreadyThere),
        Err(err) => Err(crate::db::query_error("storing the upload", &err)),
    }
}

/// Queues the document to be read again; `false` while it is being read.
pub async fn requeue(
    state: &AppState,
    user_id: &str,
    id: &str,
    now_ms: i64,
) -> Result<bool, ApiError> {
    let requeued = sqlx::query(
        "UPDATE documents SET status = $1, error = NULL, lease_until = 0, ocr_attempts = 0, \
         updated_at = $2 WHERE id = $3 AND user_id = $4 AND status <> $1",
    )
    .bind(DocumentStatus::Processing.as_str())
    .bind(now_ms)
    .bind(id)
    .bind(user_id)
    .execute(&state.db.write)
    .await
    .db("queueing the document")?;
    Ok(requeued.rows_affected() > 0)
}

/// The document with its stored pages.
pub async fn with_pages(state: &AppState, document: Document) -> Result<DocumentDetail, ApiError> {
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

/// The original upload: bytes, content type and file name.
pub async fn load_file(
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
