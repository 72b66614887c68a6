use super::*;
use nitrosync_shared::ErrorCode;
use nitrosync_shared::bundle::{BUNDLE_FORMAT, DeletePolicy, DestinationConfig, SealedBundle};
use nitrosync_shared::frame;

pub(super) const T0: u64 = 1_700_000_000_000;

fn config(id: &str) -> DestinationConfig {
    DestinationConfig {
        id: id.into(),
        region: "us-east-1".into(),
        secret_name: format!("apps/{id}"),
        role_arn: "arn:aws:iam::123456789012:role/nitrosync".into(),
        saml_provider_arn: "arn:aws:iam::123456789012:saml-provider/nitrosync".into(),
        kms_key_id: None,
        tags: BTreeMap::from([("team".into(), "payments".into())]),
        delete_policy: DeletePolicy::Retain,
    }
}

pub(crate) fn header(tenant: u8, id: &str, version: u64) -> BundleHeader {
    BundleHeader {
        format: BUNDLE_FORMAT,
        tenant_key: [tenant; 32],
        enclave_key: [0xee; 32],
        destination: config(id),
        version,
        created_at_ms: T0,
        operation: nitrosync_shared::bundle::Operation::Write,
        not_after_ms: T0 + nitrosync_shared::bundle::DEFAULT_LIFETIME_MS,
    }
}

/// The CBOR of a sealed bundle for `header`, with `fill` as its ciphertext.
pub(crate) fn sealed(header: &BundleHeader, fill: u8) -> Vec<u8> {
    let bundle = SealedBundle {
        header: header.clone(),
        enc: vec![1; 32],
        ciphertext: vec![fill; 200],
        signature: [2; 64],
    };
    frame::encode_payload(&bundle).unwrap()
}

pub(super) fn key(tenant: u8, id: &str) -> DestinationKey {
    DestinationKey::new([tenant; 32], id)
}

fn report(version: u64, outcome: SyncOutcome, error: Option<(ErrorCode, bool)>) -> SyncReport {
    SyncReport {
        destination: "a".into(),
        version,
        mode: SyncMode::Write,
        outcome,
        error: error.map(|(code, retryable)| SyncError {
            code,
            message: format!("{code} happened"),
            retryable,
        }),
        secret_arn: Some(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:apps/a-AbCdEf".into(),
        ),
        aws_version_id: (outcome != SyncOutcome::Failed).then(|| format!("v-{version}")),
        timings: SyncTimings {
            total_us: 1500,
            aws_us: 1200,
            aws_calls: 2,
            signed_assertion: version == 1,
        },
    }
}

pub(super) fn ok(version: u64) -> SyncReport {
    report(version, SyncOutcome::Updated, None)
}

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store.db")).unwrap();
    (dir, store)
}

fn submit(store: &Store, tenant: u8, id: &str, version: u64) -> SubmitOutcome {
    let h = header(tenant, id, version);
    store.submit(&sealed(&h, 0), &h, T0 + version).unwrap()
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Store>();
}

#[test]
fn migrates_from_empty_and_reopen_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    {
        let store = Store::open(&path).unwrap();
        assert_eq!(
            submit(&store, 1, "a", 1),
            SubmitOutcome::Accepted {
                previous_version: None
            }
        );
    }
    let raw = Connection::open(&path).unwrap();
    let version: i64 = raw
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, i64::from(Store::schema_version()));
    let app: i32 = raw
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    assert_eq!(app, schema::APPLICATION_ID);
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(raw);

    let store = Store::open(&path).unwrap();
    let rec = store.get(&key(1, "a")).unwrap().unwrap();
    assert_eq!(rec.version, 1);
    assert_eq!(rec.config, config("a"));
    assert_eq!(rec.state, DestinationState::Pending);
    assert_eq!(rec.saml_subject, saml_subject(&[1; 32], "a"));
    assert_eq!(store.integrity_check().unwrap(), vec!["ok".to_owned()]);
    let conn = store.lock();
    let sync: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "synchronous=FULL");
    let fk: i64 = conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
}

#[test]
fn newer_schema_and_foreign_databases_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    drop(Store::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(err, ParentError::NewerSchema { found: 99, known, .. } if known == Store::schema_version()),
        "{err:?}"
    );
    assert!(err.to_string().contains("newer nitrosync-parent"), "{err}");

    let other = dir.path().join("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("PRAGMA application_id = 42; CREATE TABLE t (x)")
        .unwrap();
    let err = Store::open(&other).unwrap_err();
    assert!(matches!(err, ParentError::NotAStore { .. }), "{err:?}");
}

