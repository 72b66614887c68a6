//! The scheduler: turns stored bundles into syncs.
//!
//! It asks the store for what is due ([`Store::due`] claims each destination, so one destination
//! never has two syncs in flight, and returns only its newest bundle: bursts coalesce), waits for
//! the per-(account, region) rate limiter, sends `Sync` to the enclave, and records the report.
//! Retryable failures come back after a full-jitter exponential backoff; terminal ones wait for a
//! new bundle or an explicit retry. A new submit or enable wakes it at once.

use crate::control::EnclaveClient;
use crate::store::{DueSync, Store};
use nitrosync_shared::ErrorCode;
use nitrosync_shared::bundle::SealedBundle;
use nitrosync_shared::control::{
    RequestBody, ResponseBody, SyncError, SyncOutcome, SyncReport, SyncTimings,
};
use nitrosync_shared::ratelimit::TokenBuckets;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// Writes per second per (account, region).
    pub writes_per_second: u32,
    /// Syncs in flight at once.
    pub max_in_flight: usize,
    /// First retry delay ceiling; doubles per attempt.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_cap: Duration,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            writes_per_second: 40,
            max_in_flight: 64,
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(300),
        }
    }
}

/// Scheduler counters, for status and metrics.
#[derive(Debug, Default)]
pub struct SchedulerStats {
    /// Syncs sent to the enclave.
    pub started: AtomicU64,
    /// Syncs that ended without an error.
    pub succeeded: AtomicU64,
    /// Syncs that ended with an error.
    pub failed: AtomicU64,
    /// Scheduler passes that held back at least one (account, region) at its rate.
    pub rate_limited: AtomicU64,
    outcomes: std::sync::Mutex<std::collections::BTreeMap<(String, String), u64>>,
}

impl SchedulerStats {
    /// Counts one finished sync by outcome and error code.
    pub fn record(&self, report: &SyncReport) {
        let code = report
            .error
            .as_ref()
            .map(|e| e.code.as_str())
            .unwrap_or("none");
        let key = (format!("{:?}", report.outcome), code.to_owned());
        *self
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default() += 1;
    }

