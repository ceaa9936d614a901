//! Documents read and generation jobs an account may start an hour. Each is minutes of OCR or LLM
//! time on CPUs every account shares, so one account, or a script holding its token, must not
//! take them all. The hour starts at the account's first such request, as the login throttle's
//! window does at the first wrong password.

use flashcards_bootstrap::ApiError;

use super::{Count, CounterKey, Counters, refusal};

pub const HOUR_MS: i64 = 3_600_000;
pub const DEFAULT_DOCUMENTS_PER_HOUR: u32 = 120;
pub const DEFAULT_GENERATIONS_PER_HOUR: u32 = 60;

/// Work that is limited per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// A new upload, or a document read again.
    Document,
    /// A generation job started or continued.
    Generation,
}

impl Work {
    fn counter(self) -> &'static str {
        match self {
            Self::Document => "documents",
            Self::Generation => "generations",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Self::Document => "documents to read",
            Self::Generation => "generation jobs",
        }
    }
}

/// How many of each an account may start an hour; 0 is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourlyLimits {
    pub documents: u32,
    pub generations: u32,
}

impl Default for HourlyLimits {
    fn default() -> Self {
        Self {
            documents: DEFAULT_DOCUMENTS_PER_HOUR,
            generations: DEFAULT_GENERATIONS_PER_HOUR,
        }
    }
}

impl HourlyLimits {
    fn of(self, work: Work) -> u32 {
        match work {
            Work::Document => self.documents,
            Work::Generation => self.generations,
        }
    }
}

/// Whether one more of `work`, which makes the hour's count `count`, goes over `limit`: the
/// seconds until the hour ends if so.
pub fn over_limit(count: Count, limit: u32) -> Option<u64> {
    (limit > 0)
        .then(|| refusal(Some(count), limit.saturating_add(1)))
        .flatten()
}

/// Counts one `work` for `user_id`, or refuses it with 429 and `Retry-After` when the account has
/// had its hour's worth.
pub async fn take(
    counters: &Counters,
    limits: HourlyLimits,
    work: Work,
    user_id: &str,
    now_ms: i64,
) -> Result<(), ApiError> {
    let limit = limits.of(work);
    if limit == 0 {
        return Ok(());
    }
    let count = counters
        .add(&CounterKey::new(work.counter(), user_id), HOUR_MS, now_ms)
        .await;
    match over_limit(count, limit) {
        None => Ok(()),
        Some(secs) => {
            tracing::warn!(
                user = user_id,
                "refused: over the hourly limit of {}",
                work.plural()
            );
            Err(ApiError::TooManyRequests {
                detail: format!(
                    "at most {limit} {} an hour per account: try again in {secs} s",
                    work.plural()
                ),
                retry_after_secs: secs,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn count(count: u32) -> Count {
        Count {
            count,
            remaining_ms: 1_800_000,
        }
    }

    #[test]
    fn the_limit_itself_is_allowed_and_one_more_waits_for_the_hour() {
        assert_eq!(over_limit(count(1), 3), None);
        assert_eq!(over_limit(count(3), 3), None);
        assert_eq!(over_limit(count(4), 3), Some(1800));
        assert_eq!(over_limit(count(1_000), 0), None, "0 is no limit");
    }

    #[tokio::test]
    async fn each_account_and_kind_of_work_has_its_own_hour() {
        let counters = Counters::default();
        let limits = HourlyLimits {
            documents: 2,
            generations: 1,
        };
        let t0 = 1_700_000_000_000;
        for _ in 0..2 {
            take(&counters, limits, Work::Document, "ada", t0)
                .await
                .unwrap();
        }
        let refused = take(&counters, limits, Work::Document, "ada", t0 + 1000)
            .await
            .unwrap_err();
        assert!(
            matches!(
                refused,
                ApiError::TooManyRequests {
                    retry_after_secs: 3599,
                    ..
                }
            ),
            "{refused:?}"
        );
        take(&counters, limits, Work::Document, "bob", t0)
            .await
            .unwrap();
        take(&counters, limits, Work::Generation, "ada", t0)
            .await
            .unwrap();
        take(&counters, limits, Work::Document, "ada", t0 + HOUR_MS)
            .await
            .unwrap();
    }
}
