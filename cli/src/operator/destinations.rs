//! `nitrosync destination`: list, show, enable, disable, retry, test, delete and history, through
//! the admin API. (`destination create` writes the tenant's own file: see `tenant`.)

use crate::tenant::load_key;
use crate::{CliError, DestinationCommand, Format, LocalCode, fail, report};
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
    format: Format,
) -> Result<(), CliError> {
    let tenant_key = || load_key(dir).map(|k| k.public());
    let json = format.is_json();
    match c {
        DestinationCommand::Create(a) => crate::tenant::create(a, dir, Some(api), format).await,
        DestinationCommand::List { all_tenants } => {
            let own = own_tenant(api, dir, all_tenants)?;
            let list: Vec<DestinationRecord> = api
                .call(http::Method::GET, nitrosync_api::paths::DESTINATIONS, None)
                .await?;
            let list: Vec<DestinationRecord> = list
                .into_iter()
                .filter(|d| own.is_none_or(|k| d.key.tenant_key == k))
                .collect();
            if json {
                return crate::output::json(&list);
            }
            print_list(&list);
            Ok(())
        }
        DestinationCommand::Show { id } => {
            let d: DestinationRecord = api
                .call(http::Method::GET, &key_path(&tenant_key()?, &id), None)
                .await
                .map_err(|e| unknown_until_pushed(e, dir, &id, None))?;
            if json {
                return crate::output::json(&d);
            }
            print_show(&d);
            Ok(())
        }
        DestinationCommand::Enable { id } => {
            toggle(api, dir, &tenant_key()?, &id, "enable", format).await
        }
        DestinationCommand::Disable { id } => {
            toggle(api, dir, &tenant_key()?, &id, "disable", format).await
        }
        DestinationCommand::Retry { id } => {
            toggle(api, dir, &tenant_key()?, &id, "retry", format).await
        }
        DestinationCommand::Test { id, attestation } => {
            let r = crate::tenant::signed_operation(
                api,
                dir,
                &id,
                Operation::TestConnection,
                &attestation,
            )
            .await?;
            report(&r, format)
        }
        DestinationCommand::Delete {
            id,
            yes,
            attestation,
        } => {
            if !yes {
                confirm_delete(dir, &id)?;
            }
            let r = crate::tenant::signed_operation(api, dir, &id, Operation::Delete, &attestation)
                .await?;
            report(&r, format)
        }
        DestinationCommand::History { id, limit } => {
            let h: Vec<HistoryRecord> = api
                .call(
                    http::Method::GET,
                    &format!("{}/history?limit={limit}", key_path(&tenant_key()?, &id)),
                    None,
                )
                .await
                .map_err(|e| unknown_until_pushed(e, dir, &id, None))?;
            if json {
                return crate::output::json(&h);
            }
            for r in &h {
                say!("{}", history_line(r));
            }
            Ok(())
        }
    }
}

