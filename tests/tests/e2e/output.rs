//! The CLI's output contract (issue 13): `--output json|text` on every command (`--json` its
//! alias), errors with stable codes in text and JSON, `history --limit 0` refused, the AWS CLI's
//! default region for `enclave probe` and `kms template`, `destination enable` before the first
//! push, and `status --watch` off a terminal.

use crate::cli::Env;
use nitrosync_tests::{CliOutput, cli_env};
use serde_json::Value;
use std::path::Path;

fn json(out: &CliOutput) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
}

/// The one JSON line a failed command writes on stderr with `--output json`.
fn json_error(out: &CliOutput) -> Value {
    assert_eq!(out.stderr.trim().lines().count(), 1, "{out:?}");
    let v: Value = serde_json::from_str(out.stderr.trim())
        .unwrap_or_else(|e| panic!("stderr is not JSON ({e}): {out:?}"));
    assert_eq!(v["error"]["exit"], out.code, "{out:?}");
    v["error"].clone()
}

/// Environment in which no AWS region is set, unless `region` is given as AWS_REGION.
fn region_env(home: &Path, region: &str) -> Vec<(&'static str, String)> {
    vec![
        ("HOME", home.to_str().unwrap().to_owned()),
        ("AWS_REGION", region.to_owned()),
        ("AWS_DEFAULT_REGION", String::new()),
        (
            "AWS_CONFIG_FILE",
            home.join("no-aws-config").to_str().unwrap().to_owned(),
        ),
    ]
}

async fn run_env(e: &Env, env: &[(&'static str, String)], args: &[&str]) -> CliOutput {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    cli_env(&e.stack.sockets.admin, Some(&e.tenant), &env, args)
        .await
        .unwrap()
}

#[tokio::test]
async fn every_command_speaks_json_and_errors_carry_codes() {
    let e = Env::start().await;

    // tenant init: text and JSON.
    let other = e.dir.path().join("other-tenant");
    let init = nitrosync_tests::cli_as(
        &e.stack.sockets.admin,
        Some(&other),
        &["tenant", "init", "--output", "json"],
    )
    .await
    .unwrap();
    assert_eq!(init.code, 0, "{init:?}");
    let v = json(&init);
    assert_eq!(v["public_key"].as_str().unwrap().len(), 64, "{v}");
    assert!(
        v["key_file"].as_str().unwrap().ends_with("tenant.key"),
        "{v}"
    );
    // Again: the key exists, a local error with its code, in text and in JSON.
    let again = nitrosync_tests::cli_as(&e.stack.sockets.admin, Some(&other), &["tenant", "init"])
        .await
        .unwrap();
    assert_eq!(again.code, 1, "{again:?}");
    assert!(
        again.stderr.starts_with("nitrosync: TenantKey: "),
        "{again:?}"
    );
    let again = nitrosync_tests::cli_as(
        &e.stack.sockets.admin,
        Some(&other),
        &["tenant", "init", "--json"],
    )
    .await
    .unwrap();
    assert_eq!(json_error(&again)["code"], "TenantKey");

    // saml-metadata: the JSON form carries the same document the text form prints.
    let text = e.ok(&["saml-metadata"]).await;
    let v = json(&e.ok(&["saml-metadata", "--output", "json"]).await);
    assert_eq!(
        v["saml_metadata"].as_str().unwrap().trim_end(),
        text.stdout.trim_end()
    );
    assert!(text.stdout.contains("EntityDescriptor"), "{text:?}");

    // --output and --json together contradict each other.
    let both = e.run(&["status", "--json", "--output", "text"]).await;
    assert_eq!(both.code, 2, "{both:?}");

    // enable before the first push: refused, saying why and what to do.
    e.destination("early", "early/env", &[]).await;
    let early = e.run(&["destination", "enable", "early"]).await;
    assert_eq!(early.code, 1, "{early:?}");
    for want in [
        "nitrosync: UnknownDestination: ",
        "nothing to enable yet",
        "starts enabled",
        "nitrosync env push --destination early",
    ] {
        assert!(early.stderr.contains(want), "{want:?}: {early:?}");
    }
    let early = e.run(&["destination", "enable", "early", "--json"]).await;
    let err = json_error(&early);
    assert_eq!(err["code"], "UnknownDestination", "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("nothing to enable yet"),
        "{err}"
    );

    // An empty environment is a local error with its code: text, then JSON.
    let empty = e.env_file("empty.env", "# nothing\n");
    let empty = empty.to_str().unwrap();
    let refused = e
        .run(&["env", "push", "--destination", "early", "--file", empty])
        .await;
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused.stderr.starts_with("nitrosync: EmptyEnvironment: "),
        "{refused:?}"
    );
    let refused = e
        .run(&[
            "env",
            "push",
            "--destination",
            "early",
            "--file",
            empty,
            "--output",
            "json",
        ])
        .await;
    assert_eq!(json_error(&refused)["code"], "EmptyEnvironment");

    // Push, then disable, enable and retry, each with a JSON form (the destination's record).
    let vars = e.env_file("early.env", "A=1\n");
    let pushed = e
        .ok(&[
            "env",
            "push",
            "--destination",
            "early",
            "--file",
            vars.to_str().unwrap(),
            "--wait",
            "--output",
            "json",
        ])
        .await;
    assert_eq!(json(&pushed)["outcome"], "Created", "{pushed:?}");
    for (action, enabled) in [("disable", false), ("enable", true), ("retry", true)] {
        let v = json(
            &e.ok(&["destination", action, "early", "--output", "json"])
                .await,
        );
        assert_eq!(v["enabled"], enabled, "{action}: {v}");
        assert_eq!(v["key"]["id"], "early", "{action}: {v}");
        let text = e.ok(&["destination", action, "early"]).await;
        assert!(
            text.stdout
                .starts_with(&format!("early: enabled {enabled}, state ")),
            "{action}: {text:?}"
        );
    }

    // history --limit 0 asks for nothing: a usage error naming the flag, in text and JSON.
    let zero = e
        .run(&["destination", "history", "early", "--limit", "0"])
        .await;
    assert_eq!(zero.code, 2, "{zero:?}");
    assert!(zero.stderr.contains("--limit"), "{zero:?}");
    let zero = e
        .run(&["destination", "history", "early", "--limit", "0", "--json"])
        .await;
    let err = json_error(&zero);
    assert_eq!(err["code"], "InvalidFlag", "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("--limit"),
        "{err}"
    );
    let one = json(
        &e.ok(&["destination", "history", "early", "--limit", "1", "--json"])
            .await,
    );
    assert_eq!(one.as_array().unwrap().len(), 1, "{one}");

    // enclave probe without --region: AWS_REGION, as the AWS CLI; none at all is exit 2.
    let home = e.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let probe = run_env(
        &e,
        &region_env(&home, "us-east-1"),
        &["enclave", "probe", "--json"],
    )
    .await;
    assert_eq!(probe.code, 0, "{probe:?}");
    assert!(
        probe.stderr.contains("region us-east-1 (from AWS_REGION"),
        "{probe:?}"
    );
    assert_eq!(json(&probe)["reached"], true, "{probe:?}");
    let none = run_env(&e, &region_env(&home, ""), &["enclave", "probe"]).await;
    assert_eq!(none.code, 2, "{none:?}");
    assert!(
        none.stderr
            .starts_with("nitrosync: InvalidFlag: --region is required"),
        "{none:?}"
    );

    // kms template without --region: AWS_REGION when set, else no region.
    let kms = |region: &'static str| {
        let home = home.clone();
        let e = &e;
        async move {
            run_env(
                e,
                &region_env(&home, region),
                &[
                    "kms",
                    "template",
                    "--pcr0",
                    &"ab".repeat(48),
                    "--account",
                    "123456789012",
                    "--key-admin-arn",
                    "arn:aws:iam::123456789012:role/kms-admin",
                    "--enclave-role-arn",
                    "arn:aws:iam::123456789012:role/nitrosync-parent",
                    "--format",
                    "json",
                ],
            )
            .await
        }
    };
    let with = kms("eu-west-1").await;
    assert_eq!(with.code, 0, "{with:?}");
    assert_eq!(json(&with)["region"], "eu-west-1", "{with:?}");
    let without = kms("").await;
    assert_eq!(without.code, 0, "{without:?}");
    assert!(json(&without).get("region").is_none(), "{without:?}");
    e.stack.stop().await.unwrap();
}

