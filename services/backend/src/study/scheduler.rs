//! The scheduling decision, as a pure function of an item's memory state, the rating and the time.
//!
//! Memory states (stability, difficulty) and intervals come from FSRS. Our choices around it, the
//! ones Anki also makes: intervals are whole days, at least one; a lapse ("again") comes back after a
//! short relearning step instead of a day, so it is asked again in the same session; days elapsed since
//! the last review are whole days (FSRS-6 models same-day reviews with 0).

use fsrs::{FSRS, MemoryState};
use serde::{Deserialize, Serialize};

pub const MINUTE_MS: i64 = 60_000;
pub const DAY_MS: i64 = 86_400_000;
/// How soon a failed item is asked again.
pub const RELEARNING_STEP_MS: i64 = 10 * MINUTE_MS;
/// The probability of recall FSRS schedules for (Anki's default).
pub const DESIRED_RETENTION: f32 = 0.9;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    Again,
    Hard,
    Good,
    Easy,
}

impl Rating {
    /// Worst to best, as the study buttons list them.
    pub const ALL: [Self; 4] = [Self::Again, Self::Hard, Self::Good, Self::Easy];

    /// FSRS's and Anki's numbering: again 1 … easy 4.
    pub fn number(self) -> i64 {
        match self {
            Self::Again => 1,
            Self::Hard => 2,
            Self::Good => 3,
            Self::Easy => 4,
        }
    }
}

/// What is known about a study item before a review.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ItemState {
    /// `None` for an item never reviewed.
    pub memory: Option<MemoryState>,
    pub last_review_ms: Option<i64>,
    pub reps: i64,
    pub lapses: i64,
}

/// The item after the review.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scheduled {
    pub memory: MemoryState,
    pub due_ms: i64,
    pub elapsed_days: u32,
    pub reps: i64,
    pub lapses: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("FSRS rejected the memory state: {0}")]
pub struct SchedulingError(String);

/// Whole days between the last review and `now` (0 for a new item or a clock that went backwards).
pub fn elapsed_days(last_review_ms: Option<i64>, now_ms: i64) -> u32 {
    last_review_ms.map_or(0, |last| {
        u32::try_from((now_ms - last).max(0) / DAY_MS).unwrap_or(u32::MAX)
    })
}

/// Whole days for an FSRS interval: rounded, at least one.
pub fn interval_days(interval: f32) -> i64 {
    // FSRS intervals are bounded by its maximum stability (36500 days); the cast cannot overflow.
    (interval.round() as i64).max(1)
}

/// What each rating would make of the item, again … easy: one FSRS step for all four, so the
/// study queue can show every rating's next interval on its button.
pub fn outcomes(
    fsrs: &FSRS,
    item: &ItemState,
    now_ms: i64,
) -> Result<[Scheduled; 4], SchedulingError> {
    let elapsed = elapsed_days(item.last_review_ms, now_ms);
    let next = fsrs
        .next_states(item.memory, DESIRED_RETENTION, elapsed)
        .map_err(|err| SchedulingError(err.to_string()))?;
    Ok(Rating::ALL.map(|rating| {
        let chosen = match rating {
            Rating::Again => &next.again,
            Rating::Hard => &next.hard,
            Rating::Good => &next.good,
            Rating::Easy => &next.easy,
        };
        let due_ms = match rating {
            Rating::Again => now_ms + RELEARNING_STEP_MS,
            _ => now_ms + interval_days(chosen.interval) * DAY_MS,
        };
        let lapsed = rating == Rating::Again && item.reps > 0;
        Scheduled {
            memory: chosen.memory,
            due_ms,
            elapsed_days: elapsed,
            reps: item.reps + 1,
            lapses: item.lapses + i64::from(lapsed),
        }
    }))
}

pub fn schedule(
    fsrs: &FSRS,
    item: &ItemState,
    rating: Rating,
    now_ms: i64,
) -> Result<Scheduled, SchedulingError> {
    let [again, hard, good, easy] = outcomes(fsrs, item, now_ms)?;
    Ok(match rating {
        Rating::Again => again,
        Rating::Hard => hard,
        Rating::Good => good,
        Rating::Easy => easy,
    })
}

impl Rating {
    /// The rating numbered `number` (again 1 … easy 4), if it is one.
    pub fn from_number(number: i64) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|rating| rating.number() == number)
    }
}

/// One past review, when and how it went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PastReview {
    pub at_ms: i64,
    pub rating: Rating,
}

