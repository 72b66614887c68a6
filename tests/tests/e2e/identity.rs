//! The enclave's identity sealed under KMS (issue 11): the real enclave (`--identity kms`) and
//! parent (`--identity-kms-key`), the AWS simulator's KMS with `Recipient`, a key made from
//! `nitrosync kms template`, and the parent's credentials from an assumed "instance role".
//!
//! Every refusal is also checked from the simulator's state: nothing reached Secrets Manager.

use crate::fleet::{REGION, create_roles, destination, seal_one, submit};
use nitrosync_api::AdminClient;
use nitrosync_shared::ErrorCode;
use nitrosync_shared::binding::IdentitySource;
use nitrosync_shared::control::{
    AwsCredentials, Description, RequestBody, ResponseBody, SealedIdentity, SyncOutcome,
    UnsealReport, UnsealRequest,
};
use nitrosync_tests::{
    EnclaveControl, Proc, SimStack, Sockets, StackOptions, bin, cli, measure_simulator, simctl,
    start_enclave_with, start_parent_env, wait_for,
};
use std::path::Path;
use std::time::Duration;

struct Sealed {
    dir: tempfile::TempDir,
    stack: SimStack,
    key_arn: String,
    creds: AwsCredentials,
    pcr0: String,
}

type Tapped = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;

impl Sealed {
    async fn start() -> Sealed {
        Self::start_with(false).await.0
    }

    /// With `tap`, the enclave's tunnels go through a recording tap before the relay.
    async fn start_with(tap: bool) -> (Sealed, Option<Tapped>) {
        Self::start_full(tap, &[]).await
    }

    /// With `tap`, and a key whose policy also releases the identity to `other_images`
    /// (measurements files).
    async fn start_full(tap: bool, other_images: &[&Path]) -> (Sealed, Option<Tapped>) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut opts = StackOptions {
            sealed_identity: true,
            identity_also_released_to: other_images.iter().map(|p| p.to_path_buf()).collect(),
            ..Default::default()
        };
        let mut seen = None;
        if tap {
            let tap_socket = d.join("tap.sock");
            seen = Some(
                nitrosync_tests::start_tap(&tap_socket, &Sockets::in_dir(d).relay)
                    .await
                    .unwrap(),
            );
            opts.relay_tap = Some(tap_socket);
        }
        let stack = SimStack::start_with(d, REGION, opts).await.unwrap();
        let key = stack.identity_key.clone().unwrap();
        (
            Sealed {
                dir,
                stack,
                key_arn: key.key_arn,
                creds: key.credentials,
                pcr0: key.pcr0,
            },
            seen,
        )
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A second enclave process (`binary`, default the real one) on its own control socket,
    /// dialling the parent's relay; not unsealed.
    async fn extra_enclave(&self, name: &str, binary: Option<&Path>) -> (Proc, EnclaveControl) {
        let mut sockets = self.stack.sockets.clone();
        sockets.control = self.path().join(format!("{name}.sock"));
        let proc = match binary {
            None => start_enclave_with(
                self.path(),
                &sockets,
                &self.stack.aws.ca,
                &format!("{name}.log"),
                self.stack.enclave_args(),
            )
            .unwrap(),
            Some(b) => {
                let mut cmd = tokio::process::Command::new(b);
                cmd.arg("--simulator")
                    .arg("--sim-ca")
                    .arg(&self.stack.aws.ca)
                    .arg("--control")
                    .arg(format!("unix:{}", sockets.control.display()))
                    .arg("--relay")
                    .arg(format!("unix:{}", sockets.relay.display()))
                    .arg("--sim-nsm-dir")
                    .arg(self.path().join("nsm"))
                    .args(["--log-stderr", "text", "--identity", "kms"])
                    .env("RUST_LOG", "info");
                Proc::spawn(name, cmd, self.path().join(format!("{name}.log"))).unwrap()
            }
        };
        let socket = sockets.control.clone();
        let ctl = wait_for(
            &format!("{name} to listen"),
            Duration::from_secs(30),
            || {
                let socket = socket.clone();
                async move { EnclaveControl::connect(&socket).await.ok() }
            },
        )
        .await
        .unwrap();
        (proc, ctl)
    }

