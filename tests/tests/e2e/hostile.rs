//! The parent as an adversary: it relays the enclave's TLS to AWS, so it can cut any call it
//! likes (here through the simulator's faults), and it holds every bundle the tenant ever
//! sealed. None of that may roll a secret back (DESIGN §3), nor spend the customer's
//! `DescribeSecret` quota faster than the enclave paces it.

use crate::fleet::{
    ACCOUNT, Fleet, REGION, create_roles, destination, seal_one, successful_writes,
};
use nitrosync_shared::ErrorCode;
use nitrosync_shared::bundle::SealedBundle;
use nitrosync_shared::control::{RequestBody, ResponseBody, SyncOutcome, SyncReport};
use nitrosync_tests::{EnclaveControl, StackOptions, simctl};
use serde_json::{Value, json};
use std::path::Path;

async fn sync(ctl: &mut EnclaveControl, bundle: &SealedBundle) -> SyncReport {
    let req = RequestBody::Sync {
        bundle: nitrosync_shared::frame::encode_payload(bundle).unwrap(),
    };
    match ctl.request(req).await.unwrap() {
        ResponseBody::Sync(r) => r,
        other => panic!("unexpected answer: {other:?}"),
    }
}

/// `GET /_sim/secrets/<name>`: version ids and stages, tags, straight from moto.
async fn sim_secret(dir: &Path, name: &str) -> Value {
    simctl(dir, &["sim", "GET", &format!("secrets/{name}")])
        .await
        .unwrap()
}

/// The secret's current value, as the customer reads it.
async fn value(dir: &Path, name: &str) -> Value {
    let s = simctl(dir, &["get-secret", "--name", name]).await.unwrap();
    serde_json::from_str(s["value"].as_str().unwrap()).unwrap()
}

/// Every Secrets Manager write to `name` that reached the simulator (refused and dropped ones
/// included), from `GET /_sim/requests`.
async fn writes(dir: &Path, name: &str, action: &str) -> Vec<Value> {
    let r = simctl(dir, &["sim", "GET", "requests"]).await.unwrap();
    r["writes"][name]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|w| w["action"] == action)
        .collect()
}

