//! `nitrosync-relay`: the data plane. Allowlisted outbound TCP for the enclave.
//!
//! It owns accept, policy, dial, copy, counters and its settings, and nothing else: no store, no
//! HTTP server, no AWS SDK. It never sees plaintext: what it copies is TLS that ends inside the
//! enclave.
//!
//! Each tunnel starts with one `Connect { host, port }` frame from the enclave. The relay checks
//! it against the [`RelayPolicy`], resolves the name asynchronously, dials with a timeout, answers
//! `Connected` or `Refused { reason }`, and then copies raw bytes both ways until both sides have
//! closed, or the tunnel has been idle too long, or the daemon shuts down. Half-close is passed
//! through: EOF from one side becomes a write shutdown on the other.
//!
//! Concurrency is bounded by a semaphore, not a worker pool: a tunnel takes one of
//! `max_connections` slots before the relay reads its preface, and gives it back when it ends.
//! Tunnels past that cap are still accepted, up to `max_queued` more: each waits, unread and
//! undialled, for a slot (first come, first served), holding one file descriptor and a few
//! hundred bytes. Past both limits the relay stops accepting, and further tunnels wait in the
//! kernel's listen backlog (`net.core.somaxconn`, 4096 by default), where a non-blocking
//! Unix-socket connect fails with `EAGAIN` once it is full (`nitrosync_transport::connect`
//! retries that for up to 10 s). So the relay holds at most `max_connections + max_queued`
//! tunnels ([`RelaySettings::fds_needed`] file descriptors), and a burst of that many tunnels
//! plus the backlog waits instead of failing. On shutdown, waiting tunnels are closed unread
//! with the open ones.
//!
//! Copy buffers start at [`INITIAL_BUFFER`] bytes and double, up to `buffer_bytes`, each time a
//! read fills them, so an idle or chatty tunnel costs little memory and a bulk one reaches the
//! full buffer after a few reads. They are never zeroed: reads go into spare capacity.

use nitrosync_shared::Endpoint;
use nitrosync_shared::tunnel::{Connect, ConnectReply, RefusalReason};
use nitrosync_transport::{Listener, Stream, TransportError, read_one_frame, write_frame};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// The AWS services the enclave may reach in each configured region.
const AWS_SERVICES: [&str; 3] = ["sts", "secretsmanager", "kms"];

/// What the relay may dial.
#[derive(Debug, Clone, Default)]
pub struct RelayPolicy {
    regions: Vec<String>,
    aws: HashSet<(String, u16)>,
    extra: HashSet<(String, u16)>,
    simulator_upstream: Option<(String, u16)>,
}

/// Errors of the relay: a policy that cannot be built, or a listener that cannot be bound.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// Not an AWS region name.
    #[error("{0:?} is not an AWS region name (like us-east-1)")]
    Region(String),
    /// An allow entry that is not `host:port`.
    #[error("allow entry {0:?} must be host:port")]
    Allow(String),
    /// A simulator upstream that is not `host:port`.
    #[error("simulator_upstream {0:?} must be host:port")]
    Upstream(String),
    /// The listener could not be bound.
    #[error(transparent)]
    Bind(#[from] TransportError),
}

/// Validated settings of the relay.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Where tunnels arrive.
    pub listen: Endpoint,
    /// What may be dialled.
    pub policy: RelayPolicy,
    /// Tunnels open at once (each holds two file descriptors and its copy buffers).
    pub max_connections: usize,
    /// Tunnels accepted past `max_connections` that wait, unread, for a slot (one file
    /// descriptor each). Past both, new tunnels wait in the kernel's listen backlog.
    pub max_queued: usize,
    /// Copy buffer per direction.
    pub buffer_bytes: usize,
    /// Time allowed for the `Connect` frame.
    pub preface_timeout: Duration,
    /// Time allowed for resolution plus TCP connect.
    pub connect_timeout: Duration,
    /// Idle time after which a tunnel is closed.
    pub idle_timeout: Duration,
}

pub use nitrosync_shared::names::is_region;

