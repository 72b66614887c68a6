//! Harness for nitrosync's end-to-end tests, the `nitrosync-sim` launcher and the benchmarks.
//!
//! It starts the real programs (`nitrosync-parent`, `nitrosync-enclave`, the Python AWS
//! simulator) as child processes in one run directory, over Unix sockets, and stops them when
//! dropped. The binaries are found next to the running executable in Cargo's target directory;
//! `make test` builds them first, and [`bin`] refuses one older than its sources.
//! [`sim`] is the `nitrosync-sim` demo.

#![warn(missing_docs)]

mod dep_info;
pub mod sim;

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The file the parent writes beside its admin socket in simulator mode: the simulated NSM's root.
/// The simulated NSM's own copy, in its directory, has the same name.
pub const SIM_ROOT_FILE: &str = "sim-root.pem";

/// The repository root (this crate's parent directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The path of one of the workspace's binaries, built for the same profile as the caller.
///
/// Panics if there is none, or if it is older than one of its sources by the dep-info file Cargo
/// writes beside it (`<name>.d`): a test must not run a stale program. Without that file there is
/// no verdict and the binary is used.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // A test runs from target/<profile>/deps, a binary from target/<profile>.
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            if let Some(stale) = dep_info::stale_source(&candidate, &repo_root()) {
                panic!(
                    "binary {} is stale: {stale} (by {}); rebuild the workspace's binaries with `cargo build --workspace --bins` (which `make test` does)",
                    candidate.display(),
                    dep_info::dep_info_path(&candidate).display()
                );
            }
            return candidate;
        }
    }
    panic!(
        "binary {name} not found next to {}: build the workspace's binaries first (`cargo build --workspace --bins`, which `make test` does)",
        exe.display()
    );
}

