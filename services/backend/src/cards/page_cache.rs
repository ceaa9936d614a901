//! Serialised card-list pages kept in memory, for SQLite only.
//!
//! With SQLite the backend is the database's only writer (one replica), so it knows every change:
//! each write to a deck's cards bumps the deck's version after its commit, and a page is served only
//! while the version it was read under is still current. The version is read *before* the query, so
//! a page read concurrently with a write is stored under the old version and never served. With
//! PostgreSQL other replicas write too, so there is no cache.
//!
//! The bound is in bytes, not pages: a page of 200 cards at their largest is tens of megabytes, and
//! any cursor makes a new key, so a count of pages would not bound memory.

use std::{collections::HashMap, sync::Mutex};

use axum::body::Bytes;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    pub user_id: String,
    pub deck_id: String,
    pub after: String,
    pub limit: u32,
}

impl PageKey {
    /// What the key holds, counted against the cache's bound with its page.
    fn size(&self) -> usize {
        self.user_id.len() + self.deck_id.len() + self.after.len()
    }
}

#[derive(Debug, Default)]
struct Pages {
    by_key: HashMap<PageKey, (u64, Bytes)>,
    /// Bytes of the stored keys and pages.
    stored_bytes: usize,
    deck_versions: HashMap<String, u64>,
    next_version: u64,
}

#[derive(Debug)]
pub struct PageCache {
    pages: Mutex<Pages>,
    /// Bound on memory: a page that would go past it starts the cache over.
    max_bytes: usize,
}

impl PageCache {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            pages: Mutex::default(),
            max_bytes,
        }
    }

    /// The deck's current version; read it before querying, store the page under it.
    pub fn version(&self, deck_id: &str) -> u64 {
        self.pages.lock().map_or(u64::MAX, |pages| {
            pages.deck_versions.get(deck_id).copied().unwrap_or(0)
        })
    }

    pub fn get(&self, key: &PageKey) -> Option<Bytes> {
        let pages = self.pages.lock().ok()?;
        let (version, body) = pages.by_key.get(key)?;
        let current = pages.deck_versions.get(&key.deck_id).copied().unwrap_or(0);
        (*version == current).then(|| body.clone())
    }

    /// Stores a page, unless it is larger than an eighth of the bound: so large a page would push
    /// out most others, and reading it again costs less than its size suggests next to serving it.
    pub fn put(&self, key: PageKey, version: u64, body: Bytes) {
        let key_size = key.size();
        let size = key_size + body.len();
        if size > self.max_bytes / 8 {
            return;
        }
        if let Ok(mut pages) = self.pages.lock() {
            if pages.stored_bytes + size > self.max_bytes {
                pages.by_key.clear();
                pages.stored_bytes = 0;
            }
            if let Some((_, replaced)) = pages.by_key.insert(key, (version, body)) {
                pages.stored_bytes -= key_size + replaced.len();
            }
            pages.stored_bytes += size;
        }
    }

    /// Call after a change to the deck's cards has committed.
    pub fn invalidate(&self, deck_id: &str) {
        if let Ok(mut pages) = self.pages.lock() {
            pages.next_version += 1;
            let version = pages.next_version;
            pages.deck_versions.insert(deck_id.to_owned(), version);
            let mut freed = 0;
            pages.by_key.retain(|key, (_, body)| {
                let keep = key.deck_id != deck_id;
                if !keep {
                    freed += key.size() + body.len();
                }
                keep
            });
            pages.stored_bytes -= freed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(deck: &str) -> PageKey {
        PageKey {
            user_id: "u".into(),
            deck_id: deck.into(),
            after: String::new(),
            limit: 50,
        }
    }

    #[test]
    fn a_page_is_served_until_its_deck_changes() {
        let cache = PageCache::new(1 << 20);
        let version = cache.version("d");
        cache.put(key("d"), version, Bytes::from_static(b"page"));
        cache.put(key("e"), cache.version("e"), Bytes::from_static(b"other"));
        assert_eq!(cache.get(&key("d")).as_deref(), Some(&b"page"[..]));
        cache.invalidate("d");
        assert_eq!(cache.get(&key("d")), None);
        assert!(
            cache.get(&key("e")).is_some(),
            "other decks keep their pages"
        );
    }

    #[test]
    fn a_page_read_during_a_write_is_never_served() {
        let cache = PageCache::new(1 << 20);
        let before = cache.version("d");
        // The write commits and invalidates while the read is in flight...
        cache.invalidate("d");
        // ...and the read stores what it saw under the version it started with.
        cache.put(key("d"), before, Bytes::from_static(b"stale"));
        assert_eq!(cache.get(&key("d")), None);
    }

    #[test]
    fn versions_never_repeat_after_a_deck_is_recreated() {
        let cache = PageCache::new(1 << 20);
        cache.invalidate("d");
        let first = cache.version("d");
        cache.invalidate("d");
        assert_ne!(cache.version("d"), first);
    }

    fn stored(cache: &PageCache) -> (usize, usize) {
        let pages = cache.pages.lock().expect("lock");
        let counted = pages
            .by_key
            .iter()
            .map(|(key, (_, body))| key.size() + body.len())
            .sum();
        assert_eq!(pages.stored_bytes, counted, "the running total is exact");
        (pages.by_key.len(), counted)
    }

    #[test]
    fn the_cache_stays_within_its_bytes() {
        let cache = PageCache::new(8_000);
        for n in 0..100 {
            let page = Bytes::from(vec![b'x'; 500 + n]);
            cache.put(key(&n.to_string()), 0, page);
            assert!(stored(&cache).1 <= 8_000);
        }
        cache.put(key("0"), 0, Bytes::from(vec![b'x'; 10]));
        cache.put(key("0"), 0, Bytes::from(vec![b'x'; 20]));
        cache.invalidate("99");
        let (_, bytes) = stored(&cache);
        assert!(bytes <= 8_000);
    }

    #[test]
    fn a_page_over_an_eighth_of_the_bound_is_not_kept() {
        let cache = PageCache::new(8_000);
        cache.put(key("d"), 0, Bytes::from(vec![b'x'; 1_000]));
        assert_eq!(cache.get(&key("d")), None);
        cache.put(key("d"), 0, Bytes::from(vec![b'x'; 900]));
        assert!(cache.get(&key("d")).is_some());
    }
}
