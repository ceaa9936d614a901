//! A deck's cards out and in: as CSV (`kind,front,back,tags` with a header row, tags separated by
//! spaces as Anki writes them) both ways, and out as an Anki package (`anki.rs`). A CSV import is
//! all or nothing: every row is checked as a new card would be, and the first bad row is named.

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use flashcards_bootstrap::{
    ApiError,
    error::ErrorBody,
    extract::{Json, Path},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    anki, card_page,
    model::{Card, CardContent, CardKind},
};
use crate::{
    AppState,
    auth::CurrentUser,
    db::{QueryResultExt, fetch_json_rows},
    decks::{deck_not_found, owns_deck},
    metrics::Operation,
    study::scheduler::{PastReview, replay},
};

/// The CSV media type, as exports are sent and imports expected.
pub const CSV_MEDIA_TYPE: &str = "text/csv; charset=utf-8";
/// The columns, in order.
pub const COLUMNS: [&str; 4] = ["kind", "front", "back", "tags"];
/// Most rows one import takes.
pub const MAX_IMPORT_ROWS: usize = 20_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CsvError {
    #[error("the first row must name the columns kind,front,back,tags")]
    Header,
    #[error("row {row}: {problem}")]
    Row { row: usize, problem: String },
    #[error("more than {MAX_IMPORT_ROWS} rows")]
    TooManyRows,
}

/// The cards as CSV, in the order given.
pub fn to_csv(cards: &[Card]) -> Result<String, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(COLUMNS)?;
    for card in cards {
        let kind = match card.kind {
            CardKind::Basic => "basic",
            CardKind::Cloze => "cloze",
        };
        writer.write_record([kind, &card.front, &card.back, &card.tags.join(" ")])?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|err| csv::Error::from(err.into_error()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The cards a CSV text holds, each checked as a new card (row numbers count the header as 1).
pub fn from_csv(text: &str) -> Result<Vec<CardContent>, CsvError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|_| CsvError::Header)?.clone();
    let position = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let (Some(front), kind, back, tags) = (
        position("front"),
        position("kind"),
        position("back"),
        position("tags"),
    ) else {
        return Err(CsvError::Header);
    };
    let mut cards = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let row = index + 2;
        if cards.len() == MAX_IMPORT_ROWS {
            return Err(CsvError::TooManyRows);
        }
        let record = record.map_err(|err| CsvError::Row {
            row,
            problem: err.to_string(),
        })?;
        let field = |at: Option<usize>| at.and_then(|at| record.get(at)).unwrap_or("").to_owned();
        let kind_text = field(kind);
        let kind = match kind_text.trim() {
            "" => CardKind::Basic,
            text => CardKind::parse(&text.to_ascii_lowercase()).ok_or_else(|| CsvError::Row {
                row,
                problem: format!("kind must be basic or cloze, not {text:?}"),
            })?,
        };
        let content = CardContent {
            kind,
            front: field(Some(front)),
            back: field(back),
            tags: field(tags).split_whitespace().map(str::to_owned).collect(),
            source: None,
        };
        let (content, _) = content.validate().map_err(|err| CsvError::Row {
            row,
            problem: err.to_string(),
        })?;
        cards.push(content);
    }
    Ok(cards)
}

#[utoipa::path(get, path = "/api/decks/{id}/export.csv", tag = "cards",
    params(("id" = String, Path, description = "deck id")),
    responses((status = 200, description = "kind,front,back,tags with a header row", content_type = "text/csv"),
              (status = 404, body = ErrorBody)))]
pub async fn export_csv(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(deck_id): Path<String>,
) -> Result<Response, ApiError> {
    let deck = crate::decks::load_deck(&state, &user.id, &deck_id).await?;
    let cards = all_cards(&state, &user.id, &deck_id).await?;
    let text = to_csv(&cards).map_err(|err| ApiError::internal("writing CSV", err))?;
    state.metrics.operation(Operation::Read);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(CSV_MEDIA_TYPE),
            ),
            (header::CONTENT_DISPOSITION, attachment(&deck.name, "csv")),
        ],
        text,
    )
        .into_response())
}

