use std::sync::Arc;

use flashcards_bootstrap::ApiError;
use fsrs::FSRS;

use crate::{
    alerts::webhook::WebhookToken,
    auth::{Admins, CredentialCache},
    background::Runners,
    cards::page_cache::PageCache,
    clock::Clock,
    db::{Database, Engine},
    documents::DocumentSettings,
    events::Changes,
    generation::jobs::Generation,
    limits::{
        Counters,
        rates::{self, HourlyLimits, Work},
    },
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
    /// Counts of what accounts do (wrong passwords, documents, generation jobs), for refusing
    /// too many; in Redis when the backend has one.
    pub limits: Arc<Counters>,
    /// How many documents and generation jobs an account may start an hour.
    pub hourly: HourlyLimits,
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
            limits: Arc::default(),
            hourly: HourlyLimits::default(),
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

    /// Counts kept in Redis as well as here, and these hourly limits.
    pub fn with_limits(self, limits: Counters, hourly: HourlyLimits) -> Self {
        Self {
            limits: Arc::new(limits),
            hourly,
            ..self
        }
    }

    /// Counts one `work` for the account, or refuses it (429) when the hour's worth is spent.
    pub async fn take(&self, work: Work, user_id: &str) -> Result<(), ApiError> {
        rates::take(
            &self.limits,
            self.hourly,
            work,
            user_id,
            self.clock.now_ms(),
        )
        .await
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
