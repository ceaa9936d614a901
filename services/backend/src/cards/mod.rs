//! Cards in a deck: CRUD, with the study items each card makes kept in step with its content.

pub mod anki;
pub mod cloze;
pub mod model;
pub mod page_cache;
pub mod transfer;

use axum::{
    body::Bytes,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use flashcards_bootstrap::{
    ApiError,
    error::ErrorBody,
    extract::{Json, Path, Query},
};
use serde::Deserialize;
use sqlx::{Any, Transaction};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    auth::CurrentUser,
    db::{Engine, QueryResultExt, fetch_json_rows},
    decks::{deck_not_found, owns_deck, owns_deck_in},
    metrics::Operation,
    pagination::{Page, PageQuery},
    timestamp::rfc3339,
};
use model::{Card, CardChanges, CardContent, CardKind, NewCard, SourceRef, ordinals_of};
use page_cache::PageKey;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_cards, create_card))
        .routes(routes!(get_card, update_card, delete_card))
        .routes(routes!(transfer::export_csv))
        .routes(routes!(transfer::export_apkg))
}

const CARD_COLUMNS: [&str; 13] = [
    "id",
    "deck_id",
    "kind",
    "front",
    "back",
    "tags",
    "source_document_id",
    "source_page",
    "source_start",
    "source_end",
    "source_bbox",
    "created_at",
    "updated_at",
];

pub fn card_not_found() -> ApiError {
    ApiError::NotFound("no such card".to_owned())
}

#[derive(Deserialize)]
struct CardRow {
    id: String,
    deck_id: String,
    kind: String,
    front: String,
    back: String,
    tags: String,
    source_document_id: Option<String>,
    source_page: Option<i64>,
    source_start: Option<i64>,
    source_end: Option<i64>,
    source_bbox: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl CardRow {
    fn into_card(self) -> Result<Card, ApiError> {
        let kind = CardKind::parse(&self.kind).ok_or_else(|| {
            ApiError::internal("reading card", format!("unknown kind {:?}", self.kind))
        })?;
        let source = self.source_document_id.map(|document_id| SourceRef {
            document_id,
            page: self.source_page,
            start: self.source_start,
            end: self.source_end,
            bbox: self
                .source_bbox
                .and_then(|text| serde_json::from_str(&text).ok()),
        });
        Ok(Card {
            id: self.id,
            deck_id: self.deck_id,
            ordinals: ordinals_of(kind, &self.front),
            kind,
            front: self.front,
            back: self.back,
            tags: self.tags.split_whitespace().map(str::to_owned).collect(),
            source,
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
        })
    }
}

/// Up to `limit` of a deck's cards after id `after` (`""` for the first), in id order.
pub async fn card_page(
    state: &AppState,
    user_id: &str,
    deck_id: &str,
    after: &str,
    limit: u32,
) -> Result<Vec<Card>, ApiError> {
    let sql = state.db.engine.select_json(
        "cards",
        &CARD_COLUMNS,
        "WHERE deck_id = $1 AND user_id = $2 AND id > $3 ORDER BY id LIMIT $4",
    );
    let query = sqlx::query_scalar(&sql)
        .bind(deck_id)
        .bind(user_id)
        .bind(after)
        .bind(i64::from(limit));
    let rows: Vec<CardRow> = fetch_json_rows(query, &state.db.read, "listing cards").await?;
    rows.into_iter().map(CardRow::into_card).collect()
}

/// Loads one of the user's cards; `tail_suffix` is appended to the `WHERE` (a row lock, or nothing).
async fn load_card<'c, E>(
    executor: E,
    engine: Engine,
    user_id: &str,
    card_id: &str,
    tail_suffix: &str,
) -> Result<Card, ApiError>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let sql = engine.select_json(
        "cards",
        &CARD_COLUMNS,
        &format!("WHERE id = $1 AND user_id = $2{tail_suffix}"),
    );
    let query = sqlx::query_scalar(&sql).bind(card_id).bind(user_id);
    let rows: Vec<CardRow> = fetch_json_rows(query, executor, "loading card").await?;
    rows.into_iter()
        .next()
        .ok_or_else(card_not_found)?
        .into_card()
}

fn bbox_text(source: Option<&SourceRef>) -> Option<String> {
    source
        .and_then(|s| s.bbox)
        .and_then(|bbox| serde_json::to_string(&bbox).ok())
}

