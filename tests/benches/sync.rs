//! Sync benchmark: enclave CPU per write, per no-op sync, and per credential refresh, measured
//! from the enclave process's own CPU counters (/proc/PID/stat), so the AWS simulator's time is
//! excluded; wall-clock latencies and the AWS share (as the enclave measured it) are reported
//! apart.
//!
//! Run with `make bench` (release binaries). `NITROSYNC_BENCH_SYNCS` sets the number of syncs
//! per kind (default 200).

// Floating-point statistics: precision loss is irrelevant here.
#![allow(clippy::as_conversions)]

use anyhow::{Context, Result, bail};
use nitrosync_bundle::{SecretValue, TenantKey, Variables, seal};
use nitrosync_shared::bundle::saml_subject;
use nitrosync_shared::control::{Description, RequestBody, ResponseBody, SyncOutcome, SyncReport};
use nitrosync_tests::{EnclaveControl, SimStack, cpu_time, pinned_destination, simctl};
use std::time::{Duration, Instant};

fn rng() -> getrandom::rand_core::UnwrapErr<getrandom::SysRng> {
    getrandom::rand_core::UnwrapErr(getrandom::SysRng)
}

struct Run {
    cpu: Duration,
    wall: Vec<Duration>,
    aws_us: Vec<u64>,
    signed: usize,
}

