//! Relay benchmark: the same bytes through `nitrosync-parent`'s relay, through
//! `socat -b 131072`, and through a minimal tokio `copy_bidirectional` proxy (a child process
//! of this bench), on the same Unix-socket-to-TCP path, in one run.
//!
//! Throughput: one stream sends `NITROSYNC_BENCH_MIB` MiB (default 1024) to a loopback sink,
//! which answers with the count once it sees EOF; median of `NITROSYNC_BENCH_RUNS` runs, the
//! order of the three paths rotating from run to run.
//! Latency: 64-byte request/response round trips over kept-open connections, directly over TCP
//! (the floor), through the tokio proxy, through socat and through the relay, with 1 and with 32
//! concurrent streams per path. The paths are interleaved round by round
//! (`NITROSYNC_BENCH_ROUNDS`, default 20), so every path's p50 and p99 come from the same
//! stretches of time; the relay's added latency is its p50 and p99 minus the direct path's.
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

/// The ways from the bench to the echo or sink server.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Path_ {
    /// TCP straight to the server: the floor.
    Direct,
    /// A minimal tokio proxy (`copy_bidirectional`) from a Unix socket to TCP, in a child
    /// process of its own: what any Rust relay pays.
    Tokio,
    /// `socat -b 131072`, Unix socket to TCP.
    Socat,
    /// `nitrosync-parent`'s relay (with its `Connect` preface).
    Relay,
}

const PATHS: [Path_; 4] = [Path_::Direct, Path_::Tokio, Path_::Socat, Path_::Relay];

impl Path_ {
    fn name(self) -> &'static str {
        match self {
            Path_::Direct => "direct",
            Path_::Tokio => "tokio",
            Path_::Socat => "socat",
            Path_::Relay => "relay",
        }
    }
}

/// A connection on one of the [`Path_`]s.
enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    async fn round_trip(&mut self, msg: &[u8; MSG], back: &mut [u8; MSG]) -> Result<()> {
        match self {
            Conn::Tcp(s) => {
                s.write_all(msg).await?;
                s.read_exact(back).await?;
            }
            Conn::Unix(s) => {
                s.write_all(msg).await?;
                s.read_exact(back).await?;
            }
        }
        Ok(())
    }
}

/// Where each path starts, for one server port.
struct Ends {
    port: u16,
    tokio: PathBuf,
    socat: PathBuf,
    relay: PathBuf,
}

impl Ends {
    async fn open(&self, kind: Path_) -> Result<Conn> {
        Ok(match kind {
            Path_::Direct => {
                let s = TcpStream::connect(("127.0.0.1", self.port)).await?;
                s.set_nodelay(true)?;
                Conn::Tcp(s)
            }
            Path_::Tokio => Conn::Unix(connect_unix(&self.tokio).await?),
            Path_::Socat => Conn::Unix(connect_unix(&self.socat).await?),
            Path_::Relay => {
                let mut s = connect_unix(&self.relay).await?;
                nitrosync_transport_preface(&mut s, self.port).await?;
                Conn::Unix(s)
            }
        })
    }
}

