//! Reviews are written in batches (group commit). A writer takes every review waiting at that
//! moment, reads their items, schedules them in order, and writes all new states and log rows in
//! one transaction; each review is answered only after that transaction commits, so an
//! acknowledged review is never lost. Each engine has its writer (`sqlite`, `postgres`); the
//! decisions are the pure [`plan`].

mod postgres;
mod sqlite;

use std::collections::HashMap;

use flashcards_bootstrap::ApiError;
use fsrs::{FSRS, MemoryState};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use super::{
    ReviewOutcome,
    scheduler::{ItemState, Rating, schedule},
};
use crate::{cards::card_not_found, clock::Clock, db::Database, timestamp::rfc3339};

pub use sqlite::OpenError;

/// Most reviews written by one transaction (at most 10 bound values each, far below either engine's
/// parameter limit).
const MAX_BATCH: usize = 64;
/// Reviews waiting for the writer; further submitters wait for room.
const QUEUE_CAPACITY: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct ReviewJob {
    pub user_id: String,
    pub card_id: String,
    pub ordinal: Option<u32>,
    pub rating: Rating,
}

type Answer = Result<ReviewOutcome, ApiError>;
type Reply = oneshot::Sender<Answer>;
type Submission = (ReviewJob, Reply);

/// The handle handlers submit reviews through; cheap to clone.
#[derive(Clone)]
pub struct ReviewQueue {
    sender: mpsc::Sender<Submission>,
}

impl ReviewQueue {
    /// Starts the database's writer: with SQLite a thread with its own connection, with PostgreSQL
    /// a task on the pool; either needs a Tokio runtime. It ends when every handle is dropped.
    pub fn start(db: Database, clock: Clock, fsrs: FSRS) -> Result<Self, OpenError> {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        match db.sqlite_file.clone() {
            Some(file) => sqlite::start(&file, db.write, receiver, clock, fsrs)?,
            None => {
                tokio::spawn(postgres::write_batches(receiver, db, clock, fsrs));
            }
        }
        Ok(Self { sender })
    }

    pub async fn submit(&self, job: ReviewJob) -> Result<ReviewOutcome, ApiError> {
        let stopped = || ApiError::Unavailable {
            detail: "the review writer is shutting down".to_owned(),
            retry_after_secs: Some(1),
        };
        let (reply, answer) = oneshot::channel();
        self.sender
            .send((job, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Answers a batch's reviews in order; when its transaction failed, each gets `failure`'s error.
fn deliver(replies: Vec<Reply>, answers: Result<Vec<Answer>, impl Fn() -> ApiError>) {
    match answers {
        Ok(answers) => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                // A client that went away no longer waits for its answer; its review is still recorded.
                let _ = reply.send(answer);
            }
        }
        Err(failure) => {
            for reply in replies {
                let _ = reply.send(Err(failure()));
            }
        }
    }
}

/// A study item as stored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ItemRow {
    pub card_id: String,
    pub ordinal: i64,
    pub user_id: String,
    pub due: i64,
    pub stability: Option<f64>,
    pub difficulty: Option<f64>,
    pub last_review: Option<i64>,
    pub reps: i64,
    pub lapses: i64,
}

impl ItemRow {
    fn state(&self) -> ItemState {
        // The database holds f64; FSRS computes in f32.
        #[allow(clippy::cast_possible_truncation)]
        let memory = self
            .stability
            .zip(self.difficulty)
            .map(|(stability, difficulty)| MemoryState {
                stability: stability as f32,
                difficulty: difficulty as f32,
            });
        ItemState {
            memory,
            last_review_ms: self.last_review,
            reps: self.reps,
            lapses: self.lapses,
        }
    }
}

/// One review as it goes into `review_logs`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    pub user_id: String,
    pub card_id: String,
    pub ordinal: i64,
    pub rating: Rating,
    pub elapsed_days: u32,
    pub stability: f64,
    pub difficulty: f64,
    pub due: i64,
}

/// What a batch writes and answers.
#[derive(Debug)]
pub struct Plan {
    /// One answer per job, in job order.
    pub answers: Vec<Result<ReviewOutcome, ApiError>>,
    /// Final states of the items that changed, each once.
    pub items: Vec<ItemRow>,
    pub logs: Vec<LogRow>,
}

