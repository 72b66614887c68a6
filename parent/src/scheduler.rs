//! The scheduler: turns stored bundles into syncs.
//!
//! It asks the store for what is due ([`Store::due`] claims each destination, so one destination
//! never has two syncs in flight, and returns only its newest bundle: bursts coalesce), waits for
//! the per-(account, region) rate limiter, sends `Sync` to the enclave, and records the report.
//! Retryable failures come back after a full-jitter exponential backoff; terminal ones wait for a
//! new bundle or an explicit retry. A new submit or enable wakes it at once.

use crate::ParentError;
use crate::control::EnclaveClient;
use crate::store::{DestinationKey, DueSync, Store};
use nitrosync_shared::ErrorCode;
use nitrosync_shared::bundle::BundleHeader;
use nitrosync_shared::control::{
    RequestBody, ResponseBody, SyncError, SyncMode, SyncOutcome, SyncReport, SyncTimings,
};
use nitrosync_shared::ratelimit::TokenBuckets;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

pub use crate::config::SchedulerSettings;

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
    /// How long each recorded sync took, by mode and outcome.
    pub durations: SyncDurations,
    outcomes: std::sync::Mutex<std::collections::BTreeMap<(String, String), u64>>,
}

impl SchedulerStats {
    /// Counts one finished sync by outcome and error code, and observes `elapsed` (from sending
    /// `Sync` to the report, or to giving up) in [`SchedulerStats::durations`], so that the
    /// histogram counts exactly the syncs counted here.
    pub fn record(&self, report: &SyncReport, elapsed: Duration) {
        self.durations.observe(report.mode, report.outcome, elapsed);
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

/// Upper bounds, in seconds, of the [`SyncDurations`] buckets: 1–2.5–5 steps from 5 ms (a sync
/// that writes nothing, with cached credentials) through 50 ms (submit to written, p50) to 30 s
/// (AWS retries and credential refreshes); slower syncs (up to the sync timeout) land in `+Inf`.
pub const SYNC_SECONDS_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Parent-observed sync durations, from sending `Sync` to the enclave's report, one histogram
/// per (mode, outcome) seen so far. A sync that got no report (enclave down, timeout) is observed
/// too, as `Failed`, with the time until the parent gave up: every sync counted by
/// [`SchedulerStats::record`] is observed once.
#[derive(Debug, Default)]
pub struct SyncDurations {
    by_label: std::sync::Mutex<std::collections::HashMap<(SyncMode, String), Histogram>>,
}

impl SyncDurations {
    /// Records one sync of `mode` that ended with `outcome` after `elapsed`.
    pub fn observe(&self, mode: SyncMode, outcome: SyncOutcome, elapsed: Duration) {
        self.by_label
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((mode, format!("{outcome:?}")))
            .or_insert_with(|| Histogram::new(SYNC_SECONDS_BUCKETS))
            .observe(elapsed.as_secs_f64());
    }

    /// The histograms by (mode, outcome as in `nitrosync_syncs_total`), in no particular order.
    /// Each shares its counts with the one kept here.
    pub fn histograms(&self) -> Vec<(SyncMode, String, Histogram)> {
        self.by_label
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|((mode, outcome), h)| (*mode, outcome.clone(), h.clone()))
            .collect()
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
///
/// The bundle goes as the bytes the tenant signed and the store kept: the parent does not decode
/// and re-encode it on the way.
async fn send(client: &EnclaveClient, due: &DueSync) -> (SyncReport, Duration) {
    let req = RequestBody::Sync {
        bundle: due.bundle.clone(),
    };
    let sent = Instant::now();
    let report = match client.request(req).await {
        Ok(ResponseBody::Sync(r)) => r,
        Ok(other) => unavailable_report(due, format!("unexpected answer to Sync: {other:?}")),
        Err(e) => unavailable_report(due, e.message),
    };
    (report, sent.elapsed())
}

/// One lock per destination: a scheduled sync and a test or delete of the same destination never
/// run at once, whichever path they came by.
#[derive(Debug, Default)]
struct DestinationLocks {
    locks: std::sync::Mutex<std::collections::HashMap<DestinationKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl DestinationLocks {
    async fn lock(&self, key: &DestinationKey) -> DestinationGuard<'_> {
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let guard = lock.clone().lock_owned().await;
        DestinationGuard {
            locks: self,
            key: key.clone(),
            lock,
            _guard: Some(guard),
        }
    }
}

struct DestinationGuard<'a> {
    locks: &'a DestinationLocks,
    key: DestinationKey,
    lock: Arc<tokio::sync::Mutex<()>>,
    _guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for DestinationGuard<'_> {
    fn drop(&mut self) {
        self._guard = None;
        let mut map = self.locks.locks.lock().unwrap_or_else(|p| p.into_inner());
        // Ours, the map's, and nobody waiting: forget the lock.
        if Arc::strong_count(&self.lock) == 2 {
            map.remove(&self.key);
        }
    }
}

/// The only way into a sync. The loop ([`Scheduler::run`]) claims due syncs from the store,
/// paced per (account, region); [`Scheduler::run_now`] runs a test or a delete that the admin
/// API asked for, through the same pacing, the same per-destination lock and the same record
/// keeping.
#[derive(Debug)]
pub struct Scheduler {
    store: Arc<Store>,
    client: EnclaveClient,
    wake: Arc<Notify>,
    settings: SchedulerSettings,
    stats: Arc<SchedulerStats>,
    limiter: RateLimiter,
    locks: DestinationLocks,
    tasks: TaskTracker,
}

impl Scheduler {
    /// A scheduler over `store`, sending syncs through `client`. `wake` is notified by submits
    /// and enables.
    pub fn new(
        store: Arc<Store>,
        client: EnclaveClient,
        wake: Arc<Notify>,
        settings: SchedulerSettings,
        stats: Arc<SchedulerStats>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            client,
            wake,
            limiter: RateLimiter::new(settings.writes_per_second),
            settings,
            stats,
            locks: DestinationLocks::default(),
            tasks: TaskTracker::new(),
        })
    }

