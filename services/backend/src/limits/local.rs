//! Counts kept in this process: what a single replica needs, and what every replica falls back to
//! while Redis cannot be reached.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use super::Count;

/// Keys tracked at once, a bound on memory (a key and three numbers each); when full, finished
/// windows are dropped, and if none has finished the counting starts over.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    count: u32,
    first_ms: i64,
    length_ms: i64,
}

impl Window {
    fn ends_ms(self) -> i64 {
        self.first_ms.saturating_add(self.length_ms)
    }
}

#[derive(Debug, Default)]
pub struct LocalCounts {
    windows: Mutex<HashMap<String, Window>>,
}

impl LocalCounts {
    /// The count in `key`'s window, if one is open at `now_ms`.
    pub fn peek(&self, key: &str, now_ms: i64) -> Option<Count> {
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let window = windows.get(key)?;
        (now_ms < window.ends_ms()).then(|| Count {
            count: window.count,
            remaining_ms: window.ends_ms() - now_ms,
        })
    }

    /// Counts one more in `key`'s window, opening a window of `length_ms` if none is open.
    pub fn add(&self, key: &str, length_ms: i64, now_ms: i64) -> Count {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if windows.len() >= MAX_TRACKED && !windows.contains_key(key) {
            windows.retain(|_, window| now_ms < window.ends_ms());
            if windows.len() >= MAX_TRACKED {
                windows.clear();
            }
        }
        let fresh = Window {
            count: 0,
            first_ms: now_ms,
            length_ms,
        };
        let window = windows.entry(key.to_owned()).or_insert(fresh);
        if now_ms >= window.ends_ms() {
            *window = fresh;
        }
        window.count = window.count.saturating_add(1);
        Count {
            count: window.count,
            remaining_ms: window.ends_ms() - now_ms,
        }
    }

    pub fn forget(&self, key: &str) {
        self.windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;
    const HOUR: i64 = 3_600_000;

    #[test]
    fn a_window_counts_from_its_first_event_until_it_ends() {
        let counts = LocalCounts::default();
        assert_eq!(counts.peek("a", T0), None);
        assert_eq!(
            counts.add("a", HOUR, T0),
            Count {
                count: 1,
                remaining_ms: HOUR
            }
        );
        assert_eq!(
            counts.add("a", HOUR, T0 + 1000),
            Count {
                count: 2,
                remaining_ms: HOUR - 1000
            }
        );
        assert_eq!(counts.peek("a", T0 + HOUR - 1).map(|c| c.count), Some(2));
        assert_eq!(counts.peek("b", T0), None, "per key");
        assert_eq!(counts.peek("a", T0 + HOUR), None, "the window has ended");
        assert_eq!(
            counts.add("a", HOUR, T0 + HOUR).count,
            1,
            "a new window starts from one"
        );
    }

    #[test]
    fn forgetting_a_key_closes_its_window() {
        let counts = LocalCounts::default();
        counts.add("a", HOUR, T0);
        counts.forget("a");
        assert_eq!(counts.peek("a", T0), None);
    }

    #[test]
    fn memory_stays_bounded() {
        let counts = LocalCounts::default();
        for n in 0..MAX_TRACKED {
            counts.add(&n.to_string(), HOUR, T0);
        }
        counts.add("late", HOUR, T0 + HOUR);
        assert_eq!(counts.tracked(), 1, "finished windows are dropped");
        for n in 0..MAX_TRACKED {
            counts.add(&n.to_string(), HOUR, T0 + HOUR);
        }
        assert!(counts.tracked() <= MAX_TRACKED);
    }
}
