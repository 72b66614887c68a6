use super::*;
use crate::scheduler::SchedulerStats;
use nitrosync_shared::ErrorCode;
use nitrosync_shared::control::{
    EnclaveMessage, HealthReport, Request, Response, SyncError, SyncOutcome, SyncReport,
    SyncTimings,
};
use nitrosync_transport::{FrameReader, write_frame};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Sources over a fresh store in `dir`, with a connected enclave (the returned stream is its
/// other end: keep it).
fn sources(dir: &tempfile::TempDir) -> (MetricsSources, DuplexStream) {
    let store = Arc::new(Store::open(dir.path().join("store.db")).unwrap());
    let (ours, theirs) = tokio::io::duplex(1024);
    let (enclave, _task) = EnclaveClient::over_stream(
        ours,
        "test",
        Duration::from_secs(5),
        Duration::from_secs(5),
        CancellationToken::new(),
    );
    let sources = MetricsSources {
        relay: Arc::new(RelayStats::default()),
        store,
        scheduler: Arc::new(SchedulerStats::default()),
        enclave,
    };
    (sources, theirs)
}

fn written() -> SyncReport {
    SyncReport {
        destination: "d1".into(),
        version: 1,
        mode: SyncMode::Write,
        outcome: SyncOutcome::Updated,
        error: None,
        secret_arn: None,
        aws_version_id: None,
        timings: SyncTimings::default(),
    }
}

#[tokio::test]
async fn renders_every_metric_under_its_name_and_type() {
    let dir = tempfile::tempdir().unwrap();
    let (sources, _enclave) = sources(&dir);
    sources
        .scheduler
        .record(&written(), Duration::from_millis(20));
    let text = sources.render().await.unwrap();

    for (name, kind) in [
        ("nitrosync_build_info", "gauge"),
        ("nitrosync_relay_connections_total", "counter"),
        ("nitrosync_relay_connected_total", "counter"),
        ("nitrosync_relay_active", "gauge"),
        ("nitrosync_relay_bytes_total", "counter"),
        ("nitrosync_relay_refused_total", "counter"),
        ("nitrosync_syncs_total", "counter"),
        ("nitrosync_sync_duration_seconds", "histogram"),
        ("nitrosync_rate_limited_passes_total", "counter"),
        ("nitrosync_store_up", "gauge"),
        ("nitrosync_queue_depth", "gauge"),
        ("nitrosync_destinations", "gauge"),
        ("nitrosync_enclave_connected", "gauge"),
    ] {
        assert!(text.contains(&format!("# HELP {name} ")), "{name}:\n{text}");
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name}:\n{text}"
        );
    }
    for sample in [
        "nitrosync_relay_connections_total 0\n",
        "nitrosync_relay_bytes_total{direction=\"to_upstream\"} 0\n",
        "nitrosync_relay_bytes_total{direction=\"to_enclave\"} 0\n",
        "nitrosync_relay_refused_total{reason=\"not_allowed\"} 0\n",
        "nitrosync_syncs_total{outcome=\"Updated\",code=\"none\"} 1\n",
        "nitrosync_sync_duration_seconds_bucket{mode=\"write\",outcome=\"Updated\",le=\"0.005\"} 0\n",
        "nitrosync_sync_duration_seconds_bucket{mode=\"write\",outcome=\"Updated\",le=\"0.01\"} 0\n",
        "nitrosync_sync_duration_seconds_bucket{mode=\"write\",outcome=\"Updated\",le=\"0.025\"} 1\n",
        "nitrosync_sync_duration_seconds_bucket{mode=\"write\",outcome=\"Updated\",le=\"30\"} 1\n",
        "nitrosync_sync_duration_seconds_bucket{mode=\"write\",outcome=\"Updated\",le=\"+Inf\"} 1\n",
        "nitrosync_sync_duration_seconds_count{mode=\"write\",outcome=\"Updated\"} 1\n",
        "nitrosync_rate_limited_passes_total 0\n",
        "nitrosync_store_up 1\n",
        "nitrosync_queue_depth 0\n",
        "nitrosync_destinations{state=\"pending\"} 0\n",
        "nitrosync_destinations{state=\"disabled\"} 0\n",
        "nitrosync_enclave_connected 1\n",
    ] {
        assert!(text.contains(sample), "{sample}:\n{text}");
    }
    assert!(!text.contains("_total_total"), "{text}");
    // Only (mode, outcome) pairs that happened are written.
    assert!(!text.contains("mode=\"delete\""), "{text}");
    let info = format!(
        "nitrosync_build_info{{version=\"{}\",commit=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION"),
        BUILD_COMMIT
    );
    assert!(text.contains(&info), "{info}:\n{text}");
}

