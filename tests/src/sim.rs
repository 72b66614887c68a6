//! The `nitrosync-sim` demo: runs the whole system on this machine (AWS simulator, simulated
//! enclave, parent) over Unix sockets in one run directory, and walks through a real sync with
//! the CLI: the enclave's identity sealed under the operator's KMS key (made from
//! `nitrosync kms template`) and unsealed by the parent, a tenant key, a destination, its IAM
//! applied in the simulator, a `.env` pushed, the secret read back, and a restart of the enclave
//! that keeps its identity. The binary only parses its arguments and calls [`run`].

use crate::{CliOutput, IdentityKey, SimStack, StackOptions, cli_as, simctl};
use anyhow::{Context, Result, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What to run.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Run directory for sockets, logs, the store and the simulator's CA (emptied first).
    pub run_dir: PathBuf,
    /// The AWS region to simulate.
    pub region: String,
    /// Run the demo and return (`Ok` only when the secret read back equals the pushed file);
    /// otherwise stay up until Ctrl-C.
    pub check: bool,
}

const SAMPLE_ENV: &str = "# A sample environment for the nitrosync demo.\nDATABASE_URL=postgres://app:s3cret@db.internal:5432/app\nexport API_KEY=\"demo-api-key-0f9e8d7c\"\nLOG_LEVEL=info\nFEATURE_FLAGS='checkout,search'\n";

/// Where the sim's parent serves `/metrics` and `/healthz`: the port the README's sample config
/// uses, or a free one when that is taken (another sim, a Prometheus node exporter…).
pub const SIM_METRICS_ADDR: &str = "127.0.0.1:9464";

