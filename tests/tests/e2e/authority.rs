//! The tenant authorises everything that changes its secret (issue 12): the operation and the
//! bundle's lifetime are inside what the tenant signs, and a tombstone is a floor. Each test
//! plays the parent, which holds every bundle the tenant ever sealed and writes the control
//! connection's bytes, and asserts from the simulator's state that nothing was written,
//! deleted or rolled back. An absent secret holds no floor, so an old bundle may not create
//! it: only one sealed within the hour (`bundle::CREATION_WINDOW_MS`) does.

use crate::sync::{World, code};
use nitrosync_shared::ErrorCode;
use nitrosync_shared::bundle::{DeletePolicy, Operation, SealedBundle, Terms};
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

const MINUTE_MS: u64 = 60 * 1000;

/// Successful `CreateSecret` calls on `name` the simulator saw.
async fn creates(w: &World, name: &str) -> usize {
    w.writes(name)
        .await
        .iter()
        .filter(|x| x["action"] == "CreateSecret" && x["status"] == "200")
        .count()
}

/// The secret's value as the customer reads it.
async fn value_of(w: &World, name: &str) -> Value {
    let s = w.secret(name).await;
    serde_json::from_str(s["value"].as_str().unwrap()).unwrap()
}

/// A write of `version` that the tenant sealed `age_ms` ago, live for the default 30 days:
/// the parent kept it.
fn sealed_ago(
    w: &World,
    d: &crate::sync::Dest,
    version: u64,
    age_ms: u64,
    k: &str,
) -> SealedBundle {
    w.seal_terms(
        &d.config,
        Terms::write(version, now_ms() - age_ms),
        &[("K", k)],
    )
}

#[tokio::test]
async fn a_kept_bundle_cannot_bring_back_a_force_deleted_secret() {
    let mut w = World::start().await;
    let mut d = w.destination("erased", "erased/env", &[]).await;
    d.config.delete_policy = DeletePolicy::Delete {
        recovery_days: None,
    };
    // v1, sealed now: the first push creates the secret.
    let r = w.sync(&w.seal(&d.config, 1, &[("K", "v1")])).await;
    assert_eq!(r.outcome, SyncOutcome::Created, "{r:?}");
    // v2, sealed ninety minutes ago and still live: past its creation window, it updates the
    // secret that exists.
    let v2 = sealed_ago(&w, &d, 2, 90 * MINUTE_MS, "v2");
    let r = w.sync(&v2).await;
    assert_eq!(r.outcome, SyncOutcome::Updated, "{r:?}");
    assert_eq!(value_of(&w, "erased/env").await["K"], "v2");
    // v3: the tenant's tombstone. Force-deleted, the secret and its version floor are gone.
    let r = w
        .sync(&w.seal_op(Operation::Delete, &d.config, 3, &[]))
        .await;
    assert_eq!(r.outcome, SyncOutcome::Deleted, "{r:?}");
    assert_eq!(w.secret("erased/env").await["exists"], false);
    let before = actions(&w, "erased/env").await.len();
    assert_eq!(creates(&w, "erased/env").await, 1);

    // The parent replays v2, which it kept: refused before CreateSecret.
    let r = w.sync(&v2).await;
    assert_eq!(code(&r), Some(ErrorCode::CreationWindowClosed), "{r:?}");
    let e = r.error.as_ref().unwrap();
    assert!(!e.retryable, "{r:?}");
    assert!(e.message.contains("Nothing was created"), "{r:?}");
    // So does any other live bundle sealed more than an hour ago.
    let r = w.sync(&sealed_ago(&w, &d, 4, 2 * 3600 * 1000, "old")).await;
    assert_eq!(code(&r), Some(ErrorCode::CreationWindowClosed), "{r:?}");
    assert_eq!(w.secret("erased/env").await["exists"], false);
    let after: Vec<String> = actions(&w, "erased/env").await.split_off(before);
    assert!(after.is_empty(), "no write after the tombstone: {after:?}");
    assert_eq!(creates(&w, "erased/env").await, 1, "no CreateSecret");
    let requests = nitrosync_tests::simctl(w.dir.path(), &["sim", "GET", "requests"])
        .await
        .unwrap();
    assert_eq!(
        requests["by_action"]["secretsmanager:CreateSecret"], 1,
        "no CreateSecret reached the simulator, refused or not: {requests}"
    );

    // The tenant pushes again: a bundle sealed now creates the secret anew.
    let r = w.sync(&w.seal(&d.config, 5, &[("K", "v5")])).await;
    assert_eq!(r.outcome, SyncOutcome::Created, "{r:?}");
    assert_eq!(value_of(&w, "erased/env").await["K"], "v5");
    w.stack.stop().await.unwrap();
}

