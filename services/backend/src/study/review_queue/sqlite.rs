//! SQLite's review writer: a thread with a connection of its own that reads, schedules and writes a
//! whole batch without leaving the thread. Through sqlx every statement is a hand-off to its worker
//! thread and back; on two cores those hand-offs, not SQLite, held reviews to ~9k/s.
//!
//! The process still has one writer at a time: the thread writes only while it holds the sqlx write
//! pool's one connection (unused, as a token), so it takes turns with every other write in the
//! pool's first-come queue, and keeps the token for at most [`HOLD`].

use std::{
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use flashcards_bootstrap::ApiError;
use fsrs::FSRS;
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use sqlx::AnyPool;
use tokio::{runtime::Handle, sync::mpsc};

use super::{Answer, ItemRow, MAX_BATCH, ReviewJob, Submission, deliver, plan};
use crate::{
    clock::Clock,
    db::{query_error, sqlite_unavailable, unavailable},
};

/// How long a batch waits for another process's write before its reviews answer 503.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest the writer keeps the write token, writing reviews as they come: how long any other
/// write may wait for reviews.
const HOLD: Duration = Duration::from_millis(2);

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("opening {path} for the review writer: {source}")]
    Connect {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the review writer needs a Tokio runtime: {0}")]
    NoRuntime(tokio::runtime::TryCurrentError),
    #[error("starting the review writer thread: {0}")]
    Thread(std::io::Error),
}

/// What the writer thread owns.
struct Writer {
    file: PathBuf,
    connection: Connection,
    /// The write pool: its one connection is the write token.
    token_pool: AnyPool,
    runtime: Handle,
    clock: Clock,
    fsrs: FSRS,
}

/// Opens the writer's connection (the file exists: migrations ran) and starts its thread.
pub(super) fn start(
    file: &Path,
    token_pool: AnyPool,
    receiver: mpsc::Receiver<Submission>,
    clock: Clock,
    fsrs: FSRS,
) -> Result<(), OpenError> {
    let runtime = Handle::try_current().map_err(OpenError::NoRuntime)?;
    let connection = open(file).map_err(|source| OpenError::Connect {
        path: file.to_owned(),
        source,
    })?;
    let writer = Writer {
        file: file.to_owned(),
        connection,
        token_pool,
        runtime,
        clock,
        fsrs,
    };
    thread::Builder::new()
        .name("review-writer".to_owned())
        .spawn(move || writer.run(receiver))
        .map_err(OpenError::Thread)?;
    Ok(())
}

fn open(file: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    // The sqlx pools' settings (see `db::open_pool`); WAL is the file's, set when they opened it.
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    Ok(connection)
}

impl Writer {
    fn run(mut self, mut receiver: mpsc::Receiver<Submission>) {
        // A pool connection given back is returned by a task spawned on the runtime.
        let runtime = self.runtime.clone();
        let _context = runtime.enter();
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while receiver.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
            let token = match runtime.block_on(self.token_pool.acquire()) {
                Ok(token) => token,
                Err(err) => {
                    tracing::warn!(%err, "the review writer got no write token");
                    let replies = batch.drain(..).map(|(_, reply)| reply).collect();
                    deliver(replies, Err(|| query_error("recording reviews", &err)));
                    continue;
                }
            };
            let held_since = Instant::now();
            loop {
                self.write(&mut batch);
                // Giving the token back and taking it again costs a round trip to sqlx's worker
                // thread (the pool pings a returned connection): the next reviews are awaited
                // with the token, up to the hold.
                let Some(left) = HOLD.checked_sub(held_since.elapsed()) else {
                    break;
                };
                let more = runtime.block_on(tokio::time::timeout(
                    left,
                    receiver.recv_many(&mut batch, MAX_BATCH),
                ));
                if !matches!(more, Ok(received) if received > 0) {
                    break;
                }
            }
            drop(token);
        }
    }

    /// Writes and answers the batch, leaving it empty.
    fn write(&mut self, batch: &mut Vec<Submission>) {
        let (jobs, replies): (Vec<ReviewJob>, Vec<_>) = batch.drain(..).unzip();
        let answers = write_batch(&mut self.connection, &self.fsrs, &jobs, self.clock.now_ms());
        if let Err(err) = &answers {
            tracing::warn!(%err, reviews = jobs.len(), "review batch failed");
            self.repair();
        }
        deliver(replies, answers.map_err(|err| move || store_error(&err)));
    }

    /// A failed batch rolls back when its transaction is dropped; should that rollback have failed
    /// too, the connection is still in the transaction, and is replaced.
    fn repair(&mut self) {
        if self.connection.is_autocommit() {
            return;
        }
        match open(&self.file) {
            Ok(connection) => self.connection = connection,
            Err(err) => tracing::warn!(%err, "reopening the review writer's connection"),
        }
    }
}

