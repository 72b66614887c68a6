//! `nitrosync-enclave`: the program inside the Nitro Enclave (or, with `--simulator`, an ordinary
//! process standing in for it).

use clap::Parser;
use nitrosync_enclave::config::EnclaveConfig;
use nitrosync_enclave::{control, logs::ParentLogLayer};
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::prelude::*;

/// The nitrosync enclave program.
#[derive(Debug, Parser)]
#[command(name = "nitrosync-enclave", version)]
struct Args {
    /// Where to listen for the parent's control connection.
    #[arg(long, default_value = "vsock:any:5000")]
    control: String,
    /// The parent's relay endpoint for outbound tunnels.
    #[arg(long, default_value = "vsock:3:8000")]
    relay: String,
    /// Run as a simulator: Unix sockets allowed, TLS trusts only --sim-ca.
    #[arg(long)]
    simulator: bool,
    /// The simulator CA (PEM), the only TLS root trusted in simulator mode.
    #[arg(long)]
    sim_ca: Option<PathBuf>,
    /// Directory holding the simulated NSM's root (created on first start), simulator mode only.
    #[arg(long)]
    sim_nsm_dir: Option<PathBuf>,
    /// Simulator only: pretend the host clock is off by this many seconds (tests the correction
    /// from authenticated AWS Date headers).
    #[arg(long, allow_hyphen_values = true, requires = "simulator")]
    sim_clock_skew_s: Option<i64>,
    /// Write calls a second per (AWS account, region, quota group): CreateSecret, PutSecretValue,
    /// TagResource and DeleteSecret each have AWS's own 50 a second per account and region.
    #[arg(long, default_value_t = nitrosync_enclave::sync::pacing::DEFAULT_WRITES_PER_SECOND,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    writes_per_second: u32,
    /// DescribeSecret calls a second per (AWS account, region).
    #[arg(long, default_value_t = nitrosync_enclave::sync::pacing::DEFAULT_DESCRIBES_PER_SECOND,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    describes_per_second: u32,
    /// Seconds a new control connection has to deliver its first complete request.
    #[arg(long, default_value_t = nitrosync_enclave::control::PREFACE_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=300))]
    control_preface_timeout_s: u64,
    /// Where the keys come from: `kms` waits for the parent to hand over the identity sealed
    /// under the operator's KMS key (or to create it); `ephemeral` makes keys that die with the
    /// process (tests and trials).
    #[arg(long, default_value = "kms", value_parser = ["kms", "ephemeral"])]
    identity: String,
    /// Also log to stderr (the enclave console), as text or json. Logs always go to the parent.
    #[arg(long, value_parser = ["text", "json"])]
    log_stderr: Option<String>,
    /// Threads that run syncs. 1 (the default) runs everything on one thread: a sync waits on
    /// AWS far longer than it computes, and a second thread costs more CPU per write in wake-ups
    /// and context switches than it saves (`make bench`, sync). Raise it when one enclave serves
    /// more writes a second than one core computes.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    worker_threads: u16,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = if args.worker_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(args.worker_threads))
            .enable_all()
            .build()?
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = EnclaveConfig::new(
        &args.control,
        &args.relay,
        args.simulator,
        args.sim_ca,
        args.sim_nsm_dir,
    )?;
    cfg.identity = match args.identity.as_str() {
        "ephemeral" => nitrosync_enclave::config::IdentityMode::Ephemeral,
        _ => nitrosync_enclave::config::IdentityMode::Kms,
    };
    cfg.sim_clock_skew_ms = args.sim_clock_skew_s.unwrap_or(0).saturating_mul(1000);
    cfg.writes_per_second = args.writes_per_second;
    cfg.describes_per_second = args.describes_per_second;
    cfg.control_limits.preface_timeout = Duration::from_secs(args.control_preface_timeout_s);
    let (parent_layer, logs) = ParentLogLayer::new();
    // RUST_LOG sets the level of our own crates; the allowlist lets only WARN and above out of
    // any other, whatever RUST_LOG says. The console gets what the parent gets.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let stderr = args.log_stderr.as_deref().map(|format| {
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false);
        if format == "json" {
            layer.json().boxed()
        } else {
            layer.boxed()
        }
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(nitrosync_enclave::logs::allowlist())
        .with(parent_layer)
        .with(stderr)
        .init();
    let shutdown = CancellationToken::new();
    let handle = control::start(&cfg, logs, shutdown.clone()).await?;
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    tracing::info!("enclave shutting down");
    shutdown.cancel();
    handle.wait().await;
    Ok(())
}