/// `Content-Disposition` for a download of deck `name` with `extension`: an ASCII name for old
/// clients (anything else as `_`) and the exact one in UTF-8 (RFC 6266).
pub fn attachment(name: &str, extension: &str) -> HeaderValue {
    let name = if name.trim().is_empty() {
        "deck"
    } else {
        name.trim()
    };
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " -_.()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = format!("{name}.{extension}")
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect();
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}.{extension}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// All of a deck's cards, in id order.
async fn all_cards(state: &AppState, user_id: &str, deck_id: &str) -> Result<Vec<Card>, ApiError> {
    const PAGE: u32 = 500;
    let mut cards = Vec::new();
    let mut after = String::new();
    loop {
        let page = card_page(state, user_id, deck_id, &after, PAGE).await?;
        let full = page.len() == PAGE as usize;
        let last = page.last().map(|card| card.id.clone());
        cards.extend(page);
        match last {
            Some(last) if full => after = last,
            _ => return Ok(cards),
        }
    }
}

/// The media type of Anki packages.
pub const APKG_MEDIA_TYPE: &str = "application/apkg";

#[utoipa::path(get, path = "/api/decks/{id}/export.apkg", tag = "cards",
    params(("id" = String, Path, description = "deck id")),
    responses((status = 200, description = "an Anki package: Basic and Cloze notes, tags, \
                 scheduling and the review history", content_type = "application/apkg"),
              (status = 404, body = ErrorBody)))]
pub async fn export_apkg(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(deck_id): Path<String>,
) -> Result<Response, ApiError> {
    let deck = crate::decks::load_deck(&state, &user.id, &deck_id).await?;
    let cards = all_cards(&state, &user.id, &deck_id).await?;
    let sql = state.db.engine.json_rows(
        "SELECT card_id, ordinal, due, stability, difficulty, last_review, reps, lapses \
         FROM study_items WHERE deck_id = $1 AND user_id = $2",
        &[
            "card_id",
            "ordinal",
            "due",
            "stability",
            "difficulty",
            "last_review",
            "reps",
            "lapses",
        ],
        "card_id, ordinal",
    );
    let query = sqlx::query_scalar(&sql).bind(&deck_id).bind(&user.id);
    let items: Vec<anki::ItemState> =
        fetch_json_rows(query, &state.db.read, "loading study items").await?;
    let sql = state.db.engine.json_rows(
        "SELECT r.card_id AS card_id, r.ordinal AS ordinal, r.rating AS rating, \
         r.reviewed_at AS reviewed_at, r.elapsed_days AS elapsed_days, r.due AS due \
         FROM review_logs r JOIN cards c ON c.id = r.card_id \
         WHERE c.deck_id = $1 AND r.user_id = $2",
        &[
            "card_id",
            "ordinal",
            "rating",
            "reviewed_at",
            "elapsed_days",
            "due",
        ],
        "reviewed_at",
    );
    let query = sqlx::query_scalar(&sql).bind(&deck_id).bind(&user.id);
    let reviews: Vec<anki::Review> =
        fetch_json_rows(query, &state.db.read, "loading review logs").await?;
    let disposition = attachment(&deck.name, "apkg");
    let export = anki::Export {
        deck_name: deck.name,
        cards,
        items,
        reviews,
        now_ms: state.clock.now_ms(),
    };
    // SQLite and zip writing block: off the async threads.
    let bytes = tokio::task::spawn_blocking(move || anki::package(&export))
        .await
        .map_err(|err| ApiError::internal("writing the Anki package", err))?
        .map_err(|err| ApiError::internal("writing the Anki package", err))?;
    state.metrics.operation(Operation::Read);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(APKG_MEDIA_TYPE),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportOutcome {
    /// Cards added to the deck.
    pub imported: usize,
    /// Past reviews that came with them (from an Anki package), which set their scheduling.
    #[serde(default)]
    pub reviews: usize,
}

/// The import routes, with their own body limit (the backend's upload limit): a deck's worth of
/// cards is larger than the API's default limit allows.
pub fn imports(max_upload_bytes: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(import_csv))
        .routes(routes!(import_apkg))
        .layer(DefaultBodyLimit::max(max_upload_bytes))
}

