//! Flood benchmark (issue 12): what a hostile parent costs the enclave by sending bogus bundles.
//!
//! One run measures, from the enclave process's own counters (/proc/PID/stat and VmHWM):
//! - a baseline: valid writes, CPU per sync;
//! - a flood of bogus bundles of four kinds, in turn: random bytes, a tampered signature, a
//!   bundle sealed to another enclave, and a validly signed bundle for a role that refuses the
//!   assertion (the costly kind: it reaches STS);
//! - valid writes again after the flood, to show the enclave still serves.
//!
//! Run with `make bench` (release binaries). `NITROSYNC_BENCH_FLOOD` sets the number of bogus
//! bundles (default 10,000), `NITROSYNC_BENCH_SYNCS` the valid writes per phase (default 200).

// Floating-point statistics: precision loss is irrelevant here.
#![allow(clippy::as_conversions)]

use anyhow::{Context, Result, bail};
use nitrosync_bundle::{EnclaveBundleKey, SecretValue, TenantKey, Variables, seal};
use nitrosync_shared::bundle::{DestinationConfig, SealedBundle, Terms, saml_subject};
use nitrosync_shared::control::{Description, RequestBody, ResponseBody, SyncReport};
use nitrosync_tests::{
    EnclaveControl, SimStack, cpu_time, peak_rss_kib, pinned_destination, rss_kib,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

fn rng() -> getrandom::rand_core::UnwrapErr<getrandom::SysRng> {
    getrandom::rand_core::UnwrapErr(getrandom::SysRng)
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn send(ctl: &mut EnclaveControl, bundle: Vec<u8>) -> Result<SyncReport> {
    match ctl.request(RequestBody::Sync { bundle }).await? {
        ResponseBody::Sync(r) => Ok(r),
        other => bail!("unexpected {other:?}"),
    }
}

struct Phase {
    n: usize,
    cpu: Duration,
    wall: Duration,
}

impl Phase {
    fn per_item_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.n.max(1) as f64
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let flood = env_count("NITROSYNC_BENCH_FLOOD", 10_000);
    let syncs = env_count("NITROSYNC_BENCH_SYNCS", 200);
    let dir = tempfile::tempdir()?;
    // Lift write pacing: this measures CPU, not the customer's quota.
    let opts = nitrosync_tests::StackOptions {
        enclave_args: vec![
            "--writes-per-second".into(),
            "10000".into(),
            "--describes-per-second".into(),
            "10000".into(),
        ],
        ..Default::default()
    };
    let stack = SimStack::start_with(dir.path(), "us-east-1", opts).await?;
    let pid = stack.enclave.pid().context("enclave pid")?;
    let mut ctl = EnclaveControl::connect(&stack.sockets.control).await?;
    let ResponseBody::Describe(desc) = ctl.request(RequestBody::Describe).await? else {
        bail!("describe")
    };
    let desc: Description = desc;
    let metadata = dir.path().join("saml-metadata.xml");
    std::fs::write(&metadata, &desc.saml_metadata)?;
    let tenant = TenantKey::generate(&mut rng());
    let good = pinned_destination(
        dir.path(),
        &metadata,
        "good",
        "flood/good",
        &saml_subject(&tenant.public(), "good"),
    )
    .await?;
    // The role pins another subject: every assertion for it is refused by STS.
    let refusing = pinned_destination(
        dir.path(),
        &metadata,
        "refusing",
        "flood/refusing",
        "ns1-nobodynobodynobodynobodynobody",
    )
    .await?;
    let now = || nitrosync_shared::unix_ms(SystemTime::now());
    let vars = |i: usize| {
        Variables::from_map(
            (0..10)
                .map(|k| {
                    (
                        format!("VAR_{k}"),
                        SecretValue::new(format!("value-{k}-{i}-{}", "x".repeat(40))),
                    )
                })
                .collect(),
        )
    };
    let sealed = |d: &DestinationConfig, key: &[u8; 32], version: u64, i: usize| {
        seal(
            &tenant,
            key,
            d.clone(),
            Terms::write(version, now()),
            &vars(i),
            &mut rng(),
        )
    };
    let bytes = |b: &SealedBundle| nitrosync_shared::frame::encode_payload(b);

    let mut version = 0u64;
    let mut writes = async |ctl: &mut EnclaveControl, label: &str| -> Result<Phase> {
        let cpu0 = cpu_time(pid)?;
        let t = Instant::now();
        for _ in 0..syncs {
            version += 1;
            let b = bytes(&sealed(
                &good,
                &desc.bundle_key,
                version,
                usize::try_from(version)?,
            )?)?;
            let r = send(ctl, b).await?;
            if let Some(e) = r.error {
                bail!("{label}: a valid write failed: {} {}", e.code, e.message);
            }
        }
        Ok(Phase {
            n: syncs,
            cpu: cpu_time(pid)? - cpu0,
            wall: t.elapsed(),
        })
    };

    // Warm-up: the secret exists and the credentials are cached before anything is timed.
    writes(&mut ctl, "warm-up").await?;
    let rss_before = rss_kib(pid)?;
    let baseline = writes(&mut ctl, "baseline").await?;

    // The flood's bundles, made before it starts: the tenant's work is not the enclave's.
    let other = EnclaveBundleKey::generate(&mut rng());
    let template = sealed(&good, &desc.bundle_key, 1, 0)?;
    let mut bogus: Vec<Vec<u8>> = Vec::with_capacity(flood);
    for i in 0..flood {
        let b = match i % 4 {
            0 => {
                let mut junk = vec![0u8; 600];
                getrandom::fill(&mut junk)?;
                junk
            }
            1 => {
                let mut b = template.clone();
                b.signature[i % 64] ^= 1;
                bytes(&b)?
            }
            2 => bytes(&sealed(&good, &other.public(), 1, i)?)?,
            _ => bytes(&sealed(
                &refusing,
                &desc.bundle_key,
                u64::try_from(i)? + 1,
                i,
            )?)?,
        };
        bogus.push(b);
    }
    let cpu0 = cpu_time(pid)?;
    let t = Instant::now();
    let mut refused = BTreeMap::<String, usize>::new();
    for b in bogus {
        let r = send(&mut ctl, b).await?;
        let code = r
            .error
            .map(|e| e.code.to_string())
            .unwrap_or_else(|| "none".into());
        *refused.entry(code).or_default() += 1;
    }
    let flood_phase = Phase {
        n: flood,
        cpu: cpu_time(pid)? - cpu0,
        wall: t.elapsed(),
    };
    let rss_after_flood = rss_kib(pid)?;
    let after = writes(&mut ctl, "after the flood").await?;
    let peak = peak_rss_kib(pid)?;

    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("flood: {flood} bogus bundles against {syncs} valid writes per phase ({profile})");
    println!(
        "  valid writes, baseline      enclave CPU {:>8.0} us/sync   wall {:>6.2} s",
        baseline.per_item_us(),
        baseline.wall.as_secs_f64()
    );
    println!(
        "  bogus bundles               enclave CPU {:>8.0} us/bundle wall {:>6.2} s   ratio to a valid write {:.2}",
        flood_phase.per_item_us(),
        flood_phase.wall.as_secs_f64(),
        flood_phase.per_item_us() / baseline.per_item_us().max(1.0)
    );
    println!(
        "  valid writes, after         enclave CPU {:>8.0} us/sync   wall {:>6.2} s   ratio to baseline {:.2}",
        after.per_item_us(),
        after.wall.as_secs_f64(),
        after.per_item_us() / baseline.per_item_us().max(1.0)
    );
    println!(
        "  enclave RSS: {} KiB before the flood, {} KiB after it, peak {} KiB",
        rss_before, rss_after_flood, peak
    );
    println!("  answers to the flood by code: {refused:?}");
    Ok(())
}
