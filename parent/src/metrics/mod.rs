//! Prometheus metrics on a configurable TCP address (`[metrics] listen`), text format 0.0.4,
//! encoded by `prometheus-client`.
//!
//! `GET /metrics` reports the build (`nitrosync_build_info`), the relay counters, syncs by
//! outcome and error code, how long syncs took by mode and outcome, the queue (pending, retrying
//! and syncing destinations), destinations by state, rate-limited scheduling passes, whether the
//! store could be read and whether the enclave is connected. Nothing here names a tenant's
//! variables.
//!
//! `GET /healthz` answers 200 `ok` when the store can be read, the control connection is up and
//! the enclave answers `Health` (the checks of `nitrosync status`), each within
//! [`HEALTH_TIMEOUT`]; otherwise 503 with one line saying which check failed
//! ([`MetricsSources::health`]).
//!
//! It reads [`MetricsSources`]: the relay's and the scheduler's counters, the store and the
//! control client. It does not depend on the admin API. [`server`] serves it.
//!
//! The values live elsewhere (atomics in the relay and the scheduler, rows in the store), so each
//! scrape takes a reading of them and encodes it through a `prometheus-client`
//! [`Collector`], with `ConstCounter`/`ConstGauge` values. That is the crate's way to expose
//! values it does not own: its `Counter` can only be incremented, so mirroring the atomics into
//! registered counters would need a second copy kept in step. The store is read before encoding,
//! off the async threads, because a collector's `encode` is synchronous.

pub mod server;

pub use server::{MetricsServer, ServerLimits, bind, start, start_on};

use crate::control::EnclaveClient;
use crate::scheduler::SchedulerStats;
use crate::store::{DestinationState, Store};
use nitrosync_relay::{RelayStats, RelayStatsSnapshot};
use nitrosync_shared::control::{RequestBody, ResponseBody, SyncMode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, prometheus_text,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tracing::warn;

/// The `Content-Type` of what [`MetricsSources::render`] returns (Prometheus text, 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The daemon's version, the `version` label of `nitrosync_build_info`.
pub const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `commit` label of `nitrosync_build_info`: `NITROSYNC_GIT_COMMIT` as it was when the crate
/// was compiled (the builder sets it; no build script runs git, so the build stays reproducible),
/// else `unknown`.
pub const BUILD_COMMIT: &str = match option_env!("NITROSYNC_GIT_COMMIT") {
    Some(commit) => commit,
    None => "unknown",
};

/// How long each `/healthz` check (the store read, the enclave's `Health`) may take.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// What the metrics read, and nothing more. Built by the daemon.
#[derive(Debug, Clone)]
pub struct MetricsSources {
    /// The relay's counters.
    pub relay: Arc<RelayStats>,
    /// The store, for destinations by state and the queue depth.
    pub store: Arc<Store>,
    /// The scheduler's counters and sync-duration histograms.
    pub scheduler: Arc<SchedulerStats>,
    /// The control connection, for whether the enclave is connected.
    pub enclave: EnclaveClient,
}

impl MetricsSources {
    /// Reads every source and encodes the result as Prometheus text.
    ///
    /// When the store cannot be read, `nitrosync_store_up` is 0 and the destination and queue
    /// gauges are left out (rather than reported as zero); a warning is logged.
    pub async fn render(&self) -> Result<String, fmt::Error> {
        self.read().await.encode()
    }

    /// The `/healthz` checks, in order: the store answers a read, the control connection is up,
    /// and the enclave answers `Health`, each within [`HEALTH_TIMEOUT`]. `Err` is one line
    /// saying which failed.
    pub async fn health(&self) -> Result<(), String> {
        let store = self.store.clone();
        let read = tokio::task::spawn_blocking(move || store.counts_by_state());
        match tokio::time::timeout(HEALTH_TIMEOUT, read).await {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(e))) => return Err(one_line(&format!("store unreadable: {e}"))),
            Ok(Err(e)) => return Err(one_line(&format!("store read failed: {e}"))),
            Err(_) => {
                return Err(format!(
                    "store read took over {} ms",
                    HEALTH_TIMEOUT.as_millis()
                ));
            }
        }
        let control = self.enclave.state();
        if !control.connected {
            return Err(one_line(&match control.last_error {
                Some(e) => format!("enclave not connected: {e}"),
                None => "enclave not connected".to_owned(),
            }));
        }
        match tokio::time::timeout(HEALTH_TIMEOUT, self.enclave.request(RequestBody::Health)).await
        {
            Ok(Ok(ResponseBody::Health(_))) => Ok(()),
            Ok(Ok(_)) => Err("enclave gave an unexpected answer to Health".to_owned()),
            // A locked enclave (its sealed identity not yet unsealed) answers with an error, and
            // a connection that drops mid-request fails the request.
            Ok(Err(e)) => Err(one_line(&format!(
                "enclave not healthy: {}: {}",
                e.code, e.message
            ))),
            Err(_) => Err(format!(
                "enclave did not answer Health within {} ms",
                HEALTH_TIMEOUT.as_millis()
            )),
        }
    }

    /// Takes one reading of every source.
    async fn read(&self) -> Reading {
        let store = self.store.clone();
        let destinations = match tokio::task::spawn_blocking(move || store.counts_by_state()).await
        {
            Ok(Ok(counts)) => Some(counts),
            Ok(Err(e)) => {
                warn!(error = %e, "metrics: cannot read the store; destination and queue gauges left out");
                None
            }
            Err(e) => {
                warn!(error = %e, "metrics: the store read did not finish; destination and queue gauges left out");
                None
            }
        };
        Reading {
            relay: self.relay.snapshot(),
            syncs: self.scheduler.by_outcome(),
            rate_limited: self.scheduler.rate_limited.load(Relaxed),
            destinations,
            enclave_connected: self.enclave.state().connected,
            scheduler: self.scheduler.clone(),
        }
    }
}