/// The value of the sample line that starts with `prefix` (name and labels).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn the_histogram_counts_every_recorded_sync_by_mode_and_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let (sources, _enclave) = sources(&dir);
    let stats = &sources.scheduler;
    stats.record(&written(), Duration::from_millis(3));
    stats.record(&written(), Duration::from_secs(2));
    let mut failed = written();
    failed.outcome = SyncOutcome::Failed;
    failed.error = Some(SyncError {
        code: ErrorCode::EnclaveUnavailable,
        message: "the enclave is not connected".into(),
        retryable: true,
    });
    // A sync that got no report: the parent gave up after its timeout, past the last bucket.
    stats.record(&failed, Duration::from_secs(45));
    let mut tested = written();
    tested.mode = SyncMode::TestConnection;
    tested.outcome = SyncOutcome::Tested;
    stats.record(&tested, Duration::from_millis(70));
    let text = sources.render().await.unwrap();

    let h = "nitrosync_sync_duration_seconds";
    let w = "mode=\"write\",outcome=\"Updated\"";
    assert_eq!(
        sample(&text, &format!("{h}_count{{{w}}}")),
        Some(2.0),
        "{text}"
    );
    let sum = sample(&text, &format!("{h}_sum{{{w}}}")).unwrap();
    assert!((sum - 2.003).abs() < 1e-9, "{text}");
    assert_eq!(
        sample(&text, &format!("{h}_bucket{{{w},le=\"0.005\"}}")),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, &format!("{h}_bucket{{{w},le=\"1\"}}")),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, &format!("{h}_bucket{{{w},le=\"2.5\"}}")),
        Some(2.0)
    );
    let f = "mode=\"write\",outcome=\"Failed\"";
    assert_eq!(
        sample(&text, &format!("{h}_bucket{{{f},le=\"30\"}}")),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, &format!("{h}_bucket{{{f},le=\"+Inf\"}}")),
        Some(1.0)
    );
    let t = "mode=\"test_connection\",outcome=\"Tested\"";
    assert_eq!(
        sample(&text, &format!("{h}_count{{{t}}}")),
        Some(1.0),
        "{text}"
    );

    // One observation per sync counted in nitrosync_syncs_total.
    let counted: f64 = text
        .lines()
        .filter(|l| l.starts_with("nitrosync_syncs_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let observed: f64 = text
        .lines()
        .filter(|l| l.starts_with("nitrosync_sync_duration_seconds_count{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(counted, 4.0, "{text}");
    assert_eq!(observed, counted, "{text}");
    // Buckets only from 5 ms to 30 s.
    assert!(!text.contains("le=\"0.001\""), "{text}");
    assert!(!text.contains("le=\"60\""), "{text}");
}

/// Answers every request on `theirs` with a `Health` report (or, `locked`, with the error a
/// locked enclave gives), until the stream ends.
fn answer_health(theirs: DuplexStream, locked: bool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (read, mut write) = tokio::io::split(theirs);
        let mut frames = FrameReader::new(read);
        while let Ok(Some(req)) = frames.next::<Request>().await {
            let body = match req.body {
                nitrosync_shared::control::RequestBody::Health if locked => {
                    ResponseBody::Error(nitrosync_shared::control::ControlError {
                        code: ErrorCode::EnclaveUnavailable,
                        message: "the enclave's identity is locked\nsecond line".into(),
                    })
                }
                nitrosync_shared::control::RequestBody::Health => {
                    ResponseBody::Health(HealthReport {
                        uptime_ms: 1,
                        requests_served: 1,
                        tunnels_opened: 0,
                    })
                }
                other => panic!("unexpected request {other:?}"),
            };
            let msg = EnclaveMessage::Response(Response { id: req.id, body });
            if write_frame(&mut write, &msg).await.is_err() {
                return;
            }
        }
    })
}

#[tokio::test]
async fn healthz_checks_the_store_the_connection_and_the_enclave() {
    let dir = tempfile::tempdir().unwrap();
    let (sources, theirs) = sources(&dir);
    let enclave = answer_health(theirs, false);
    assert_eq!(sources.health().await, Ok(()));

    // Over HTTP: 200 ok.
    let shutdown = CancellationToken::new();
    let server = start(
        "127.0.0.1:0".parse().unwrap(),
        sources.clone(),
        ServerLimits::DAEMON,
        shutdown.clone(),
    )
    .await
    .unwrap();
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    let (head, body) = exchange(&mut s, "GET", "/healthz").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "ok\n");
    let (head, _) = exchange(&mut s, "POST", "/healthz").await;
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");

    // The enclave goes away: 503, one line naming the connection.
    enclave.abort();
    let _ = enclave.await;
    let reason = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Err(reason) = sources.health().await {
                break reason;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    assert!(reason.starts_with("enclave not connected"), "{reason}");
    let (head, body) = exchange(&mut s, "GET", "/healthz").await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(body.starts_with("enclave not connected"), "{body}");
    assert_eq!(body.lines().count(), 1, "{body}");

    // The store goes away: it is checked first.
    rusqlite::Connection::open(dir.path().join("store.db"))
        .unwrap()
        .execute_batch("DROP TABLE destinations")
        .unwrap();
    let (head, body) = exchange(&mut s, "GET", "/healthz").await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(body.starts_with("store unreadable: "), "{body}");
    assert_eq!(body.lines().count(), 1, "{body}");

    shutdown.cancel();
    server.wait().await;
}

#[tokio::test]
async fn an_unreadable_store_is_reported_not_zeroed() {
    let dir = tempfile::tempdir().unwrap();
    let (sources, _enclave) = sources(&dir);
    // Another connection takes the table away under the store.
    rusqlite::Connection::open(dir.path().join("store.db"))
        .unwrap()
        .execute_batch("DROP TABLE destinations")
        .unwrap();
    assert!(sources.store.counts_by_state().is_err());

    let text = sources.render().await.unwrap();
    assert!(text.contains("nitrosync_store_up 0\n"), "{text}");
    assert!(!text.contains("nitrosync_queue_depth"), "{text}");
    assert!(!text.contains("nitrosync_destinations"), "{text}");
    // The rest is still there.
    assert!(text.contains("nitrosync_enclave_connected 1\n"), "{text}");
    assert!(
        text.contains("nitrosync_relay_connections_total 0\n"),
        "{text}"
    );
}

/// Sends one request on `s` and reads one response (headers and a `Content-Length` body).
async fn exchange(s: &mut TcpStream, method: &str, path: &str) -> (String, String) {
    s.write_all(format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.unwrap();
        assert_ne!(n, 0, "closed before the headers");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.unwrap();
        assert_ne!(n, 0, "closed inside the body");
        body.extend_from_slice(&chunk[..n]);
    }
    (head, String::from_utf8(body).unwrap())
}

/// Reads until the peer closes.
async fn until_closed(s: &mut TcpStream) {
    let mut rest = Vec::new();
    // A reset is a close too.
    let _ = s.read_to_end(&mut rest).await;
}

#[tokio::test]
async fn serves_get_metrics_only_and_stops_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let (sources, _enclave) = sources(&dir);
    let shutdown = CancellationToken::new();
    let server = start(
        "127.0.0.1:0".parse().unwrap(),
        sources,
        ServerLimits::DAEMON,
        shutdown.clone(),
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    let mut s = TcpStream::connect(addr).await.unwrap();

    let (head, body) = exchange(&mut s, "GET", "/metrics").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(body.contains("nitrosync_store_up 1\n"), "{body}");
    let (head, _) = exchange(&mut s, "GET", "/other").await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let (head, _) = exchange(&mut s, "POST", "/metrics").await;
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");

    // The connection is idle (keep-alive): shutdown closes it and the server ends.
    shutdown.cancel();
    server.wait().await;
    until_closed(&mut s).await;
    // The listener is closed.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn a_client_that_sends_no_headers_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let (sources, _enclave) = sources(&dir);
    let shutdown = CancellationToken::new();
    let limits = ServerLimits {
        header_read_timeout: Duration::from_millis(100),
        ..ServerLimits::DAEMON
    };
    let server = start(
        "127.0.0.1:0".parse().unwrap(),
        sources,
        limits,
        shutdown.clone(),
    )
    .await
    .unwrap();
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
    // Ends when the server closes the connection.
    until_closed(&mut s).await;
    shutdown.cancel();
    server.wait().await;
}

#[tokio::test]
async fn healthz_reports_a_locked_enclave_as_not_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let (sources, theirs) = sources(&dir);
    let _enclave = answer_health(theirs, true);
    assert_eq!(
        sources.health().await,
        Err("enclave not healthy: EnclaveUnavailable: the enclave's identity is locked".into())
    );
}
