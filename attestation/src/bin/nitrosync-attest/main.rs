//! `nitrosync-attest`: verify or inspect an AWS Nitro Enclaves attestation document.

mod args;
mod input;
mod render;

use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context as _;
use clap::Parser as _;
use nitrosync_attestation::{Policy, TrustRoot, inspect, verify};

use crate::args::{Cli, Command, InspectArgs, VerifyArgs};

/// Exit code when the document was read but is not accepted.
const EXIT_REJECTED: u8 = 1;
/// Exit code when the inputs could not be read or understood.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Verify(args) => run_verify(args),
        Command::Inspect(args) => run_inspect(args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nitrosync-attest: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn run_verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let doc = input::read_document(&args.doc)?;
    let (root, root_label) = match &args.root {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read root {}", path.display()))?;
            let root = TrustRoot::from_pem_or_der(&bytes)
                .with_context(|| format!("root {}", path.display()))?;
            (root, path.display().to_string())
        }
        None => (
            TrustRoot::aws_nitro_g1(),
            "AWS Nitro Enclaves Root G1 (built in)".into(),
        ),
    };
    let mut policy = Policy::new().with_allow_debug(args.allow_debug);
    for (index, value) in &args.pcrs {
        policy = policy.with_pcr(*index, value.clone());
    }
    if let Some(nonce) = &args.nonce {
        policy = policy.with_nonce(nonce.0.clone());
    }
    if let Some(max_age) = args.max_age {
        policy = policy.with_max_age(max_age);
    }
    let now = args.at.unwrap_or_else(SystemTime::now);
    match verify(&doc, &root, &policy, now) {
        Ok(verified) => {
            let checks = render::Checks {
                root: &root,
                root_label: &root_label,
                policy: &policy,
                now,
            };
            if args.json {
                println!("{}", render::verified_json(&verified, &checks));
            } else {
                print!("{}", render::verified_text(&verified, &checks));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if args.json {
                println!("{}", render::rejected_json(&e));
            }
            eprintln!("nitrosync-attest: REJECTED: {e}");
            Ok(ExitCode::from(EXIT_REJECTED))
        }
    }
}

fn run_inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let doc = input::read_document(&args.doc)?;
    let parsed = inspect(&doc).context("cannot parse the document")?;
    if args.json {
        println!("{}", render::inspected_json(&parsed));
    } else {
        print!("{}", render::inspected_text(&parsed));
    }
    Ok(ExitCode::SUCCESS)
}
