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
        DestinationCommand::Create(a) => crate::tenant::create(a, dir, Some(api)).await,
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
    use std::io::IsTerminal as _;
    let policy = crate::tenant::key::load_destination(dir, id)
        .map_err(crate::tenant::user)?
        .delete_policy;
    let stdin = std::io::stdin();
    let on_terminal = stdin.is_terminal();
    confirm(
        id,
        &delete_effect(policy),
        on_terminal,
        &mut stdin.lock(),
        &mut std::io::stderr(),
    )
}

/// The confirmation itself, with the terminal passed in: refuses at once (exit 2, naming
/// `--yes`) when not `on_terminal`; else shows `effect` on `prompt` and goes on only when the
/// line read from `answer` is the destination's id.
fn confirm(
    id: &str,
    effect: &str,
    on_terminal: bool,
    answer: &mut impl std::io::BufRead,
    prompt: &mut impl std::io::Write,
) -> Result<(), CliError> {
    if !on_terminal {
        return Err(fail(
            crate::EXIT_USAGE,
            format!(
                "destination delete {id}: {effect}; standard input is not a terminal, so nobody can confirm: pass --yes"
            ),
        ));
    }
    let _ = write!(
        prompt,
        "Deleting destination {id}: {effect}.\nType the destination id to confirm: "
    );
    let _ = prompt.flush();
    let mut line = String::new();
    answer
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(on_terminal: bool, typed: &str) -> (Result<(), CliError>, String) {
        let mut prompt = Vec::new();
        let r = confirm(
            "app",
            &delete_effect(DeletePolicy::Delete {
                recovery_days: None,
            }),
            on_terminal,
            &mut typed.as_bytes(),
            &mut prompt,
        );
        (r, String::from_utf8(prompt).unwrap())
    }

    #[test]
    fn off_a_terminal_it_refuses_without_asking_and_names_yes() {
        let (r, prompt) = ask(false, "app\n");
        let e = r.unwrap_err();
        assert_eq!(e.exit, crate::EXIT_USAGE);
        assert!(e.message.contains("--yes"), "{}", e.message);
        assert!(e.message.contains("ERASED"), "{}", e.message);
        assert!(prompt.is_empty(), "nothing is asked: {prompt:?}");
    }

    #[test]
    fn on_a_terminal_it_says_what_happens_and_goes_on_only_for_the_id() {
        let (r, prompt) = ask(true, "app\n");
        r.unwrap();
        assert!(prompt.contains("ERASED at once"), "{prompt}");
        assert!(prompt.contains("Type the destination id"), "{prompt}");
        for typed in ["y\n", "yes\n", "\n", "", "ap\n", "app2\n"] {
            let e = ask(true, typed).0.unwrap_err();
            assert_eq!(e.exit, crate::EXIT_FAILED, "{typed:?}");
            assert!(
                e.message.contains("not deleted"),
                "{typed:?}: {}",
                e.message
            );
        }
    }

    #[test]
    fn each_policy_is_said_in_words() {
        assert!(delete_effect(DeletePolicy::Retain).contains("kept"));
        assert!(
            delete_effect(DeletePolicy::Delete {
                recovery_days: Some(7)
            })
            .contains("recoverable for 7 days")
        );
    }
}