/// The size a tunnel's copy buffer starts at, per direction (or `buffer_bytes` if smaller).
pub const INITIAL_BUFFER: usize = 4096;

impl RelaySettings {
    /// The file descriptors the relay may hold with these settings: two per open tunnel (the
    /// enclave's stream and the upstream TCP connection) and one per waiting tunnel.
    pub fn fds_needed(&self) -> u64 {
        let open = u64::try_from(self.max_connections).unwrap_or(u64::MAX);
        let queued = u64::try_from(self.max_queued).unwrap_or(u64::MAX);
        open.saturating_mul(2).saturating_add(queued)
    }
}

fn aws_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

fn host_port(entry: &str) -> Option<(String, u16)> {
    let (host, port) = entry.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().ok()?;
    let canonical = Connect {
        host: host.to_owned(),
        port,
    }
    .canonical_host()
    .ok()?;
    Some((canonical, port))
}

impl RelayPolicy {
    /// A policy allowing the AWS endpoints of `regions` on 443 and the exact `allow` entries.
    /// With `simulator_upstream`, allowed AWS hosts are dialled at that address instead of their
    /// own (simulator mode: the enclave still speaks TLS for the real host name).
    pub fn new(
        regions: &[String],
        allow: &[String],
        simulator_upstream: Option<&str>,
    ) -> Result<Self, RelayError> {
        let mut policy = RelayPolicy::default();
        for region in regions {
            if !is_region(region) {
                return Err(RelayError::Region(region.clone()));
            }
            if !policy.regions.contains(region) {
                policy.regions.push(region.clone());
            }
            for service in AWS_SERVICES {
                policy
                    .aws
                    .insert((format!("{service}.{region}.{}", aws_suffix(region)), 443));
            }
        }
        for entry in allow {
            let hp = host_port(entry).ok_or_else(|| RelayError::Allow(entry.clone()))?;
            policy.extra.insert(hp);
        }
        if let Some(up) = simulator_upstream {
            policy.simulator_upstream =
                Some(host_port(up).ok_or_else(|| RelayError::Upstream(up.to_owned()))?);
        }
        Ok(policy)
    }

    /// Whether `host:port` (canonical form) may be dialled.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let key = (host.to_owned(), port);
        self.aws.contains(&key) || self.extra.contains(&key)
    }

    /// The regions whose endpoints are allowed.
    pub fn regions(&self) -> &[String] {
        &self.regions
    }

    /// Decides a request: the address to dial, or a refusal.
    pub fn decide(&self, req: &Connect) -> Result<(String, u16), (RefusalReason, String)> {
        let host = req
            .canonical_host()
            .map_err(|e| (RefusalReason::BadPreface, e.to_string()))?;
        let key = (host, req.port);
        if self.extra.contains(&key) {
            return Ok(key);
        }
        if self.aws.contains(&key) {
            return Ok(self.simulator_upstream.clone().unwrap_or(key));
        }
        Err((
            RefusalReason::NotAllowed,
            format!(
                "{}:{} is not in the relay allowlist (regions: {})",
                key.0,
                key.1,
                if self.regions.is_empty() {
                    "none".to_owned()
                } else {
                    self.regions.join(", ")
                }
            ),
        ))
    }
}

/// Relay counters, shared with the admin API.
#[derive(Debug, Default)]
pub struct RelayStats {
    accepted: AtomicU64,
    active: AtomicU64,
    queued: AtomicU64,
    connected: AtomicU64,
    bytes_to_upstream: AtomicU64,
    bytes_to_enclave: AtomicU64,
    refused: [AtomicU64; RefusalReason::ALL.len()],
}

pub use nitrosync_shared::tunnel::RelayStatsSnapshot;

