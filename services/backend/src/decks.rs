//! Decks: named collections of cards, each owned by one user.

use axum::{extract::State, http::StatusCode};
use flashcards_bootstrap::{
    ApiError,
    error::ErrorBody,
    extract::{Json, Path, Query},
};
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    auth::CurrentUser,
    db::{QueryResultExt, fetch_json_rows},
    pagination::{Page, PageQuery},
    partial::not_null,
    timestamp::rfc3339,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_decks, create_deck))
        .routes(routes!(get_deck, update_deck, delete_deck))
}

const MAX_NAME_LENGTH: usize = 200;
const MAX_DESCRIPTION_LENGTH: usize = 10_000;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Deck {
    pub id: String,
    pub name: String,
    pub description: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDeck {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// Serialized (by the web app), absent fields are left out.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeckChanges {
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false)]
    pub name: Option<String>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false)]
    pub description: Option<String>,
}

fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LENGTH {
        return Err(ApiError::invalid(
            "name",
            format!("must be 1 to {MAX_NAME_LENGTH} characters"),
        ));
    }
    Ok(name.to_owned())
}

fn check_description(description: &str) -> Result<(), ApiError> {
    if description.chars().count() > MAX_DESCRIPTION_LENGTH {
        return Err(ApiError::invalid(
            "description",
            format!("must be at most {MAX_DESCRIPTION_LENGTH} characters"),
        ));
    }
    Ok(())
}

const DECK_COLUMNS: [&str; 5] = ["id", "name", "description", "created_at", "updated_at"];

#[derive(Deserialize)]
struct DeckRow {
    id: String,
    name: String,
    description: String,
    created_at: i64,
    updated_at: i64,
}

impl From<DeckRow> for Deck {
    fn from(row: DeckRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            description: row.description,
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
        }
    }
}

pub fn deck_not_found() -> ApiError {
    ApiError::NotFound("no such deck".to_owned())
}

/// Whether `user_id` owns deck `deck_id`; another user's deck is indistinguishable from none.
pub async fn owns_deck(db: &AnyPool, user_id: &str, deck_id: &str) -> Result<bool, ApiError> {
    owns_deck_in(db, user_id, deck_id, "").await
}

/// [`owns_deck`] on any executor (a transaction), with `lock` appended (see `Engine::lock_rows`).
pub async fn owns_deck_in<'c, E>(
    executor: E,
    user_id: &str,
    deck_id: &str,
    lock: &str,
) -> Result<bool, ApiError>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let sql = format!("SELECT 1 FROM decks WHERE id = $1 AND user_id = $2{lock}");
    Ok(sqlx::query(&sql)
        .bind(deck_id)
        .bind(user_id)
        .fetch_optional(executor)
        .await
        .db("checking deck")?
        .is_some())
}

/// One of the user's decks; another user's is [`deck_not_found`].
pub async fn load_deck(state: &AppState, user_id: &str, deck_id: &str) -> Result<Deck, ApiError> {
    let sql = state
        .db
        .engine
        .select_json("decks", &DECK_COLUMNS, "WHERE id = $1 AND user_id = $2");
    let query = sqlx::query_scalar(&sql).bind(deck_id).bind(user_id);
    let rows: Vec<DeckRow> = fetch_json_rows(query, &state.db.read, "loading deck").await?;
    rows.into_iter()
        .next()
        .map(Deck::from)
        .ok_or_else(deck_not_found)
}

#[utoipa::path(get, path = "/api/decks", tag = "decks", params(PageQuery),
    responses((status = 200, body = Page<Deck>), (status = 401, body = ErrorBody)))]
async fn list_decks(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<Deck>>, ApiError> {
    let limit = page.limit()?;
    let sql = state.db.engine.select_json(
        "decks",
        &DECK_COLUMNS,
        "WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    );
    let query = sqlx::query_scalar(&sql)
        .bind(&user.id)
        .bind(page.after())
        .bind(i64::from(limit) + 1);
    let rows: Vec<DeckRow> = fetch_json_rows(query, &state.db.read, "listing decks").await?;
    let decks = rows.into_iter().map(Deck::from).collect();
    Ok(Json(Page::from_rows(decks, limit, |d| &d.id)))
}

#[utoipa::path(post, path = "/api/decks", tag = "decks", request_body = NewDeck,
    responses((status = 201, body = Deck), (status = 422, body = ErrorBody)))]
async fn create_deck(
    State(state): State<AppState>,
    user: CurrentUser,
    Json(input): Json<NewDeck>,
) -> Result<(StatusCode, Json<Deck>), ApiError> {
    let name = check_name(&input.name)?;
    check_description(&input.description)?;
    let id = uuid::Uuid::now_v7().to_string();
    let now = state.clock.now_ms();
    sqlx::query(
        "INSERT INTO decks (id, user_id, name, description, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(&id)
    .bind(&user.id)
    .bind(&name)
    .bind(&input.description)
    .bind(now)
    .execute(&state.db.write)
    .await
    .db("creating deck")?;
    Ok((
        StatusCode::CREATED,
        Json(Deck {
            id,
            name,
            description: input.description,
            created_at: rfc3339(now),
            updated_at: rfc3339(now),
        }),
    ))
}

#[utoipa::path(get, path = "/api/decks/{id}", tag = "decks", params(("id" = String, Path)),
    responses((status = 200, body = Deck), (status = 404, body = ErrorBody)))]
async fn get_deck(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Deck>, ApiError> {
    load_deck(&state, &user.id, &id).await.map(Json)
}

#[utoipa::path(patch, path = "/api/decks/{id}", tag = "decks", params(("id" = String, Path)),
    request_body = DeckChanges,
    responses((status = 200, body = Deck), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_deck(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Json(changes): Json<DeckChanges>,
) -> Result<Json<Deck>, ApiError> {
    let name = changes.name.as_deref().map(check_name).transpose()?;
    if let Some(description) = &changes.description {
        check_description(description)?;
    }
    let updated = sqlx::query(
        "UPDATE decks SET name = COALESCE($1, name), description = COALESCE($2, description), \
         updated_at = $3 WHERE id = $4 AND user_id = $5",
    )
    .bind(name)
    .bind(changes.description)
    .bind(state.clock.now_ms())
    .bind(&id)
    .bind(&user.id)
    .execute(&state.db.write)
    .await
    .db("updating deck")?;
    if updated.rows_affected() == 0 {
        return Err(deck_not_found());
    }
    load_deck(&state, &user.id, &id).await.map(Json)
}

#[utoipa::path(delete, path = "/api/decks/{id}", tag = "decks", params(("id" = String, Path)),
    responses((status = 204, description = "the deck and its cards are gone; review history is kept"),
              (status = 404, body = ErrorBody)))]
async fn delete_deck(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let deleted = sqlx::query("DELETE FROM decks WHERE id = $1 AND user_id = $2")
        .bind(&id)
        .bind(&user.id)
        .execute(&state.db.write)
        .await
        .db("deleting deck")?;
    if deleted.rows_affected() == 0 {
        return Err(deck_not_found());
    }
    state.cards_changed(&id);
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(check_name("  Biology ").ok().as_deref(), Some("Biology"));
        assert!(check_name("   ").is_err());
        assert!(check_name(&"x".repeat(MAX_NAME_LENGTH + 1)).is_err());
    }
}
