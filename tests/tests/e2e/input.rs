//! Nothing lost by a slip of the hand (issue 13's data-loss cases): the input is read once
//! (`--file -`, `/dev/stdin`, `<(…)`), an empty environment is refused, a secret too large for
//! Secrets Manager is refused before sealing, and a destructive command off a terminal needs
//! `--yes`. Each refusal is checked against the simulator's request log and the parent's view:
//! no Secrets Manager write, no new bundle, and the secret as the tenant last meant it.

use crate::cli::{Env, value_of};
use nitrosync_shared::bundle::MAX_SECRET_BYTES;
use nitrosync_tests::{CliOutput, cli_stdin, simctl};
use serde_json::{Value, json};
use std::process::Stdio;

impl Env {
    async fn push(&self, file: &str, extra: &[&str]) -> CliOutput {
        let mut args = vec!["env", "push", "--destination", "app", "--file", file];
        args.extend(extra);
        self.run(&args).await
    }

    async fn push_ok(&self, file: &str) {
        let out = self.push(file, &["--wait"]).await;
        assert_eq!(out.code, 0, "push {file}: {}{}", out.stdout, out.stderr);
    }

    async fn push_stdin(&self, file: &str, body: &str) -> CliOutput {
        cli_stdin(
            &self.stack.sockets.admin,
            Some(&self.tenant),
            &[
                "env",
                "push",
                "--destination",
                "app",
                "--file",
                file,
                "--wait",
            ],
            body.as_bytes(),
        )
        .await
        .unwrap()
    }

    /// What a refused command must leave as it was: every Secrets Manager write the simulator
    /// logged (per secret, and counted by action), and each destination's bundle versions at
    /// the parent (a bundle that reached it would show there, whether written yet or not).
    async fn written(&self) -> Value {
        let requests = simctl(self.dir.path(), &["sim", "GET", "requests"])
            .await
            .unwrap();
        let calls: serde_json::Map<String, Value> = requests["by_action"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(action, _)| {
                action.starts_with("secretsmanager:")
                    && !["Get", "Describe", "List"]
                        .iter()
                        .any(|read| action.contains(&format!(":{read}")))
            })
            .map(|(a, n)| (a.clone(), n.clone()))
            .collect();
        let list: Vec<Value> =
            serde_json::from_str(&self.ok(&["destination", "list", "--json"]).await.stdout)
                .unwrap();
        let versions: Vec<Value> = list
            .iter()
            .map(|d| json!([d["key"]["id"], d["version"], d["synced_version"]]))
            .collect();
        json!({"writes": requests["writes"], "calls": calls, "destinations": versions})
    }