impl RelayStats {
    fn refuse(&self, reason: RefusalReason) {
        if let Some(i) = RefusalReason::ALL.iter().position(|r| *r == reason) {
            self.refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Copies the counters.
    pub fn snapshot(&self) -> RelayStatsSnapshot {
        RelayStatsSnapshot {
            accepted: self.accepted.load(Ordering::Relaxed),
            active: self.active.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
            connected: self.connected.load(Ordering::Relaxed),
            bytes_to_upstream: self.bytes_to_upstream.load(Ordering::Relaxed),
            bytes_to_enclave: self.bytes_to_enclave.load(Ordering::Relaxed),
            refused: RefusalReason::ALL
                .iter()
                .zip(&self.refused)
                .map(|(r, c)| (r.as_str().to_owned(), c.load(Ordering::Relaxed)))
                .collect(),
        }
    }
}

/// Holds one unit of a gauge (`active` or `queued`) and gives it back when dropped.
struct Gauge<'a>(&'a AtomicU64);

impl<'a> Gauge<'a> {
    fn hold(gauge: &'a AtomicU64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Gauge(gauge)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accepts tunnels on `listener` until `shutdown` is cancelled, then closes open and waiting
/// tunnels and returns once every tunnel task has ended.
pub async fn serve(
    listener: Listener,
    settings: Arc<RelaySettings>,
    stats: Arc<RelayStats>,
    shutdown: CancellationToken,
) {
    // A slot per open tunnel, and a place per tunnel held at all (open or waiting for a slot):
    // when every place is taken the loop stops accepting and the listen backlog applies.
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let places = Arc::new(Semaphore::new(
        settings.max_connections.saturating_add(settings.max_queued),
    ));
    let tasks = TaskTracker::new();
    info!(
        listen = %settings.listen,
        max_connections = settings.max_connections,
        max_queued = settings.max_queued,
        "relay listening"
    );
    // Unconstrained by tokio's cooperative budget: a burst of connections is moved from the
    // kernel's backlog into the relay's own queue at once, instead of the loop yielding to the
    // tunnels it has just spawned after every 128 accepts while the backlog overflows. It still
    // waits when every place is taken, and when no connection is pending.
    tokio::task::unconstrained(async {
        loop {
            let place = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = places.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let stream = tokio::select! {
                _ = shutdown.cancelled() => break,
                s = listener.accept() => s,
            };
            let stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    warn!(error = %e, "relay accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            stats.accepted.fetch_add(1, Ordering::Relaxed);
            // The semaphore is fair: a free slot goes to the longest-waiting tunnel first, so this
            // succeeds only when no tunnel is waiting.
            let ready = slots.clone().try_acquire_owned().ok();
            if ready.is_none() {
                stats.queued.fetch_add(1, Ordering::Relaxed);
            }
            let (slots, settings, stats, shutdown) = (
                slots.clone(),
                settings.clone(),
                stats.clone(),
                shutdown.clone(),
            );
            // Small while it waits: the tunnel's own future is boxed only once it has a slot.
            tasks.spawn(async move {
                let permit = match ready {
                    Some(p) => p,
                    None => {
                        // Counted in at accept, counted out when this ends.
                        let queued = Gauge(&stats.queued);
                        let p = tokio::select! {
                            // Closes the waiting stream unread.
                            _ = shutdown.cancelled() => return,
                            p = slots.acquire_owned() => p,
                        };
                        drop(queued);
                        match p {
                            Ok(p) => p,
                            Err(_) => return,
                        }
                    }
                };
                let active = Gauge::hold(&stats.active);
                Box::pin(tunnel(stream, &settings, &stats, &shutdown)).await;
                drop(active);
                drop(permit);
                drop(place);
            });
        }
    })
    .await;
    tasks.close();
    tasks.wait().await;
    info!("relay stopped");
}

async fn refuse(stream: &mut Stream, stats: &RelayStats, reason: RefusalReason, detail: String) {
    stats.refuse(reason);
    let reply = ConnectReply::Refused { reason, detail };
    let _ = write_frame(stream, &reply).await;
    let _ = stream.shutdown().await;
}

async fn tunnel(
    mut stream: Stream,
    settings: &RelaySettings,
    stats: &RelayStats,
    shutdown: &CancellationToken,
) {
    let preface = tokio::time::timeout(
        settings.preface_timeout,
        read_one_frame::<_, Connect>(&mut stream),
    )
    .await;
    let req = match preface {
        Ok(Ok(Some(req))) => req,
        Ok(Ok(None)) => return debug!("tunnel closed before its preface"),
        Ok(Err(e)) => {
            warn!(error = %e, "relay refused a tunnel: bad preface");
            let detail = e.to_string();
            return refuse(&mut stream, stats, RefusalReason::BadPreface, detail).await;
        }
        Err(_) => {
            warn!("relay refused a tunnel: no preface in time");
            let detail = "no Connect frame within the preface timeout".to_owned();
            return refuse(&mut stream, stats, RefusalReason::Timeout, detail).await;
        }
    };
    let (dial_host, dial_port) = match settings.policy.decide(&req) {
        Ok(target) => target,
        Err((reason, detail)) => {
            warn!(host = ?truncated(&req.host), port = req.port, %reason, "relay refused a tunnel");
            return refuse(&mut stream, stats, reason, detail).await;
        }
    };
    let started = Instant::now();
    let upstream =
        match tokio::time::timeout(settings.connect_timeout, dial(&dial_host, dial_port)).await {
            Ok(Ok(s)) => s,
            Ok(Err((reason, detail))) => {
                warn!(host = %req.host, port = req.port, %reason, %detail, "relay could not dial");
                return refuse(&mut stream, stats, reason, detail).await;
            }
            Err(_) => {
                warn!(host = %req.host, port = req.port, "relay dial timed out");
                let detail = format!("no connection to {}:{} in time", req.host, req.port);
                return refuse(&mut stream, stats, RefusalReason::Timeout, detail).await;
            }
        };
    if write_frame(&mut stream, &ConnectReply::Connected)
        .await
        .is_err()
    {
        return;
    }
    stats.connected.fetch_add(1, Ordering::Relaxed);
    debug!(host = %req.host, port = req.port, dial_ms = started.elapsed().as_millis(), "tunnel open");
    let (up, down) = pump(stream, upstream, settings, stats, shutdown).await;
    debug!(host = %req.host, port = req.port, up, down, "tunnel closed");
}

fn truncated(host: &str) -> &str {
    let mut end = host.len().min(64);
    while !host.is_char_boundary(end) {
        end -= 1;
    }
    &host[..end]
}

async fn dial(host: &str, port: u16) -> Result<TcpStream, (RefusalReason, String)> {
    let addrs: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| (RefusalReason::ResolveFailed, format!("{host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err((
            RefusalReason::ResolveFailed,
            format!("{host}: no addresses"),
        ));
    }
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(format!("{addr}: {e}")),
        }
    }
    Err((RefusalReason::DialFailed, last.unwrap_or_default()))
}

/// Milliseconds of the last byte seen in either direction, relative to `epoch`.
struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }
}