/// The Python interpreter of the repository's virtualenv (`NITROSYNC_PYTHON` overrides it).
pub fn python() -> PathBuf {
    std::env::var_os("NITROSYNC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"))
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Proc {
    /// What it is, for messages.
    pub name: String,
    child: Child,
    /// Its log file (stdout and stderr).
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with its output in `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Result<Proc> {
        let out =
            std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        let child = cmd.spawn().with_context(|| format!("start {name}"))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
            log,
        })
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Fails if the process has exited, quoting the end of its log.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); its log ends:\n{}",
                self.name,
                self.log_tail(20)
            );
        }
        Ok(())
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Sends SIGTERM and waits up to `grace` for a clean exit; kills it after that.
    pub async fn stop(&mut self, grace: Duration) -> Result<std::process::ExitStatus> {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(r) => Ok(r?),
            Err(_) => {
                self.child.kill().await?;
                bail!("{} did not stop within {grace:?} of SIGTERM", self.name)
            }
        }
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub async fn kill(&mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

/// Polls `f` every 20 ms until it returns `Some`, or fails after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The running AWS simulator.
#[derive(Debug)]
pub struct AwsSim {
    /// The process.
    pub proc: Proc,
    /// Its loopback port.
    pub port: u16,
    /// Its CA certificate (PEM).
    pub ca: PathBuf,
}

impl AwsSim {
    /// Starts the simulator with its state under `dir/aws-sim` and waits until it listens.
    pub async fn start(dir: &Path, regions: &[&str]) -> Result<AwsSim> {
        Self::start_with(dir, regions, &[]).await
    }

    /// [`AwsSim::start`] with extra arguments (`--attestation-root FILE`, …).
    pub async fn start_with(dir: &Path, regions: &[&str], extra: &[String]) -> Result<AwsSim> {
        let state = dir.join("aws-sim");
        let script = repo_root().join("tests/aws-sim/aws_sim.py");
        let py = python();
        if !py.exists() {
            bail!(
                "{} not found: run `make setup` to create the virtualenv",
                py.display()
            );
        }
        let mut cmd = Command::new(py);
        cmd.arg(script).arg("--state-dir").arg(&state).args([
            "--port",
            "0",
            "--regions",
            &regions.join(","),
        ]);
        cmd.args(extra);
        let mut proc = Proc::spawn("aws-sim", cmd, dir.join("aws-sim.log"))?;
        let ready = state.join("ready.json");
        let info: serde_json::Value =
            loop_until_ready(&mut proc, &ready, Duration::from_secs(60)).await?;
        let port = info["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .context("ready.json has no port")?;
        let ca = PathBuf::from(info["ca"].as_str().context("ready.json has no ca")?);
        Ok(AwsSim { proc, port, ca })
    }
}

async fn loop_until_ready(
    proc: &mut Proc,
    ready: &Path,
    timeout: Duration,
) -> Result<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    loop {
        proc.check_alive()?;
        if let Ok(text) = std::fs::read_to_string(ready)
            && let Ok(v) = serde_json::from_str(&text)
        {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!(
                "{} not ready after {timeout:?}:\n{}",
                proc.name,
                proc.log_tail(20)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Socket paths of a simulator stack in one run directory.
#[derive(Debug, Clone)]
pub struct Sockets {
    /// The enclave's control socket.
    pub control: PathBuf,
    /// The parent relay's socket.
    pub relay: PathBuf,
    /// The admin API socket.
    pub admin: PathBuf,
}

impl Sockets {
    /// The standard layout under `dir`.
    pub fn in_dir(dir: &Path) -> Sockets {
        Sockets {
            control: dir.join("enclave-5000.sock"),
            relay: dir.join("relay-8000.sock"),
            admin: dir.join("admin.sock"),
        }
    }
}

/// Starts `nitrosync-enclave --simulator`.
pub fn start_enclave(dir: &Path, s: &Sockets, ca: &Path, log_name: &str) -> Result<Proc> {
    start_enclave_with(dir, s, ca, log_name, &[])
}

/// Starts `nitrosync-enclave --simulator` with extra arguments.
pub fn start_enclave_with(
    dir: &Path,
    s: &Sockets,
    ca: &Path,
    log_name: &str,
    extra: &[String],
) -> Result<Proc> {
    start_enclave_logging(dir, s, ca, log_name, extra, "info")
}

/// [`start_enclave_with`] with the enclave's `RUST_LOG`.
pub fn start_enclave_logging(
    dir: &Path,
    s: &Sockets,
    ca: &Path,
    log_name: &str,
    extra: &[String],
    rust_log: &str,
) -> Result<Proc> {
    let mut cmd = Command::new(bin("nitrosync-enclave"));
    cmd.arg("--simulator")
        .arg("--sim-ca")
        .arg(ca)
        .arg("--control")
        .arg(format!("unix:{}", s.control.display()))
        .arg("--relay")
        .arg(format!("unix:{}", s.relay.display()))
        .arg("--sim-nsm-dir")
        .arg(dir.join("nsm"))
        .args(["--log-stderr", "text"])
        .args(extra)
        .env("RUST_LOG", rust_log);
    // Keys that die with the process, unless the caller asks for the KMS-sealed identity
    // (which needs a KMS key and a parent configured with it).
    if !extra.iter().any(|a| a == "--identity") {
        cmd.args(["--identity", "ephemeral"]);
    }
    Proc::spawn("nitrosync-enclave", cmd, dir.join(log_name))
}

/// Starts `nitrosync-parent` with the given extra arguments.
pub fn start_parent(dir: &Path, s: &Sockets, extra: &[String], log_name: &str) -> Result<Proc> {
    start_parent_env(dir, s, extra, &[], log_name)
}

/// [`start_parent`] with extra environment variables (the instance role's credentials, …).
pub fn start_parent_env(
    dir: &Path,
    s: &Sockets,
    extra: &[String],
    env: &[(String, String)],
    log_name: &str,
) -> Result<Proc> {
    let mut cmd = Command::new(bin("nitrosync-parent"));
    cmd.arg("--control")
        .arg(format!("unix:{}", s.control.display()))
        .arg("--relay-listen")
        .arg(format!("unix:{}", s.relay.display()))
        .arg("--admin-socket")
        .arg(&s.admin)
        .arg("--store")
        .arg(dir.join("parent.db"))
        .args(extra)
        .env("RUST_LOG", "info")
        .env_remove("NITROSYNC_CONFIG")
        .envs(env.iter().map(|(k, v)| (k, v)));
    Proc::spawn("nitrosync-parent", cmd, dir.join(log_name))
}

/// A destination `id` in us-east-1 whose secret is `secret`, with a role in the simulator that
/// trusts the SAML provider made from `metadata` and pins `subject` (`simctl setup-role`).
pub async fn pinned_destination(
    dir: &Path,
    metadata: &Path,
    id: &str,
    secret: &str,
    subject: &str,
) -> Result<nitrosync_shared::bundle::DestinationConfig> {
    let out = simctl(
        dir,
        &[
            "setup-role",
            "--metadata",
            metadata.to_str().unwrap_or_default(),
            "--provider-name",
            "nitrosync",
            "--role-name",
            &format!("nitrosync-{id}"),
            "--secret-name",
            secret,
            "--subject",
            subject,
        ],
    )
    .await?;
    let arn = |k: &str| -> Result<String> {
        Ok(out[k]
            .as_str()
            .with_context(|| format!("setup-role gave no {k}"))?
            .to_owned())
    };
    Ok(nitrosync_shared::bundle::DestinationConfig {
        id: id.to_owned(),
        region: "us-east-1".into(),
        secret_name: secret.to_owned(),
        role_arn: arn("role_arn")?,
        saml_provider_arn: arn("saml_provider_arn")?,
        kms_key_id: None,
        tags: std::collections::BTreeMap::new(),
        delete_policy: nitrosync_shared::bundle::DeletePolicy::Retain,
    })
}

/// User plus system CPU time of a process (from /proc/PID/stat).
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(") ").context("stat format")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> Result<u64> {
        Ok(f.get(i)
            .context("stat has too few fields")?
            .parse::<u64>()?)
    };
    let ticks = field(11)? + field(12)?;
    // USER_HZ on Linux.
    let hz = 100;
    Ok(Duration::from_micros(ticks * 1_000_000 / hz))
}

/// The peak resident set size of a process, in KiB (`VmHWM` in /proc/PID/status).
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM line")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("no VmHWM value")?
        .parse()?)
}

/// Resident set size of a process, in KiB (from /proc/PID/status).
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS line")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("no VmRSS value")?
        .parse()?)
}

/// Output of one CLI run.
#[derive(Debug)]
pub struct CliOutput {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs the `nitrosync` CLI against `admin`.
pub async fn cli(admin: &Path, args: &[&str]) -> Result<CliOutput> {
    cli_as(admin, None, args).await
}

/// Runs the `nitrosync` CLI against `admin` with a tenant directory.
pub async fn cli_as(admin: &Path, tenant_dir: Option<&Path>, args: &[&str]) -> Result<CliOutput> {
    cli_env(admin, tenant_dir, &[], args).await
}

/// Like [`cli_as`], with extra environment variables.
pub async fn cli_env(
    admin: &Path,
    tenant_dir: Option<&Path>,
    env: &[(&str, &str)],
    args: &[&str],
) -> Result<CliOutput> {
    cli_full(admin, tenant_dir, env, args, None).await
}

/// Like [`cli_as`], with `input` piped to standard input (which is then closed).
pub async fn cli_stdin(
    admin: &Path,
    tenant_dir: Option<&Path>,
    args: &[&str],
    input: &[u8],
) -> Result<CliOutput> {
    cli_full(admin, tenant_dir, &[], args, Some(input)).await
}

async fn cli_full(
    admin: &Path,
    tenant_dir: Option<&Path>,
    env: &[(&str, &str)],
    args: &[&str],
    input: Option<&[u8]>,
) -> Result<CliOutput> {
    use tokio::io::AsyncWriteExt as _;
    let mut cmd = Command::new(bin("nitrosync"));
    cmd.args(args)
        .env("NITROSYNC_ADMIN_SOCKET", admin)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    match tenant_dir {
        Some(d) => cmd.env("NITROSYNC_TENANT_DIR", d),
        None => cmd.env_remove("NITROSYNC_TENANT_DIR"),
    };
    let mut child = cmd.spawn()?;
    if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
        // A CLI that refuses before reading its input may exit first: a broken pipe then.
        match stdin.write_all(bytes).await {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other?,
        }
        // Dropping it closes the pipe: the CLI sees the end of its input.
    }
    let out = child.wait_with_output().await?;
    Ok(CliOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Writes to `out` the measurements a simulated enclave running `binary` reports, as a tenant
/// computes them: `nitrosync-attest measure --simulator BINARY`.
pub async fn measure_simulator(binary: &Path, out: &Path) -> Result<()> {
    let measured = Command::new(bin("nitrosync-attest"))
        .arg("measure")
        .arg("--simulator")
        .arg(binary)
        .stdin(Stdio::null())
        .output()
        .await?;
    if !measured.status.success() {
        bail!(
            "nitrosync-attest measure --simulator {}: {}",
            binary.display(),
            String::from_utf8_lossy(&measured.stderr).trim()
        );
    }
    std::fs::write(out, &measured.stdout)?;
    Ok(())
}

/// Makes the tenant in `tenant_dir` trust the simulated enclave the way a tenant would, with
/// nothing taken from the daemon: the measurements of the enclave binary, as
/// `nitrosync-attest measure --simulator` computes them (written to
/// `sim_dir/enclave-measurements.json`), and the simulator root `sim_dir/sim-root.pem`.
pub async fn trust_simulator(admin: &Path, tenant_dir: &Path, sim_dir: &Path) -> Result<()> {
    let measurements = sim_dir.join("enclave-measurements.json");
    if !measurements.exists() {
        measure_simulator(&bin("nitrosync-enclave"), &measurements).await?;
    }
    let root = sim_dir.join(SIM_ROOT_FILE);
    for args in [
        vec![
            "trust",
            "add",
            path_str(&measurements)?,
            "--name",
            "sim-enclave",
        ],
        vec!["trust", "add-root", path_str(&root)?, "--name", "simulator"],
    ] {
        let out = cli_as(admin, Some(tenant_dir), &args).await?;
        if out.code != 0 {
            bail!("nitrosync {args:?}: {}{}", out.stdout, out.stderr);
        }
    }
    Ok(())
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

/// Options of [`SimStack::start_with`].
#[derive(Debug, Clone, Default)]
pub struct StackOptions {
    /// The enclave dials this socket instead of the relay's, so a test can put a recording tap
    /// in between.
    pub relay_tap: Option<PathBuf>,
    /// Extra arguments for the enclave.
    pub enclave_args: Vec<String>,
    /// The enclave's `RUST_LOG` (default `info`).
    pub enclave_rust_log: Option<String>,
    /// Extra arguments for the parent (after the stack's own).
    pub parent_args: Vec<String>,
    /// Serve the tenant API over TLS on a free loopback port, with a self-signed certificate.
    pub tenant_api: bool,
    /// Run the enclave with the KMS-sealed identity (`--identity kms`, the product's default)
    /// instead of keys that die with it (`--identity ephemeral`): the stack makes an
    /// [`IdentityKey`] in the simulator first and starts the parent with `--identity-kms-key`
    /// and the instance role's credentials; the stack is healthy once the parent has unsealed
    /// the enclave. [`SimStack::identity_key`] holds the key.
    pub sealed_identity: bool,
    /// With `sealed_identity`: measurements files (`nitrosync-attest measure`) of further images
    /// the key's policy also releases the identity to.
    pub identity_also_released_to: Vec<PathBuf>,
}

/// The operator's KMS key that seals the enclave's identity, made in the AWS simulator the way
/// an operator makes it (README, "KMS key for the enclave's identity"), and what the parent
/// unseals it with.
///
/// Given the parent's [`InstanceRole`] and the enclave binary's measurements
/// (`nitrosync-attest measure --simulator`, its PCR0 in simulator mode), [`IdentityKey::create`]
/// runs, against the simulator in a run directory:
///
/// 1. `nitrosync kms template --format json` for those measurements and that role;
/// 2. `simctl create-identity-key` with the template's key policy.
///
/// The simulator must have been started with `--attestation-root <dir>/nsm/sim-root.pem` (the
/// simulated NSM's root; [`SimStack`] does it) to check the enclave's `Recipient` documents.
#[derive(Debug, Clone)]
pub struct IdentityKey {
    /// The key's ARN, for the parent's `--identity-kms-key`.
    pub key_arn: String,
    /// The instance role's ARN, the enclave role the key policy names.
    pub role_arn: String,
    /// The instance role's temporary credentials, the parent's (redacted when printed).
    pub credentials: nitrosync_shared::control::AwsCredentials,
    /// PCR0 of the enclave binary in simulator mode, lower-case hex.
    pub pcr0: String,
    /// The measurements file of the enclave binary.
    pub measurements: PathBuf,
    /// The arguments of the `nitrosync kms template` run that wrote the key policy.
    pub template_args: Vec<String>,
    /// Its output (JSON: `key_policy`, `create_key`, `measurements`, …), given to
    /// `simctl create-identity-key`.
    pub template: PathBuf,
}

/// The account administrator's role the identity key's policy names (`--key-admin-arn`).
const KEY_ADMIN_ROLE: &str = "key-admin";

/// The parent's EC2 instance role, simulated: `simctl instance-role` makes the role (or reuses
/// it) and assumes it.
#[derive(Debug, Clone)]
pub struct InstanceRole {
    /// The role's ARN.
    pub role_arn: String,
    /// The assumed role's temporary credentials (redacted when printed).
    pub credentials: nitrosync_shared::control::AwsCredentials,
}

impl InstanceRole {
    /// Assumes the role in the simulator whose state is under `dir/aws-sim`.
    pub async fn assume(dir: &Path, region: &str) -> Result<InstanceRole> {
        let role = simctl(dir, &["instance-role", "--region", region]).await?;
        let field = |k: &str| -> Result<String> {
            Ok(role[k]
                .as_str()
                .with_context(|| format!("simctl instance-role gave no {k}"))?
                .to_owned())
        };
        Ok(InstanceRole {
            role_arn: field("role_arn")?,
            credentials: nitrosync_shared::control::AwsCredentials {
                access_key_id: field("access_key_id")?,
                secret_access_key: field("secret_access_key")?,
                session_token: role["session_token"].as_str().map(str::to_owned),
            },
        })
    }
}

impl IdentityKey {
    /// Where [`SimStack`] writes the enclave binary's measurements, in its run directory.
    pub const MEASUREMENTS_FILE: &str = "identity-key-measurements.json";

    /// Makes the key in the simulator whose state is under `dir/aws-sim`, with the template's
    /// output in `dir/identity-key-template.json`, for the parent's `role`, releasing the
    /// identity to the image of `measurements` (the enclave binary's) and to those of
    /// `also_released_to` (measurements files).
    pub async fn create(
        dir: &Path,
        region: &str,
        role: InstanceRole,
        measurements: &Path,
        also_released_to: &[PathBuf],
    ) -> Result<IdentityKey> {
        let InstanceRole {
            role_arn,
            credentials,
        } = role;
        let account = role_arn
            .split(':')
            .nth(4)
            .with_context(|| format!("no account in {role_arn}"))?
            .to_owned();

        let measured: serde_json::Value = serde_json::from_slice(
            &std::fs::read(measurements)
                .with_context(|| format!("read {}", measurements.display()))?,
        )?;
        let pcr0 = measured["PCR0"]
            .as_str()
            .with_context(|| format!("{} has no PCR0", measurements.display()))?
            .to_ascii_lowercase();

        let mut template_args: Vec<String> = vec!["kms".into(), "template".into()];
        for m in std::iter::once(measurements).chain(also_released_to.iter().map(PathBuf::as_path))
        {
            template_args.extend(["--measurements".into(), m.display().to_string()]);
        }
        template_args.extend([
            "--account".into(),
            account.clone(),
            "--key-admin-arn".into(),
            format!("arn:aws:iam::{account}:role/{KEY_ADMIN_ROLE}"),
            "--enclave-role-arn".into(),
            role_arn.clone(),
            "--region".into(),
            region.into(),
            "--format".into(),
            "json".into(),
        ]);
        let args: Vec<&str> = template_args.iter().map(String::as_str).collect();
        // `kms template` needs no daemon.
        let out = cli(Path::new("/nonexistent"), &args).await?;
        if out.code != 0 {
            bail!("nitrosync {}: {}", args.join(" "), out.stderr.trim());
        }
        let template = dir.join("identity-key-template.json");
        std::fs::write(&template, &out.stdout)?;

        let key = simctl(
            dir,
            &[
                "create-identity-key",
                "--policy",
                path_str(&template)?,
                "--region",
                region,
            ],
        )
        .await?;
        let key_arn = key["arn"]
            .as_str()
            .context("simctl create-identity-key gave no arn")?
            .to_owned();
        Ok(IdentityKey {
            key_arn,
            role_arn,
            credentials,
            pcr0,
            measurements: measurements.to_owned(),
            template_args,
            template,
        })
    }

    /// The parent's environment: the instance role's credentials as `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
    pub fn parent_env(&self) -> Vec<(String, String)> {
        let c = &self.credentials;
        vec![
            ("AWS_ACCESS_KEY_ID".into(), c.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), c.secret_access_key.clone()),
            (
                "AWS_SESSION_TOKEN".into(),
                c.session_token.clone().unwrap_or_default(),
            ),
        ]
    }

    /// The parent's flag that names the key.
    pub fn parent_args(&self) -> Vec<String> {
        vec!["--identity-kms-key".into(), self.key_arn.clone()]
    }
}

