//! `nitrosync destination`: list, show, enable, disable, retry, test, delete and history, through
//! the admin API. (`destination create` writes the tenant's own file: see `tenant`.)

use crate::tenant::load_key;
use crate::{CliError, DestinationCommand, fail, print_json, report};
use nitrosync_api::ApiClient;
use nitrosync_api::records::{DestinationRecord, HistoryRecord};
use nitrosync_shared::bundle::{DeletePolicy, Operation};
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
            yes,
            attestation,
            json,
        } => {
            if !yes {
                confirm_delete(dir, &id)?;
            }
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

/// What deleting destination `id` does to its secret, in words.
fn delete_effect(policy: DeletePolicy) -> String {
    match policy {
        DeletePolicy::Retain => "the secret is kept (delete policy retain)".to_owned(),
        DeletePolicy::Delete {
            recovery_days: Some(days),
        } => format!("the secret is deleted, recoverable for {days} days"),
        DeletePolicy::Delete {
            recovery_days: None,
        } => "the secret is ERASED at once, with no recovery (force delete)".to_owned(),
    }
}

/// Asks the person at the terminal to type the destination's id. Off a terminal there is nobody
/// to ask: the command refuses unless `--yes` was given.
fn confirm_delete(dir: &Path, id: &str) -> Result<(), CliError> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    let policy = crate::tenant::key::load_destination(dir, id)
        .map_err(crate::tenant::user)?
        .delete_policy;
    let effect = delete_effect(policy);
    if !std::io::stdin().is_terminal() {
        return Err(fail(
            crate::EXIT_USAGE,
            format!(
                "destination delete {id}: {effect}; not on a terminal, so nobody can confirm: pass --yes"
            ),
        ));
    }
    eprint!("Deleting destination {id}: {effect}.\nType the destination id to confirm: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| fail(crate::EXIT_FAILED, format!("cannot read the answer: {e}")))?;
    if line.trim() != id {
        return Err(fail(
            crate::EXIT_FAILED,
            format!("not confirmed: destination {id} was not deleted"),
        ));
    }
    Ok(())
}
