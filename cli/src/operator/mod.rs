//! The operator's commands: status, the enclave's description, attestation and probe, and the
//! SAML metadata. Destination management is in [`destinations`], the enclave's KMS key in
//! [`kms`].

pub mod destinations;
pub mod kms;

use crate::{
    CliError, Command, EXIT_ENCLAVE_UNAVAILABLE, EXIT_FAILED, EnclaveCommand, fail, print_json,
};
use nitrosync_api::{AdminClient, ProbeRequest, Status};
use nitrosync_shared::control::{Description, ProbeReport, TlsTrust};

/// Runs an operator command (the tenant's commands are dispatched before this).
pub async fn run(command: Command, api: &AdminClient) -> Result<(), CliError> {
    match command {
        Command::Tenant(_)
        | Command::Destination(_)
        | Command::Env(_)
        | Command::Bundle(_)
        | Command::Iam(_)
        | Command::Trust(_)
        | Command::Kms(_) => {}
        Command::Status { json } => {
            let s: Status = api
                .call(http::Method::GET, nitrosync_api::paths::STATUS, None)
                .await?;
            if json {
                print_json(&s)?;
            } else {
                print_status(&s);
            }
            if s.enclave.is_none() {
                return Err(fail(EXIT_ENCLAVE_UNAVAILABLE, "the enclave is not healthy"));
            }
            if let Some(e) = &s.store_error {
                return Err(fail(
                    EXIT_FAILED,
                    format!("the daemon cannot read its store: {e}"),
                ));
            }
        }
        Command::SamlMetadata => {
            let d: nitrosync_api::EnclaveDescription = api
                .call(
                    http::Method::GET,
                    nitrosync_api::paths::ENCLAVE_DESCRIBE,
                    None,
                )
                .await?;
            print!("{}", d.description.saml_metadata);
            if !d.description.saml_metadata.ends_with('\n') {
                println!();
            }
        }
        Command::Enclave(EnclaveCommand::Attest { nonce, out, json }) => {
            let body = serde_json::to_vec(&nitrosync_api::AttestRequest { nonce })
                .map_err(|e| fail(EXIT_FAILED, e.to_string()))?;
            let a: nitrosync_api::AttestationReply = api
                .call(
                    http::Method::POST,
                    nitrosync_api::paths::ENCLAVE_ATTEST,
                    Some(body),
                )
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
            let full: nitrosync_api::EnclaveDescription = api
                .call(
                    http::Method::GET,
                    nitrosync_api::paths::ENCLAVE_DESCRIBE,
                    None,
                )
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
                println!("bundle key        {}", nitrosync_api::to_hex(&d.bundle_key));
                println!("SAML entity id    {}", d.saml_entity_id);
                println!("SAML cert sha256  {}", d.saml_cert_sha256);
                use nitrosync_shared::binding::IdentitySource;
                match &d.identity {
                    Some(IdentitySource::KmsSealed { key_arn, images }) => {
                        println!("identity          sealed under {key_arn}");
                        println!("  released to     {}", images.join(", "));
                    }
                    Some(IdentitySource::Ephemeral) => {
                        println!("identity          ephemeral (keys die with the process)")
                    }
                    None => {}
                }
                if let Some(r) = &d.rotation {
                    println!("  generation      {}", r.generation);
                    if let Some(next) = &r.next_saml_cert_sha256 {
                        println!("  next SAML cert  {next} (rotation under way)");
                    }
                    if let Some(until) = r.previous_bundle_key_until_ms {
                        println!("  old bundle key  opens bundles until {until} (Unix ms)");
                    }
                }
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
        Command::Enclave(EnclaveCommand::Rotate {
            step,
            bundle_key_grace_days,
            json,
        }) => {
            let step = match step {
                crate::RotateStep::Begin => "begin",
                crate::RotateStep::Finish => "finish",
            };
            let body = serde_json::to_vec(&nitrosync_api::RotateRequest {
                step: step.to_owned(),
                bundle_key_grace_s: Some(bundle_key_grace_days * 24 * 3600),
            })
            .map_err(|e| fail(EXIT_FAILED, e.to_string()))?;
            let r: nitrosync_api::RotateReply = api
                .call(
                    http::Method::POST,
                    nitrosync_api::paths::ENCLAVE_ROTATE,
                    Some(body),
                )
                .await?;
            if json {
                print_json(&r)?;
            } else {
                println!(
                    "rotation step {}: identity generation {} stored",
                    r.step, r.generation
                );
                println!("  signing certificate  sha256 {}", r.saml_cert_sha256);
                if let Some(next) = &r.next_saml_cert_sha256 {
                    println!("  next certificate     sha256 {next}");
                    println!(
                        "next: customers run `nitrosync iam apply` (the metadata lists both certificates), then `nitrosync enclave rotate finish`"
                    );
                }
                if let Some(until) = r.previous_bundle_key_until_ms {
                    println!("  previous bundle key  opens bundles until {until} (Unix ms)");
                    println!(
                        "next: tenants seal new bundles to the new attested key (any `env push`); customers may run `nitrosync iam apply` again to drop the old certificate"
                    );
                }
            }
        }
        Command::Enclave(EnclaveCommand::Probe { region, json }) => {
            crate::region_flag(&region)?;
            let body = serde_json::to_vec(&ProbeRequest { region })
                .map_err(|e| fail(EXIT_FAILED, e.to_string()))?;
            let r: ProbeReport = api
                .call(
                    http::Method::POST,
                    nitrosync_api::paths::ENCLAVE_PROBE,
                    Some(body),
                )
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
    if let Some(e) = &s.control.last_error {
        println!("          last connection error: {}", first_line(e));
    }
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
    match (&s.destinations, &s.store_error) {
        (Some(counts), _) => {
            let by_state: Vec<String> = counts.iter().map(|(k, n)| format!("{k}={n}")).collect();
            println!("destinations {}", by_state.join(" "));
        }
        (None, Some(e)) => println!("destinations unknown: the store failed: {e}"),
        (None, None) => println!("destinations unknown"),
    }
    let syncs: Vec<String> = s.syncs.iter().map(|(k, n)| format!("{k}={n}")).collect();
    println!("syncs     {}", syncs.join(" "));
    if s.recent_errors.is_empty() {
        println!("recent errors: none");
    } else {
        println!("recent errors (newest first):");
    }
    for e in &s.recent_errors {
        let tenant = match e.tenant.get(..8) {
            Some(short) => format!(" (tenant {short})"),
            None => String::new(),
        };
        let at = if e.at_ms == 0 {
            "-".to_owned()
        } else {
            destinations::rfc3339(e.at_ms)
        };
        println!(
            "  {at}  {}  {}{tenant}  {}",
            e.code,
            e.destination,
            first_line(&e.message)
        );
    }
}

/// The first line of `text`, for one-line listings.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
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
