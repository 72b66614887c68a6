//! A CLI that tells the truth while it waits (issue 13): regions are checked against AWS's list
//! when a destination is created, and against the relay's when the daemon answers; `--wait`
//! stops at once, with the code and the remedy, on a failure that waiting will not fix (a relay
//! that does not allow the region), and on a disabled destination; and it draws no `\r` frames
//! when its output is not a terminal.

use crate::cli::Env;
use nitrosync_shared::ErrorCode;
use nitrosync_tests::{CliOutput, cli_as};
use std::time::{Duration, Instant};

/// The bound: `--wait` on a destination the relay refuses returns within 5 s (it spun
/// for 120 s). Generous on a loaded machine: the refusal itself takes milliseconds.
const PROMPTLY: Duration = Duration::from_secs(5);

fn create_args<'a>(id: &'a str, region: &'a str) -> Vec<&'a str> {
    vec![
        "destination",
        "create",
        "--id",
        id,
        "--region",
        region,
        "--secret-name",
        "app/env",
        "--role-arn",
        "arn:aws:iam::123456789012:role/nitrosync-app",
        "--saml-provider-arn",
        "arn:aws:iam::123456789012:saml-provider/nitrosync-app",
    ]
}

fn no_frames(out: &CliOutput) {
    assert!(
        !out.stderr.contains('\r'),
        "no \\r frames off a terminal: {:?}",
        out.stderr
    );
}

#[tokio::test]
async fn a_region_aws_does_not_have_is_a_usage_error_naming_the_flag_and_the_region() {
    // No daemon needed: the check is local.
    let dir = tempfile::tempdir().unwrap();
    let admin = dir.path().join("absent.sock");
    let tenant = dir.path().join("tenant");
    let run = |args: Vec<&'static str>| {
        let (admin, tenant) = (admin.clone(), tenant.clone());
        async move { cli_as(&admin, Some(&tenant), &args).await.unwrap() }
    };
    assert_eq!(run(vec!["tenant", "init"]).await.code, 0);
    let out = run(create_args("typo", "us-east-99")).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    for want in ["--region", "us-east-99", "us-east-1"] {
        assert!(out.stderr.contains(want), "{want} in {}", out.stderr);
    }
    assert!(
        !tenant.join("destinations/typo.json").exists(),
        "nothing saved"
    );
    let out = run(vec!["enclave", "probe", "--region", "eu-centrl-1"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("--region") && out.stderr.contains("eu-central-1"),
        "{}",
        out.stderr
    );
    // A known region of another partition is accepted; with no daemon, no warning either.
    let out = run(create_args("gov", "us-gov-west-1")).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
}

#[tokio::test]
async fn wait_stops_at_once_with_relay_refused_and_its_remedy_in_a_region_the_relay_does_not_allow()
{
    let e = Env::start().await; // the relay allows us-east-1 only
    // A real AWS region the relay does not allow: saved, with a warning that names the remedy.
    let out = e.ok(&create_args("app", "eu-west-1")).await;
    let warning = out.stderr.trim();
    for want in [
        "warning",
        "eu-west-1",
        "us-east-1",
        "RelayRefused",
        "relay.regions",
    ] {
        assert!(warning.contains(want), "{want} in {warning}");
    }
    let f = e.env_file("app.env", "A=1\n");
    let started = Instant::now();
    let out = e
        .run(&[
            "env",
            "push",
            "--destination",
            "app",
            "--file",
            f.to_str().unwrap(),
            "--wait",
        ])
        .await;
    let took = started.elapsed();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(took < PROMPTLY, "returned after {took:?}: {out:?}");
    let last = out.stderr.trim().lines().last().unwrap_or_default();
    for want in [
        "RelayRefused",
        "not_allowed",
        "sts.eu-west-1.amazonaws.com",
        ErrorCode::RelayRefused.remedy(),
        "operator",
    ] {
        assert!(last.contains(want), "{want} in {last:?}\n{out:?}");
    }
    assert!(out.stdout.contains("app v"), "the report: {out:?}");
    no_frames(&out);
    e.stack.stop().await.unwrap();
}

#[tokio::test]
async fn wait_on_a_disabled_destination_says_so_and_returns() {
    let e = Env::start().await;
    e.destination("app", "app/env", &[]).await;
    let f = e.env_file("app.env", "A=1\n");
    let push = || async {
        e.run(&[
            "env",
            "push",
            "--destination",
            "app",
            "--file",
            f.to_str().unwrap(),
            "--wait",
        ])
        .await
    };
    let out = push().await;
    assert_eq!(out.code, 0, "{out:?}");
    // Off a terminal: plain progress lines, one per phase, and no frames.
    no_frames(&out);
    assert!(out.stderr.contains("waiting for app v"), "{}", out.stderr);
    let lines = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("waiting for"))
        .count();
    assert!(lines <= 4, "one line per phase: {}", out.stderr);

    let out = e.ok(&["destination", "disable", "app", "--json"]).await;
    let record: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(record["enabled"], false, "{}", out.stdout);
    assert_eq!(record["key"]["id"], "app", "{}", out.stdout);
    let started = Instant::now();
    let out = push().await;
    let took = started.elapsed();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(took < PROMPTLY, "returned after {took:?}: {out:?}");
    let last = out.stderr.trim().lines().last().unwrap_or_default();
    for want in ["app is disabled", "destination enable app"] {
        assert!(last.contains(want), "{want} in {last:?}");
    }
    no_frames(&out);
    e.stack.stop().await.unwrap();
}