#[utoipa::path(post, path = "/api/decks/{id}/import.csv", tag = "cards",
    params(("id" = String, Path, description = "deck id")),
    request_body(content = String, content_type = "text/csv",
        description = "kind,front,back,tags with a header row (only the front column is required)"),
    responses((status = 201, body = ImportOutcome), (status = 404, body = ErrorBody),
              (status = 413, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "names the first bad row; nothing is imported")))]
async fn import_csv(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(deck_id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<ImportOutcome>), ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::Unprocessable("the CSV is not UTF-8 text".to_owned()))?;
    let cards = from_csv(text).map_err(|err| ApiError::Unprocessable(err.to_string()))?;
    let cards = cards.into_iter().map(|card| (card, Vec::new())).collect();
    import(&state, &user.id, &deck_id, cards).await
}

#[utoipa::path(post, path = "/api/decks/{id}/import.apkg", tag = "cards",
    params(("id" = String, Path, description = "deck id")),
    request_body(content = Vec<u8>, content_type = "application/apkg",
        description = "a package Anki exported (either format); its notes become cards"),
    responses((status = 201, body = ImportOutcome), (status = 404, body = ErrorBody),
              (status = 413, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "not an Anki package, or a note that \
                 makes no valid card (named by its position); nothing is imported")))]
