//! Daemon benchmark (issue 5): through the real parent's admin API,
//! 1. submit → secret written, p50 and p99, on an otherwise idle system (one destination, each
//!    submit waits until the history shows the write);
//! 2. sustained submits per second that the parent accepts and stores (10,000 destinations,
//!    enclave stopped so that nothing is synced meanwhile), sequential and 16 in flight;
//! 3. parent and enclave RSS.
//!
//! Run with `make bench`. `NITROSYNC_BENCH_DESTINATIONS` (default 10000),
//! `NITROSYNC_BENCH_WRITES` (default 50) and `NITROSYNC_BENCH_WRITES_PER_SECOND` (the enclave's
//! write and describe pacing, default its own 40, and the simulator's write quotas with it)
//! change the run.

// Floating-point statistics: precision loss is irrelevant here.
#![allow(clippy::as_conversions)]

use anyhow::{Context, Result, bail};
use nitrosync_api::AdminClient;
use nitrosync_api::SubmitReply;
use nitrosync_api::records::HistoryRecord;
use nitrosync_bundle::{SecretValue, TenantKey, Variables, seal};
use nitrosync_shared::bundle::{DeletePolicy, DestinationConfig, SealedBundle, saml_subject};
use nitrosync_shared::control::{Description, RequestBody, ResponseBody};
use nitrosync_tests::{EnclaveControl, SimStack, pinned_destination, rss_kib};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn rng() -> getrandom::rand_core::UnwrapErr<getrandom::SysRng> {
    getrandom::rand_core::UnwrapErr(getrandom::SysRng)
}

fn dest(id: &str, role_arn: &str, provider_arn: &str) -> DestinationConfig {
    DestinationConfig {
        id: id.into(),
        region: "us-east-1".into(),
        secret_name: format!("bench/{id}"),
        role_arn: role_arn.into(),
        saml_provider_arn: provider_arn.into(),
        kms_key_id: None,
        tags: BTreeMap::new(),
        delete_policy: DeletePolicy::Retain,
    }
}

fn vars(i: usize) -> Variables {
    Variables::from_map(
        (0..5)
            .map(|k| {
                (
                    format!("VAR_{k}"),
                    SecretValue::new(format!("value-{k}-{i}")),
                )
            })
            .collect(),
    )
}