#[test]
fn submit_due_record_flow() {
    let (_dir, store) = temp_store();
    let k = key(1, "a");
    let h = header(1, "a", 1);
    let bytes = sealed(&h, 7);
    assert_eq!(
        store.submit(&bytes, &h, T0).unwrap(),
        SubmitOutcome::Accepted {
            previous_version: None
        }
    );
    assert!(
        store.due(T0 - 1, 10).unwrap().is_empty(),
        "not due before now"
    );
    let due = store.due(T0, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (&due[0].key, due[0].version, due[0].mode, due[0].attempts),
        (&k, 1, SyncMode::Write, 0)
    );
    assert_eq!(due[0].region, "us-east-1");
    assert_eq!(due[0].account, "123456789012");
    assert_eq!(due[0].bundle, bytes);
    let back: SealedBundle = frame::decode_payload(&due[0].bundle).unwrap();
    assert_eq!(back.header, h);
    assert_eq!(
        store.get(&k).unwrap().unwrap().state,
        DestinationState::Syncing
    );
    assert!(store.due(T0 + 10_000, 10).unwrap().is_empty(), "claimed");

    let state = store
        .record_result(&k, 1, &ok(1), T0 + 1, T0 + 2, None)
        .unwrap();
    assert_eq!(state, Some(DestinationState::Synced));
    let rec = store.get(&k).unwrap().unwrap();
    assert_eq!(rec.synced_version, Some(1));
    assert_eq!(rec.synced_at_ms, Some(T0 + 2));
    assert_eq!(rec.next_attempt_at_ms, None);
    assert!(store.due(T0 + 10_000, 10).unwrap().is_empty());

    // A retryable failure waits for retry_at, then is due with its attempt count.
    let h2 = header(1, "a", 2);
    store.submit(&sealed(&h2, 8), &h2, T0 + 100).unwrap();
    assert_eq!(store.due(T0 + 100, 10).unwrap().len(), 1);
    let throttled = report(
        2,
        SyncOutcome::Failed,
        Some((ErrorCode::LimitExceeded, true)),
    );
    let state = store
        .record_result(&k, 2, &throttled, T0 + 100, T0 + 101, Some(T0 + 5_000))
        .unwrap();
    assert_eq!(state, Some(DestinationState::FailedRetryable));
    let rec = store.get(&k).unwrap().unwrap();
    assert_eq!(rec.attempts, 1);
    assert_eq!(
        rec.last_error.as_ref().unwrap().code,
        ErrorCode::LimitExceeded
    );
    assert_eq!(rec.synced_version, Some(1));
    assert!(store.due(T0 + 4_999, 10).unwrap().is_empty());
    let due = store.due(T0 + 5_000, 10).unwrap();
    assert_eq!((due.len(), due[0].version, due[0].attempts), (1, 2, 1));

    // A terminal failure waits for a person.
    let denied = report(
        2,
        SyncOutcome::Failed,
        Some((ErrorCode::AccessDenied, false)),
    );
    let state = store
        .record_result(&k, 2, &denied, T0 + 5_000, T0 + 5_001, None)
        .unwrap();
    assert_eq!(state, Some(DestinationState::FailedTerminal));
    assert!(store.due(u64::MAX >> 2, 10).unwrap().is_empty());
    assert!(store.retry_now(&k, T0 + 6_000).unwrap());
    let rec = store.get(&k).unwrap().unwrap();
    assert_eq!((rec.state, rec.attempts), (DestinationState::Pending, 0));
    assert_eq!(rec.last_error.unwrap().code, ErrorCode::AccessDenied);
    assert_eq!(store.due(T0 + 6_000, 10).unwrap().len(), 1);
    assert!(!store.retry_now(&k, T0 + 6_000).unwrap(), "syncing");
    store
        .record_result(&k, 2, &ok(2), T0 + 6_000, T0 + 6_001, None)
        .unwrap();
    let rec = store.get(&k).unwrap().unwrap();
    assert_eq!(rec.state, DestinationState::Synced);
    assert_eq!(rec.last_error, None);
    assert_eq!(rec.synced_version, Some(2));
    assert_eq!(store.history(&k, 100).unwrap().len(), 4);
}

