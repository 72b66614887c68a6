//! `nitrosync-cli`: the `nitrosync` command. The tenant's commands ([`tenant`]: key, destination
//! files, dotenv, sealing, push, attestation checks, IAM) and the operator's ([`operator`]: status,
//! enclave, destination management) live in separate modules; both talk to the daemon through
//! `nitrosync-api`'s clients: the operator's over the admin socket, the tenant's over the admin
//! socket or, with `--endpoint`, over the tenant API (TLS, every request signed by the tenant key). Key material and variable values exist only in [`tenant`], on the
//! tenant's machine.
//!
//! Exit codes scripts can rely on: 0 success; 1 the operation ran and reported a failure;
//! 2 usage error; 3 the daemon's admin socket is unreachable; 4 the enclave is unavailable.
//! Each error also has a stable code ([`CliError`], [`LocalCode`]). Everything printed goes
//! through [`output`], which escapes terminal controls: the daemon's words are the parent
//! host's, and the parent host is not trusted with the tenant's terminal.

#![deny(clippy::print_stdout, clippy::print_stderr)]

// First: the `say!` and `note!` macros are used by the modules below.
#[macro_use]
pub mod output;
mod error;
mod flags;
pub mod operator;
pub mod tenant;

pub use error::{
    CliError, EXIT_DAEMON_UNREACHABLE, EXIT_ENCLAVE_UNAVAILABLE, EXIT_FAILED, EXIT_USAGE, LocalCode,
};
pub(crate) use error::{error_chain, fail};
pub use output::Format;

pub use tenant::dotenv;

/// Environment variable naming the tenant directory (key and destination files).
pub const ENV_TENANT_DIR: &str = "NITROSYNC_TENANT_DIR";

use clap::{Parser, Subcommand};
use nitrosync_api::{AdminClient, ApiClient, TenantApiClient};
use nitrosync_shared::control::SyncReport;
use std::path::PathBuf;

/// Administer a nitrosync parent daemon.
#[derive(Debug, Parser)]
#[command(
    name = "nitrosync",
    version,
    after_help = "Examples:\n  nitrosync status\n  nitrosync status --json | jq .relay.stats\n  nitrosync enclave describe\n  nitrosync enclave attest --out doc.cbor\n  nitrosync saml-metadata > saml-metadata.xml\n  nitrosync enclave probe --region us-east-1\n  nitrosync status --watch\n\nEvery command takes --output text|json (--json is --output json). Errors are one line on\nstandard error, `nitrosync: CODE: message`, or with --output json one JSON line,\n{\"error\": {\"code\", \"message\", \"exit\"}}; docs/errors.md lists the codes.\n\nExit codes: 0 ok, 1 failed, 2 usage, 3 daemon unreachable, 4 enclave unavailable."
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
    /// Output format: text for people, or JSON for scripts (errors too, on standard error)
    /// [default: text].
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<Format>,
    /// The same as --output json.
    #[arg(long, global = true, conflicts_with = "output")]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The output format: `--output`, or JSON for `--json`.
    pub fn format(&self) -> Format {
        match (self.output, self.json) {
            (Some(f), _) => f,
            (None, true) => Format::Json,
            (None, false) => Format::Text,
        }
    }
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the daemon, the control connection, the enclave's health, the relay counters,
    /// destinations by state, sync counters and the recent errors (as `--json` does).
    Status(StatusArgs),
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

/// `nitrosync status` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Keep watching: destinations by state, the newest errors and syncs per second, redrawn
    /// in place every --interval on a terminal; off a terminal (a pipe, a log), one snapshot
    /// per interval, separated by a blank line, without cursor codes. Ctrl-C ends it (exit 0).
    #[arg(long)]
    pub watch: bool,
    /// --watch: seconds between snapshots (0.5 to 3600).
    #[arg(long, value_name = "SECONDS", default_value = "2", requires = "watch",
          value_parser = flags::interval)]
    pub interval: std::time::Duration,
    /// --watch: stop after this many snapshots [default: until Ctrl-C].
    #[arg(long, value_name = "N", requires = "watch",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
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
    /// The region the key must be created in (checked at deploy time) [default: as the AWS CLI,
    /// AWS_REGION, else AWS_DEFAULT_REGION, else the AWS profile's region; none when none is set].
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
    },
    /// List the trusted images and roots.
    List,
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
    },
    /// Show one destination: its signed configuration (secret, role, KMS key, tags, delete
    /// policy) and its state.
    Show {
        /// Destination id.
        #[arg(value_parser = flags::destination_id)]
        id: String,
    },
    /// Let the scheduler write this destination again.
    Enable {
        /// Destination id.
        #[arg(value_parser = flags::destination_id)]
        id: String,
    },
    /// Stop writing this destination (bundles are still accepted and stored).
    Disable {
        /// Destination id.
        #[arg(value_parser = flags::destination_id)]
        id: String,
    },
    /// Retry a destination whose last sync failed for good.
    Retry {
        /// Destination id.
        #[arg(value_parser = flags::destination_id)]
        id: String,
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
    },
    /// Show the sync history, newest first, each attempt with its time (RFC 3339, UTC).
    History {
        /// Destination id.
        #[arg(value_parser = flags::destination_id)]
        id: String,
        /// How many entries (1 to 1000).
        #[arg(long, default_value = "20", value_parser = flags::history_limit)]
        limit: u32,
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
    },
}

