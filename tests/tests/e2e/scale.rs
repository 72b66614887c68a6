//! Scale: 10,000 destinations submitted at once all end synced, with no throttling error
//! surfaced, against a simulator that enforces AWS's request-rate quotas (50 CreateSecret calls a
//! second per account and region). The parent's limiter (40 writes/s per account and region, the
//! default) is what keeps the run under the quota. The enclave's and parent's memory at that load
//! are sampled and printed.
//!
//! `NITROSYNC_SCALE_DESTINATIONS` changes the count (default 10,000; the run takes about
//! count / 40 seconds, as the limiter allows).

use nitrosync_bundle::{SecretValue, TenantKey, Variables, seal};
use nitrosync_parent::admin::Status;
use nitrosync_parent::admin::destinations::SubmitReply;
use nitrosync_parent::cli::AdminClient;
use nitrosync_shared::bundle::{DeletePolicy, DestinationConfig, SealedBundle, saml_subject};
use nitrosync_shared::control::{RequestBody, ResponseBody};
use nitrosync_tests::{EnclaveControl, SimStack, rss_kib, simctl};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
/// DESIGN §11: enclave RSS under 64 MiB with 10,000 destinations.
const ENCLAVE_RSS_BUDGET_KIB: u64 = 64 * 1024;

fn rng() -> getrandom::rand_core::UnwrapErr<getrandom::SysRng> {
    getrandom::rand_core::UnwrapErr(getrandom::SysRng)
}

fn destination(i: usize) -> DestinationConfig {
    DestinationConfig {
        id: format!("d{i}"),
        region: REGION.into(),
        secret_name: format!("scale/d{i}"),
        role_arn: format!("arn:aws:iam::{ACCOUNT}:role/scale-d{i}"),
        saml_provider_arn: format!("arn:aws:iam::{ACCOUNT}:saml-provider/nitrosync"),
        kms_key_id: None,
        tags: BTreeMap::new(),
        delete_policy: DeletePolicy::Retain,
    }
}

fn variables(i: usize) -> Variables {
    Variables::from_map(
        (0..3)
            .map(|k| (format!("VAR_{k}"), SecretValue::new(format!("v{k}-{i}"))))
            .collect(),
    )
}

async fn submit(api: &AdminClient, b: &SealedBundle) -> SubmitReply {
    let bytes = nitrosync_shared::frame::encode(b).unwrap();
    api.call_with(
        http::Method::POST,
        "/v1/bundles",
        Some(bytes[4..].to_vec()),
        "application/cbor",
    )
    .await
    .unwrap_or_else(|e| panic!("submit {}: {e}", b.header.destination.id))
}

