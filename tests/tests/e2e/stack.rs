//! The whole simulator stack: AWS simulator, enclave and parent, driven through the CLI.

use nitrosync_tests::{SimStack, cli, start_enclave, wait_for};
use std::time::Duration;

#[tokio::test]
async fn enclave_reaches_sts_through_the_relay_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let stack = SimStack::start(dir.path(), "us-east-1").await.unwrap();
    let admin = stack.sockets.admin.clone();

    let out = cli(
        &admin,
        &["enclave", "probe", "--region", "us-east-1", "--json"],
    )
    .await
    .unwrap();
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let probe: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(probe["reached"], true);
    assert_eq!(probe["host"], "sts.us-east-1.amazonaws.com");
    assert!(
        probe["account"].as_str().is_some_and(|a| a.len() == 12),
        "{probe}"
    );

    // A second call reuses the pooled TLS connection: no new tunnel.
    let out = cli(
        &admin,
        &["enclave", "probe", "--region", "us-east-1", "--json"],
    )
    .await
    .unwrap();
    assert_eq!(out.code, 0);
    let status = cli(&admin, &["status", "--json"]).await.unwrap();
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["enclave"]["tunnels_opened"], 1, "{status}");
    assert_eq!(status["relay"]["stats"]["connected"], 1, "{status}");

    // The simulator really answered both calls.
    let log = std::fs::read_to_string(&stack.aws.proc.log).unwrap();
    assert_eq!(log.matches("sts:GetCallerIdentity 200").count(), 2, "{log}");

    // A region outside the allowlist: the relay refuses, the CLI says so and exits 1.
    let out = cli(&admin, &["enclave", "probe", "--region", "eu-west-1"])
        .await
        .unwrap();
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("not in the relay allowlist"),
        "{}",
        out.stderr
    );

    let out = cli(&admin, &["enclave", "describe", "--json"])
        .await
        .unwrap();
    let d: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(d["mode"], "Simulator");
    assert!(
        d["tls_trust"]["SimulatorCa"]["sha256"]
            .as_str()
            .is_some_and(|h| h.len() == 64)
    );

    stack.stop().await.unwrap();
}

#[tokio::test]
async fn parent_reconnects_after_the_enclave_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut stack = SimStack::start(dir.path(), "us-east-1").await.unwrap();
    let admin = stack.sockets.admin.clone();

    stack.enclave.kill().await.unwrap();
    let out = wait_for(
        "status to report the enclave gone",
        Duration::from_secs(10),
        || {
            let admin = admin.clone();
            async move {
                let out = cli(&admin, &["status"]).await.unwrap();
                (out.code == 4).then_some(out)
            }
        },
    )
    .await
    .unwrap();
    assert!(out.stdout.contains("EnclaveUnavailable"), "{}", out.stdout);
    let out = cli(&admin, &["enclave", "describe"]).await.unwrap();
    assert_eq!(out.code, 4, "{}", out.stderr);

    stack.enclave =
        start_enclave(dir.path(), &stack.sockets, &stack.aws.ca, "enclave-2.log").unwrap();
    stack.wait_healthy(Duration::from_secs(20)).await.unwrap();
    let status = cli(&admin, &["status", "--json"]).await.unwrap();
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["control"]["connects"], 2, "{status}");
    let out = cli(&admin, &["enclave", "probe", "--region", "us-east-1"])
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn cli_and_daemon_report_bad_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    // No daemon: exit 3 with one line naming the socket.
    let missing = dir.path().join("nope.sock");
    let out = cli(&missing, &["status"]).await.unwrap();
    assert_eq!(out.code, 3);
    assert!(
        out.stderr.contains("nope.sock") && out.stderr.lines().count() == 1,
        "{}",
        out.stderr
    );

    // An unknown config key: the daemon refuses to start and names it.
    let cfg = dir.path().join("parent.toml");
    std::fs::write(&cfg, "[relay]\nregion = [\"us-east-1\"]\n").unwrap();
    let out = tokio::process::Command::new(nitrosync_tests::bin("nitrosync-parent"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown field `region`") && err.contains("parent.toml"),
        "{err}"
    );

    // A bad region flag.
    let out = tokio::process::Command::new(nitrosync_tests::bin("nitrosync-parent"))
        .args(["--region", "moon-1", "--admin-socket"])
        .arg(dir.path().join("a.sock"))
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"moon-1\" is not an AWS region"));

    // The enclave refuses a simulator CA outside simulator mode.
    let out = tokio::process::Command::new(nitrosync_tests::bin("nitrosync-enclave"))
        .args(["--sim-ca", "/tmp/x.pem"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only allowed with --simulator"));
}
