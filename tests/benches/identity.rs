//! Enclave start-up with the KMS-sealed identity (issue 11), in simulator mode: how much longer an
//! enclave takes to become ready, and how much more memory it holds, when it unseals its identity
//! through KMS instead of making fresh keys.
//!
//! One run: the AWS simulator (KMS with `Recipient`), a KMS key whose policy
//! `nitrosync kms template` wrote for this enclave binary, the instance role's credentials, and a
//! parent that only relays. The parent has no `--identity-kms-key` and dials a control socket no
//! bench enclave listens on, so it never races the bench for an enclave; the enclaves' KMS calls
//! still go through its relay, over TLS to the simulator. Each start spawns the real enclave on
//! its own control socket and is timed from the spawn:
//!
//! 1. baseline, `--identity ephemeral`: spawn → connect → a `Describe` succeeds;
//! 2. sealed, first start (once): spawn `--identity kms` → connect → `Unseal { sealed: None }`
//!    (checks the key, GenerateDataKey, seals a new identity) → `Describe`;
//! 3. sealed, later starts: spawn `--identity kms` → connect → `Unseal { sealed: Some(stored) }`
//!    (checks the key, Decrypt with a `Recipient`) → `Describe`.
//!
//! One untimed ephemeral start warms the page cache and creates the simulated NSM's root first.
//! Starts of kinds 1 and 3 then alternate, so that a busy machine slows both alike. Once an
//! enclave is ready the bench reads its VmRSS and VmHWM, kills it (SIGKILL) and reaps it before
//! the next start.
//!
//! In simulator mode the enclave reads and hashes its own binary (SHA-384, for PCR0) before it
//! listens; that dominates start-up in both modes. It streams the file in 64 KiB chunks, so the
//! binary is not in VmHWM. For reference the bench also times that read and hash alone, in its
//! own process (`nitrosync_attestation::simulator_pcr0_from_reader`, what the enclave runs).
//!
//! Run with `make bench`, or `cargo bench -p nitrosync-tests --bench identity` after
//! `cargo build --release --workspace --bins` (the bench runs the release binaries next to it).
//! `NITROSYNC_BENCH_RESTARTS` (default 20) changes the number of restarts of each kind.

// Floating-point statistics: precision loss is irrelevant here.
#![allow(clippy::as_conversions)]

