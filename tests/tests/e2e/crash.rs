//! `kill -9` of the parent in the middle of a burst of submits, then a restart: every
//! acknowledged version is eventually in its secret, and no version is written twice.
//!
//! Syncs are in flight when the parent dies (the enclave finishes them on its own), and the new
//! parent re-sends every destination that was syncing. The enclave's describe-before-write and
//! its one-sync-per-destination lock are what keep those re-sends from writing again.

use crate::fleet::{Fleet, REGION, create_roles, destination, seal_one, submit, successful_writes};
use nitrosync_api::Status;
use nitrosync_shared::bundle::SealedBundle;
use nitrosync_tests::{simctl, start_parent, wait_for};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const DESTINATIONS: usize = 20;
const VERSIONS: u64 = 15;
/// The parent is killed once this many submits were acknowledged (of 300).
const KILL_AFTER_ACKS: usize = 120;

#[tokio::test]
async fn a_kill_of_the_parent_mid_burst_loses_no_acknowledged_version_and_writes_none_twice() {
    let Fleet {
        dir,
        mut stack,
        api,
        desc,
        tenant,
    } = Fleet::start(Default::default()).await;
    let dests: Vec<_> = (0..DESTINATIONS).map(|i| destination("crash", i)).collect();
    create_roles(dir.path(), &desc.saml_metadata, &tenant, &dests).await;
    let bundles: Vec<Vec<SealedBundle>> = dests
        .iter()
        .enumerate()
        .map(|(i, d)| {
            (1..=VERSIONS)
                .map(|v| seal_one(&tenant, &desc.bundle_key, d, i, v))
                .collect()
        })
        .collect();

    // One submitter per destination, versions in order, a few milliseconds apart; each stops at
    // its first unacknowledged submit.
    let acks = Arc::new(AtomicUsize::new(0));
    let mut submitters = tokio::task::JoinSet::new();
    for (i, versions) in bundles.into_iter().enumerate() {
        let (api, acks) = (api.clone(), acks.clone());
        submitters.spawn(async move {
            let mut acked = 0;
            for b in &versions {
                match submit(&api, b).await {
                    Ok(r) => {
                        acked = r.version;
                        acks.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => break,
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (i, acked)
        });
    }
    wait_for(
        "the burst to be under way",
        Duration::from_secs(60),
        || async { (acks.load(Ordering::SeqCst) >= KILL_AFTER_ACKS).then_some(()) },
    )
    .await
    .unwrap();
    stack.parent.kill().await.unwrap();
    let mut newest_acked = BTreeMap::new();
    while let Some(r) = submitters.join_next().await {
        let (i, acked) = r.unwrap();
        newest_acked.insert(i, acked);
    }
    let total: usize = acks.load(Ordering::SeqCst);
    assert!(
        total < DESTINATIONS * usize::try_from(VERSIONS).unwrap(),
        "the kill came after the burst ({total} acknowledged)"
    );

    let port = stack.aws.port;
    stack.parent = start_parent(
        dir.path(),
        &stack.sockets,
        &[
            "--region".into(),
            REGION.into(),
            "--simulator-upstream".into(),
            format!("127.0.0.1:{port}"),
        ],
        "parent-2.log",
    )
    .unwrap();
    stack.wait_healthy(Duration::from_secs(30)).await.unwrap();

    // Every acknowledged version (or a newer one that was stored but not acknowledged) lands.
    for (i, d) in dests.iter().enumerate() {
        let want = newest_acked[&i];
        if want == 0 {
            continue;
        }
        wait_for(
            &format!("{} to hold version {want} or newer", d.secret_name),
            Duration::from_secs(60),
            || async {
                let s = simctl(
                    dir.path(),
                    &["sim", "GET", &format!("secrets/{}", d.secret_name)],
                )
                .await
                .ok()?;
                let v: u64 = s["tags"]["nitrosync:version"].as_str()?.parse().ok()?;
                (v >= want).then_some(())
            },
        )
        .await
        .unwrap();
    }

    // Let the parent go idle, so that the write log below is final.
    wait_for(
        "every destination synced",
        Duration::from_secs(60),
        || async {
            let s: Status = api.call(http::Method::GET, "/v1/status", None).await.ok()?;
            let busy: u64 = ["pending", "syncing", "failed_retryable"]
                .iter()
                .map(|k| {
                    s.destinations
                        .as_ref()
                        .expect("the store answered")
                        .get(*k)
                        .copied()
                        .unwrap_or(0)
                })
                .sum();
            (busy == 0).then_some(s)
        },
    )
    .await
    .map(|s| {
        assert_eq!(
            s.destinations.as_ref().expect("the store answered")["failed_terminal"],
            0,
            "{:?}",
            s.recent_errors
        )
    })
    .unwrap();

    // No version was written twice. The token is a function of (destination, version,
    // content), and AWS makes a version per token, so the secret must hold exactly one AWS
    // version per distinct token written. The same token may succeed more than once: the relay
    // dies with the parent, so a write that reached AWS can lose its answer, and the SDK's
    // retry sends the same token again, which AWS answers without a new version.
    let writes = successful_writes(dir.path()).await;
    let (mut value_writes, mut repeats) = (0, 0);
    for d in &dests {
        let Some(log) = writes.get(&d.secret_name) else {
            continue;
        };
        let tokens: Vec<&str> = log
            .iter()
            .filter(|(a, _)| a == "CreateSecret" || a == "PutSecretValue")
            .map(|(_, t)| t.as_str())
            .collect();
        let unique: BTreeSet<&str> = tokens.iter().copied().collect();
        let s = simctl(
            dir.path(),
            &["sim", "GET", &format!("secrets/{}", d.secret_name)],
        )
        .await
        .unwrap();
        let versions: BTreeSet<&str> = s["version_ids"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            versions, unique,
            "{}: AWS versions are not one per distinct write: {log:?}",
            d.secret_name
        );
        value_writes += unique.len();
        repeats += tokens.len() - unique.len();
    }
    // And no two syncs wrote the same bundle version: each (destination, version) is reported
    // Created or Updated by the enclave at most once, whatever the parent re-sent.
    let log = std::fs::read_to_string(dir.path().join("enclave.log")).unwrap();
    let mut written = BTreeSet::new();
    for line in log.lines().filter(|l| l.contains("sync done")) {
        if !(line.contains("outcome=Created") || line.contains("outcome=Updated")) {
            continue;
        }
        let field = |name: &str| {
            line.split(&format!("{name}="))
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .unwrap_or_default()
                .to_owned()
        };
        let key = (field("destination"), field("version"));
        assert!(written.insert(key.clone()), "written twice: {key:?}");
    }
    eprintln!(
        "crash: {total} submits acknowledged before the kill; {value_writes} value writes for {DESTINATIONS} destinations, {repeats} idempotent retries"
    );
    stack.stop().await.unwrap();
}
