//! Relay benchmark: the same bytes through `nitrosync-parent`'s relay and through
//! `socat -b 131072`, on the same Unix-socket-to-TCP path, in one run.
//!
//! Throughput: one stream sends `NITROSYNC_BENCH_MIB` MiB (default 1024) to a loopback sink,
//! which answers with the count once it sees EOF; median of several alternating runs.
//! Latency: 64-byte request/response round trips over one kept-open connection, directly over
//! TCP (the baseline), through socat and through the relay; the relay's added latency is its p50
//! and p99 minus the direct path's.
//!
//! Run with `make bench` (it builds the release binaries first).

// Floating-point statistics on byte counts and sample counts: precision loss is irrelevant here.
#![allow(clippy::as_conversions)]

use anyhow::{Context, Result, bail};
use nitrosync_shared::tunnel::{Connect, ConnectReply};
use nitrosync_tests::{Proc, Sockets, bin, start_parent, wait_for};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};

const CHUNK: usize = 128 * 1024;
const ROUND_TRIPS: usize = 20_000;
const MSG: usize = 64;

async fn sink_server() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let port = l.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.set_nodelay(true);
                let mut buf = vec![0u8; CHUNK];
                let mut total = 0u64;
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += u64::try_from(n).unwrap_or(0),
                    }
                }
                let _ = s.write_all(&total.to_be_bytes()).await;
            });
        }
    });
    Ok(port)
}

async fn echo_server() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let port = l.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.set_nodelay(true);
                let mut buf = [0u8; MSG];
                while s.read_exact(&mut buf).await.is_ok() {
                    if s.write_all(&buf).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(port)
}

#[derive(Clone, Copy, PartialEq)]
enum Path_ {
    Relay,
    Socat,
}

async fn open(kind: Path_, sock: &Path, port: u16) -> Result<UnixStream> {
    let mut s = UnixStream::connect(sock).await?;
    if kind == Path_::Relay {
        nitrosync_transport_preface(&mut s, port).await?;
    }
    Ok(s)
}

async fn nitrosync_transport_preface(s: &mut UnixStream, port: u16) -> Result<()> {
    let frame = nitrosync_shared::frame::encode(&Connect {
        host: "127.0.0.1".into(),
        port,
    })?;
    s.write_all(&frame).await?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await?;
    let mut body = vec![0u8; usize::try_from(u32::from_be_bytes(len))?];
    s.read_exact(&mut body).await?;
    match nitrosync_shared::frame::decode_payload::<ConnectReply>(&body)? {
        ConnectReply::Connected => Ok(()),
        other => bail!("relay refused: {other:?}"),
    }
}

async fn throughput(kind: Path_, sock: &Path, port: u16, bytes: u64) -> Result<f64> {
    let mut s = open(kind, sock, port).await?;
    let buf = vec![0x5au8; CHUNK];
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < bytes {
        s.write_all(&buf).await?;
        sent += u64::try_from(CHUNK)?;
    }
    s.shutdown().await?;
    let mut count = [0u8; 8];
    s.read_exact(&mut count).await?;
    let secs = started.elapsed().as_secs_f64();
    if u64::from_be_bytes(count) != sent {
        bail!("sink counted {} of {sent} bytes", u64::from_be_bytes(count));
    }
    Ok(sent as f64 / secs / (1024.0 * 1024.0))
}

async fn round_trips<S: AsyncReadExt + AsyncWriteExt + Unpin>(s: &mut S) -> Result<Vec<Duration>> {
    let msg = [7u8; MSG];
    let mut back = [0u8; MSG];
    for _ in 0..1000 {
        s.write_all(&msg).await?;
        s.read_exact(&mut back).await?;
    }
    let mut times = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let t = Instant::now();
        s.write_all(&msg).await?;
        s.read_exact(&mut back).await?;
        times.push(t.elapsed());
    }
    times.sort_unstable();
    Ok(times)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn socat(dir: &Path, name: &str, port: u16) -> Result<(Proc, PathBuf)> {
    let sock = dir.join(format!("{name}.sock"));
    let mut cmd = tokio::process::Command::new("socat");
    cmd.arg("-b")
        .arg("131072")
        .arg(format!("UNIX-LISTEN:{},fork", sock.display()))
        .arg(format!("TCP:127.0.0.1:{port},nodelay"));
    Ok((
        Proc::spawn("socat", cmd, dir.join(format!("{name}.log")))?,
        sock,
    ))
}

