//! `kill -9` of the parent in the middle of a burst of submits, then a restart: every
//! acknowledged version is eventually in its secret, and no version is written twice.
//!
//! Syncs are in flight when the parent dies (the enclave finishes them on its own), and the new
//! parent re-sends every destination that was syncing. The enclave's describe-before-write and
//! its one-sync-per-destination lock are what keep those re-sends from writing again.

use crate::fleet::{Fleet, REGION, create_roles, destination, seal_one, submit, successful_writes};
use nitrosync_parent::admin::Status;
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
                .map(|k| s.destinations.get(*k).copied().unwrap_or(0))
                .sum();
            (busy == 0).then_some(s)
        },
    )
    .await
    .map(|s| {
        assert_eq!(
            s.destinations["failed_terminal"], 0,
            "{:?}",
            s.recent_errors
        )
    })
    .unwrap();

    // No version was written twice: each successful write has its own token (the token is a
    // function of destination, version and content), and the secret has exactly one AWS
    // version per successful value write.
    let writes = successful_writes(dir.path()).await;
    let mut value_writes = 0;
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
        assert_eq!(
            unique.len(),
            tokens.len(),
            "{}: a version was written twice: {log:?}",
            d.secret_name
        );
        let s = simctl(
            dir.path(),
            &["sim", "GET", &format!("secrets/{}", d.secret_name)],
        )
        .await
        .unwrap();
        assert_eq!(s["versions"], tokens.len(), "{}: {s}", d.secret_name);
        value_writes += tokens.len();
    }
    eprintln!(
        "crash: {total} submits acknowledged before the kill; {value_writes} value writes for {DESTINATIONS} destinations"
    );
    stack.stop().await.unwrap();
}
