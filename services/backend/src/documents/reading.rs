//! Reading a document in the background: an upload (or a retry) leaves the document `processing`
//! with no lease; a runner claims it, sends the file to the OCR service while renewing its lease,
//! and stores the pages or the failure. A runner that dies leaves its lease to run out, and the
//! sweeper of any backend claims the document again.

use std::time::Duration;

use flashcards_bootstrap::{ApiError, http_client::ServiceError};
use flashcards_contracts::ocr::PageResult;

use super::DocumentStatus;
use crate::{AppState, db::QueryResultExt};

/// Documents waiting to be read, or left behind by a runner that died (`$1`: now).
pub const PENDING: &str =
    "SELECT id FROM documents WHERE status = 'processing' AND lease_until <= $1";

/// How long a claim on a document lasts without renewal.
pub const LEASE_MS: i64 = 60_000;
/// How often a runner renews its lease while the OCR service works.
const RENEW_EVERY: Duration = Duration::from_secs(20);
/// Claims after which a document that never got read is given up: a file that brings its runner
/// down every time must not be retried forever.
pub const MAX_ATTEMPTS: i64 = 5;

/// What a claim on a document leads to.
#[derive(Debug, PartialEq, Eq)]
pub enum Claimed {
    /// Read it; `attempt` is the claim's token.
    Read { attempt: i64 },
    /// Too many runners died reading it: mark it failed.
    GiveUp,
}

/// What to do with the `attempt`-th claim on a document.
pub fn after_claim(attempt: i64) -> Claimed {
    if attempt > MAX_ATTEMPTS {
        Claimed::GiveUp
    } else {
        Claimed::Read { attempt }
    }
}

/// The status and message a failed OCR leaves on a document.
pub fn failure(err: &ServiceError, id: &str) -> (DocumentStatus, String) {
    if err.retryable() {
        (
            DocumentStatus::FailedRetryable,
            format!("{err}; the upload is kept: retry with POST /api/documents/{id}/ocr"),
        )
    } else {
        (
            DocumentStatus::Failed,
            format!("the OCR service cannot read this file: {}", err.detail()),
        )
    }
}

/// Takes the document if it waits to be read or its runner's lease ran out, and reads it in the
/// background. Returns whether this process took it.
pub async fn claim_and_run(state: &AppState, id: &str) -> Result<bool, ApiError> {
    let now = state.clock.now_ms();
    let claimed: Option<(i64,)> = sqlx::query_as(
        "UPDATE documents SET lease_until = $1, ocr_attempts = ocr_attempts + 1 \
         WHERE id = $2 AND status = 'processing' AND lease_until <= $3 RETURNING ocr_attempts",
    )
    .bind(now + LEASE_MS)
    .bind(id)
    .bind(now)
    .fetch_optional(&state.db.write)
    .await
    .db("claiming the document")?;
    let Some((attempt,)) = claimed else {
        return Ok(false);
    };
    let runner_state = state.clone();
    let document_id = id.to_owned();
    state.runners.spawn(async move {
        if let Err(err) = run(&runner_state, &document_id, attempt).await {
            tracing::warn!(document = %document_id, %err, "reading the document stopped");
        }
    });
    Ok(true)
}

async fn run(state: &AppState, id: &str, attempt: i64) -> Result<(), ApiError> {
    if after_claim(attempt) == Claimed::GiveUp {
        let message = format!(
            "reading this file was started {MAX_ATTEMPTS} times and never finished; \
             retry with POST /api/documents/{id}/ocr"
        );
        return finish(state, id, attempt, DocumentStatus::Failed, Some(&message)).await;
    }
    let file: Option<(Vec<u8>, String)> =
        sqlx::query_as("SELECT content, content_type FROM documents WHERE id = $1")
            .bind(id)
            .fetch_optional(&state.db.read)
            .await
            .db("loading the file")?;
    let Some((content, content_type)) = file else {
        return Ok(());
    };
    let recognised = state.documents.ocr.recognise(content, &content_type);
    tokio::pin!(recognised);
    let mut renew = tokio::time::interval(RENEW_EVERY);
    renew.tick().await;
    let outcome = loop {
        tokio::select! {
            outcome = &mut recognised => break outcome,
            _ = renew.tick() => {
                if !renew_lease(state, id, attempt).await? {
                    // Another runner claimed it after our lease ran out: the work is theirs.
                    return Ok(());
                }
            }
        }
    };
    match outcome {
        Ok(pages) => store_pages(state, id, attempt, &pages).await,
        Err(err) => {
            tracing::warn!(document = id, %err, "OCR failed");
            let (status, message) = failure(&err, id);
            finish(state, id, attempt, status, Some(&message)).await
        }
    }
}

