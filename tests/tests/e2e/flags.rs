//! Bad flag values are usage errors (exit 2) that name the flag, and the admin socket's
//! failures say which: permission denied, no socket, a stale socket. The `nitrosync` binary
//! alone: no stack is started.

use nitrosync_tests::{CliOutput, cli_as, cli_env};
use std::path::Path;

const ROLE: &str = "arn:aws:iam::123456789012:role/r";
const PROVIDER: &str = "arn:aws:iam::123456789012:saml-provider/p";

/// `destination create` with every flag valid but the one overridden by `extra` (`--flag`
/// replaced when present, else appended).
fn create(extra: &[&'static str]) -> Vec<&'static str> {
    let mut args = vec![
        "destination",
        "create",
        "--id",
        "d",
        "--region",
        "us-east-1",
        "--secret-name",
        "app/env",
        "--role-arn",
        ROLE,
        "--saml-provider-arn",
        PROVIDER,
    ];
    if let Some(i) = args.iter().position(|a| *a == extra[0]) {
        args[i + 1] = extra[1];
        args.extend_from_slice(&extra[2..]);
    } else {
        args.extend_from_slice(extra);
    }
    args
}

fn usage(out: &CliOutput, args: &[&str], flag: &str) {
    assert_eq!(
        out.code, 2,
        "nitrosync {args:?}: exit {}\n{}{}",
        out.code, out.stdout, out.stderr
    );
    assert!(
        out.stderr.contains(flag),
        "nitrosync {args:?}: stderr does not name {flag}: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("cannot read"),
        "nitrosync {args:?}: reads as a file error: {}",
        out.stderr
    );
}

#[tokio::test]
async fn bad_flag_values_exit_2_and_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = dir.path().join("tenant");
    let admin = dir.path().join("no-daemon.sock");
    let init = cli_as(&admin, Some(&tenant), &["tenant", "init"])
        .await
        .unwrap();
    assert_eq!(init.code, 0, "{}", init.stderr);
    let missing = dir.path().join("missing.file");
    let missing = missing.to_str().unwrap();
    let create_cases: &[(&[&'static str], &str)] = &[
        (&["--id", "../etc"], "--id"),
        (&["--region", "us-east-99"], "--region"),
        (&["--secret-name", "bad name"], "--secret-name"),
        (&["--role-arn", "arn:aws:iam::1:role/r"], "--role-arn"),
        (&["--saml-provider-arn", "provider"], "--saml-provider-arn"),
        (
            &[
                "--saml-provider-arn",
                "arn:aws:iam::210987654321:saml-provider/p",
            ],
            "--saml-provider-arn",
        ),
        (&["--kms-key-id", "x"], "--kms-key-id"),
        (&["--tag", "no-equals"], "--tag"),
        (&["--tag", "aws:reserved=1"], "--tag"),
        (&["--recovery-days", "3"], "--recovery-days"),
        (&["--recovery-days", "ten"], "--recovery-days"),
        (
            &["--recovery-days", "10", "--delete-policy", "retain"],
            "--recovery-days",
        ),
        (&["--delete-policy", "shred"], "--delete-policy"),
    ];
    for (extra, flag) in create_cases {
        let args = create(extra);
        let out = cli_as(&admin, Some(&tenant), &args).await.unwrap();
        usage(&out, &args, flag);
    }
    let hex96 = "ab".repeat(48);
    let pcr0 = format!("0={hex96}");
    let att = dir.path().join("att.bin");
    std::fs::write(&att, b"x").unwrap();
    let att = att.to_str().unwrap();
    let other: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["env", "push", "--destination", "../x", "--file", "-"],
            "--destination",
        ),
        (
            vec!["env", "push", "--destination", "d", "--file", missing],
            "--file",
        ),
        (
            vec![
                "env",
                "push",
                "--destination",
                "d",
                "--file",
                "-",
                "--pcr",
                "zz",
            ],
            "--pcr",
        ),
        (
            vec![
                "env",
                "push",
                "--destination",
                "d",
                "--file",
                "-",
                "--pcr",
                &pcr0,
                "--root",
                missing,
            ],
            "--root",
        ),
        (
            vec![
                "bundle",
                "seal",
                "--destination",
                "d",
                "--file",
                "-",
                "--attestation",
                missing,
                "--out",
                "b",
            ],
            "--attestation",
        ),
        (
            vec![
                "bundle",
                "seal",
                "--destination",
                "d",
                "--file",
                "-",
                "--attestation",
                att,
                "--out",
                "b",
                "--max-age",
                "forever",
            ],
            "--max-age",
        ),
        (vec!["bundle", "submit", missing], "<FILE>"),
        (vec!["destination", "show", "a/b"], "<ID>"),
        (
            vec!["destination", "history", "d", "--limit", "many"],
            "--limit",
        ),
        (vec!["enclave", "attest", "--nonce", "xyz"], "--nonce"),
        (vec!["enclave", "probe", "--region", "mars-1"], "--region"),
        (
            vec![
                "enclave",
                "rotate",
                "finish",
                "--bundle-key-grace-days",
                "31",
            ],
            "--bundle-key-grace-days",
        ),
        (
            vec![
                "iam",
                "apply",
                "--destination",
                "d",
                "--endpoint-url",
                "ftp://x",
            ],
            "--endpoint-url",
        ),
        (
            vec!["iam", "apply", "--destination", "d", "--ca-bundle", missing],
            "--ca-bundle",
        ),
        (
            vec!["iam", "template", "--destination", "d", "--format", "yaml"],
            "--format",
        ),
        (vec!["trust", "add", missing], "<FILE>"),
        (
            vec![
                "kms",
                "template",
                "--pcr0",
                &hex96,
                "--account",
                "12",
                "--key-admin-arn",
                ROLE,
                "--enclave-role-arn",
                ROLE,
                "--format",
                "json",
            ],
            "--account",
        ),
    ];
    for (args, flag) in &other {
        let out = cli_as(&admin, Some(&tenant), args).await.unwrap();
        usage(&out, args, flag);
    }
}

#[tokio::test]
async fn destination_create_takes_the_region_from_the_environment_or_profile() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = dir.path().join("tenant");
    let admin = dir.path().join("no-daemon.sock");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let config = dir.path().join("aws-config");
    std::fs::write(&config, "[default]\nregion = ap-southeast-2\n").unwrap();
    let no_config = dir.path().join("no-aws-config");
    let init = cli_as(&admin, Some(&tenant), &["tenant", "init"])
        .await
        .unwrap();
    assert_eq!(init.code, 0, "{}", init.stderr);
    let args = |id: &'static str| {
        vec![
            "destination",
            "create",
            "--id",
            id,
            "--secret-name",
            "app/env",
            "--role-arn",
            ROLE,
            "--saml-provider-arn",
            PROVIDER,
            "--json",
        ]
    };
    let env = |region: &'static str, default: &'static str, config: &Path| {
        vec![
            ("HOME", home.to_str().unwrap().to_owned()),
            ("AWS_REGION", region.to_owned()),
            ("AWS_DEFAULT_REGION", default.to_owned()),
            ("AWS_CONFIG_FILE", config.to_str().unwrap().to_owned()),
        ]
    };
    let run = |id: &'static str, env: Vec<(&'static str, String)>| {
        let tenant = tenant.clone();
        let admin = admin.clone();
        async move {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            cli_env(&admin, Some(&tenant), &env, &args(id))
                .await
                .unwrap()
        }
    };
    let region_of = |out: &CliOutput| {
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v["destination"]["region"].as_str().unwrap().to_owned()
    };
    let out = run("from-env", env("eu-west-1", "", &no_config)).await;
    assert_eq!(region_of(&out), "eu-west-1");
    assert!(out.stderr.contains("from AWS_REGION"), "{}", out.stderr);
    let out = run("from-default", env("", "eu-central-1", &no_config)).await;
    assert_eq!(region_of(&out), "eu-central-1");
    let out = run("from-profile", env("", "", &config)).await;
    assert_eq!(region_of(&out), "ap-southeast-2");
    // None at all, or a bad one from the environment: usage errors naming where it came from.
    let out = run("none", env("", "", &no_config)).await;
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("--region is required"),
        "{}",
        out.stderr
    );
    let out = run("bad", env("us-east-99", "", &no_config)).await;
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("AWS_REGION"), "{}", out.stderr);
}