    /// Syncs by (outcome, code).
    pub fn by_outcome(&self) -> std::collections::BTreeMap<(String, String), u64> {
        self.outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A token bucket per (account, region): `rate` tokens a second, bursts of `rate`.
#[derive(Debug)]
pub struct RateLimiter {
    buckets: std::sync::Mutex<TokenBuckets<(String, String)>>,
}

impl RateLimiter {
    /// A limiter allowing `per_second` per key.
    pub fn new(per_second: u32) -> Self {
        Self {
            buckets: std::sync::Mutex::new(TokenBuckets::new(per_second, per_second)),
        }
    }

    /// Takes one token for `key`, or says how long to wait for it.
    fn try_take(&self, key: &(String, String)) -> Option<Duration> {
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_take(key, Instant::now())
            .err()
    }

    /// Takes one token for (`account`, `region`) if there is one now.
    pub fn take(&self, account: &str, region: &str) -> bool {
        self.try_take(&(account.to_owned(), region.to_owned()))
            .is_none()
    }

    /// The keys at their rate now, and the shortest time until one of them has a token.
    pub fn held_back(&self) -> (Vec<(String, String)>, Option<Duration>) {
        let empty = self
            .buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .empty(Instant::now());
        let soonest = empty.iter().map(|(_, wait)| *wait).min();
        (empty.into_iter().map(|(k, _)| k).collect(), soonest)
    }
}

/// Full-jitter exponential backoff: uniform in [0, min(cap, base·2^attempt)].
pub fn backoff(settings: &SchedulerSettings, attempt: u32) -> Duration {
    let exp = settings
        .retry_base
        .saturating_mul(2u32.saturating_pow(attempt.min(20)))
        .min(settings.retry_cap);
    let mut r = [0u8; 8];
    let _ = getrandom::fill(&mut r);
    let unit = f64::from(u32::from_le_bytes([r[0], r[1], r[2], r[3]])) / f64::from(u32::MAX);
    exp.mul_f64(unit).max(Duration::from_millis(100))
}

/// A report for a sync the enclave could not run.
pub fn unavailable_report(due: &DueSync, message: String) -> SyncReport {
    SyncReport {
        destination: due.key.id.clone(),
        version: due.version,
        mode: due.mode,
        outcome: SyncOutcome::Failed,
        error: Some(SyncError {
            code: ErrorCode::EnclaveUnavailable,
            message,
            retryable: true,
        }),
        secret_arn: None,
        aws_version_id: None,
        timings: SyncTimings::default(),
    }
}

/// Sends one sync to the enclave and returns its report (a synthetic one if it failed to run).
pub async fn run_sync(client: &EnclaveClient, due: &DueSync) -> SyncReport {
    let bundle: SealedBundle = match nitrosync_shared::frame::decode_payload(&due.bundle) {
        Ok(b) => b,
        Err(e) => {
            let mut r = unavailable_report(due, format!("the stored bundle does not decode: {e}"));
            if let Some(err) = r.error.as_mut() {
                err.code = ErrorCode::InvalidBundle;
                err.retryable = false;
            }
            return r;
        }
    };
    let req = RequestBody::Sync {
        bundle: Box::new(bundle),
        mode: due.mode,
    };
    match client.request(req).await {
        Ok(ResponseBody::Sync(r)) => r,
        Ok(other) => unavailable_report(due, format!("unexpected answer to Sync: {other:?}")),
        Err(e) => unavailable_report(due, e.message),
    }
}

/// Runs the scheduler until `shutdown`.
pub async fn run(
    store: Arc<Store>,
    client: EnclaveClient,
    wake: Arc<Notify>,
    settings: SchedulerSettings,
    stats: Arc<SchedulerStats>,
    shutdown: CancellationToken,
) {
    let limiter = Arc::new(RateLimiter::new(settings.writes_per_second));
    let slots = Arc::new(Semaphore::new(settings.max_in_flight));
    let settings = Arc::new(settings);
    match tokio::task::spawn_blocking({
        let store = store.clone();
        move || store.reset_pending_on_start()
    })
    .await
    {
        Ok(Ok(n)) if n > 0 => info!(
            count = n,
            "syncs interrupted by the last stop are pending again"
        ),
        Ok(Err(e)) => warn!(error = %e, "cannot reset interrupted syncs"),
        _ => {}
    }
    loop {
        let free = slots.available_permits();
        // Pacing happens here, before a sync is claimed: a sync waiting for its account's rate
        // would hold a slot, and one account's backlog would hold up every other account.
        let (held_back, soonest) = limiter.held_back();
        let mut paced = !held_back.is_empty();
        let due = if free == 0 || !client.state().connected {
            Vec::new()
        } else {
            let (store, limiter) = (store.clone(), limiter.clone());
            match tokio::task::spawn_blocking(move || {
                let mut refused = false;
                let due = store.due_paced(now_ms(), free, &held_back, |account, region| {
                    let ok = limiter.take(account, region);
                    refused |= !ok;
                    ok
                });
                (due, refused)
            })
            .await
            {
                Ok((Ok(d), refused)) => {
                    paced |= refused;
                    d
                }
                Ok((Err(e), _)) => {
                    warn!(error = %e, "store: cannot read due syncs");
                    Vec::new()
                }
                Err(_) => Vec::new(),
            }
        };
        if paced {
            stats.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        if due.is_empty() {
            // Back when a sync ends or a bundle arrives (wake), when a held-back account has a
            // token again, or after half a second for retries coming due.
            let nap = soonest
                .unwrap_or(Duration::from_millis(500))
                .clamp(Duration::from_millis(1), Duration::from_millis(500));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(nap) => {}
            }
            continue;
        }
        for d in due {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (store, client, stats, settings, wake) = (
                store.clone(),
                client.clone(),
                stats.clone(),
                settings.clone(),
                wake.clone(),
            );
            tokio::spawn(async move {
                stats.started.fetch_add(1, Ordering::Relaxed);
                let started = now_ms();
                let report = run_sync(&client, &d).await;
                let finished = now_ms();
                stats.record(&report);
                let retry_at = match &report.error {
                    None => {
                        stats.succeeded.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                    Some(e) => {
                        stats.failed.fetch_add(1, Ordering::Relaxed);
                        // Codes and messages never hold a variable's value.
                        warn!(destination = %d.key.id, version = d.version, code = %e.code, retryable = e.retryable, message = %e.message, "sync failed");
                        e.retryable.then(|| {
                            finished.saturating_add(
                                u64::try_from(backoff(&settings, d.attempts).as_millis())
                                    .unwrap_or(u64::MAX),
                            )
                        })
                    }
                };
                debug!(destination = %d.key.id, version = d.version, outcome = ?report.outcome, "sync recorded");
                let rec = tokio::task::spawn_blocking(move || {
                    store.record_result(&d.key, d.version, &report, started, finished, retry_at)
                })
                .await;
                if let Ok(Err(e)) = rec {
                    warn!(error = %e, "store: cannot record a sync result");
                }
                drop(permit);
                // A slot is free: the scheduler may claim another sync.
                wake.notify_one();
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_allows_a_burst_then_the_rate() {
        let l = RateLimiter::new(40);
        let k = ("123456789012".to_owned(), "us-east-1".to_owned());
        for _ in 0..40 {
            assert!(l.try_take(&k).is_none());
        }
        let wait = l.try_take(&k).expect("the 41st waits");
        assert!(wait <= Duration::from_millis(26), "{wait:?}");
        // Another account is not affected.
        assert!(
            l.try_take(&("210987654321".to_owned(), "us-east-1".to_owned()))
                .is_none()
        );
    }

    #[test]
    fn backoff_is_bounded_and_jittered() {
        let s = SchedulerSettings::default();
        for attempt in 0..30 {
            let b = backoff(&s, attempt);
            assert!(b <= s.retry_cap, "{b:?}");
        }
        let samples: std::collections::HashSet<u128> =
            (0..20).map(|_| backoff(&s, 8).as_millis()).collect();
        assert!(samples.len() > 1, "jitter");
    }
}
