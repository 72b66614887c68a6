//! `nitrosync-cli`: the `nitrosync` command. The tenant's commands ([`tenant`]: key, destination
//! files, dotenv, sealing, push, attestation checks, IAM) and the operator's ([`operator`]: status,
//! enclave, destination management) live in separate modules; both talk to the daemon through
//! `nitrosync-api`'s clients: the operator's over the admin socket, the tenant's over the admin
//! socket or, with `--endpoint`, over the tenant API (TLS, every request signed by the tenant key). Key material and variable values exist only in [`tenant`], on the
//! tenant's machine.
//!
//! Exit codes scripts can rely on: 0 success; 1 the operation ran and reported a failure;
//! 2 usage error; 3 the daemon's admin socket is unreachable; 4 the enclave is unavailable.

mod flags;
pub mod operator;
pub mod tenant;

pub use tenant::dotenv;

/// Environment variable naming the tenant directory (key and destination files).
pub const ENV_TENANT_DIR: &str = "NITROSYNC_TENANT_DIR";

use clap::{Parser, Subcommand};
use nitrosync_api::{AdminClient, ApiClient, ClientError, TenantApiClient};
use nitrosync_shared::control::SyncReport;
use serde::Serialize;
use std::path::PathBuf;

/// Exit code: the operation reported a failure.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: wrong usage.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the daemon cannot be reached.
pub const EXIT_DAEMON_UNREACHABLE: u8 = 3;
/// Exit code: the daemon is up but the enclave is not.
pub const EXIT_ENCLAVE_UNAVAILABLE: u8 = 4;

/// Administer a nitrosync parent daemon.
#[derive(Debug, Parser)]
#[command(
    name = "nitrosync",
    version,
    after_help = "Examples:\n  nitrosync status\n  nitrosync status --json | jq .relay.stats\n  nitrosync enclave describe\n  nitrosync enclave attest --out doc.cbor\n  nitrosync saml-metadata > saml-metadata.xml\n  nitrosync enclave probe --region us-east-1\n\nExit codes: 0 ok, 1 failed, 2 usage, 3 daemon unreachable, 4 enclave unavailable."
)]
pub struct Cli {
    /// The daemon's admin socket.
    #[arg(long, global = true, env = nitrosync_api::ENV_ADMIN_SOCKET, default_value = nitrosync_api::DEFAULT_ADMIN_SOCKET)]
    pub admin_socket: PathBuf,
    /// The tenant API, https://host:port: the tenant's commands go there over TLS, signed with
    /// the tenant key, instead of to the admin socket.
    #[arg(long, global = true, env = nitrosync_api::ENV_ENDPOINT, value_name = "URL")]
    pub endpoint: Option<String>,
    /// The tenant API's certificate or CA (PEM): the only root trusted for --endpoint.
    #[arg(long, global = true, env = nitrosync_api::ENV_ENDPOINT_CA, value_name = "FILE")]
    pub endpoint_ca: Option<PathBuf>,
    /// The tenant directory: tenant key and destination files [default: ~/.config/nitrosync].
    #[arg(long, global = true, env = ENV_TENANT_DIR)]
    pub tenant_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the daemon, the control connection, the enclave's health, the relay counters,
    /// destinations by state, sync counters and the recent errors (as `--json` does).
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Talk to the enclave.
    #[command(subcommand)]
    Enclave(EnclaveCommand),
    /// Print the enclave's SAML IdP metadata, to register as an IAM SAML provider.
    ///
    /// Verify it first: `nitrosync enclave attest --out doc.cbor` and
    /// `nitrosync-attest verify-metadata --metadata saml-metadata.xml --doc doc.cbor`.
    SamlMetadata,
    /// The tenant's key.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Destinations: create (tenant side), then list, show, enable, disable, test, delete, history.
    #[command(subcommand)]
    Destination(DestinationCommand),
    /// Push an environment: parse a .env file, verify the enclave, seal, submit.
    #[command(subcommand)]
    Env(EnvCommand),
    /// Seal a bundle on the tenant's workstation, and submit it later.
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// The customer's IAM for a destination.
    #[command(subcommand)]
    Iam(IamCommand),
    /// The enclave images and attestation roots the tenant trusts (pins).
    #[command(subcommand)]
    Trust(TrustCommand),
    /// The operator's KMS key that seals the enclave's identity. Needs no daemon.
    #[command(subcommand)]
    Kms(KmsCommand),
}