/// `nitrosync enclave …`
#[derive(Debug, Subcommand)]
pub enum EnclaveCommand {
    /// Show what the enclave is: versions, mode, TLS trust anchors.
    Describe,
    /// Fetch a fresh attestation document from the enclave's NSM.
    Attest {
        /// Nonce to bind into the document (hex); 32 random bytes when absent.
        #[arg(long, value_name = "HEX", value_parser = flags::nonce_hex)]
        nonce: Option<String>,
        /// Write the raw CBOR document to this file instead of printing it in base64.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
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
    },
    /// Have the enclave call STS once through the relay, over TLS, to prove the outbound path.
    Probe {
        /// The AWS region whose STS endpoint is called [default: as the AWS CLI, AWS_REGION,
        /// else AWS_DEFAULT_REGION, else the AWS profile's region].
        #[arg(long)]
        region: Option<String>,
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

/// Prints a sync report (JSON, or a line and the secret's ARN); a failure is an error with its
/// code, message and what to do.
pub(crate) fn report(r: &SyncReport, format: Format) -> Result<(), CliError> {
    print_report(r, format)?;
    match &r.error {
        None => Ok(()),
        Some(e) => Err(CliError::reported(
            e.code.as_str(),
            explained(e.code, &e.message),
            EXIT_FAILED,
        )),
    }
}

/// The message with what to do: the enclave ends its messages with the code's remedy; one that
/// does not (the parent's own) gets it appended.
pub(crate) fn explained(code: nitrosync_shared::ErrorCode, message: &str) -> String {
    let message = sentence(message);
    if message.contains(code.remedy()) {
        message
    } else {
        format!("{message} What to do: {}", code.remedy())
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
pub(crate) fn print_report(r: &SyncReport, format: Format) -> Result<(), CliError> {
    if format.is_json() {
        return output::json(r);
    }
    say!(
        "{} v{}: {:?} {:?}",
        r.destination,
        r.version,
        r.mode,
        r.outcome
    );
    if let Some(arn) = &r.secret_arn {
        say!("  secret {arn}");
    }
    Ok(())
}

/// A region given with `--region`: one AWS has ([`nitrosync_shared::names::known_region`]), or a
/// usage error (exit 2) that names the flag and the closest regions.
pub(crate) fn region_flag(region: &str) -> Result<(), CliError> {
    nitrosync_shared::names::known_region(region)
        .map_err(|e| fail(LocalCode::InvalidFlag, format!("--region: {e}")))
}

/// The region of a command whose `--region` is absent, as the AWS CLI finds it
/// ([`nitrosync_iam::apply::default_region`]: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's),
/// checked as `--region` is; stderr says where it came from. `None` when none is set.
pub(crate) async fn default_region() -> Result<Option<String>, CliError> {
    let Some((region, source)) = nitrosync_iam::apply::default_region().await else {
        return Ok(None);
    };
    nitrosync_shared::names::known_region(&region).map_err(|e| {
        fail(
            LocalCode::InvalidFlag,
            format!("--region from {source}: {e}"),
        )
    })?;
    note!("nitrosync: region {region} (from {source}; --region overrides it)");
    Ok(Some(region))
}

/// `--region`, checked, or else the default region; none at all is a usage error.
pub(crate) async fn region_or_default(region: Option<String>) -> Result<String, CliError> {
    match region {
        Some(r) => {
            region_flag(&r)?;
            Ok(r)
        }
        None => default_region().await?.ok_or_else(|| {
            fail(
                LocalCode::InvalidFlag,
                "--region is required: it was not given, and neither AWS_REGION, AWS_DEFAULT_REGION nor the AWS profile's region is set",
            )
        }),
    }
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
    let format = cli.format();
    match cli.command {
        Command::Tenant(c) => return tenant::tenant(c, &tenant_dir, format),
        Command::Destination(DestinationCommand::Create(a)) => {
            return tenant::create(a, &tenant_dir, api().ok().as_ref(), format).await;
        }
        Command::Destination(c) => {
            return operator::destinations::destination(c, &api()?, &tenant_dir, format).await;
        }
        Command::Env(c) => return tenant::env(c, &api()?, &tenant_dir, format).await,
        Command::Bundle(c) => return tenant::bundle(c, &api()?, &tenant_dir, format).await,
        Command::Iam(c) => return tenant::iam::iam(c, &api()?, &tenant_dir, format).await,
        Command::Trust(c) => return tenant::trust_command(c, &tenant_dir, format),
        Command::Kms(KmsCommand::Template(a)) => return operator::kms::template(&a).await,
        _ => {}
    }
    if cli.endpoint.is_some() {
        return Err(fail(
            LocalCode::InvalidFlag,
            "this is an operator command: it uses the admin socket, not --endpoint (the tenant API serves only the tenant's commands)",
        ));
    }
    operator::run(cli.command, &admin, format).await
}

/// The tenant API's client: the pinned root from `ca`, requests signed with the tenant key.
fn tenant_api_client(
    endpoint: &str,
    ca: Option<&std::path::Path>,
    tenant_dir: &std::path::Path,
) -> Result<ApiClient, CliError> {
    let ca = ca.ok_or_else(|| {
        fail(
            LocalCode::InvalidFlag,
            format!(
                "--endpoint needs --endpoint-ca FILE (or {}): the tenant API's certificate or CA, the only root trusted",
                nitrosync_api::ENV_ENDPOINT_CA
            ),
        )
    })?;
    let pem = std::fs::read(ca).map_err(|e| {
        fail(
            LocalCode::InvalidFlag,
            format!("cannot read --endpoint-ca {}: {e}", ca.display()),
        )
    })?;
    let key = tenant::load_key(tenant_dir)?;
    let client = TenantApiClient::new(endpoint, &pem, std::sync::Arc::new(tenant::KeySigner(key)))
        .map_err(|e| fail(LocalCode::InvalidFlag, e.to_string()))?;
    Ok(ApiClient::Tenant(client))
}