/// Adds the study items a card's content makes and removes those it no longer makes; items that stay
/// keep their memory state.
async fn sync_study_items(
    tx: &mut Transaction<'_, Any>,
    card_id: &str,
    deck_id: &str,
    user_id: &str,
    ordinals: &[u32],
    now_ms: i64,
) -> Result<(), ApiError> {
    let keep = ordinals
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    // `keep` is built from integers only, so formatting it into the statement is safe.
    sqlx::query(&format!(
        "DELETE FROM study_items WHERE card_id = $1 AND ordinal NOT IN ({keep})"
    ))
    .bind(card_id)
    .execute(&mut **tx)
    .await
    .db("removing study items")?;
    for ordinal in ordinals {
        sqlx::query(
            "INSERT INTO study_items (card_id, ordinal, deck_id, user_id, due) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (card_id, ordinal) DO NOTHING",
        )
        .bind(card_id)
        .bind(i64::from(*ordinal))
        .bind(deck_id)
        .bind(user_id)
        .bind(now_ms)
        .execute(&mut **tx)
        .await
        .db("adding study items")?;
    }
    Ok(())
}

#[utoipa::path(get, path = "/api/decks/{id}/cards", tag = "cards",
    params(("id" = String, Path, description = "deck id"), PageQuery),
    responses((status = 200, body = Page<Card>), (status = 404, body = ErrorBody)))]
async fn list_cards(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(deck_id): Path<String>,
    Query(page): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let limit = page.limit()?;
    let key = PageKey {
        user_id: user.id.clone(),
        deck_id: deck_id.clone(),
        after: page.after().to_owned(),
        limit,
    };
    if let Some(body) = state.pages.as_ref().and_then(|pages| pages.get(&key)) {
        state.metrics.operation(Operation::Read);
        return Ok(json_body(body));
    }
    let version = state.pages.as_ref().map(|pages| pages.version(&deck_id));
    let sql = state.db.engine.select_json(
        "cards",
        &CARD_COLUMNS,
        "WHERE deck_id = $1 AND user_id = $2 AND id > $3 ORDER BY id LIMIT $4",
    );
    let query = sqlx::query_scalar(&sql)
        .bind(&deck_id)
        .bind(&user.id)
        .bind(page.after())
        .bind(i64::from(limit) + 1);
    let rows: Vec<CardRow> = fetch_json_rows(query, &state.db.read, "listing cards").await?;
    // Cards carry their owner, so rows prove the deck is the user's; only an empty page needs a check.
    if rows.is_empty() && !owns_deck(&state.db.read, &user.id, &deck_id).await? {
        return Err(deck_not_found());
    }
    let cards = rows
        .into_iter()
        .map(CardRow::into_card)
        .collect::<Result<Vec<_>, _>>()?;
    let body = Bytes::from(
        serde_json::to_vec(&Page::from_rows(cards, limit, |c| &c.id))
            .map_err(|err| ApiError::internal("encoding cards", err))?,
    );
    if let (Some(pages), Some(version)) = (&state.pages, version) {
        pages.put(key, version, body.clone());
    }
    state.metrics.operation(Operation::Read);
    Ok(json_body(body))
}

