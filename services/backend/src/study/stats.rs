//! A deck's statistics: reviews per day, true retention and the due forecast. Days are UTC days
//! (the backend does not know the learner's time zone); the counting is a pure function of the
//! rows, tested without a database.

use axum::extract::State;
use flashcards_bootstrap::{
    ApiError,
    error::ErrorBody,
    extract::{Json, Path, Query},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::scheduler::DAY_MS;
use crate::{
    AppState,
    auth::CurrentUser,
    db::fetch_json_rows,
    decks::{deck_not_found, owns_deck},
};

const DEFAULT_DAYS: u32 = 30;
const MAX_DAYS: u32 = 365;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Days of history and of forecast (1–365, default 30).
    pub days: Option<u32>,
}

/// One UTC day's count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DayCount {
    /// Days from today: negative in the past, 0 today, positive ahead.
    pub day: i64,
    pub count: i64,
}

/// Reviews of items already learned (at least a day since their last review), and how many of
/// them were remembered (rated anything but Again): Anki's "true retention".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Retention {
    pub reviews: i64,
    pub remembered: i64,
    /// `remembered / reviews`, absent without reviews.
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeckStats {
    pub days: u32,
    /// Reviews on each of the last `days` days, today last (days without reviews count 0).
    pub reviews_per_day: Vec<DayCount>,
    /// Over the same days.
    pub retention: Retention,
    /// Items due on each of the next `days` days, today first (what is overdue counts today).
    pub due_forecast: Vec<DayCount>,
    /// Items in the deck, and of them never reviewed.
    pub items: i64,
    pub new_items: i64,
}

/// A review log row as the statistics need it.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct ReviewRow {
    pub reviewed_at: i64,
    pub rating: i64,
    pub elapsed_days: i64,
}

/// A study item row as the statistics need it.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct ItemRow {
    pub due: i64,
    pub reps: i64,
}

/// The day index of `ms` relative to the UTC day holding `now_ms`.
fn day_of(ms: i64, now_ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) - now_ms.div_euclid(DAY_MS)
}

/// The statistics of `days` days around `now_ms` from a deck's review logs and study items.
pub fn compute(reviews: &[ReviewRow], items: &[ItemRow], days: u32, now_ms: i64) -> DeckStats {
    let span = i64::from(days);
    let mut per_day = vec![0_i64; usize::try_from(days).unwrap_or(0)];
    let mut retention = Retention {
        reviews: 0,
        remembered: 0,
        rate: None,
    };
    for review in reviews {
        let day = day_of(review.reviewed_at, now_ms);
        if day > 0 || day <= -span {
            continue;
        }
        if let Some(slot) = usize::try_from(day + span - 1)
            .ok()
            .and_then(|index| per_day.get_mut(index))
        {
            *slot += 1;
        }
        if review.elapsed_days >= 1 {
            retention.reviews += 1;
            retention.remembered += i64::from(review.rating > 1);
        }
    }
    #[allow(clippy::cast_precision_loss)]
    if retention.reviews > 0 {
        retention.rate = Some(retention.remembered as f64 / retention.reviews as f64);
    }
    let mut forecast = vec![0_i64; usize::try_from(days).unwrap_or(0)];
    for item in items {
        let day = day_of(item.due, now_ms).max(0);
        if let Some(slot) = usize::try_from(day)
            .ok()
            .and_then(|index| forecast.get_mut(index))
        {
            *slot += 1;
        }
    }
    DeckStats {
        days,
        reviews_per_day: (1 - span..=0)
            .zip(per_day)
            .map(|(day, count)| DayCount { day, count })
            .collect(),
        retention,
        due_forecast: (0..span)
            .zip(forecast)
            .map(|(day, count)| DayCount { day, count })
            .collect(),
        items: i64::try_from(items.len()).unwrap_or(i64::MAX),
        new_items: i64::try_from(items.iter().filter(|item| item.reps == 0).count())
            .unwrap_or(i64::MAX),
    }
}