#[test]
fn stale_submits_change_nothing() {
    let (_dir, store) = temp_store();
    let k = key(1, "a");
    let h = header(1, "a", 5);
    let original = sealed(&h, 1);
    store.submit(&original, &h, T0).unwrap();
    store.due(T0, 10).unwrap();
    store
        .record_result(&k, 5, &ok(5), T0, T0 + 1, None)
        .unwrap();

    let mut same = header(1, "a", 5);
    same.destination.region = "eu-west-1".into();
    assert_eq!(
        store.submit(&sealed(&same, 2), &same, T0 + 10).unwrap(),
        SubmitOutcome::Stale { stored_version: 5 }
    );
    let mut older = header(1, "a", 3);
    older.destination.region = "eu-west-1".into();
    assert_eq!(
        store.submit(&sealed(&older, 3), &older, T0 + 20).unwrap(),
        SubmitOutcome::Stale { stored_version: 5 }
    );
    let rec = store.get(&k).unwrap().unwrap();
    assert_eq!(rec.version, 5);
    assert_eq!(
        rec.state,
        DestinationState::Synced,
        "a stale submit does not requeue"
    );
    assert_eq!(rec.config.region, "us-east-1");
    assert_eq!(rec.received_at_ms, T0);
    assert!(store.due(T0 + 100, 10).unwrap().is_empty());
    assert!(store.retry_now(&k, T0 + 100).unwrap());
    assert_eq!(store.due(T0 + 100, 10).unwrap()[0].bundle, original);

    let too_big = vec![0; nitrosync_shared::MAX_FRAME_LEN + 1];
    let h6 = header(1, "a", 6);
    assert!(matches!(
        store.submit(&too_big, &h6, T0),
        Err(ParentError::BundleTooLarge { .. })
    ));
}

#[test]
fn bursts_coalesce_into_the_newest_version() {
    let (_dir, store) = temp_store();
    let k = key(1, "a");
    for v in 1..=3 {
        let previous_version = (v > 1).then(|| v - 1);
        assert_eq!(
            submit(&store, 1, "a", v),
            SubmitOutcome::Accepted { previous_version }
        );
    }
    let due = store.due(T0 + 10, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].version, 3);
    store
        .record_result(&k, 3, &ok(3), T0 + 10, T0 + 11, None)
        .unwrap();

    // v4 is in flight when v5 arrives: v5 waits, and v4's success does not mark v5 synced.
    submit(&store, 1, "a", 4);
    assert_eq!(store.due(T0 + 20, 10).unwrap()[0].version, 4);
    submit(&store, 1, "a", 5);
    assert!(
        store.due(T0 + 20, 10).unwrap().is_empty(),
        "one sync in flight per destination"
    );
    assert_eq!(
        store.get(&k).unwrap().unwrap().state,
        DestinationState::Syncing
    );
    let state = store
        .record_result(&k, 4, &ok(4), T0 + 20, T0 + 30, None)
        .unwrap();
    assert_eq!(state, Some(DestinationState::Pending));
    let rec = store.get(&k).unwrap().unwrap();
    assert_eq!(
        (rec.version, rec.synced_version, rec.next_attempt_at_ms),
        (5, Some(4), Some(T0 + 30))
    );
    let due = store.due(T0 + 30, 10).unwrap();
    assert_eq!(due[0].version, 5);

    // A failed older version also leaves the newer one pending, after the backoff.
    submit(&store, 1, "a", 6);
    let failed = report(
        5,
        SyncOutcome::Failed,
        Some((ErrorCode::InternalServiceError, true)),
    );
    let state = store
        .record_result(&k, 5, &failed, T0 + 30, T0 + 40, Some(T0 + 1_000))
        .unwrap();
    assert_eq!(state, Some(DestinationState::Pending));
    assert!(store.due(T0 + 999, 10).unwrap().is_empty());
    assert_eq!(store.due(T0 + 1_000, 10).unwrap()[0].version, 6);
}