fn json_body(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[utoipa::path(post, path = "/api/decks/{id}/cards", tag = "cards",
    params(("id" = String, Path, description = "deck id")), request_body = NewCard,
    responses((status = 201, body = Card), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_card(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(deck_id): Path<String>,
    Json(input): Json<NewCard>,
) -> Result<(StatusCode, Json<Card>), ApiError> {
    let content = CardContent {
        kind: input.kind,
        front: input.front,
        back: input.back,
        tags: input.tags,
        source: input.source,
    };
    let card = insert_card(&state, &user.id, &deck_id, content).await?;
    Ok((StatusCode::CREATED, Json(card)))
}

/// Validates and stores a new card in one of the user's decks, with its study items.
pub async fn insert_card(
    state: &AppState,
    user_id: &str,
    deck_id: &str,
    content: CardContent,
) -> Result<Card, ApiError> {
    let mut tx = state.db.begin_write().await.db("starting transaction")?;
    let card = insert_card_in(&mut tx, state.clock.now_ms(), user_id, deck_id, content).await?;
    tx.commit().await.db("committing card")?;
    state.cards_changed(deck_id);
    state.metrics.operation(Operation::Create);
    Ok(card)
}

/// [`insert_card`] inside the caller's transaction; the caller commits, then calls
/// `state.cards_changed(deck_id)` and counts the operation.
pub async fn insert_card_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    now: i64,
    user_id: &str,
    deck_id: &str,
    content: CardContent,
) -> Result<Card, ApiError> {
    let (content, ordinals) = content.validate()?;
    let id = uuid::Uuid::now_v7().to_string();
    let source = content.source.as_ref();
    // Inserting through the owner's deck row makes the ownership check and the write one statement.
    let inserted = sqlx::query(
        "INSERT INTO cards (id, deck_id, user_id, kind, front, back, tags, source_document_id, \
         source_page, source_start, source_end, source_bbox, created_at, updated_at) \
         SELECT $1, id, user_id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11 \
         FROM decks WHERE id = $12 AND user_id = $13",
    )
    .bind(&id)
    .bind(content.kind.as_str())
    .bind(&content.front)
    .bind(&content.back)
    .bind(content.tags.join(" "))
    .bind(source.map(|s| s.document_id.clone()))
    .bind(source.and_then(|s| s.page))
    .bind(source.and_then(|s| s.start))
    .bind(source.and_then(|s| s.end))
    .bind(bbox_text(source))
    .bind(now)
    .bind(deck_id)
    .bind(user_id)
    .execute(&mut **tx)
    .await
    .db("creating card")?;
    if inserted.rows_affected() == 0 {
        return Err(deck_not_found());
    }
    sync_study_items(tx, &id, deck_id, user_id, &ordinals, now).await?;
    Ok(Card {
        id,
        deck_id: deck_id.to_owned(),
        kind: content.kind,
        front: content.front,
        back: content.back,
        tags: content.tags,
        source: content.source,
        ordinals,
        created_at: rfc3339(now),
        updated_at: rfc3339(now),
    })
}

#[utoipa::path(get, path = "/api/cards/{id}", tag = "cards", params(("id" = String, Path)),
    responses((status = 200, body = Card), (status = 404, body = ErrorBody)))]
async fn get_card(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Card>, ApiError> {
    let card = load_card(&state.db.read, state.db.engine, &user.id, &id, "").await?;
    state.metrics.operation(Operation::Read);
    Ok(Json(card))
}

#[utoipa::path(patch, path = "/api/cards/{id}", tag = "cards", params(("id" = String, Path)),
    request_body = CardChanges,
    responses((status = 200, body = Card), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_card(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Json(changes): Json<CardChanges>,
) -> Result<Json<Card>, ApiError> {
    let engine = state.db.engine;
    // Read, check and write in one transaction, so concurrent edits cannot undo each other.
    let mut tx = state.db.begin_write().await.db("starting transaction")?;
    let current = load_card(&mut *tx, engine, &user.id, &id, engine.lock_rows()).await?;
    let (content, ordinals) = CardContent {
        kind: current.kind,
        front: changes.front.unwrap_or(current.front),
        back: changes.back.unwrap_or(current.back),
        tags: changes.tags.unwrap_or(current.tags),
        source: changes.source.unwrap_or(current.source),
    }
    .validate()?;
    let deck_id = changes.deck_id.unwrap_or_else(|| current.deck_id.clone());
    if !owns_deck_in(&mut *tx, &user.id, &deck_id, engine.lock_rows()).await? {
        return Err(ApiError::invalid("deck_id", "no such deck"));
    }
    let now = state.clock.now_ms();
    let source = content.source.as_ref();
    // The card was read in this transaction (locked on PostgreSQL), so the update finds it.
    sqlx::query(
        "UPDATE cards SET deck_id = $1, front = $2, back = $3, tags = $4, source_document_id = $5, \
         source_page = $6, source_start = $7, source_end = $8, source_bbox = $9, updated_at = $10 \
         WHERE id = $11 AND user_id = $12",
    )
    .bind(&deck_id)
    .bind(&content.front)
    .bind(&content.back)
    .bind(content.tags.join(" "))
    .bind(source.map(|s| s.document_id.clone()))
    .bind(source.and_then(|s| s.page))
    .bind(source.and_then(|s| s.start))
    .bind(source.and_then(|s| s.end))
    .bind(bbox_text(source))
    .bind(now)
    .bind(&id)
    .bind(&user.id)
    .execute(&mut *tx)
    .await
    .db("updating card")?;
    sqlx::query("UPDATE study_items SET deck_id = $1 WHERE card_id = $2")
        .bind(&deck_id)
        .bind(&id)
        .execute(&mut *tx)
        .await
        .db("moving study items")?;
    sync_study_items(&mut tx, &id, &deck_id, &user.id, &ordinals, now).await?;
    tx.commit().await.db("committing card")?;
    state.cards_changed(&current.deck_id);
    state.cards_changed(&deck_id);
    state.metrics.operation(Operation::Update);
    Ok(Json(Card {
        id,
        deck_id,
        kind: content.kind,
        front: content.front,
        back: content.back,
        tags: content.tags,
        source: content.source,
        ordinals,
        created_at: current.created_at,
        updated_at: rfc3339(now),
    }))
}

#[utoipa::path(delete, path = "/api/cards/{id}", tag = "cards", params(("id" = String, Path)),
    responses((status = 204, description = "the card and its study items are gone; review history is kept"),
              (status = 404, body = ErrorBody)))]
async fn delete_card(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let deck_id: String =
        sqlx::query_scalar("DELETE FROM cards WHERE id = $1 AND user_id = $2 RETURNING deck_id")
            .bind(&id)
            .bind(&user.id)
            .fetch_optional(&state.db.write)
            .await
            .db("deleting card")?
            .ok_or_else(card_not_found)?;
    state.cards_changed(&deck_id);
    state.metrics.operation(Operation::Delete);
    Ok(StatusCode::NO_CONTENT)
}
