//! Studying: which items are due, and recording a review with its FSRS schedule.

pub mod review_queue;
pub mod scheduler;
pub mod stats;

use axum::extract::State;
use flashcards_bootstrap::{
    ApiError,
    error::ErrorBody,
    extract::{Json, Path, Query},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    auth::CurrentUser,
    cards::{cloze, model::CardKind},
    db::{QueryResultExt, fetch_json_rows},
    decks::deck_not_found,
    metrics::Operation,
    pagination::check_limit,
    timestamp::rfc3339,
};
use fsrs::{FSRS, MemoryState};
use review_queue::ReviewJob;
use scheduler::{ItemState, Rating, Scheduled};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(study_queue))
        .routes(routes!(due_counts))
        .routes(routes!(stats::deck_stats))
        .routes(routes!(review))
}

const DEFAULT_STUDY_LIMIT: u32 = 100;
const MAX_STUDY_LIMIT: u32 = 500;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StudyQuery {
    /// Most items to return (1–500, default 100).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
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
    /// How long each rating would put the item away, so a study screen can show it on the button.
    pub intervals: NextIntervals,
}

/// Seconds from now until an item is due again after each rating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NextIntervals {
    pub again_secs: i64,
    pub hard_secs: i64,
    pub good_secs: i64,
    pub easy_secs: i64,
}

impl NextIntervals {
    /// Each rating's outcome (`scheduler::outcomes`) as seconds after `now_ms`.
    pub fn after(outcomes: &[Scheduled; 4], now_ms: i64) -> Self {
        let secs = |outcome: &Scheduled| (outcome.due_ms - now_ms).max(0) / 1000;
        let [again, hard, good, easy] = outcomes;
        Self {
            again_secs: secs(again),
            hard_secs: secs(hard),
            good_secs: secs(good),
            easy_secs: secs(easy),
        }
    }

    /// The seconds for `rating`.
    pub fn of(&self, rating: Rating) -> i64 {
        match rating {
            Rating::Again => self.again_secs,
            Rating::Hard => self.hard_secs,
            Rating::Good => self.good_secs,
            Rating::Easy => self.easy_secs,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StudyQueue {
    /// The deck's name, so a study screen needs no second call.
    pub deck_name: String,
    /// The time the queue was computed for.
    pub now: String,
    /// Due items, most overdue first.
    pub items: Vec<StudyItem>,
}

const QUEUE_COLUMNS: [&str; 11] = [
    "card_id",
    "ordinal",
    "due",
    "reps",
    "lapses",
    "kind",
    "front",
    "back",
    "stability",
    "difficulty",
    "last_review",
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
    stability: Option<f64>,
    difficulty: Option<f64>,
    last_review: Option<i64>,
}

impl QueueRow {
    fn into_item(self, fsrs: &FSRS, now_ms: i64) -> Result<StudyItem, ApiError> {
        // The database holds f64; FSRS computes in f32.
        #[allow(clippy::cast_possible_truncation)]
        let memory = self
            .stability
            .zip(self.difficulty)
            .map(|(stability, difficulty)| MemoryState {
                stability: stability as f32,
                difficulty: difficulty as f32,
            });
        let state = ItemState {
            memory,
            last_review_ms: self.last_review,
            reps: self.reps,
            lapses: self.lapses,
        };
        let outcomes = scheduler::outcomes(fsrs, &state, now_ms)
            .map_err(|err| ApiError::internal("scheduling a stored item", err))?;
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
            intervals: NextIntervals::after(&outcomes, now_ms),
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
    let limit = check_limit(query.limit, DEFAULT_STUDY_LIMIT, MAX_STUDY_LIMIT)?;
    let now = state.clock.now_ms();
    let sql = state.db.engine.json_rows(
        "SELECT s.card_id AS card_id, s.ordinal AS ordinal, s.due AS due, s.reps AS reps, \
         s.lapses AS lapses, c.kind AS kind, c.front AS front, c.back AS back, \
         s.stability AS stability, s.difficulty AS difficulty, s.last_review AS last_review \
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
    // The name comes with the ownership check: another user's deck has none.
    let deck_name: String =
        sqlx::query_scalar("SELECT name FROM decks WHERE id = $1 AND user_id = $2")
            .bind(&deck_id)
            .bind(&user.id)
            .fetch_optional(&state.db.read)
            .await
            .db("loading the deck's name")?
            .ok_or_else(deck_not_found)?;
    let items = rows
        .into_iter()
        .map(|row| row.into_item(&state.fsrs, now))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(StudyQueue {
        deck_name,
        now: rfc3339(now),
        items,
    }))
}

/// How many of a deck's items are due now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DueCount {
    pub deck_id: String,
    pub due: i64,
}

#[utoipa::path(get, path = "/api/study/due", tag = "study",
    responses((status = 200, body = Vec<DueCount>,
               description = "every deck of the user's with an item due now; decks with none are left out")))]
async fn due_counts(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Json<Vec<DueCount>>, ApiError> {
    let sql = state.db.engine.json_rows(
        "SELECT deck_id, COUNT(*) AS due FROM study_items \
         WHERE user_id = $1 AND due <= $2 GROUP BY deck_id",
        &["deck_id", "due"],
        "deck_id",
    );
    let query = sqlx::query_scalar(&sql)
        .bind(&user.id)
        .bind(state.clock.now_ms());
    let counts = fetch_json_rows(query, &state.db.read, "counting due items").await?;
    Ok(Json(counts))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewInput {
    pub rating: Rating,
    /// Which item of the card was reviewed; may be left out when the card has only one.
    pub ordinal: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
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
    let outcome = state
        .reviews
        .submit(ReviewJob {
            user_id: user.id,
            card_id,
            ordinal: input.ordinal,
            rating: input.rating,
        })
        .await?;
    state.metrics.operation(Operation::Review);
    Ok(Json(outcome))
}