async fn import_apkg(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(deck_id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<ImportOutcome>), ApiError> {
    // SQLite and decompression block: off the async threads.
    let notes = tokio::task::spawn_blocking(move || anki::read_package(&body))
        .await
        .map_err(|err| ApiError::internal("reading an Anki package", err))?
        .map_err(|err| match err {
            anki::AnkiError::NotAPackage(_) => ApiError::Unprocessable(err.to_string()),
            err => ApiError::internal("reading an Anki package", err),
        })?;
    let cards = notes
        .into_iter()
        .enumerate()
        .map(|(index, note)| {
            note.content
                .validate()
                .map(|(content, _)| (content, note.history))
                .map_err(|err| ApiError::Unprocessable(format!("note {}: {err}", index + 1)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    import(&state, &user.id, &deck_id, cards).await
}

/// Adds checked `cards` to one of the user's decks in one transaction, each with its past reviews
/// (`(ordinal, review)`, oldest first), replayed to set its items' scheduling.
async fn import(
    state: &AppState,
    user_id: &str,
    deck_id: &str,
    cards: Vec<(CardContent, Vec<(i64, PastReview)>)>,
) -> Result<(StatusCode, Json<ImportOutcome>), ApiError> {
    if !owns_deck(&state.db.read, user_id, deck_id).await? {
        return Err(deck_not_found());
    }
    let now = state.clock.now_ms();
    let imported = cards.len();
    let mut reviews = 0;
    let mut tx = state.db.begin_write().await.db("starting transaction")?;
    for (content, history) in cards {
        let card = super::insert_card_in(&mut tx, now, user_id, deck_id, content).await?;
        for ordinal in card.ordinals {
            let past: Vec<PastReview> = history
                .iter()
                .filter(|(of, _)| *of == i64::from(ordinal))
                .map(|(_, review)| *review)
                .collect();
            reviews += past.len();
            let item = ItemRef {
                user_id,
                card_id: &card.id,
                ordinal: i64::from(ordinal),
            };
            store_history(&mut tx, &state.fsrs, &item, &past).await?;
        }
    }
    tx.commit().await.db("committing the import")?;
    state.cards_changed(deck_id);
    state.metrics.operation(Operation::Create);
    Ok((
        StatusCode::CREATED,
        Json(ImportOutcome { imported, reviews }),
    ))
}

/// The study item a history belongs to.
struct ItemRef<'a> {
    user_id: &'a str,
    card_id: &'a str,
    ordinal: i64,
}

/// Logs an item's past reviews as if they had been made here and leaves the item where they
/// lead; nothing for an item never reviewed.
async fn store_history(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    fsrs: &fsrs::FSRS,
    item: &ItemRef<'_>,
    past: &[PastReview],
) -> Result<(), ApiError> {
    let outcomes =
        replay(fsrs, past).map_err(|err| ApiError::internal("replaying imported reviews", err))?;
    for (review, outcome) in past.iter().zip(&outcomes) {
        sqlx::query(
            "INSERT INTO review_logs (id, user_id, card_id, ordinal, rating, reviewed_at, \
             elapsed_days, stability, difficulty, due) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(item.user_id)
        .bind(item.card_id)
        .bind(item.ordinal)
        .bind(review.rating.number())
        .bind(review.at_ms)
        .bind(i64::from(outcome.elapsed_days))
        .bind(f64::from(outcome.memory.stability))
        .bind(f64::from(outcome.memory.difficulty))
        .bind(outcome.due_ms)
        .execute(&mut **tx)
        .await
        .db("logging an imported review")?;
    }
    let (Some(last), Some(review)) = (outcomes.last(), past.last()) else {
        return Ok(());
    };
    sqlx::query(
        "UPDATE study_items SET due = $1, stability = $2, difficulty = $3, last_review = $4, \
         reps = $5, lapses = $6 WHERE card_id = $7 AND ordinal = $8",
    )
    .bind(last.due_ms)
    .bind(f64::from(last.memory.stability))
    .bind(f64::from(last.memory.difficulty))
    .bind(review.at_ms)
    .bind(last.reps)
    .bind(last.lapses)
    .bind(item.card_id)
    .bind(item.ordinal)
    .execute(&mut **tx)
    .await
    .db("scheduling an imported item")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(kind: CardKind, front: &str, back: &str, tags: &[&str]) -> Card {
        Card {
            id: "c".to_owned(),
            deck_id: "d".to_owned(),
            kind,
            front: front.to_owned(),
            back: back.to_owned(),
            tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
            source: None,
            ordinals: vec![1],
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn downloads_are_named_after_the_deck() {
        assert_eq!(
            attachment("Capitals", "apkg"),
            "attachment; filename=\"Capitals.apkg\"; filename*=UTF-8''Capitals.apkg"
        );
        assert_eq!(
            attachment("Géo \"1\"/2", "csv"),
            "attachment; filename=\"G_o _1__2.csv\"; filename*=UTF-8''G%C3%A9o%20%221%22%2F2.csv"
        );
    }

    #[test]
    fn cards_go_out_and_come_back_the_same() {
        let cards = [
            card(
                CardKind::Basic,
                "Capital of \"Peru\", the country?",
                "Lima\nsince 1535",
                &["geo", "capitals"],
            ),
            card(
                CardKind::Cloze,
                "{{c1::Paris}} is on the {{c2::Seine}}.",
                "",
                &[],
            ),
        ];
        let text = to_csv(&cards).expect("csv");
        assert!(text.starts_with("kind,front,back,tags\n"), "{text}");
        let back = from_csv(&text).expect("parses");
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].front, cards[0].front);
        assert_eq!(back[0].back, cards[0].back);
        assert_eq!(back[0].tags, ["geo", "capitals"]);
        assert_eq!(back[1].kind, CardKind::Cloze);
    }

    #[test]
    fn only_front_is_required_and_bad_rows_are_named() {
        let cards = from_csv("Front,Back\nq,a\n").expect("parses");
        assert_eq!(
            (cards[0].kind, cards[0].back.as_str()),
            (CardKind::Basic, "a")
        );
        assert_eq!(from_csv("question,answer\nq,a\n"), Err(CsvError::Header));
        let bad = from_csv("kind,front,back\nbasic,ok,yes\nquiz,what,x\n").expect_err("bad kind");
        assert!(matches!(bad, CsvError::Row { row: 3, .. }), "{bad}");
        let empty = from_csv("kind,front\ncloze,no deletions\n").expect_err("bad cloze");
        assert!(empty.to_string().starts_with("row 2: front:"), "{empty}");
    }
}