/// The CLI against the admin socket `socket`: `status`, as `uid` when given (through
/// `setpriv`).
fn status_as(socket: &Path, uid: Option<u32>) -> Option<CliOutput> {
    let bin = nitrosync_tests::bin("nitrosync");
    let mut cmd = match uid {
        Some(uid) => {
            let mut c = std::process::Command::new("setpriv");
            c.args([
                format!("--reuid={uid}"),
                format!("--regid={uid}"),
                "--clear-groups".to_owned(),
            ])
            .arg(&bin);
            c
        }
        None => std::process::Command::new(&bin),
    };
    let out = cmd
        .args(["--admin-socket", socket.to_str().unwrap(), "status"])
        .env_remove("NITROSYNC_ADMIN_SOCKET")
        .output()
        .ok()?;
    Some(CliOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[tokio::test]
async fn admin_socket_failures_name_their_cause_and_exit_3() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    // Others may enter the directory: only the socket's own mode denies.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    let missing = dir.path().join("missing.sock");
    let out = status_as(&missing, None).unwrap();
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("no admin socket at")
            && out
                .stderr
                .contains("the daemon is not running, or the path is wrong"),
        "{}",
        out.stderr
    );

    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let out = status_as(&stale, None).unwrap();
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("connection refused") && out.stderr.contains("stale socket"),
        "{}",
        out.stderr
    );

    let closed = dir.path().join("closed.sock");
    let _listener = tokio::net::UnixListener::bind(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o000)).unwrap();
    // Root's connect ignores the mode: run the CLI as nobody (65534) then. The binary must be
    // reachable for that user; when it is not, or setpriv is missing, the unit test of
    // `ClientError::connect` in nitrosync-api covers the message.
    let uid = is_root().then_some(65534);
    let Some(out) = status_as(&closed, uid).filter(|o| !o.stderr.contains("setpriv:")) else {
        eprintln!("skipped: cannot run the CLI as uid 65534 (setpriv)");
        return;
    };
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    let want = format!(
        "permission denied on {}: your user may not connect; run as the daemon's user or a member of its group",
        closed.display()
    );
    assert!(out.stderr.contains(&want), "{}", out.stderr);
    assert!(
        !out.stderr.contains("is the daemon running"),
        "{}",
        out.stderr
    );
}