fn pct<T: Copy>(sorted: &[T], p: f64) -> T {
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

fn summary(name: &str, n: usize, r: &Run) {
    let mut wall = r.wall.clone();
    wall.sort_unstable();
    let mut aws = r.aws_us.clone();
    aws.sort_unstable();
    println!(
        "  {name:<22} enclave CPU {:>7.0} us/sync   wall p50 {:>6.2} ms p99 {:>6.2} ms   AWS (sim, as the enclave timed it) p50 {:>6.2} ms p99 {:>6.2} ms   signed {}",
        r.cpu.as_secs_f64() * 1e6 / n as f64,
        pct(&wall, 0.5).as_secs_f64() * 1e3,
        pct(&wall, 0.99).as_secs_f64() * 1e3,
        pct(&aws, 0.5) as f64 / 1e3,
        pct(&aws, 0.99) as f64 / 1e3,
        r.signed,
    );
}

/// The stalls of a run: syncs whose wall time is over 4 times the median, and how much of each
/// the AWS calls (simulator, relay and TLS, as the enclave timed them) account for. Writes each
/// sync's times to `csv` for the plot.
fn stalls(name: &str, r: &Run, csv: &std::path::Path) -> Result<()> {
    let mut sorted = r.wall.clone();
    sorted.sort_unstable();
    let p50 = pct(&sorted, 0.5);
    let mut out = String::from("sync,wall_us,aws_us\n");
    let (mut count, mut wall_sum, mut aws_sum) = (0usize, 0f64, 0f64);
    for (i, (w, a)) in r.wall.iter().zip(&r.aws_us).enumerate() {
        out.push_str(&format!("{i},{},{a}\n", w.as_micros()));
        if *w > p50 * 4 {
            count += 1;
            wall_sum += w.as_secs_f64() * 1e6;
            aws_sum += *a as f64;
        }
    }
    std::fs::write(csv, out)?;
    if count == 0 {
        println!("  {name}: no stall (no sync over 4 x p50)");
    } else {
        println!(
            "  {name}: {count} stall(s) over 4 x p50, mean {:.1} ms, of which AWS calls {:.0}% (the rest is the enclave and the control connection)",
            wall_sum / count as f64 / 1e3,
            100.0 * aws_sum / wall_sum
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let n: usize = std::env::var("NITROSYNC_BENCH_SYNCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    // The shipped configuration (one runtime thread), then the same writes with two worker
    // threads as the baseline, in the same run.
    let shipped = run(n, &[], true).await?;
    let two = run(n, &["--worker-threads", "2"], false).await?;
    println!(
        "  baseline, --worker-threads 2: enclave CPU {two:.0} us/write; the shipped single thread uses {:.2}x of it",
        shipped / two
    );
    println!("BENCH sync.cpu_per_write_2threads_us {two:.1}");
    Ok(())
}

/// One stack, one enclave started with `extra` arguments: `n` cached-credential writes, and with
/// `full` also the no-op and refresh kinds, the stall analysis and the BENCH lines. Returns the
/// enclave CPU per write in microseconds.
async fn run(n: usize, extra: &[&str], full: bool) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    // Write pacing (40/s per account, region and quota group) would make the sequential writes
    // below wait for tokens; this benchmark measures CPU per write, so it is lifted.
    let mut enclave_args: Vec<String> = vec![
        "--writes-per-second".into(),
        "10000".into(),
        "--describes-per-second".into(),
        "10000".into(),
    ];
    enclave_args.extend(extra.iter().map(|a| (*a).to_owned()));
    let opts = nitrosync_tests::StackOptions {
        enclave_args,
        ..Default::default()
    };
    let stack = SimStack::start_with(dir.path(), "us-east-1", opts).await?;
    // The simulator enforces AWS's 50 writes a second per account; past its burst, writes at the
    // bench's pace were throttled and retried after a jittered back-off (the 50-130 ms "stalls"
    // of earlier runs, and retries' CPU counted as the writes'). Lift it as well.
    simctl(
        dir.path(),
        &[
            "sim",
            "PUT",
            "quotas",
            r#"{"secretsmanager:writes": 100000, "secretsmanager:tags": 100000, "secretsmanager:create": 100000}"#,
        ],
    )
    .await?;
    let pid = stack.enclave.pid().context("enclave pid")?;
    let mut ctl = EnclaveControl::connect(&stack.sockets.control).await?;
    let ResponseBody::Describe(desc) = ctl.request(RequestBody::Describe).await? else {
        bail!("describe")
    };
    let desc: Description = desc;
    let metadata = dir.path().join("saml-metadata.xml");
    std::fs::write(&metadata, &desc.saml_metadata)?;
    let tenant = TenantKey::generate(&mut rng());

    let mut dests = Vec::new();
    let refreshes = 20;
    for i in 0..=refreshes {
        let id = format!("bench{i}");
        let secret = format!("bench/{i}");
        let subject = saml_subject(&tenant.public(), &id);
        dests.push(pinned_destination(dir.path(), &metadata, &id, &secret, &subject).await?);
    }
    let vars = |i: usize| {
        let m = (0..10)
            .map(|k| {
                (
                    format!("VAR_{k}"),
                    SecretValue::new(format!("value-{k}-{i}-{}", "x".repeat(40))),
                )
            })
            .collect();
        Variables::from_map(m)
    };
    let sync = async |ctl: &mut EnclaveControl,
                      b: &nitrosync_shared::bundle::SealedBundle|
           -> Result<SyncReport> {
        match ctl
            .request(RequestBody::Sync {
                bundle: nitrosync_shared::frame::encode_payload(b)?,
            })
            .await?
        {
            ResponseBody::Sync(r) => Ok(r),
            other => bail!("unexpected {other:?}"),
        }
    };

    // Warm up: create the secret and cache the credentials.
    let main = dests[0].clone();
    let first = seal(
        &tenant,
        &desc.bundle_key,
        main.clone(),
        nitrosync_shared::bundle::Terms::write(
            1,
            nitrosync_shared::unix_ms(std::time::SystemTime::now()),
        ),
        &vars(0),
        &mut rng(),
    )?;
    let r = sync(&mut ctl, &first).await?;
    if r.outcome != SyncOutcome::Created {
        bail!("warm-up failed: {r:?}");
    }

    // Seal everything first: the tenant's work is not the enclave's.
    let writes: Vec<_> = (0..n)
        .map(|i| {
            seal(
                &tenant,
                &desc.bundle_key,
                main.clone(),
                nitrosync_shared::bundle::Terms::write(
                    2 + i as u64,
                    nitrosync_shared::unix_ms(std::time::SystemTime::now()),
                ),
                &vars(i + 1),
                &mut rng(),
            )
        })
        .collect::<Result<_, _>>()?;
    let last = 1 + n as u64;
    let noops: Vec<_> = (0..n)
        .map(|_| {
            seal(
                &tenant,
                &desc.bundle_key,
                main.clone(),
                nitrosync_shared::bundle::Terms::write(
                    last,
                    nitrosync_shared::unix_ms(std::time::SystemTime::now()),
                ),
                &vars(n),
                &mut rng(),
            )
        })
        .collect::<Result<_, _>>()?;
    let fresh: Vec<_> = dests[1..]
        .iter()
        .map(|d| {
            seal(
                &tenant,
                &desc.bundle_key,
                d.clone(),
                nitrosync_shared::bundle::Terms::write(
                    1,
                    nitrosync_shared::unix_ms(std::time::SystemTime::now()),
                ),
                &vars(0),
                &mut rng(),
            )
        })
        .collect::<Result<_, _>>()?;

    let measure = async |ctl: &mut EnclaveControl,
                         bundles: &[nitrosync_shared::bundle::SealedBundle],
                         want: SyncOutcome|
           -> Result<Run> {
        let cpu0 = cpu_time(pid)?;
        let mut run = Run {
            cpu: Duration::ZERO,
            wall: Vec::new(),
            aws_us: Vec::new(),
            signed: 0,
        };
        for b in bundles {
            let t = Instant::now();
            let r = sync(ctl, b).await?;
            run.wall.push(t.elapsed());
            if r.outcome != want {
                bail!("expected {want:?}, got {r:?}");
            }
            run.aws_us.push(r.timings.aws_us);
            run.signed += usize::from(r.timings.signed_assertion);
        }
        run.cpu = cpu_time(pid)? - cpu0;
        Ok(run)
    };
    let tunnels = async |ctl: &mut EnclaveControl| -> Result<u64> {
        match ctl.request(RequestBody::Health).await? {
            ResponseBody::Health(h) => Ok(h.tunnels_opened),
            other => bail!("unexpected {other:?}"),
        }
    };
    let t0 = tunnels(&mut ctl).await?;
    let w = measure(&mut ctl, &writes, SyncOutcome::Updated).await?;
    let t1 = tunnels(&mut ctl).await?;
    let per = |r: &Run, k: usize| r.cpu.as_secs_f64() * 1e6 / k as f64;
    let throttled = simctl(dir.path(), &["sim", "GET", "quotas"]).await?["throttled_total"]
        .as_u64()
        .unwrap_or(0);
    if throttled > 0 {
        println!(
            "  warning: the simulator throttled {throttled} calls; their retries are in these figures"
        );
    }
    if !full {
        let mut wall = w.wall.clone();
        wall.sort_unstable();
        println!(
            "  (baseline run: {} enclave, {} writes, wall p50 {:.2} ms)",
            extra.join(" "),
            n,
            pct(&wall, 0.5).as_secs_f64() * 1e3
        );
        stack.stop().await?;
        return Ok(per(&w, n));
    }
    let u = measure(&mut ctl, &noops, SyncOutcome::Unchanged).await?;
    let f = measure(&mut ctl, &fresh, SyncOutcome::Created).await?;

    println!(
        "sync benchmark: {} enclave in simulator mode, {n} syncs per kind, 10 variables (~600 B of JSON)",
        nitrosync_tests::bin_profile("nitrosync-enclave")
    );
    println!(
        "(enclave CPU from /proc/{pid}/stat, 10 ms tick resolution; AWS time is the simulator's, measured by the enclave)"
    );
    summary("write (cached creds)", n, &w);
    summary("no-op (unchanged)", n, &u);
    summary("first sync + refresh", refreshes, &f);
    // NITROSYNC_BENCH_OUT: where make bench keeps the per-sync times for its plot.
    let out = std::env::var_os("NITROSYNC_BENCH_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().to_path_buf());
    std::fs::create_dir_all(&out)?;
    stalls("writes", &w, &out.join("sync-writes.csv"))?;
    println!(
        "  TLS connections opened during the {n} writes: {} (pooled connections are reused)",
        t1 - t0
    );
    println!(
        "  credential refresh costs about {:.0} us of enclave CPU (first sync of a new role minus a cached write; includes one RSA-2048 signature and one STS call)",
        per(&f, refreshes) - per(&w, n)
    );
    println!("BENCH sync.cpu_per_write_us {:.1}", per(&w, n));
    println!("BENCH sync.cpu_per_noop_us {:.1}", per(&u, n));
    println!(
        "BENCH sync.signatures_in_cached_writes {}",
        w.signed + u.signed
    );
    println!("BENCH sync.writes {n}");
    stack.stop().await?;
    Ok(per(&w, n))
}
