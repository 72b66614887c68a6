//! The tenant authorises everything that changes its secret (issue 12): the operation and the
//! bundle's lifetime are inside what the tenant signs, and a tombstone is a floor. Each test
//! plays the parent, which holds every bundle the tenant ever sealed and writes the control
//! connection's bytes, and asserts from the simulator's state that nothing was written,
//! deleted or rolled back.

use crate::sync::{World, code};
use nitrosync_shared::ErrorCode;
use nitrosync_shared::bundle::{DeletePolicy, Operation, Terms};
use nitrosync_shared::control::{ResponseBody, SyncMode, SyncOutcome};
use serde_json::Value;
use std::time::SystemTime;

fn now_ms() -> u64 {
    nitrosync_shared::unix_ms(SystemTime::now())
}

const DAY_MS: u64 = 24 * 3600 * 1000;

/// Every Secrets Manager write the simulator saw, by action.
async fn actions(w: &World, name: &str) -> Vec<String> {
    w.writes(name)
        .await
        .iter()
        .filter_map(|x| x["action"].as_str().map(str::to_owned))
        .collect()
}

/// The `Sync` request as an older protocol had it: with a `mode` the parent chose.
#[derive(serde::Serialize)]
enum HostileBody {
    Sync {
        #[serde(with = "serde_bytes")]
        bundle: Vec<u8>,
        mode: SyncMode,
    },
}

#[tokio::test]
async fn a_parent_cannot_turn_a_write_into_a_delete_or_a_test() {
    let mut w = World::start().await;
    let mut d = w.destination("doomed", "doomed/env", &[]).await;
    // The destination's signed policy allows deletion: only the tenant's tombstone may use it.
    d.config.delete_policy = DeletePolicy::Delete {
        recovery_days: None,
    };
    let v1 = w.seal(&d.config, 1, &[("K", "v1")]);
    assert_eq!(w.sync(&v1).await.outcome, SyncOutcome::Created);
    let bytes = nitrosync_shared::frame::encode_payload(&v1).unwrap();
    for mode in [SyncMode::Delete, SyncMode::TestConnection] {
        let answer = w
            .ctl
            .request_raw(&HostileBody::Sync {
                bundle: bytes.clone(),
                mode,
            })
            .await
            .unwrap();
        let ResponseBody::Sync(r) = answer else {
            panic!("unexpected answer: {answer:?}");
        };
        assert_eq!(r.mode, SyncMode::Write, "{mode:?}: {r:?}");
        assert_eq!(r.outcome, SyncOutcome::Unchanged, "{mode:?}: {r:?}");
    }
    let s = w.secret("doomed/env").await;
    assert_eq!(
        (&s["exists"], &s["deleted"]),
        (&Value::Bool(true), &Value::Bool(false))
    );
    assert_eq!(actions(&w, "doomed/env").await, ["CreateSecret"]);
    w.stack.stop().await.unwrap();
}

#[tokio::test]
async fn expired_bundles_are_refused_before_any_aws_call() {
    let mut w = World::start().await;
    let d = w.destination("late", "late/env", &[]).await;
    // A write signed two days ago for one day, replayed by the parent today.
    let stale = Terms::lasting(Operation::Write, 1, now_ms() - 2 * DAY_MS, DAY_MS);
    let r = w
        .sync(&w.seal_terms(&d.config, stale, &[("K", "old")]))
        .await;
    assert_eq!(code(&r), Some(ErrorCode::InvalidBundle), "{r:?}");
    assert!(
        r.error.as_ref().unwrap().message.contains("expired"),
        "{r:?}"
    );
    assert_eq!(r.timings.aws_calls, 0);
    // A connection test signed twenty minutes ago for five.
    let test = Terms::lasting(
        Operation::TestConnection,
        2,
        now_ms() - 20 * 60 * 1000,
        5 * 60 * 1000,
    );
    let r = w.sync(&w.seal_terms(&d.config, test, &[])).await;
    assert_eq!(code(&r), Some(ErrorCode::InvalidBundle), "{r:?}");
    assert_eq!(r.timings.aws_calls, 0);
    assert_eq!(w.secret("late/env").await["exists"], false);
    let requests = nitrosync_tests::simctl(w.dir.path(), &["sim", "GET", "requests"])
        .await
        .unwrap();
    assert!(
        requests["writes"].as_object().is_none_or(|m| m.is_empty()),
        "nothing was written: {requests}"
    );
    // The same content signed now goes through.
    let r = w.sync(&w.seal(&d.config, 3, &[("K", "new")])).await;
    assert_eq!(r.outcome, SyncOutcome::Created, "{r:?}");
    w.stack.stop().await.unwrap();
}

