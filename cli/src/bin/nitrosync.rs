//! `nitrosync`: the admin CLI for a nitrosync parent daemon.

#![deny(clippy::print_stdout, clippy::print_stderr)]

use clap::Parser;
use nitrosync_cli::output::{Escaped, escape_json};
use nitrosync_cli::{Cli, CliError, EXIT_USAGE, Format, LocalCode, run};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let format = cli.format();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return report(
                &CliError {
                    code: LocalCode::Internal.as_str().to_owned(),
                    message: format!("cannot start the runtime: {e}"),
                    exit: 1,
                },
                format,
            );
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e, format),
    }
}

/// Prints the error on standard error, escaped: `nitrosync: CODE: message`, or one JSON line.
#[allow(clippy::print_stderr)]
fn report(e: &CliError, format: Format) -> ExitCode {
    match format {
        Format::Text => eprintln!("nitrosync: {}", Escaped(&e.to_string())),
        Format::Json => eprintln!("{}", escape_json(&e.to_json().to_string())),
    }
    ExitCode::from(e.exit)
}

/// clap's own errors: help and version as clap prints them; a usage error as clap prints it
/// (exit 2), or, when the command line asked for JSON, as a JSON error with code `InvalidFlag`.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let asked_json = {
        let args: Vec<String> = std::env::args().skip(1).collect();
        args.iter().any(|a| a == "--json" || a == "--output=json")
            || args
                .windows(2)
                .any(|w| w[0] == "--output" && w[1] == "json")
    };
    let wants_text = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if wants_text || !asked_json {
        e.exit();
    }
    let rendered = e.render().to_string();
    let first = rendered.lines().next().unwrap_or_default();
    let message = first.strip_prefix("error: ").unwrap_or(first).to_owned();
    report(
        &CliError {
            code: LocalCode::InvalidFlag.as_str().to_owned(),
            message,
            exit: EXIT_USAGE,
        },
        Format::Json,
    )
}