    /// Counters.
    pub fn stats(&self) -> &Arc<SchedulerStats> {
        &self.stats
    }

    /// Runs `due` now: waits for its destination's lock and its account's rate, sends it, and
    /// records the report (with a retry time, for scheduled writes that failed retryably).
    async fn execute(&self, due: &DueSync) -> (SyncReport, u64, u64) {
        let _lock = self.locks.lock(&due.key).await;
        self.stats.started.fetch_add(1, Ordering::Relaxed);
        let started = now_ms();
        let (report, elapsed) = send(&self.client, due).await;
        let finished = now_ms();
        self.stats.record(&report, elapsed);
        match &report.error {
            None => {
                self.stats.succeeded.fetch_add(1, Ordering::Relaxed);
            }
            Some(e) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                // Codes and messages never hold a variable's value.
                warn!(destination = %due.key.id, version = due.version, mode = ?due.mode, code = %e.code, retryable = e.retryable, message = %e.message, "sync failed");
            }
        }
        (report, started, finished)
    }

    /// Waits until (`account`, `region`) has a write token, and takes it.
    async fn pace(&self, account: &str, region: &str) {
        let key = (account.to_owned(), region.to_owned());
        while let Some(wait) = self.limiter.try_take(&key) {
            tokio::time::sleep(wait).await;
        }
    }

    /// Runs a bundle the tenant signed for a test or a delete now, and records it in the
    /// destination's history when the store knows the destination. `header` is the bundle's,
    /// verified by the caller. It waits for the destination's lock (a scheduled sync of it
    /// finishes first) and for its account's write rate.
    pub async fn run_signed(
        &self,
        bundle: Vec<u8>,
        header: &BundleHeader,
    ) -> Result<SyncReport, ParentError> {
        let dest = &header.destination;
        let key = DestinationKey::new(header.tenant_key, dest.id.clone());
        let account = dest.account().ok_or_else(|| ParentError::NoAccount {
            destination: dest.id.clone(),
            role_arn: dest.role_arn.clone(),
        })?;
        self.pace(&account, &dest.region).await;
        let due = DueSync {
            key: key.clone(),
            region: dest.region.clone(),
            account,
            version: header.version,
            bundle,
            mode: header.operation.into(),
            attempts: 0,
        };
        let (report, started, finished) = self.execute(&due).await;
        let (store, r, version) = (self.store.clone(), report.clone(), header.version);
        tokio::task::spawn_blocking(move || {
            store.record_result(&key, version, &r, started, finished, None)
        })
        .await??;
        Ok(report)
    }

    /// Runs the scheduling loop until `shutdown`, then waits for the syncs in flight.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        self.run_loop(&shutdown).await;
        self.tasks.close();
        self.tasks.wait().await;
    }

    async fn run_loop(self: &Arc<Self>, shutdown: &CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.settings.max_in_flight));
        match tokio::task::spawn_blocking({
            let store = self.store.clone();
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
            // Pacing happens here, before a sync is claimed: a sync waiting for its account's
            // rate would hold a slot, and one account's backlog would hold up every other account.
            let (held_back, soonest) = self.limiter.held_back();
            let mut paced = !held_back.is_empty();
            let due = if free == 0 || !self.client.state().connected {
                Vec::new()
            } else {
                let this = self.clone();
                match tokio::task::spawn_blocking(move || {
                    let mut refused = false;
                    let due =
                        this.store
                            .due_paced(now_ms(), free, &held_back, |account, region| {
                                let ok = this.limiter.take(account, region);
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
                self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
            if due.is_empty() {
                // Back when a sync ends or a bundle arrives (wake), when a held-back account has
                // a token again, or after half a second for retries coming due.
                let nap = soonest
                    .unwrap_or(Duration::from_millis(500))
                    .clamp(Duration::from_millis(1), Duration::from_millis(500));
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(nap) => {}
                }
                continue;
            }
            for d in due {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let this = self.clone();
                self.tasks.spawn(async move {
                    let (report, started, finished) = this.execute(&d).await;
                    let retry_at = report.error.as_ref().filter(|e| e.retryable).map(|_| {
                        finished.saturating_add(
                            u64::try_from(backoff(&this.settings, d.attempts).as_millis())
                                .unwrap_or(u64::MAX),
                        )
                    });
                    debug!(destination = %d.key.id, version = d.version, outcome = ?report.outcome, "sync recorded");
                    let store = this.store.clone();
                    let rec = tokio::task::spawn_blocking(move || {
                        store.record_result(&d.key, d.version, &report, started, finished, retry_at)
                    })
                    .await;
                    if let Ok(Err(e)) = rec {
                        warn!(error = %e, "store: cannot record a sync result");
                    }
                    drop(permit);
                    // A slot is free: the scheduler may claim another sync.
                    this.wake.notify_one();
                });
            }
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
