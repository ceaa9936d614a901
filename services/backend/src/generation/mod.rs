//! Card generation from documents: a persisted job sends each page's OCR text to the LLM service and
//! stores the cards that come back as drafts with their source (document, page, span); the learner
//! accepts a draft (optionally edited) into the deck or discards it.

pub mod jobs;
pub mod llm_client;

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use flashcards_bootstrap::{
    ApiError,
    error::ErrorBody,
    extract::{Json, OptionalJson, Path, Query},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    auth::CurrentUser,
    cards::{
        insert_card_in,
        model::{Card, CardContent, CardKind, SourceRef},
    },
    db::{QueryResultExt, fetch_json_rows},
    decks::{deck_not_found, owns_deck},
    documents::{check_owned, document_not_found},
    events,
    limits::rates::Work,
    metrics::Operation,
    pagination::{Page, PageQuery},
    partial::not_null,
    timestamp::rfc3339,
};
pub use jobs::{Job, JobStatus};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_generation))
        .routes(routes!(get_job))
        .routes(routes!(job_events))
        .routes(routes!(retry_job))
        .routes(routes!(list_drafts))
        .routes(routes!(accept_draft))
        .routes(routes!(accept_all_drafts))
        .routes(routes!(discard_draft))
}

pub const DEFAULT_MAX_CARDS: i64 = 20;
pub const MAX_CARDS: i64 = 100;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerationInput {
    /// The deck accepted drafts go to.
    pub deck_id: String,
    /// At most this many drafts for the whole document (1–100, default 20).
    pub max_cards: Option<i64>,
    /// Which kinds to make (default both).
    pub kinds: Option<Vec<CardKind>>,
}

#[utoipa::path(post, path = "/api/documents/{id}/generate", tag = "generation",
    params(("id" = String, Path, description = "document id")), request_body = GenerationInput,
    responses((status = 202, body = Job, description = "the job is queued; follow it at /api/jobs/{id}"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "the document has no text yet"),
        (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "the account's generation jobs for the hour are spent")))]
async fn start_generation(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(document_id): Path<String>,
    Json(input): Json<GenerationInput>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    let max_cards = input.max_cards.unwrap_or(DEFAULT_MAX_CARDS);
    if !(1..=MAX_CARDS).contains(&max_cards) {
        return Err(ApiError::invalid(
            "max_cards",
            format!("must be between 1 and {MAX_CARDS}"),
        ));
    }
    let mut kinds = input
        .kinds
        .unwrap_or_else(|| vec![CardKind::Basic, CardKind::Cloze]);
    kinds.sort_by_key(|kind| kind.as_str());
    kinds.dedup();
    if kinds.is_empty() {
        return Err(ApiError::invalid("kinds", "must name basic, cloze or both"));
    }
    let (status, pages): (String, i64) =
        sqlx::query_as("SELECT status, page_count FROM documents WHERE id = $1 AND user_id = $2")
            .bind(&document_id)
            .bind(&user.id)
            .fetch_optional(&state.db.read)
            .await
            .db("loading document")?
            .ok_or_else(document_not_found)?;
    if status != "done" {
        return Err(ApiError::Conflict(format!(
            "the document has no text yet (its OCR status is {status})"
        )));
    }
    if !owns_deck(&state.db.read, &user.id, &input.deck_id).await? {
        return Err(deck_not_found());
    }
    state.take(Work::Generation, &user.id).await?;
    let kinds: Vec<&str> = kinds.iter().map(|kind| kind.as_str()).collect();
    let job = jobs::create(
        &state,
        &user.id,
        &document_id,
        &input.deck_id,
        max_cards,
        &kinds.join(","),
        pages,
    )
    .await?;
    jobs::claim_and_run(&state, &job.id).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

#[utoipa::path(get, path = "/api/jobs/{id}", tag = "generation",
    params(("id" = String, Path)),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody)))]
async fn get_job(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(jobs::load(&state, &user.id, &id).await?))
}

#[utoipa::path(get, path = "/api/jobs/{id}/events", tag = "generation",
    params(("id" = String, Path)),
    responses((status = 200, content_type = "text/event-stream",
            description = "server-sent events: `job` with the job at once and at each change (a \
                page done, drafts made), ending after `done`, `failed` or `failed_retryable`; \
                `error` if it can no longer be read"),
        (status = 404, body = ErrorBody)))]
async fn job_events(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let first = jobs::load(&state, &user.id, &id).await?;
    let load = events::loader(&state, &user.id, &id, |state, user_id, id| async move {
        jobs::load(&state, &user_id, &id).await
    });
    let finished = |job: &Job| job.status.is_final();
    Ok(events::follow(&state.changes, &id, "job", first, load, finished).into_response())
}

#[utoipa::path(post, path = "/api/jobs/{id}/retry", tag = "generation",
    params(("id" = String, Path)),
    responses((status = 202, body = Job), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the job has not failed"),
        (status = 429, body = ErrorBody, description = "the account's generation jobs for the hour are spent")))]