#[tokio::test]
async fn dropping_tag_resource_does_not_let_an_older_bundle_roll_the_secret_back() {
    let Fleet {
        dir,
        stack,
        desc,
        tenant,
        ..
    } = Fleet::start(Default::default()).await;
    let dir_path = dir.path();
    let dest = destination("hostile", 0);
    let name = dest.secret_name.clone();
    create_roles(
        dir_path,
        &desc.saml_metadata,
        &tenant,
        std::slice::from_ref(&dest),
    )
    .await;
    // The parent's own connection stays idle: nothing is submitted through it.
    let mut ctl = EnclaveControl::connect(&stack.sockets.control)
        .await
        .unwrap();
    // Three bundles the tenant really signed, each with its own content (`VAR_0 = v0-0-N`).
    let [v1, v2, v3] = [1, 2, 3].map(|v| seal_one(&tenant, &desc.bundle_key, &dest, 0, v));
    let content_of = |v: u64| format!("v0-0-{v}");

    let r = sync(&mut ctl, &v1).await;
    assert_eq!(r.outcome, SyncOutcome::Created, "{r:?}");

    // v3: the value lands, then the parent cuts every TagResource (more than the SDK's
    // attempts), so the tags stay at v1 under v3's value.
    simctl(
        dir_path,
        &[
            "fault",
            "--action",
            "secretsmanager:TagResource",
            "--kind",
            "drop_before",
            "--count",
            "20",
        ],
    )
    .await
    .unwrap();
    let r = sync(&mut ctl, &v3).await;
    assert_eq!(r.outcome, SyncOutcome::Failed, "{r:?}");
    simctl(dir_path, &["sim", "DELETE", "faults"])
        .await
        .unwrap();
    let tags_dropped = writes(dir_path, &name, "TagResource").await;
    assert!(
        !tags_dropped.is_empty() && tags_dropped.iter().all(|w| w["status"] == "dropped_before"),
        "every TagResource was cut: {tags_dropped:?}"
    );
    let puts = writes(dir_path, &name, "PutSecretValue").await;
    assert!(
        !puts.is_empty() && puts.iter().all(|w| w["status"] == "200"),
        "v3's value was written: {puts:?}"
    );
    let v3_version_id = puts[0]["client_request_token"].clone();
    let s = sim_secret(dir_path, &name).await;
    assert_eq!(s["tags"]["nitrosync:version"], "1", "the tag lags: {s}");
    assert_eq!(s["current_version"], v3_version_id, "{s}");
    assert_eq!(value(dir_path, &name).await["VAR_0"], content_of(3));
    let versions_after_v3 = s["versions"].clone();

    // The older, validly signed v2: 2 > the tag's 1, but v3 wrote the current value.
    let r = sync(&mut ctl, &v2).await;
    assert_eq!(
        r.error.as_ref().map(|e| e.code),
        Some(ErrorCode::StaleVersion),
        "v2 must be refused over v3: {r:?}"
    );
    let s = sim_secret(dir_path, &name).await;
    assert_eq!(
        writes(dir_path, &name, "PutSecretValue").await.len(),
        puts.len(),
        "no PutSecretValue for v2"
    );
    assert_eq!(
        s["current_version"], v3_version_id,
        "AWSCURRENT is still v3's: {s}"
    );
    assert_eq!(
        value(dir_path, &name).await["VAR_0"],
        content_of(3),
        "the secret was rolled back"
    );
    assert_eq!(s["versions"], versions_after_v3);

    // v3 again: the tags catch up, the value is not written again.
    let tags_before = writes(dir_path, &name, "TagResource").await.len();
    let r = sync(&mut ctl, &v3).await;
    assert_eq!(r.outcome, SyncOutcome::Updated, "{r:?}");
    assert_eq!(
        r.aws_version_id.as_ref().map(|v| json!(v)),
        Some(v3_version_id.clone())
    );
    let s = sim_secret(dir_path, &name).await;
    assert_eq!(s["tags"]["nitrosync:version"], "3", "{s}");
    assert_eq!(s["current_version"], v3_version_id);
    assert_eq!(s["versions"], versions_after_v3, "no new value version");
    assert_eq!(
        writes(dir_path, &name, "PutSecretValue").await.len(),
        puts.len(),
        "healing the tags wrote no value"
    );
    let tag_writes = writes(dir_path, &name, "TagResource").await;
    assert_eq!(tag_writes.len(), tags_before + 1, "{tag_writes:?}");
    assert_eq!(tag_writes.last().unwrap()["status"], "200");
    // Healed: the same bundle once more writes nothing at all, and v2 is still refused.
    let r = sync(&mut ctl, &v3).await;
    assert_eq!(r.outcome, SyncOutcome::Unchanged, "{r:?}");
    assert_eq!(
        writes(dir_path, &name, "TagResource").await.len(),
        tags_before + 1
    );
    let r = sync(&mut ctl, &v2).await;
    assert_eq!(
        r.error.as_ref().map(|e| e.code),
        Some(ErrorCode::StaleVersion),
        "{r:?}"
    );
    assert_eq!(value(dir_path, &name).await["VAR_0"], content_of(3));
    stack.stop().await.unwrap();
}

/// The enclave's `DescribeSecret` rate per account and region in the flood test; its pacer
/// also lets a burst of as many through at once.
const DESCRIBES_PER_SECOND: usize = 2;

/// The most calls in any one-second window among `times` (seconds), counting each window
/// `[t, t + 1)` that starts at a call.
fn busiest_second(times: &[f64]) -> usize {
    let mut times = times.to_vec();
    times.sort_by(f64::total_cmp);
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t < times[i] + 1.0)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn busiest_second_counts_half_open_windows() {
    assert_eq!(busiest_second(&[]), 0);
    assert_eq!(busiest_second(&[5.0, 0.0, 0.0, 0.5, 1.0, 1.5]), 3);
    assert_eq!(busiest_second(&[0.0, 0.1, 0.2, 0.3, 0.99, 3.0]), 5);
}

