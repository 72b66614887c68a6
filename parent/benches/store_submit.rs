//! Submit throughput of the store (DESIGN §11: 10,000 destinations, 1,000 submits/s sustained).
//!
//! `cargo bench --bench submit`. It writes a temporary database on the same disk as the system's
//! temporary directory (set `TMPDIR` to measure another), with `synchronous=FULL`, so every
//! transaction waits for the disk. Phases:
//!
//! 1. one transaction per submit, first version of each of the 10,000 destinations (inserts);
//! 2. one transaction per submit, a newer version of each (replacing the stored bundle);
//! 3. `submit_many` batches of 10, 100 and 1,000, newer versions again;
//! 4. the scheduler's side: `due` claims of 100 and one `record_result` transaction per sync.
//!
//! `NITROSYNC_BENCH_DESTINATIONS` changes the number of destinations (default 10,000).

use nitrosync_parent::store::{Store, Submission};
use nitrosync_shared::bundle::{
    BUNDLE_FORMAT, BundleHeader, DeletePolicy, DestinationConfig, SealedBundle,
};
use nitrosync_shared::control::{SyncMode, SyncOutcome, SyncReport, SyncTimings};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Size of the HPKE ciphertext in each bundle: an environment of a few dozen variables.
const CIPHERTEXT_LEN: usize = 2048;

fn header(i: usize, version: u64) -> BundleHeader {
    let id = format!("dest-{i:05}");
    let tenant = u8::try_from(i % 16).unwrap_or(0);
    BundleHeader {
        format: BUNDLE_FORMAT,
        tenant_key: [tenant; 32],
        enclave_key: [0xee; 32],
        destination: DestinationConfig {
            secret_name: format!("apps/{id}/env"),
            id,
            region: "us-east-1".into(),
            role_arn: "arn:aws:iam::123456789012:role/nitrosync".into(),
            saml_provider_arn: "arn:aws:iam::123456789012:saml-provider/nitrosync".into(),
            kms_key_id: None,
            tags: BTreeMap::from([("team".into(), "payments".into())]),
            delete_policy: DeletePolicy::Retain,
        },
        version,
        created_at_ms: 1_700_000_000_000,
        operation: nitrosync_shared::bundle::Operation::Write,
        not_after_ms: 1_700_000_000_000 + nitrosync_shared::bundle::DEFAULT_LIFETIME_MS,
    }
}

fn sealed(header: &BundleHeader) -> Vec<u8> {
    let bundle = SealedBundle {
        header: header.clone(),
        enc: vec![1; 32],
        ciphertext: vec![0x5a; CIPHERTEXT_LEN],
        signature: [2; 64],
    };
    nitrosync_shared::frame::encode_payload(&bundle).expect("encodes")
}

fn now_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

fn per_second(n: usize, elapsed: Duration) -> f64 {
    let n = u32::try_from(n).map(f64::from).unwrap_or(f64::MAX);
    n / elapsed.as_secs_f64()
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() - 1) * p / 100]
}

/// One transaction per submit, version `version` of every destination.
fn singles(store: &Store, n: usize, version: u64, label: &str) {
    let inputs: Vec<(BundleHeader, Vec<u8>)> = (0..n)
        .map(|i| {
            let h = header(i, version);
            let b = sealed(&h);
            (h, b)
        })
        .collect();
    let mut latencies = Vec::with_capacity(n);
    let start = Instant::now();
    for (h, b) in &inputs {
        let t = Instant::now();
        store.submit(b, h, now_ms()).expect("submit");
        latencies.push(t.elapsed());
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    println!(
        "{label:<34} {n:>6} submits in {:>7.2} s = {:>8.0}/s  (p50 {:?}, p99 {:?}, max {:?})",
        elapsed.as_secs_f64(),
        per_second(n, elapsed),
        percentile(&latencies, 50),
        percentile(&latencies, 99),
        percentile(&latencies, 100),
    );
}

/// `submit_many` in batches of `batch`, version `version` of every destination.
fn batches(store: &Store, n: usize, version: u64, batch: usize) {
    let headers: Vec<BundleHeader> = (0..n).map(|i| header(i, version)).collect();
    let bytes: Vec<Vec<u8>> = headers.iter().map(sealed).collect();
    let subs: Vec<Submission<'_>> = headers
        .iter()
        .zip(&bytes)
        .map(|(header, bundle)| Submission { bundle, header })
        .collect();
    let mut latencies = Vec::new();
    let start = Instant::now();
    for chunk in subs.chunks(batch) {
        let t = Instant::now();
        store.submit_many(chunk, now_ms()).expect("submit_many");
        latencies.push(t.elapsed());
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    println!(
        "{:<34} {n:>6} submits in {:>7.2} s = {:>8.0}/s  (p50 commit {:?}, p99 {:?})",
        format!("submit_many, batches of {batch}"),
        elapsed.as_secs_f64(),
        per_second(n, elapsed),
        percentile(&latencies, 50),
        percentile(&latencies, 99),
    );
}

/// The scheduler's side: claim in batches of 100, record each result in its own transaction.
fn scheduler(store: &Store, n: usize) {
    let start = Instant::now();
    let mut done = 0;
    loop {
        let due = store.due(u64::MAX >> 2, 100).expect("due");
        if due.is_empty() {
            break;
        }
        for d in due {
            let report = SyncReport {
                destination: d.key.id.clone(),
                version: d.version,
                mode: SyncMode::Write,
                outcome: SyncOutcome::Updated,
                error: None,
                secret_arn: None,
                aws_version_id: Some("v".into()),
                timings: SyncTimings::default(),
            };
            let now = now_ms();
            store
                .record_result(&d.key, d.version, &report, now, now, None)
                .expect("record_result");
            done += 1;
        }
    }
    let elapsed = start.elapsed();
    println!(
        "{:<34} {done:>6} results in {:>7.2} s = {:>8.0}/s  ({n} destinations)",
        "due(100) + record_result each",
        elapsed.as_secs_f64(),
        per_second(done, elapsed),
    );
}

fn main() {
    let n: usize = std::env::var("NITROSYNC_BENCH_DESTINATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Store::open(dir.path().join("bench.db")).expect("open");
    println!(
        "store submit benchmark: {n} destinations, {CIPHERTEXT_LEN}-byte ciphertext, \
         {} bytes per bundle, synchronous=FULL, in {}",
        sealed(&header(0, 1)).len(),
        dir.path().display()
    );
    singles(&store, n, 1, "submit, one txn each (insert)");
    singles(&store, n, 2, "submit, one txn each (replace)");
    for (version, batch) in (3..).zip([10, 100, 1000]) {
        batches(&store, n, version, batch);
    }
    scheduler(&store, n);
    let size = std::fs::metadata(store.path())
        .map(|m| m.len())
        .unwrap_or(0);
    println!("database file: {} KiB (plus WAL)", size / 1024);
}