#[tokio::test]
async fn status_watch_off_a_terminal_prints_plain_snapshots() {
    let e = Env::start().await;
    e.destination("w", "w/env", &[]).await;
    let vars = e.env_file("w.env", "A=1\n");
    e.ok(&[
        "env",
        "push",
        "--destination",
        "w",
        "--file",
        vars.to_str().unwrap(),
        "--wait",
    ])
    .await;

    let out = e
        .ok(&["status", "--watch", "--interval", "0.5", "--count", "3"])
        .await;
    assert!(
        !out.stdout.contains('\x1b'),
        "no cursor codes off a terminal: {out:?}"
    );
    let frames: Vec<&str> = out.stdout.trim_end().split("\n\n").collect();
    assert_eq!(frames.len(), 3, "{out:?}");
    for (i, frame) in frames.iter().enumerate() {
        assert!(frame.starts_with("nitrosync status --watch  "), "{frame}");
        assert!(frame.contains("enclave       healthy"), "{frame}");
        assert!(frame.contains("destinations  1: synced 1"), "{frame}");
        assert!(
            frame.contains("1 succeeded, 0 failed since start"),
            "{frame}"
        );
        assert!(frame.contains("newest errors: none"), "{frame}");
        // The rate needs two snapshots: none in the first, a number after.
        let rate = frame
            .lines()
            .find_map(|l| l.strip_prefix("syncs         "))
            .unwrap_or_else(|| panic!("no syncs line: {frame}"));
        if i == 0 {
            assert!(rate.starts_with("-/s"), "{frame}");
        } else {
            assert!(rate.starts_with("0.0/s"), "{frame}");
        }
    }

    // JSON: one line per snapshot.
    let out = e
        .ok(&[
            "status",
            "--watch",
            "--interval",
            "0.5",
            "--count",
            "2",
            "--json",
        ])
        .await;
    let snapshots: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|err| panic!("{err}: {l}")))
        .collect();
    assert_eq!(snapshots.len(), 2, "{out:?}");
    assert!(snapshots[0]["syncs_per_second"].is_null(), "{out:?}");
    assert_eq!(snapshots[1]["syncs_per_second"], 0.0, "{out:?}");
    assert_eq!(
        snapshots[1]["status"]["destinations"]["synced"], 1,
        "{out:?}"
    );

    // --interval and --count belong to --watch.
    let alone = e.run(&["status", "--count", "2"]).await;
    assert_eq!(alone.code, 2, "{alone:?}");
    e.stack.stop().await.unwrap();
}
