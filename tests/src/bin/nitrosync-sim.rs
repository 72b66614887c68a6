//! `nitrosync-sim`: runs the whole system on this machine (AWS simulator, simulated enclave,
//! parent) over Unix sockets in one run directory, and walks through a real sync with the CLI:
//! a tenant key, a destination, its IAM applied in the simulator, a `.env` pushed, the secret
//! read back. The demo itself is [`nitrosync_tests::sim`].

use anyhow::Result;
use clap::Parser;
use nitrosync_tests::sim::{SimOptions, run};
use std::path::PathBuf;

/// Run nitrosync locally and show a real sync.
#[derive(Debug, Parser)]
#[command(name = "nitrosync-sim", version)]
struct Args {
    /// Run directory for sockets, logs, the store and the simulator's CA (emptied first).
    #[arg(long, default_value = "run")]
    run_dir: PathBuf,
    /// The AWS region to simulate.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Run the demo and exit (0 only when the secret read back equals the pushed file).
    #[arg(long)]
    check: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    run(&SimOptions {
        run_dir: args.run_dir,
        region: args.region,
        check: args.check,
    })
    .await
}