/// One transaction for the batch; on any error it rolls back (the transaction is dropped) and
/// nothing of the batch is written.
fn write_batch(
    connection: &mut Connection,
    fsrs: &FSRS,
    jobs: &[ReviewJob],
    now_ms: i64,
) -> rusqlite::Result<Vec<Answer>> {
    let mut card_ids: Vec<&str> = jobs.iter().map(|job| job.card_id.as_str()).collect();
    card_ids.sort_unstable();
    card_ids.dedup();
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;

    let mut stored = Vec::with_capacity(card_ids.len());
    {
        let mut select = tx.prepare_cached(
            "SELECT card_id, ordinal, user_id, due, stability, difficulty, last_review, reps, \
             lapses FROM study_items WHERE card_id = ?1",
        )?;
        for card_id in card_ids {
            let rows = select.query_map([card_id], |row| {
                Ok(ItemRow {
                    card_id: row.get(0)?,
                    ordinal: row.get(1)?,
                    user_id: row.get(2)?,
                    due: row.get(3)?,
                    stability: row.get(4)?,
                    difficulty: row.get(5)?,
                    last_review: row.get(6)?,
                    reps: row.get(7)?,
                    lapses: row.get(8)?,
                })
            })?;
            for row in rows {
                stored.push(row?);
            }
        }
    }
    let plan = plan(fsrs, stored, jobs, now_ms);

    {
        let mut update = tx.prepare_cached(
            "UPDATE study_items SET due = ?3, stability = ?4, difficulty = ?5, last_review = ?6, \
             reps = ?7, lapses = ?8 WHERE card_id = ?1 AND ordinal = ?2",
        )?;
        for item in &plan.items {
            update.execute(params![
                item.card_id,
                item.ordinal,
                item.due,
                item.stability,
                item.difficulty,
                item.last_review,
                item.reps,
                item.lapses,
            ])?;
        }
        let mut insert = tx.prepare_cached(
            "INSERT INTO review_logs (id, user_id, card_id, ordinal, rating, reviewed_at, \
             elapsed_days, stability, difficulty, due) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for log in &plan.logs {
            insert.execute(params![
                uuid::Uuid::now_v7().to_string(),
                log.user_id,
                log.card_id,
                log.ordinal,
                log.rating.number(),
                now_ms,
                log.elapsed_days,
                log.stability,
                log.difficulty,
                log.due,
            ])?;
        }
    }
    tx.commit()?;
    Ok(plan.answers)
}

/// A database that stayed locked or cannot be written is a retryable 503; anything else a 500.
fn store_error(err: &rusqlite::Error) -> ApiError {
    const CONTEXT: &str = "recording reviews";
    match err.sqlite_error() {
        Some(sqlite) if sqlite_unavailable(sqlite.extended_code) => unavailable(CONTEXT),
        _ => ApiError::internal(CONTEXT, err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn a_locked_database_is_retryable_and_a_broken_statement_is_not() {
        let busy = store_error(&sqlite_failure(rusqlite::ffi::SQLITE_BUSY));
        assert_eq!(busy.status().as_u16(), 503);
        let full = store_error(&sqlite_failure(rusqlite::ffi::SQLITE_FULL));
        assert_eq!(full.status().as_u16(), 503);
        let constraint = store_error(&sqlite_failure(rusqlite::ffi::SQLITE_CONSTRAINT));
        assert_eq!(constraint.status().as_u16(), 500);
    }
}
