//! A study workload of our own, for the scenarios that disturb a running stack: learners, each
//! with a deck of cards made beforehand, open their study queue and rate cards in turn through
//! the web front end, as the web app does, while something happens to the cluster. It counts
//! every request and every failure (a transport error or an unexpected status), and keeps every
//! review the backend acknowledged, so that a test can look for each one in the database after.
//!
//! Bounded: it stops at a number of requests or a deadline, whichever comes first, and it only
//! talks to loopback or private (cluster) addresses, so it can never load someone else's server.

use std::{
    collections::BTreeSet,
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use tokio::sync::{Mutex, watch};

use crate::learner::{ApiError, Learner, call};

/// Why a workload could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "{url} is not a loopback or cluster address: the load generator only loads our own stack"
    )]
    NotLocal { url: String },
    #[error("setting up the learners: {0}")]
    Setup(#[from] ApiError),
}

/// How much load, and for how long at most.
#[derive(Debug, Clone)]
pub struct Plan {
    pub learners: usize,
    pub cards_per_learner: usize,
    /// The workload stops after this many requests in all...
    pub max_requests: u64,
    /// ...or after this long, whichever comes first.
    pub max_duration: Duration,
    /// Each learner's pause between two requests: a brisk learner, not a flood.
    pub pause: Duration,
}

/// A review the backend answered 200 to: it must be in the database.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Acknowledged {
    pub card_id: String,
    pub ordinal: u32,
    /// Unix milliseconds, as `review_logs.reviewed_at` keeps it.
    pub reviewed_at_ms: i64,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    pub sent: u64,
    pub failed: u64,
    /// The first few failures, for the error message.
    pub failures: Vec<String>,
    pub acknowledged: Vec<Acknowledged>,
    pub elapsed: Duration,
}

impl Report {
    /// The acknowledged reviews missing from `stored` (`(card_id, ordinal, reviewed_at_ms)` rows
    /// read from `review_logs`).
    pub fn lost(&self, stored: &BTreeSet<(String, u32, i64)>) -> Vec<Acknowledged> {
        self.acknowledged
            .iter()
            .filter(|review| {
                !stored.contains(&(
                    review.card_id.clone(),
                    review.ordinal,
                    review.reviewed_at_ms,
                ))
            })
            .cloned()
            .collect()
    }
}

/// How many failures a report spells out.
const FAILURES_KEPT: usize = 10;

/// One learner, signed in, and the deck and cards it studies.
#[derive(Clone)]
struct Studying {
    learner: Arc<Learner>,
    deck: String,
    cards: Vec<String>,
}

/// Learners registered, each with a deck of cards, ready to [`run`](Workload::run).
pub struct Workload {
    plan: Plan,
    learners: Vec<Studying>,
}

impl Workload {
    /// Registers `plan.learners` learners at `web` (the web front end's URL) and makes their
    /// decks; refuses any `web` that is not a loopback or private address.
    pub async fn set_up(web: &str, plan: Plan, name: &str) -> Result<Self, LoadError> {
        ensure_local(web)?;
        let mut learners = Vec::with_capacity(plan.learners);
        for number in 0..plan.learners {
            learners.push(set_up_learner(web, &plan, &format!("{name}-{number}")).await?);
        }
        Ok(Self { plan, learners })
    }

    /// Runs the learners at once until the plan's bounds are reached or `stop` turns true.
    pub async fn run(&self, stop: watch::Receiver<bool>) -> Report {
        let started = Instant::now();
        let run = Arc::new(Run {
            plan: self.plan.clone(),
            deadline: started + self.plan.max_duration,
            sent: AtomicU64::new(0),
            report: Mutex::new(Report::default()),
        });
        let mut tasks = tokio::task::JoinSet::new();
        for (number, learner) in self.learners.iter().cloned().enumerate() {
            let (run, stop) = (run.clone(), stop.clone());
            tasks.spawn(async move { run.study(learner, number, stop).await });
        }
        // A learner's task that panicked panics here: its requests are not silently dropped.
        tasks.join_all().await;
        let mut report = std::mem::take(&mut *run.report.lock().await);
        report.elapsed = started.elapsed();
        report.acknowledged.sort();
        report
    }
}

/// What the learners of one run share: where and how long to go on, and what they count.
struct Run {
    plan: Plan,
    deadline: Instant,
    /// Requests started, for the plan's bound.
    sent: AtomicU64,
    report: Mutex<Report>,
}

impl Run {
    /// One learner's loop: the study queue, then a rating of the next card, and so on.
    async fn study(&self, learner: Studying, number: usize, stop: watch::Receiver<bool>) {
        let mut turn = number;
        loop {
            if *stop.borrow() || Instant::now() >= self.deadline {
                return;
            }
            if self.sent.fetch_add(1, Ordering::SeqCst) >= self.plan.max_requests {
                return;
            }
            let outcome = self.request(&learner, turn).await;
            let mut report = self.report.lock().await;
            report.sent += 1;
            match outcome {
                Ok(Some(review)) => report.acknowledged.push(review),
                Ok(None) => {}
                Err(error) => {
                    report.failed += 1;
                    if report.failures.len() < FAILURES_KEPT {
                        report.failures.push(error);
                    }
                }
            }
            drop(report);
            turn += 1;
            tokio::time::sleep(self.plan.pause).await;
        }
    }

