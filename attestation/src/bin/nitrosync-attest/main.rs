//! `nitrosync-attest`: verify or inspect an AWS Nitro Enclaves attestation document, or check
//! that SAML metadata names the key an attested enclave holds.

mod args;
mod input;
mod render;
mod run;

use std::process::ExitCode;

use clap::Parser as _;

use crate::args::Cli;

/// Exit code when the document was read but is not accepted.
const EXIT_REJECTED: u8 = 1;
/// Exit code when the inputs could not be read or understood.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = run::run(cli.command);
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nitrosync-attest: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
