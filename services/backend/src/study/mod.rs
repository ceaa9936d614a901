//! Studying: which items are due, and recording a review with its FSRS schedule.

pub mod scheduler;

use axum::extract::State;
use flashcards_bootstrap::{
    ApiError,
    error::ErrorBody,
    extract::{Json, Path, Query},
};
use fsrs::MemoryState;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row, any::AnyRow};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    auth::CurrentUser,
    cards::{card_not_found, cloze, model::CardKind},
    db::{QueryResultExt, fetch_json_rows},
    decks::{deck_not_found, owns_deck},
    metrics::Operation,
    timestamp::rfc3339,
};
use scheduler::{ItemState, Rating, schedule};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(study_queue))
        .routes(routes!(review))
}

const DEFAULT_STUDY_LIMIT: u32 = 100;
const MAX_STUDY_LIMIT: u32 = 500;
/// Concurrent reviews of one item are serialised by retrying on a stale read this many times.
const REVIEW_ATTEMPTS: usize = 5;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StudyQuery {
    /// Most items to return (1–500, default 100).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StudyItem {
    pub card_id: String,
    /// Which item of the card: 1 for a basic card, the cloze number for a cloze card.
    pub ordinal: u32,
    pub kind: CardKind,
    /// What to show first (cloze deletions of this ordinal hidden).
    pub prompt: String,
    /// What to show after the learner answers.
    pub answer: String,
    /// A basic card's back or a cloze card's extra notes.
    pub extra: String,
    pub due: String,
    /// `true` before the first review.
    pub new: bool,
    pub reps: i64,
    pub lapses: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StudyQueue {
    /// The time the queue was computed for.
    pub now: String,
    /// Due items, most overdue first.
    pub items: Vec<StudyItem>,
}

const QUEUE_COLUMNS: [&str; 8] = [
    "card_id", "ordinal", "due", "reps", "lapses", "kind", "front", "back",
];

#[derive(Deserialize)]
struct QueueRow {
    card_id: String,
    ordinal: i64,
    due: i64,
    reps: i64,
    lapses: i64,
    kind: String,
    front: String,
    back: String,
}

impl QueueRow {
    fn into_item(self) -> Result<StudyItem, ApiError> {
        let kind = CardKind::parse(&self.kind).unwrap_or_default();
        let ordinal = u32::try_from(self.ordinal).unwrap_or_default();
        let (prompt, answer) = match kind {
            CardKind::Basic => (self.front, self.back.clone()),
            CardKind::Cloze => cloze::render(&self.front, ordinal)
                .map_err(|err| ApiError::internal("rendering a stored cloze", err))?,
        };
        Ok(StudyItem {
            card_id: self.card_id,
            ordinal,
            kind,
            prompt,
            answer,
            extra: self.back,
            due: rfc3339(self.due),
            new: self.reps == 0,
            reps: self.reps,
            lapses: self.lapses,
        })
    }
}

#[utoipa::path(get, path = "/api/decks/{id}/study", tag = "study",
    params(("id" = String, Path, description = "deck id"), StudyQuery),
    responses((status = 200, body = StudyQueue), (status = 404, body = ErrorBody)))]