use anyhow::{Context, Result, bail};
use nitrosync_shared::binding::IdentitySource;
use nitrosync_shared::control::{
    AwsCredentials, Description, RequestBody, ResponseBody, SealedIdentity, UnsealReport,
    UnsealRequest,
};
use nitrosync_tests::{
    AwsSim, EnclaveControl, Proc, Sockets, bin, cli, measure_simulator, peak_rss_kib, rss_kib,
    simctl, start_parent, wait_for,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The region of the simulator, the parent's relay and the KMS key.
const REGION: &str = "us-east-1";
/// The number of timed restarts of each kind.
const RESTARTS_ENV: &str = "NITROSYNC_BENCH_RESTARTS";
/// How often a start polls the control socket.
const POLL: Duration = Duration::from_millis(1);
/// How long one start may take before the bench gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Runs of the reference read-and-hash of the enclave binary.
const HASH_RUNS: usize = 5;

/// What an enclave is started with.
#[derive(Debug, Clone)]
enum Identity {
    /// `--identity ephemeral`: fresh keys at start.
    Ephemeral,
    /// `--identity kms`, then `Unseal` with this stored identity (`None`: create one).
    Sealed(Option<SealedIdentity>),
}

/// One enclave start, measured.
#[derive(Debug)]
struct Start {
    /// From the spawn until a `Describe` succeeded.
    ready: Duration,
    /// The `Unseal` request alone (sealed starts).
    unseal: Option<Duration>,
    /// What `Unseal` answered (sealed starts).
    report: Option<UnsealReport>,
    /// What `Describe` answered.
    description: Description,
    /// VmRSS once ready, KiB.
    rss_kib: u64,
    /// VmHWM once ready, KiB.
    hwm_kib: u64,
}

/// The run directory, the simulator and the relaying parent.
#[derive(Debug)]
struct Bench {
    dir: PathBuf,
    /// The enclave binary (resolved once, so that a start times the enclave, not the lookup).
    enclave: PathBuf,
    /// The bench enclaves' sockets: the parent's relay, a control socket of their own.
    sockets: Sockets,
    aws: AwsSim,
    parent: Proc,
    key_arn: String,
    credentials: AwsCredentials,
    /// Starts so far, to name the log files.
    starts: usize,
}

impl Bench {
    /// The simulator, the instance role, the KMS key for this binary and the relaying parent.
    async fn set_up(dir: &Path) -> Result<Bench> {
        // The simulated NSM's root appears when an enclave first starts; the simulator reads it
        // when a Recipient first needs it.
        let root = dir
            .join("nsm")
            .join(nitrosync_attestation::SIM_ROOT_CERT_FILE);
        let aws = AwsSim::start_with(
            dir,
            &[REGION],
            &["--attestation-root".into(), root.display().to_string()],
        )
        .await?;
        let role = simctl(dir, &["instance-role", "--region", REGION]).await?;
        let field = |name: &str| -> Result<String> {
            role[name]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("instance-role has no {name}"))
        };
        let credentials = AwsCredentials {
            access_key_id: field("access_key_id")?,
            secret_access_key: field("secret_access_key")?,
            session_token: role["session_token"].as_str().map(str::to_owned),
        };
        let enclave = bin("nitrosync-enclave");
        let key_arn = identity_key(dir, &enclave, &field("role_arn")?).await?;

        // The parent dials the standard control socket, where no bench enclave listens.
        let parent_sockets = Sockets::in_dir(dir);
        let parent = start_parent(
            dir,
            &parent_sockets,
            &[
                "--region".into(),
                REGION.into(),
                "--simulator-upstream".into(),
                format!("127.0.0.1:{}", aws.port),
            ],
            "parent.log",
        )?;
        let relay = parent_sockets.relay.clone();
        wait_for("the parent's relay", Duration::from_secs(30), || {
            let relay = relay.clone();
            async move { relay.exists().then_some(()) }
        })
        .await?;
        let sockets = Sockets {
            control: dir.join("bench-enclave.sock"),
            ..parent_sockets
        };
        Ok(Bench {
            dir: dir.to_owned(),
            enclave,
            sockets,
            aws,
            parent,
            key_arn,
            credentials,
            starts: 0,
        })
    }

    /// Starts an enclave, waits until it is ready (unsealed, for [`Identity::Sealed`]), measures
    /// it, and kills it.
    async fn start(&mut self, identity: &Identity) -> Result<Start> {
        self.parent.check_alive()?;
        self.starts += 1;
        let mode = match identity {
            Identity::Ephemeral => "ephemeral",
            Identity::Sealed(_) => "kms",
        };
        let log = self
            .dir
            .join(format!("enclave-{:02}-{mode}.log", self.starts));
        // As `nitrosync_tests::start_enclave_with` does, with the binary resolved beforehand.
        let mut cmd = tokio::process::Command::new(&self.enclave);
        cmd.arg("--simulator")
            .arg("--sim-ca")
            .arg(&self.aws.ca)
            .arg("--control")
            .arg(format!("unix:{}", self.sockets.control.display()))
            .arg("--relay")
            .arg(format!("unix:{}", self.sockets.relay.display()))
            .arg("--sim-nsm-dir")
            .arg(self.dir.join("nsm"))
            .args(["--log-stderr", "text", "--identity", mode])
            .env("RUST_LOG", "info");

        let spawned = Instant::now();
        let mut proc = Proc::spawn("nitrosync-enclave", cmd, log)?;
        let measured = self.ready(&mut proc, identity, spawned).await;
        proc.kill().await?;
        measured.with_context(|| format!("enclave log:\n{}", proc.log_tail(20)))
    }

    /// The part of [`Bench::start`] between the spawn and the kill.
    async fn ready(&self, proc: &mut Proc, identity: &Identity, spawned: Instant) -> Result<Start> {
        let deadline = spawned + READY_TIMEOUT;
        let mut ctl = loop {
            if let Ok(ctl) = EnclaveControl::connect(&self.sockets.control).await {
                break ctl;
            }
            proc.check_alive()?;
            if Instant::now() >= deadline {
                bail!("the enclave did not listen within {READY_TIMEOUT:?}");
            }
            tokio::time::sleep(POLL).await;
        };
        let (unseal, report) = match identity {
            Identity::Ephemeral => (None, None),
            Identity::Sealed(sealed) => {
                let request = RequestBody::Unseal(UnsealRequest {
                    key_arn: self.key_arn.clone(),
                    credentials: self.credentials.clone(),
                    sealed: sealed.clone(),
                });
                let sent = Instant::now();
                let answer = ctl.request(request).await?;
                let took = sent.elapsed();
                match answer {
                    ResponseBody::Unsealed(report) => (Some(took), Some(report)),
                    other => bail!("Unseal answered {other:?}"),
                }
            }
        };
        let description = loop {
            match ctl.request(RequestBody::Describe).await? {
                ResponseBody::Describe(d) => break d,
                // Not expected (an ephemeral enclave makes its keys before it listens), but
                // a start is only over when `Describe` succeeds.
                ResponseBody::Error(_) if unseal.is_none() && Instant::now() < deadline => {
                    tokio::time::sleep(POLL).await;
                }
                other => bail!("Describe answered {other:?}"),
            }
        };
        let ready = spawned.elapsed();
        let pid = proc.pid().context("the enclave has no pid")?;
        Ok(Start {
            ready,
            unseal,
            report,
            description,
            rss_kib: rss_kib(pid)?,
            hwm_kib: peak_rss_kib(pid)?,
        })
    }

    async fn stop(mut self) -> Result<()> {
        let grace = Duration::from_secs(5);
        self.parent.stop(grace).await?;
        self.aws.proc.stop(grace).await?;
        Ok(())
    }
}

