//! A short-lived in-memory cache of credential lookups, so an authenticated request does not need a
//! database round trip of its own. Logout and token deletion evict at once on this replica; another
//! replica notices within [`CACHE_TTL_MS`]. The credential's own expiry is checked on every hit.

use std::{collections::HashMap, sync::Mutex};

use super::CurrentUser;

/// How long a lookup is trusted before the database is asked again.
pub const CACHE_TTL_MS: i64 = 5_000;
/// Bound on memory: when full, the cache starts over.
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone)]
struct Entry {
    user: CurrentUser,
    expires_at: Option<i64>,
    cached_at: i64,
}

#[derive(Debug, Default)]
struct Entries {
    by_digest: HashMap<String, Entry>,
    /// Token ids revoked within the last TTL, with when: a lookup that read the token just before its
    /// revocation must not put it back.
    revoked: HashMap<String, i64>,
}

#[derive(Debug, Default)]
pub struct CredentialCache {
    entries: Mutex<Entries>,
}

impl CredentialCache {
    /// The user a token digest belongs to, if looked up recently and not expired.
    pub fn get(&self, digest: &str, now_ms: i64) -> Option<CurrentUser> {
        let entries = self.entries.lock().ok()?;
        let entry = entries.by_digest.get(digest)?;
        let fresh = now_ms < entry.cached_at + CACHE_TTL_MS;
        let live = entry.expires_at.is_none_or(|expires| expires > now_ms);
        (fresh && live).then(|| entry.user.clone())
    }

    pub fn insert(&self, digest: String, user: CurrentUser, expires_at: Option<i64>, now_ms: i64) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.revoked.contains_key(&user.token_id) {
                return;
            }
            if entries.by_digest.len() >= MAX_ENTRIES {
                entries.by_digest.clear();
            }
            entries.by_digest.insert(
                digest,
                Entry {
                    user,
                    expires_at,
                    cached_at: now_ms,
                },
            );
        }
    }

    /// Drops every cached lookup of the given session or API token, and keeps lookups already in
    /// flight from caching it again.
    pub fn forget_token(&self, token_id: &str, now_ms: i64) {
        if let Ok(mut entries) = self.entries.lock() {
            entries
                .by_digest
                .retain(|_, entry| entry.user.token_id != token_id);
            entries
                .revoked
                .retain(|_, revoked_at| now_ms < *revoked_at + CACHE_TTL_MS);
            entries.revoked.insert(token_id.to_owned(), now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(token: &str) -> CurrentUser {
        CurrentUser {
            id: "u".into(),
            token_id: token.into(),
        }
    }

    #[test]
    fn a_lookup_is_trusted_for_the_ttl_only() {
        let cache = CredentialCache::default();
        cache.insert("d".into(), user("t"), None, 1_000);
        assert!(cache.get("d", 1_000 + CACHE_TTL_MS - 1).is_some());
        assert!(cache.get("d", 1_000 + CACHE_TTL_MS).is_none());
        assert!(cache.get("other", 1_000).is_none());
    }

    #[test]
    fn an_expired_credential_is_never_served() {
        let cache = CredentialCache::default();
        cache.insert("d".into(), user("t"), Some(1_500), 1_000);
        assert!(cache.get("d", 1_499).is_some());
        assert!(cache.get("d", 1_500).is_none());
    }

    #[test]
    fn forgetting_a_token_evicts_it() {
        let cache = CredentialCache::default();
        cache.insert("a".into(), user("t1"), None, 0);
        cache.insert("b".into(), user("t2"), None, 0);
        cache.forget_token("t1", 1);
        assert!(cache.get("a", 1).is_none());
        assert!(cache.get("b", 1).is_some());
    }

    #[test]
    fn a_lookup_that_raced_a_revocation_is_not_cached() {
        let cache = CredentialCache::default();
        cache.forget_token("t", 10);
        cache.insert("d".into(), user("t"), None, 11);
        assert!(cache.get("d", 12).is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = CredentialCache::default();
        for n in 0..=MAX_ENTRIES {
            cache.insert(n.to_string(), user("t"), None, 0);
        }
        assert!(cache.entries.lock().expect("lock").by_digest.len() <= MAX_ENTRIES);
    }
}