/// The tenant whose destinations `list` shows: the key in the tenant directory, or `None` for
/// every tenant (`--all-tenants`, or no tenant key: the operator's view, said on stderr).
fn own_tenant(
    api: &ApiClient,
    dir: &Path,
    all_tenants: bool,
) -> Result<Option<[u8; 32]>, CliError> {
    if all_tenants {
        if matches!(api, ApiClient::Tenant(_)) {
            return Err(fail(
                LocalCode::InvalidFlag,
                "--all-tenants is the operator's: it uses the admin socket, not --endpoint (the tenant API lists only your own destinations)",
            ));
        }
        return Ok(None);
    }
    match crate::tenant::key::load(dir) {
        Ok(k) => Ok(Some(k.public())),
        Err(crate::tenant::key::TenantError::NoKey(path)) => {
            note!(
                "no tenant key at {}: listing every tenant's destinations (the operator's view; --all-tenants says so)",
                path.display()
            );
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The short form of a tenant key in tables: its first 8 hex digits.
pub(crate) fn short_tenant(key: &[u8; 32]) -> String {
    hex::encode(&key[..4])
}

/// Unix milliseconds as RFC 3339 in UTC, to the second (`2026-01-02T03:04:05Z`).
pub(crate) fn rfc3339(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The columns of `destination list`.
const LIST_HEADER: [&str; 8] = [
    "ID",
    "TENANT",
    "REGION",
    "STATE",
    "STORED",
    "SYNCED",
    "LAST SYNC",
    "LAST ERROR",
];

fn print_list(list: &[DestinationRecord]) {
    let rows: Vec<[String; 8]> = list
        .iter()
        .map(|d| {
            [
                d.key.id.clone(),
                short_tenant(&d.key.tenant_key),
                d.config.region.clone(),
                d.status().to_owned(),
                d.version.to_string(),
                d.synced_version
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
                d.synced_at_ms.map(rfc3339).unwrap_or_else(|| "-".into()),
                d.last_error
                    .as_ref()
                    .map(|e| e.code.to_string())
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut widths = LIST_HEADER.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 8]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out
    };
    say!("{}", line(LIST_HEADER));
    for row in &rows {
        say!("{}", line(row.each_ref().map(String::as_str)));
    }
}

/// The delete policy as `destination create --delete-policy` names it, and what it does.
fn policy_words(policy: DeletePolicy) -> String {
    match policy {
        DeletePolicy::Retain => "retain (the secret is kept)".to_owned(),
        DeletePolicy::Delete {
            recovery_days: Some(days),
        } => format!("delete (recoverable for {days} days)"),
        DeletePolicy::Delete {
            recovery_days: None,
        } => "force-delete (erased at once, no recovery)".to_owned(),
    }
}

fn print_show(d: &DestinationRecord) {
    let c = &d.config;
    say!("destination   {}", d.key.id);
    say!("tenant        {}", hex::encode(d.key.tenant_key));
    say!("secret        {} in {}", c.secret_name, c.region);
    say!("role          {}", c.role_arn);
    say!("provider      {}", c.saml_provider_arn);
    say!("SAML subject  {}", d.saml_subject);
    say!(
        "KMS key       {}",
        c.kms_key_id
            .as_deref()
            .unwrap_or("aws/secretsmanager (the account's default)")
    );
    if c.tags.is_empty() {
        say!("tags          none");
    } else {
        let tags: Vec<String> = c.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        say!("tags          {}", tags.join(", "));
    }
    say!("delete policy {}", policy_words(c.delete_policy));
    say!("enabled       {}", d.enabled);
    say!(
        "state         {} (bundle version {}, synced {})",
        d.state.as_str(),
        d.version,
        d.synced_version
            .map(|v| v.to_string())
            .unwrap_or_else(|| "never".into())
    );
    if let Some(at) = d.synced_at_ms {
        say!("last sync     {}", rfc3339(at));
    }
    if let Some(e) = &d.last_error {
        say!(
            "last error    {} at {}: {}",
            e.code,
            rfc3339(e.at_ms),
            e.message
        );
    }
}

/// One line of `destination history`: when the attempt finished, version, mode, outcome,
/// duration and error.
fn history_line(r: &HistoryRecord) -> String {
    format!(
        "{}  v{:<14} {:<15} {:<10} {:>6} ms  {}",
        rfc3339(r.finished_at_ms),
        r.version,
        format!("{:?}", r.mode),
        format!("{:?}", r.outcome),
        r.finished_at_ms.saturating_sub(r.started_at_ms),
        r.error
            .as_ref()
            .map(|e| format!("{}: {}", e.code, e.message))
            .unwrap_or_default()
    )
    .trim_end()
    .to_owned()
}

/// A destination the daemon does not know yet: it learns one from its first bundle. Says so,
/// and the order to follow, when the tenant has the destination's file.
///
/// `enable` says more: a destination starts enabled when its first bundle arrives, so there is
/// nothing to enable before it; push, and it is synced at once.
fn unknown_until_pushed(
    e: nitrosync_api::ClientError,
    dir: &Path,
    id: &str,
    action: Option<&str>,
) -> CliError {
    let unknown =
        matches!(&e, nitrosync_api::ClientError::Api { code, .. } if code == "UnknownDestination");
    let mut err = CliError::from(e);
    if !unknown || crate::tenant::key::load_destination(dir, id).is_err() {
        return err;
    }
    err.message = match action {
        Some("enable") => format!(
            "{}: nothing to enable yet: the daemon learns destination {id} from its first bundle, and a destination starts enabled then; push it (`nitrosync env push --destination {id}`, after `nitrosync destination test {id}` if you like) and it is synced at once",
            err.message
        ),
        Some(action) => format!(
            "{}: nothing to {action} yet: the daemon learns destination {id} from its first bundle (`nitrosync env push --destination {id}`; `nitrosync destination test {id}` works before it)",
            err.message
        ),
        None => format!(
            "{}: the daemon learns a destination from its first bundle; `nitrosync destination test {id}` works before it, then `nitrosync env push --destination {id}` sends the first",
            err.message
        ),
    };
    err
}

async fn toggle(
    api: &ApiClient,
    dir: &Path,
    tenant_key: &[u8; 32],
    id: &str,
    action: &str,
    format: Format,
) -> Result<(), CliError> {
    if matches!(api, ApiClient::Tenant(_)) {
        return Err(crate::fail(
            LocalCode::InvalidFlag,
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
        .await
        .map_err(|e| unknown_until_pushed(e, dir, id, Some(action)))?;
    if format.is_json() {
        return crate::output::json(&d);
    }
    say!(
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
    let policy = crate::tenant::key::load_destination(dir, id)?.delete_policy;
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
            LocalCode::ConfirmationRequired,
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
        .map_err(|e| fail(LocalCode::Internal, format!("cannot read the answer: {e}")))?;
    if line.trim() != id {
        return Err(fail(
            LocalCode::NotConfirmed,
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
    fn times_are_rfc3339_utc_and_tenants_are_short() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_999), "2023-11-14T22:13:20Z");
        assert_eq!(short_tenant(&[0xab; 32]), "abababab");
    }

    #[test]
    fn show_names_the_policy_as_the_create_flag_does() {
        assert!(policy_words(DeletePolicy::Retain).starts_with("retain "));
        assert!(
            policy_words(DeletePolicy::Delete {
                recovery_days: Some(7)
            })
            .starts_with("delete (recoverable for 7 days")
        );
        assert!(
            policy_words(DeletePolicy::Delete {
                recovery_days: None
            })
            .starts_with("force-delete ")
        );
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