/// A KMS key in the simulator whose policy `nitrosync kms template` wrote for the measurements
/// of `enclave` and the instance role `role_arn`; returns its ARN.
async fn identity_key(dir: &Path, enclave: &Path, role_arn: &str) -> Result<String> {
    let measurements = dir.join("measurements.json");
    measure_simulator(enclave, &measurements).await?;
    let account = role_arn
        .split(':')
        .nth(4)
        .context("the role ARN has no account")?;
    let template = cli(
        Path::new("/nonexistent"),
        &[
            "kms",
            "template",
            "--measurements",
            path_str(&measurements)?,
            "--account",
            account,
            "--key-admin-arn",
            &format!("arn:aws:iam::{account}:role/key-admin"),
            "--enclave-role-arn",
            role_arn,
            "--region",
            REGION,
            "--format",
            "json",
        ],
    )
    .await?;
    if template.code != 0 {
        bail!("nitrosync kms template: {}", template.stderr.trim());
    }
    let out: serde_json::Value = serde_json::from_str(&template.stdout)?;
    let policy = dir.join("key-policy.json");
    std::fs::write(&policy, out["key_policy"].to_string())?;
    let key = simctl(
        dir,
        &[
            "create-identity-key",
            "--policy",
            path_str(&policy)?,
            "--region",
            REGION,
        ],
    )
    .await?;
    Ok(key["arn"]
        .as_str()
        .context("create-identity-key gave no arn")?
        .to_owned())
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

/// The value at quantile `q` (nearest rank) of a sorted slice.
fn quantile<T: Copy>(sorted: &[T], q: f64) -> T {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// p50, p90, min and max of some durations, in ms.
fn duration_row(label: &str, mut samples: Vec<Duration>) -> String {
    samples.sort_unstable();
    format!(
        "  {label:<34} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
        ms(quantile(&samples, 0.5)),
        ms(quantile(&samples, 0.9)),
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
    )
}

/// p50 and max of VmRSS and VmHWM, in MiB.
fn memory_row(label: &str, starts: &[Start]) -> String {
    let mut rss: Vec<u64> = starts.iter().map(|s| s.rss_kib).collect();
    let mut hwm: Vec<u64> = starts.iter().map(|s| s.hwm_kib).collect();
    rss.sort_unstable();
    hwm.sort_unstable();
    format!(
        "  {label:<34} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
        mib(quantile(&rss, 0.5)),
        mib(rss[rss.len() - 1]),
        mib(quantile(&hwm, 0.5)),
        mib(hwm[hwm.len() - 1]),
    )
}

/// The p50 of a field of some starts.
fn p50<T: Copy + Ord>(starts: &[Start], field: impl Fn(&Start) -> T) -> T {
    let mut v: Vec<T> = starts.iter().map(field).collect();
    v.sort_unstable();
    quantile(&v, 0.5)
}

/// Checks that a sealed restart holds the identity the first start sealed.
fn check_restart(first: &Start, restart: &Start, key_arn: &str) -> Result<()> {
    let report = restart.report.as_ref().context("no Unseal report")?;
    if report.created {
        bail!("a restart given the stored identity created a new one");
    }
    if restart.description.bundle_key != first.description.bundle_key {
        bail!("a restart unsealed another bundle key");
    }
    if !matches!(
        &restart.description.identity,
        Some(IdentitySource::KmsSealed { key_arn: k, .. }) if k == key_arn
    ) {
        bail!(
            "a restart describes its identity as {:?}",
            restart.description.identity
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let restarts: usize = match std::env::var(RESTARTS_ENV) {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("{RESTARTS_ENV}={v:?}: give a positive number"))?,
        Err(_) => 20,
    };
    let dir = tempfile::tempdir()?;
    let mut bench = Bench::set_up(dir.path()).await?;

    // Reference: what every simulated start does first, alone: read the binary, hash it.
    let mut hash = Vec::with_capacity(HASH_RUNS);
    for _ in 0..HASH_RUNS {
        let t = Instant::now();
        let binary = std::fs::File::open(&bench.enclave)?;
        std::hint::black_box(nitrosync_attestation::simulator_pcr0_from_reader(binary)?);
        hash.push(t.elapsed());
    }

    // Untimed: warms the page cache, creates the simulated NSM's root.
    bench.start(&Identity::Ephemeral).await?;
    let first = bench.start(&Identity::Sealed(None)).await?;
    let stored = first.report.as_ref().context("no Unseal report")?.clone();
    if !stored.created {
        bail!("the first Unseal, without a stored identity, did not create one");
    }
    let sealed = Identity::Sealed(Some(stored.sealed));
    let mut ephemeral_starts = Vec::with_capacity(restarts);
    let mut sealed_starts = Vec::with_capacity(restarts);
    for _ in 0..restarts {
        ephemeral_starts.push(bench.start(&Identity::Ephemeral).await?);
        let s = bench.start(&sealed).await?;
        check_restart(&first, &s, &bench.key_arn)?;
        sealed_starts.push(s);
    }
    let binary_mib = std::fs::metadata(&bench.enclave)?.len() as f64 / (1024.0 * 1024.0);
    bench.stop().await?;

    let readies = |starts: &[Start]| starts.iter().map(|s| s.ready).collect::<Vec<_>>();
    let unseals = sealed_starts
        .iter()
        .map(|s| s.unseal.context("no Unseal time"))
        .collect::<Result<Vec<_>>>()?;
    let first_unseal = first.unseal.context("no Unseal time")?;
    hash.sort_unstable();

    println!(
        "identity benchmark: {} binaries, simulator mode, AWS simulator = moto behind the strict front, {restarts} restarts of each kind (alternating)",
        nitrosync_tests::bin_profile("nitrosync-enclave")
    );
    println!(
        "  note: the simulated enclave reads and hashes its own {binary_mib:.1} MiB binary (PCR0) before it listens;"
    );
    println!(
        "  that dominates start-up in both modes. Read and hashed alone (in this process, warm cache, median of {HASH_RUNS}): {:.1} ms",
        ms(quantile(&hash, 0.5))
    );
    println!();
    println!(
        "  {:<34} {:>8} {:>8} {:>8} {:>8}",
        "ms", "p50", "p90", "min", "max"
    );
    println!(
        "{}",
        duration_row("start-up, ephemeral", readies(&ephemeral_starts))
    );
    println!(
        "{}",
        duration_row("start-up, sealed restart", readies(&sealed_starts))
    );
    println!("{}", duration_row("  of which the Unseal request", unseals));
    println!(
        "{}",
        duration_row("start-up, sealed first start", vec![first.ready])
    );
    println!(
        "{}",
        duration_row("  of which the Unseal request", vec![first_unseal])
    );
    println!();
    println!(
        "  {:<34} {:>8} {:>8} {:>8} {:>8}",
        "MiB, once ready", "RSS p50", "RSS max", "HWM p50", "HWM max"
    );
    println!("{}", memory_row("ephemeral", &ephemeral_starts));
    println!("{}", memory_row("sealed restart", &sealed_starts));
    println!(
        "{}",
        memory_row("sealed first start", std::slice::from_ref(&first))
    );
    println!();
    let ready_e = p50(&ephemeral_starts, |s| s.ready);
    let ready_s = p50(&sealed_starts, |s| s.ready);
    let rss_e = p50(&ephemeral_starts, |s| s.rss_kib);
    let rss_s = p50(&sealed_starts, |s| s.rss_kib);
    let hwm_e = p50(&ephemeral_starts, |s| s.hwm_kib);
    let hwm_s = p50(&sealed_starts, |s| s.hwm_kib);
    println!(
        "  sealed restart / ephemeral, p50: start-up {:.2} ({:+.1} ms), RSS {:.2} ({:+.1} MiB), HWM {:.2}",
        ms(ready_s) / ms(ready_e),
        ms(ready_s) - ms(ready_e),
        rss_s as f64 / rss_e as f64,
        mib(rss_s) - mib(rss_e),
        hwm_s as f64 / hwm_e as f64,
    );
    let mut unseal_sorted = sealed_starts
        .iter()
        .filter_map(|s| s.unseal)
        .collect::<Vec<_>>();
    unseal_sorted.sort_unstable();
    println!(
        "BENCH identity.unseal_restart_p50_ms {:.2}",
        ms(quantile(&unseal_sorted, 0.5))
    );
    println!("BENCH identity.startup_restart_p50_ms {:.2}", ms(ready_s));
    println!(
        "BENCH identity.hwm_restart_max_mib {:.1}",
        mib(sealed_starts.iter().map(|s| s.hwm_kib).max().unwrap_or(0))
    );
    Ok(())
}
