//! Prometheus metrics on a configurable TCP address (`[metrics] listen`), text format 0.0.4,
//! encoded by `prometheus-client`.
//!
//! `GET /metrics` reports the relay counters, syncs by outcome and error code, how long syncs
//! took by mode, the queue (pending, retrying and syncing destinations), destinations by state,
//! rate-limited scheduling passes, whether the store could be read and whether the enclave is
//! connected. Nothing here names a tenant's variables.
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
use nitrosync_shared::control::SyncMode;
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
use tracing::warn;

/// The `Content-Type` of what [`MetricsSources::render`] returns (Prometheus text, 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

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

/// Every mode, in the order the histograms are written.
const MODES: [SyncMode; 3] = [SyncMode::Write, SyncMode::TestConnection, SyncMode::Delete];

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
                "Time from sending Sync to the enclave's report, by mode.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for mode in MODES {
                let labels = [("mode", mode_label(mode))];
                self.scheduler
                    .durations
                    .of(mode)
                    .encode(m.encode_family(&labels)?)?;
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