#[tokio::test]
async fn a_tombstone_is_a_floor_that_older_bundles_cannot_pass() {
    let mut w = World::start().await;
    let mut d = w.destination("floor", "floor/env", &[]).await;
    d.config.delete_policy = DeletePolicy::Delete {
        recovery_days: Some(7),
    };
    let old = w.seal(&d.config, 10, &[("K", "v10")]);
    assert_eq!(w.sync(&old).await.outcome, SyncOutcome::Created);
    let r = w
        .sync(&w.seal_op(Operation::Delete, &d.config, 20, &[]))
        .await;
    assert_eq!(r.outcome, SyncOutcome::Deleted, "{r:?}");
    let s = w.secret("floor/env").await;
    assert_eq!(s["deleted"], true);
    assert_eq!(
        s["tags"]["nitrosync:version"], "20",
        "the tombstone's version is the floor"
    );
    // The parent replays the older write: the name stays held, nothing is restored or written.
    let before = w.writes("floor/env").await.len();
    let r = w.sync(&old).await;
    assert_eq!(code(&r), Some(ErrorCode::SecretNameConflict), "{r:?}");
    let s = w.secret("floor/env").await;
    assert_eq!(s["deleted"], true);
    let after: Vec<String> = actions(&w, "floor/env").await.split_off(before);
    assert!(after.is_empty(), "no write after the tombstone: {after:?}");

    // A delete older than what the secret holds is a replay too.
    let mut d = w.destination("newer", "newer/env", &[]).await;
    d.config.delete_policy = DeletePolicy::Delete {
        recovery_days: None,
    };
    let tombstone = w.seal_op(Operation::Delete, &d.config, 5, &[]);
    assert_eq!(
        w.sync(&w.seal(&d.config, 9, &[("K", "v9")])).await.outcome,
        SyncOutcome::Created
    );
    let r = w.sync(&tombstone).await;
    assert_eq!(code(&r), Some(ErrorCode::StaleVersion), "{r:?}");
    assert_eq!(w.secret("newer/env").await["exists"], true);
    w.stack.stop().await.unwrap();
}

/// How many times the simulator saw `action` (`sts:AssumeRoleWithSAML`, …).
async fn calls(w: &World, action: &str) -> u64 {
    let r = nitrosync_tests::simctl(w.dir.path(), &["sim", "GET", "requests"])
        .await
        .unwrap();
    r["by_action"][action].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn connection_tests_are_budgeted_per_destination() {
    let mut w = World::start().await;
    let d = w.destination("probe", "probe/env", &[]).await;
    // The tenant signed each of these; a parent replaying or multiplying them gets no more.
    for version in 1..=6 {
        let r = w
            .sync(&w.seal_op(Operation::TestConnection, &d.config, version, &[]))
            .await;
        assert_eq!(r.error, None, "test {version}: {r:?}");
    }
    let creates = calls(&w, "secretsmanager:CreateSecret").await;
    let assumes = calls(&w, "sts:AssumeRoleWithSAML").await;
    let r = w
        .sync(&w.seal_op(Operation::TestConnection, &d.config, 7, &[]))
        .await;
    assert_eq!(code(&r), Some(ErrorCode::LimitExceeded), "{r:?}");
    assert_eq!(r.timings.aws_calls, 0);
    assert_eq!(calls(&w, "secretsmanager:CreateSecret").await, creates);
    assert_eq!(calls(&w, "sts:AssumeRoleWithSAML").await, assumes);
    w.stack.stop().await.unwrap();
}

#[tokio::test]
async fn a_refused_role_is_not_asked_again_for_every_bogus_bundle() {
    let mut w = World::start().await;
    // The role pins another subject: STS refuses every assertion for this destination.
    let other = w.subject("someone-else");
    let d = w
        .destination("refused", "refused/env", &["--subject", &other])
        .await;
    let r = w.sync(&w.seal(&d.config, 1, &[("K", "v")])).await;
    assert_eq!(code(&r), Some(ErrorCode::AssumeRoleError), "{r:?}");
    let assumes = calls(&w, "sts:AssumeRoleWithSAML").await;
    assert!(assumes >= 1);
    // Validly signed bundles for the same role, as a parent replaying them would send.
    for version in 2..=20 {
        let r = w.sync(&w.seal(&d.config, version, &[("K", "v")])).await;
        assert_eq!(code(&r), Some(ErrorCode::AssumeRoleError), "{r:?}");
        assert!(
            !r.timings.signed_assertion,
            "no signature for a cached refusal"
        );
    }
    assert_eq!(
        calls(&w, "sts:AssumeRoleWithSAML").await,
        assumes,
        "no STS call for a cached refusal"
    );
    w.stack.stop().await.unwrap();
}
