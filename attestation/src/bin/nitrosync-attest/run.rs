//! The commands of `nitrosync-attest`: read the inputs, verify, print the outcome.

use nitrosync_shared::pcr::PcrPin;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context as _;
use nitrosync_attestation::{
    Policy, TrustRoot, VerifiedDocument, VerifyError, check_metadata_binding, inspect, verify,
};

use crate::EXIT_REJECTED;
use crate::args::{CheckArgs, Command, InspectArgs, VerifyArgs, VerifyMetadataArgs};
use crate::{input, render};

/// Runs one command; `Ok` carries the exit code of a completed check, `Err` means the inputs
/// could not be read or understood.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Verify(args) => run_verify(args),
        Command::Inspect(args) => run_inspect(args),
        Command::VerifyMetadata(args) => run_verify_metadata(args),
    }
}

/// What a document is verified against, kept to say what was checked.
struct Setup {
    root: TrustRoot,
    root_label: String,
    policy: Policy,
    now: SystemTime,
}

impl Setup {
    /// Reads the root and builds the policy from the command line.
    fn from_args(args: &CheckArgs) -> anyhow::Result<Self> {
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
        for PcrPin { index, value } in &args.pcrs {
            policy = policy.with_pcr(*index, value.clone());
        }
        if let Some(nonce) = &args.nonce {
            policy = policy.with_nonce(nonce.0.clone());
        }
        if let Some(max_age) = args.max_age {
            policy = policy.with_max_age(max_age);
        }
        Ok(Self {
            root,
            root_label,
            policy,
            now: args.at.unwrap_or_else(SystemTime::now),
        })
    }

    fn verify(&self, doc: &[u8]) -> Result<VerifiedDocument, VerifyError> {
        verify(doc, &self.root, &self.policy, self.now)
    }

    fn checks(&self) -> render::Checks<'_> {
        render::Checks {
            root: &self.root,
            root_label: &self.root_label,
            policy: &self.policy,
            now: self.now,
        }
    }
}

/// Reports a rejection: the JSON object on standard output if asked, one line on standard error.
fn rejected(json: Option<serde_json::Value>, reason: &dyn std::fmt::Display) -> ExitCode {
    if let Some(json) = json {
        println!("{json}");
    }
    eprintln!("nitrosync-attest: REJECTED: {reason}");
    ExitCode::from(EXIT_REJECTED)
}

fn run_verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let doc = input::read_document(&args.doc)?;
    let setup = Setup::from_args(&args.checks)?;
    let json = args.checks.json;
    match setup.verify(&doc) {
        Ok(verified) => {
            if json {
                println!("{}", render::verified_json(&verified, &setup.checks()));
            } else {
                print!("{}", render::verified_text(&verified, &setup.checks()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(rejected(json.then(|| render::rejected_json(&e)), &e)),
    }
}

fn run_verify_metadata(args: VerifyMetadataArgs) -> anyhow::Result<ExitCode> {
    let doc = input::read_document(&args.doc)?;
    let metadata = input::read_metadata(&args.metadata)?;
    let setup = Setup::from_args(&args.checks)?;
    let json = args.checks.json;
    let verified = match setup.verify(&doc) {
        Ok(verified) => verified,
        Err(e) => {
            let reason = format!("attestation document: {e}");
            let out = json.then(|| render::stage_rejected_json("document", e.code(), &reason));
            return Ok(rejected(out, &reason));
        }
    };
    match check_metadata_binding(&metadata, &verified) {
        Ok(binding) => {
            if json {
                println!(
                    "{}",
                    render::metadata_json(&verified, &setup.checks(), &binding, &args.metadata)
                );
            } else {
                print!(
                    "{}",
                    render::metadata_text(&verified, &setup.checks(), &binding, &args.metadata)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let reason = format!("SAML metadata {}: {e}", args.metadata.display());
            let out = json.then(|| render::stage_rejected_json("metadata", e.code(), &reason));
            Ok(rejected(out, &reason))
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