/// An item's reviews (oldest first) scheduled one after another from a new item, as if they had
/// been made here: each review's outcome, the last of which is the item's state now. This is how
/// a history imported from elsewhere carries its scheduling over.
pub fn replay(fsrs: &FSRS, reviews: &[PastReview]) -> Result<Vec<Scheduled>, SchedulingError> {
    let mut item = ItemState {
        memory: None,
        last_review_ms: None,
        reps: 0,
        lapses: 0,
    };
    let mut outcomes = Vec::with_capacity(reviews.len());
    for review in reviews {
        let outcome = schedule(fsrs, &item, review.rating, review.at_ms)?;
        item = ItemState {
            memory: Some(outcome.memory),
            last_review_ms: Some(review.at_ms),
            reps: outcome.reps,
            lapses: outcome.lapses,
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    fn new_item() -> ItemState {
        ItemState {
            memory: None,
            last_review_ms: None,
            reps: 0,
            lapses: 0,
        }
    }

    fn after(s: &Scheduled, now: i64) -> ItemState {
        ItemState {
            memory: Some(s.memory),
            last_review_ms: Some(now),
            reps: s.reps,
            lapses: s.lapses,
        }
    }

    #[test]
    fn first_review_intervals_follow_fsrs_initial_stability() {
        let fsrs = FSRS::default();
        let expected = fsrs.next_states(None, DESIRED_RETENTION, 0).expect("fsrs");
        for (rating, state) in [
            (Rating::Hard, &expected.hard),
            (Rating::Good, &expected.good),
            (Rating::Easy, &expected.easy),
        ] {
            let s = schedule(&fsrs, &new_item(), rating, T0).expect("schedules");
            assert_eq!(s.memory, state.memory);
            assert_eq!(s.due_ms, T0 + interval_days(state.interval) * DAY_MS);
            assert_eq!(s.reps, 1);
            assert_eq!(s.lapses, 0);
        }
    }

    #[test]
    fn better_ratings_never_come_back_sooner() {
        let fsrs = FSRS::default();
        let dues: Vec<i64> = [Rating::Again, Rating::Hard, Rating::Good, Rating::Easy]
            .into_iter()
            .map(|r| {
                schedule(&fsrs, &new_item(), r, T0)
                    .expect("schedules")
                    .due_ms
            })
            .collect();
        assert!(dues.windows(2).all(|w| w[0] <= w[1]), "{dues:?}");
    }

    #[test]
    fn again_is_a_short_relearning_step_and_counts_a_lapse_only_after_learning() {
        let fsrs = FSRS::default();
        let first = schedule(&fsrs, &new_item(), Rating::Again, T0).expect("schedules");
        assert_eq!(first.due_ms, T0 + RELEARNING_STEP_MS);
        assert_eq!(first.lapses, 0);
        let learned = schedule(&fsrs, &new_item(), Rating::Good, T0).expect("schedules");
        let later = T0 + 3 * DAY_MS;
        let lapse = schedule(&fsrs, &after(&learned, T0), Rating::Again, later).expect("schedules");
        assert_eq!(lapse.lapses, 1);
        assert_eq!(lapse.due_ms, later + RELEARNING_STEP_MS);
        assert!(lapse.memory.stability < learned.memory.stability);
    }

    #[test]
    fn successful_reviews_grow_the_interval() {
        let fsrs = FSRS::default();
        let mut item = new_item();
        let mut now = T0;
        let mut last_interval = 0;
        for _ in 0..5 {
            let s = schedule(&fsrs, &item, Rating::Good, now).expect("schedules");
            let interval = s.due_ms - now;
            assert!(interval > last_interval, "{interval} after {last_interval}");
            last_interval = interval;
            item = after(&s, now);
            now = s.due_ms;
        }
    }

    #[test]
    fn a_replayed_history_ends_where_reviewing_it_here_would() {
        let fsrs = FSRS::default();
        let ratings = [Rating::Good, Rating::Again, Rating::Good, Rating::Easy];
        let mut item = new_item();
        let mut now = T0;
        let mut history = Vec::new();
        let mut expected = Vec::new();
        for rating in ratings {
            let s = schedule(&fsrs, &item, rating, now).expect("schedules");
            history.push(PastReview { at_ms: now, rating });
            expected.push(s);
            item = after(&s, now);
            now = s.due_ms + DAY_MS;
        }
        assert_eq!(replay(&fsrs, &history).expect("replays"), expected);
        let last = expected.last().expect("four reviews");
        assert_eq!((last.reps, last.lapses), (4, 1));
        assert!(replay(&fsrs, &[]).expect("replays").is_empty());
    }

    #[test]
    fn ratings_are_numbered_as_fsrs_and_anki_number_them() {
        for rating in Rating::ALL {
            assert_eq!(Rating::from_number(rating.number()), Some(rating));
        }
        assert_eq!(Rating::from_number(0), None);
        assert_eq!(Rating::from_number(5), None);
    }

    #[test]
    fn elapsed_days_are_whole_and_never_negative() {
        assert_eq!(elapsed_days(None, T0), 0);
        assert_eq!(elapsed_days(Some(T0), T0 + DAY_MS - 1), 0);
        assert_eq!(elapsed_days(Some(T0), T0 + 2 * DAY_MS), 2);
        assert_eq!(elapsed_days(Some(T0), T0 - DAY_MS), 0);
    }

    #[test]
    fn intervals_are_at_least_one_day() {
        assert_eq!(interval_days(0.2), 1);
        assert_eq!(interval_days(2.5), 3);
        assert_eq!(interval_days(10.4), 10);
    }
}