#[tokio::main]
async fn main() -> Result<()> {
    // `cargo bench` passes --bench; nothing else to parse.
    let mib: u64 = std::env::var("NITROSYNC_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::tempdir()?;
    let sink = sink_server().await?;
    let echo = echo_server().await?;
    let sockets = Sockets::in_dir(dir.path());
    let mut args = vec![
        "--allow".into(),
        format!("127.0.0.1:{sink}"),
        "--allow".into(),
        format!("127.0.0.1:{echo}"),
    ];
    // NITROSYNC_BENCH_BUFFER sets the relay's copy buffer (relay.buffer_bytes) for a comparison.
    let buffer = std::env::var("NITROSYNC_BENCH_BUFFER").ok();
    if let Some(b) = &buffer {
        let cfg = dir.path().join("parent.toml");
        std::fs::write(&cfg, format!("[relay]\nbuffer_bytes = {b}\n"))?;
        args.push("--config".into());
        args.push(cfg.display().to_string());
    }
    let mut parent = start_parent(dir.path(), &sockets, &args, "parent.log")?;
    let (_socat_sink, socat_sink_sock) = socat(dir.path(), "socat-sink", sink)?;
    let (_socat_echo, socat_echo_sock) = socat(dir.path(), "socat-echo", echo)?;
    for sock in [&sockets.relay, &socat_sink_sock, &socat_echo_sock] {
        let sock = sock.clone();
        wait_for("sockets", Duration::from_secs(20), || {
            let sock = sock.clone();
            async move { sock.exists().then_some(()) }
        })
        .await?;
    }
    parent.check_alive()?;
    println!(
        "relay benchmark: nitrosync-parent {} (relay buffer {}) vs socat -b 131072, unix socket -> TCP loopback",
        bin("nitrosync-parent").display(),
        buffer.as_deref().unwrap_or("default")
    );

    let runs: usize = std::env::var("NITROSYNC_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let bytes = mib * 1024 * 1024;
    let (mut relay_runs, mut socat_runs) = (Vec::new(), Vec::new());
    for i in 0..runs {
        // Alternate which goes first, so neither always runs on a warmer machine.
        if i % 2 == 0 {
            relay_runs.push(
                throughput(Path_::Relay, &sockets.relay, sink, bytes)
                    .await
                    .context("relay")?,
            );
            socat_runs.push(
                throughput(Path_::Socat, &socat_sink_sock, sink, bytes)
                    .await
                    .context("socat")?,
            );
        } else {
            socat_runs.push(
                throughput(Path_::Socat, &socat_sink_sock, sink, bytes)
                    .await
                    .context("socat")?,
            );
            relay_runs.push(
                throughput(Path_::Relay, &sockets.relay, sink, bytes)
                    .await
                    .context("relay")?,
            );
        }
    }
    let (r, s) = (median(relay_runs.clone()), median(socat_runs.clone()));
    let paired: Vec<f64> = relay_runs
        .iter()
        .zip(&socat_runs)
        .map(|(r, s)| r / s)
        .collect();
    println!("\nthroughput, {mib} MiB per run, median of {runs} alternating runs:");
    println!(
        "  relay  {r:8.0} MiB/s   runs {:?}",
        relay_runs.iter().map(|x| x.round()).collect::<Vec<_>>()
    );
    println!(
        "  socat  {s:8.0} MiB/s   runs {:?}",
        socat_runs.iter().map(|x| x.round()).collect::<Vec<_>>()
    );
    println!(
        "  ratio relay/socat = {:.2} (ratio of medians), {:.2} (median of paired runs)",
        r / s,
        median(paired)
    );

    let mut direct = TcpStream::connect(("127.0.0.1", echo)).await?;
    direct.set_nodelay(true)?;
    let d = round_trips(&mut direct).await?;
    let mut via_socat = open(Path_::Socat, &socat_echo_sock, echo).await?;
    let so = round_trips(&mut via_socat).await?;
    let mut via_relay = open(Path_::Relay, &sockets.relay, echo).await?;
    let re = round_trips(&mut via_relay).await?;
    println!("\n{MSG}-byte round trips ({ROUND_TRIPS} after 1000 warm-up), microseconds:");
    println!("  {:<8} {:>8} {:>8}", "path", "p50", "p99");
    for (name, t) in [("direct", &d), ("socat", &so), ("relay", &re)] {
        println!("  {name:<8} {:>8.1} {:>8.1}", pct(t, 0.5), pct(t, 0.99));
    }
    println!(
        "  relay added latency: p50 {:.1} us, p99 {:.1} us (socat adds p50 {:.1} us, p99 {:.1} us)",
        pct(&re, 0.5) - pct(&d, 0.5),
        pct(&re, 0.99) - pct(&d, 0.99),
        pct(&so, 0.5) - pct(&d, 0.5),
        pct(&so, 0.99) - pct(&d, 0.99),
    );
    parent.stop(Duration::from_secs(5)).await?;
    Ok(())
}
