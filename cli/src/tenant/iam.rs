//! `nitrosync iam`: the customer's IAM documents for a destination, as templates or applied.

use super::load_key;
use crate::{AttestationArgs, CliError, Format, IamCommand, IamFormat, LocalCode, fail};
use nitrosync_api::{ApiClient, EnclaveDescription, to_hex};
use nitrosync_shared::bundle::saml_subject;
use std::path::Path;

use super::key as tenant;

/// An IAM error for the user: the message and every cause under it, on one line. An unknown
/// `--profile` and credentials of another account are usage errors (exit 2): the command
/// named the wrong credentials.
fn iam_error(e: nitrosync_iam::IamError) -> CliError {
    use nitrosync_iam::IamError;
    match &e {
        IamError::UnknownProfile { .. } => fail(
            LocalCode::WrongCredentials,
            format!("--profile: {}", crate::error_chain(&e)),
        ),
        IamError::CaBundle { .. } | IamError::CaCertificate { .. } => fail(
            LocalCode::InvalidFlag,
            format!("--ca-bundle: {}", crate::error_chain(&e)),
        ),
        IamError::WrongAccount { .. } => fail(LocalCode::WrongCredentials, crate::error_chain(&e)),
        _ => fail(LocalCode::AwsError, crate::error_chain(&e)),
    }
}

/// The inputs of the customer's IAM, from a verified enclave only: a fresh attestation with our
/// own nonce, checked against the tenant's trusted images and roots, and SAML metadata whose
/// every signing certificate is the one that document attests. The metadata comes from the
/// daemon, so it is believed only after that binding check.
async fn iam_input(
    api: &ApiClient,
    dir: &Path,
    destination: &str,
    attestation: &AttestationArgs,
) -> Result<nitrosync_iam::IamInput, CliError> {
    let key = load_key(dir)?;
    let d = tenant::load_destination(dir, destination)?;
    let trusted = super::attested(api, attestation, dir).await?;
    let desc: EnclaveDescription = api
        .call(
            http::Method::GET,
            nitrosync_api::paths::ENCLAVE_DESCRIBE,
            None,
        )
        .await?;
    let binding =
        nitrosync_attestation::check_metadata_binding(&desc.description.saml_metadata, &trusted.doc)
            .map_err(|e| {
                fail(
                    LocalCode::AttestationRefused,
                    format!(
                        "the SAML metadata the daemon serves is not bound to the attested enclave ({}: {e}); refusing to register it",
                        e.code()
                    ),
                )
            })?;
    let pcr = |i: u16| trusted.doc.pcrs.get(&i).map(|v| to_hex(v));
    Ok(nitrosync_iam::IamInput {
        subject: saml_subject(&key.public(), &d.id),
        destination: d,
        saml_metadata: desc.description.saml_metadata,
        verified: Some(nitrosync_iam::VerifiedEnclave {
            image: trusted.image,
            root: trusted.root,
            pcr0: pcr(0).unwrap_or_default(),
            pcr1: pcr(1).unwrap_or_default(),
            pcr2: pcr(2).unwrap_or_default(),
            pcr8: pcr(8).filter(|p| p.bytes().any(|b| b != b'0')),
            saml_cert_sha256: to_hex(&binding.cert_sha256),
            module_id: trusted.doc.module_id.clone(),
            attested_at: humantime::format_rfc3339_seconds(trusted.doc.timestamp).to_string(),
        }),
    })
}

pub async fn iam(
    c: IamCommand,
    api: &ApiClient,
    dir: &Path,
    format: Format,
) -> Result<(), CliError> {
    let json = format.is_json();
    match c {
        IamCommand::Template {
            destination,
            format: template,
            attestation,
        } => {
            let input = iam_input(api, dir, &destination, &attestation).await?;
            // Every form is JSON (Terraform in its JSON syntax), whatever --output says.
            let text = match template {
                IamFormat::Cloudformation => {
                    nitrosync_iam::cloudformation(&input).map_err(iam_error)?
                }
                IamFormat::Terraform => nitrosync_iam::terraform(&input).map_err(iam_error)?,
                IamFormat::Json => {
                    return crate::output::json(&nitrosync_iam::json(&input).map_err(iam_error)?);
                }
            };
            crate::output::json_text(&text);
            Ok(())
        }
        IamCommand::Apply {
            destination,
            profile,
            endpoint_url,
            ca_bundle,
            dry_run,
            attestation,
        } => {
            use nitrosync_iam::apply;
            let input = iam_input(api, dir, &destination, &attestation).await?;
            let docs = nitrosync_iam::json(&input).map_err(iam_error)?;
            let partition = nitrosync_shared::names::partition_of(&input.destination.region);
            let clients = apply::connect_all(&apply::Connection {
                region: &input.destination.region,
                profile: profile.as_deref(),
                endpoint_url: endpoint_url.as_deref(),
                ca_bundle: ca_bundle.as_deref(),
            })
            .await
            .map_err(iam_error)?;
            // Whose credentials these are, before anything is read or written in IAM.
            let caller = apply::caller_identity(&clients.sts)
                .await
                .map_err(iam_error)?;
            note!("AWS account {} ({})", caller.account, caller.arn);
            apply::check_account(&caller, &docs, partition).map_err(iam_error)?;
            if dry_run {
                let plan = apply::plan(&clients.iam, &docs, partition)
                    .await
                    .map_err(iam_error)?;
                if json {
                    return crate::output::json(&serde_json::json!({
                        "dry_run": true,
                        "caller": caller,
                        "plan": plan,
                        "verified_enclave": input.verified,
                    }));
                }
                say!("dry run: nothing was changed; apply would");
                say!(
                    "  {} SAML provider {}",
                    plan.saml_provider,
                    plan.saml_provider_arn
                );
                say!("  {} role          {}", plan.role, plan.role_arn);
                say!(
                    "  put    policy        {} (inline, on the role)",
                    plan.policy
                );
                return Ok(());
            }
            let report = apply::apply(&clients.iam, &docs, partition)
                .await
                .map_err(iam_error)?;
            if json {
                let internal = |e: serde_json::Error| fail(LocalCode::Internal, e.to_string());
                let mut v = serde_json::to_value(&report).map_err(internal)?;
                v["caller"] = serde_json::to_value(&caller).map_err(internal)?;
                v["verified_enclave"] = serde_json::to_value(&input.verified).map_err(internal)?;
                return crate::output::json(&v);
            }
            say!(
                "SAML provider {} ({})",
                report.saml_provider_arn,
                report.saml_provider
            );
            say!("role          {} ({})", report.role_arn, report.role);
            say!("policy        {} (inline, written)", report.policy);
            if let Some(v) = &input.verified {
                say!("verified      {}", v.summary());
            }
            Ok(())
        }
    }
}
