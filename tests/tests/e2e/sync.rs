//! The sync engine end to end: sealed bundles through the real enclave, the real relay over TLS,
//! and the strict AWS simulator, with the customer's IAM set up as a customer would.

use nitrosync_bundle::{SecretValue, TenantKey, Variables, seal};
use nitrosync_shared::ErrorCode;
use nitrosync_shared::bundle::{
    DeletePolicy, DestinationConfig, Operation, SealedBundle, Terms, saml_subject,
};
use nitrosync_shared::control::{Description, RequestBody, ResponseBody, SyncOutcome, SyncReport};
use nitrosync_tests::{EnclaveControl, SimStack, simctl};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

const REGION: &str = "us-east-1";

fn rng() -> getrandom::rand_core::UnwrapErr<getrandom::SysRng> {
    getrandom::rand_core::UnwrapErr(getrandom::SysRng)
}

pub(crate) struct World {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) stack: SimStack,
    pub(crate) ctl: EnclaveControl,
    desc: Description,
    tenant: TenantKey,
    metadata: PathBuf,
}

pub(crate) struct Dest {
    pub(crate) config: DestinationConfig,
}

impl World {
    pub(crate) async fn start() -> World {
        Self::start_with(false, &[]).await.0
    }

    pub(crate) async fn start_with(
        tap: bool,
        enclave_args: &[&str],
    ) -> (World, Option<std::sync::Arc<std::sync::Mutex<Vec<u8>>>>) {
        let dir = tempfile::tempdir().unwrap();
        let tap_path = dir.path().join("tap.sock");
        let seen = if tap {
            Some(
                nitrosync_tests::start_tap(&tap_path, &dir.path().join("relay-8000.sock"))
                    .await
                    .unwrap(),
            )
        } else {
            None
        };
        let opts = nitrosync_tests::StackOptions {
            relay_tap: tap.then(|| tap_path.clone()),
            enclave_args: enclave_args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let stack = SimStack::start_with(dir.path(), REGION, opts)
            .await
            .unwrap();
        let mut ctl = EnclaveControl::connect(&stack.sockets.control)
            .await
            .unwrap();
        let ResponseBody::Describe(desc) = ctl.request(RequestBody::Describe).await.unwrap() else {
            panic!("no description")
        };
        let metadata = dir.path().join("saml-metadata.xml");
        std::fs::write(&metadata, &desc.saml_metadata).unwrap();
        let tenant = TenantKey::generate(&mut rng());
        (
            World {
                dir,
                stack,
                ctl,
                desc,
                tenant,
                metadata,
            },
            seen,
        )
    }

    pub(crate) fn subject(&self, id: &str) -> String {
        saml_subject(&self.tenant.public(), id)
    }

    /// Sets up the customer's side for a destination and returns it.
    pub(crate) async fn destination(&self, id: &str, secret: &str, extra: &[&str]) -> Dest {
        let subject = self.subject(id);
        let role_name = format!("nitrosync-{id}");
        let mut args = vec![
            "setup-role",
            "--metadata",
            self.metadata.to_str().unwrap(),
            "--provider-name",
            "nitrosync",
            "--role-name",
            &role_name,
            "--secret-name",
            secret,
        ];
        if !extra.contains(&"--no-subject-pin") && !extra.contains(&"--subject") {
            args.extend(["--subject", &subject]);
        }
        args.extend(extra);
        let out = simctl(self.dir.path(), &args).await.unwrap();
        Dest {
            config: DestinationConfig {
                id: id.into(),
                region: REGION.into(),
                secret_name: secret.into(),
                role_arn: out["role_arn"].as_str().unwrap().into(),
                saml_provider_arn: out["saml_provider_arn"].as_str().unwrap().into(),
                kms_key_id: None,
                tags: BTreeMap::from([("team".into(), "payments".into())]),
                delete_policy: DeletePolicy::Retain,
            },
        }
    }

    pub(crate) fn seal(
        &self,
        dest: &DestinationConfig,
        version: u64,
        vars: &[(&str, &str)],
    ) -> SealedBundle {
        self.seal_op(Operation::Write, dest, version, vars)
    }

    /// A bundle the tenant signed for `op`, sealed now with the default lifetime of `op`.
    pub(crate) fn seal_op(
        &self,
        op: Operation,
        dest: &DestinationConfig,
        version: u64,
        vars: &[(&str, &str)],
    ) -> SealedBundle {
        let now = nitrosync_shared::unix_ms(std::time::SystemTime::now());
        let terms = match op {
            Operation::Write => Terms::write(version, now),
            Operation::Delete => Terms::delete(version, now),
            Operation::TestConnection => Terms::test_connection(version, now),
        };
        self.seal_terms(dest, terms, vars)
    }

    /// A bundle with exactly these signed terms.
    pub(crate) fn seal_terms(
        &self,
        dest: &DestinationConfig,
        terms: Terms,
        vars: &[(&str, &str)],
    ) -> SealedBundle {
        let map = vars
            .iter()
            .map(|(k, v)| (k.to_string(), SecretValue::new(v.to_string())))
            .collect();
        seal(
            &self.tenant,
            &self.desc.bundle_key,
            dest.clone(),
            terms,
            &Variables::from_map(map),
            &mut rng(),
        )
        .unwrap()
    }

    pub(crate) async fn sync(&mut self, bundle: &SealedBundle) -> SyncReport {
        let req = RequestBody::Sync {
            bundle: nitrosync_shared::frame::encode_payload(bundle).unwrap(),
        };
        match self.ctl.request(req).await.unwrap() {
            ResponseBody::Sync(r) => r,
            other => panic!("unexpected answer: {other:?}"),
        }
    }

    pub(crate) async fn secret(&self, name: &str) -> Value {
        simctl(self.dir.path(), &["get-secret", "--name", name])
            .await
            .unwrap()
    }

    pub(crate) async fn fault(&self, action: &str, kind: &str, count: u32) {
        let count = count.to_string();
        simctl(
            self.dir.path(),
            &[
                "fault", "--action", action, "--kind", kind, "--count", &count,
            ],
        )
        .await
        .unwrap();
    }

    pub(crate) async fn writes(&self, name: &str) -> Vec<Value> {
        let v = simctl(self.dir.path(), &["sim", "GET", "requests"])
            .await
            .unwrap();
        v["writes"][name].as_array().cloned().unwrap_or_default()
    }
}

pub(crate) fn code(r: &SyncReport) -> Option<ErrorCode> {
    r.error.as_ref().map(|e| e.code)
}

fn json_of(vars: &[(&str, &str)]) -> Value {
    Value::Object(
        vars.iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect(),
    )
}

#[tokio::test]
async fn bundles_become_the_secret_and_unchanged_content_writes_nothing() {
    let mut w = World::start().await;
    let d = w.destination("app", "prod/app/env", &[]).await;
    let v1 = [
        ("DATABASE_URL", "postgres://db.internal/app"),
        ("API_KEY", "k-1111"),
        ("LOG_LEVEL", "info"),
    ];
    let r = w.sync(&w.seal(&d.config, 1, &v1)).await;
    assert_eq!(r.outcome, SyncOutcome::Created, "{r:?}");
    assert!(r.timings.signed_assertion);
    let s = w.secret("prod/app/env").await;
    assert_eq!(
        serde_json::from_str::<Value>(s["value"].as_str().unwrap()).unwrap(),
        json_of(&v1)
    );
    assert_eq!(s["tags"]["nitrosync:managed-by"], "nitrosync");
    assert_eq!(s["tags"]["nitrosync:destination"], "app");
    assert_eq!(s["tags"]["nitrosync:version"], "1");
    assert_eq!(s["tags"]["team"], "payments");
    assert_eq!(s["tags"]["nitrosync:mac"].as_str().unwrap().len(), 64);

    let v2 = [
        ("DATABASE_URL", "postgres://db.internal/app"),
        ("API_KEY", "k-2222"),
        ("LOG_LEVEL", "info"),
    ];
    let r = w.sync(&w.seal(&d.config, 2, &v2)).await;
    assert_eq!(r.outcome, SyncOutcome::Updated, "{r:?}");
    assert!(
        !r.timings.signed_assertion,
        "credentials are cached: no second signature"
    );
    assert!(r.aws_version_id.is_some());
    let s = w.secret("prod/app/env").await;
    assert_eq!(
        serde_json::from_str::<Value>(s["value"].as_str().unwrap()).unwrap(),
        json_of(&v2)
    );
    assert_eq!(s["versions"], 2);
    assert_eq!(s["tags"]["nitrosync:version"], "2");

    let writes_before = w.writes("prod/app/env").await.len();
    let r = w.sync(&w.seal(&d.config, 3, &v2)).await;
    assert_eq!(r.outcome, SyncOutcome::Unchanged, "{r:?}");
    let s = w.secret("prod/app/env").await;
    assert_eq!(s["versions"], 2, "identical content writes no new version");
    let new_writes: Vec<Value> = w.writes("prod/app/env").await.split_off(writes_before);
    assert!(
        new_writes
            .iter()
            .all(|x| x["action"] != "PutSecretValue"
                && x["action"] != "secretsmanager:PutSecretValue"),
        "no value write for unchanged content: {new_writes:?}"
    );
    // The same version again: nothing at all is written.
    let r = w.sync(&w.seal(&d.config, 3, &v2)).await;
    assert_eq!(r.outcome, SyncOutcome::Unchanged);
    assert_eq!(
        w.writes("prod/app/env").await.len(),
        writes_before + new_writes.len()
    );
    w.stack.stop().await.unwrap();
}

#[tokio::test]
async fn each_product_error_comes_from_its_real_cause() {
    let mut w = World::start().await;
    let vars = [("A", "1"), ("B", "2"), ("C", "3")];

    // The role may create but not PutSecretValue.
    let d = w.destination("noput", "noput/env", &["--deny-put"]).await;
    assert_eq!(
        w.sync(&w.seal(&d.config, 1, &vars)).await.outcome,
        SyncOutcome::Created
    );
    let r = w.sync(&w.seal(&d.config, 2, &[("A", "changed")])).await;
    assert_eq!(code(&r), Some(ErrorCode::AccessDenied), "{r:?}");
    assert!(!r.error.as_ref().unwrap().retryable);

    // The trust policy pins another subject.
    let other = w.subject("someone-else");
    let d = w
        .destination("wrongsub", "wrongsub/env", &["--subject", &other])
        .await;
    let r = w.sync(&w.seal(&d.config, 1, &vars)).await;
    assert_eq!(code(&r), Some(ErrorCode::AssumeRoleError), "{r:?}");

    // The trust policy pins no subject: writes work, but the connection test refuses it.
    let d = w
        .destination("nopin", "nopin/env", &["--no-subject-pin"])
        .await;
    let r = w
        .sync(&w.seal_op(Operation::TestConnection, &d.config, 1, &vars))
        .await;
    assert_eq!(code(&r), Some(ErrorCode::MissingSamlSubject), "{r:?}");
    // A pinned role passes the same test, and leaves no placeholder behind.
    let d = w.destination("pinned", "pinned/env", &[]).await;
    let r = w
        .sync(&w.seal_op(Operation::TestConnection, &d.config, 1, &vars))
        .await;
    assert_eq!(r.outcome, SyncOutcome::Tested, "{r:?}");
    let placeholders: Vec<Value> = w.writes("pinned/env").await;
    assert!(
        placeholders.is_empty(),
        "the real secret is untouched: {placeholders:?}"
    );

    // A secret of the same name that nitrosync does not own.
    simctl(
        w.dir.path(),
        &["create-secret", "--name", "taken/env", "--value", "theirs"],
    )
    .await
    .unwrap();
    let d = w.destination("taken", "taken/env", &[]).await;
    let r = w.sync(&w.seal(&d.config, 1, &vars)).await;
    assert_eq!(code(&r), Some(ErrorCode::SecretNameConflict), "{r:?}");
    assert_eq!(w.secret("taken/env").await["value"], "theirs");

    // 65,537 bytes of JSON: refused before any AWS call.
    let d = w.destination("big", "big/env", &[]).await;
    // {"V":"…"} is 8 bytes of framing.
    let big = "x".repeat(65_537 - 8);
    let r = w.sync(&w.seal(&d.config, 1, &[("V", &big)])).await;
    assert_eq!(
        code(&r),
        Some(ErrorCode::MaximumSecretSizeExceeded),
        "{r:?}"
    );
    assert_eq!(r.timings.aws_calls, 0);
    assert!(r.error.as_ref().unwrap().message.contains("65537"), "{r:?}");
    assert_eq!(w.secret("big/env").await["exists"], false);
    // One byte less fits.
    let fits = "x".repeat(65_536 - 8);
    let r = w.sync(&w.seal(&d.config, 2, &[("V", &fits)])).await;
    assert_eq!(r.outcome, SyncOutcome::Created, "{r:?}");

    // A KMS key that does not exist, and one the role may not use.
    let mut d = w.destination("badkms", "badkms/env", &[]).await;
    d.config.kms_key_id = Some("0b7f5e2a-1111-4222-8333-944455556666".into());
    let r = w.sync(&w.seal(&d.config, 1, &vars)).await;
    assert_eq!(code(&r), Some(ErrorCode::KmsKeyError), "{r:?}");
    let key = simctl(w.dir.path(), &["create-key"]).await.unwrap();
    let mut d = w.destination("nokms", "nokms/env", &[]).await;
    d.config.kms_key_id = key["key_arn"].as_str().map(str::to_owned);
    let r = w.sync(&w.seal(&d.config, 1, &vars)).await;
    assert_eq!(code(&r), Some(ErrorCode::KmsKeyError), "{r:?}");
    let mut d = w
        .destination(
            "kmsok",
            "kmsok/env",
            &["--kms-key-arn", key["key_arn"].as_str().unwrap()],
        )
        .await;
    d.config.kms_key_id = key["key_arn"].as_str().map(str::to_owned);
    let r = w.sync(&w.seal(&d.config, 1, &vars)).await;
    assert_eq!(r.outcome, SyncOutcome::Created, "{r:?}");

    // Throttling beyond the retry budget, then persistent 5xx.
    let d = w.destination("throttled", "throttled/env", &[]).await;
    w.fault("secretsmanager:CreateSecret", "throttle", 50).await;
    let r = w.sync(&w.seal(&d.config, 1, &vars)).await;
    assert_eq!(code(&r), Some(ErrorCode::LimitExceeded), "{r:?}");
    assert!(r.error.as_ref().unwrap().retryable);
    assert!(r.timings.aws_calls >= 2);
    simctl(w.dir.path(), &["sim", "DELETE", "faults"])
        .await
        .unwrap();
    let d = w.destination("broken", "broken/env", &[]).await;
    w.fault("secretsmanager:CreateSecret", "error5xx", 50).await;
    let r = w.sync(&w.seal(&d.config, 1, &vars)).await;
    assert_eq!(code(&r), Some(ErrorCode::InternalServiceError), "{r:?}");
    simctl(w.dir.path(), &["sim", "DELETE", "faults"])
        .await
        .unwrap();
    // Once AWS recovers, the same bundle goes through.
    let r = w.sync(&w.seal(&d.config, 1, &vars)).await;
    assert_eq!(r.outcome, SyncOutcome::Created, "{r:?}");
    w.stack.stop().await.unwrap();
}

#[tokio::test]
async fn tampered_foreign_and_replayed_bundles_write_nothing() {
    let mut w = World::start().await;
    let d = w.destination("guarded", "guarded/env", &[]).await;
    let vars = [("TOKEN", "t-1")];
    assert_eq!(
        w.sync(&w.seal(&d.config, 5, &vars)).await.outcome,
        SyncOutcome::Created
    );
    let before = w.secret("guarded/env").await;

    let good = w.seal(&d.config, 6, &[("TOKEN", "t-2")]);
    let mut tampered = Vec::new();
    let mut b = good.clone();
    b.header.destination.secret_name = "elsewhere/env".into();
    tampered.push(("header", b));
    let mut b = good.clone();
    b.ciphertext[3] ^= 1;
    tampered.push(("ciphertext", b));
    let mut b = good.clone();
    b.signature[10] ^= 1;
    tampered.push(("signature", b));
    // Sealed for another enclave's key.
    let other = nitrosync_bundle::EnclaveBundleKey::generate(&mut rng());
    let map = vars
        .iter()
        .map(|(k, v)| (k.to_string(), SecretValue::new(v.to_string())))
        .collect();
    let foreign = seal(
        &w.tenant,
        &other.public(),
        d.config.clone(),
        Terms::write(7, nitrosync_shared::unix_ms(std::time::SystemTime::now())),
        &Variables::from_map(map),
        &mut rng(),
    )
    .unwrap();
    tampered.push(("other enclave key", foreign));
    for (what, bundle) in &tampered {
        let r = w.sync(bundle).await;
        assert_eq!(code(&r), Some(ErrorCode::InvalidBundle), "{what}: {r:?}");
        assert_eq!(r.timings.aws_calls, 0, "{what}");
        assert!(!r.error.as_ref().unwrap().message.contains("t-2"));
    }
    // A replay of an older version.
    let r = w.sync(&w.seal(&d.config, 4, &[("TOKEN", "t-old")])).await;
    assert_eq!(code(&r), Some(ErrorCode::StaleVersion), "{r:?}");
    // The same version with other content is a replay too.
    let r = w.sync(&w.seal(&d.config, 5, &[("TOKEN", "t-other")])).await;
    assert_eq!(code(&r), Some(ErrorCode::StaleVersion), "{r:?}");
    let after = w.secret("guarded/env").await;
    assert_eq!(after["value"], before["value"]);
    assert_eq!(after["versions"], before["versions"]);
    assert_eq!(w.secret("elsewhere/env").await["exists"], false);
    w.stack.stop().await.unwrap();
}

#[tokio::test]
async fn a_write_retried_after_a_dropped_connection_makes_one_version() {
    let mut w = World::start().await;
    let d = w.destination("flaky", "flaky/env", &[]).await;
    assert_eq!(
        w.sync(&w.seal(&d.config, 1, &[("K", "v1")])).await.outcome,
        SyncOutcome::Created
    );
    // AWS processes the write, then the connection drops before the answer arrives.
    w.fault("secretsmanager:PutSecretValue", "drop_after", 1)
        .await;
    let r = w.sync(&w.seal(&d.config, 2, &[("K", "v2")])).await;
    assert_eq!(r.outcome, SyncOutcome::Updated, "{r:?}");
    let puts: Vec<Value> = w
        .writes("flaky/env")
        .await
        .into_iter()
        .filter(|x| {
            x["action"]
                .as_str()
                .is_some_and(|a| a.ends_with("PutSecretValue"))
        })
        .collect();
    assert_eq!(puts.len(), 2, "the write was sent twice: {puts:?}");
    assert_eq!(
        puts[0]["client_request_token"],
        puts[1]["client_request_token"]
    );
    let s = w.secret("flaky/env").await;
    assert_eq!(s["versions"], 2, "exactly one new version");
    assert_eq!(
        serde_json::from_str::<Value>(s["value"].as_str().unwrap()).unwrap()["K"],
        "v2"
    );
    w.stack.stop().await.unwrap();
}

#[tokio::test]
async fn delete_follows_the_destination_policy() {
    let mut w = World::start().await;
    let vars = [("K", "v")];
    let d = w.destination("keep", "keep/env", &[]).await;
    w.sync(&w.seal(&d.config, 1, &vars)).await;
    let r = w
        .sync(&w.seal_op(Operation::Delete, &d.config, 1, &vars))
        .await;
    assert_eq!(r.outcome, SyncOutcome::Retained, "{r:?}");
    assert_eq!(w.secret("keep/env").await["deleted"], false);

    let mut d = w.destination("window", "window/env", &[]).await;
    d.config.delete_policy = DeletePolicy::Delete {
        recovery_days: Some(7),
    };
    w.sync(&w.seal(&d.config, 1, &vars)).await;
    let r = w
        .sync(&w.seal_op(Operation::Delete, &d.config, 1, &vars))
        .await;
    assert_eq!(r.outcome, SyncOutcome::Deleted, "{r:?}");
    let s = w.secret("window/env").await;
    assert_eq!(
        (s["exists"].clone(), s["deleted"].clone()),
        (Value::Bool(true), Value::Bool(true))
    );
    // A new write to a name pending deletion is a conflict, not a silent restore.
    let r = w.sync(&w.seal(&d.config, 2, &vars)).await;
    assert_eq!(code(&r), Some(ErrorCode::SecretNameConflict), "{r:?}");

    let mut d = w.destination("gone", "gone/env", &[]).await;
    d.config.delete_policy = DeletePolicy::Delete {
        recovery_days: None,
    };
    w.sync(&w.seal(&d.config, 1, &vars)).await;
    let r = w
        .sync(&w.seal_op(Operation::Delete, &d.config, 1, &vars))
        .await;
    assert_eq!(r.outcome, SyncOutcome::Deleted, "{r:?}");
    assert_eq!(w.secret("gone/env").await["exists"], false);
    w.stack.stop().await.unwrap();
}

#[tokio::test]
async fn no_value_reaches_logs_or_the_relayed_bytes() {
    let (mut w, seen) = World::start_with(true, &[]).await;
    let seen = seen.unwrap();
    let secret_values = ["s3cr3t-value-alpha-9f2c71", "s3cr3t-value-beta-1d8e44"];
    let d = w.destination("clean", "clean/env", &[]).await;
    let r = w
        .sync(&w.seal(
            &d.config,
            1,
            &[("ALPHA", secret_values[0]), ("BETA", secret_values[1])],
        ))
        .await;
    assert_eq!(r.outcome, SyncOutcome::Created, "{r:?}");
    // A failure path too: the error message must not quote values either.
    let r = w
        .sync(&w.seal(&d.config, 1, &[("ALPHA", secret_values[1])]))
        .await;
    assert_eq!(code(&r), Some(ErrorCode::StaleVersion));
    assert!(!format!("{r:?}").contains("s3cr3t"));
    let s = w.secret("clean/env").await;
    assert!(
        s["value"].as_str().unwrap().contains(secret_values[0]),
        "the value did reach AWS"
    );

    let carried = seen.lock().unwrap().clone();
    assert!(
        carried.len() > 10_000,
        "the tap saw the TLS traffic ({} bytes)",
        carried.len()
    );
    assert!(
        carried
            .windows(b"secretsmanager".len())
            .any(|x| x == b"secretsmanager"),
        "SNI visible: the tap is real"
    );
    let dir = w.dir.path().to_owned();
    w.stack.stop().await.unwrap();
    let enclave_log = std::fs::read(dir.join("enclave.log")).unwrap();
    let parent_log = std::fs::read(dir.join("parent.log")).unwrap();
    assert!(!enclave_log.is_empty() && !parent_log.is_empty());
    for v in secret_values {
        let v = v.as_bytes();
        let found = |hay: &[u8]| hay.windows(v.len()).any(|x| x == v);
        assert!(!found(&carried), "a value crossed the relay in clear");
        assert!(!found(&enclave_log), "a value is in the enclave log");
        assert!(!found(&parent_log), "a value is in the parent log");
    }
}

#[tokio::test]
async fn a_skewed_host_clock_is_corrected_from_authenticated_aws_time() {
    // The host clock is ten minutes slow: an assertion stamped with it would have expired
    // before it was sent (its window is five minutes).
    let (mut w, _) = World::start_with(false, &["--sim-clock-skew-s", "-600"]).await;
    let d = w.destination("skewed", "skewed/env", &[]).await;
    let r = w.sync(&w.seal(&d.config, 1, &[("K", "v")])).await;
    assert_eq!(r.outcome, SyncOutcome::Created, "{r:?}");
    let log = std::fs::read_to_string(w.dir.path().join("enclave.log")).unwrap();
    assert!(log.contains("clock corrected"), "{log}");
    w.stack.stop().await.unwrap();
}