/// [`SIM_METRICS_ADDR`] if it is free now, else a free loopback port.
fn metrics_addr() -> Result<SocketAddr> {
    let probe = std::net::TcpListener::bind(SIM_METRICS_ADDR)
        .or_else(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .context("cannot find a free port for the metrics listener")?;
    // Closed here; the parent binds it a moment later.
    Ok(probe.local_addr()?)
}

/// One `GET path` on the metrics listener: the status code and the body.
async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((out.as_str(), ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("GET {path}: no status line"))?;
    Ok((code, body.to_owned()))
}

fn step(n: u32, text: &str) {
    println!("\n[{n}] {text}");
}

fn show(out: &CliOutput) {
    for line in out.stdout.lines().chain(out.stderr.lines()) {
        if !line.contains('\r') {
            println!("    {line}");
        }
    }
}

struct Demo {
    admin: PathBuf,
    tenant: PathBuf,
    failed: Vec<String>,
}

impl Demo {
    async fn run(&mut self, label: &str, args: &[&str]) -> Result<CliOutput> {
        println!("    $ nitrosync {}", args.join(" "));
        let out = cli_as(&self.admin, Some(&self.tenant), args).await?;
        show(&out);
        if out.code != 0 {
            self.failed.push(label.to_owned());
        }
        Ok(out)
    }
}

fn account_of(dir: &Path) -> String {
    let _ = dir;
    // moto's default account.
    "123456789012".to_owned()
}

/// Runs the demo: empties and fills `args.run_dir`, starts the stack, walks through a sync and
/// then either stops (`check`) or stays up until Ctrl-C.
pub async fn run(args: &SimOptions) -> Result<()> {
    if args.run_dir.exists() {
        std::fs::remove_dir_all(&args.run_dir)
            .with_context(|| format!("cannot empty {}", args.run_dir.display()))?;
    }
    std::fs::create_dir_all(&args.run_dir)?;
    let dir = std::fs::canonicalize(&args.run_dir)?;

    step(
        1,
        "Starting the AWS simulator, the operator's KMS key, the enclave (simulator mode, sealed identity) and the parent",
    );
    let metrics = metrics_addr()?;
    let opts = StackOptions {
        tenant_api: true,
        sealed_identity: true,
        parent_args: vec!["--metrics-listen".into(), metrics.to_string()],
        ..Default::default()
    };
    let mut stack = SimStack::start_with(&dir, &args.region, opts).await?;
    let key = stack
        .identity_key
        .clone()
        .context("the stack has no identity key")?;
    let tenant_api = stack
        .tenant_api
        .clone()
        .context("the stack has no tenant API")?;
    println!(
        "    aws-sim   https://127.0.0.1:{} (moto behind a strict front; CA {})",
        stack.aws.port,
        stack.aws.ca.display()
    );
    println!(
        "    enclave   control unix:{} (--identity kms: locked until the parent unseals it)",
        stack.sockets.control.display()
    );
    println!(
        "    parent    relay unix:{}, admin {} (--identity-kms-key, the instance role's credentials)",
        stack.sockets.relay.display(),
        stack.sockets.admin.display()
    );
    println!(
        "    tenant    API {} (TLS, self-signed certificate {})",
        tenant_api.url,
        tenant_api.ca.display()
    );
    println!(
        "    metrics   http://{metrics}/metrics and http://{metrics}/healthz (--metrics-listen)"
    );
    println!("    logs      {}/*.log", dir.display());
    let mut demo = Demo {
        admin: stack.sockets.admin.clone(),
        tenant: dir.join("tenant"),
        failed: Vec::new(),
    };

    step(
        2,
        "The enclave's identity, sealed under the operator's KMS key (its policy from `nitrosync kms template`) and unsealed by the parent through the relay",
    );
    show_identity_key(&key);
    let unsealed = wait_unsealed(&dir, 0).await;
    demo.describe_identity().await?;
    if !unsealed {
        demo.failed.push("unseal".into());
    }

    step(
        3,
        "The enclave: status, and one STS call through the relay over TLS",
    );
    demo.run("status", &["status"]).await?;
    demo.run("probe", &["enclave", "probe", "--region", &args.region])
        .await?;
    println!("    $ curl http://{metrics}/healthz");
    match http_get(metrics, "/healthz").await {
        Ok((200, body)) => println!("    200 {}", body.trim()),
        Ok((code, body)) => {
            println!("    {code} {}", body.trim());
            demo.failed.push("healthz".into());
        }
        Err(e) => {
            println!("    {e:#}");
            demo.failed.push("healthz".into());
        }
    }

    step(
        4,
        "The tenant's key, the enclave image and root it pins (nothing taken from the daemon), and a destination",
    );
    demo.run("tenant init", &["tenant", "init"]).await?;
    // In simulator mode PCR0 is the SHA-384 of the enclave binary: the tenant measures the
    // binary it was given, and names the simulator's root explicitly.
    let measurements = dir.join("enclave-measurements.json");
    println!(
        "    $ nitrosync-attest measure --simulator target/debug/nitrosync-enclave > {}",
        measurements.display()
    );
    if let Err(e) = crate::measure_simulator(&crate::bin("nitrosync-enclave"), &measurements).await
    {
        println!("    {e:#}");
        demo.failed.push("nitrosync-attest measure".into());
    }
    let root = dir.join(crate::SIM_ROOT_FILE).display().to_string();
    demo.run(
        "trust add",
        &[
            "trust",
            "add",
            measurements.to_str().unwrap_or_default(),
            "--name",
            "sim-enclave",
        ],
    )
    .await?;
    demo.run(
        "trust add-root",
        &["trust", "add-root", &root, "--name", "simulator"],
    )
    .await?;
    let acct = account_of(&dir);
    let role = format!("arn:aws:iam::{acct}:role/nitrosync-demo");
    let provider = format!("arn:aws:iam::{acct}:saml-provider/nitrosync-demo");
    demo.run(
        "destination create",
        &[
            "destination",
            "create",
            "--id",
            "demo",
            "--region",
            &args.region,
            "--secret-name",
            "demo/app/env",
            "--role-arn",
            &role,
            "--saml-provider-arn",
            &provider,
            "--tag",
            "team=demo",
        ],
    )
    .await?;

    step(
        5,
        "The customer's IAM (SAML provider with the enclave's metadata, policy, role), applied in the simulator",
    );
    println!("    $ nitrosync iam template --destination demo --format json > iam.json");
    let iam = cli_as(
        &demo.admin,
        Some(&demo.tenant),
        &[
            "iam",
            "template",
            "--destination",
            "demo",
            "--format",
            "json",
        ],
    )
    .await?;
    if iam.code != 0 {
        show(&iam);
        demo.failed.push("iam template".into());
    }
    let iam_file = dir.join("iam.json");
    std::fs::write(&iam_file, &iam.stdout)?;
    let applied = simctl(
        &dir,
        &["apply-iam", "--file", iam_file.to_str().unwrap_or_default()],
    )
    .await?;
    println!(
        "    applied: role {}, provider {}",
        applied["role_arn"], applied["saml_provider_arn"]
    );

    step(
        6,
        "Over the tenant API (TLS, signed requests): verify the enclave, seal demo.env to its attested key, submit, and wait for the sync",
    );
    let env_file = dir.join("demo.env");
    std::fs::write(&env_file, SAMPLE_ENV)?;
    let ca = tenant_api.ca.display().to_string();
    demo.run(
        "env push",
        &[
            "env",
            "push",
            "--endpoint",
            &tenant_api.url,
            "--endpoint-ca",
            &ca,
            "--destination",
            "demo",
            "--file",
            env_file.to_str().unwrap_or_default(),
            "--wait",
        ],
    )
    .await?;

    step(7, "Read the secret back from (simulated) Secrets Manager");
    let secret = simctl(
        &dir,
        &[
            "--region",
            &args.region,
            "get-secret",
            "--name",
            "demo/app/env",
        ],
    )
    .await;
    let matches = match &secret {
        Ok(s) if s["exists"] == true => {
            let value: serde_json::Value =
                serde_json::from_str(s["value"].as_str().unwrap_or("{}"))?;
            println!("    tags: {}", s["tags"]);
            let names: Vec<&String> = value
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            println!("    the secret holds {} variables: {names:?}", names.len());
            let expected = expected_json()?;
            let same = value == expected;
            println!("    equal to demo.env: {same}");
            same
        }
        other => {
            println!("    the secret is not there: {other:?}");
            false
        }
    };
    if !matches {
        demo.failed.push("read back".into());
    }
    demo.run("history", &["destination", "history", "demo"])
        .await?;
    println!(
        "    $ curl -s http://{metrics}/metrics | grep -E '^nitrosync_(build_info|sync_duration_seconds_count|syncs_total)'"
    );
    match http_get(metrics, "/metrics").await {
        Ok((200, body)) => {
            for line in body.lines().filter(|l| {
                l.starts_with("nitrosync_build_info")
                    || l.starts_with("nitrosync_sync_duration_seconds_count")
                    || l.starts_with("nitrosync_syncs_total")
            }) {
                println!("    {line}");
            }
        }
        Ok((code, _)) => {
            println!("    GET /metrics: {code}");
            demo.failed.push("metrics".into());
        }
        Err(e) => {
            println!("    {e:#}");
            demo.failed.push("metrics".into());
        }
    }

    step(
        8,
        "Restart the enclave (killed, as a crash would): the parent hands it the sealed identity it stored, and its SAML metadata is byte-identical",
    );
    if !restart_keeps_identity(&mut stack, &mut demo).await? {
        demo.failed.push("restart".into());
    }

    if args.check {
        // The hint printed at the end, on a copy of demo.env: the edit and the push must work.
        if !log_level_hint_works(&dir, &env_file, &args.region, &mut demo).await? {
            demo.failed.push("log level hint".into());
        }
        stack.stop().await?;
        if !demo.failed.is_empty() {
            bail!("sim check failed at: {}", demo.failed.join(", "));
        }
        println!(
            "\nsim check passed: the secret in the simulator equals demo.env, written by the enclave through the relay; the enclave kept its sealed identity across a restart."
        );
        return Ok(());
    }
    println!("\nThe stack is up. In another terminal, try:");
    println!(
        "    export NITROSYNC_ADMIN_SOCKET={} NITROSYNC_TENANT_DIR={}",
        demo.admin.display(),
        demo.tenant.display()
    );
    println!("    target/debug/nitrosync status");
    println!("    curl http://{metrics}/metrics; curl http://{metrics}/healthz");
    println!("    target/debug/nitrosync enclave describe");
    println!("    target/debug/nitrosync destination list");
    println!("    target/debug/nitrosync destination test demo");
    println!(
        "    {} && target/debug/nitrosync env push --destination demo --file {} --wait",
        log_level_edit(&env_file),
        env_file.display()
    );
    println!("    target/debug/nitrosync destination history demo");
    println!(
        "    target/debug/nitrosync destination list --endpoint {} --endpoint-ca {ca}   # the tenant API",
        tenant_api.url
    );
    println!(
        "    target/debug/nitrosync enclave attest --out doc.cbor && target/debug/nitrosync-attest verify doc.cbor --root {}/sim-root.pem",
        dir.display()
    );
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    println!("\nStopping...");
    stack.stop().await?;
    println!("Stopped cleanly.");
    if !demo.failed.is_empty() {
        bail!("some steps failed: {}", demo.failed.join(", "));
    }
    Ok(())
}

/// Step 2's commands: how the key was made (`simctl` stands in for the operator's console).
fn show_identity_key(key: &IdentityKey) {
    println!(
        "    $ nitrosync-attest measure --simulator target/debug/nitrosync-enclave > {}",
        key.measurements.display()
    );
    println!(
        "    $ nitrosync {} > {}",
        key.template_args.join(" "),
        key.template.display()
    );
    println!(
        "    created:  key {} (simctl create-identity-key: CreateKey with the template's key policy)",
        key.key_arn
    );
    println!(
        "    parent:   instance role {} (its credentials in AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)",
        key.role_arn
    );
}

/// What the parent logs once it has unsealed the enclave and stored the sealed identity.
const UNSEALED_LOG: &str = "enclave identity unsealed";

/// Waits until the parent's log holds more than `seen` unseal lines, and prints the first new
/// one (without its timestamp). False if none appears.
async fn wait_unsealed(dir: &Path, seen: usize) -> bool {
    let log = dir.join("parent.log");
    let found = crate::wait_for(
        "the parent's unseal log line",
        std::time::Duration::from_secs(10),
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let line = text
                .lines()
                .filter(|l| l.contains(UNSEALED_LOG))
                .nth(seen)
                .map(str::to_owned);
            async move { line }
        },
    )
    .await;
    match found {
        Ok(line) => {
            let line = line.split_once(' ').map_or(line.as_str(), |(_, rest)| rest);
            println!("    parent.log: {}", line.trim());
            true
        }
        Err(e) => {
            println!("    {e:#}");
            false
        }
    }
}

