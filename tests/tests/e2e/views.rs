//! The destination views and `status` tell the truth (issue 13): `list` has fixed columns and
//! shows only the caller's tenant unless `--all-tenants`; `history` dates each attempt;
//! `show` has the delete policy, tags and KMS key; `test` works before the first push; `status`
//! in text shows the recent errors `--json` shows; and no `--json` output spells a key or a hash
//! as an array of integers.

use crate::cli::Env;
use nitrosync_tests::{CliOutput, cli_as, wait_for};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A second tenant on the same stack: its own directory and key, trusting the same enclave.
struct Other {
    admin: PathBuf,
    dir: PathBuf,
}

impl Other {
    async fn on(e: &Env, name: &str) -> Other {
        let o = Other {
            admin: e.stack.sockets.admin.clone(),
            dir: e.dir.path().join(name),
        };
        o.ok(&["tenant", "init"]).await;
        nitrosync_tests::trust_simulator(&o.admin, &o.dir, e.dir.path())
            .await
            .unwrap();
        o
    }

    async fn ok(&self, args: &[&str]) -> CliOutput {
        let out = cli_as(&self.admin, Some(&self.dir), args).await.unwrap();
        assert_eq!(out.code, 0, "nitrosync {args:?}: {out:?}");
        out
    }
}

fn json(out: &CliOutput) -> Value {
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.stdout));
    no_byte_arrays(&v, "$");
    v
}

/// Fails on any array of 16 or more integers in 0..=255: a key or a hash spelled as bytes.
fn no_byte_arrays(v: &Value, at: &str) {
    match v {
        Value::Array(items) => {
            let bytes =
                items.len() >= 16 && items.iter().all(|i| i.as_u64().is_some_and(|n| n <= 255));
            assert!(!bytes, "{at} is an array of {} integers: {v}", items.len());
            for (i, item) in items.iter().enumerate() {
                no_byte_arrays(item, &format!("{at}[{i}]"));
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                no_byte_arrays(item, &format!("{at}.{k}"));
            }
        }
        _ => {}
    }
}