#[tokio::test]
async fn a_kept_bundle_cannot_bring_back_a_secret_whose_recovery_window_ended() {
    let mut w = World::start().await;
    let mut d = w.destination("lapsed", "lapsed/env", &[]).await;
    d.config.delete_policy = DeletePolicy::Delete {
        recovery_days: Some(7),
    };
    let r = w.sync(&w.seal(&d.config, 1, &[("K", "v1")])).await;
    assert_eq!(r.outcome, SyncOutcome::Created, "{r:?}");
    let v2 = sealed_ago(&w, &d, 2, 90 * MINUTE_MS, "v2");
    assert_eq!(w.sync(&v2).await.outcome, SyncOutcome::Updated);
    let r = w
        .sync(&w.seal_op(Operation::Delete, &d.config, 3, &[]))
        .await;
    assert_eq!(r.outcome, SyncOutcome::Deleted, "{r:?}");
    // Within the window the name is held, with the tombstone's floor.
    assert_eq!(
        code(&w.sync(&v2).await),
        Some(ErrorCode::SecretNameConflict)
    );
    // The window ends: AWS removes the secret, tags and all. (moto keeps a deleted secret for
    // ever; the administrator's force-delete of the pending secret is the same end state.)
    nitrosync_tests::simctl(w.dir.path(), &["delete-secret", "--name", "lapsed/env"])
        .await
        .unwrap();
    assert_eq!(w.secret("lapsed/env").await["exists"], false);
    let before = actions(&w, "lapsed/env").await.len();

    let r = w.sync(&v2).await;
    assert_eq!(code(&r), Some(ErrorCode::CreationWindowClosed), "{r:?}");
    assert_eq!(w.secret("lapsed/env").await["exists"], false);
    let after: Vec<String> = actions(&w, "lapsed/env").await.split_off(before);
    assert!(after.is_empty(), "nothing written: {after:?}");
    assert_eq!(creates(&w, "lapsed/env").await, 1);
    w.stack.stop().await.unwrap();
}

#[tokio::test]
async fn only_a_bundle_sealed_within_the_hour_creates_its_secret() {
    let mut w = World::start().await;
    // The first push arrives fifty minutes after sealing (a parent outage): it creates.
    let d = w.destination("late-ok", "on-time/secret", &[]).await;
    let r = w.sync(&sealed_ago(&w, &d, 1, 50 * MINUTE_MS, "v1")).await;
    assert_eq!(r.outcome, SyncOutcome::Created, "{r:?}");
    assert_eq!(value_of(&w, "on-time/secret").await["K"], "v1");
    // Seventy minutes: refused, nothing created.
    let d = w.destination("too-late", "too-late/secret", &[]).await;
    let r = w.sync(&sealed_ago(&w, &d, 1, 70 * MINUTE_MS, "v1")).await;
    assert_eq!(code(&r), Some(ErrorCode::CreationWindowClosed), "{r:?}");
    // Sealed on a machine whose clock is ten minutes fast: refused, and the message says so.
    let ahead = Terms::write(2, now_ms() + 10 * MINUTE_MS);
    let r = w
        .sync(&w.seal_terms(&d.config, ahead, &[("K", "v2")]))
        .await;
    assert_eq!(code(&r), Some(ErrorCode::CreationWindowClosed), "{r:?}");
    assert!(r.error.unwrap().message.contains("clock is ahead"));
    assert_eq!(w.secret("too-late/secret").await["exists"], false);
    assert!(w.writes("too-late/secret").await.is_empty());
    // A minute fast is tolerated.
    let fast = Terms::write(3, now_ms() + MINUTE_MS);
    let r = w.sync(&w.seal_terms(&d.config, fast, &[("K", "v3")])).await;
    assert_eq!(r.outcome, SyncOutcome::Created, "{r:?}");
    w.stack.stop().await.unwrap();
}

#[tokio::test]
async fn the_daemon_gives_up_on_a_bundle_too_old_to_create_its_secret() {
    let w = World::start().await;
    let d = w.destination("outage", "outage/env", &[]).await;
    // The tenant sealed it two hours ago; the parent submits it only now.
    let old = sealed_ago(&w, &d, 1, 2 * 3600 * 1000, "v1");
    let api = nitrosync_api::AdminClient::new(w.stack.sockets.admin.clone());
    crate::fleet::submit(&api, &old).await.unwrap();
    let path = nitrosync_api::paths::destination(&old.header.tenant_key, "outage");
    let record = nitrosync_tests::wait_for(
        "the destination's failure",
        std::time::Duration::from_secs(30),
        || {
            let (api, path) = (&api, &path);
            async move {
                let r: Value = api.call(http::Method::GET, path, None).await.ok()?;
                (r["state"] != "pending" && r["state"] != "syncing").then_some(r)
            }
        },
    )
    .await
    .unwrap();
    // Terminal: the scheduler will not try again on its own; the tenant must push again.
    assert_eq!(record["state"], "failed_terminal", "{record}");
    assert_eq!(
        record["last_error"]["code"], "CreationWindowClosed",
        "{record}"
    );
    assert_eq!(record["attempts"], 1, "{record}");
    assert!(record["next_attempt_at_ms"].is_null(), "{record}");
    assert_eq!(w.secret("outage/env").await["exists"], false);
    assert!(w.writes("outage/env").await.is_empty());
    w.stack.stop().await.unwrap();
}
