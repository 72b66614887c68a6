//! The `nitrosync` admin CLI: argument types, an admin-API client, and the commands.
//!
//! Exit codes scripts can rely on: 0 success; 1 the operation ran and reported a failure;
//! 2 usage error; 3 the daemon's admin socket is unreachable; 4 the enclave is unavailable.

pub mod dotenv;
mod flows;
pub mod tenant;

use crate::admin::{ErrorBody, ProbeRequest, Status};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Full};
use nitrosync_shared::control::{Description, ProbeReport, TlsTrust};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::PathBuf;

/// Exit code: the operation reported a failure.
pub const EXIT_FAILED: u8 = 1;
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
    #[arg(long, global = true, env = crate::env::ADMIN_SOCKET, default_value = crate::config::DEFAULT_ADMIN_SOCKET)]
    pub admin_socket: PathBuf,
    /// The tenant directory: tenant key and destination files [default: ~/.config/nitrosync].
    #[arg(long, global = true, env = crate::env::TENANT_DIR)]
    pub tenant_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the daemon, the enclave connection and the relay counters.
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
    /// List the daemon's destinations.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one destination.
    Show {
        /// Destination id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Let the scheduler write this destination again.
    Enable {
        /// Destination id.
        id: String,
    },
    /// Stop writing this destination (bundles are still accepted and stored).
    Disable {
        /// Destination id.
        id: String,
    },
    /// Retry a destination whose last sync failed for good.
    Retry {
        /// Destination id.
        id: String,
    },
    /// Test the connection: placeholder secret, and the check that the role pins saml:sub.
    Test {
        /// Destination id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Apply the delete policy to the secret, then forget the destination.
    Delete {
        /// Destination id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the sync history, newest first.
    History {
        /// Destination id.
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
    #[arg(long)]
    pub id: String,
    /// AWS region.
    #[arg(long)]
    pub region: String,
    /// Secrets Manager secret name.
    #[arg(long)]
    pub secret_name: String,
    /// The IAM role to assume.
    #[arg(long)]
    pub role_arn: String,
    /// The IAM SAML provider the role trusts.
    #[arg(long)]
    pub saml_provider_arn: String,
    /// KMS key for the secret (id, ARN, alias/NAME).
    #[arg(long)]
    pub kms_key_id: Option<String>,
    /// A tag for the secret, KEY=VALUE (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// What deleting the destination does to the secret.
    #[arg(long, value_enum, default_value = "retain")]
    pub delete_policy: DeletePolicyArg,
    /// Recovery window in days for --delete-policy delete (7 to 30).
    #[arg(long)]
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
    /// Expected PCR value, N=HEX (repeatable); also NITROSYNC_EXPECT_PCR0 for PCR0.
    #[arg(long = "pcr", value_name = "N=HEX")]
    pub pcrs: Vec<String>,
    /// Trusted root (PEM or DER) [default: AWS Nitro Enclaves Root G1; in simulator mode the
    /// simulator root the daemon published next to its admin socket].
    #[arg(long, value_name = "FILE")]
    pub root: Option<PathBuf>,
}

/// `nitrosync env …`
#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Parse a .env file, verify the enclave's attestation, seal the variables to its attested
    /// key with the tenant key, and submit the bundle.
    Push {
        /// Destination id (from `nitrosync destination create`).
        #[arg(long)]
        destination: String,
        /// The .env file.
        #[arg(long)]
        file: PathBuf,
        /// Wait for the sync report.
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
        #[arg(long)]
        destination: String,
        /// The .env file.
        #[arg(long)]
        file: PathBuf,
        /// The attestation document to seal to (from `nitrosync enclave attest --out`).
        #[arg(long)]
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
        file: PathBuf,
        /// Wait for the sync report.
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
    /// Terraform (HCL).
    Terraform,
    /// The documents, as `iam apply` sends them.
    Json,
}

/// `nitrosync iam …`
#[derive(Debug, Subcommand)]
pub enum IamCommand {
    /// Print the customer-side IAM for a destination: SAML provider, policy, role.
    Template {
        /// Destination id.
        #[arg(long)]
        destination: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "cloudformation")]
        format: IamFormat,
    },
    /// Create or update the same resources through the IAM API, with the standard AWS
    /// credential chain (environment, profiles, credential_process, SSO). Idempotent.
    Apply {
        /// Destination id.
        #[arg(long)]
        destination: String,
        /// AWS profile to use.
        #[arg(long)]
        profile: Option<String>,
        /// Another IAM endpoint (tests, simulators).
        #[arg(long, value_name = "URL")]
        endpoint_url: Option<String>,
        /// An extra CA certificate (PEM) to trust for --endpoint-url.
        #[arg(long, value_name = "FILE")]
        ca_bundle: Option<PathBuf>,
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
        #[arg(long, value_name = "HEX")]
        nonce: Option<String>,
        /// Write the raw CBOR document to this file instead of printing it in base64.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Print JSON (nonce and base64 document).
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

/// A client for the admin API over its Unix socket.
#[derive(Debug, Clone)]
pub struct AdminClient {
    socket: PathBuf,
}

impl AdminClient {
    /// A client for the socket at `socket`.
    pub fn new(socket: PathBuf) -> Self {
        Self { socket }
    }

    /// The socket path.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// Calls the API and decodes the JSON answer, mapping API errors to exit codes.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, CliError> {
        self.call_with(method, path, body, "application/json").await
    }

    /// Like [`AdminClient::call`] with another request content type.
    pub async fn call_with<T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Result<T, CliError> {
        let stream = tokio::net::UnixStream::connect(&self.socket).await.map_err(|e| {
            fail(
                EXIT_DAEMON_UNREACHABLE,
                format!(
                    "cannot reach nitrosync-parent at {}: {e} (is the daemon running? set --admin-socket or {})",
                    self.socket.display(),
                    crate::env::ADMIN_SOCKET
                ),
            )
        })?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| fail(EXIT_DAEMON_UNREACHABLE, format!("admin API handshake: {e}")))?;
        tokio::spawn(conn);
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, "nitrosync-parent")
            .header(http::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| fail(EXIT_FAILED, e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| fail(EXIT_DAEMON_UNREACHABLE, format!("admin API request: {e}")))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| fail(EXIT_DAEMON_UNREACHABLE, format!("admin API response: {e}")))?
            .to_bytes();
        if !status.is_success() {
            let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(b) => (b.error.code, b.error.message),
                Err(_) => (
                    status.to_string(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                ),
            };
            let exit = if code == "EnclaveUnavailable" {
                EXIT_ENCLAVE_UNAVAILABLE
            } else {
                EXIT_FAILED
            };
            return Err(fail(exit, format!("{code}: {message}")));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| fail(EXIT_FAILED, format!("unreadable admin API answer: {e}")))
    }
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
        .unwrap_or_else(flows::default_tenant_dir);
    let api = AdminClient::new(cli.admin_socket.clone());
    match cli.command {
        Command::Tenant(c) => return flows::tenant(c, &tenant_dir),
        Command::Destination(c) => return flows::destination(c, &api, &tenant_dir).await,
        Command::Env(c) => return flows::env(c, &api, &tenant_dir).await,
        Command::Bundle(c) => return flows::bundle(c, &api, &tenant_dir).await,
        Command::Iam(c) => return flows::iam(c, &api, &tenant_dir).await,
        _ => {}
    }
    match cli.command {
        Command::Tenant(_)
        | Command::Destination(_)
        | Command::Env(_)
        | Command::Bundle(_)
        | Command::Iam(_) => {}
        Command::Status { json } => {
            let s: Status = api.call(http::Method::GET, "/v1/status", None).await?;
            if json {
                print_json(&s)?;
            } else {
                print_status(&s);
            }
            if s.enclave.is_none() {
                return Err(fail(EXIT_ENCLAVE_UNAVAILABLE, "the enclave is not healthy"));
            }
        }
        Command::SamlMetadata => {
            let d: crate::admin::EnclaveDescription = api
                .call(http::Method::GET, "/v1/enclave/describe", None)
                .await?;
            print!("{}", d.description.saml_metadata);
            if !d.description.saml_metadata.ends_with('\n') {
                println!();
            }
        }
        Command::Enclave(EnclaveCommand::Attest { nonce, out, json }) => {
            let body = serde_json::to_vec(&crate::admin::AttestRequest { nonce })
                .map_err(|e| fail(EXIT_FAILED, e.to_string()))?;
            let a: crate::admin::AttestationReply = api
                .call(http::Method::POST, "/v1/enclave/attest", Some(body))
                .await?;
            if let Some(path) = &out {
                use base64::Engine as _;
                let doc = base64::engine::general_purpose::STANDARD
                    .decode(&a.document)
                    .map_err(|e| fail(EXIT_FAILED, format!("the daemon sent bad base64: {e}")))?;
                std::fs::write(path, &doc).map_err(|e| {
                    fail(EXIT_FAILED, format!("cannot write {}: {e}", path.display()))
                })?;
                if !json {
                    eprintln!(
                        "wrote {} bytes to {} (nonce {})",
                        doc.len(),
                        path.display(),
                        a.nonce
                    );
                }
            }
            if json {
                print_json(&a)?;
            } else if out.is_none() {
                println!("{}", a.document);
            }
        }
        Command::Enclave(EnclaveCommand::Describe { json }) => {
            let full: crate::admin::EnclaveDescription = api
                .call(http::Method::GET, "/v1/enclave/describe", None)
                .await?;
            let d: &Description = &full.description;
            if json {
                print_json(&full)?;
            } else {
                let trust = match &d.tls_trust {
                    TlsTrust::WebPki { roots } => format!("web PKI ({roots} roots compiled in)"),
                    TlsTrust::SimulatorCa { sha256 } => {
                        format!("simulator CA only (sha256 {sha256})")
                    }
                };
                println!("enclave version   {}", d.enclave_version);
                println!("protocol version  {}", d.protocol_version);
                println!("mode              {:?}", d.mode);
                println!("TLS trust         {trust}");
                println!("bundle key        {}", crate::admin::to_hex(&d.bundle_key));
                println!("SAML entity id    {}", d.saml_entity_id);
                println!("SAML cert sha256  {}", d.saml_cert_sha256);
                match (&full.attestation, &full.attestation_error) {
                    (Some(a), _) => println!(
                        "attestation       {} bytes (base64), nonce {}",
                        a.document.len(),
                        a.nonce
                    ),
                    (None, Some(e)) => println!("attestation       unavailable: {e}"),
                    (None, None) => {}
                }
            }
        }
        Command::Enclave(EnclaveCommand::Probe { region, json }) => {
            let body = serde_json::to_vec(&ProbeRequest { region })
                .map_err(|e| fail(EXIT_FAILED, e.to_string()))?;
            let r: ProbeReport = api
                .call(http::Method::POST, "/v1/enclave/probe", Some(body))
                .await?;
            if json {
                print_json(&r)?;
            } else {
                print_probe(&r);
            }
            if !r.reached {
                return Err(fail(
                    EXIT_FAILED,
                    format!(
                        "STS at {} was not reached: {}",
                        r.host,
                        r.failure.as_deref().unwrap_or("unknown failure")
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn print_status(s: &Status) {
    println!(
        "parent    nitrosync-parent {} up {} s",
        s.parent.version,
        s.parent.uptime_ms / 1000
    );
    let conn = if s.control.connected {
        "connected"
    } else {
        "not connected"
    };
    println!(
        "control   {} ({conn}, {} connects)",
        s.control.endpoint, s.control.connects
    );
    match (&s.enclave, &s.enclave_error) {
        (Some(h), _) => println!(
            "enclave   healthy, up {} s, {} requests served, {} tunnels opened",
            h.uptime_ms / 1000,
            h.requests_served,
            h.tunnels_opened
        ),
        (None, Some(e)) => println!("enclave   {}: {}", e.code, e.message),
        (None, None) => println!("enclave   unknown"),
    }
    let r = &s.relay.stats;
    println!(
        "relay     {} regions [{}]: {} accepted, {} active, {} connected, {} B up, {} B down",
        s.relay.listen,
        s.relay.regions.join(", "),
        r.accepted,
        r.active,
        r.connected,
        r.bytes_to_upstream,
        r.bytes_to_enclave
    );
    let refused: Vec<String> = r
        .refused
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    if !refused.is_empty() {
        println!("refused   {}", refused.join(" "));
    }
}

fn print_probe(r: &ProbeReport) {
    if let Some(account) = &r.account {
        println!(
            "reached {} over TLS in {} ms: account {account}",
            r.host, r.elapsed_ms
        );
    } else if let Some(code) = &r.aws_error {
        println!(
            "reached {} over TLS in {} ms: AWS answered {code}",
            r.host, r.elapsed_ms
        );
    } else {
        println!(
            "did not reach {}: {}",
            r.host,
            r.failure.as_deref().unwrap_or("unknown failure")
        );
    }
}
