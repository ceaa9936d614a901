//! The engine pool and the bounded queue in front of it. A request is admitted only while fewer than
//! `engines + queue` requests are in the service, so a burst beyond that is refused at once (503 with
//! `Retry-After`) instead of waiting without end; admitted requests wait for an engine until their
//! deadline.

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicUsize, Ordering},
};

use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};

use crate::engine::Engine;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    #[error("all {engines} engines are busy and {queue} requests are already waiting")]
    Overloaded { engines: usize, queue: usize },
    #[error("no engine came free before the request's deadline")]
    DeadlineExceeded,
}

pub struct EnginePool {
    idle: Mutex<Vec<Engine>>,
    engines: Arc<Semaphore>,
    admitted: AtomicUsize,
    engine_count: usize,
    queue: usize,
}

impl EnginePool {
    pub fn new(engines: Vec<Engine>, queue: usize) -> Arc<Self> {
        let engine_count = engines.len();
        Arc::new(Self {
            idle: Mutex::new(engines),
            engines: Arc::new(Semaphore::new(engine_count)),
            admitted: AtomicUsize::new(0),
            engine_count,
            queue,
        })
    }

    pub fn engine_count(&self) -> usize {
        self.engine_count
    }

    /// Requests in the service now (on an engine, waiting for one, or being decoded).
    pub fn admitted(&self) -> usize {
        self.admitted.load(Ordering::SeqCst)
    }

    /// Lets a request in, or refuses it when engines and queue are full.
    pub fn admit(self: &Arc<Self>) -> Result<Admission, PoolError> {
        let capacity = self.engine_count + self.queue;
        let admitted = self
            .admitted
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                (now < capacity).then_some(now + 1)
            });
        match admitted {
            Ok(_) => Ok(Admission { pool: self.clone() }),
            Err(_) => Err(PoolError::Overloaded {
                engines: self.engine_count,
                queue: self.queue,
            }),
        }
    }

    fn take_idle(&self, language: &str) -> Option<Engine> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        // An engine with the language loaded saves reloading it.
        let index = idle
            .iter()
            .position(|engine| engine.language() == language)
            .or_else(|| idle.len().checked_sub(1))?;
        Some(idle.swap_remove(index))
    }

    fn give_back(&self, engine: Engine) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(engine);
    }
}

/// A request's place in the service; dropping it frees the place.
pub struct Admission {
    pool: Arc<EnginePool>,
}

impl Admission {
    /// Waits for an engine (preferring one with `language` loaded) until `deadline`.
    pub async fn engine(&self, language: &str, deadline: Instant) -> Result<Lease, PoolError> {
        let permit = tokio::time::timeout_at(deadline, self.pool.engines.clone().acquire_owned())
            .await
            .map_err(|_| PoolError::DeadlineExceeded)?
            .map_err(|_| PoolError::DeadlineExceeded)?;
        // Holding a permit guarantees an idle engine.
        let engine = self
            .pool
            .take_idle(language)
            .ok_or(PoolError::DeadlineExceeded)?;
        Ok(Lease {
            engine: Some(engine),
            pool: self.pool.clone(),
            _permit: permit,
        })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.pool.admitted.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An engine on loan; it goes back to the pool when the lease is dropped, even if the request that
/// took it has already given up.
pub struct Lease {
    engine: Option<Engine>,
    pool: Arc<EnginePool>,
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    pub fn engine(&mut self) -> Option<&mut Engine> {
        self.engine.as_mut()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(engine) = self.engine.take() {
            self.pool.give_back(engine);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn admits_engines_plus_queue_then_refuses_until_one_leaves() {
        let pool = EnginePool::new(Vec::new(), 2);
        let first = pool.admit().expect("room");
        let _second = pool.admit().expect("room");
        assert_eq!(
            pool.admit().err(),
            Some(PoolError::Overloaded {
                engines: 0,
                queue: 2
            })
        );
        assert_eq!(pool.admitted(), 2);
        drop(first);
        assert!(pool.admit().is_ok(), "a place came free");
    }

    #[tokio::test]
    async fn waiting_for_an_engine_ends_at_the_deadline() {
        let pool = EnginePool::new(Vec::new(), 1);
        let admission = pool.admit().expect("room");
        let deadline = Instant::now() + Duration::from_millis(20);
        assert_eq!(
            admission.engine("eng", deadline).await.err(),
            Some(PoolError::DeadlineExceeded)
        );
    }
}
