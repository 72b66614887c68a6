//! `nitrosync-sim`: runs the whole system on this machine (AWS simulator, simulated enclave,
//! parent) over Unix sockets in one run directory, shows it healthy, and proves the outbound path
//! with one real STS call from the enclave through the relay over TLS.

use anyhow::{Context, Result, bail};
use clap::Parser;
use nitrosync_tests::{SimStack, cli};
use std::path::PathBuf;

/// Run nitrosync locally: AWS simulator, simulated enclave and parent.
#[derive(Debug, Parser)]
#[command(name = "nitrosync-sim", version)]
struct Args {
    /// Run directory for sockets, logs and the simulator's CA (emptied first).
    #[arg(long, default_value = "run")]
    run_dir: PathBuf,
    /// The AWS region to simulate.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Run the checks and exit (0 when every step passed) instead of staying up.
    #[arg(long)]
    check: bool,
}

fn step(n: u32, text: &str) {
    println!("\n[{n}] {text}");
}

fn show(out: &nitrosync_tests::CliOutput) {
    for line in out.stdout.lines().chain(out.stderr.lines()) {
        println!("    {line}");
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.run_dir.exists() {
        std::fs::remove_dir_all(&args.run_dir)
            .with_context(|| format!("cannot empty {}", args.run_dir.display()))?;
    }
    std::fs::create_dir_all(&args.run_dir)?;
    let dir = std::fs::canonicalize(&args.run_dir)?;

    step(
        1,
        "Starting the AWS simulator, the enclave (simulator mode) and the parent",
    );
    let stack = SimStack::start(&dir, &args.region).await?;
    println!(
        "    aws-sim       https://127.0.0.1:{} (CA {})",
        stack.aws.port,
        stack.aws.ca.display()
    );
    println!(
        "    enclave       control unix:{}",
        stack.sockets.control.display()
    );
    println!(
        "    parent        relay unix:{}, admin {}",
        stack.sockets.relay.display(),
        stack.sockets.admin.display()
    );
    println!("    logs          {}/*.log", dir.display());

    let admin = stack.sockets.admin.clone();
    step(2, "nitrosync status");
    let status = cli(&admin, &["status"]).await?;
    show(&status);

    step(3, "nitrosync enclave describe");
    let describe = cli(&admin, &["enclave", "describe"]).await?;
    show(&describe);

    step(
        4,
        &format!(
            "nitrosync enclave probe --region {}  (STS GetCallerIdentity from the enclave, through the relay, over TLS)",
            args.region
        ),
    );
    let probe = cli(&admin, &["enclave", "probe", "--region", &args.region]).await?;
    show(&probe);

    step(5, "nitrosync status  (relay counters after the call)");
    let after = cli(&admin, &["status"]).await?;
    show(&after);

    let failed: Vec<&str> = [
        ("status", &status),
        ("describe", &describe),
        ("probe", &probe),
        ("status", &after),
    ]
    .iter()
    .filter(|(_, o)| o.code != 0)
    .map(|(n, _)| *n)
    .collect();

    if args.check {
        stack.stop().await?;
        if !failed.is_empty() {
            bail!("sim check failed at: {}", failed.join(", "));
        }
        println!(
            "\nsim check passed: every process healthy, STS reached through the relay over TLS, clean shutdown."
        );
        return Ok(());
    }

    println!("\nThe stack is up. In another terminal, try:");
    println!("    export NITROSYNC_ADMIN_SOCKET={}", admin.display());
    println!("    target/debug/nitrosync status --json");
    println!(
        "    target/debug/nitrosync enclave probe --region {}",
        args.region
    );
    println!(
        "    target/debug/nitrosync enclave probe --region eu-west-1   # refused by the relay allowlist"
    );
    println!("    tail -f {}/parent.log", dir.display());
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    println!("\nStopping...");
    stack.stop().await?;
    println!("Stopped cleanly.");
    if !failed.is_empty() {
        bail!("some steps failed: {}", failed.join(", "));
    }
    Ok(())
}