    /// `bundle seal` of `file` to a fresh attestation document, into `out`.
    async fn seal(&self, file: &str, out: &std::path::Path, stdin: Option<&str>) -> CliOutput {
        let doc = self.dir.path().join("doc.cbor");
        self.ok(&["enclave", "attest", "--out", doc.to_str().unwrap()])
            .await;
        let root = self.dir.path().join("sim-root.pem");
        let args = [
            "bundle",
            "seal",
            "--destination",
            "app",
            "--file",
            file,
            "--attestation",
            doc.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        match stdin {
            None => self.run(&args).await,
            Some(body) => cli_stdin(
                &self.stack.sockets.admin,
                Some(&self.tenant),
                &args,
                body.as_bytes(),
            )
            .await
            .unwrap(),
        }
    }
}

/// A refusal: `code`, one line on stderr holding each of `wanted`.
fn refused(out: &CliOutput, code: i32, wanted: &[&str]) {
    assert_eq!(out.code, code, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    for w in wanted {
        assert!(out.stderr.contains(w), "wanted {w:?} in {}", out.stderr);
    }
}

#[tokio::test]
async fn an_empty_environment_is_refused_and_nothing_is_written() {
    let e = Env::start().await;
    e.destination("app", "app/env", &[]).await;
    let full = e.env_file("full.env", "A=1\nB=2\n");
    e.push_ok(full.to_str().unwrap()).await;
    let before = e.written().await;

    for body in ["", "\n# only a comment\n\n"] {
        let empty = e.env_file("empty.env", body);
        let out = e.push(empty.to_str().unwrap(), &["--wait"]).await;
        refused(
            &out,
            2,
            &[empty.to_str().unwrap(), "no variable", "--allow-empty"],
        );
    }
    let out = e.push_stdin("-", "").await;
    refused(&out, 2, &["standard input", "--allow-empty"]);
    let out = e.push_stdin("/dev/stdin", "# nothing\n").await;
    refused(&out, 2, &["/dev/stdin", "--allow-empty"]);
    // `bundle seal` takes the same input, under the same rules: no bundle file.
    let empty = e.env_file("empty.env", "");
    let bundle = e.dir.path().join("empty.cbor");
    let out = e.seal(empty.to_str().unwrap(), &bundle, None).await;
    refused(&out, 2, &["--allow-empty"]);
    assert!(!bundle.exists(), "no bundle was written");

    assert_eq!(e.written().await, before, "nothing was written");
    assert_eq!(
        value_of(&e.secret("app/env").await),
        json!({"A": "1", "B": "2"})
    );

    // Said on purpose, it empties the secret.
    let out = e
        .push(empty.to_str().unwrap(), &["--allow-empty", "--wait"])
        .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(value_of(&e.secret("app/env").await), json!({}));
    assert_ne!(e.written().await, before, "a write shows in the snapshot");
    e.stack.stop().await.unwrap();
}

#[tokio::test]
async fn a_piped_environment_is_pushed_exactly_as_piped() {
    let e = Env::start().await;
    e.destination("app", "app/env", &[]).await;
    // `--file -` and a pipe named by path (`/dev/stdin`) are read once: a second read of a pipe
    // would be empty.
    for (file, body, want) in [
        (
            "-",
            "A=from-stdin\nB=2\n",
            json!({"A": "from-stdin", "B": "2"}),
        ),
        (
            "/dev/stdin",
            "C=through-a-pipe\n",
            json!({"C": "through-a-pipe"}),
        ),
    ] {
        let out = e.push_stdin(file, body).await;
        assert_eq!(out.code, 0, "{file}: {}{}", out.stdout, out.stderr);
        assert_eq!(value_of(&e.secret("app/env").await), want, "{file}");
    }

    // Process substitution, as a shell user writes it: `--file <(…)` names /dev/fd/N, a pipe.
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(r#""$0" env push --destination app --file <(printf '%s' "$1") --wait"#)
        .arg(nitrosync_tests::bin("nitrosync"))
        .arg("D=process-substitution\nE='quoted value'\n")
        .env("NITROSYNC_ADMIN_SOCKET", &e.stack.sockets.admin)
        .env("NITROSYNC_TENANT_DIR", &e.tenant)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        value_of(&e.secret("app/env").await),
        json!({"D": "process-substitution", "E": "quoted value"})
    );

    // `bundle seal --file -`, then the bundle submitted: the piped content, exactly.
    let bundle = e.dir.path().join("piped.cbor");
    let out = e.seal("-", &bundle, Some("F=sealed-from-stdin\n")).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    e.ok(&["bundle", "submit", bundle.to_str().unwrap(), "--wait"])
        .await;
    assert_eq!(
        value_of(&e.secret("app/env").await),
        json!({"F": "sealed-from-stdin"})
    );
    e.stack.stop().await.unwrap();
}

#[tokio::test]
async fn a_secret_larger_than_secrets_manager_takes_is_refused_before_sealing() {
    let e = Env::start().await;
    e.destination("app", "app/env", &[]).await;
    // `{"A":"…"}` is 8 bytes around the value. At the limit exactly, the CLI, the enclave and
    // Secrets Manager agree that it fits.
    let at = |size: usize| format!("A={}\n", "x".repeat(size - 8));
    let fits = e.env_file("fits.env", &at(MAX_SECRET_BYTES));
    e.push_ok(fits.to_str().unwrap()).await;
    let value = value_of(&e.secret("app/env").await);
    assert_eq!(
        serde_json::to_string(&value).unwrap().len(),
        MAX_SECRET_BYTES
    );
    let before = e.written().await;

    let over = e.env_file("over.env", &at(MAX_SECRET_BYTES + 1));
    let out = e.push(over.to_str().unwrap(), &["--wait"]).await;
    refused(
        &out,
        1,
        &[
            over.to_str().unwrap(),
            &(MAX_SECRET_BYTES + 1).to_string(),
            &MAX_SECRET_BYTES.to_string(),
            "MaximumSecretSizeExceeded",
        ],
    );
    assert_eq!(e.written().await, before, "nothing was written");
    assert_eq!(value_of(&e.secret("app/env").await), value);
    e.stack.stop().await.unwrap();
}

#[tokio::test]
async fn delete_off_a_terminal_without_yes_refuses_and_deletes_nothing() {
    let e = Env::start().await;
    e.destination("app", "app/env", &["--delete-policy", "force-delete"])
        .await;
    let f = e.env_file("app.env", "A=1\n");
    e.push_ok(f.to_str().unwrap()).await;
    let before = e.written().await;

    // Standard input is /dev/null here, and a pipe in the second case: never a terminal.
    let out = e.run(&["destination", "delete", "app"]).await;
    refused(&out, 2, &["--yes", "ERASED", "not a terminal"]);
    let out = cli_stdin(
        &e.stack.sockets.admin,
        Some(&e.tenant),
        &["destination", "delete", "app"],
        b"app\n",
    )
    .await
    .unwrap();
    refused(&out, 2, &["--yes"]);

    assert_eq!(e.written().await, before, "nothing was deleted");
    let s = e.secret("app/env").await;
    assert_eq!(s["exists"], true);
    assert_eq!(value_of(&s), json!({"A": "1"}));

    // With --yes the policy is applied at once.
    e.ok(&["destination", "delete", "app", "--yes"]).await;
    assert_eq!(e.secret("app/env").await["exists"], false);
    assert_ne!(e.written().await, before, "a delete shows in the snapshot");
    e.stack.stop().await.unwrap();
}