/// The tenant API of a [`SimStack`]: its URL and the PEM of its self-signed certificate.
#[derive(Debug, Clone)]
pub struct TenantApi {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The server's certificate (PEM), for `--endpoint-ca`.
    pub ca: PathBuf,
}

impl TenantApi {
    /// Writes a self-signed certificate for `localhost` and `127.0.0.1` and its key under
    /// `dir`, and picks a free loopback port. Returns the API and the parent's flags.
    pub fn prepare(dir: &Path) -> Result<(TenantApi, Vec<String>)> {
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])?;
        let ca = dir.join("tenant-api.crt");
        let key = dir.join("tenant-api.key");
        std::fs::write(&ca, certified.cert.pem())?;
        std::fs::write(&key, certified.signing_key.serialize_pem())?;
        // A port the kernel just handed out and released: free unless something grabs it in
        // the moment before the parent binds it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let listen = format!("127.0.0.1:{port}");
        let args = vec![
            "--tenant-api-listen".into(),
            listen.clone(),
            "--tenant-api-cert".into(),
            ca.display().to_string(),
            "--tenant-api-key".into(),
            key.display().to_string(),
        ];
        Ok((
            TenantApi {
                url: format!("https://{listen}"),
                ca,
            },
            args,
        ))
    }
}

/// How long a [`SimStack`] may take to become healthy, at start and after a restart (a sealed
/// identity costs KMS calls through the relay; debug builds on a busy machine are slow).
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(60);