    fn unseal(&self, key_arn: &str, sealed: Option<SealedIdentity>) -> RequestBody {
        RequestBody::Unseal(UnsealRequest {
            key_arn: key_arn.into(),
            credentials: self.creds.clone(),
            sealed,
        })
    }

    /// The identity as the parent stored it (the main enclave answers a repeated Unseal with
    /// it, without calling KMS again).
    async fn stored(&self) -> UnsealReport {
        let mut ctl = EnclaveControl::connect(&self.stack.sockets.control)
            .await
            .unwrap();
        match ctl.request(self.unseal(&self.key_arn, None)).await.unwrap() {
            ResponseBody::Unsealed(r) => r,
            other => panic!("unexpected answer: {other:?}"),
        }
    }

    async fn secrets_manager_calls(&self) -> u64 {
        let r = simctl(self.path(), &["sim", "GET", "requests"])
            .await
            .unwrap();
        r["by_action"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with("secretsmanager:"))
            .map(|(_, v)| v.as_u64().unwrap())
            .sum()
    }
}

async fn describe(ctl: &mut EnclaveControl) -> Description {
    match ctl.request(RequestBody::Describe).await.unwrap() {
        ResponseBody::Describe(d) => d,
        other => panic!("unexpected answer: {other:?}"),
    }
}