async fn study_queue(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(deck_id): Path<String>,
    Query(query): Query<StudyQuery>,
) -> Result<Json<StudyQueue>, ApiError> {
    let limit = match query.limit {
        None => DEFAULT_STUDY_LIMIT,
        Some(limit) if (1..=MAX_STUDY_LIMIT).contains(&limit) => limit,
        Some(_) => {
            return Err(ApiError::invalid(
                "limit",
                format!("must be between 1 and {MAX_STUDY_LIMIT}"),
            ));
        }
    };
    if !owns_deck(&state.db.read, &user.id, &deck_id).await? {
        return Err(deck_not_found());
    }
    let now = state.clock.now_ms();
    let sql = state.db.engine.json_rows(
        "SELECT s.card_id AS card_id, s.ordinal AS ordinal, s.due AS due, s.reps AS reps, \
         s.lapses AS lapses, c.kind AS kind, c.front AS front, c.back AS back \
         FROM study_items s JOIN cards c ON c.id = s.card_id \
         WHERE s.deck_id = $1 AND s.user_id = $2 AND s.due <= $3 \
         ORDER BY s.due, s.card_id, s.ordinal LIMIT $4",
        &QUEUE_COLUMNS,
        "due, card_id, ordinal",
    );
    let query = sqlx::query_scalar(&sql)
        .bind(&deck_id)
        .bind(&user.id)
        .bind(now)
        .bind(i64::from(limit));
    let rows: Vec<QueueRow> = fetch_json_rows(query, &state.db.read, "loading due items").await?;
    let items = rows
        .into_iter()
        .map(QueueRow::into_item)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(StudyQueue {
        now: rfc3339(now),
        items,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewInput {
    pub rating: Rating,
    /// Which item of the card was reviewed; may be left out when the card has only one.
    pub ordinal: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewOutcome {
    pub card_id: String,
    pub ordinal: u32,
    pub rating: Rating,
    pub reviewed_at: String,
    /// When the item is due next.
    pub due: String,
    pub stability: f64,
    pub difficulty: f64,
    pub elapsed_days: u32,
    pub reps: i64,
    pub lapses: i64,
}

struct StoredItem {
    ordinal: i64,
    state: ItemState,
}

fn stored_item_from_row(row: &AnyRow) -> Result<StoredItem, sqlx::Error> {
    let stability: Option<f64> = row.try_get("stability")?;
    let difficulty: Option<f64> = row.try_get("difficulty")?;
    // The database holds f64; FSRS computes in f32.
    #[allow(clippy::cast_possible_truncation)]
    let memory = stability.zip(difficulty).map(|(s, d)| MemoryState {
        stability: s as f32,
        difficulty: d as f32,
    });
    Ok(StoredItem {
        ordinal: row.try_get("ordinal")?,
        state: ItemState {
            memory,
            last_review_ms: row.try_get("last_review")?,
            reps: row.try_get("reps")?,
            lapses: row.try_get("lapses")?,
        },
    })
}

async fn load_item(
    conn: &mut AnyConnection,
    user_id: &str,
    card_id: &str,
    ordinal: Option<u32>,
) -> Result<StoredItem, ApiError> {
    let rows = sqlx::query(
        "SELECT ordinal, stability, difficulty, last_review, reps, lapses FROM study_items \
         WHERE card_id = $1 AND user_id = $2 ORDER BY ordinal",
    )
    .bind(card_id)
    .bind(user_id)
    .fetch_all(conn)
    .await
    .db("loading study item")?;
    let mut items = rows
        .iter()
        .map(stored_item_from_row)
        .collect::<Result<Vec<_>, _>>()
        .db("reading study item")?;
    if items.is_empty() {
        return Err(card_not_found());
    }
    match ordinal {
        Some(wanted) => {
            let position = items
                .iter()
                .position(|item| item.ordinal == i64::from(wanted))
                .ok_or_else(|| {
                    ApiError::invalid("ordinal", format!("this card has no study item {wanted}"))
                })?;
            Ok(items.swap_remove(position))
        }
        None if items.len() == 1 => Ok(items.swap_remove(0)),
        None => Err(ApiError::invalid(
            "ordinal",
            format!("required: this card has {} study items", items.len()),
        )),
    }
}

#[utoipa::path(post, path = "/api/cards/{id}/review", tag = "study",
    params(("id" = String, Path, description = "card id")), request_body = ReviewInput,
    responses((status = 200, body = ReviewOutcome), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the item kept changing under concurrent reviews"),
              (status = 422, body = ErrorBody)))]
async fn review(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(card_id): Path<String>,
    Json(input): Json<ReviewInput>,
) -> Result<Json<ReviewOutcome>, ApiError> {
    for _ in 0..REVIEW_ATTEMPTS {
        let mut tx = state.db.write.begin().await.db("starting transaction")?;
        let item = load_item(&mut tx, &user.id, &card_id, input.ordinal).await?;
        let now = state.clock.now_ms();
        let next = schedule(&state.fsrs, &item.state, input.rating, now)
            .map_err(|err| ApiError::internal("scheduling review", err))?;
        // Compare-and-set on `reps`: on PostgreSQL a concurrent review of the same item makes this
        // update miss, and the loop recomputes from the new state. (SQLite's single writer connection
        // already serialises reviews.)
        let updated = sqlx::query(
            "UPDATE study_items SET due = $1, stability = $2, difficulty = $3, last_review = $4, \
             reps = $5, lapses = $6 WHERE card_id = $7 AND ordinal = $8 AND reps = $9",
        )
        .bind(next.due_ms)
        .bind(f64::from(next.memory.stability))
        .bind(f64::from(next.memory.difficulty))
        .bind(now)
        .bind(next.reps)
        .bind(next.lapses)
        .bind(&card_id)
        .bind(item.ordinal)
        .bind(item.state.reps)
        .execute(&mut *tx)
        .await
        .db("updating study item")?;
        if updated.rows_affected() == 0 {
            continue;
        }
        sqlx::query(
            "INSERT INTO review_logs (id, user_id, card_id, ordinal, rating, reviewed_at, \
             elapsed_days, stability, difficulty, due) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&user.id)
        .bind(&card_id)
        .bind(item.ordinal)
        .bind(input.rating.number())
        .bind(now)
        .bind(i64::from(next.elapsed_days))
        .bind(f64::from(next.memory.stability))
        .bind(f64::from(next.memory.difficulty))
        .bind(next.due_ms)
        .execute(&mut *tx)
        .await
        .db("logging review")?;
        tx.commit().await.db("committing review")?;
        state.metrics.operation(Operation::Review);
        return Ok(Json(ReviewOutcome {
            card_id,
            ordinal: u32::try_from(item.ordinal).unwrap_or_default(),
            rating: input.rating,
            reviewed_at: rfc3339(now),
            due: rfc3339(next.due_ms),
            stability: f64::from(next.memory.stability),
            difficulty: f64::from(next.memory.difficulty),
            elapsed_days: next.elapsed_days,
            reps: next.reps,
            lapses: next.lapses,
        }));
    }
    Err(ApiError::Conflict(
        "this item was reviewed concurrently; try again".to_owned(),
    ))
}
