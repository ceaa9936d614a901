//! Work that outlives the request that started it: reading documents (OCR) and making cards. Both
//! are stored with a lease; the runners of this process are tracked so that a test can stop them
//! all at once, as a crash would, and the sweeper claims work that is queued or whose runner died,
//! in whichever replica sees it first.

use std::{
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use flashcards_bootstrap::ApiError;
use tokio::task::AbortHandle;

use crate::{AppState, documents::reading, generation::jobs};

/// The background tasks of this process.
#[derive(Clone, Default)]
pub struct Runners(Arc<Mutex<Vec<AbortHandle>>>);

impl Runners {
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(work).abort_handle();
        let mut runners = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        runners.retain(|runner| !runner.is_finished());
        runners.push(handle);
    }

    /// Stops the sweeper and every runner at once, leaving their leases to expire: what a crash
    /// does to this process's work (for tests).
    pub fn abort_all(&self) {
        for runner in self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            runner.abort();
        }
    }
}

/// Every `interval`, claims and runs documents waiting to be read and generation jobs, queued or
/// left behind by a runner that died.
pub fn start_sweeper(state: AppState, interval: Duration) {
    let runners = state.runners.clone();
    runners.spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            for id in pending(&state, reading::PENDING).await {
                report("document", &id, reading::claim_and_run(&state, &id).await);
            }
            for id in pending(&state, jobs::PENDING).await {
                report("job", &id, jobs::claim_and_run(&state, &id).await);
            }
        }
    });
}

/// The ids `sql` (one `$1`: now, in Unix ms) selects; none if the database cannot say now.
async fn pending(state: &AppState, sql: &str) -> Vec<String> {
    let ids: Result<Vec<(String,)>, _> = sqlx::query_as(sql)
        .bind(state.clock.now_ms())
        .fetch_all(&state.db.read)
        .await;
    match ids {
        Ok(ids) => ids.into_iter().map(|(id,)| id).collect(),
        Err(err) => {
            tracing::warn!(%err, "looking for waiting work");
            Vec::new()
        }
    }
}

fn report(kind: &str, id: &str, claimed: Result<bool, ApiError>) {
    match claimed {
        Ok(true) => tracing::info!(kind, id, "took over waiting work"),
        Ok(false) => {}
        Err(err) => tracing::warn!(kind, id, %err, "cannot claim waiting work"),
    }
}