fn is_hex(v: &Value, len: usize) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Unix milliseconds as RFC 3339 UTC to the second, computed here independently of the CLI
/// (days to civil date, as in Howard Hinnant's `civil_from_days`).
fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (i64::try_from(secs / 86_400).unwrap(), secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn ids_and_tenants(list: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["key"]["id"].as_str().unwrap().to_owned(),
                d["key"]["tenant_key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

fn public_key(tenant_dir: &Path) -> String {
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(tenant_dir.join("tenant.key")).unwrap())
            .unwrap();
    file["public"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn list_show_history_test_and_status_tell_the_truth_per_tenant() {
    let e = Env::start().await;
    let mine = public_key(&e.tenant);

    // Before the first push the daemon does not know the destination, yet the connection test
    // (the model's first step) runs: it needs only the signed configuration.
    e.destination(
        "app",
        "app/env",
        &[
            "--tag",
            "team=blue",
            "--tag",
            "cost-center=42",
            "--delete-policy",
            "delete",
            "--recovery-days",
            "7",
        ],
    )
    .await;
    let tested = json(&e.ok(&["destination", "test", "app", "--json"]).await);
    assert_eq!(tested["outcome"], "Tested", "{tested}");
    let unknown = e.run(&["destination", "show", "app"]).await;
    assert_eq!(unknown.code, 1, "{unknown:?}");
    for want in ["UnknownDestination", "destination test app", "env push"] {
        assert!(
            unknown.stderr.contains(want),
            "{want} in {}",
            unknown.stderr
        );
    }
    let enable = e.run(&["destination", "enable", "app"]).await;
    assert_eq!(enable.code, 1, "{enable:?}");
    assert!(enable.stderr.contains("env push"), "{}", enable.stderr);

    let f = e.env_file("app.env", "A=1\n");
    e.ok(&[
        "env",
        "push",
        "--destination",
        "app",
        "--file",
        f.to_str().unwrap(),
        "--wait",
    ])
    .await;
    e.ok(&["destination", "test", "app"]).await;

    // A second tenant with a destination of the same id, in a region the relay refuses: its
    // sync fails at once (RelayRefused), a recent error for `status`.
    let other = Other::on(&e, "tenant-b").await;
    let theirs = public_key(&other.dir);
    assert_ne!(mine, theirs);
    other
        .ok(&[
            "destination",
            "create",
            "--id",
            "app",
            "--region",
            "eu-west-1",
            "--secret-name",
            "b/env",
            "--role-arn",
            "arn:aws:iam::123456789012:role/nitrosync-b",
            "--saml-provider-arn",
            "arn:aws:iam::123456789012:saml-provider/nitrosync-b",
            "--kms-key-id",
            "alias/tenant-b",
        ])
        .await;
    let fb = e.env_file("b.env", "B=1\n");
    other
        .ok(&[
            "env",
            "push",
            "--destination",
            "app",
            "--file",
            fb.to_str().unwrap(),
        ])
        .await;
    wait_for(
        "the other tenant's failure in status",
        Duration::from_secs(20),
        || async {
            let s = json(&e.run(&["status", "--json"]).await);
            let failed = s["recent_errors"]
                .as_array()
                .is_some_and(|errs| errs.iter().any(|r| r["tenant"] == theirs.as_str()));
            failed.then_some(())
        },
    )
    .await
    .unwrap();
    // Freeze it, so that a retry does not change the error between the two views.
    other.ok(&["destination", "disable", "app"]).await;

    // list: own tenant only, with the fixed columns; every tenant with --all-tenants.
    let own = json(&e.ok(&["destination", "list", "--json"]).await);
    assert_eq!(ids_and_tenants(&own), [("app".to_owned(), mine.clone())]);
    let theirs_only = json(&other.ok(&["destination", "list", "--json"]).await);
    assert_eq!(
        ids_and_tenants(&theirs_only),
        [("app".to_owned(), theirs.clone())]
    );
    let all = json(
        &e.ok(&["destination", "list", "--all-tenants", "--json"])
            .await,
    );
    let mut both = vec![
        ("app".to_owned(), mine.clone()),
        ("app".to_owned(), theirs.clone()),
    ];
    both.sort();
    assert_eq!(ids_and_tenants(&all), both);

    let text = e.ok(&["destination", "list"]).await.stdout;
    let lines: Vec<&str> = text.lines().collect();
    let header: Vec<&str> = lines[0]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "ID",
            "TENANT",
            "REGION",
            "STATE",
            "STORED",
            "SYNCED",
            "LAST SYNC",
            "LAST ERROR"
        ],
        "{text}"
    );
    assert_eq!(lines.len(), 2, "one row, my own: {text}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    let d = &own[0];
    assert_eq!(
        row,
        [
            "app",
            &mine[..8],
            "us-east-1",
            "synced",
            d["version"].to_string().as_str(),
            d["synced_version"].to_string().as_str(),
            rfc3339(d["synced_at_ms"].as_u64().unwrap()).as_str(),
            "-",
        ],
        "{text}"
    );
    let text = e.ok(&["destination", "list", "--all-tenants"]).await.stdout;
    assert_eq!(text.lines().count(), 3, "{text}");
    let theirs_row = text
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(&theirs[..8]))
        .unwrap_or_else(|| panic!("the other tenant's row: {text}"));
    for want in ["eu-west-1", "disabled", "RelayRefused"] {
        assert!(theirs_row.contains(want), "{want} in {theirs_row}");
    }

    // show: the signed configuration's delete policy, tags and KMS key, and the state.
    let show = e.ok(&["destination", "show", "app"]).await.stdout;
    for want in [
        "delete policy delete (recoverable for 7 days)",
        "tags          cost-center=42, team=blue",
        "KMS key       aws/secretsmanager",
        "state         synced",
        mine.as_str(),
    ] {
        assert!(show.contains(want), "{want:?} in\n{show}");
    }
    let show_b = other.ok(&["destination", "show", "app"]).await.stdout;
    for want in [
        "KMS key       alias/tenant-b",
        "tags          none",
        "delete policy retain",
    ] {
        assert!(show_b.contains(want), "{want:?} in\n{show_b}");
    }
    let show_json = json(&e.ok(&["destination", "show", "app", "--json"]).await);
    assert!(is_hex(&show_json["key"]["tenant_key"], 64), "{show_json}");

    // history: every line starts with the attempt's time, RFC 3339 UTC, as the JSON has it.
    let h = json(&e.ok(&["destination", "history", "app", "--json"]).await);
    let h = h.as_array().unwrap();
    assert!(h.len() >= 2, "the write and the test after it: {h:?}");
    let text = e.ok(&["destination", "history", "app"]).await.stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), h.len(), "{text}");
    for (line, r) in lines.iter().zip(h) {
        let at = rfc3339(r["finished_at_ms"].as_u64().unwrap());
        assert!(line.starts_with(&at), "{line:?} starts with {at}");
        assert!(line.contains(&format!("v{}", r["version"])), "{line}");
    }

    // status: the text shows the recent error of --json, and the rest of it. The destination
    // is disabled, but a retry claimed just before could still land between the two calls:
    // then the pair is read again.
    let mut tries = 0;
    let (status, text, line) = loop {
        tries += 1;
        let status = json(&e.ok(&["status", "--json"]).await);
        let text = e.ok(&["status"]).await.stdout;
        let err = status["recent_errors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["tenant"] == theirs.as_str())
            .unwrap_or_else(|| panic!("the other tenant's error: {status}"))
            .clone();
        assert_eq!(err["code"], "RelayRefused", "{status}");
        let message = err["message"].as_str().unwrap().lines().next().unwrap();
        let at = rfc3339(err["at_ms"].as_u64().unwrap());
        let wants = [at.as_str(), "RelayRefused", "app", &theirs[..8], message];
        let line = text
            .lines()
            .find(|l| wants.iter().all(|w| l.contains(w)))
            .map(str::to_owned);
        match line {
            Some(line) => break (status, text, line),
            None if tries < 3 => continue,
            None => panic!("no line with {wants:?} in\n{text}\nfor {status}"),
        }
    };
    assert!(line.starts_with("  "), "{line:?}");
    for want in [
        "destinations ",
        "disabled=1",
        "synced=1",
        "syncs     ",
        "succeeded=",
        "relay ",
        "enclave   healthy",
        "control ",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
    for counter in status["syncs"].as_object().unwrap().keys() {
        assert!(
            text.contains(&format!("{counter}=")),
            "{counter} in\n{text}"
        );
    }

    // enclave describe: the bundle key is hex, as its text form prints it.
    let describe = json(&e.ok(&["enclave", "describe", "--json"]).await);
    assert!(is_hex(&describe["bundle_key"], 64), "{describe}");
    let text = e.ok(&["enclave", "describe"]).await.stdout;
    assert!(
        text.contains(describe["bundle_key"].as_str().unwrap()),
        "{text}"
    );
    e.stack.stop().await.unwrap();
}
