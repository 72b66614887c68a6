//! Prometheus metrics on a configurable TCP address (`[metrics] listen`), text format 0.0.4.
//!
//! `GET /metrics` reports the relay counters, syncs by outcome and error code, the queue (pending
//! and retrying destinations), destinations by state, rate-limited scheduling passes and whether
//! the enclave is connected. Nothing here names a tenant's variables.

use crate::admin::AdminState;
use bytes::Bytes;
use http_body_util::Full;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Renders every metric.
pub async fn render(state: &AdminState) -> String {
    let mut out = String::with_capacity(4096);
    let relay = state.relay_stats.snapshot();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    metric(
        "nitrosync_relay_connections_total",
        "counter",
        "Tunnels accepted from the enclave.",
        &[(String::new(), relay.accepted)],
    );
    metric(
        "nitrosync_relay_connected_total",
        "counter",
        "Tunnels that reached Connected.",
        &[(String::new(), relay.connected)],
    );
    metric(
        "nitrosync_relay_active",
        "gauge",
        "Tunnels open now.",
        &[(String::new(), relay.active)],
    );
    metric(
        "nitrosync_relay_bytes_total",
        "counter",
        "Bytes copied by the relay.",
        &[
            (
                "{direction=\"to_upstream\"}".into(),
                relay.bytes_to_upstream,
            ),
            ("{direction=\"to_enclave\"}".into(), relay.bytes_to_enclave),
        ],
    );
    let refused: Vec<(String, u64)> = relay
        .refused
        .iter()
        .map(|(r, n)| (format!("{{reason=\"{r}\"}}"), *n))
        .collect();
    metric(
        "nitrosync_relay_refused_total",
        "counter",
        "Tunnels refused, by reason.",
        &refused,
    );
    let by_outcome: Vec<(String, u64)> = state
        .scheduler
        .by_outcome()
        .into_iter()
        .map(|((outcome, code), n)| (format!("{{outcome=\"{outcome}\",code=\"{code}\"}}"), n))
        .collect();
    metric(
        "nitrosync_syncs_total",
        "counter",
        "Syncs by outcome and error code.",
        &by_outcome,
    );
    metric(
        "nitrosync_rate_limited_passes_total",
        "counter",
        "Scheduling passes that held back at least one (account, region) at its write rate.",
        &[(String::new(), state.scheduler.rate_limited.load(Relaxed))],
    );
    let counts = match state.store.clone() {
        Some(store) => {
            tokio::task::spawn_blocking(move || store.counts_by_state().unwrap_or_default())
                .await
                .unwrap_or_default()
        }
        None => Default::default(),
    };
    let queue = ["pending", "failed_retryable", "syncing"]
        .iter()
        .map(|s| counts.get(*s).copied().unwrap_or(0))
        .sum();
    metric(
        "nitrosync_queue_depth",
        "gauge",
        "Destinations waiting for a sync or in one.",
        &[(String::new(), queue)],
    );
    let states: Vec<(String, u64)> = counts
        .iter()
        .map(|(s, n)| (format!("{{state=\"{s}\"}}"), *n))
        .collect();
    metric(
        "nitrosync_destinations",
        "gauge",
        "Destinations by state.",
        &states,
    );
    let connected = u64::from(state.client.state().connected);
    metric(
        "nitrosync_enclave_connected",
        "gauge",
        "1 when the control connection to the enclave is up.",
        &[(String::new(), connected)],
    );
    out
}

/// Serves `/metrics` on `addr` until `shutdown`.
pub async fn serve(addr: SocketAddr, state: Arc<AdminState>, shutdown: CancellationToken) {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            warn!(%addr, error = %e, "cannot listen for metrics");
            return;
        }
    };
    info!(%addr, "metrics on /metrics");
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            s = listener.accept() => match s { Ok((s, _)) => s, Err(_) => continue },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let state = state.clone();
                    async move {
                        let resp = if req.uri().path() == "/metrics" {
                            http::Response::builder()
                                .header(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")
                                .body(Full::new(Bytes::from(render(&state).await)))
                        } else {
                            http::Response::builder()
                                .status(404)
                                .body(Full::new(Bytes::from_static(b"not found\n")))
                        };
                        Ok::<_, std::convert::Infallible>(
                            resp.unwrap_or_else(|_| http::Response::new(Full::new(Bytes::new()))),
                        )
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}
