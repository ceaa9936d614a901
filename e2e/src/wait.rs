//! Waiting for something that the control plane does eventually.

use std::{fmt::Display, time::Duration};

use crate::Error;

/// How often [`wait_for`] checks.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Calls `check` until it returns `Ok(Some(value))` and returns the value, or fails after
/// `timeout`. Errors count as "not yet" (an apiserver that restarts refuses connections for a
/// while); the last one is part of the timeout's message.
pub async fn wait_for<T, E: Display>(
    what: impl Into<String>,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Result<Option<T>, E>,
) -> Result<T, Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(error) => last_error = Some(error.to_string()),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::TimedOut {
                what: what.into(),
                timeout,
                last_error,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