/// The number of unseal lines in the parent's log.
fn unseal_lines(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("parent.log"))
        .unwrap_or_default()
        .matches(UNSEALED_LOG)
        .count()
}

impl Demo {
    /// `nitrosync enclave describe`, its identity lines.
    async fn describe_identity(&mut self) -> Result<()> {
        println!("    $ nitrosync enclave describe | grep -A2 '^identity'");
        let out = cli_as(&self.admin, Some(&self.tenant), &["enclave", "describe"]).await?;
        let lines: Vec<&str> = out.stdout.lines().collect();
        match lines.iter().position(|l| l.starts_with("identity")) {
            Some(at) if out.code == 0 => {
                for line in lines.iter().skip(at).take(3) {
                    println!("    {line}");
                }
            }
            _ => {
                show(&out);
                self.failed.push("enclave describe".into());
            }
        }
        Ok(())
    }

    /// `nitrosync saml-metadata`, written to `file`.
    async fn saml_metadata(&mut self, file: &Path) -> Result<Vec<u8>> {
        println!("    $ nitrosync saml-metadata > {}", file.display());
        let out = cli_as(&self.admin, Some(&self.tenant), &["saml-metadata"]).await?;
        if out.code != 0 {
            show(&out);
            self.failed.push("saml-metadata".into());
        }
        std::fs::write(file, &out.stdout)?;
        Ok(out.stdout.into_bytes())
    }
}

