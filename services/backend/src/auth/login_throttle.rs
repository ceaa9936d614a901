//! Failed logins per account. After [`MAX_FAILURES`] wrong passwords within [`WINDOW_MS`] of the
//! first, the account's logins are refused (429 with `Retry-After`) until that window has passed,
//! without checking the password: guessing online costs at least a window per ten guesses. The
//! price, as in Grafana's protection of the same kind, is that someone who knows an email can keep
//! its owner out by failing on purpose. Kept in memory, per replica.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

pub const MAX_FAILURES: u32 = 10;
pub const WINDOW_MS: i64 = 15 * 60_000;
/// Accounts tracked at once, a bound on memory (an email and two numbers each); when full,
/// finished windows are dropped, and if none has finished the tracking starts over.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    first_ms: i64,
}

#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, Failures>>,
}

impl LoginThrottle {
    /// The seconds to wait, when the account's logins are refused now.
    pub fn refused_for(&self, email: &str, now_ms: i64) -> Option<u64> {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = failures.get(email)?;
        let ends_ms = entry.first_ms + WINDOW_MS;
        (entry.count >= MAX_FAILURES && now_ms < ends_ms)
            .then(|| u64::try_from((ends_ms - now_ms + 999) / 1000).unwrap_or(1))
    }

    /// Counts a wrong password; a window that has passed starts again.
    pub fn failed(&self, email: &str, now_ms: i64) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() >= MAX_TRACKED && !failures.contains_key(email) {
            failures.retain(|_, entry| now_ms < entry.first_ms + WINDOW_MS);
            if failures.len() >= MAX_TRACKED {
                failures.clear();
            }
        }
        let entry = failures.entry(email.to_owned()).or_insert(Failures {
            count: 0,
            first_ms: now_ms,
        });
        if now_ms >= entry.first_ms + WINDOW_MS {
            *entry = Failures {
                count: 0,
                first_ms: now_ms,
            };
        }
        entry.count = entry.count.saturating_add(1);
    }

    /// A successful login forgets the account's failures.
    pub fn succeeded(&self, email: &str) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(email);
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    #[test]
    fn the_tenth_failure_refuses_until_the_window_ends() {
        let throttle = LoginThrottle::default();
        for n in 0..MAX_FAILURES {
            assert_eq!(throttle.refused_for("a@x.org", T0 + i64::from(n)), None);
            throttle.failed("a@x.org", T0 + i64::from(n));
        }
        assert_eq!(throttle.refused_for("a@x.org", T0 + 10), Some(900));
        assert_eq!(throttle.refused_for("a@x.org", T0 + WINDOW_MS - 1), Some(1));
        assert_eq!(
            throttle.refused_for("b@x.org", T0 + 10),
            None,
            "per account"
        );
        assert_eq!(throttle.refused_for("a@x.org", T0 + WINDOW_MS), None);
        throttle.failed("a@x.org", T0 + WINDOW_MS);
        assert_eq!(
            throttle.refused_for("a@x.org", T0 + WINDOW_MS),
            None,
            "a new window starts from one failure"
        );
    }

    #[test]
    fn a_success_forgets_the_failures() {
        let throttle = LoginThrottle::default();
        for _ in 1..MAX_FAILURES {
            throttle.failed("a@x.org", T0);
        }
        throttle.succeeded("a@x.org");
        throttle.failed("a@x.org", T0);
        assert_eq!(throttle.refused_for("a@x.org", T0), None);
    }

    #[test]
    fn memory_stays_bounded() {
        let throttle = LoginThrottle::default();
        for n in 0..MAX_TRACKED {
            throttle.failed(&n.to_string(), T0);
        }
        throttle.failed("late@x.org", T0 + WINDOW_MS);
        assert_eq!(throttle.tracked(), 1, "finished windows are dropped");
        for n in 0..MAX_TRACKED {
            throttle.failed(&n.to_string(), T0 + WINDOW_MS);
        }
        assert!(throttle.tracked() <= MAX_TRACKED);
    }
}