/// Output formats of `kms template`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum KmsFormat {
    /// An AWS CloudFormation template (JSON): the key and its alias.
    Cloudformation,
    /// Terraform in its JSON syntax (`kms.tf.json`): the key and its alias, no provider block,
    /// resources and outputs named after the alias.
    Terraform,
    /// The key policy with the measurements and inputs it was made from, and the CreateKey
    /// request (`create_key`).
    Json,
}

/// `nitrosync kms …`
#[derive(Debug, Subcommand)]
pub enum KmsCommand {
    /// Print a KMS key whose policy releases data keys only to attested enclaves of the
    /// released images (PCR0, PCR1 and PCR2 of each), denies use without attestation and by
    /// debug-mode enclaves, gives the key admin no use of the key, and can never be changed.
    #[command(after_help = "Example:
  nitrosync kms template --measurements out/eif/measurements.json --account 123456789012 \
    --key-admin-arn arn:aws:iam::123456789012:role/kms-admin \
    --enclave-role-arn arn:aws:iam::123456789012:role/nitrosync-parent --format cloudformation

The key policy is immutable: nobody may call kms:PutKeyPolicy, since whoever could would be able
to read every identity sealed under the key. Create the key with BypassPolicyLockoutSafetyCheck
(the cloudformation and terraform forms set it; the json form's create_key is the CreateKey
request). A new release (a new PCR0) needs a new key, and the enclave then gets a new identity.
Give one --measurements per image to release under this key. Deploy the key as the key admin.")]
    Template(KmsTemplateArgs),
}

/// `nitrosync kms template` arguments.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("images").required(true).args(["measurements", "pcr0"])))]
pub struct KmsTemplateArgs {
    /// A released image's measurements.json (`make eif`, `nitrosync-attest measure`, or
    /// nitro-cli's Measurements); repeat for several images.
    #[arg(
        long = "measurements",
        value_name = "FILE",
        required_unless_present = "pcr0"
    )]
    pub measurements: Vec<PathBuf>,
    /// A released image's PCR0 (96 hex characters), when no measurements file exists: only
    /// `kms:RecipientAttestation:ImageSha384` is then conditioned. Repeatable.
    #[arg(long = "pcr0", value_name = "HEX")]
    pub pcr0: Vec<String>,
    /// The AWS account (12 digits) the key is created in.
    #[arg(long, value_name = "ID")]
    pub account: String,
    /// The IAM role or user that administers (and creates) the key; it gets no use of the key.
    #[arg(long, value_name = "ARN")]
    pub key_admin_arn: String,
    /// The instance role of the enclave's parent: the enclave's KMS calls are signed with it.
    #[arg(long, value_name = "ARN")]
    pub enclave_role_arn: String,
    /// The region the key must be created in (checked at deploy time).
    #[arg(long, value_name = "R")]
    pub region: Option<String>,
    /// The key's alias.
    #[arg(long, value_name = "NAME", default_value = nitrosync_iam::kms::DEFAULT_ALIAS)]
    pub alias: String,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: KmsFormat,
}

/// `nitrosync trust …`
#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Trust an enclave image: the measurements.json of `make eif` or of `nitrosync-attest
    /// measure`, or nitro-cli's Measurements. Several images may be trusted at once (upgrades).
    Add {
        /// The measurements file.
        #[arg(value_parser = flags::existing_file)]
        file: PathBuf,
        /// A name for it [default: the kind and the start of PCR0].
        #[arg(long)]
        name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Trust an attestation root besides the AWS Nitro Enclaves root: only for a simulator
    /// (its sim-root.pem), never for production.
    AddRoot {
        /// The root certificate, PEM or DER.
        #[arg(value_parser = flags::existing_file)]
        file: PathBuf,
        /// A name for it [default: "root-" and the start of its SHA-256].
        #[arg(long)]
        name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the trusted images and roots.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop trusting an image or a root.
    Remove {
        /// Its name (see `nitrosync trust list`).
        name: String,
    },
}

/// `nitrosync tenant …`
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create the tenant's Ed25519 key (mode 0600) in the tenant directory.
    Init,
}