/// Step 8: restarts the enclave and compares its SAML metadata before and after. True when the
/// parent unsealed it again and the metadata is the same, byte for byte.
/// The file edit of the hint printed when the stack is up: set `LOG_LEVEL=debug` in place.
/// `demo.env` sets `LOG_LEVEL` already, and a file that sets a variable twice is refused, so the
/// hint replaces the line rather than appending one.
fn log_level_edit(env_file: &Path) -> String {
    format!(
        "sed -i 's/^LOG_LEVEL=.*/LOG_LEVEL=debug/' {}",
        env_file.display()
    )
}

/// Runs the hint's edit (through `sh`, as a user would) on a copy of `env_file`, pushes the copy
/// with `--wait`, and reads the secret back: it must hold `LOG_LEVEL=debug`.
async fn log_level_hint_works(
    dir: &Path,
    env_file: &Path,
    region: &str,
    demo: &mut Demo,
) -> Result<bool> {
    let copy = dir.join("demo-hint.env");
    std::fs::copy(env_file, &copy)?;
    let edit = log_level_edit(&copy);
    println!("\n    $ {edit}");
    let status = tokio::process::Command::new("sh")
        .args(["-c", &edit])
        .status()
        .await?;
    if !status.success() {
        println!("    the edit failed: {status}");
        return Ok(false);
    }
    let out = demo
        .run(
            "log level hint",
            &[
                "env",
                "push",
                "--destination",
                "demo",
                "--file",
                copy.to_str().unwrap_or_default(),
                "--wait",
            ],
        )
        .await?;
    if out.code != 0 {
        return Ok(false);
    }
    let secret = simctl(
        dir,
        &["--region", region, "get-secret", "--name", "demo/app/env"],
    )
    .await?;
    let value: serde_json::Value = serde_json::from_str(secret["value"].as_str().unwrap_or("{}"))?;
    let ok = value["LOG_LEVEL"] == "debug";
    println!(
        "    the secret's LOG_LEVEL after the hint: {}",
        value["LOG_LEVEL"]
    );
    Ok(ok)
}

