//! `nitrosync-parent`: the daemon on the EC2 host. It relays the enclave's outbound TLS, keeps the
//! control connection to the enclave, and serves the admin API.

use anyhow::Context;
use clap::Parser;
use nitrosync_parent::config::{Overrides, RawConfig};
use nitrosync_parent::{daemon, env, logging};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// The nitrosync parent daemon.
#[derive(Debug, Parser)]
#[command(
    name = "nitrosync-parent",
    version,
    after_help = "Settings come from the flags, then the environment, then the config file.\nWithout a config file, --store and --admin-socket are required: no default path is used.\n\nExample (simulator):\n  nitrosync-parent --control unix:run/enclave-5000.sock --relay-listen unix:run/relay-8000.sock \\\n    --admin-socket run/admin.sock --store run/parent.db --region us-east-1 \\\n    --simulator-upstream 127.0.0.1:4566"
)]
struct Args {
    /// TOML config file (every key is in dist/parent.toml); the systemd unit passes
    /// /etc/nitrosync/parent.toml. Without one, --store and --admin-socket are required.
    #[arg(long, env = env::CONFIG)]
    config: Option<PathBuf>,
    /// The enclave's control endpoint, vsock:CID:PORT or unix:PATH.
    #[arg(long, env = env::CONTROL)]
    control: Option<String>,
    /// Where the relay listens for the enclave's tunnels.
    #[arg(long, env = env::RELAY_LISTEN)]
    relay_listen: Option<String>,
    /// The admin API's Unix socket.
    #[arg(long, env = env::ADMIN_SOCKET)]
    admin_socket: Option<PathBuf>,
    /// Allow this region's STS, Secrets Manager and KMS endpoints (repeatable).
    #[arg(long = "region")]
    regions: Vec<String>,
    /// Allow this exact host:port (repeatable).
    #[arg(long)]
    allow: Vec<String>,
    /// Simulator only: dial allowed AWS endpoints at this host:port instead.
    #[arg(long)]
    simulator_upstream: Option<String>,
    /// The SQLite store (destinations, sealed bundles, history).
    #[arg(long, env = env::STORE)]
    store: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (host:port).
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Serve the tenant API over TLS on this address (host:port); off unless set.
    #[arg(long, env = env::TENANT_API_LISTEN)]
    tenant_api_listen: Option<String>,
    /// The tenant API's certificate chain (PEM).
    #[arg(long, env = env::TENANT_API_CERT)]
    tenant_api_cert: Option<PathBuf>,
    /// The tenant API's private key (PEM).
    #[arg(long, env = env::TENANT_API_KEY)]
    tenant_api_key: Option<PathBuf>,
    /// The KMS key (full ARN) that seals the enclave's identity. Its credentials come from
    /// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, else the instance role.
    #[arg(long, env = env::IDENTITY_KMS_KEY)]
    identity_kms_key: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = env::LOG_FORMAT)]
    log_format: Option<String>,
}

/// Exits 2 for a configuration the daemon cannot start with, 1 for any other failure, and
/// prints one line: the error and each cause not already in it (never a backtrace, whatever
/// RUST_BACKTRACE says: this is a user's error, not a crash).
fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("nitrosync-parent: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let mut line = e.to_string();
            for cause in e.chain().skip(1) {
                let cause = cause.to_string();
                if !line.contains(cause.trim()) {
                    line.push_str(": ");
                    line.push_str(&cause);
                }
            }
            eprintln!("nitrosync-parent: {line}");
            let config = e
                .downcast_ref::<nitrosync_parent::ParentError>()
                .is_some_and(|p| {
                    matches!(
                        p,
                        nitrosync_parent::ParentError::ConfigSyntax { .. }
                            | nitrosync_parent::ParentError::ConfigRead { .. }
                            | nitrosync_parent::ParentError::InvalidSetting { .. }
                            | nitrosync_parent::ParentError::Unconfigured(_)
                    )
                });
            std::process::ExitCode::from(if config { 2 } else { 1 })
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let raw = match &args.config {
        Some(path) => RawConfig::load(path)?,
        None => RawConfig::default(),
    };
    let cfg = raw.resolve(Overrides {
        control: args.control,
        relay_listen: args.relay_listen,
        admin_socket: args.admin_socket,
        regions: args.regions,
        allow: args.allow,
        simulator_upstream: args.simulator_upstream,
        log_format: args.log_format,
        store: args.store,
        metrics_listen: args.metrics_listen,
        tenant_api_listen: args.tenant_api_listen,
        tenant_api_cert: args.tenant_api_cert,
        tenant_api_key: args.tenant_api_key,
        identity_kms_key: args.identity_kms_key,
    })?;
    logging::init(cfg.log_format, "info");
    // Before any socket is bound: the relay's settings decide how many fds it may hold.
    nitrosync_parent::fd_limit::raise_for(&cfg);
    let shutdown = CancellationToken::new();
    let handle = daemon::start(cfg, shutdown.clone())
        .await
        .context("cannot start nitrosync-parent")?;
    wait_for_signal().await?;
    tracing::info!("shutting down");
    shutdown.cancel();
    handle.wait().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
