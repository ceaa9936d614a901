//! Counts in Redis, shared by every replica of the backend. Any failure (Redis down, slow, or
//! refusing) makes the caller fall back to this replica's own counts: logged once when Redis goes
//! away and once when it is back, and tried again no more often than every [`RETRY_AFTER`], so a
//! dead Redis costs a login nothing but the first timeout.

use std::{
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use redis::{FromRedisValue, Pipeline, aio::MultiplexedConnection};

use super::Count;

/// The longest a count may wait for Redis, connecting included, before the local one is used.
const TIMEOUT: Duration = Duration::from_secs(1);
/// How long after a failure Redis is left alone.
const RETRY_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
#[error("the Redis URL is not usable: {0}")]
pub struct InvalidRedisUrl(String);

pub struct RedisCounts {
    client: redis::Client,
    /// The open connection, shared by every request (Redis pipelines them).
    connection: Mutex<Option<MultiplexedConnection>>,
    /// When Redis last failed, while it is thought down.
    down_since: Mutex<Option<Instant>>,
}

impl RedisCounts {
    /// Checks the URL (`redis://[:password@]host:port[/db]`); connects on first use, so a backend
    /// starts even while Redis is down.
    pub fn new(url: &str) -> Result<Self, InvalidRedisUrl> {
        // Only the kind of error: its text could quote the URL, password and all.
        let client =
            redis::Client::open(url).map_err(|err| InvalidRedisUrl(format!("{:?}", err.kind())))?;
        Ok(Self {
            client,
            connection: Mutex::new(None),
            down_since: Mutex::new(None),
        })
    }

    /// Counts one more in `key`'s window, opening one of `length_ms` if none is open; `None` when
    /// Redis cannot say.
    pub async fn add(&self, key: &str, length_ms: i64) -> Option<Count> {
        let mut pipe = redis::pipe();
        // SET NX opens the window with its expiry only if none is open; INCR keeps the expiry.
        pipe.atomic()
            .cmd("SET")
            .arg(key)
            .arg(0)
            .arg("NX")
            .arg("PX")
            .arg(length_ms)
            .ignore()
            .cmd("INCR")
            .arg(key)
            .cmd("PTTL")
            .arg(key);
        let (count, remaining_ms): (i64, i64) = self.run(&pipe).await?;
        Some(Count {
            count: u32::try_from(count).unwrap_or(u32::MAX),
            remaining_ms: if remaining_ms > 0 {
                remaining_ms
            } else {
                length_ms
            },
        })
    }

    /// The count in `key`'s open window (`Some(None)` when none is open); `None` when Redis cannot
    /// say.
    pub async fn peek(&self, key: &str) -> Option<Option<Count>> {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
        let (count, remaining_ms): (Option<i64>, i64) = self.run(&pipe).await?;
        Some(count.filter(|_| remaining_ms > 0).map(|count| Count {
            count: u32::try_from(count).unwrap_or(u32::MAX),
            remaining_ms,
        }))
    }

    /// Closes `key`'s window; `None` when Redis cannot be told.
    pub async fn forget(&self, key: &str) -> Option<()> {
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(key).ignore();
        self.run(&pipe).await
    }

    async fn run<T: FromRedisValue>(&self, pipe: &Pipeline) -> Option<T> {
        let resting = self
            .down_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|since| since.elapsed() < RETRY_AFTER);
        if resting {
            return None;
        }
        let answer = tokio::time::timeout(TIMEOUT, async {
            let mut connection = self.connection().await?;
            pipe.query_async::<T>(&mut connection).await
        })
        .await;
        match answer {
            Ok(Ok(value)) => {
                let was_down = self
                    .down_since
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take()
                    .is_some();
                if was_down {
                    tracing::info!(
                        "Redis answers again: login throttling and rate limits are shared by every replica again"
                    );
                }
                Some(value)
            }
            Ok(Err(err)) => self.failed(&err.to_string()),
            Err(_) => self.failed(&format!("no answer within {} s", TIMEOUT.as_secs())),
        }
    }

    async fn connection(&self) -> redis::RedisResult<MultiplexedConnection> {
        let open = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(connection) = open {
            return Ok(connection);
        }
        let connection = self.client.get_multiplexed_async_connection().await?;
        *self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(connection.clone());
        Ok(connection)
    }

    fn failed<T>(&self, reason: &str) -> Option<T> {
        // A broken connection is not reused; the next try after the rest opens a new one.
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let was_up = self
            .down_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(Instant::now())
            .is_none();
        if was_up {
            tracing::warn!(
                "Redis cannot be reached ({reason}): login throttling and rate limits count on \
                 this replica alone until it answers again"
            );
        }
        None
    }
}