async fn restart_keeps_identity(stack: &mut SimStack, demo: &mut Demo) -> Result<bool> {
    let dir = stack.dir.clone();
    let before = demo
        .saml_metadata(&dir.join("saml-metadata-before.xml"))
        .await?;
    let seen = unseal_lines(&dir);
    stack.restart_enclave("enclave-2.log").await?;
    println!(
        "    restarted the enclave (pid {}, log {})",
        stack.enclave.pid().unwrap_or_default(),
        stack.enclave.log.display()
    );
    let unsealed = wait_unsealed(&dir, seen).await;
    let after = demo
        .saml_metadata(&dir.join("saml-metadata-after.xml"))
        .await?;
    let same = !before.is_empty() && before == after;
    println!("    byte-identical: {same} ({} bytes)", after.len());
    Ok(unsealed && same)
}

fn expected_json() -> Result<serde_json::Value> {
    // The same values the CLI's dotenv parser reads from SAMPLE_ENV.
    Ok(serde_json::json!({
        "DATABASE_URL": "postgres://app:s3cret@db.internal:5432/app",
        "API_KEY": "demo-api-key-0f9e8d7c",
        "LOG_LEVEL": "info",
        "FEATURE_FLAGS": "checkout,search",
    }))
}

#[cfg(test)]
mod tests {
    use super::{SAMPLE_ENV, log_level_edit};

    /// The hint's edit leaves a valid environment with `LOG_LEVEL=debug` and everything else as
    /// it was (appending a second `LOG_LEVEL` would be refused as a duplicate).
    #[test]
    fn the_log_level_hint_edits_demo_env_into_a_valid_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("demo.env");
        std::fs::write(&file, SAMPLE_ENV).unwrap();
        let before = nitrosync_cli::dotenv::parse(SAMPLE_ENV).unwrap();
        let status = std::process::Command::new("sh")
            .args(["-c", &log_level_edit(&file)])
            .status()
            .unwrap();
        assert!(status.success());
        let after = nitrosync_cli::dotenv::parse(&std::fs::read_to_string(&file).unwrap())
            .unwrap_or_else(|e| panic!("the edited file does not parse: {e}"));
        assert_eq!(after.get("LOG_LEVEL").map(String::as_str), Some("debug"));
        let mut expected = before;
        expected.insert("LOG_LEVEL".into(), "debug".into());
        assert_eq!(after, expected);
        // What the old hint did: a duplicate key, which the parser refuses.
        let appended = format!("{SAMPLE_ENV}LOG_LEVEL=debug\n");
        assert!(nitrosync_cli::dotenv::parse(&appended).is_err());
    }
}