/// The whole simulator stack: AWS simulator, enclave and parent.
#[derive(Debug)]
pub struct SimStack {
    /// The run directory.
    pub dir: PathBuf,
    /// Socket paths.
    pub sockets: Sockets,
    /// The AWS simulator.
    pub aws: AwsSim,
    /// The enclave.
    pub enclave: Proc,
    /// The parent.
    pub parent: Proc,
    /// The tenant API, when [`StackOptions::tenant_api`] asked for it.
    pub tenant_api: Option<TenantApi>,
    /// The KMS key that seals the enclave's identity, when [`StackOptions::sealed_identity`]
    /// asked for it.
    pub identity_key: Option<IdentityKey>,
    /// What [`SimStack::restart_enclave`] starts the enclave with.
    enclave_sockets: Sockets,
    enclave_args: Vec<String>,
    enclave_rust_log: String,
}

impl SimStack {
    /// Starts everything in `dir` and waits until the parent reports a healthy enclave.
    pub async fn start(dir: &Path, region: &str) -> Result<SimStack> {
        Self::start_with(dir, region, StackOptions::default()).await
    }

    /// Like [`SimStack::start`], with options.
    pub async fn start_with(dir: &Path, region: &str, opts: StackOptions) -> Result<SimStack> {
        std::fs::create_dir_all(dir)?;
        let sockets = Sockets::in_dir(dir);
        let mut enclave_args = opts.enclave_args.clone();
        let enclave_rust_log = opts
            .enclave_rust_log
            .clone()
            .unwrap_or_else(|| "info".into());
        let mut enclave_sockets = sockets.clone();
        if let Some(tap) = &opts.relay_tap {
            enclave_sockets.relay = tap.clone();
        }
        let start_enclave = |aws: &AwsSim, args: &[String]| {
            start_enclave_logging(
                dir,
                &enclave_sockets,
                &aws.ca,
                "enclave.log",
                args,
                &enclave_rust_log,
            )
        };
        let (aws, enclave, identity_key) = if opts.sealed_identity {
            if enclave_args.iter().any(|a| a == "--identity") {
                bail!("StackOptions: sealed_identity and an --identity enclave argument");
            }
            enclave_args.extend(["--identity".into(), "kms".into()]);
            // The simulated NSM writes its root when the enclave first starts; the simulator
            // reads it when a Recipient first needs it.
            let root = dir.join("nsm").join(SIM_ROOT_FILE);
            let extra = ["--attestation-root".into(), root.display().to_string()];
            // Measuring the binary needs no simulator: it overlaps the simulator's start.
            let measurements = dir.join(IdentityKey::MEASUREMENTS_FILE);
            let enclave_bin = bin("nitrosync-enclave");
            let regions = [region];
            // The enclave starts locked, and hashes itself while the key is made.
            let started = async {
                let aws = AwsSim::start_with(dir, &regions, &extra).await?;
                let enclave = start_enclave(&aws, &enclave_args)?;
                let role = InstanceRole::assume(dir, region).await?;
                anyhow::Ok((aws, enclave, role))
            };
            let (started, measured) =
                tokio::join!(started, measure_simulator(&enclave_bin, &measurements));
            let (aws, enclave, role) = started?;
            measured?;
            let key = IdentityKey::create(
                dir,
                region,
                role,
                &measurements,
                &opts.identity_also_released_to,
            )
            .await?;
            (aws, enclave, Some(key))
        } else {
            let aws = AwsSim::start(dir, &[region]).await?;
            let enclave = start_enclave(&aws, &enclave_args)?;
            (aws, enclave, None)
        };
        let mut parent_args = vec![
            "--region".into(),
            region.into(),
            "--simulator-upstream".into(),
            format!("127.0.0.1:{}", aws.port),
        ];
        parent_args.extend(opts.parent_args.iter().cloned());
        let tenant_api = if opts.tenant_api {
            let (api, args) = TenantApi::prepare(dir)?;
            parent_args.extend(args);
            Some(api)
        } else {
            None
        };
        let parent_env = match &identity_key {
            Some(key) => {
                parent_args.extend(key.parent_args());
                key.parent_env()
            }
            None => Vec::new(),
        };
        let parent = start_parent_env(dir, &sockets, &parent_args, &parent_env, "parent.log")?;
        let mut stack = SimStack {
            dir: dir.to_owned(),
            sockets,
            aws,
            enclave,
            parent,
            tenant_api,
            identity_key,
            enclave_sockets,
            enclave_args,
            enclave_rust_log,
        };
        stack.wait_healthy(HEALTHY_TIMEOUT).await?;
        Ok(stack)
    }

