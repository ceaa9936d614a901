//! PostgreSQL's review writer: a task on the shared pool. Each batch is one transaction that locks
//! its items (`FOR UPDATE`), so replicas reviewing the same item serialise.

use flashcards_bootstrap::ApiError;
use fsrs::FSRS;
use tokio::sync::mpsc;

use super::{ItemRow, MAX_BATCH, ReviewJob, Submission, deliver, plan};
use crate::{
    clock::Clock,
    db::{Database, query_error},
    study::ReviewOutcome,
};

/// The columns an [`ItemRow`] is read from.
const ITEM_COLUMNS: [&str; 9] = [
    "card_id",
    "ordinal",
    "user_id",
    "due",
    "stability",
    "difficulty",
    "last_review",
    "reps",
    "lapses",
];

pub(super) async fn write_batches(
    mut receiver: mpsc::Receiver<Submission>,
    db: Database,
    clock: Clock,
    fsrs: FSRS,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (jobs, replies): (Vec<ReviewJob>, Vec<_>) = batch.drain(..).unzip();
        let answers = write_batch(&db, &fsrs, &jobs, clock.now_ms()).await;
        if let Err(err) = &answers {
            tracing::warn!(%err, reviews = jobs.len(), "review batch failed");
        }
        deliver(
            replies,
            answers.map_err(|err| move || query_error("recording reviews", &err)),
        );
    }
}

/// `($1, $2, ...), ($9, ...)` for `rows` rows of `columns` placeholders with the given casts.
fn values_list(rows: usize, casts: &[&str]) -> String {
    (0..rows)
        .map(|row| {
            let cells = casts
                .iter()
                .enumerate()
                .map(|(column, cast)| {
                    format!("CAST(${} AS {cast})", row * casts.len() + column + 1)
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!("({cells})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn write_batch(
    db: &Database,
    fsrs: &FSRS,
    jobs: &[ReviewJob],
    now_ms: i64,
) -> Result<Vec<Result<ReviewOutcome, ApiError>>, sqlx::Error> {
    let mut card_ids: Vec<&str> = jobs.iter().map(|job| job.card_id.as_str()).collect();
    card_ids.sort_unstable();
    card_ids.dedup();
    let mut tx = db.begin_write().await?;

    let placeholders = (1..=card_ids.len())
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let columns = ITEM_COLUMNS.join(", ");
    let select = db.engine.json_rows(
        &format!("SELECT {columns} FROM study_items WHERE card_id IN ({placeholders}) FOR UPDATE"),
        &ITEM_COLUMNS,
        "card_id, ordinal",
    );
    let mut query = sqlx::query_scalar(&select);
    for card_id in &card_ids {
        query = query.bind(*card_id);
    }
    let text: String = query.fetch_one(&mut *tx).await?;
    let stored: Vec<ItemRow> =
        serde_json::from_str(&text).map_err(|err| sqlx::Error::Decode(Box::new(err)))?;
    let plan = plan(fsrs, stored, jobs, now_ms);

    if !plan.items.is_empty() {
        let update = format!(
            "UPDATE study_items SET due = v.column3, stability = v.column4, difficulty = v.column5, \
             last_review = v.column6, reps = v.column7, lapses = v.column8 \
             FROM (VALUES {}) AS v \
             WHERE study_items.card_id = v.column1 AND study_items.ordinal = v.column2",
            values_list(
                plan.items.len(),
                &[
                    "TEXT",
                    "BIGINT",
                    "BIGINT",
                    "DOUBLE PRECISION",
                    "DOUBLE PRECISION",
                    "BIGINT",
                    "BIGINT",
                    "BIGINT"
                ],
            )
        );
        let mut query = sqlx::query(&update);
        for item in &plan.items {
            query = query
                .bind(item.card_id.clone())
                .bind(item.ordinal)
                .bind(item.due)
                .bind(item.stability)
                .bind(item.difficulty)
                .bind(item.last_review)
                .bind(item.reps)
                .bind(item.lapses);
        }
        query.execute(&mut *tx).await?;

        let insert = format!(
            "INSERT INTO review_logs (id, user_id, card_id, ordinal, rating, reviewed_at, \
             elapsed_days, stability, difficulty, due) VALUES {}",
            values_list(
                plan.logs.len(),
                &[
                    "TEXT",
                    "TEXT",
                    "TEXT",
                    "BIGINT",
                    "BIGINT",
                    "BIGINT",
                    "BIGINT",
                    "DOUBLE PRECISION",
                    "DOUBLE PRECISION",
                    "BIGINT"
                ],
            )
        );
        let mut query = sqlx::query(&insert);
        for log in &plan.logs {
            query = query
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(log.user_id.clone())
                .bind(log.card_id.clone())
                .bind(log.ordinal)
                .bind(log.rating.number())
                .bind(now_ms)
                .bind(i64::from(log.elapsed_days))
                .bind(log.stability)
                .bind(log.difficulty)
                .bind(log.due);
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(plan.answers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_lists_number_placeholders_across_rows() {
        assert_eq!(
            values_list(2, &["TEXT", "BIGINT"]),
            "(CAST($1 AS TEXT), CAST($2 AS BIGINT)), (CAST($3 AS TEXT), CAST($4 AS BIGINT))"
        );
    }
}