async fn retry_job(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    // Found first, so that asking for a job that is not there costs nothing.
    jobs::load(&state, &user.id, &id).await?;
    state.take(Work::Generation, &user.id).await?;
    jobs::requeue(&state, &user.id, &id).await?;
    jobs::claim_and_run(&state, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(jobs::load(&state, &user.id, &id).await?),
    ))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Draft {
    pub id: String,
    pub job_id: String,
    pub document_id: String,
    pub deck_id: String,
    pub kind: CardKind,
    /// A basic card's question or a cloze card's text.
    pub front: String,
    pub back: String,
    /// Where the card comes from: the document, its page and the span of the page text.
    pub source: SourceRef,
    pub created_at: String,
}

const DRAFT_COLUMNS: [&str; 11] = [
    "id",
    "job_id",
    "document_id",
    "deck_id",
    "kind",
    "front",
    "back",
    "page",
    "span_start",
    "span_end",
    "created_at",
];

#[derive(Deserialize)]
struct DraftRow {
    id: String,
    job_id: String,
    document_id: String,
    deck_id: String,
    kind: String,
    front: String,
    back: String,
    page: i64,
    span_start: i64,
    span_end: i64,
    created_at: i64,
}

impl From<DraftRow> for Draft {
    fn from(row: DraftRow) -> Self {
        Self {
            source: SourceRef {
                document_id: row.document_id.clone(),
                page: Some(row.page),
                start: Some(row.span_start),
                end: Some(row.span_end),
                bbox: None,
            },
            id: row.id,
            job_id: row.job_id,
            document_id: row.document_id,
            deck_id: row.deck_id,
            kind: CardKind::parse(&row.kind).unwrap_or_default(),
            front: row.front,
            back: row.back,
            created_at: rfc3339(row.created_at),
        }
    }
}

fn draft_not_found() -> ApiError {
    ApiError::NotFound("no such draft".to_owned())
}

#[utoipa::path(get, path = "/api/documents/{id}/drafts", tag = "generation",
    params(("id" = String, Path, description = "document id"), PageQuery),
    responses((status = 200, body = Page<Draft>), (status = 404, body = ErrorBody)))]
async fn list_drafts(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(document_id): Path<String>,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<Draft>>, ApiError> {
    let limit = page.limit()?;
    check_owned(&state, &user.id, &document_id).await?;
    let sql = state.db.engine.select_json(
        "drafts",
        &DRAFT_COLUMNS,
        "WHERE document_id = $1 AND user_id = $2 AND id > $3 ORDER BY id LIMIT $4",
    );
    let query = sqlx::query_scalar(&sql)
        .bind(&document_id)
        .bind(&user.id)
        .bind(page.after())
        .bind(i64::from(limit) + 1);
    let rows: Vec<DraftRow> = fetch_json_rows(query, &state.db.read, "listing drafts").await?;
    let drafts = rows.into_iter().map(Draft::from).collect();
    Ok(Json(Page::from_rows(drafts, limit, |d| &d.id)))
}

/// Edits made while accepting a draft; absent fields keep the draft's (and are left out when the
/// web app serializes them).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftEdits {
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false)]
    pub front: Option<String>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false)]
    pub back: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[utoipa::path(post, path = "/api/drafts/{id}/accept", tag = "generation",
    params(("id" = String, Path)), request_body(content = Option<DraftEdits>, description = "optional edits"),
    responses((status = 201, body = Card, description = "the card, now in the job's deck"),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn accept_draft(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    OptionalJson(edits): OptionalJson<Option<DraftEdits>>,
) -> Result<(StatusCode, Json<Card>), ApiError> {
    // No body, `null` or `{}` accepts the draft as it is.
    let edits = edits.flatten().unwrap_or_default();
    let sql =
        state
            .db
            .engine
            .select_json("drafts", &DRAFT_COLUMNS, "WHERE id = $1 AND user_id = $2");
    let query = sqlx::query_scalar(&sql).bind(&id).bind(&user.id);
    let draft: Draft = fetch_json_rows::<_, DraftRow>(query, &state.db.read, "loading draft")
        .await?
        .into_iter()
        .next()
        .map(Draft::from)
        .ok_or_else(draft_not_found)?;
    let content = CardContent {
        kind: draft.kind,
        front: edits.front.unwrap_or(draft.front),
        back: edits.back.unwrap_or(draft.back),
        tags: edits.tags,
        source: Some(draft.source),
    };
    // The draft leaves and the card arrives in one transaction: accepting twice makes one card.
    let mut tx = state.db.begin_write().await.db("starting transaction")?;
    let removed = sqlx::query("DELETE FROM drafts WHERE id = $1 AND user_id = $2")
        .bind(&id)
        .bind(&user.id)
        .execute(&mut *tx)
        .await
        .db("taking the draft")?;
    if removed.rows_affected() == 0 {
        return Err(draft_not_found());
    }
    let card = insert_card_in(
        &mut tx,
        state.clock.now_ms(),
        &user.id,
        &draft.deck_id,
        content,
    )
    .await?;
    tx.commit().await.db("accepting the draft")?;
    state.cards_changed(&draft.deck_id);
    state.metrics.operation(Operation::Create);
    Ok((StatusCode::CREATED, Json(card)))
}

/// What accepting every draft of a document did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AcceptedDrafts {
    /// Drafts that became cards, each in its job's deck.
    pub accepted: usize,
}

#[utoipa::path(post, path = "/api/documents/{id}/drafts/accept", tag = "generation",
    params(("id" = String, Path, description = "document id")),
    responses((status = 200, body = AcceptedDrafts,
            description = "every draft the document had, as it was, is now a card; all or none"),
        (status = 404, body = ErrorBody)))]
