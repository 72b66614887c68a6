//! The parent's metrics listener end to end (issue 13): `nitrosync_build_info`, a sync-latency
//! histogram that counts every sync, and `/healthz`, which answers 200 with a healthy stack and
//! 503 with one line once the enclave is gone.

use crate::cli::Env;
use nitrosync_tests::{SimStack, StackOptions, wait_for};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One `GET path`: the status code and the body.
async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}

/// The sum of the samples of `name` (any labels).
fn total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn build_info_sync_histogram_and_healthz() {
    let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = StackOptions {
        parent_args: vec!["--metrics-listen".into(), addr.to_string()],
        ..Default::default()
    };
    let stack = SimStack::start_with(dir.path(), "us-east-1", opts)
        .await
        .unwrap();
    let mut e = Env::on(dir, stack).await;

    // A healthy stack.
    let (code, body) = get(addr, "/healthz").await.unwrap();
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let (code, metrics) = get(addr, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    let info = format!(
        "nitrosync_build_info{{version=\"{}\",",
        env!("CARGO_PKG_VERSION")
    );
    assert!(metrics.contains(&info), "{info} in:\n{metrics}");
    assert!(
        metrics.contains("# TYPE nitrosync_sync_duration_seconds histogram\n"),
        "{metrics}"
    );
    assert_eq!(total(&metrics, "nitrosync_syncs_total"), 0.0, "{metrics}");

    // Two syncs: created, then updated.
    e.destination("m1", "metrics/app", &[]).await;
    for (n, body) in [(1, "A=1\n"), (2, "A=2\n")] {
        let file = e.env_file(&format!("m{n}.env"), body);
        e.ok(&[
            "env",
            "push",
            "--destination",
            "m1",
            "--file",
            file.to_str().unwrap(),
            "--wait",
        ])
        .await;
    }
    let (_, metrics) = get(addr, "/metrics").await.unwrap();
    assert_eq!(total(&metrics, "nitrosync_syncs_total"), 2.0, "{metrics}");
    assert_eq!(
        total(&metrics, "nitrosync_sync_duration_seconds_count"),
        2.0,
        "{metrics}"
    );
    for outcome in ["Created", "Updated"] {
        let line = format!(
            "nitrosync_sync_duration_seconds_count{{mode=\"write\",outcome=\"{outcome}\"}} 1\n"
        );
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }
    assert!(
        total(&metrics, "nitrosync_sync_duration_seconds_sum") > 0.0,
        "{metrics}"
    );

    // The enclave dies: 503, with one line saying why.
    e.stack.enclave.kill().await.unwrap();
    // (For a moment the connection may still look up and the request fail instead: `enclave
    // not healthy: …`; then the connection is down.)
    let (code, body) = wait_for(
        "/healthz to say the enclave is not connected",
        Duration::from_secs(10),
        || async {
            let (code, body) = get(addr, "/healthz").await?;
            let settled = body.starts_with("enclave not connected");
            (settled
                || !matches!(code, 200 | 503)
                || !(body.starts_with("ok") || body.starts_with("enclave not")))
            .then_some((code, body))
        },
    )
    .await
    .unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.starts_with("enclave not connected"), "{body}");
    assert_eq!(body.lines().count(), 1, "{body}");
    // Metrics are still served.
    let (code, metrics) = get(addr, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.contains("nitrosync_enclave_connected 0\n"),
        "{metrics}"
    );

    let status = e.stack.parent.stop(Duration::from_secs(5)).await.unwrap();
    assert!(status.success(), "{status}");
}
