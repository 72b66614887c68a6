use super::*;
use crate::scheduler::SchedulerStats;
use nitrosync_shared::control::{SyncOutcome, SyncReport, SyncTimings};
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
    sources.scheduler.record(&written());
    sources
        .scheduler
        .durations
        .observe(SyncMode::Write, Duration::from_millis(20));
    let text = sources.render().await.unwrap();

    for (name, kind) in [
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
        "nitrosync_sync_duration_seconds_bucket{mode=\"write\",le=\"0.01\"} 0\n",
        "nitrosync_sync_duration_seconds_bucket{mode=\"write\",le=\"0.025\"} 1\n",
        "nitrosync_sync_duration_seconds_bucket{mode=\"write\",le=\"+Inf\"} 1\n",
        "nitrosync_sync_duration_seconds_count{mode=\"write\"} 1\n",
        "nitrosync_sync_duration_seconds_count{mode=\"test_connection\"} 0\n",
        "nitrosync_sync_duration_seconds_count{mode=\"delete\"} 0\n",
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