fn refusal(answer: ResponseBody) -> (ErrorCode, String) {
    match answer {
        ResponseBody::Error(e) => (e.code, e.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_restarted_enclave_has_the_same_identity_and_its_stored_bundle_syncs_without_a_write() {
    let mut s = Sealed::start().await;
    let mut ctl = EnclaveControl::connect(&s.stack.sockets.control)
        .await
        .unwrap();
    let before = describe(&mut ctl).await;
    assert_eq!(
        before.identity,
        Some(IdentitySource::KmsSealed {
            key_arn: s.key_arn.clone(),
            images: vec![s.pcr0.clone()],
        })
    );
    drop(ctl);

    // A destination synced before the restart.
    let api = AdminClient::new(s.stack.sockets.admin.clone());
    let tenant = nitrosync_bundle::TenantKey::generate(&mut crate::fleet::rng());
    let d = destination("sealed", 0);
    create_roles(
        s.path(),
        &before.saml_metadata,
        &tenant,
        std::slice::from_ref(&d),
    )
    .await;
    let bundle = seal_one(&tenant, &before.bundle_key, &d, 0, 1);
    submit(&api, &bundle).await.unwrap();
    let name = d.secret_name.clone();
    wait_for("the first sync", Duration::from_secs(60), || async {
        let sec = simctl(s.path(), &["sim", "GET", &format!("secrets/{name}")])
            .await
            .ok()?;
        (sec["tags"]["nitrosync:version"] == "1").then_some(())
    })
    .await
    .unwrap();
    let calls = s.secrets_manager_calls().await;
    let writes_before: Vec<(String, u64)> =
        simctl(s.path(), &["sim", "GET", "requests"]).await.unwrap()["by_action"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with("secretsmanager:") && !k.contains("Describe"))
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .collect();

    // Restart the enclave: the parent reconnects and hands back the stored identity.
    s.stack.restart_enclave("enclave-2.log").await.unwrap();
    let mut ctl = EnclaveControl::connect(&s.stack.sockets.control)
        .await
        .unwrap();
    let after = describe(&mut ctl).await;
    assert_eq!(
        after.saml_metadata, before.saml_metadata,
        "metadata changed"
    );
    assert_eq!(after.bundle_key, before.bundle_key);
    assert_eq!(after.saml_cert_sha256, before.saml_cert_sha256);

    // The bundle sealed before the restart opens, and unchanged content writes nothing.
    let bytes = nitrosync_shared::frame::encode_payload(&bundle).unwrap();
    let ResponseBody::Sync(report) = ctl
        .request(RequestBody::Sync { bundle: bytes })
        .await
        .unwrap()
    else {
        panic!("no sync report")
    };
    assert_eq!(report.outcome, SyncOutcome::Unchanged, "{report:?}");
    let writes = |r: serde_json::Value| -> Vec<(String, u64)> {
        r["by_action"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with("secretsmanager:") && !k.contains("Describe"))
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .collect()
    };
    let after_writes = writes(simctl(s.path(), &["sim", "GET", "requests"]).await.unwrap());
    assert_eq!(after_writes, writes_before, "a write after the restart");
    assert!(
        s.secrets_manager_calls().await > calls,
        "the sync did not reach AWS"
    );

    // The parent stored one identity; the enclave answers a repeated Unseal with it.
    let stored = s.stored().await;
    assert!(!stored.created);
    assert_eq!(stored.sealed.key_arn, s.key_arn);
    assert_eq!(stored.sealed.pcr0, s.pcr0);
    s.stack.stop().await.unwrap();
}

#[tokio::test]
async fn a_second_enclave_of_the_image_opens_the_blob_and_foreign_images_keys_or_blobs_do_not() {
    let s = Sealed::start().await;
    let mut ctl = EnclaveControl::connect(&s.stack.sockets.control)
        .await
        .unwrap();
    let first = describe(&mut ctl).await;
    let stored = s.stored().await.sealed;

    // A second enclave of the same image, given the stored blob: the same identity.
    let (mut second, mut ctl2) = s.extra_enclave("second", None).await;
    let (code, message) = refusal(ctl2.request(RequestBody::Describe).await.unwrap());
    assert_eq!(code, ErrorCode::EnclaveUnavailable);
    assert!(message.contains("locked"), "{message}");
    let ResponseBody::Unsealed(r) = ctl2
        .request(s.unseal(&s.key_arn, Some(stored.clone())))
        .await
        .unwrap()
    else {
        panic!("the second enclave did not unseal")
    };
    assert!(!r.created);
    let d2 = describe(&mut ctl2).await;
    assert_eq!(d2.saml_metadata, first.saml_metadata);
    assert_eq!(d2.bundle_key, first.bundle_key);
    second.kill().await.unwrap();

    // A tampered blob does not open (a fresh enclave each time: an unsealed one keeps its keys).
    let mut tampered = stored.clone();
    let last = tampered.sealed.len() - 1;
    tampered.sealed[last] ^= 1;
    let (mut p, mut c) = s.extra_enclave("tampered", None).await;
    let (code, message) = refusal(
        c.request(s.unseal(&s.key_arn, Some(tampered)))
            .await
            .unwrap(),
    );
    assert_eq!(code, ErrorCode::KmsKeyError, "{message}");
    assert!(message.contains("does not open"), "{message}");
    // A tampered data-key ciphertext: KMS refuses it.
    let mut bad_blob = stored.clone();
    let mid = bad_blob.ciphertext_blob.len() / 2;
    bad_blob.ciphertext_blob[mid] ^= 1;
    let (code, message) = refusal(
        c.request(s.unseal(&s.key_arn, Some(bad_blob)))
            .await
            .unwrap(),
    );
    assert_eq!(code, ErrorCode::KmsKeyError, "{message}");
    // Still locked after both.
    let (code, _) = refusal(c.request(RequestBody::Describe).await.unwrap());
    assert_eq!(code, ErrorCode::EnclaveUnavailable);
    p.kill().await.unwrap();

    // A blob of another key: named as such, before any KMS call.
    let (mut p, mut c) = s.extra_enclave("otherkey", None).await;
    let mut foreign = stored.clone();
    foreign.key_arn = format!("{}0", &s.key_arn[..s.key_arn.len() - 1]);
    let (code, message) = refusal(
        c.request(s.unseal(&s.key_arn, Some(foreign)))
            .await
            .unwrap(),
    );
    assert_eq!(code, ErrorCode::KmsKeyError, "{message}");
    assert!(message.contains("sealed under"), "{message}");
    p.kill().await.unwrap();

    // An enclave of another image (another PCR0): the key's policy does not name it, so it
    // refuses the key, and names its own measurement.
    let other = other_image(s.path());
    let (mut p, mut c) = s.extra_enclave("other-image", Some(&other)).await;
    for sealed in [Some(stored.clone()), None] {
        let (code, message) = refusal(c.request(s.unseal(&s.key_arn, sealed)).await.unwrap());
        assert_eq!(code, ErrorCode::KmsKeyError, "{message}");
        assert!(message.contains("this image's PCR0"), "{message}");
        assert!(
            !message.contains(&format!("this image's PCR0 {}", s.pcr0)),
            "names the wrong image: {message}"
        );
    }
    p.kill().await.unwrap();

    // None of it reached Secrets Manager, and the parent still holds the one identity.
    assert_eq!(s.secrets_manager_calls().await, 0);
    assert_eq!(s.stored().await.sealed, stored);
    let Sealed { stack, .. } = s;
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn the_parent_refuses_a_key_outside_its_relay_regions_and_an_alias() {
    let dir = tempfile::tempdir().unwrap();
    let sockets = Sockets::in_dir(dir.path());
    for (key, want) in [
        (
            "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "relay.regions",
        ),
        (
            "arn:aws:kms:us-east-1:123456789012:alias/nitrosync",
            "not a KMS key ARN",
        ),
    ] {
        let mut p = start_parent_env(
            dir.path(),
            &sockets,
            &[
                "--region".into(),
                REGION.into(),
                "--identity-kms-key".into(),
                key.into(),
            ],
            &[],
            "parent.log",
        )
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while p.check_alive().is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "the parent kept running"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(dir.path().join("parent.log")).unwrap();
        assert!(log.contains(want), "{log}");
    }
}

/// The RSA-2048 modulus in a DER certificate: the 256 bytes after `02 82 01 01 00` (the only
/// 257-byte INTEGER in it; the signature is a BIT STRING).
fn rsa_modulus(cert_der: &[u8]) -> Vec<u8> {
    let tag = [0x02, 0x82, 0x01, 0x01, 0x00];
    let at = cert_der
        .windows(tag.len())
        .position(|w| w == tag)
        .expect("an RSA-2048 modulus");
    cert_der[at + tag.len()..at + tag.len() + 256].to_vec()
}

#[tokio::test]
async fn the_parent_cannot_open_the_identity_and_no_key_material_leaves_the_enclave_in_clear() {
    use base64::Engine as _;
    let (s, seen) = Sealed::start_with(true).await;
    let seen = seen.unwrap();
    let stored = s.stored().await.sealed;

    // The parent holds the blob and the instance role's credentials: KMS still refuses it the
    // data key without an attestation document (the key policy's DenyWithoutAttestation).
    let b64 = base64::engine::general_purpose::STANDARD;
    for context in [
        None,
        Some(r#"{"nitrosync:purpose":"enclave-identity","nitrosync:format":"1"}"#),
    ] {
        let blob = b64.encode(&stored.ciphertext_blob);
        let mut args = vec![
            "kms-decrypt",
            "--blob-b64",
            &blob,
            "--key-id",
            &s.key_arn,
            "--access-key-id",
            &s.creds.access_key_id,
            "--secret-access-key",
            &s.creds.secret_access_key,
            "--session-token",
            s.creds.session_token.as_deref().unwrap(),
        ];
        if let Some(c) = context {
            args.extend(["--context", c]);
        }
        let out = simctl(s.path(), &args).await.unwrap();
        assert_eq!(out["ok"], false, "{out}");
        assert_eq!(out["error"], "AccessDeniedException", "{out}");
    }

    // The SAML key's modulus stands for the private key: a PKCS#8 key in clear would carry it.
    let mut ctl = EnclaveControl::connect(&s.stack.sockets.control)
        .await
        .unwrap();
    let desc = describe(&mut ctl).await;
    drop(ctl);
    let cert_b64: String = desc
        .saml_metadata
        .split("<ds:X509Certificate>")
        .nth(1)
        .and_then(|t| t.split("</ds:X509Certificate>").next())
        .unwrap()
        .split_whitespace()
        .collect();
    let modulus = rsa_modulus(&b64.decode(cert_b64).unwrap());
    let windows: Vec<&[u8]> = vec![&modulus[..32], &modulus[112..144], &modulus[224..]];

    let carried = seen.lock().unwrap().clone();
    assert!(
        carried
            .windows(b"kms.us-east-1".len())
            .any(|x| x == b"kms.us-east-1"),
        "the KMS calls crossed the tap ({} bytes)",
        carried.len()
    );
    let dir = s.path().to_owned();
    let Sealed { stack, .. } = s;
    stack.stop().await.unwrap();
    let files = [
        ("the relayed bytes", carried),
        (
            "the parent's store",
            std::fs::read(dir.join("parent.db")).unwrap(),
        ),
        (
            "the parent log",
            std::fs::read(dir.join("parent.log")).unwrap(),
        ),
        (
            "the enclave log",
            std::fs::read(dir.join("enclave.log")).unwrap(),
        ),
        ("the sealed identity", stored.to_bytes()),
    ];
    for (what, hay) in &files {
        assert!(!hay.is_empty(), "{what} is empty");
        for w in &windows {
            let hex = hex::encode(w);
            assert!(
                !hay.windows(w.len()).any(|x| x == *w),
                "SAML key material in {what}"
            );
            assert!(
                !hay.windows(hex.len()).any(|x| x == hex.as_bytes()),
                "SAML key material (hex) in {what}"
            );
        }
    }
    // The parent's store does hold the blob (the test looked in the right place).
    let db = &files[1].1;
    let probe = &stored.sealed[..32];
    assert!(
        db.windows(probe.len()).any(|x| x == probe),
        "the blob is not in parent.db"
    );
}

/// Syncs `bundle` straight over the enclave's control connection.
async fn sync_direct(
    s: &Sealed,
    bundle: &nitrosync_shared::bundle::SealedBundle,
) -> nitrosync_shared::control::SyncReport {
    let mut ctl = EnclaveControl::connect(&s.stack.sockets.control)
        .await
        .unwrap();
    let bytes = nitrosync_shared::frame::encode_payload(bundle).unwrap();
    match ctl
        .request(RequestBody::Sync { bundle: bytes })
        .await
        .unwrap()
    {
        ResponseBody::Sync(r) => r,
        other => panic!("unexpected answer: {other:?}"),
    }
}

async fn rotate(s: &Sealed, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["enclave", "rotate"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = cli(&s.stack.sockets.admin, &all).await.unwrap();
    assert_eq!(out.code, 0, "rotate {args:?}: {}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

/// A new destination `name` whose role trusts the provider, its metadata replaced by
/// `metadata` (what a customer's `iam apply` does), so the first sync signs a new assertion.
async fn phase(
    s: &Sealed,
    tenant: &nitrosync_bundle::TenantKey,
    metadata: &str,
    name: &str,
    bundle_key: &[u8; 32],
) -> nitrosync_shared::control::SyncReport {
    let d = destination(name, 0);
    create_roles(s.path(), metadata, tenant, std::slice::from_ref(&d)).await;
    sync_direct(s, &seal_one(tenant, bundle_key, &d, 0, 1)).await
}

fn certs_in(metadata: &str) -> usize {
    metadata.matches("<ds:X509Certificate>").count()
}

#[tokio::test]
async fn a_rotation_cycle_keeps_syncing_and_retires_the_old_keys() {
    use nitrosync_attestation::{Policy, TrustRoot};
    let mut s = Sealed::start().await;
    let tenant = nitrosync_bundle::TenantKey::generate(&mut crate::fleet::rng());
    let mut ctl = EnclaveControl::connect(&s.stack.sockets.control)
        .await
        .unwrap();
    let d0 = describe(&mut ctl).await;
    assert_eq!(d0.rotation.as_ref().unwrap().generation, 0);
    let ok = |r: &nitrosync_shared::control::SyncReport| {
        assert_eq!(r.outcome, SyncOutcome::Created, "{r:?}");
    };
    ok(&phase(&s, &tenant, &d0.saml_metadata, "rota", &d0.bundle_key).await);

    // Begin: the metadata lists both certificates, both attested; nothing else changes.
    let begun = rotate(&s, &["begin"]).await;
    assert_eq!(begun["generation"], 1, "{begun}");
    let d1 = describe(&mut ctl).await;
    assert_eq!(certs_in(&d1.saml_metadata), 2);
    assert_eq!(d1.bundle_key, d0.bundle_key);
    assert_eq!(d1.saml_cert_sha256, d0.saml_cert_sha256);
    let next = d1
        .rotation
        .as_ref()
        .unwrap()
        .next_saml_cert_sha256
        .clone()
        .unwrap();
    assert_eq!(begun["next_saml_cert_sha256"], next.as_str());
    let ResponseBody::Attestation { document } = ctl
        .request(RequestBody::Attest { nonce: vec![7; 32] })
        .await
        .unwrap()
    else {
        panic!("no document")
    };
    let root = TrustRoot::from_pem_or_der(
        &std::fs::read(
            s.path()
                .join("nsm")
                .join(nitrosync_attestation::SIM_ROOT_CERT_FILE),
        )
        .unwrap(),
    )
    .unwrap();
    let verified = nitrosync_attestation::verify(
        &document,
        &root,
        &Policy::new().with_nonce(vec![7; 32]),
        std::time::SystemTime::now(),
    )
    .unwrap();
    let binding =
        nitrosync_attestation::check_metadata_binding(&d1.saml_metadata, &verified).unwrap();
    assert_eq!(binding.signing_certs, 2);
    // Begin again: nothing changes.
    assert_eq!(rotate(&s, &["begin"]).await["generation"], 1);
    // The customer registers the two-certificate metadata; the old key still signs.
    ok(&phase(&s, &tenant, &d1.saml_metadata, "rotb", &d0.bundle_key).await);

    // Finish: the next key signs, the next bundle key is attested, the old one still opens.
    let finished = rotate(&s, &["finish"]).await;
    assert_eq!(finished["generation"], 2, "{finished}");
    let d2 = describe(&mut ctl).await;
    assert_eq!(d2.saml_cert_sha256, next);
    assert_ne!(d2.bundle_key, d0.bundle_key);
    assert_eq!(certs_in(&d2.saml_metadata), 1);
    let old_cert = d0
        .saml_metadata
        .split("<ds:X509Certificate>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap();
    assert!(
        !d2.saml_metadata.contains(old_cert),
        "the old certificate is still published"
    );
    // Before the customer re-applies: the provider still has both, the new key signs.
    ok(&phase(&s, &tenant, &d1.saml_metadata, "rotc", &d0.bundle_key).await);
    // After it re-applies (only the new certificate): new bundles to the new key.
    ok(&phase(&s, &tenant, &d2.saml_metadata, "rotd", &d2.bundle_key).await);

    // A restart unseals generation 2.
    drop(ctl);
    s.stack.restart_enclave("enclave-2.log").await.unwrap();
    let mut ctl = EnclaveControl::connect(&s.stack.sockets.control)
        .await
        .unwrap();
    let after = describe(&mut ctl).await;
    assert_eq!(after.saml_metadata, d2.saml_metadata);
    assert_eq!(after.bundle_key, d2.bundle_key);
    assert_eq!(after.rotation, d2.rotation);
    assert_eq!(s.stored().await.sealed.generation, 2);

    // Another cycle with no grace: bundles sealed to any earlier key no longer open.
    rotate(&s, &["begin"]).await;
    let out = rotate(&s, &["finish", "--bundle-key-grace-days", "0"]).await;
    assert_eq!(out["generation"], 4, "{out}");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let d4 = describe(&mut ctl).await;
    for (name, key) in [("rote", &d2.bundle_key), ("rotf", &d0.bundle_key)] {
        let r = phase(&s, &tenant, &d4.saml_metadata, name, key).await;
        assert_eq!(r.outcome, SyncOutcome::Failed, "{r:?}");
        assert_eq!(
            r.error.as_ref().map(|e| e.code),
            Some(ErrorCode::InvalidBundle),
            "{r:?}"
        );
    }
    ok(&phase(&s, &tenant, &d4.saml_metadata, "rotg", &d4.bundle_key).await);

    // The parent's store keeps the highest generation.
    assert_eq!(s.stored().await.sealed.generation, 4);
    s.stack.stop().await.unwrap();
}

/// The enclave binary with bytes appended: another image (another PCR0) in simulator mode.
fn other_image(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let other = dir.join("other-image-enclave");
    let mut bytes = std::fs::read(bin("nitrosync-enclave")).unwrap();
    bytes.extend_from_slice(b"another image");
    std::fs::write(&other, bytes).unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o755)).unwrap();
    other
}

#[tokio::test]
async fn a_tenant_refuses_an_enclave_whose_identity_an_image_it_does_not_trust_can_unseal() {
    // The operator's key also releases the identity to another image (a later release, or one
    // built to leak keys): the enclave attests that list, and the tenant trusts one image.
    let staging = tempfile::tempdir().unwrap();
    let other = other_image(staging.path());
    let other_measurements = staging.path().join("other-measurements.json");
    measure_simulator(&other, &other_measurements)
        .await
        .unwrap();
    let (s, _) = Sealed::start_full(false, &[other_measurements.as_path()]).await;
    let mut ctl = EnclaveControl::connect(&s.stack.sockets.control)
        .await
        .unwrap();
    let d = describe(&mut ctl).await;
    drop(ctl);
    let Some(IdentitySource::KmsSealed { images, .. }) = &d.identity else {
        panic!("not sealed: {:?}", d.identity)
    };
    assert_eq!(images.len(), 2, "{images:?}");
    let other_pcr0: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&other_measurements).unwrap()).unwrap();
    let other_pcr0 = other_pcr0["PCR0"].as_str().unwrap().to_ascii_lowercase();
    assert!(images.contains(&other_pcr0));

    let Sealed { dir, stack, .. } = s;
    let e = crate::cli::Env::on(dir, stack).await;
    e.ok(&[
        "destination",
        "create",
        "--id",
        "app",
        "--region",
        REGION,
        "--secret-name",
        "app/env",
        "--role-arn",
        "arn:aws:iam::123456789012:role/nitrosync-app",
        "--saml-provider-arn",
        "arn:aws:iam::123456789012:saml-provider/nitrosync-app",
    ])
    .await;
    let f = e.env_file("app.env", "TOKEN=never-sealed-to-it\n");
    for args in [
        vec![
            "iam",
            "template",
            "--destination",
            "app",
            "--format",
            "json",
        ],
        vec![
            "env",
            "push",
            "--destination",
            "app",
            "--file",
            f.to_str().unwrap(),
        ],
    ] {
        let out = e.run(&args).await;
        assert_eq!(out.code, 1, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("images you do not trust") && out.stderr.contains(&other_pcr0),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert_eq!(e.puts("app/env").await, 0);

    // Once the tenant vets and trusts the other image too, it goes ahead.
    e.ok(&[
        "trust",
        "add",
        other_measurements.to_str().unwrap(),
        "--name",
        "other",
    ])
    .await;
    e.ok(&[
        "iam",
        "template",
        "--destination",
        "app",
        "--format",
        "json",
    ])
    .await;
}
