//! Server-sent events for work under way (a document being read, cards being made): the state at
//! once, then each change, until the work is finished. A change made by this process wakes its
//! streams at once; one made by another replica is seen at the next poll.

use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

use axum::response::sse::{Event, KeepAlive, Sse};
use flashcards_bootstrap::ApiError;
use futures::{Stream, future::BoxFuture};
use serde::Serialize;
use tokio::{
    sync::{broadcast, watch},
    time::Instant,
};

use crate::AppState;

/// How often a stream reads the state again when nothing in this process said it changed.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// A stream ends after this long and the browser's `EventSource` reconnects, so a session that
/// expired meanwhile is refused then rather than followed forever.
const MAX_STREAM: Duration = Duration::from_secs(300);
/// Changes a slow stream may fall behind by before it just reads the state again.
const CHANGE_BACKLOG: usize = 256;

/// Who changed what in this process, and whether the process is stopping.
#[derive(Clone)]
pub struct Changes {
    changed: broadcast::Sender<Arc<str>>,
    stopping: watch::Sender<bool>,
}

impl Default for Changes {
    fn default() -> Self {
        Self {
            changed: broadcast::channel(CHANGE_BACKLOG).0,
            stopping: watch::channel(false).0,
        }
    }
}

impl Changes {
    /// Call after a change to the document or job `id` has committed.
    pub fn notify(&self, id: &str) {
        // Nobody following it is not an error.
        self.changed.send(Arc::from(id)).ok();
    }

    /// Ends every open stream, so that a graceful shutdown does not wait on them.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }
}

/// Reads the followed object's state again; an error ends the stream with an `error` event.
pub type Load<T> = Box<dyn Fn() -> BoxFuture<'static, Result<T, ApiError>> + Send + Sync>;

/// A [`Load`] that reads object `id` of `user_id` with `read(state, user_id, id)`.
pub fn loader<T, F, Fut>(state: &AppState, user_id: &str, id: &str, read: F) -> Load<T>
where
    F: Fn(AppState, String, String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, ApiError>> + Send + 'static,
{
    let (state, user_id, id) = (state.clone(), user_id.to_owned(), id.to_owned());
    Box::new(move || Box::pin(read(state.clone(), user_id.clone(), id.clone())))
}

/// A stream of `event: <kind>` with `first` and then each different state `load` reads, ending
/// after the state `finished` says is final.
pub fn follow<T>(
    changes: &Changes,
    id: &str,
    kind: &'static str,
    first: T,
    load: Load<T>,
    finished: fn(&T) -> bool,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<T>>
where
    T: Serialize + Send + 'static,
{
    let follower = Follower {
        id: id.into(),
        changed: changes.changed.subscribe(),
        stopping: changes.stopping.subscribe(),
        deadline: Instant::now() + MAX_STREAM,
        next: Some(first),
        last: None,
        ended: false,
        load,
    };
    let stream = futures::stream::unfold(follower, move |mut follower| async move {
        let event = follower.next_event(kind, finished).await?;
        Some((Ok(event), follower))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

struct Follower<T> {
    id: Arc<str>,
    changed: broadcast::Receiver<Arc<str>>,
    stopping: watch::Receiver<bool>,
    deadline: Instant,
    /// A state read but not yet looked at.
    next: Option<T>,
    /// The last state sent, as sent.
    last: Option<String>,
    ended: bool,
    load: Load<T>,
}

impl<T: Serialize> Follower<T> {
    /// The next event to send, or `None` when the stream is over.
    async fn next_event(&mut self, kind: &'static str, finished: fn(&T) -> bool) -> Option<Event> {
        if self.ended || *self.stopping.borrow() {
            return None;
        }
        loop {
            let state = match self.next.take() {
                Some(state) => state,
                None => {
                    self.wait().await?;
                    match (self.load)().await {
                        Ok(state) => state,
                        Err(err) => {
                            self.ended = true;
                            return Some(error_event(&err));
                        }
                    }
                }
            };
            let json = match serde_json::to_string(&state) {
                Ok(json) => json,
                Err(err) => {
                    self.ended = true;
                    return Some(error_event(&ApiError::internal("encoding the state", err)));
                }
            };
            let done = finished(&state);
            if done || self.last.as_deref() != Some(json.as_str()) {
                self.ended = done;
                let event = Event::default().event(kind).data(&json);
                self.last = Some(json);
                return Some(event);
            }
        }
    }

    /// Waits until the state may have changed; `None` when the stream should end instead.
    async fn wait(&mut self) -> Option<()> {
        let id = self.id.clone();
        let changed = &mut self.changed;
        let this_one = async move {
            loop {
                match changed.recv().await {
                    Ok(changed) if changed == id => return,
                    Ok(_) => {}
                    // Missed some: it may have been this one.
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
                }
            }
        };
        tokio::select! {
            () = this_one => Some(()),
            () = tokio::time::sleep(POLL_INTERVAL) => Some(()),
            _ = self.stopping.wait_for(|stopping| *stopping) => None,
            () = tokio::time::sleep_until(self.deadline) => None,
        }
    }
}

/// `event: error` with the API's error body, for a followed object that is gone or unreadable.
fn error_event(err: &ApiError) -> Event {
    if let ApiError::Internal(detail) = err {
        tracing::error!(%detail, "following a change");
    }
    let body = serde_json::to_string(&err.body()).unwrap_or_default();
    Event::default().event("error").data(body)
}
