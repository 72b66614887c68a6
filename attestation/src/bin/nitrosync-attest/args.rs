//! Command-line arguments, parsed and validated by clap.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use nitrosync_shared::pcr::PcrPin;

/// Verify or inspect AWS Nitro Enclaves attestation documents, and check SAML metadata against
/// them.
#[derive(Debug, Parser)]
#[command(name = "nitrosync-attest", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Verify a document: signature, chain to the root, PCRs, nonce, age. Exit 0 only if all pass.
    Verify(VerifyArgs),
    /// Show a document without verifying anything.
    Inspect(InspectArgs),
    /// Check that SAML metadata names only the key an attested enclave holds. Exit 0 only if so.
    ///
    /// Run this before registering the enclave as a SAML identity provider in IAM
    /// (CreateSAMLProvider or UpdateSAMLProvider): it shows that the metadata's signing
    /// certificate lives in the measured enclave, so only that enclave can sign assertions for
    /// the roles that trust the provider.
    ///
    /// First the document is verified exactly as `verify` does (signature, chain to the root,
    /// PCRs, nonce, age). Then every signing certificate in the metadata must have the SHA-256
    /// that the document's user_data attests; a metadata file that lists any other signing key
    /// is rejected. The enclave's X25519 bundle key (the document's public_key) is shown, for
    /// sealing bundles to.
    #[command(name = "verify-metadata")]
    VerifyMetadata(VerifyMetadataArgs),
    /// Compute an enclave image's measurements, in the `measurements.json` form.
    ///
    /// For an EIF: PCR0 (kernel, cmdline and every ramdisk), PCR1 (kernel, cmdline and the first
    /// ramdisk), PCR2 (the other ramdisks) and, for a signed EIF, PCR8 (the signing
    /// certificate), as the Nitro hypervisor computes them, with the file's SHA-256 and size. The
    /// whole file is checked on the way: magic, version, section table, order of the measured
    /// sections, end of file and CRC-32. The EIF's signature itself is not verified.
    ///
    /// With --simulator: the PCRs the simulated NSM reports for an enclave binary (PCR0 is its
    /// SHA-384; PCR1 and PCR2 are the simulator's fixed values).
    #[command(group(ArgGroup::new("image").required(true).args(["eif", "simulator"])))]
    Measure(MeasureArgs),
}

#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// The Enclave Image File to measure; `-` reads standard input.
    #[arg(value_name = "IMAGE.eif")]
    pub eif: Option<PathBuf>,
    /// Measure an enclave binary as the simulator does, instead of an EIF.
    #[arg(long, value_name = "BINARY")]
    pub simulator: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
    pub output: OutputFormat,
    /// The same as --output json, like the other commands' flag.
    #[arg(long, conflicts_with = "output")]
    pub json: bool,
}

/// How `measure` prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// The `measurements.json` object (pretty-printed).
    Json,
    /// A readable table.
    Text,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The document: raw CBOR, hex or base64 (auto-detected); `-` reads standard input.
    pub doc: PathBuf,
    #[command(flatten)]
    pub checks: CheckArgs,
}

#[derive(Debug, Args)]
pub struct VerifyMetadataArgs {
    /// The SAML 2.0 IdP metadata (XML) to be registered in IAM.
    #[arg(long, value_name = "FILE")]
    pub metadata: PathBuf,
    /// The enclave's attestation document: raw CBOR, hex or base64 (auto-detected); `-` reads
    /// standard input.
    #[arg(long, value_name = "DOC")]
    pub doc: PathBuf,
    #[command(flatten)]
    pub checks: CheckArgs,
}

/// What a document is verified against: shared by `verify` and `verify-metadata`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Trusted root certificate, PEM or DER [default: the built-in AWS Nitro Enclaves Root G1].
    #[arg(long, value_name = "FILE")]
    pub root: Option<PathBuf>,
    /// Expected PCR value; repeatable.
    #[arg(long = "pcr", value_name = "N=HEX")]
    pub pcrs: Vec<PcrPin>,
    /// Expect the PCRs of this measurements file (`make eif`'s measurements.json or `measure`'s
    /// output): PCR0, PCR1, PCR2 and PCR8 when present.
    #[arg(long, value_name = "FILE")]
    pub measurements: Option<PathBuf>,
    /// Required nonce.
    #[arg(long, value_name = "HEX", value_parser = parse_hex)]
    pub nonce: Option<Hex>,
    /// Verify as of this UTC time (RFC 3339, e.g. 2024-12-13T07:38:00Z) [default: now].
    #[arg(long, value_name = "RFC3339", value_parser = humantime::parse_rfc3339_weak)]
    pub at: Option<SystemTime>,
    /// Reject documents older than this (e.g. 30s, 5m, 1h).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_age: Option<Duration>,
    /// Accept debug-mode enclaves (PCR0, PCR1 and PCR2 all zero).
    #[arg(long)]
    pub allow_debug: bool,
    /// Print the result as JSON on standard output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The document: raw CBOR, hex or base64 (auto-detected); `-` reads standard input.
    pub doc: PathBuf,
    /// Print the document as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Bytes given in hex on the command line.
#[derive(Debug, Clone)]
pub struct Hex(pub Vec<u8>);

fn parse_hex(s: &str) -> Result<Hex, String> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    hex::decode(s).map(Hex).map_err(|e| format!("not hex: {e}"))
}
