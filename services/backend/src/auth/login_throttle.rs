//! Failed logins per account. After [`MAX_FAILURES`] wrong passwords within [`WINDOW_MS`] of the
//! first, the account's logins are refused (429 with `Retry-After`) until that window has passed,
//! without checking the password: guessing online costs at least a window per ten guesses. The
//! price, as in Grafana's protection of the same kind, is that someone who knows an email can keep
//! its owner out by failing on purpose. Counted in Redis when there is one, so wrong passwords
//! spread over replicas add up as on one (see [`crate::limits`]).

use crate::limits::{CounterKey, Counters, refusal};

pub const MAX_FAILURES: u32 = 10;
pub const WINDOW_MS: i64 = 15 * 60_000;

fn key(email: &str) -> CounterKey {
    CounterKey::new("login-failures", email)
}

/// The seconds to wait, when the account's logins are refused now.
pub async fn refused_for(counters: &Counters, email: &str, now_ms: i64) -> Option<u64> {
    refusal(counters.peek(&key(email), now_ms).await, MAX_FAILURES)
}

/// Counts a wrong password; a window that has passed starts again.
pub async fn failed(counters: &Counters, email: &str, now_ms: i64) {
    counters.add(&key(email), WINDOW_MS, now_ms).await;
}

/// A successful login forgets the account's failures.
pub async fn succeeded(counters: &Counters, email: &str) {
    counters.forget(&key(email)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    #[tokio::test]
    async fn the_tenth_failure_refuses_until_the_window_ends() {
        let counters = Counters::default();
        for n in 0..MAX_FAILURES {
            let at = T0 + i64::from(n);
            assert_eq!(refused_for(&counters, "a@x.org", at).await, None);
            failed(&counters, "a@x.org", at).await;
        }
        assert_eq!(refused_for(&counters, "a@x.org", T0 + 10).await, Some(900));
        assert_eq!(
            refused_for(&counters, "a@x.org", T0 + WINDOW_MS - 1).await,
            Some(1)
        );
        assert_eq!(
            refused_for(&counters, "b@x.org", T0 + 10).await,
            None,
            "per account"
        );
        assert_eq!(
            refused_for(&counters, "a@x.org", T0 + WINDOW_MS).await,
            None
        );
        failed(&counters, "a@x.org", T0 + WINDOW_MS).await;
        assert_eq!(
            refused_for(&counters, "a@x.org", T0 + WINDOW_MS).await,
            None,
            "a new window starts from one failure"
        );
    }

    #[tokio::test]
    async fn a_success_forgets_the_failures() {
        let counters = Counters::default();
        for _ in 1..MAX_FAILURES {
            failed(&counters, "a@x.org", T0).await;
        }
        succeeded(&counters, "a@x.org").await;
        failed(&counters, "a@x.org", T0).await;
        assert_eq!(refused_for(&counters, "a@x.org", T0).await, None);
    }
}