#[test]
fn disabled_destinations_are_never_due() {
    let (_dir, store) = temp_store();
    let (a, b) = (key(1, "a"), key(1, "b"));
    submit(&store, 1, "a", 1);
    submit(&store, 1, "b", 1);
    assert!(store.set_enabled(&a, false, T0 + 5).unwrap());
    assert!(!store.set_enabled(&key(9, "nope"), false, T0).unwrap());
    let due = store.due(T0 + 10, 10).unwrap();
    assert_eq!(due.iter().map(|d| &d.key).collect::<Vec<_>>(), vec![&b]);
    submit(&store, 1, "a", 2);
    assert!(store.due(T0 + 10, 10).unwrap().is_empty());
    let rec = store.get(&a).unwrap().unwrap();
    assert!(!rec.enabled);
    assert_eq!(rec.status(), DISABLED);
    assert_eq!(rec.updated_at_ms, T0 + 2);
    assert_eq!(store.list(ListFilter::Disabled).unwrap().len(), 1);
    assert_eq!(store.counts_by_state().unwrap()[DISABLED], 1);

    // Disabled while syncing: the result is recorded, and it is still never due.
    store.set_enabled(&b, false, T0 + 11).unwrap();
    let failed = report(
        1,
        SyncOutcome::Failed,
        Some((ErrorCode::InternalServiceError, true)),
    );
    store
        .record_result(&b, 1, &failed, T0 + 10, T0 + 12, Some(T0 + 13))
        .unwrap();
    assert!(store.due(T0 + 1_000_000, 10).unwrap().is_empty());

    store.set_enabled(&a, true, T0 + 20).unwrap();
    let due = store.due(T0 + 20, 10).unwrap();
    assert_eq!((&due[0].key, due[0].version), (&a, 2));
}

#[test]
fn find_list_counts_and_delete() {
    let (_dir, store) = temp_store();
    submit(&store, 1, "shared-id", 1);
    submit(&store, 2, "shared-id", 1);
    submit(&store, 1, "other", 1);
    let found = store.find("shared-id").unwrap();
    assert_eq!(
        found.iter().map(|r| r.key.clone()).collect::<Vec<_>>(),
        vec![key(1, "shared-id"), key(2, "shared-id")]
    );
    assert_eq!(store.list(ListFilter::All).unwrap().len(), 3);
    store.due(T0 + 10, 1).unwrap();
    let counts = store.counts_by_state().unwrap();
    assert_eq!(counts["pending"], 2);
    assert_eq!(counts["syncing"], 1);
    assert_eq!(counts["synced"], 0);
    assert_eq!(counts.len(), DestinationState::ALL.len() + 1);
    assert_eq!(
        store
            .list(ListFilter::State(DestinationState::Pending))
            .unwrap()
            .len(),
        2
    );

    let k = key(2, "shared-id");
    store
        .record_result(&k, 1, &ok(1), T0, T0 + 1, None)
        .unwrap();
    assert!(store.delete_destination(&k).unwrap());
    assert!(!store.delete_destination(&k).unwrap());
    assert_eq!(store.get(&k).unwrap(), None);
    assert!(store.history(&k, 10).unwrap().is_empty());
    assert_eq!(
        store
            .record_result(&k, 1, &ok(1), T0, T0 + 1, None)
            .unwrap(),
        None,
        "a result for a deleted destination is dropped"
    );
    let conn = store.lock();
    let bundles: i64 = conn
        .query_row("SELECT count(*) FROM bundles", [], |r| r.get(0))
        .unwrap();
    assert_eq!(bundles, 2, "the bundle went with its destination");
}

#[test]
fn history_is_newest_first_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path().join("store.db"),
        StoreOptions {
            history_per_destination: 5,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let (a, b) = (key(1, "a"), key(1, "b"));
    submit(&store, 1, "a", 100);
    submit(&store, 1, "b", 100);
    for v in 1..=8 {
        store
            .record_result(&a, v, &ok(v), T0 + v, T0 + v + 1, None)
            .unwrap();
        if v <= 2 {
            let failed = report(
                v,
                SyncOutcome::Failed,
                Some((ErrorCode::KmsKeyError, false)),
            );
            store
                .record_result(&b, v, &failed, T0 + v, T0 + v + 1, None)
                .unwrap();
        }
    }
    let test = SyncReport {
        mode: SyncMode::TestConnection,
        ..report(100, SyncOutcome::Tested, None)
    };
    let before = store.get(&b).unwrap().unwrap().state;
    let state = store
        .record_result(&b, 100, &test, T0 + 50, T0 + 51, None)
        .unwrap();
    assert_eq!(
        state,
        Some(before),
        "a connection test does not change the sync state"
    );

    let ha = store.history(&a, 100).unwrap();
    assert_eq!(
        ha.iter().map(|h| h.version).collect::<Vec<_>>(),
        vec![8, 7, 6, 5, 4]
    );
    assert!(ha.windows(2).all(|w| w[0].seq > w[1].seq));
    assert_eq!(ha[0].aws_version_id.as_deref(), Some("v-8"));
    assert_eq!(ha[0].timings, ok(8).timings);
    assert_eq!(
        (ha[0].started_at_ms, ha[0].finished_at_ms),
        (T0 + 8, T0 + 9)
    );
    assert_eq!(store.history(&a, 2).unwrap(), ha[..2].to_vec());

    let hb = store.history(&b, 100).unwrap();
    assert_eq!(hb.len(), 3, "pruning is per destination");
    assert_eq!(hb[0].mode, SyncMode::TestConnection);
    assert_eq!(hb[0].outcome, SyncOutcome::Tested);
    let err = hb[1].error.as_ref().unwrap();
    assert_eq!((err.code, err.retryable), (ErrorCode::KmsKeyError, false));
    assert_eq!(err.message, "KmsKeyError happened");
    assert_eq!(hb[1].outcome, SyncOutcome::Failed);
}

