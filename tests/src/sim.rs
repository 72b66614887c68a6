//! The `nitrosync-sim` demo: runs the whole system on this machine (AWS simulator, simulated
//! enclave, parent) over Unix sockets in one run directory, and walks through a real sync with
//! the CLI: a tenant key, a destination, its IAM applied in the simulator, a `.env` pushed, the
//! secret read back. The binary only parses its arguments and calls [`run`].

use crate::{CliOutput, SimStack, StackOptions, cli_as, simctl};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

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
        "Starting the AWS simulator, the enclave (simulator mode) and the parent",
    );
    let opts = StackOptions {
        tenant_api: true,
        ..Default::default()
    };
    let stack = SimStack::start_with(&dir, &args.region, opts).await?;
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
        "    enclave   control unix:{}",
        stack.sockets.control.display()
    );
    println!(
        "    parent    relay unix:{}, admin {}",
        stack.sockets.relay.display(),
        stack.sockets.admin.display()
    );
    println!(
        "    tenant    API {} (TLS, self-signed certificate {})",
        tenant_api.url,
        tenant_api.ca.display()
    );
    println!("    logs      {}/*.log", dir.display());
    let mut demo = Demo {
        admin: stack.sockets.admin.clone(),
        tenant: dir.join("tenant"),
        failed: Vec::new(),
    };

    step(
        2,
        "The enclave: status, and one STS call through the relay over TLS",
    );
    demo.run("status", &["status"]).await?;
    demo.run("probe", &["enclave", "probe", "--region", &args.region])
        .await?;

    step(
        3,
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
        4,
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
        5,
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

    step(6, "Read the secret back from (simulated) Secrets Manager");
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

    if args.check {
        stack.stop().await?;
        if !demo.failed.is_empty() {
            bail!("sim check failed at: {}", demo.failed.join(", "));
        }
        println!(
            "\nsim check passed: the secret in the simulator equals demo.env, written by the enclave through the relay."
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
    println!("    target/debug/nitrosync destination list");
    println!("    target/debug/nitrosync destination test demo");
    println!(
        "    echo 'LOG_LEVEL=debug' >> {} && target/debug/nitrosync env push --destination demo --file {} --wait",
        env_file.display(),
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

fn expected_json() -> Result<serde_json::Value> {
    // The same values the CLI's dotenv parser reads from SAMPLE_ENV.
    Ok(serde_json::json!({
        "DATABASE_URL": "postgres://app:s3cret@db.internal:5432/app",
        "API_KEY": "demo-api-key-0f9e8d7c",
        "LOG_LEVEL": "info",
        "FEATURE_FLAGS": "checkout,search",
    }))
}