#[tokio::test]
async fn ten_thousand_destinations_submitted_at_once_all_sync_without_throttling_errors() {
    let n: usize = std::env::var("NITROSYNC_SCALE_DESTINATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let stack = SimStack::start(dir.path(), REGION).await.unwrap();
    let api = AdminClient::new(stack.sockets.admin.clone());
    let mut ctl = EnclaveControl::connect(&stack.sockets.control)
        .await
        .unwrap();
    let ResponseBody::Describe(desc) = ctl.request(RequestBody::Describe).await.unwrap() else {
        panic!("no description")
    };
    let tenant = TenantKey::generate(&mut rng());

    // The customers' side: a role per destination, trusting only that destination's subject.
    let roles: Vec<Value> = (0..n)
        .map(|i| {
            let d = destination(i);
            json!({
                "role_name": format!("scale-{}", d.id),
                "subject": saml_subject(&tenant.public(), &d.id),
                "secret_name": d.secret_name,
            })
        })
        .collect();
    let spec = dir.path().join("bulk-roles.json");
    std::fs::write(
        &spec,
        json!({"metadata": desc.saml_metadata, "provider_name": "nitrosync", "region": REGION, "roles": roles})
            .to_string(),
    )
    .unwrap();
    let out = simctl(
        dir.path(),
        &["sim", "POST", "bulk-roles", spec.to_str().unwrap()],
    )
    .await
    .unwrap();
    assert_eq!(out["created"], n, "{out}");

    // The tenants' side: one sealed bundle per destination, all submitted at once.
    let bundles: Vec<SealedBundle> = (0..n)
        .map(|i| {
            seal(
                &tenant,
                &desc.bundle_key,
                destination(i),
                1,
                0,
                &variables(i),
                &mut rng(),
            )
            .unwrap()
        })
        .collect();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in bundles.chunks(n.div_ceil(32).max(1)) {
        let (api, chunk) = (api.clone(), chunk.to_vec());
        tasks.spawn(async move {
            for b in &chunk {
                submit(&api, b).await;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let submitted = started.elapsed();
    eprintln!("scale: {n} bundles submitted in {submitted:.1?}");

    // Wait for every destination to be synced, sampling memory meanwhile.
    let enclave_pid = stack.enclave.pid().unwrap();
    let parent_pid = stack.parent.pid().unwrap();
    let (mut enclave_max, mut parent_max) = (0u64, 0u64);
    let deadline = started + Duration::from_secs(u64::try_from(n / 10).unwrap() + 300);
    let status = loop {
        enclave_max = enclave_max.max(rss_kib(enclave_pid).unwrap());
        parent_max = parent_max.max(rss_kib(parent_pid).unwrap());
        let s: Status = api
            .call(http::Method::GET, "/v1/status", None)
            .await
            .unwrap();
        let synced = s.destinations.get("synced").copied().unwrap_or(0);
        let terminal = s.destinations.get("failed_terminal").copied().unwrap_or(0);
        assert_eq!(terminal, 0, "terminal failures: {:?}", s.recent_errors);
        if synced == u64::try_from(n).unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "only {synced} of {n} synced after {:?}: {:?} {:?}",
            started.elapsed(),
            s.destinations,
            s.syncs
        );
        eprintln!(
            "scale: {:>6.1}s synced {synced}/{n} {:?} enclave RSS {} KiB",
            started.elapsed().as_secs_f64(),
            s.syncs,
            enclave_max
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    let took = started.elapsed();
    enclave_max = enclave_max.max(rss_kib(enclave_pid).unwrap());
    parent_max = parent_max.max(rss_kib(parent_pid).unwrap());

    // No error was surfaced: every sync succeeded at its first attempt.
    let failures = || {
        let log = std::fs::read_to_string(dir.path().join("enclave.log")).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains("sync done") && l.contains("Failed"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let quotas = simctl(dir.path(), &["sim", "GET", "quotas"]).await.unwrap();
    assert_eq!(
        status.syncs["failed"],
        0,
        "failed syncs:\n{}\nsimulator quotas: {quotas}",
        failures()
    );
    assert_eq!(status.syncs["succeeded"], u64::try_from(n).unwrap());
    // The parent's limiter did the pacing (without it the burst would go far over the quota).
    assert!(status.syncs["rate_limited"] > 0, "{:?}", status.syncs);

    // Each secret was created exactly once, and nothing else was written.
    let requests = simctl(dir.path(), &["sim", "GET", "requests"])
        .await
        .unwrap();
    let writes = requests["writes"].as_object().unwrap();
    let mut ok_writes = 0;
    for i in 0..n {
        let name = format!("scale/d{i}");
        let ok: Vec<&str> = writes[&name]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["status"] == "200")
            .map(|w| w["action"].as_str().unwrap())
            .collect();
        assert_eq!(ok, ["CreateSecret"], "{name}");
        ok_writes += ok.len();
    }
    assert_eq!(ok_writes, n);

    // A sample of the secrets holds the right values.
    for i in [0, n / 2, n - 1] {
        let s = simctl(
            dir.path(),
            &["get-secret", "--name", &format!("scale/d{i}")],
        )
        .await
        .unwrap();
        let v: Value = serde_json::from_str(s["value"].as_str().unwrap()).unwrap();
        assert_eq!(v["VAR_2"], format!("v2-{i}"));
    }

    eprintln!(
        "scale: {n} destinations: submitted in {submitted:.1?}, all synced after {took:.1?} \
         ({:.1} syncs/s); {} syncs waited for the rate limiter; simulator throttled {} calls \
         (retried inside the enclave, none surfaced); max RSS enclave {} KiB, parent {} KiB",
        f64::from(u32::try_from(n).unwrap()) / took.as_secs_f64(),
        status.syncs["rate_limited"],
        quotas["throttled_total"],
        enclave_max,
        parent_max
    );
    assert!(
        enclave_max < ENCLAVE_RSS_BUDGET_KIB,
        "enclave RSS {enclave_max} KiB over the {ENCLAVE_RSS_BUDGET_KIB} KiB budget"
    );
    stack.stop().await.unwrap();
}