#[tokio::test]
async fn a_flood_of_replays_spends_describe_secret_only_at_the_paced_rate() {
    let Fleet {
        dir,
        stack,
        desc,
        tenant,
        ..
    } = Fleet::start(StackOptions {
        enclave_args: vec![
            "--describes-per-second".into(),
            DESCRIBES_PER_SECOND.to_string(),
        ],
        ..Default::default()
    })
    .await;
    let dir_path = dir.path();
    // Two destinations of one account: each sync of either starts with a DescribeSecret.
    let dests: Vec<_> = (0..2).map(|i| destination("flood", i)).collect();
    create_roles(dir_path, &desc.saml_metadata, &tenant, &dests).await;
    let mut ctl = EnclaveControl::connect(&stack.sockets.control)
        .await
        .unwrap();
    let mut kept = Vec::new();
    for (i, d) in dests.iter().enumerate() {
        let [v1, v2] = [1, 2].map(|v| seal_one(&tenant, &desc.bundle_key, d, i, v));
        assert_eq!(sync(&mut ctl, &v1).await.outcome, SyncOutcome::Created);
        assert_eq!(sync(&mut ctl, &v2).await.outcome, SyncOutcome::Updated);
        kept.push([v1, v2]);
    }
    let written = successful_writes(dir_path).await;

    // The parent replays what it kept, over four connections at once: v1 is stale, v2 already
    // written. Each costs a DescribeSecret, then is refused or changes nothing.
    const CONNECTIONS: usize = 4;
    const PER_CONNECTION: usize = 3;
    let mut floods = tokio::task::JoinSet::new();
    for c in 0..CONNECTIONS {
        let bundles: Vec<SealedBundle> = (0..PER_CONNECTION)
            .map(|n| kept[c % kept.len()][n % 2].clone())
            .collect();
        let socket = stack.sockets.control.clone();
        floods.spawn(async move {
            let mut ctl = EnclaveControl::connect(&socket).await.unwrap();
            let mut reports = Vec::new();
            for b in &bundles {
                reports.push(sync(&mut ctl, b).await);
            }
            reports
        });
    }
    let reports: Vec<SyncReport> = floods.join_all().await.into_iter().flatten().collect();
    assert_eq!(reports.len(), CONNECTIONS * PER_CONNECTION);
    for r in &reports {
        let refused = r.error.as_ref().map(|e| e.code) == Some(ErrorCode::StaleVersion);
        assert!(
            refused || r.outcome == SyncOutcome::Unchanged,
            "a replay is refused or changes nothing: {r:?}"
        );
    }
    assert_eq!(
        successful_writes(dir_path).await,
        written,
        "nothing written"
    );

    // What the customer's account saw, by the simulator's clock: every DescribeSecret, when
    // it arrived, and for which account.
    let requests = simctl(dir_path, &["sim", "GET", "requests"]).await.unwrap();
    let mut by_account: std::collections::BTreeMap<(String, String), Vec<f64>> = Default::default();
    for d in &dests {
        for read in requests["reads"][&d.secret_name].as_array().unwrap() {
            if read["action"] == "DescribeSecret" {
                let key = (
                    read["account"].as_str().unwrap().to_owned(),
                    read["region"].as_str().unwrap().to_owned(),
                );
                by_account
                    .entry(key)
                    .or_default()
                    .push(read["time"].as_f64().unwrap());
            }
        }
    }
    let times = &by_account[&(ACCOUNT.to_owned(), REGION.to_owned())];
    assert_eq!(by_account.len(), 1, "{by_account:?}");
    let syncs = 2 * dests.len() + CONNECTIONS * PER_CONNECTION;
    assert!(
        times.len() >= syncs,
        "one DescribeSecret per sync: {} for {syncs}",
        times.len()
    );
    // The pacer's bucket: a burst of DESCRIBES_PER_SECOND, then DESCRIBES_PER_SECOND a
    // second. Sent as fast as the enclave can sign, the flood would put all of them in one.
    let busiest = busiest_second(times);
    assert!(
        busiest <= 2 * DESCRIBES_PER_SECOND,
        "{busiest} DescribeSecret calls in one second, over the burst and the rate of {DESCRIBES_PER_SECOND}: {times:?}"
    );
    stack.stop().await.unwrap();
}
