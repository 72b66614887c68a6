//! The parent as an adversary: it relays the enclave's TLS to AWS, so it can cut any call it
//! likes (here through the simulator's faults), and it holds every bundle the tenant ever
//! sealed. None of that may roll a secret back (DESIGN §3).

use crate::fleet::{Fleet, create_roles, destination, seal_one};
use nitrosync_shared::ErrorCode;
use nitrosync_shared::bundle::SealedBundle;
use nitrosync_shared::control::{RequestBody, ResponseBody, SyncOutcome, SyncReport};
use nitrosync_tests::{EnclaveControl, simctl};
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
