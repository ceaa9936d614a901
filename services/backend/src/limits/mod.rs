//! How much one account may do in a while: wrong passwords before its logins are refused
//! ([`crate::auth`]'s throttle) and documents and generation jobs an hour ([`rates`]). Counted in
//! Redis when the backend has one (`--redis-url`), so every replica sees the same counts, and in
//! this process as well, which is what a single replica uses and what every replica falls back to
//! while Redis is down.

mod local;
pub mod rates;
mod shared;

use sha2::{Digest, Sha256};

pub use self::shared::InvalidRedisUrl;
use self::{local::LocalCounts, shared::RedisCounts};

/// What a counting window holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub count: u32,
    /// Until the window ends.
    pub remaining_ms: i64,
}

/// Whether a window holding `count` refuses more, when it allows `limit`: the whole seconds until
/// it ends (at least one).
pub fn refusal(count: Option<Count>, limit: u32) -> Option<u64> {
    let count = count?;
    (count.count >= limit && count.remaining_ms > 0)
        .then(|| u64::try_from((count.remaining_ms + 999) / 1000).unwrap_or(1))
}

/// Counting windows by key, in Redis and here.
#[derive(Default)]
pub struct Counters {
    local: LocalCounts,
    redis: Option<RedisCounts>,
}

impl Counters {
    /// Counters shared through the Redis at `url` (connected on first use).
    pub fn shared(url: &str) -> Result<Self, InvalidRedisUrl> {
        Ok(Self {
            local: LocalCounts::default(),
            redis: Some(RedisCounts::new(url)?),
        })
    }

    /// The count in `key`'s open window: Redis's when it answers, else this replica's.
    pub async fn peek(&self, key: &CounterKey, now_ms: i64) -> Option<Count> {
        if let Some(redis) = &self.redis
            && let Some(shared) = redis.peek(&key.0).await
        {
            return shared;
        }
        self.local.peek(&key.0, now_ms)
    }

    /// Counts one more in `key`'s window, which opens for `length_ms` if none is open.
    pub async fn add(&self, key: &CounterKey, length_ms: i64, now_ms: i64) -> Count {
        let local = self.local.add(&key.0, length_ms, now_ms);
        if let Some(redis) = &self.redis
            && let Some(shared) = redis.add(&key.0, length_ms).await
        {
            return shared;
        }
        local
    }

    pub async fn forget(&self, key: &CounterKey) {
        self.local.forget(&key.0);
        if let Some(redis) = &self.redis {
            redis.forget(&key.0).await;
        }
    }
}

/// A counter's name in Redis: `flashcards:<what>:<whose>`, with the account hashed, so that
/// emails never sit in Redis (or in `redis-cli --scan`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterKey(String);

impl CounterKey {
    pub fn new(what: &str, whose: &str) -> Self {
        let digest = Sha256::digest(whose.as_bytes());
        let hex: String = digest[..16]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        Self(format!("flashcards:{what}:{hex}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_window_refuses_until_it_ends_rounding_up() {
        let full = |remaining_ms| {
            Some(Count {
                count: 10,
                remaining_ms,
            })
        };
        assert_eq!(refusal(full(900_000), 10), Some(900));
        assert_eq!(refusal(full(1), 10), Some(1));
        assert_eq!(refusal(full(1_001), 10), Some(2));
        assert_eq!(refusal(full(0), 10), None, "ended");
        assert_eq!(refusal(full(5_000), 11), None, "room for one more");
        assert_eq!(refusal(None, 10), None, "no window open");
    }

    #[test]
    fn keys_hide_whose_count_they_hold() {
        let key = CounterKey::new("login-failures", "ada@example.org");
        assert!(key.0.starts_with("flashcards:login-failures:"), "{key:?}");
        assert!(!key.0.contains("ada"), "{key:?}");
        assert_eq!(key.0.len(), "flashcards:login-failures:".len() + 32);
        assert_ne!(key, CounterKey::new("login-failures", "bob@example.org"));
        assert_ne!(key, CounterKey::new("documents", "ada@example.org"));
    }
}
