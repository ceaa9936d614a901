//! Leader election on a `coordination.k8s.io` Lease, so that several operator replicas never
//! reconcile at once: the holder renews the Lease every few seconds; another replica takes it
//! over only after it expired. A holder that cannot renew within [`RENEW_DEADLINE`] stops (the
//! process exits and restarts), before the Lease expires and another replica may take it.

use std::time::{Duration, Instant};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};

/// How long a Lease holds without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How long the holder keeps trying after failed renewals (an apiserver restarting, a dropped
/// connection) before it gives up; shorter than [`LEASE_DURATION`], so that it has stopped before
/// anyone else can lead.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How soon a failed renewal is tried again.
const RETRY_EVERY: Duration = Duration::from_secs(2);

/// Whether a holder whose last successful renewal was `since_renewed` ago must give up.
pub fn must_give_up(since_renewed: Duration) -> bool {
    since_renewed + RETRY_EVERY > RENEW_DEADLINE
}

/// Whether a Lease held by `holder` (renewed at `renewed`, lasting `seconds`) may be taken by
/// `me` at `now`.
pub fn may_take(
    holder: Option<&str>,
    renewed: Option<Timestamp>,
    seconds: i32,
    me: &str,
    now: Timestamp,
) -> bool {
    match (holder, renewed) {
        (None, _) | (_, None) => true,
        (Some(holder), _) if holder == me => true,
        (Some(_), Some(renewed)) => {
            renewed + SignedDuration::from_secs(i64::from(seconds.max(1))) < now
        }
    }
}

pub struct Elector {
    api: Api<Lease>,
    name: String,
    me: String,
}

impl Elector {
    pub fn new(client: Client, namespace: &str, name: &str, me: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            me: me.to_owned(),
        }
    }

    /// Waits until this process holds the Lease.
    pub async fn acquire(&self) -> Result<(), kube::Error> {
        loop {
            if self.try_take().await? {
                tracing::info!(lease = %self.name, holder = %self.me, "leading");
                return Ok(());
            }
            tokio::time::sleep(RENEW_EVERY).await;
        }
    }

    /// Renews the Lease forever; returns when it was lost, or could not be renewed for
    /// [`RENEW_DEADLINE`].
    pub async fn keep(&self) -> kube::Error {
        let mut renewed = Instant::now();
        let mut wait = RENEW_EVERY;
        loop {
            tokio::time::sleep(wait).await;
            // A hung request counts as a failed renewal, so the deadline holds.
            let attempt = tokio::time::timeout(RETRY_EVERY, self.try_take())
                .await
                .unwrap_or_else(|_| Err(kube::Error::Service("renewal timed out".into())));
            match attempt {
                Ok(true) => {
                    renewed = Instant::now();
                    wait = RENEW_EVERY;
                }
                Ok(false) => {
                    return kube::Error::Service("the lease was taken over".into());
                }
                Err(err) if must_give_up(renewed.elapsed()) => return err,
                Err(err) => {
                    tracing::warn!(%err, "renewing the leader lease failed; retrying");
                    wait = RETRY_EVERY;
                }
            }
        }
    }

    async fn try_take(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let seconds = i32::try_from(LEASE_DURATION.as_secs()).unwrap_or(15);
        let spec = LeaseSpec {
            holder_identity: Some(self.me.clone()),
            lease_duration_seconds: Some(seconds),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        };
        match self.api.get_opt(&self.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        acquire_time: Some(MicroTime(now)),
                        ..spec
                    }),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                    Err(err) => Err(err),
                }
            }
            Some(mut lease) => {
                let current = lease.spec.clone().unwrap_or_default();
                if !may_take(
                    current.holder_identity.as_deref(),
                    current.renew_time.as_ref().map(|t| t.0),
                    current.lease_duration_seconds.unwrap_or(seconds),
                    &self.me,
                    now,
                ) {
                    return Ok(false);
                }
                let taking_over = current.holder_identity.as_deref() != Some(self.me.as_str());
                lease.spec = Some(LeaseSpec {
                    acquire_time: if taking_over {
                        Some(MicroTime(now))
                    } else {
                        current.acquire_time
                    },
                    // A Lease made without the field counts from zero.
                    lease_transitions: Some(
                        current.lease_transitions.unwrap_or(0) + i32::from(taking_over),
                    ),
                    ..spec
                });
                // The resourceVersion makes this a compare-and-swap: a concurrent taker loses.
                match self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                    Err(err) => Err(err),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_free_when_unheld_mine_or_expired() {
        let now: Timestamp = "2026-11-27T10:00:00Z".parse().expect("time");
        let recent: Timestamp = "2026-11-27T09:59:55Z".parse().expect("time");
        let old: Timestamp = "2026-11-27T09:59:00Z".parse().expect("time");
        assert!(may_take(None, None, 15, "me", now));
        assert!(may_take(Some("me"), Some(recent), 15, "me", now));
        assert!(!may_take(Some("other"), Some(recent), 15, "me", now));
        assert!(may_take(Some("other"), Some(old), 15, "me", now));
    }

    #[test]
    fn a_holder_retries_failed_renewals_until_the_deadline() {
        assert!(!must_give_up(RENEW_EVERY));
        assert!(must_give_up(RENEW_DEADLINE));
        // The last retry ends before the deadline, which ends before the Lease expires.
        assert!(RENEW_DEADLINE < LEASE_DURATION);
    }
}
