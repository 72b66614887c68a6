//! The operator's commands: status, the enclave's description, attestation and probe, and the
//! SAML metadata. Destination management is in [`destinations`], the enclave's KMS key in
//! [`kms`].

pub mod destinations;
pub mod kms;
mod watch;

use crate::{
    CliError, Command, EXIT_ENCLAVE_UNAVAILABLE, EXIT_FAILED, EnclaveCommand, Format, LocalCode,
    fail,
};
use nitrosync_api::{AdminClient, ProbeRequest, Status};
use nitrosync_shared::control::{Description, ProbeReport, TlsTrust};

/// Runs an operator command (the tenant's commands are dispatched before this).
pub async fn run(command: Command, api: &AdminClient, format: Format) -> Result<(), CliError> {
    let json = format.is_json();
    match command {
        Command::Tenant(_)
        | Command::Destination(_)
        | Command::Env(_)
        | Command::Bundle(_)
        | Command::Iam(_)
        | Command::Trust(_)
        | Command::Kms(_) => {}
        Command::Status(args) if args.watch => return watch::watch(api, &args, format).await,
        Command::Status(_) => {
            let s: Status = api
                .call(http::Method::GET, nitrosync_api::paths::STATUS, None)
                .await?;
            if json {
                crate::output::json(&s)?;
            } else {
                for line in status_lines(&s) {
                    say!("{line}");
                }
            }
            status_verdict(&s)?;
        }
        Command::SamlMetadata => {
            let d: nitrosync_api::EnclaveDescription = api
                .call(
                    http::Method::GET,
                    nitrosync_api::paths::ENCLAVE_DESCRIBE,
                    None,
                )
                .await?;
            if json {
                crate::output::json(
                    &serde_json::json!({"saml_metadata": d.description.saml_metadata}),
                )?;
            } else {
                crate::output::document(&d.description.saml_metadata);
            }
        }
        Command::Enclave(EnclaveCommand::Attest { nonce, out }) => {
            let body = serde_json::to_vec(&nitrosync_api::AttestRequest { nonce })
                .map_err(|e| fail(LocalCode::Internal, e.to_string()))?;
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
                    .map_err(|e| {
                        fail(
                            LocalCode::BadAnswer,
                            format!("the daemon sent bad base64: {e}"),
                        )
                    })?;
                std::fs::write(path, &doc).map_err(|e| {
                    fail(
                        LocalCode::LocalFile,
                        format!("cannot write {}: {e}", path.display()),
                    )
                })?;
                if !json {
                    note!(
                        "wrote {} bytes to {} (nonce {})",
                        doc.len(),
                        path.display(),
                        a.nonce
                    );
                }
            }
            if json {
                crate::output::json(&a)?;
            } else if out.is_none() {
                say!("{}", a.document);
            }
        }
        Command::Enclave(EnclaveCommand::Describe) => {
            let full: nitrosync_api::EnclaveDescription = api
                .call(
                    http::Method::GET,
                    nitrosync_api::paths::ENCLAVE_DESCRIBE,
                    None,
                )
                .await?;
            let d: &Description = &full.description;
            if json {
                crate::output::json(&full)?;
            } else {
                let trust = match &d.tls_trust {
                    TlsTrust::WebPki { roots } => format!("web PKI ({roots} roots compiled in)"),
                    TlsTrust::SimulatorCa { sha256 } => {
                        format!("simulator CA only (sha256 {sha256})")
                    }
                };
                say!("enclave version   {}", d.enclave_version);
                say!("protocol version  {}", d.protocol_version);
                say!("mode              {:?}", d.mode);
                say!("TLS trust         {trust}");
                say!("bundle key        {}", nitrosync_api::to_hex(&d.bundle_key));
                say!("SAML entity id    {}", d.saml_entity_id);
                say!("SAML cert sha256  {}", d.saml_cert_sha256);
                use nitrosync_shared::binding::IdentitySource;
                match &d.identity {
                    Some(IdentitySource::KmsSealed { key_arn, images }) => {
                        say!("identity          sealed under {key_arn}");
                        say!("  released to     {}", images.join(", "));
                    }
                    Some(IdentitySource::Ephemeral) => {
                        say!("identity          ephemeral (keys die with the process)")
                    }
                    None => {}
                }
                if let Some(r) = &d.rotation {
                    say!("  generation      {}", r.generation);
                    if let Some(next) = &r.next_saml_cert_sha256 {
                        say!("  next SAML cert  {next} (rotation under way)");
                    }
                    if let Some(until) = r.previous_bundle_key_until_ms {
                        say!("  old bundle key  opens bundles until {until} (Unix ms)");
                    }
                }
                match (&full.attestation, &full.attestation_error) {
                    (Some(a), _) => say!(
                        "attestation       {} bytes (base64), nonce {}",
                        a.document.len(),
                        a.nonce
                    ),
                    (None, Some(e)) => say!("attestation       unavailable: {e}"),
                    (None, None) => {}
                }
            }
        }
        Command::Enclave(EnclaveCommand::Rotate {
            step,
            bundle_key_grace_days,
        }) => {
            let step = match step {
                crate::RotateStep::Begin => "begin",
                crate::RotateStep::Finish => "finish",
            };
            let body = serde_json::to_vec(&nitrosync_api::RotateRequest {
                step: step.to_owned(),
                bundle_key_grace_s: Some(bundle_key_grace_days * 24 * 3600),
            })
            .map_err(|e| fail(LocalCode::Internal, e.to_string()))?;
            let r: nitrosync_api::RotateReply = api
                .call(
                    http::Method::POST,
                    nitrosync_api::paths::ENCLAVE_ROTATE,
                    Some(body),
                )
                .await?;
            if json {
                crate::output::json(&r)?;
            } else {
                say!(
                    "rotation step {}: identity generation {} stored",
                    r.step,
                    r.generation
                );
                say!("  signing certificate  sha256 {}", r.saml_cert_sha256);
                if let Some(next) = &r.next_saml_cert_sha256 {
                    say!("  next certificate     sha256 {next}");
                    say!(
                        "next: customers run `nitrosync iam apply` (the metadata lists both certificates), then `nitrosync enclave rotate finish`"
                    );
                }
                if let Some(until) = r.previous_bundle_key_until_ms {
                    say!("  previous bundle key  opens bundles until {until} (Unix ms)");
                    say!(
                        "next: tenants seal new bundles to the new attested key (any `env push`); customers may run `nitrosync iam apply` again to drop the old certificate"
                    );
                }
            }
        }
        Command::Enclave(EnclaveCommand::Probe { region }) => {
            let region = crate::region_or_default(region).await?;
            let body = serde_json::to_vec(&ProbeRequest { region })
                .map_err(|e| fail(LocalCode::Internal, e.to_string()))?;
            let r: ProbeReport = api
                .call(
                    http::Method::POST,
                    nitrosync_api::paths::ENCLAVE_PROBE,
                    Some(body),
                )
                .await?;
            if json {
                crate::output::json(&r)?;
            } else {
                print_probe(&r);
            }
            if !r.reached {
                return Err(fail(
                    LocalCode::ProbeFailed,
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

/// What `status` shows: an error when the enclave is not healthy (exit 4) or the daemon
/// cannot read its store.
fn status_verdict(s: &Status) -> Result<(), CliError> {
    if s.enclave.is_none() {
        return Err(CliError::reported(
            "EnclaveUnavailable",
            "the enclave is not healthy",
            EXIT_ENCLAVE_UNAVAILABLE,
        ));
    }
    if let Some(e) = &s.store_error {
        return Err(CliError::reported(
            "ParentError",
            format!("the daemon cannot read its store: {e}"),
            EXIT_FAILED,
        ));
    }
    Ok(())
}

/// The text of `status`, one string per line (printed escaped: every field but the counters
/// comes from the daemon).
fn status_lines(s: &Status) -> Vec<String> {
    let mut out = Vec::new();
    out.push(format!(
        "parent    nitrosync-parent {} up {} s",
        s.parent.version,
        s.parent.uptime_ms / 1000
    ));
    let conn = if s.control.connected {
        "connected"
    } else {
        "not connected"
    };
    out.push(format!(
        "control   {} ({conn}, {} connects)",
        s.control.endpoint, s.control.connects
    ));
    if let Some(e) = &s.control.last_error {
        out.push(format!(
            "          last connection error: {}",
            first_line(e)
        ));
    }
    match (&s.enclave, &s.enclave_error) {
        (Some(h), _) => out.push(format!(
            "enclave   healthy, up {} s, {} requests served, {} tunnels opened",
            h.uptime_ms / 1000,
            h.requests_served,
            h.tunnels_opened
        )),
        (None, Some(e)) => out.push(format!("enclave   {}: {}", e.code, e.message)),
        (None, None) => out.push("enclave   unknown".to_owned()),
    }
    let r = &s.relay.stats;
    out.push(format!(
        "relay     {} regions [{}]: {} accepted, {} active, {} connected, {} B up, {} B down",
        s.relay.listen,
        s.relay.regions.join(", "),
        r.accepted,
        r.active,
        r.connected,
        r.bytes_to_upstream,
        r.bytes_to_enclave
    ));
    let refused: Vec<String> = r
        .refused
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    if !refused.is_empty() {
        out.push(format!("refused   {}", refused.join(" ")));
    }
    match (&s.destinations, &s.store_error) {
        (Some(counts), _) => {
            let by_state: Vec<String> = counts.iter().map(|(k, n)| format!("{k}={n}")).collect();
            out.push(format!("destinations {}", by_state.join(" ")));
        }
        (None, Some(e)) => out.push(format!("destinations unknown: the store failed: {e}")),
        (None, None) => out.push("destinations unknown".to_owned()),
    }
    let syncs: Vec<String> = s.syncs.iter().map(|(k, n)| format!("{k}={n}")).collect();
    out.push(format!("syncs     {}", syncs.join(" ")));
    if s.recent_errors.is_empty() {
        out.push("recent errors: none".to_owned());
    } else {
        out.push("recent errors (newest first):".to_owned());
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
        out.push(format!(
            "  {at}  {}  {}{tenant}  {}",
            e.code,
            e.destination,
            first_line(&e.message)
        ));
    }
    out
}

/// The first line of `text`, for one-line listings.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

fn print_probe(r: &ProbeReport) {
    if let Some(account) = &r.account {
        say!(
            "reached {} over TLS in {} ms: account {account}",
            r.host,
            r.elapsed_ms
        );
    } else if let Some(code) = &r.aws_error {
        say!(
            "reached {} over TLS in {} ms: AWS answered {code}",
            r.host,
            r.elapsed_ms
        );
    } else {
        say!(
            "did not reach {}: {}",
            r.host,
            r.failure.as_deref().unwrap_or("unknown failure")
        );
    }
}