/// How a destination's secret is treated when the destination is deleted.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DeletePolicyArg {
    /// Leave the secret in place.
    Retain,
    /// Delete it with a recovery window (--recovery-days, default 7).
    Delete,
    /// Delete it at once, without recovery.
    ForceDelete,
}

/// `nitrosync destination …`
#[derive(Debug, Subcommand)]
pub enum DestinationCommand {
    /// Define a destination (saved in the tenant directory) and print its SAML subject.
    Create(CreateArgs),
    /// List the destinations of your tenant (the key in the tenant directory): id, tenant,
    /// region, state, stored and synced version, last sync, last error.
    List {
        /// Every tenant's destinations (the operator's view, on the admin socket).
        #[arg(long)]
        all_tenants: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one destination: its signed configuration (secret, role, KMS key, tags, delete
    /// policy) and its state.
    Show {
        /// Destination id.
        #[arg(value_parser = flags::destination_id)]
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Let the scheduler write this destination again.
    Enable {
        /// Destination id.
        #[arg(value_parser = flags::destination_id)]
        id: String,
        /// Print the destination's record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop writing this destination (bundles are still accepted and stored).
    Disable {
        /// Destination id.
        #[arg(value_parser = flags::destination_id)]
        id: String,
        /// Print the destination's record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Retry a destination whose last sync failed for good.
    Retry {
        /// Destination id.
        #[arg(value_parser = flags::destination_id)]
        id: String,
        /// Print the destination's record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Test the connection: placeholder secret, and the check that the role pins saml:sub.
    /// Signed by the tenant key for the next few minutes only; works before the first push.
    Test {
        /// Destination id.
        #[arg(value_parser = flags::destination_id)]
        id: String,
        /// How the enclave's attestation is checked before signing.
        #[command(flatten)]
        attestation: AttestationArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Apply the delete policy to the secret, then forget the destination. The tenant key
    /// signs a tombstone: no older bundle is accepted afterwards. Asks for confirmation on a
    /// terminal; elsewhere it needs `--yes`.
    Delete {
        /// Destination id.
        #[arg(value_parser = flags::destination_id)]
        id: String,
        /// Do not ask: the delete policy is applied at once.
        #[arg(long)]
        yes: bool,
        /// How the enclave's attestation is checked before signing.
        #[command(flatten)]
        attestation: AttestationArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the sync history, newest first, each attempt with its time (RFC 3339, UTC).
    History {
        /// Destination id.
        #[arg(value_parser = flags::destination_id)]
        id: String,
        /// How many entries.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `nitrosync destination create` arguments.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Destination id: letters, digits, '_', '.', '-'.
    #[arg(long, value_parser = flags::destination_id)]
    pub id: String,
    /// AWS region: one AWS has (a usage error otherwise); a warning when the daemon's relay does
    /// not allow it. [default: as the AWS CLI, AWS_REGION, else AWS_DEFAULT_REGION, else the
    /// region of the AWS profile (AWS_PROFILE or default) in ~/.aws/config]
    #[arg(long)]
    pub region: Option<String>,
    /// Secrets Manager secret name.
    #[arg(long, value_parser = flags::secret_name)]
    pub secret_name: String,
    /// The IAM role to assume.
    #[arg(long, value_parser = flags::role_arn)]
    pub role_arn: String,
    /// The IAM SAML provider the role trusts.
    #[arg(long, value_parser = flags::saml_provider_arn)]
    pub saml_provider_arn: String,
    /// KMS key for the secret (id, ARN, alias/NAME).
    #[arg(long, value_parser = flags::kms_key_id)]
    pub kms_key_id: Option<String>,
    /// A tag for the secret, KEY=VALUE (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = flags::tag)]
    pub tags: Vec<String>,
    /// What deleting the destination does to the secret.
    #[arg(long, value_enum, default_value = "retain")]
    pub delete_policy: DeletePolicyArg,
    /// Recovery window in days for --delete-policy delete (7 to 30).
    #[arg(long, value_parser = clap::value_parser!(u32).range(7..=30))]
    pub recovery_days: Option<u32>,
    /// Replace an existing destination file.
    #[arg(long)]
    pub force: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// How the enclave's attestation is checked before sealing.
#[derive(Debug, Clone, clap::Args)]
pub struct AttestationArgs {
    /// Pin the enclave image for this command only, instead of the trusted images of `nitrosync
    /// trust`: N=HEX, repeatable, PCR0 plus PCR1 and PCR2 (or PCR8); also NITROSYNC_EXPECT_PCR0.
    #[arg(long = "pcr", value_name = "N=HEX")]
    pub pcrs: Vec<nitrosync_shared::pcr::PcrPin>,
    /// Trust only this root (PEM or DER) for this command [default: the AWS Nitro Enclaves Root
    /// G1 and the roots added with `nitrosync trust add-root`].
    #[arg(long, value_name = "FILE", value_parser = flags::existing_file)]
    pub root: Option<PathBuf>,
}

/// `nitrosync env …`
#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Parse a .env file, verify the enclave's attestation, seal the variables to its attested
    /// key with the tenant key, and submit the bundle.
    Push {
        /// Destination id (from `nitrosync destination create`).
        #[arg(long, value_parser = flags::destination_id)]
        destination: String,
        /// The .env file; `-` reads standard input (read once).
        #[arg(long, value_parser = flags::input_file)]
        file: PathBuf,
        /// Push even when the file holds no variable (the secret becomes `{}`).
        #[arg(long)]
        allow_empty: bool,
        /// Wait for the sync report, showing the phase and each attempt's outcome; stop (exit 1)
        /// on a failure waiting will not fix or a disabled destination.
        #[arg(long)]
        wait: bool,
        /// Attestation checks.
        #[command(flatten)]
        attestation: AttestationArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `nitrosync bundle …`
#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Seal a .env file into a bundle file, to the key of a verified attestation document.
    Seal {
        /// Destination id.
        #[arg(long, value_parser = flags::destination_id)]
        destination: String,
        /// The .env file; `-` reads standard input (read once).
        #[arg(long, value_parser = flags::input_file)]
        file: PathBuf,
        /// Seal even when the file holds no variable (the secret would become `{}`).
        #[arg(long)]
        allow_empty: bool,
        /// The attestation document to seal to (from `nitrosync enclave attest --out`).
        #[arg(long, value_parser = flags::existing_file)]
        attestation: PathBuf,
        /// Attestation checks.
        #[command(flatten)]
        checks: AttestationArgs,
        /// Maximum age of the attestation document.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        max_age: std::time::Duration,
        /// Where to write the bundle.
        #[arg(long)]
        out: PathBuf,
    },
    /// Submit a sealed bundle file.
    Submit {
        /// The bundle file.
        #[arg(value_parser = flags::existing_file)]
        file: PathBuf,
        /// Wait for the sync report, showing the phase and each attempt's outcome; stop (exit 1)
        /// on a failure waiting will not fix or a disabled destination.
        #[arg(long)]
        wait: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Output formats of `iam template`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum IamFormat {
    /// An AWS CloudFormation template (JSON).
    Cloudformation,
    /// Terraform in its JSON syntax (save it as `nitrosync-ID.tf.json`): no provider block,
    /// resources and outputs named `nitrosync_ID`, so it can sit beside other configuration.
    Terraform,
    /// The documents, as `iam apply` sends them.
    Json,
}

/// `nitrosync iam …`
#[derive(Debug, Subcommand)]
pub enum IamCommand {
    /// Print the customer-side IAM for a destination: SAML provider, policy, role. The enclave
    /// is attested first (fresh nonce, trusted image) and its SAML metadata must name only the
    /// attested certificate.
    Template {
        /// Destination id.
        #[arg(long, value_parser = flags::destination_id)]
        destination: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "cloudformation")]
        format: IamFormat,
        /// How the enclave is verified before its metadata is put in the template.
        #[command(flatten)]
        attestation: AttestationArgs,
    },
    /// Create or update the same resources through the IAM API, with the standard AWS
    /// credential chain (environment, profiles, credential_process, SSO). Idempotent. The
    /// enclave is verified first, as for `template`; then the caller's account
    /// (sts:GetCallerIdentity) is shown and must be the destination's role's account (exit 2
    /// otherwise), before anything is written.
    Apply {
        /// Destination id.
        #[arg(long, value_parser = flags::destination_id)]
        destination: String,
        /// AWS profile to use.
        #[arg(long)]
        profile: Option<String>,
        /// Another IAM and STS endpoint (tests, simulators).
        #[arg(long, value_name = "URL", value_parser = flags::url)]
        endpoint_url: Option<String>,
        /// An extra CA certificate (PEM) to trust (a test endpoint, or a TLS-inspecting proxy),
        /// as the AWS CLI's AWS_CA_BUNDLE.
        #[arg(long, value_name = "FILE", env = "AWS_CA_BUNDLE", value_parser = flags::existing_file)]
        ca_bundle: Option<PathBuf>,
        /// Print what would be created or updated (provider, role, policy: names and ARNs) and
        /// change nothing; the caller's account is still checked.
        #[arg(long)]
        dry_run: bool,
        /// How the enclave is verified before its metadata is registered.
        #[command(flatten)]
        attestation: AttestationArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `nitrosync enclave …`
#[derive(Debug, Subcommand)]
pub enum EnclaveCommand {
    /// Show what the enclave is: versions, mode, TLS trust anchors.
    Describe {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Fetch a fresh attestation document from the enclave's NSM.
    Attest {
        /// Nonce to bind into the document (hex); 32 random bytes when absent.
        #[arg(long, value_name = "HEX", value_parser = flags::nonce_hex)]
        nonce: Option<String>,
        /// Write the raw CBOR document to this file instead of printing it in base64.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Print JSON (nonce and base64 document).
        #[arg(long)]
        json: bool,
    },
    /// Rotate the sealed identity's SAML signing key and bundle key without downtime: `begin`
    /// publishes the next certificate beside the current one in the SAML metadata (customers then
    /// run `nitrosync iam apply`); `finish` signs with it and attests the next bundle key, and
    /// the old bundle key opens bundles until the grace period ends. Each step re-seals the
    /// identity under the KMS key and the parent stores it.
    Rotate {
        /// The step.
        #[arg(value_enum)]
        step: RotateStep,
        /// `finish` only: days the old bundle key still opens bundles sealed to it (0 to 30).
        #[arg(long, value_name = "DAYS", default_value_t = 7,
              value_parser = clap::value_parser!(u64).range(0..=30))]
        bundle_key_grace_days: u64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Have the enclave call STS once through the relay, over TLS, to prove the outbound path.
    Probe {
        /// The AWS region whose STS endpoint is called.
        #[arg(long)]
        region: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// A step of `nitrosync enclave rotate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RotateStep {
    /// Publish the next SAML certificate in the metadata.
    Begin,
    /// Switch to the next keys.
    Finish,
}

/// A failed CLI command: the line to print and the exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// One line for the user.
    pub message: String,
    /// The process exit code.
    pub exit: u8,
}

pub(crate) fn fail(exit: u8, message: impl Into<String>) -> CliError {
    CliError {
        message: message.into(),
        exit,
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        let exit = if e.is_unreachable() {
            EXIT_DAEMON_UNREACHABLE
        } else if e.is_enclave_unavailable() {
            EXIT_ENCLAVE_UNAVAILABLE
        } else {
            EXIT_FAILED
        };
        fail(exit, crate::error_chain(&e))
    }
}

/// `error: cause: cause ...`, the whole `source()` chain on one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

/// Prints a sync report (JSON, or a line and the secret's ARN); a failure is an error with its
/// code, message and what to do.
pub(crate) fn report(r: &SyncReport, json: bool) -> Result<(), CliError> {
    print_report(r, json)?;
    match &r.error {
        None => Ok(()),
        Some(e) => Err(fail(EXIT_FAILED, explained(e.code, &e.message))),
    }
}

/// `CODE: message` with what to do: the enclave ends its messages with the code's remedy; one
/// that does not (the parent's own) gets it appended.
pub(crate) fn explained(code: nitrosync_shared::ErrorCode, message: &str) -> String {
    let message = sentence(message);
    if message.contains(code.remedy()) {
        format!("{code}: {message}")
    } else {
        format!("{code}: {message} What to do: {}", code.remedy())
    }
}

/// `text` as a sentence: trimmed, and ending with a full stop.
pub(crate) fn sentence(text: &str) -> String {
    let t = text.trim_end();
    if t.ends_with(['.', '!', '?']) {
        t.to_owned()
    } else {
        format!("{t}.")
    }
}

/// Prints a sync report: JSON, or a line and the secret's ARN.
pub(crate) fn print_report(r: &SyncReport, json: bool) -> Result<(), CliError> {
    if json {
        return print_json(r);
    }
    println!(
        "{} v{}: {:?} {:?}",
        r.destination, r.version, r.mode, r.outcome
    );
    if let Some(arn) = &r.secret_arn {
        println!("  secret {arn}");
    }
    Ok(())
}

/// A region given with `--region`: one AWS has ([`nitrosync_shared::names::known_region`]), or a
/// usage error (exit 2) that names the flag and the closest regions.
pub(crate) fn region_flag(region: &str) -> Result<(), CliError> {
    nitrosync_shared::names::known_region(region)
        .map_err(|e| fail(EXIT_USAGE, format!("--region: {e}")))
}

pub(crate) fn print_json<T: Serialize>(v: &T) -> Result<(), CliError> {
    let s = serde_json::to_string_pretty(v).map_err(|e| fail(EXIT_FAILED, e.to_string()))?;
    println!("{s}");
    Ok(())
}

/// Runs one CLI invocation.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let tenant_dir = cli
        .tenant_dir
        .clone()
        .unwrap_or_else(tenant::default_tenant_dir);
    let admin = AdminClient::new(cli.admin_socket.clone());
    let api = || -> Result<ApiClient, CliError> {
        match &cli.endpoint {
            None => Ok(ApiClient::Admin(admin.clone())),
            Some(endpoint) => tenant_api_client(endpoint, cli.endpoint_ca.as_deref(), &tenant_dir),
        }
    };
    match cli.command {
        Command::Tenant(c) => return tenant::tenant(c, &tenant_dir),
        Command::Destination(DestinationCommand::Create(a)) => {
            return tenant::create(a, &tenant_dir, api().ok().as_ref()).await;
        }
        Command::Destination(c) => {
            return operator::destinations::destination(c, &api()?, &tenant_dir).await;
        }
        Command::Env(c) => return tenant::env(c, &api()?, &tenant_dir).await,
        Command::Bundle(c) => return tenant::bundle(c, &api()?, &tenant_dir).await,
        Command::Iam(c) => return tenant::iam::iam(c, &api()?, &tenant_dir).await,
        Command::Trust(c) => return tenant::trust_command(c, &tenant_dir),
        Command::Kms(KmsCommand::Template(a)) => return operator::kms::template(&a),
        _ => {}
    }
    if cli.endpoint.is_some() {
        return Err(fail(
            EXIT_USAGE,
            "this is an operator command: it uses the admin socket, not --endpoint (the tenant API serves only the tenant's commands)",
        ));
    }
    operator::run(cli.command, &admin).await
}

/// The tenant API's client: the pinned root from `ca`, requests signed with the tenant key.
fn tenant_api_client(
    endpoint: &str,
    ca: Option<&std::path::Path>,
    tenant_dir: &std::path::Path,
) -> Result<ApiClient, CliError> {
    let ca = ca.ok_or_else(|| {
        fail(
            EXIT_USAGE,
            format!(
                "--endpoint needs --endpoint-ca FILE (or {}): the tenant API's certificate or CA, the only root trusted",
                nitrosync_api::ENV_ENDPOINT_CA
            ),
        )
    })?;
    let pem = std::fs::read(ca).map_err(|e| {
        fail(
            EXIT_USAGE,
            format!("cannot read --endpoint-ca {}: {e}", ca.display()),
        )
    })?;
    let key = tenant::load_key(tenant_dir)?;
    let client = TenantApiClient::new(endpoint, &pem, std::sync::Arc::new(tenant::KeySigner(key)))
        .map_err(|e| fail(EXIT_USAGE, e.to_string()))?;
    Ok(ApiClient::Tenant(client))
}