#[test]
fn restart_requeues_syncs_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    {
        let store = Store::open(&path).unwrap();
        submit(&store, 1, "a", 1);
        submit(&store, 1, "b", 1);
        assert_eq!(store.due(T0 + 10, 1).unwrap().len(), 1);
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.reset_pending_on_start().unwrap(), 1);
    assert_eq!(store.reset_pending_on_start().unwrap(), 0);
    assert_eq!(store.due(T0 + 10, 10).unwrap().len(), 2);
}

#[test]
fn submit_many_is_one_transaction_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store = Store::open(&path).unwrap();
    submit(&store, 1, "old", 4);
    let headers = [
        header(1, "a", 1),
        header(1, "b", 1),
        header(1, "a", 2),
        header(1, "a", 2),
        header(1, "old", 3),
        header(1, "old", 5),
    ];
    let bytes: Vec<Vec<u8>> = headers.iter().map(|h| sealed(h, 0)).collect();
    let batch: Vec<Submission<'_>> = headers
        .iter()
        .zip(&bytes)
        .map(|(header, bundle)| Submission { bundle, header })
        .collect();
    let outcomes = store.submit_many(&batch, T0 + 10).unwrap();
    assert_eq!(
        outcomes,
        vec![
            SubmitOutcome::Accepted {
                previous_version: None
            },
            SubmitOutcome::Accepted {
                previous_version: None
            },
            SubmitOutcome::Accepted {
                previous_version: Some(1)
            },
            SubmitOutcome::Stale { stored_version: 2 },
            SubmitOutcome::Stale { stored_version: 4 },
            SubmitOutcome::Accepted {
                previous_version: Some(4)
            },
        ]
    );
    drop(store);
    let store = Store::open(&path).unwrap();
    let versions: Vec<u64> = store
        .list(ListFilter::All)
        .unwrap()
        .iter()
        .map(|r| r.version)
        .collect();
    assert_eq!(versions, vec![2, 1, 5]);

    // A failing batch stores nothing.
    let too_big = vec![0; nitrosync_shared::MAX_FRAME_LEN + 1];
    let (hc, hd) = (header(1, "c", 1), header(1, "d", 1));
    let small = sealed(&hc, 0);
    let batch = [
        Submission {
            bundle: &small,
            header: &hc,
        },
        Submission {
            bundle: &too_big,
            header: &hd,
        },
    ];
    assert!(store.submit_many(&batch, T0).is_err());
    assert_eq!(store.get(&key(1, "c")).unwrap(), None);
}

#[test]
fn records_serialise_to_json() {
    let (_dir, store) = temp_store();
    let k = key(0xab, "a");
    submit(&store, 0xab, "a", 1);
    store.due(T0 + 1, 1).unwrap();
    let failed = report(
        1,
        SyncOutcome::Failed,
        Some((ErrorCode::AccessDenied, false)),
    );
    store
        .record_result(&k, 1, &failed, T0 + 1, T0 + 2, None)
        .unwrap();
    let rec = serde_json::to_value(store.get(&k).unwrap().unwrap()).unwrap();
    assert_eq!(rec["key"]["tenant_key"], "ab".repeat(32));
    assert_eq!(rec["state"], "failed_terminal");
    assert_eq!(rec["last_error"]["code"], "AccessDenied");
    assert_eq!(rec["config"]["secret_name"], "apps/a");
    let hist = serde_json::to_value(store.history(&k, 1).unwrap()).unwrap();
    assert_eq!(hist[0]["outcome"], "Failed");
    assert_eq!(hist[0]["timings"]["aws_calls"], 2);
    let outcome = serde_json::to_value(SubmitOutcome::Stale { stored_version: 3 }).unwrap();
    assert_eq!(outcome, serde_json::json!({"stale": {"stored_version": 3}}));
}

