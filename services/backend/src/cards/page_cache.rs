//! Serialised card-list pages kept in memory, for SQLite only.
//!
//! With SQLite the backend is the database's only writer (one replica), so it knows every change:
//! each write to a deck's cards bumps the deck's version after its commit, and a page is served only
//! while the version it was read under is still current. The version is read *before* the query, so
//! a page read concurrently with a write is stored under the old version and never served. With
//! PostgreSQL other replicas write too, so there is no cache.

use std::{collections::HashMap, sync::Mutex};

use axum::body::Bytes;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    pub user_id: String,
    pub deck_id: String,
    pub after: String,
    pub limit: u32,
}

#[derive(Debug, Default)]
struct Pages {
    by_key: HashMap<PageKey, (u64, Bytes)>,
    deck_versions: HashMap<String, u64>,
    next_version: u64,
}

#[derive(Debug)]
pub struct PageCache {
    pages: Mutex<Pages>,
    /// Bound on memory: when full, the cache starts over.
    max_pages: usize,
}

impl PageCache {
    pub fn new(max_pages: usize) -> Self {
        Self {
            pages: Mutex::default(),
            max_pages,
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

    pub fn put(&self, key: PageKey, version: u64, body: Bytes) {
        if let Ok(mut pages) = self.pages.lock() {
            if pages.by_key.len() >= self.max_pages {
                pages.by_key.clear();
            }
            pages.by_key.insert(key, (version, body));
        }
    }

    /// Call after a change to the deck's cards has committed.
    pub fn invalidate(&self, deck_id: &str) {
        if let Ok(mut pages) = self.pages.lock() {
            pages.next_version += 1;
            let version = pages.next_version;
            pages.deck_versions.insert(deck_id.to_owned(), version);
            pages.by_key.retain(|key, _| key.deck_id != deck_id);
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
        let cache = PageCache::new(8);
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
        let cache = PageCache::new(8);
        let before = cache.version("d");
        // The write commits and invalidates while the read is in flight...
        cache.invalidate("d");
        // ...and the read stores what it saw under the version it started with.
        cache.put(key("d"), before, Bytes::from_static(b"stale"));
        assert_eq!(cache.get(&key("d")), None);
    }

    #[test]
    fn versions_never_repeat_after_a_deck_is_recreated() {
        let cache = PageCache::new(8);
        cache.invalidate("d");
        let first = cache.version("d");
        cache.invalidate("d");
        assert_ne!(cache.version("d"), first);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = PageCache::new(8);
        for n in 0..=8 {
            cache.put(key(&n.to_string()), 0, Bytes::new());
        }
        assert!(cache.pages.lock().expect("lock").by_key.len() <= 8);
    }
}