/// One scrape's values. The sync-duration histograms are read while encoding.
#[derive(Debug)]
struct Reading {
    relay: RelayStatsSnapshot,
    /// Syncs by (outcome, code).
    syncs: BTreeMap<(String, String), u64>,
    rate_limited: u64,
    /// Destinations by state; `None` when the store could not be read.
    destinations: Option<BTreeMap<String, u64>>,
    enclave_connected: bool,
    /// For the sync-duration histograms.
    scheduler: Arc<SchedulerStats>,
}

impl Reading {
    /// Encodes this reading as Prometheus text (0.0.4).
    fn encode(self) -> Result<String, fmt::Error> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::with_capacity(8192);
        prometheus_text::encode(&mut out, &registry)?;
        Ok(out)
    }
}

/// States that count towards the queue depth.
const QUEUED: [DestinationState; 3] = [
    DestinationState::Pending,
    DestinationState::FailedRetryable,
    DestinationState::Syncing,
];

/// The `mode` label of a sync mode.
fn mode_label(mode: SyncMode) -> &'static str {
    match mode {
        SyncMode::Write => "write",
        SyncMode::TestConnection => "test_connection",
        SyncMode::Delete => "delete",
    }
}

impl Collector for Reading {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), fmt::Error> {
        labelled(
            &mut e,
            ConstGauge::new,
            "nitrosync_build_info",
            "Always 1; the labels name the build: the crate version, and the commit from \
             NITROSYNC_GIT_COMMIT at compile time (unknown when unset).",
            [([("version", BUILD_VERSION), ("commit", BUILD_COMMIT)], 1)],
        )?;
        // Counter names are given without `_total`: the encoder appends it.
        let relay = &self.relay;
        counter(
            &mut e,
            "nitrosync_relay_connections",
            "Tunnels accepted from the enclave.",
            relay.accepted,
        )?;
        counter(
            &mut e,
            "nitrosync_relay_connected",
            "Tunnels that reached Connected.",
            relay.connected,
        )?;
        gauge(
            &mut e,
            "nitrosync_relay_active",
            "Tunnels open now.",
            relay.active,
        )?;
        gauge(
            &mut e,
            "nitrosync_relay_queued",
            "Tunnels accepted past relay.max_connections, waiting for a slot.",
            relay.queued,
        )?;
        labelled(
            &mut e,
            ConstCounter::new,
            "nitrosync_relay_bytes",
            "Bytes copied by the relay.",
            [
                ([("direction", "to_upstream")], relay.bytes_to_upstream),
                ([("direction", "to_enclave")], relay.bytes_to_enclave),
            ],
        )?;
        labelled(
            &mut e,
            ConstCounter::new,
            "nitrosync_relay_refused",
            "Tunnels refused, by reason.",
            relay
                .refused
                .iter()
                .map(|(reason, n)| ([("reason", reason.as_str())], *n)),
        )?;
        labelled(
            &mut e,
            ConstCounter::new,
            "nitrosync_syncs",
            "Syncs by outcome and error code.",
            self.syncs.iter().map(|((outcome, code), n)| {
                ([("outcome", outcome.as_str()), ("code", code.as_str())], *n)
            }),
        )?;
        {
            let mut m = e.encode_descriptor(
                "nitrosync_sync_duration",
                "Seconds from the parent sending Sync to the enclave's report, or to the parent \
                 giving up (enclave unavailable, timeout: outcome Failed), by mode and outcome; \
                 one observation per sync in nitrosync_syncs_total. Measured by the parent, not \
                 taken from the report's enclave timings, so it includes the control connection \
                 and covers syncs that never got a report.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            let mut histograms = self.scheduler.durations.histograms();
            histograms.sort_by(|a, b| (mode_label(a.0), &a.1).cmp(&(mode_label(b.0), &b.1)));
            for (mode, outcome, histogram) in histograms {
                let labels = [("mode", mode_label(mode)), ("outcome", outcome.as_str())];
                histogram.encode(m.encode_family(&labels)?)?;
            }
        }
        counter(
            &mut e,
            "nitrosync_rate_limited_passes",
            "Scheduling passes that held back at least one (account, region) at its write rate.",
            self.rate_limited,
        )?;
        gauge(
            &mut e,
            "nitrosync_store_up",
            "1 when the store could be read for this scrape; when 0, the destination and queue \
             gauges are left out.",
            u64::from(self.destinations.is_some()),
        )?;
        if let Some(counts) = &self.destinations {
            let queue = QUEUED
                .iter()
                .map(|s| counts.get(s.as_str()).copied().unwrap_or(0))
                .fold(0u64, u64::saturating_add);
            gauge(
                &mut e,
                "nitrosync_queue_depth",
                "Destinations waiting for a sync or in one.",
                queue,
            )?;
            labelled(
                &mut e,
                ConstGauge::new,
                "nitrosync_destinations",
                "Destinations by state.",
                counts
                    .iter()
                    .map(|(state, n)| ([("state", state.as_str())], *n)),
            )?;
        }
        gauge(
            &mut e,
            "nitrosync_enclave_connected",
            "1 when the control connection to the enclave is up.",
            u64::from(self.enclave_connected),
        )?;
        Ok(())
    }
}

/// The first line of `s`, for a one-line `/healthz` reason.
fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_owned()
}

/// One unlabelled counter.
fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let c = ConstCounter::new(value);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

/// One unlabelled gauge.
fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let g = ConstGauge::new(value);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

/// A family of `metric`s (constant counters or gauges), one sample per label set.
fn labelled<M: EncodeMetric + TypedMetric, L: EncodeLabelSet>(
    e: &mut DescriptorEncoder,
    metric: fn(u64) -> M,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, M::TYPE)?;
    for (labels, value) in samples {
        metric(value).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
