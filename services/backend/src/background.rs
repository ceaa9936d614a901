//! Work that outlives the request that started it: reading documents (OCR) and making cards. Both
//! are stored with a lease; the runners of this process are tracked so that a test can stop them
//! all at once, as a crash would, and the sweeper claims work that is queued or whose runner died,
//! in whichever replica sees it first.

use std::{
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::task::AbortHandle;

use crate::{AppState, documents, generation};

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
            documents::reading::sweep(&state).await;
            generation::jobs::sweep(&state).await;
        }
    });
}