async fn copy_one_way<R, W>(
    mut from: R,
    mut to: W,
    max_buffer: usize,
    counter: &AtomicU64,
    activity: &Activity,
) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Grows by doubling, up to `max_buffer`, whenever a read fills it; reads go into its spare
    // capacity, so it is never zeroed and untouched pages stay unmapped.
    let mut buf: Vec<u8> = Vec::with_capacity(INITIAL_BUFFER.min(max_buffer));
    let mut total = 0u64;
    loop {
        buf.clear();
        let n = from.read_buf(&mut buf).await?;
        if n == 0 {
            // Pass the half-close on; the other direction keeps flowing.
            to.shutdown().await?;
            return Ok(total);
        }
        activity.touch();
        to.write_all(&buf[..n]).await?;
        if n >= buf.capacity() && buf.capacity() < max_buffer {
            let grown = buf.capacity().saturating_mul(2).min(max_buffer);
            buf = Vec::with_capacity(grown);
        }
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        total += n;
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

async fn pump(
    mut enclave: Stream,
    mut upstream: TcpStream,
    settings: &RelaySettings,
    stats: &RelayStats,
    shutdown: &CancellationToken,
) -> (u64, u64) {
    let activity = Activity {
        epoch: Instant::now(),
        last_ms: AtomicU64::new(0),
    };
    let (er, ew) = enclave.split();
    let (ur, uw) = upstream.split();
    let up = copy_one_way(
        er,
        uw,
        settings.buffer_bytes,
        &stats.bytes_to_upstream,
        &activity,
    );
    let down = copy_one_way(
        ur,
        ew,
        settings.buffer_bytes,
        &stats.bytes_to_enclave,
        &activity,
    );
    let idle = async {
        loop {
            let idle_for = activity.idle_for();
            if idle_for >= settings.idle_timeout {
                return;
            }
            tokio::time::sleep(settings.idle_timeout - idle_for).await;
        }
    };
    tokio::select! {
        r = async { tokio::try_join!(up, down) } => match r {
            Ok(totals) => totals,
            Err(e) => {
                debug!(error = %e, "tunnel ended with an error");
                (0, 0)
            }
        },
        _ = idle => {
            info!(idle_ms = settings.idle_timeout.as_millis(), "tunnel closed for idleness");
            (0, 0)
        }
        _ = shutdown.cancelled() => (0, 0),
    }
}

/// A relay bound and running in the background.
#[derive(Debug)]
pub struct RelayHandle {
    /// Counters.
    pub stats: Arc<RelayStats>,
    task: tokio::task::JoinHandle<()>,
}

impl RelayHandle {
    /// Waits for the relay to stop (after its shutdown token is cancelled).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// Binds the relay's listener and serves it in the background.
pub async fn start(
    settings: RelaySettings,
    shutdown: CancellationToken,
) -> Result<RelayHandle, RelayError> {
    let listener = Listener::bind(&settings.listen).await?;
    let stats = Arc::new(RelayStats::default());
    let task = tokio::spawn(serve(listener, Arc::new(settings), stats.clone(), shutdown));
    Ok(RelayHandle { stats, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(host: &str, port: u16) -> Connect {
        Connect {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn policy_allows_regional_aws_hosts_on_443_only() {
        let p = RelayPolicy::new(&["us-east-1".into(), "cn-north-1".into()], &[], None).unwrap();
        assert_eq!(
            p.decide(&c("STS.us-east-1.amazonaws.com.", 443)),
            Ok(("sts.us-east-1.amazonaws.com".into(), 443))
        );
        assert!(
            p.decide(&c("secretsmanager.cn-north-1.amazonaws.com.cn", 443))
                .is_ok()
        );
        for (h, port) in [
            ("sts.us-east-1.amazonaws.com", 80),
            ("sts.us-west-2.amazonaws.com", 443),
            ("s3.us-east-1.amazonaws.com", 443),
            ("evil.example", 443),
            ("127.0.0.1", 443),
        ] {
            let (reason, detail) = p.decide(&c(h, port)).unwrap_err();
            assert_eq!(reason, RefusalReason::NotAllowed, "{h}:{port}");
            assert!(detail.contains("allowlist"), "{detail}");
        }
        let (reason, _) = p.decide(&c("bad host", 443)).unwrap_err();
        assert_eq!(reason, RefusalReason::BadPreface);
    }

    #[test]
    fn simulator_upstream_redirects_only_aws_hosts() {
        let p = RelayPolicy::new(
            &["us-east-1".into()],
            &["localhost:9443".into()],
            Some("127.0.0.1:4566"),
        )
        .unwrap();
        assert_eq!(
            p.decide(&c("sts.us-east-1.amazonaws.com", 443)),
            Ok(("127.0.0.1".into(), 4566))
        );
        assert_eq!(
            p.decide(&c("localhost", 9443)),
            Ok(("localhost".into(), 9443))
        );
        assert!(p.decide(&c("127.0.0.1", 4566)).is_err());
    }

    #[test]
    fn bad_entries_are_named() {
        assert!(matches!(
            RelayPolicy::new(&[], &["nope".into()], None).unwrap_err(),
            RelayError::Allow(e) if e == "nope"
        ));
        assert!(matches!(
            RelayPolicy::new(&["mars".into()], &[], None).unwrap_err(),
            RelayError::Region(r) if r == "mars"
        ));
    }
}
