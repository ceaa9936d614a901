use std::sync::Arc;

use fsrs::FSRS;

use crate::{auth::CredentialCache, clock::Clock, db::Database, metrics::BackendMetrics};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub clock: Clock,
    pub metrics: BackendMetrics,
    pub fsrs: FSRS,
    pub sessions: SessionSettings,
    pub credentials: Arc<CredentialCache>,
}

#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    pub ttl_ms: i64,
    pub secure_cookies: bool,
}