    /// The learner's `turn`th request: every other one reads the queue, as a study screen does
    /// between answers; the others rate the next card, returning the acknowledged review.
    async fn request(
        &self,
        studying: &Studying,
        turn: usize,
    ) -> Result<Option<Acknowledged>, String> {
        let learner = &studying.learner;
        if turn.is_multiple_of(2) {
            let path = format!("/api/decks/{}/study", studying.deck);
            return call(learner.get(&path), StatusCode::OK, "GET study queue")
                .await
                .map(|_| None)
                .map_err(|error| error.to_string());
        }
        let card = &studying.cards[(turn / 2) % studying.cards.len()];
        // Alternating ratings keep the items in learning, reviewed again and again.
        let rating = if (turn / 2).is_multiple_of(3) {
            "again"
        } else {
            "good"
        };
        call(
            learner
                .post(&format!("/api/cards/{card}/review"))
                // A basic card has one item, so its ordinal may be left out.
                .json(&json!({"rating": rating})),
            StatusCode::OK,
            &format!("POST review of {card}"),
        )
        .await
        .map_err(|error| error.to_string())
        .and_then(|answer| acknowledged(&answer))
        .map(Some)
    }
}

/// The review a `POST /api/cards/{id}/review` answer acknowledges.
fn acknowledged(answer: &Value) -> Result<Acknowledged, String> {
    let field = |name: &str| {
        answer[name]
            .as_str()
            .ok_or_else(|| format!("no {name} in {answer}"))
    };
    let reviewed_at = OffsetDateTime::parse(field("reviewed_at")?, &Rfc3339)
        .map_err(|error| format!("reviewed_at in {answer}: {error}"))?;
    let ordinal = answer["ordinal"]
        .as_u64()
        .and_then(|ordinal| u32::try_from(ordinal).ok())
        .ok_or_else(|| format!("no ordinal in {answer}"))?;
    Ok(Acknowledged {
        card_id: field("card_id")?.to_owned(),
        ordinal,
        reviewed_at_ms: i64::try_from(reviewed_at.unix_timestamp_nanos() / 1_000_000)
            .map_err(|error| error.to_string())?,
    })
}

/// Signs up one learner, and makes its deck and cards.
async fn set_up_learner(web: &str, plan: &Plan, name: &str) -> Result<Studying, LoadError> {
    let learner = Learner::sign_up(web, &format!("{name}@example.org"), "load generator").await?;
    let deck = learner.create_deck(&format!("Load {name}")).await?;
    let mut cards = Vec::with_capacity(plan.cards_per_learner);
    for number in 0..plan.cards_per_learner.max(1) {
        cards.push(
            learner
                .create_card(
                    &deck,
                    &format!("Question {number}"),
                    &format!("Answer {number}"),
                )
                .await?,
        );
    }
    Ok(Studying {
        learner: Arc::new(learner),
        deck,
        cards,
    })
}

/// Refuses a URL whose host is not a loopback or private IP address.
fn ensure_local(url: &str) -> Result<(), LoadError> {
    let not_local = || LoadError::NotLocal {
        url: url.to_owned(),
    };
    let host = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .and_then(|rest| rest.split(['/', '?']).next())
        .ok_or_else(not_local)?;
    let host = host
        .strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .map_or_else(
            || host.rsplit_once(':').map_or(host, |(host, _)| host),
            |(host, _)| host,
        );
    let local = match host.parse::<IpAddr>().map_err(|_| not_local())? {
        IpAddr::V4(address) => address.is_loopback() || address.is_private(),
        IpAddr::V6(address) => address.is_loopback() || address.is_unique_local(),
    };
    if local { Ok(()) } else { Err(not_local()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_and_cluster_addresses_are_loaded() {
        for url in [
            "http://127.0.0.1:8080",
            "http://10.96.0.12:8080/",
            "http://192.168.1.2",
            "http://[::1]:8080/api",
        ] {
            assert!(ensure_local(url).is_ok(), "{url}");
        }
        for url in [
            "http://93.184.216.34:80",
            "http://example.org",
            "https://[2001:db8::1]:443",
            "not a url",
        ] {
            assert!(
                matches!(ensure_local(url), Err(LoadError::NotLocal { .. })),
                "{url}"
            );
        }
    }

    #[test]
    fn an_acknowledgement_is_read_from_the_review_answer() {
        let answer = json!({"card_id": "c1", "ordinal": 0, "rating": "good",
                            "reviewed_at": "2023-11-14T22:13:20.123Z"});
        assert_eq!(
            acknowledged(&answer),
            Ok(Acknowledged {
                card_id: "c1".to_owned(),
                ordinal: 0,
                reviewed_at_ms: 1_700_000_000_123
            })
        );
        assert!(acknowledged(&json!({"card_id": "c1"})).is_err());
    }

    #[test]
    fn a_review_not_stored_is_lost() {
        let review = |card: &str, at| Acknowledged {
            card_id: card.to_owned(),
            ordinal: 0,
            reviewed_at_ms: at,
        };
        let report = Report {
            acknowledged: vec![review("a", 1), review("b", 2)],
            ..Report::default()
        };
        let stored = BTreeSet::from([("a".to_owned(), 0, 1), ("b".to_owned(), 0, 3)]);
        assert_eq!(report.lost(&stored), [review("b", 2)]);
    }
}