async fn accept_all_drafts(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(document_id): Path<String>,
) -> Result<Json<AcceptedDrafts>, ApiError> {
    check_owned(&state, &user.id, &document_id).await?;
    let sql = state.db.engine.select_json(
        "drafts",
        &DRAFT_COLUMNS,
        "WHERE document_id = $1 AND user_id = $2 ORDER BY id",
    );
    let query = sqlx::query_scalar(&sql).bind(&document_id).bind(&user.id);
    let drafts: Vec<Draft> =
        fetch_json_rows::<_, DraftRow>(query, &state.db.read, "loading drafts")
            .await?
            .into_iter()
            .map(Draft::from)
            .collect();
    let now = state.clock.now_ms();
    let mut decks = Vec::new();
    let mut accepted = 0;
    let mut tx = state.db.begin_write().await.db("starting transaction")?;
    for draft in drafts {
        // Only the drafts read above: one a running job adds meanwhile waits for the learner.
        let removed = sqlx::query("DELETE FROM drafts WHERE id = $1 AND user_id = $2")
            .bind(&draft.id)
            .bind(&user.id)
            .execute(&mut *tx)
            .await
            .db("taking a draft")?;
        if removed.rows_affected() == 0 {
            // Accepted or discarded meanwhile.
            continue;
        }
        let content = CardContent {
            kind: draft.kind,
            front: draft.front,
            back: draft.back,
            tags: Vec::new(),
            source: Some(draft.source),
        };
        insert_card_in(&mut tx, now, &user.id, &draft.deck_id, content).await?;
        if !decks.contains(&draft.deck_id) {
            decks.push(draft.deck_id);
        }
        accepted += 1;
    }
    tx.commit().await.db("accepting the drafts")?;
    for deck in &decks {
        state.cards_changed(deck);
    }
    if accepted > 0 {
        state.metrics.operation(Operation::Create);
    }
    Ok(Json(AcceptedDrafts { accepted }))
}

#[utoipa::path(delete, path = "/api/drafts/{id}", tag = "generation",
    params(("id" = String, Path)),
    responses((status = 204, description = "discarded"), (status = 404, body = ErrorBody)))]
async fn discard_draft(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let removed = sqlx::query("DELETE FROM drafts WHERE id = $1 AND user_id = $2")
        .bind(&id)
        .bind(&user.id)
        .execute(&state.db.write)
        .await
        .db("discarding the draft")?;
    if removed.rows_affected() == 0 {
        return Err(draft_not_found());
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use axum::extract::FromRequest;

    use super::*;

    async fn edits(content_type: &str, body: &'static str) -> Result<DraftEdits, ApiError> {
        let request = axum::extract::Request::builder()
            .header(axum::http::header::CONTENT_TYPE, content_type)
            .body(axum::body::Body::from(body))
            .expect("request");
        let OptionalJson(edits) =
            OptionalJson::<Option<DraftEdits>>::from_request(request, &()).await?;
        Ok(edits.flatten().unwrap_or_default())
    }

    async fn refusal(body: &'static str) -> (u16, String) {
        let err = edits("application/json", body).await.expect_err("refused");
        (err.status().as_u16(), err.to_string())
    }

    #[tokio::test]
    async fn no_edits_accept_the_draft_as_it_is() {
        for body in ["", "  ", "null", "{}"] {
            let edits = edits("application/json", body).await.expect("accepted");
            assert_eq!((edits.front, edits.back), (None, None));
        }
        let edits = edits("application/json", r#"{"back": "b", "tags": ["t"]}"#)
            .await
            .expect("edits");
        assert_eq!(edits.back.as_deref(), Some("b"));
        assert_eq!(edits.tags, ["t"]);
    }

    #[tokio::test]
    async fn bad_edits_name_the_field_and_bad_json_is_a_400() {
        let (status, detail) = refusal(r#"{"front": null}"#).await;
        assert_eq!(status, 422);
        assert!(detail.starts_with("front:"), "{detail}");
        let (status, detail) = refusal(r#"{"colour": "red"}"#).await;
        assert_eq!(status, 422);
        assert!(detail.starts_with("colour:"), "{detail}");
        assert_eq!(refusal("{\"front\":").await.0, 400);
    }

    #[tokio::test]
    async fn edits_a_form_could_send_are_refused() {
        let refused = edits("text/plain", r#"{"front": "f"}"#)
            .await
            .expect_err("text/plain");
        assert_eq!(refused.status().as_u16(), 415);
    }
}