/// Connects, waiting while the listener's backlog is full (`EAGAIN` on a Unix socket): socat
/// accepts in one process and forks, so 32 connections at once can overflow its queue.
async fn connect_unix(path: &Path) -> Result<UnixStream> {
    let mut tries = 0;
    loop {
        match UnixStream::connect(path).await {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && tries < 1000 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn open(kind: Path_, ends: &Ends) -> Result<UnixStream> {
    match ends.open(kind).await? {
        Conn::Unix(s) => Ok(s),
        Conn::Tcp(_) => bail!("throughput is measured on the Unix-socket paths"),
    }
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

async fn throughput(kind: Path_, ends: &Ends, bytes: u64) -> Result<f64> {
    let mut s = open(kind, ends).await?;
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

/// `n` timed round trips on each of `conns`, all at once, each connection in a task of its own;
/// the connections back, and the samples of every connection.
async fn round_trips(conns: Vec<Conn>, n: usize) -> Result<(Vec<Conn>, Vec<Duration>)> {
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let msg = [7u8; MSG];
                let mut back = [0u8; MSG];
                let mut times = Vec::with_capacity(n);
                for _ in 0..n {
                    let t = Instant::now();
                    c.round_trip(&msg, &mut back).await?;
                    times.push(t.elapsed());
                }
                anyhow::Ok((c, times))
            })
        })
        .collect();
    let mut conns = Vec::with_capacity(tasks.len());
    let mut all = Vec::with_capacity(n * tasks.len());
    for t in tasks {
        let (c, times) = t.await??;
        conns.push(c);
        all.extend(times);
    }
    Ok((conns, all))
}

/// Latency of every path with `streams` concurrent connections each, interleaved: each round
/// runs every path in turn (the order rotating from round to round), so every path's samples
/// come from the same stretches of time and a noisy moment on the machine hits all of them.
async fn latency(ends: &Ends, streams: usize, rounds: usize, per_round: usize) -> Result<()> {
    let mut conns = Vec::new();
    for kind in PATHS {
        let mut cs = Vec::with_capacity(streams);
        for _ in 0..streams {
            cs.push(ends.open(kind).await.with_context(|| kind.name())?);
        }
        // Warm-up, not counted.
        let (cs, _) = round_trips(cs, 200).await?;
        conns.push((kind, cs, Vec::new()));
    }
    for round in 0..rounds {
        for i in 0..conns.len() {
            let (_, cs, samples) = &mut conns[(i + round) % PATHS.len()];
            let (back, times) = round_trips(std::mem::take(cs), per_round).await?;
            *cs = back;
            samples.extend(times);
        }
    }
    let total = rounds * per_round * streams;
    println!(
        "\n{MSG}-byte round trips, {streams} concurrent stream(s) per path, {rounds} interleaved rounds, {total} samples per path, microseconds:"
    );
    println!("  {:<8} {:>8} {:>8} {:>8}", "path", "p50", "p99", "p99.9");
    let mut p = Vec::new();
    for (kind, _, samples) in &mut conns {
        samples.sort_unstable();
        let (p50, p99) = (pct(samples, 0.5), pct(samples, 0.99));
        println!(
            "  {:<8} {p50:>8.1} {p99:>8.1} {:>8.1}",
            kind.name(),
            pct(samples, 0.999)
        );
        p.push((*kind, p50, p99));
    }
    let get = |k: Path_| p.iter().find(|(x, _, _)| *x == k).map(|&(_, a, b)| (a, b));
    if let (Some(d), Some(t), Some(s), Some(r)) = (
        get(Path_::Direct),
        get(Path_::Tokio),
        get(Path_::Socat),
        get(Path_::Relay),
    ) {
        println!(
            "  added over direct, p50 / p99: relay {:.1} / {:.1} us, tokio baseline {:.1} / {:.1} us, socat {:.1} / {:.1} us",
            r.0 - d.0,
            r.1 - d.1,
            t.0 - d.0,
            t.1 - d.1,
            s.0 - d.0,
            s.1 - d.1
        );
        bench_line(&format!("relay.added_p50_us.{streams}"), r.0 - d.0);
        bench_line(&format!("relay.added_p99_us.{streams}"), r.1 - d.1);
        bench_line(&format!("tokio.added_p50_us.{streams}"), t.0 - d.0);
    }
    Ok(())
}

/// One machine-readable line for `make bench`'s budget table (tests/bench/summary.py).
fn bench_line(id: &str, value: f64) {
    println!("BENCH {id} {value:.3}");
}

/// The tokio baseline proxy, run as a child process of this benchmark (see [`Path_::Tokio`]):
/// accepts on a Unix socket and copies each connection to TCP with `copy_bidirectional`.
fn run_baseline_proxy(spec: &str) -> Result<()> {
    let (sock, port) = spec
        .rsplit_once(',')
        .context("NITROSYNC_BENCH_PROXY=SOCK,PORT")?;
    let port: u16 = port.parse()?;
    let sock = PathBuf::from(sock);
    tokio::runtime::Runtime::new()?.block_on(async move {
        let l = tokio::net::UnixListener::bind(&sock)?;
        loop {
            let (mut a, _) = l.accept().await?;
            tokio::spawn(async move {
                let Ok(mut b) = TcpStream::connect(("127.0.0.1", port)).await else {
                    return;
                };
                let _ = b.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
            });
        }
    })
}

fn baseline_proxy(dir: &Path, name: &str, port: u16) -> Result<(Proc, PathBuf)> {
    let sock = dir.join(format!("{name}.sock"));
    let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
    cmd.env(
        "NITROSYNC_BENCH_PROXY",
        format!("{},{port}", sock.display()),
    );
    Ok((
        Proc::spawn(name, cmd, dir.join(format!("{name}.log")))?,
        sock,
    ))
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
        .arg(format!("UNIX-LISTEN:{},fork,backlog=128", sock.display()))
        .arg(format!("TCP:127.0.0.1:{port},nodelay"));
    Ok((
        Proc::spawn("socat", cmd, dir.join(format!("{name}.log")))?,
        sock,
    ))
}

fn main() -> Result<()> {
    // The tokio baseline proxy is this same executable, started with NITROSYNC_BENCH_PROXY.
    if let Ok(spec) = std::env::var("NITROSYNC_BENCH_PROXY") {
        return run_baseline_proxy(&spec);
    }
    tokio::runtime::Runtime::new()?.block_on(bench())
}

async fn bench() -> Result<()> {
    // `cargo bench` passes --bench; nothing else to parse.
    let env = |name: &str, default: usize| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let mib = u64::try_from(env("NITROSYNC_BENCH_MIB", 1024))?;
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
    let (_tokio_sink, tokio_sink_sock) = baseline_proxy(dir.path(), "tokio-sink", sink)?;
    let (_tokio_echo, tokio_echo_sock) = baseline_proxy(dir.path(), "tokio-echo", echo)?;
    for sock in [
        &sockets.relay,
        &socat_sink_sock,
        &socat_echo_sock,
        &tokio_sink_sock,
        &tokio_echo_sock,
    ] {
        let sock = sock.clone();
        wait_for("sockets", Duration::from_secs(20), || {
            let sock = sock.clone();
            async move { sock.exists().then_some(()) }
        })
        .await?;
    }
    parent.check_alive()?;
    println!(
        "relay benchmark: nitrosync-parent {} (relay buffer {}) vs socat -b 131072 vs a tokio copy_bidirectional proxy, unix socket -> TCP loopback",
        bin("nitrosync-parent").display(),
        buffer.as_deref().unwrap_or("default")
    );
    let sink_ends = Ends {
        port: sink,
        tokio: tokio_sink_sock,
        socat: socat_sink_sock,
        relay: sockets.relay.clone(),
    };
    let echo_ends = Ends {
        port: echo,
        tokio: tokio_echo_sock,
        socat: socat_echo_sock,
        relay: sockets.relay.clone(),
    };

    let runs = env("NITROSYNC_BENCH_RUNS", 7);
    let bytes = mib * 1024 * 1024;
    let through = [Path_::Tokio, Path_::Socat, Path_::Relay];
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); through.len()];
    for i in 0..runs {
        // Rotate which goes first, so none always runs on a warmer machine.
        for j in 0..through.len() {
            let k = (i + j) % through.len();
            let kind = through[k];
            results[k].push(
                throughput(kind, &sink_ends, bytes)
                    .await
                    .context(kind.name())?,
            );
        }
    }
    println!("\nthroughput, {mib} MiB per run, median of {runs} interleaved runs:");
    for (kind, r) in through.iter().zip(&results) {
        println!(
            "  {:<6} {:8.0} MiB/s   runs {:?}",
            kind.name(),
            median(r.clone()),
            r.iter().map(|x| x.round()).collect::<Vec<_>>()
        );
    }
    let (t, s, r) = (&results[0], &results[1], &results[2]);
    let paired = |a: &[f64], b: &[f64]| median(a.iter().zip(b).map(|(x, y)| x / y).collect());
    println!(
        "  relay/socat = {:.2}, relay/tokio = {:.2} (medians of paired runs)",
        paired(r, s),
        paired(r, t)
    );
    bench_line("relay.throughput_vs_socat", paired(r, s));

    let rounds = env("NITROSYNC_BENCH_ROUNDS", 20);
    latency(&echo_ends, 1, rounds, ROUND_TRIPS / rounds.max(1)).await?;
    latency(&echo_ends, 32, rounds, 50).await?;
    parent.stop(Duration::from_secs(5)).await?;
    Ok(())
}