/// Schedules the jobs in order against the stored items: a later review of the same item in the
/// batch sees the earlier one's result. Jobs for someone else's or a missing card answer 404, a
/// missing or unknown ordinal 422; neither affects the rest.
pub fn plan(fsrs: &FSRS, stored: Vec<ItemRow>, jobs: &[ReviewJob], now_ms: i64) -> Plan {
    let mut items: HashMap<(String, i64), ItemRow> = stored
        .into_iter()
        .map(|item| ((item.card_id.clone(), item.ordinal), item))
        .collect();
    let mut changed: Vec<(String, i64)> = Vec::new();
    let mut logs = Vec::new();
    let answers = jobs
        .iter()
        .map(|job| {
            let key = pick_item(&items, job)?;
            let item = items.get_mut(&key).ok_or_else(card_not_found)?;
            let next = schedule(fsrs, &item.state(), job.rating, now_ms)
                .map_err(|err| ApiError::internal("scheduling review", err))?;
            item.due = next.due_ms;
            item.stability = Some(f64::from(next.memory.stability));
            item.difficulty = Some(f64::from(next.memory.difficulty));
            item.last_review = Some(now_ms);
            item.reps = next.reps;
            item.lapses = next.lapses;
            if !changed.contains(&key) {
                changed.push(key.clone());
            }
            logs.push(LogRow {
                user_id: job.user_id.clone(),
                card_id: job.card_id.clone(),
                ordinal: key.1,
                rating: job.rating,
                elapsed_days: next.elapsed_days,
                stability: f64::from(next.memory.stability),
                difficulty: f64::from(next.memory.difficulty),
                due: next.due_ms,
            });
            Ok(ReviewOutcome {
                card_id: job.card_id.clone(),
                ordinal: u32::try_from(key.1).unwrap_or_default(),
                rating: job.rating,
                reviewed_at: rfc3339(now_ms),
                due: rfc3339(next.due_ms),
                stability: f64::from(next.memory.stability),
                difficulty: f64::from(next.memory.difficulty),
                elapsed_days: next.elapsed_days,
                reps: next.reps,
                lapses: next.lapses,
            })
        })
        .collect();
    let items = changed.iter().filter_map(|key| items.remove(key)).collect();
    Plan {
        answers,
        items,
        logs,
    }
}

/// The job's item: the given ordinal, or the card's only one.
fn pick_item(
    items: &HashMap<(String, i64), ItemRow>,
    job: &ReviewJob,
) -> Result<(String, i64), ApiError> {
    let mut ordinals: Vec<i64> = items
        .values()
        .filter(|item| item.card_id == job.card_id && item.user_id == job.user_id)
        .map(|item| item.ordinal)
        .collect();
    ordinals.sort_unstable();
    if ordinals.is_empty() {
        return Err(card_not_found());
    }
    let ordinal = match job.ordinal {
        Some(wanted) if ordinals.contains(&i64::from(wanted)) => i64::from(wanted),
        Some(wanted) => {
            return Err(ApiError::invalid(
                "ordinal",
                format!("this card has no study item {wanted}"),
            ));
        }
        None if ordinals.len() == 1 => ordinals[0],
        None => {
            return Err(ApiError::invalid(
                "ordinal",
                format!("required: this card has {} study items", ordinals.len()),
            ));
        }
    };
    Ok((job.card_id.clone(), ordinal))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    fn item(card: &str, ordinal: i64, user: &str) -> ItemRow {
        ItemRow {
            card_id: card.into(),
            ordinal,
            user_id: user.into(),
            due: T0,
            stability: None,
            difficulty: None,
            last_review: None,
            reps: 0,
            lapses: 0,
        }
    }

    fn job(user: &str, card: &str, ordinal: Option<u32>, rating: Rating) -> ReviewJob {
        ReviewJob {
            user_id: user.into(),
            card_id: card.into(),
            ordinal,
            rating,
        }
    }

    #[test]
    fn reviews_of_one_item_in_a_batch_apply_in_order() {
        let fsrs = FSRS::default();
        let plan = plan(
            &fsrs,
            vec![item("c", 1, "u")],
            &[
                job("u", "c", None, Rating::Good),
                job("u", "c", None, Rating::Again),
            ],
            T0,
        );
        let first = plan.answers[0].as_ref().expect("first");
        let second = plan.answers[1].as_ref().expect("second");
        assert_eq!((first.reps, second.reps), (1, 2));
        assert_eq!(second.lapses, 1, "the second saw the first");
        assert_eq!(
            plan.items.len(),
            1,
            "the item is written once, in its final state"
        );
        assert_eq!(plan.items[0].reps, 2);
        assert_eq!(plan.logs.len(), 2);
    }

    #[test]
    fn one_bad_job_does_not_spoil_the_batch() {
        let fsrs = FSRS::default();
        let plan = plan(
            &fsrs,
            vec![
                item("c", 1, "u"),
                item("z", 1, "u"),
                item("z", 2, "u"),
                item("d", 1, "other"),
            ],
            &[
                job("u", "d", None, Rating::Good),
                job("u", "missing", None, Rating::Good),
                job("u", "z", None, Rating::Good),
                job("u", "z", Some(7), Rating::Good),
                job("u", "c", None, Rating::Easy),
            ],
            T0,
        );
        let statuses: Vec<u16> = plan
            .answers
            .iter()
            .map(|a| a.as_ref().map_or_else(|e| e.status().as_u16(), |_| 200))
            .collect();
        assert_eq!(statuses, [404, 404, 422, 422, 200]);
        assert_eq!(plan.items.len(), 1);
        assert_eq!(plan.logs.len(), 1);
    }

    #[test]
    fn a_batch_matches_reviewing_one_at_a_time() {
        let fsrs = FSRS::default();
        let one = plan(
            &fsrs,
            vec![item("c", 1, "u")],
            &[job("u", "c", None, Rating::Hard)],
            T0,
        );
        let batched = plan(
            &fsrs,
            vec![item("c", 1, "u"), item("e", 3, "u")],
            &[
                job("u", "e", Some(3), Rating::Good),
                job("u", "c", None, Rating::Hard),
            ],
            T0,
        );
        let alone = one.answers[0].as_ref().expect("alone");
        let together = batched.answers[1].as_ref().expect("together");
        assert_eq!(alone.due, together.due);
        assert_eq!(alone.stability, together.stability);
    }
}
