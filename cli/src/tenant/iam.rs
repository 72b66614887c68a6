//! `nitrosync iam`: the customer's IAM documents for a destination, as templates or applied.

use super::{load_key, user};
use crate::{CliError, IamCommand, IamFormat, print_json};
use nitrosync_api::{ApiClient, EnclaveDescription};
use nitrosync_shared::bundle::saml_subject;
use std::path::Path;

use super::key as tenant;

/// An IAM error for the user: the message and every cause under it, on one line.
fn iam_error(e: nitrosync_iam::IamError) -> CliError {
    user(crate::error_chain(&e))
}

async fn iam_input(
    api: &ApiClient,
    dir: &Path,
    destination: &str,
) -> Result<nitrosync_iam::IamInput, CliError> {
    let key = load_key(dir)?;
    let d = tenant::load_destination(dir, destination).map_err(user)?;
    let desc: EnclaveDescription = api
        .call(
            http::Method::GET,
            nitrosync_api::paths::ENCLAVE_DESCRIBE,
            None,
        )
        .await?;
    Ok(nitrosync_iam::IamInput {
        subject: saml_subject(&key.public(), &d.id),
        destination: d,
        saml_metadata: desc.description.saml_metadata,
    })
}

pub async fn iam(c: IamCommand, api: &ApiClient, dir: &Path) -> Result<(), CliError> {
    match c {
        IamCommand::Template {
            destination,
            format,
        } => {
            let input = iam_input(api, dir, &destination).await?;
            let text = match format {
                IamFormat::Cloudformation => {
                    nitrosync_iam::cloudformation(&input).map_err(iam_error)?
                }
                IamFormat::Terraform => nitrosync_iam::terraform(&input).map_err(iam_error)?,
                IamFormat::Json => {
                    serde_json::to_string_pretty(&nitrosync_iam::json(&input).map_err(iam_error)?)
                        .map_err(user)?
                }
            };
            println!("{text}");
            Ok(())
        }
        IamCommand::Apply {
            destination,
            profile,
            endpoint_url,
            ca_bundle,
            json,
        } => {
            let input = iam_input(api, dir, &destination).await?;
            let docs = nitrosync_iam::json(&input).map_err(iam_error)?;
            let partition = nitrosync_shared::names::partition_of(&input.destination.region);
            let client = nitrosync_iam::apply::connect(&nitrosync_iam::apply::Connection {
                region: &input.destination.region,
                profile: profile.as_deref(),
                endpoint_url: endpoint_url.as_deref(),
                ca_bundle: ca_bundle.as_deref(),
            })
            .await
            .map_err(iam_error)?;
            let report = nitrosync_iam::apply::apply(&client, &docs, partition)
                .await
                .map_err(iam_error)?;
            if json {
                return print_json(&report);
            }
            println!(
                "SAML provider {} ({})",
                report.saml_provider_arn, report.saml_provider
            );
            println!("role          {} ({})", report.role_arn, report.role);
            println!("policy        {} (inline, written)", report.policy);
            Ok(())
        }
    }
}