/// `false` when the claim is no longer this runner's.
async fn renew_lease(state: &AppState, id: &str, attempt: i64) -> Result<bool, ApiError> {
    let renewed = sqlx::query(
        "UPDATE documents SET lease_until = $1 \
         WHERE id = $2 AND ocr_attempts = $3 AND status = 'processing'",
    )
    .bind(state.clock.now_ms() + LEASE_MS)
    .bind(id)
    .bind(attempt)
    .execute(&state.db.write)
    .await
    .db("renewing the lease")?;
    Ok(renewed.rows_affected() > 0)
}

/// Records a failed read, if the claim is still this runner's.
async fn finish(
    state: &AppState,
    id: &str,
    attempt: i64,
    status: DocumentStatus,
    error: Option<&str>,
) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE documents SET status = $1, error = $2, lease_until = 0, updated_at = $3 \
         WHERE id = $4 AND ocr_attempts = $5 AND status = 'processing'",
    )
    .bind(status.as_str())
    .bind(error)
    .bind(state.clock.now_ms())
    .bind(id)
    .bind(attempt)
    .execute(&state.db.write)
    .await
    .db("recording the OCR outcome")?;
    state.changes.notify(id);
    Ok(())
}

/// Replaces the document's pages with what was read and marks it done, in one transaction, if the
/// claim is still this runner's.
async fn store_pages(
    state: &AppState,
    id: &str,
    attempt: i64,
    pages: &[PageResult],
) -> Result<(), ApiError> {
    let mut tx = state.db.begin_write().await.db("storing pages")?;
    let marked = sqlx::query(
        "UPDATE documents SET status = $1, error = NULL, page_count = $2, lease_until = 0, \
         updated_at = $3 WHERE id = $4 AND ocr_attempts = $5 AND status = 'processing'",
    )
    .bind(DocumentStatus::Done.as_str())
    .bind(i64::try_from(pages.len()).unwrap_or(i64::MAX))
    .bind(state.clock.now_ms())
    .bind(id)
    .bind(attempt)
    .execute(&mut *tx)
    .await
    .db("marking the document read")?;
    if marked.rows_affected() == 0 {
        return Ok(());
    }
    sqlx::query("DELETE FROM document_pages WHERE document_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .db("replacing pages")?;
    for page in pages {
        sqlx::query(
            "INSERT INTO document_pages (document_id, page, source, width, height, text, \
             mean_confidence, words, filtered_words) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id)
        .bind(i64::from(page.page))
        .bind(page.source.as_str())
        .bind(i64::from(page.width))
        .bind(i64::from(page.height))
        .bind(&page.text)
        .bind(page.mean_confidence.map(f64::from))
        .bind(words_json(&page.words)?)
        .bind(words_json(&page.filtered_words)?)
        .execute(&mut *tx)
        .await
        .db("storing a page")?;
    }
    tx.commit().await.db("storing pages")?;
    state.changes.notify(id);
    Ok(())
}

/// Words as stored: the OCR service's JSON.
pub fn words_json(words: &[flashcards_contracts::ocr::Word]) -> Result<String, ApiError> {
    serde_json::to_string(words).map_err(|err| ApiError::internal("encoding words", err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unreachable_service_is_worth_a_retry() {
        let down = ServiceError::Unavailable {
            service: "OCR service",
            detail: "cannot connect".into(),
        };
        let (status, message) = failure(&down, "d1");
        assert_eq!(status, DocumentStatus::FailedRetryable);
        assert!(message.contains("POST /api/documents/d1/ocr"), "{message}");
        let refused = ServiceError::Rejected {
            service: "OCR service",
            detail: "the PDF is encrypted".into(),
        };
        let (status, message) = failure(&refused, "d1");
        assert_eq!(status, DocumentStatus::Failed);
        assert!(message.contains("encrypted"), "{message}");
    }

    #[test]
    fn a_file_that_keeps_killing_its_runner_is_given_up() {
        assert_eq!(after_claim(1), Claimed::Read { attempt: 1 });
        assert_eq!(
            after_claim(MAX_ATTEMPTS),
            Claimed::Read {
                attempt: MAX_ATTEMPTS
            }
        );
        assert_eq!(after_claim(MAX_ATTEMPTS + 1), Claimed::GiveUp);
    }
}