// ---- crash safety -------------------------------------------------------------------------

#[test]
fn recent_errors_are_newest_first_bounded_and_only_failures() {
    let (_dir, store) = temp_store();
    for id in ["a", "b", "c", "d"] {
        submit(&store, 1, id, 1);
    }
    let due = store.due(T0 + 1, 10).unwrap();
    assert_eq!(due.len(), 4);
    let denied = report(
        1,
        SyncOutcome::Failed,
        Some((ErrorCode::AccessDenied, false)),
    );
    // a, b and c fail at T0+10, T0+30 and T0+20; d succeeds.
    for (id, at) in [("a", 10), ("b", 30), ("c", 20)] {
        store
            .record_result(&key(1, id), 1, &denied, T0 + at, T0 + at, None)
            .unwrap();
    }
    store
        .record_result(&key(1, "d"), 1, &ok(1), T0 + 40, T0 + 40, None)
        .unwrap();
    let ids = |v: Vec<DestinationRecord>| v.into_iter().map(|d| d.key.id).collect::<Vec<_>>();
    assert_eq!(ids(store.recent_errors(10).unwrap()), ["b", "c", "a"]);
    assert_eq!(ids(store.recent_errors(2).unwrap()), ["b", "c"]);
}

#[test]
fn paced_due_skips_held_back_accounts_and_asks_for_each_claim() {
    let (_dir, store) = temp_store();
    // Account A has five destinations due first; account B one, submitted last.
    for i in 0..5 {
        submit(&store, 1, &format!("a{i}"), 1);
    }
    let mut hb = header(1, "b0", 1);
    hb.destination.role_arn = "arn:aws:iam::210987654321:role/nitrosync".into();
    store.submit(&sealed(&hb, 0), &hb, T0 + 2).unwrap();
    let a = ("123456789012".to_owned(), "us-east-1".to_owned());

    // A held back: B is claimed although A's syncs are older.
    let due = store
        .due_paced(T0 + 10, 10, std::slice::from_ref(&a), |_, _| true)
        .unwrap();
    assert_eq!(
        due.iter().map(|d| d.key.id.as_str()).collect::<Vec<_>>(),
        ["b0"]
    );

    // Two tokens for A: two claimed, oldest first; the rest stay pending.
    let mut tokens = 2;
    let due = store
        .due_paced(T0 + 10, 10, &[], |account, _| {
            assert_eq!(account, a.0);
            tokens -= 1;
            tokens >= 0
        })
        .unwrap();
    assert_eq!(
        due.iter().map(|d| d.key.id.as_str()).collect::<Vec<_>>(),
        ["a0", "a1"]
    );
    assert_eq!(store.due(T0 + 10, 10).unwrap().len(), 3);
}

#[test]
fn sealed_identities_keep_the_first_of_a_generation_and_the_highest_generation() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("p.db")).unwrap();
    let arn = "arn:aws:kms:us-east-1:123456789012:key/k";
    assert_eq!(store.sealed_identity(arn).unwrap(), None);
    // Two first starts: the first one written stays.
    assert_eq!(
        store.store_sealed_identity(arn, b"first", 0, 1).unwrap(),
        b"first"
    );
    assert_eq!(
        store.store_sealed_identity(arn, b"second", 0, 2).unwrap(),
        b"first"
    );
    // A rotation step's replaces it; an older generation never does.
    assert_eq!(
        store.store_sealed_identity(arn, b"gen2", 2, 3).unwrap(),
        b"gen2"
    );
    assert_eq!(
        store.store_sealed_identity(arn, b"gen1", 1, 4).unwrap(),
        b"gen2"
    );
    assert_eq!(
        store.store_sealed_identity(arn, b"gen2b", 2, 5).unwrap(),
        b"gen2"
    );
    assert_eq!(
        store.sealed_identity(arn).unwrap().as_deref(),
        Some(&b"gen2"[..])
    );
    // Another key is another row.
    let other = "arn:aws:kms:us-east-1:123456789012:key/other";
    assert_eq!(
        store.store_sealed_identity(other, b"o", 0, 6).unwrap(),
        b"o"
    );
    assert_eq!(
        store.sealed_identity(arn).unwrap().as_deref(),
        Some(&b"gen2"[..])
    );
}
