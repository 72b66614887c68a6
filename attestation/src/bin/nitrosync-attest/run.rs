//! The commands of `nitrosync-attest`: read the inputs, verify, print the outcome.

use nitrosync_shared::pcr::PcrPin;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context as _;
use nitrosync_attestation::{
    Policy, TrustRoot, VerifiedDocument, VerifyError, check_metadata_binding, inspect, measure_eif,
    simulator_measurements_for_pcr0, simulator_pcr0_from_reader, verify,
};

use crate::EXIT_REJECTED;
use crate::args::{
    CheckArgs, Command, InspectArgs, MeasureArgs, OutputFormat, VerifyArgs, VerifyMetadataArgs,
};
use crate::{input, render};

/// Runs one command; `Ok` carries the exit code of a completed check, `Err` means the inputs
/// could not be read or understood.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Verify(args) => run_verify(args),
        Command::Inspect(args) => run_inspect(args),
        Command::VerifyMetadata(args) => run_verify_metadata(args),
        Command::Measure(args) => run_measure(args),
    }
}

/// The pins of `--pcr` and `--measurements` together.
fn pins(args: &CheckArgs) -> anyhow::Result<Vec<PcrPin>> {
    let mut pins = args.pcrs.clone();
    if let Some(path) = &args.measurements {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let m: nitrosync_shared::measurements::Measurements = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a measurements file", path.display()))?;
        pins.extend(
            m.pins()
                .with_context(|| format!("{}: a PCR is not hex", path.display()))?,
        );
    }
    Ok(pins)
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
        for PcrPin { index, value } in &pins(args)? {
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
    // Registering metadata trusts whatever image holds its key: the image must be pinned.
    nitrosync_shared::pcr::check_complete(&pins(&args.checks)?).map_err(|e| {
        anyhow::anyhow!(
            "the enclave image is not pinned ({e}): pass --measurements measurements.json (from `make eif`, or `nitrosync-attest measure IMAGE.eif`), or --pcr 0=HEX --pcr 1=HEX --pcr 2=HEX (or --pcr 8=HEX); without them any enclave on any Nitro host would pass"
        )
    })?;
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

fn run_measure(args: MeasureArgs) -> anyhow::Result<ExitCode> {
    let text = args.output == OutputFormat::Text && !args.json;
    if let Some(binary) = &args.simulator {
        let pcr0 = std::fs::File::open(binary)
            .and_then(simulator_pcr0_from_reader)
            .with_context(|| format!("cannot read the enclave binary {}", binary.display()))?;
        let measurements = simulator_measurements_for_pcr0(&pcr0);
        if text {
            print!("{}", render::simulator_text(&measurements, binary));
        } else {
            println!("{}", render::measurements_json(&measurements)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let path = args
        .eif
        .as_deref()
        .context("give an EIF file or --simulator BINARY")?;
    let reader = input::open(path)?;
    let measured =
        measure_eif(reader).with_context(|| format!("cannot measure {}", path.display()))?;
    if text {
        print!("{}", render::eif_text(&measured, path));
    } else {
        println!("{}", render::measurements_json(&measured.measurements())?);
    }
    Ok(ExitCode::SUCCESS)
}
