//! The `nitrosync` admin CLI: argument types, an admin-API client, and the commands.
//!
//! Exit codes scripts can rely on: 0 success; 1 the operation ran and reported a failure;
//! 2 usage error; 3 the daemon's admin socket is unreachable; 4 the enclave is unavailable.

pub mod dotenv;
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

fn fail(exit: u8, message: impl Into<String>) -> CliError {
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

    /// Calls the API and decodes the JSON answer, mapping API errors to exit codes.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
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
            .header(http::header::CONTENT_TYPE, "application/json")
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

fn print_json<T: Serialize>(v: &T) -> Result<(), CliError> {
    let s = serde_json::to_string_pretty(v).map_err(|e| fail(EXIT_FAILED, e.to_string()))?;
    println!("{s}");
    Ok(())
}

/// Runs one CLI invocation.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let api = AdminClient::new(cli.admin_socket);
    match cli.command {
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
