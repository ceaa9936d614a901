use std::sync::Arc;

use fsrs::FSRS;

use crate::{
    alerts::webhook::WebhookToken,
    auth::{Admins, CredentialCache, LoginThrottle},
    background::Runners,
    cards::page_cache::PageCache,
    clock::Clock,
    db::{Database, Engine},
    documents::DocumentSettings,
    events::Changes,
    generation::jobs::Generation,
    metrics::BackendMetrics,
    study::review_queue::{OpenError, ReviewQueue},
};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub clock: Clock,
    pub metrics: BackendMetrics,
    pub sessions: SessionSettings,
    pub credentials: Arc<CredentialCache>,
    /// Wrong passwords per account, for refusing logins after too many.
    pub logins: Arc<LoginThrottle>,
    /// Card-list pages; only with SQLite, where this process sees every write.
    pub pages: Option<Arc<PageCache>>,
    pub reviews: ReviewQueue,
    /// The scheduler the study queue asks for each rating's next interval (the review writer has
    /// its own).
    pub fsrs: Arc<FSRS>,
    pub documents: DocumentSettings,
    pub generation: Generation,
    /// Documents being read and jobs making cards, run by this process.
    pub runners: Runners,
    /// Changes to documents and jobs, for the streams following them.
    pub changes: Changes,
    /// Who may read what only the stack's operators see (alerts); nobody by default.
    pub admins: Admins,
    /// What `POST /alerts` requires of its caller; nothing by default.
    pub alerts_token: WebhookToken,
}

impl AppState {
    /// `page_cache_bytes` bounds the card-list cache, which only SQLite gets (0: none). Starts the
    /// review writer, so it needs a Tokio runtime (see [`ReviewQueue::start`]).
    pub fn new(
        db: Database,
        clock: Clock,
        metrics: BackendMetrics,
        sessions: SessionSettings,
        page_cache_bytes: usize,
        documents: DocumentSettings,
        generation: Generation,
    ) -> Result<Self, OpenError> {
        let pages = (db.engine == Engine::Sqlite && page_cache_bytes > 0)
            .then(|| Arc::new(PageCache::new(page_cache_bytes)));
        let reviews = ReviewQueue::start(db.clone(), clock.clone(), FSRS::default())?;
        Ok(Self {
            db,
            clock,
            metrics,
            reviews,
            fsrs: Arc::new(FSRS::default()),
            sessions,
            credentials: Arc::default(),
            logins: Arc::default(),
            pages,
            documents,
            generation,
            runners: Runners::default(),
            changes: Changes::default(),
            admins: Admins::default(),
            alerts_token: WebhookToken::open(),
        })
    }

    pub fn with_admins(self, admins: Admins) -> Self {
        Self { admins, ..self }
    }

    pub fn with_alerts_token(self, alerts_token: WebhookToken) -> Self {
        Self {
            alerts_token,
            ..self
        }
    }

    /// Call after a change to a deck's cards has committed.
    pub fn cards_changed(&self, deck_id: &str) {
        if let Some(pages) = &self.pages {
            pages.invalidate(deck_id);
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    pub ttl_ms: i64,
    pub secure_cookies: bool,
}
