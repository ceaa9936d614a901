//! Who a session belongs to, remembered for a few seconds. Every page shows the visitor's email,
//! and asking the backend for it on every page was a third of a page's backend calls. Only the
//! header's email comes from here: each page's own calls still carry the session to the backend,
//! so a session ended elsewhere is refused there, in the same request.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use flashcards_backend::auth::User;
use sha2::{Digest, Sha256};

/// How long an answer of `/api/auth/me` is reused.
pub const TTL: Duration = Duration::from_secs(30);
/// Sessions remembered at most; beyond that the expired ones go, then all.
pub const MAX_ENTRIES: usize = 10_000;

/// Sessions (by their SHA-256, so the map holds no usable secret) and their users.
#[derive(Debug, Default)]
pub struct Visitors {
    entries: Mutex<HashMap<[u8; 32], (User, Instant)>>,
}

fn key(session: &str) -> [u8; 32] {
    Sha256::digest(session.as_bytes()).into()
}

impl Visitors {
    /// The session's user, if asked for less than [`TTL`] before `now`.
    pub fn get(&self, session: &str, now: Instant) -> Option<User> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(&key(session))
            .filter(|(_, at)| now.saturating_duration_since(*at) < TTL)
            .map(|(user, _)| user.clone())
    }

    pub fn insert(&self, session: &str, user: User, now: Instant) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (_, at)| now.saturating_duration_since(*at) < TTL);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key(session), (user, now));
    }

    /// Forgets the session (signing out).
    pub fn forget(&self, session: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&key(session));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(email: &str) -> User {
        User {
            id: "u".to_owned(),
            email: email.to_owned(),
            created_at: String::new(),
        }
    }

    #[test]
    fn a_session_is_remembered_for_its_ttl_and_forgotten_on_sign_out() {
        let visitors = Visitors::default();
        let now = Instant::now();
        visitors.insert("fcs_a", user("ada@example.org"), now);
        assert_eq!(
            visitors.get("fcs_a", now + TTL / 2).map(|u| u.email),
            Some("ada@example.org".to_owned())
        );
        assert!(visitors.get("fcs_a", now + TTL).is_none(), "expired");
        assert!(visitors.get("fcs_b", now).is_none(), "another session");
        visitors.forget("fcs_a");
        assert!(visitors.get("fcs_a", now).is_none(), "signed out");
    }

    #[test]
    fn the_map_stays_bounded() {
        let visitors = Visitors::default();
        let now = Instant::now();
        for n in 0..MAX_ENTRIES + 5 {
            visitors.insert(&format!("fcs_{n}"), user("x@example.org"), now);
        }
        let size = visitors
            .entries
            .lock()
            .map(|entries| entries.len())
            .unwrap_or(0);
        assert!(size <= MAX_ENTRIES, "{size}");
    }
}