#[utoipa::path(get, path = "/api/decks/{id}/stats", tag = "study",
    params(("id" = String, Path, description = "deck id"), StatsQuery),
    responses((status = 200, body = DeckStats), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn deck_stats(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(deck_id): Path<String>,
    Query(query): Query<StatsQuery>,
) -> Result<Json<DeckStats>, ApiError> {
    let days = query.days.unwrap_or(DEFAULT_DAYS);
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(ApiError::invalid(
            "days",
            format!("must be between 1 and {MAX_DAYS}"),
        ));
    }
    if !owns_deck(&state.db.read, &user.id, &deck_id).await? {
        return Err(deck_not_found());
    }
    let now = state.clock.now_ms();
    let since = (now.div_euclid(DAY_MS) - i64::from(days) + 1) * DAY_MS;
    // Logs of the deck's present cards: a deleted card's history leaves its deck's charts.
    let sql = state.db.engine.json_rows(
        "SELECT r.reviewed_at AS reviewed_at, r.rating AS rating, r.elapsed_days AS elapsed_days \
         FROM review_logs r JOIN cards c ON c.id = r.card_id \
         WHERE c.deck_id = $1 AND r.user_id = $2 AND r.reviewed_at >= $3",
        &["reviewed_at", "rating", "elapsed_days"],
        "reviewed_at",
    );
    let query = sqlx::query_scalar(&sql)
        .bind(&deck_id)
        .bind(&user.id)
        .bind(since);
    let reviews: Vec<ReviewRow> =
        fetch_json_rows(query, &state.db.read, "loading review logs").await?;
    let sql = state.db.engine.json_rows(
        "SELECT due, reps FROM study_items WHERE deck_id = $1 AND user_id = $2",
        &["due", "reps"],
        "due",
    );
    let query = sqlx::query_scalar(&sql).bind(&deck_id).bind(&user.id);
    let items: Vec<ItemRow> = fetch_json_rows(query, &state.db.read, "loading study items").await?;
    Ok(Json(compute(&reviews, &items, days, now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn review(days_ago: i64, rating: i64, elapsed_days: i64) -> ReviewRow {
        ReviewRow {
            reviewed_at: NOW - days_ago * DAY_MS,
            rating,
            elapsed_days,
        }
    }

    #[test]
    fn reviews_count_on_their_day_and_retention_only_for_learned_items() {
        let reviews = [
            review(0, 3, 0),
            review(0, 1, 4),
            review(1, 3, 2),
            review(2, 4, 3),
            review(40, 3, 9),
        ];
        let stats = compute(&reviews, &[], 7, NOW);
        assert_eq!(stats.reviews_per_day.len(), 7);
        assert_eq!(
            stats.reviews_per_day.last(),
            Some(&DayCount { day: 0, count: 2 })
        );
        assert_eq!(stats.reviews_per_day[5], DayCount { day: -1, count: 1 });
        assert_eq!(stats.reviews_per_day[4], DayCount { day: -2, count: 1 });
        assert_eq!(
            stats.reviews_per_day.iter().map(|d| d.count).sum::<i64>(),
            4,
            "40 days ago is out"
        );
        assert_eq!(
            stats.retention.reviews, 3,
            "the first-day review is learning, not retention"
        );
        assert_eq!(stats.retention.remembered, 2);
        assert_eq!(stats.retention.rate, Some(2.0 / 3.0));
    }

    #[test]
    fn the_forecast_puts_overdue_items_today_and_leaves_far_ones_out() {
        let items = [
            ItemRow {
                due: NOW - 5 * DAY_MS,
                reps: 3,
            },
            ItemRow { due: NOW, reps: 0 },
            ItemRow {
                due: NOW + 2 * DAY_MS,
                reps: 1,
            },
            ItemRow {
                due: NOW + 90 * DAY_MS,
                reps: 5,
            },
        ];
        let stats = compute(&[], &items, 7, NOW);
        assert_eq!(stats.due_forecast[0], DayCount { day: 0, count: 2 });
        assert_eq!(stats.due_forecast[2], DayCount { day: 2, count: 1 });
        assert_eq!(stats.due_forecast.iter().map(|d| d.count).sum::<i64>(), 3);
        assert_eq!((stats.items, stats.new_items), (4, 1));
        assert_eq!(stats.retention.rate, None);
    }
}
