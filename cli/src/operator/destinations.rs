//! `nitrosync destination`: list, show, enable, disable, retry, test, delete and history, through
//! the admin API. (`destination create` writes the tenant's own file: see `tenant`.)

use crate::tenant::load_key;
use crate::{CliError, DestinationCommand, print_json, report};
use nitrosync_api::ApiClient;
use nitrosync_api::records::{DestinationRecord, HistoryRecord};
use nitrosync_shared::bundle::Operation;
use std::path::Path;

fn key_path(tenant_key: &[u8; 32], id: &str) -> String {
    nitrosync_api::paths::destination(tenant_key, id)
}

pub async fn destination(
    c: DestinationCommand,
    api: &ApiClient,
    dir: &Path,
) -> Result<(), CliError> {
    let tenant_key = || load_key(dir).map(|k| k.public());
    match c {
        DestinationCommand::Create(a) => crate::tenant::create(a, dir),
        DestinationCommand::List { json } => {
            let list: Vec<DestinationRecord> = api
                .call(http::Method::GET, nitrosync_api::paths::DESTINATIONS, None)
                .await?;
            if json {
                return print_json(&list);
            }
            println!(
                "{:<24} {:<10} {:<18} {:>8} {:>8}  last error",
                "destination", "enabled", "state", "version", "synced"
            );
            for d in &list {
                println!(
                    "{:<24} {:<10} {:<18} {:>8} {:>8}  {}",
                    d.key.id,
                    d.enabled,
                    d.state.as_str(),
                    d.version,
                    d.synced_version
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "-".into()),
                    d.last_error
                        .as_ref()
                        .map(|e| e.code.to_string())
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        DestinationCommand::Show { id, json } => {
            let d: DestinationRecord = api
                .call(http::Method::GET, &key_path(&tenant_key()?, &id), None)
                .await?;
            if json {
                return print_json(&d);
            }
            println!("destination   {}", d.key.id);
            println!(
                "secret        {} in {}",
                d.config.secret_name, d.config.region
            );
            println!("role          {}", d.config.role_arn);
            println!("provider      {}", d.config.saml_provider_arn);
            println!("SAML subject  {}", d.saml_subject);
            println!("enabled       {}", d.enabled);
            println!(
                "state         {} (bundle version {}, synced {})",
                d.state.as_str(),
                d.version,
                d.synced_version
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "never".into())
            );
            if let Some(e) = &d.last_error {
                println!("last error    {}: {}", e.code, e.message);
            }
            Ok(())
        }
        DestinationCommand::Enable { id } => toggle(api, &tenant_key()?, &id, "enable").await,
        DestinationCommand::Disable { id } => toggle(api, &tenant_key()?, &id, "disable").await,
        DestinationCommand::Retry { id } => toggle(api, &tenant_key()?, &id, "retry").await,
        DestinationCommand::Test {
            id,
            attestation,
            json,
        } => {
            let r = crate::tenant::signed_operation(
                api,
                dir,
                &id,
                Operation::TestConnection,
                &attestation,
            )
            .await?;
            report(&r, json)
        }
        DestinationCommand::Delete {
            id,
            attestation,
            json,
        } => {
            let r = crate::tenant::signed_operation(api, dir, &id, Operation::Delete, &attestation)
                .await?;
            report(&r, json)
        }
        DestinationCommand::History { id, limit, json } => {
            let h: Vec<HistoryRecord> = api
                .call(
                    http::Method::GET,
                    &format!("{}/history?limit={limit}", key_path(&tenant_key()?, &id)),
                    None,
                )
                .await?;
            if json {
                return print_json(&h);
            }
            for r in &h {
                println!(
                    "v{:<14} {:<15?} {:<10?} {:>6} ms  {}",
                    r.version,
                    r.mode,
                    r.outcome,
                    r.finished_at_ms.saturating_sub(r.started_at_ms),
                    r.error
                        .as_ref()
                        .map(|e| format!("{}: {}", e.code, e.message))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}

async fn toggle(
    api: &ApiClient,
    tenant_key: &[u8; 32],
    id: &str,
    action: &str,
) -> Result<(), CliError> {
    if matches!(api, ApiClient::Tenant(_)) {
        return Err(crate::fail(
            crate::EXIT_USAGE,
            format!(
                "destination {action} is the operator's: it uses the admin socket, not --endpoint"
            ),
        ));
    }
    let d: DestinationRecord = api
        .call(
            http::Method::POST,
            &format!("{}/{action}", key_path(tenant_key, id)),
            None,
        )
        .await?;
    println!(
        "{}: enabled {}, state {}",
        d.key.id,
        d.enabled,
        d.state.as_str()
    );
    Ok(())
}