async fn submit(api: &AdminClient, b: &SealedBundle) -> Result<SubmitReply> {
    let bytes = nitrosync_shared::frame::encode_payload(b)?;
    api.call_with(
        http::Method::POST,
        nitrosync_api::paths::BUNDLES,
        Some(bytes),
        "application/cbor",
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() -> Result<()> {
    let n: usize = std::env::var("NITROSYNC_BENCH_DESTINATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let writes: usize = std::env::var("NITROSYNC_BENCH_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    // The enclave paces writes and DescribeSecret calls at 40 a second per account by default,
    // so past their burst of 40 a long run of back-to-back writes measures the pacing (about
    // 25 ms a write). NITROSYNC_BENCH_WRITES_PER_SECOND sets the enclave's --writes-per-second
    // and --describes-per-second instead, and the simulator's write quotas to the same rate.
    let mut opts = nitrosync_tests::StackOptions::default();
    if let Ok(rate) = std::env::var("NITROSYNC_BENCH_WRITES_PER_SECOND") {
        opts.enclave_args = vec![
            "--writes-per-second".into(),
            rate.clone(),
            "--describes-per-second".into(),
            rate,
        ];
    }
    let dir = tempfile::tempdir()?;
    let mut stack = SimStack::start_with(dir.path(), "us-east-1", opts).await?;
    if let Ok(rate) = std::env::var("NITROSYNC_BENCH_WRITES_PER_SECOND") {
        // The simulator's quotas (AWS's 50 a second) follow, or they would throttle instead.
        let quotas = format!(
            r#"{{"secretsmanager:writes": {rate}, "secretsmanager:tags": {rate}, "secretsmanager:create": {rate}}}"#
        );
        nitrosync_tests::simctl(dir.path(), &["sim", "PUT", "quotas", &quotas]).await?;
    }
    let api = AdminClient::new(stack.sockets.admin.clone());
    let mut ctl = EnclaveControl::connect(&stack.sockets.control).await?;
    let ResponseBody::Describe(desc) = ctl.request(RequestBody::Describe).await? else {
        bail!("describe")
    };
    let desc: Description = desc;
    let tenant = TenantKey::generate(&mut rng());
    let metadata = dir.path().join("saml-metadata.xml");
    std::fs::write(&metadata, &desc.saml_metadata)?;

    // 1. Submit → written, one destination with a real role.
    let subject = saml_subject(&tenant.public(), "latency");
    let d = pinned_destination(dir.path(), &metadata, "latency", "bench/latency", &subject).await?;
    let mut latencies = Vec::new();
    for i in 0..=writes {
        let b = seal(
            &tenant,
            &desc.bundle_key,
            d.clone(),
            nitrosync_shared::bundle::Terms::write(
                1 + i as u64,
                nitrosync_shared::unix_ms(std::time::SystemTime::now()),
            ),
            &vars(i),
            &mut rng(),
        )?;
        let t = Instant::now();
        let reply = submit(&api, &b).await?;
        let path = format!("/v1/destinations/{}/latency/history?limit=1", reply.tenant);
        loop {
            let h: Vec<HistoryRecord> = api
                .call(http::Method::GET, &path, None)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if h.first().is_some_and(|r| r.version == reply.version) {
                if let Some(e) = &h[0].error {
                    bail!("sync failed: {} {}", e.code, e.message);
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // The first write also assumes the role; report steady state.
        if i > 0 {
            latencies.push(t.elapsed());
        }
    }
    // The p50 of the first and of the last tenth of the run: the simulator (moto) keeps every
    // version of the secret, and some of its work per call grows with their number.
    let tenth = (latencies.len() / 10).max(1);
    let p50_of = |part: &[Duration]| {
        let mut part = part.to_vec();
        part.sort_unstable();
        pct(&part, 0.5)
    };
    let (first_tenth, last_tenth) = (
        p50_of(&latencies[..tenth]),
        p50_of(&latencies[latencies.len() - tenth..]),
    );
    latencies.sort_unstable();
    let enclave_pid = stack.enclave.pid().context("enclave pid")?;
    let parent_pid = stack.parent.pid().context("parent pid")?;
    let enclave_rss = rss_kib(enclave_pid)?;

    // 2. Submits per second with the enclave stopped (nothing is synced meanwhile).
    stack.enclave.stop(Duration::from_secs(5)).await?;
    let bundles: Vec<SealedBundle> = (0..n)
        .map(|i| {
            seal(
                &tenant,
                &desc.bundle_key,
                dest(&format!("d{i}"), &d.role_arn, &d.saml_provider_arn),
                nitrosync_shared::bundle::Terms::write(
                    1,
                    nitrosync_shared::unix_ms(std::time::SystemTime::now()),
                ),
                &vars(i),
                &mut rng(),
            )
        })
        .collect::<Result<_, _>>()?;
    let half = n / 2;
    let t = Instant::now();
    for b in &bundles[..half] {
        submit(&api, b).await?;
    }
    let sequential = half as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in bundles[half..].chunks(bundles[half..].len().div_ceil(16).max(1)) {
        let (api, chunk) = (api.clone(), chunk.to_vec());
        tasks.spawn(async move {
            for b in &chunk {
                submit(&api, b).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let concurrent = (n - half) as f64 / t.elapsed().as_secs_f64();
    let parent_rss = rss_kib(parent_pid)?;

    println!(
        "daemon benchmark: {} binaries, simulator mode, AWS simulator = moto behind the strict front",
        nitrosync_tests::bin_profile("nitrosync-enclave")
    );
    println!(
        "  submit -> secret written, one destination, {writes} writes: p50 {:.1} ms, p99 {:.1} ms",
        pct(&latencies, 0.5),
        pct(&latencies, 0.99)
    );
    println!(
        "    p50 of the first tenth of the writes {first_tenth:.1} ms, of the last tenth {last_tenth:.1} ms"
    );
    println!(
        "  submits accepted and stored (synchronous=FULL), {n} destinations: {sequential:.0}/s one at a time, {concurrent:.0}/s with 16 in flight"
    );
    println!(
        "  RSS: parent {} KiB with {n} destinations stored; enclave {} KiB after {writes} writes",
        parent_rss, enclave_rss
    );
    println!(
        "BENCH daemon.submit_to_written_p50_ms {:.2}",
        pct(&latencies, 0.5)
    );
    println!("BENCH daemon.submits_per_s {concurrent:.0}");
    stack.parent.stop(Duration::from_secs(5)).await?;
    stack.aws.proc.stop(Duration::from_secs(5)).await?;
    Ok(())
}