    /// The enclave's arguments beyond the stack's own (`--identity kms` with a sealed
    /// identity), for starting another enclave like it.
    pub fn enclave_args(&self) -> &[String] {
        &self.enclave_args
    }

    /// Kills the enclave (SIGKILL, as a crash would), starts it again as before with its log in
    /// `log_name`, and waits until the parent has reconnected and reports it healthy (with a
    /// sealed identity: until the parent has unsealed it again).
    pub async fn restart_enclave(&mut self, log_name: &str) -> Result<()> {
        let connects = self.control_connects().await?;
        self.enclave.kill().await?;
        self.enclave = start_enclave_logging(
            &self.dir,
            &self.enclave_sockets,
            &self.aws.ca,
            log_name,
            &self.enclave_args,
            &self.enclave_rust_log,
        )?;
        let deadline = Instant::now() + HEALTHY_TIMEOUT;
        while self.control_connects().await? <= connects {
            self.enclave.check_alive()?;
            if Instant::now() >= deadline {
                bail!(
                    "the parent did not reconnect within {HEALTHY_TIMEOUT:?}\nparent log:\n{}",
                    self.parent.log_tail(15)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.wait_healthy(HEALTHY_TIMEOUT).await
    }

    /// The parent's count of control connections (`nitrosync status --json`).
    async fn control_connects(&self) -> Result<u64> {
        let out = cli(&self.sockets.admin, &["status", "--json"]).await?;
        let status: serde_json::Value = serde_json::from_str(&out.stdout)
            .with_context(|| format!("nitrosync status --json: {}", out.stderr.trim()))?;
        status["control"]["connects"]
            .as_u64()
            .context("nitrosync status --json has no control.connects")
    }

    /// Waits until `nitrosync status` exits 0 (daemon up, enclave healthy).
    pub async fn wait_healthy(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.enclave.check_alive()?;
            self.parent.check_alive()?;
            let out = cli(&self.sockets.admin, &["status", "--json"]).await?;
            if out.code == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "stack not healthy after {timeout:?}: {}\nparent log:\n{}\nenclave log:\n{}",
                    out.stderr.trim(),
                    self.parent.log_tail(15),
                    self.enclave.log_tail(15)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops every process with SIGTERM and checks each exited cleanly.
    pub async fn stop(mut self) -> Result<()> {
        let grace = Duration::from_secs(5);
        let p = self.parent.stop(grace).await?;
        let e = self.enclave.stop(grace).await?;
        let a = self.aws.proc.stop(grace).await?;
        if !(p.success() && e.success() && a.success()) {
            bail!("unclean exit: parent {p}, enclave {e}, aws-sim {a}");
        }
        Ok(())
    }
}

/// Runs `tests/aws-sim/simctl.py` (the customer-side AWS set-up) against the simulator in
/// `dir/aws-sim` and returns its JSON output.
pub async fn simctl(dir: &Path, args: &[&str]) -> Result<serde_json::Value> {
    let out = Command::new(python())
        .arg(repo_root().join("tests/aws-sim/simctl.py"))
        .arg("--sim-dir")
        .arg(dir.join("aws-sim"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await?;
    if !out.status.success() {
        bail!(
            "simctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// A control connection straight to the enclave, as the parent holds one (the enclave serves a
/// few at once). Events are skipped.
#[derive(Debug)]
pub struct EnclaveControl {
    frames: nitrosync_transport::FrameReader<tokio::io::ReadHalf<nitrosync_transport::Stream>>,
    write: tokio::io::WriteHalf<nitrosync_transport::Stream>,
    next_id: u64,
}

impl EnclaveControl {
    /// Connects to the enclave's control socket.
    pub async fn connect(socket: &Path) -> Result<EnclaveControl> {
        let stream =
            nitrosync_transport::connect(&nitrosync_shared::Endpoint::Unix(socket.to_owned()))
                .await?;
        let (read, write) = tokio::io::split(stream);
        Ok(EnclaveControl {
            frames: nitrosync_transport::FrameReader::new(read),
            write,
            next_id: 1,
        })
    }

    /// Sends one request and waits for its response.
    pub async fn request(
        &mut self,
        body: nitrosync_shared::control::RequestBody,
    ) -> Result<nitrosync_shared::control::ResponseBody> {
        self.request_raw(&body).await
    }

    /// Sends one request whose body is any CBOR a hostile parent might write (for example a
    /// field the protocol does not have), and waits for its response.
    pub async fn request_raw<B: serde::Serialize>(
        &mut self,
        body: &B,
    ) -> Result<nitrosync_shared::control::ResponseBody> {
        use nitrosync_shared::control::EnclaveMessage;
        #[derive(serde::Serialize)]
        struct Raw<'a, B> {
            id: u64,
            body: &'a B,
        }
        let id = self.next_id;
        self.next_id += 1;
        nitrosync_transport::write_frame(&mut self.write, &Raw { id, body }).await?;
        loop {
            match self.frames.next::<EnclaveMessage>().await? {
                Some(EnclaveMessage::Response(r)) if r.id == id => return Ok(r.body),
                Some(_) => continue,
                None => bail!("the enclave closed the control connection"),
            }
        }
    }
}

/// A Unix-socket tap: every connection to `listen` is forwarded to `target`, and every byte
/// either way is appended to the returned buffer.
pub async fn start_tap(
    listen: &Path,
    target: &Path,
) -> Result<std::sync::Arc<std::sync::Mutex<Vec<u8>>>> {
    let listener = tokio::net::UnixListener::bind(listen)?;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let target = target.to_owned();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (target, log) = (target.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(upstream) = tokio::net::UnixStream::connect(&target).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut ur, mut uw) = upstream.into_split();
                let up = copy_recording(&mut cr, &mut uw, log.clone());
                let down = copy_recording(&mut ur, &mut cw, log);
                let _ = tokio::join!(up, down);
            });
        }
    });
    Ok(seen)
}

async fn copy_recording<R, W>(r: &mut R, w: &mut W, log: std::sync::Arc<std::sync::Mutex<Vec<u8>>>)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = w.shutdown().await;
                return;
            }
            Ok(n) => {
                log.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(&buf[..n]);
                if w.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// "release" or "DEBUG": the build of the binary `name` that [`bin`] finds, for benchmark
/// headers (a debug enclave costs about ten times the CPU of a release one).
pub fn bin_profile(name: &str) -> &'static str {
    if bin(name).components().any(|c| c.as_os_str() == "release") {
        "release"
    } else {
        "DEBUG"
    }
}

#[cfg(test)]
mod tests {
    /// [`super::SimStack`] points the simulator at the simulated NSM's root by this name (the
    /// crate cannot name the attestation crate's constant outside its tests).
    #[test]
    fn the_root_file_is_named_as_the_simulated_nsm_names_it() {
        assert_eq!(
            super::SIM_ROOT_FILE,
            nitrosync_attestation::SIM_ROOT_CERT_FILE
        );
    }
}
