//! 10,000 concurrent tunnels (DESIGN §11) through the real `nitrosync-parent`, run with the
//! shipped `dist/parent.toml` (its relay settings are the defaults: 4,096 open tunnels and 8,192
//! more waiting for a slot), the test acting as the enclave and a local TCP echo server as AWS.
//!
//! Every tunnel is opened and has sent its `Connect` frame before any of them sends a byte, so
//! all 10,000 are held by the relay at once; then each echoes a message and closes, and the ones
//! waiting get slots as the open ones end. The test needs about 14,400 file descriptors itself
//! and the parent about 15,200: it raises its own soft limit, and when the hard limit is lower it
//! prints a `SKIPPED` line saying why instead of passing silently.
//!
//! `NITROSYNC_TUNNELS` changes the count; `NITROSYNC_TUNNELS_CONFIG` runs the parent with
//! another config file (for example a larger `max_connections`, to measure open tunnels only).
//!
//! A test binary of its own, not part of `e2e`: its 14,400 descriptors would otherwise come out
//! of the same process limit as the e2e tests that run beside it.

// The e2e tests' helpers; this binary uses only the relay's.
#[allow(dead_code)]
#[path = "e2e/support.rs"]
mod support;

use nitrosync_shared::tunnel::{Connect, ConnectReply};
use nitrosync_tests::{rss_kib, wait_for};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use std::time::Duration;
use support::RelayUnderTest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The shipped `relay.max_connections` (the relay's open-tunnel slots).
const MAX_CONNECTIONS: u64 = 4096;
/// File descriptors for everything else, in this process (the echo server, the runtime) and in the
/// parent (its store, admin API and logs).
const MARGIN: u64 = 1024;

/// The soft open-file limit after raising it towards `need` (never lowering it: other tests
/// share this process), or why it cannot reach `need`.
fn raise_own_fd_limit(need: u64) -> Result<u64, String> {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let Some(soft) = current else {
        return Ok(u64::MAX);
    };
    if soft >= need {
        return Ok(soft);
    }
    let target = maximum.map_or(need, |hard| hard.min(need));
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum,
        },
    )
    .map_err(|e| format!("raising the soft RLIMIT_NOFILE from {soft} to {target} failed: {e}"))?;
    if target < need {
        return Err(format!(
            "the hard RLIMIT_NOFILE is {target}, below the {need} needed (raise it with ulimit -Hn \
             or LimitNOFILE, as root)"
        ));
    }
    Ok(target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_tunnels_with_the_shipped_settings() {
    let n: u64 = std::env::var("NITROSYNC_TUNNELS")
        .ok()
        .map(|v| v.parse().expect("NITROSYNC_TUNNELS is a number"))
        .unwrap_or(10_000);
    let open = n.min(MAX_CONNECTIONS);
    // This process: a stream per tunnel, and the echo server's side of each open one. The
    // parent inherits the limit (and raises its own at start to what its settings need): two per
    // open tunnel and one per waiting one.
    let own_need = n + open + MARGIN;
    let parent_need = 2 * open + (n - open) + MARGIN;
    let need = own_need.max(parent_need);
    let soft = match raise_own_fd_limit(need) {
        Ok(soft) => soft,
        Err(why) => {
            println!("SKIPPED ten_thousand_concurrent_tunnels_with_the_shipped_settings: {why}");
            eprintln!("SKIPPED ten_thousand_concurrent_tunnels_with_the_shipped_settings: {why}");
            return;
        }
    };
    println!(
        "{n} tunnels: open-file limit {soft}, {own_need} needed here, {parent_need} by the parent"
    );

    let port = echo_server().await;
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = std::env::var("NITROSYNC_TUNNELS_CONFIG")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../dist/parent.toml").to_owned());
    let relay = RelayUnderTest::start(&[
        "--config",
        &config,
        "--metrics-listen",
        &metrics.to_string(),
        "--allow",
        &format!("127.0.0.1:{port}"),
    ])
    .await;
    let pid = relay.parent.pid().unwrap();
    let log = std::fs::read_to_string(&relay.parent.log).unwrap();
    let fd_line = log
        .lines()
        .find(|l| l.contains("open-file limit"))
        .unwrap_or_else(|| panic!("the parent logs its open-file limit at start:\n{log}"));
    println!("parent: {fd_line}");
    let rss_before = rss_kib(pid).unwrap();

    // Open every tunnel and send its Connect frame; nothing more yet, so that all are in flight
    // at once. A connect that finds the listen backlog full waits for room (for up to 10 s, see
    // `nitrosync_transport::connect`), so a relay that stopped accepting fails here.
    let endpoint = relay.endpoint();
    let mut streams = Vec::with_capacity(usize::try_from(n).unwrap());
    for i in 0..n {
        let mut s = nitrosync_transport::connect(&endpoint)
            .await
            .unwrap_or_else(|e| panic!("tunnel {i} of {n}: {e}"));
        nitrosync_transport::write_frame(
            &mut s,
            &Connect {
                host: "127.0.0.1".into(),
                port,
            },
        )
        .await
        .unwrap();
        streams.push(s);
    }
    // The relay holds every one of them: the open ones connected upstream, the rest waiting.
    let held = wait_for(
        "the relay to hold every tunnel",
        Duration::from_secs(120),
        || async {
            let stats = relay.stats().await;
            let count = |k: &str| stats[k].as_u64().unwrap();
            // Nothing ends in this phase: every open tunnel has dialled when as many have
            // reached Connected as are open.
            let done = count("accepted") == n
                && count("active") + count("queued") == n
                && count("connected") == count("active");
            done.then_some(stats)
        },
    )
    .await
    .unwrap();
    let rss_held = rss_kib(pid).unwrap();
    let active = held["active"].as_u64().unwrap();
    let queued = held["queued"].as_u64().unwrap();
    println!(
        "parent RSS {rss_before} KiB before, {rss_held} KiB holding {n} tunnels ({active} open, \
         {queued} waiting): {:.1} KiB per tunnel",
        f64::from(u32::try_from(rss_held.saturating_sub(rss_before)).unwrap())
            / f64::from(u32::try_from(n).unwrap())
    );
    assert_eq!(active + queued, n, "{held}");
    if config.ends_with("dist/parent.toml") {
        assert_eq!(active, open, "{held}");
        let body = scrape(metrics).await;
        assert!(
            body.contains(&format!("nitrosync_relay_queued {}", n - open)),
            "{body}"
        );
    }

    // Now every tunnel echoes and closes; the waiting ones get slots as the open ones end.
    let tasks: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            tokio::spawn(async move {
                let reply = nitrosync_transport::read_one_frame::<_, ConnectReply>(&mut s)
                    .await
                    .unwrap();
                assert_eq!(reply, Some(ConnectReply::Connected), "tunnel {i}");
                let msg = format!("tunnel {i} says hello");
                s.write_all(msg.as_bytes()).await.unwrap();
                s.shutdown().await.unwrap();
                let mut back = String::new();
                s.read_to_string(&mut back).await.unwrap();
                assert_eq!(back, msg, "tunnel {i}");
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let stats = wait_for("every tunnel to end", Duration::from_secs(60), || async {
        let stats = relay.stats().await;
        (stats["active"] == 0 && stats["queued"] == 0).then_some(stats)
    })
    .await
    .unwrap();
    assert_eq!(stats["connected"], n, "{stats}");
    let refused: u64 = stats["refused"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(refused, 0, "{stats}");
    let log = std::fs::read_to_string(&relay.parent.log).unwrap();
    let warnings: Vec<_> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .take(5)
        .collect();
    assert!(warnings.is_empty(), "{}", warnings.join("\n"));
}

/// A TCP server that echoes what it read once the peer has shut down its write side. Its listen
/// backlog is as deep as the system allows (the relay dials up to 4,096 at once; tokio's default
/// of 1,024 would overflow, and the kernel would drop handshakes), and an accept error (such as
/// running out of fds) pauses it rather than ending it.
async fn echo_server() -> u16 {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(65_535).unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let mut tcp = match listener.accept().await {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    eprintln!("echo server: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if tcp.read_to_end(&mut buf).await.is_ok() {
                    let _ = tcp.write_all(&buf).await;
                }
                let _ = tcp.shutdown().await;
            });
        }
    });
    port
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}
