//! Seal → open round trips and every tamper the enclave must refuse.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeS, Serializable};
use nitrosync_bundle::{
    BundleError, EnclaveBundleKey, HPKE_INFO, OpenedBundle, SecretValue, TenantKey, Variables,
    open, render_json, seal,
};
use nitrosync_shared::bundle::{
    BundlePlaintext, DeletePolicy, DestinationConfig, MAX_CIPHERTEXT_LEN, SealedBundle, Terms,
    saml_subject, signing_message,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::collections::BTreeMap;

const SECRET: &str = "hunter2-very-secret";

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn destination() -> DestinationConfig {
    DestinationConfig {
        id: "prod-api".into(),
        region: "us-east-1".into(),
        secret_name: "prod/api/env".into(),
        role_arn: "arn:aws:iam::123456789012:role/nitrosync-prod".into(),
        saml_provider_arn: "arn:aws:iam::123456789012:saml-provider/nitrosync".into(),
        kms_key_id: None,
        tags: BTreeMap::from([("team".into(), "payments".into())]),
        delete_policy: DeletePolicy::Retain,
    }
}

fn vars(pairs: &[(&str, &str)]) -> Variables {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), SecretValue::from(*v)))
        .collect()
}

struct World {
    tenant: TenantKey,
    enclave: EnclaveBundleKey,
    rng: StdRng,
}

impl World {
    fn new(seed: u64) -> Self {
        let mut rng = rng(seed);
        Self {
            tenant: TenantKey::generate(&mut rng),
            enclave: EnclaveBundleKey::generate(&mut rng),
            rng,
        }
    }

    fn seal_with(&mut self, d: DestinationConfig, version: u64, v: &Variables) -> SealedBundle {
        let enclave = self.enclave.public();
        seal(
            &self.tenant,
            &enclave,
            d,
            Terms::write(version, 1_700_000_000_000),
            v,
            &mut self.rng,
        )
        .unwrap()
    }

    fn sealed(&mut self) -> SealedBundle {
        self.seal_with(
            destination(),
            7,
            &vars(&[("API_KEY", SECRET), ("EMPTY", "")]),
        )
    }

    /// Re-signs a modified bundle with `key`, as someone holding that key could.
    fn resign(bundle: &mut SealedBundle, key: &TenantKey) {
        bundle.header.tenant_key = key.public();
        let signer = SigningKey::from_bytes(&key.seed());
        let msg = signing_message(&bundle.header, &bundle.enc, &bundle.ciphertext);
        bundle.signature = signer.sign(&msg).to_bytes();
    }
}

/// Opens and checks that the failure is `want`, and that its message carries no secret.
fn refused(bundle: &SealedBundle, key: &EnclaveBundleKey, want: impl Fn(&BundleError) -> bool) {
    let err = open(bundle, key).expect_err("must be refused");
    assert!(want(&err), "unexpected {err:?}");
    let msg = format!("{err} {err:?} {}", err.reason());
    assert!(!msg.contains(SECRET), "{msg}");
    assert!(!msg.contains(&format!("{:?}", key.public())), "{msg}");
}

#[test]
fn round_trip_with_empty_and_unicode_values() {
    let mut w = World::new(1);
    let v = vars(&[
        ("API_KEY", SECRET),
        ("EMPTY", ""),
        ("GREETING", "grüß gott — 你好 — 🦀\n\t\"quoted\"\0nul"),
        ("_", "x"),
    ]);
    let bundle = w.seal_with(destination(), 3, &v);
    let opened = open(&bundle, &w.enclave).unwrap();
    assert_eq!(opened.variables, v);
    assert_eq!(opened.header, bundle.header);
    assert_eq!(opened.header.tenant_key, w.tenant.public());
    assert_eq!(opened.subject, saml_subject(&w.tenant.public(), "prod-api"));
    // The wire round trip too.
    let framed = nitrosync_shared::frame::encode(&bundle).unwrap();
    let back: SealedBundle = nitrosync_shared::frame::decode_payload(&framed[4..]).unwrap();
    assert_eq!(open(&back, &w.enclave).unwrap(), opened);
    // Nothing secret in the opened bundle's Debug.
    let dbg = format!("{opened:?}");
    assert!(
        dbg.contains("API_KEY") && !dbg.contains(SECRET) && !dbg.contains("grüß"),
        "{dbg}"
    );
}

#[test]
fn round_trip_with_no_and_with_a_thousand_variables() {
    let mut w = World::new(2);
    let empty = Variables::default();
    let bundle = w.seal_with(destination(), 1, &empty);
    assert!(open(&bundle, &w.enclave).unwrap().variables.is_empty());

    let many: Variables = (0..1000)
        .map(|i| {
            (
                format!("VAR_{i:04}"),
                SecretValue::new(format!("value-{i}-{}", "v".repeat(i % 37))),
            )
        })
        .collect();
    let bundle = w.seal_with(destination(), 2, &many);
    let opened = open(&bundle, &w.enclave).unwrap();
    assert_eq!(opened.variables.len(), 1000);
    assert_eq!(opened.variables, many);
    assert_eq!(
        opened.variables.get("VAR_0999").unwrap().expose(),
        format!("value-999-{}", "v".repeat(999 % 37))
    );
}

#[test]
fn sealing_is_randomised() {
    let mut w = World::new(3);
    let (a, b) = (w.sealed(), w.sealed());
    assert_eq!(a.header, b.header);
    assert_ne!(a.enc, b.enc);
    assert_ne!(a.ciphertext, b.ciphertext);
}

#[test]
fn changed_header_fields_break_the_signature() {
    let mut w = World::new(4);
    let bundle = w.sealed();
    let edits: [fn(&mut SealedBundle); 6] = [
        |b| b.header.destination.secret_name = "prod/other/env".into(),
        |b| b.header.version += 1,
        |b| b.header.destination.role_arn = "arn:aws:iam::123456789012:role/attacker".into(),
        |b| b.header.destination.region = "eu-west-1".into(),
        |b| {
            b.header.destination.delete_policy = DeletePolicy::Delete {
                recovery_days: None,
            }
        },
        |b| b.header.created_at_ms += 1,
    ];
    for edit in edits {
        let mut b = bundle.clone();
        edit(&mut b);
        b.header.validate().unwrap();
        refused(&b, &w.enclave, |e| matches!(e, BundleError::BadSignature));
    }
}

#[test]
fn flipped_bits_are_refused_before_decryption() {
    let mut w = World::new(5);
    let bundle = w.sealed();
    for i in [0, 17, 31] {
        let mut b = bundle.clone();
        b.enc[i] ^= 1;
        refused(&b, &w.enclave, |e| matches!(e, BundleError::BadSignature));
    }
    for i in [0, bundle.ciphertext.len() / 2, bundle.ciphertext.len() - 1] {
        let mut b = bundle.clone();
        b.ciphertext[i] ^= 0x80;
        refused(&b, &w.enclave, |e| matches!(e, BundleError::BadSignature));
    }
    for i in [0, 31, 32, 63] {
        let mut b = bundle.clone();
        b.signature[i] ^= 4;
        refused(&b, &w.enclave, |e| matches!(e, BundleError::BadSignature));
    }
}

#[test]
fn a_bundle_for_another_enclave_is_refused() {
    let mut w = World::new(6);
    let other = EnclaveBundleKey::generate(&mut w.rng);
    let bundle = w.sealed();
    refused(&bundle, &other, |e| {
        matches!(e, BundleError::WrongEnclaveKey)
    });
    // Relabelling the header to the other key breaks the signature.
    let mut b = bundle.clone();
    b.header.enclave_key = other.public();
    refused(&b, &other, |e| matches!(e, BundleError::BadSignature));
    // And with a tenant that re-signs it, HPKE still refuses (not sealed to `other`).
    World::resign(&mut b, &w.tenant);
    refused(&b, &other, |e| matches!(e, BundleError::Decrypt));
}

#[test]
fn another_tenant_cannot_adopt_a_ciphertext() {
    let mut w = World::new(7);
    let bundle = w.sealed();
    let attacker = TenantKey::generate(&mut w.rng);
    let mut b = bundle.clone();
    World::resign(&mut b, &attacker);
    // The signature is valid for the attacker's key ...
    let msg = signing_message(&b.header, &b.enc, &b.ciphertext);
    VerifyingKey::from_bytes(&attacker.public())
        .unwrap()
        .verify_strict(&msg, &ed25519_dalek::Signature::from_bytes(&b.signature))
        .unwrap();
    // ... but the header is the AAD, so the ciphertext does not open.
    refused(&b, &w.enclave, |e| matches!(e, BundleError::Decrypt));
    // Had it opened, it would have been under another SAML subject.
    assert_ne!(
        saml_subject(&attacker.public(), &b.header.destination.id),
        saml_subject(&bundle.header.tenant_key, &bundle.header.destination.id)
    );
}

#[test]
fn a_ciphertext_moved_to_another_header_of_the_same_tenant_does_not_open() {
    let mut w = World::new(8);
    let a = w.sealed();
    let mut other = destination();
    other.secret_name = "prod/attacker-readable/env".into();
    let b = w.seal_with(other, 8, &vars(&[("X", "y")]));
    let mut moved = b.clone();
    moved.enc = a.enc.clone();
    moved.ciphertext = a.ciphertext.clone();
    refused(&moved, &w.enclave, |e| {
        matches!(e, BundleError::BadSignature)
    });
    // Even validly signed by the same tenant, the AAD binds the ciphertext to its header.
    let tenant = TenantKey::from_seed(&w.tenant.seed());
    World::resign(&mut moved, &tenant);
    refused(&moved, &w.enclave, |e| matches!(e, BundleError::Decrypt));
}

#[test]
fn invalid_variable_names_are_refused_at_seal_time() {
    let mut w = World::new(9);
    let enclave = w.enclave.public();
    for bad in ["", "1ABC", "A-B", "A B", "É", &"A".repeat(257)] {
        let v = vars(&[("GOOD", "x"), (bad, SECRET)]);
        let err = seal(
            &w.tenant,
            &enclave,
            destination(),
            Terms::write(1, 0),
            &v,
            &mut w.rng,
        )
        .unwrap_err();
        assert!(matches!(err, BundleError::VariableName(_)), "{err:?}");
        assert!(!err.to_string().contains(SECRET));
    }
}

/// Seals an arbitrary plaintext by hand, with a valid signature: what a buggy or malicious
/// tenant could send.
fn seal_raw(w: &mut World, plaintext: &[u8]) -> SealedBundle {
    let mut bundle = w.sealed();
    let pk = <X25519HkdfSha256 as Kem>::PublicKey::from_bytes(&w.enclave.public()).unwrap();
    let (enc, ct) = hpke::single_shot_seal_with_rng::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
        &OpModeS::Base,
        &pk,
        HPKE_INFO,
        plaintext,
        &bundle.header.canonical_bytes(),
        &mut w.rng,
    )
    .unwrap();
    bundle.enc = enc.to_bytes().to_vec();
    bundle.ciphertext = ct;
    let tenant = TenantKey::from_seed(&w.tenant.seed());
    World::resign(&mut bundle, &tenant);
    bundle
}

#[test]
fn invalid_variable_names_and_plaintexts_are_refused_at_open_time() {
    let mut w = World::new(10);
    let mut cbor = Vec::new();
    let plain = BundlePlaintext {
        variables: BTreeMap::from([("OK".into(), "1".into()), ("1BAD".into(), SECRET.into())]),
    };
    ciborium::into_writer(&plain, &mut cbor).unwrap();
    let b = seal_raw(&mut w, &cbor);
    refused(&b, &w.enclave, |e| {
        matches!(e, BundleError::VariableName(_))
    });

    // Sanity: the same path with a valid plaintext opens.
    let mut good = Vec::new();
    let plain = BundlePlaintext {
        variables: BTreeMap::from([("OK".into(), SECRET.into())]),
    };
    ciborium::into_writer(&plain, &mut good).unwrap();
    let opened = open(&seal_raw(&mut w, &good), &w.enclave).unwrap();
    assert_eq!(opened.variables.get("OK").unwrap().expose(), SECRET);

    for bytes in [
        [good.as_slice(), b"\x00"].concat(), // trailing bytes
        good[..good.len() - 2].to_vec(),     // truncated
        b"\xa1\x69variables\x01".to_vec(),   // not a map
        Vec::new(),                          // empty
    ] {
        let b = seal_raw(&mut w, &bytes);
        refused(&b, &w.enclave, |e| {
            matches!(e, BundleError::Plaintext { .. })
        });
    }
}

#[test]
fn header_problems_are_refused_first() {
    let mut w = World::new(11);
    let bundle = w.sealed();
    let mut b = bundle.clone();
    b.header.format = 1;
    refused(
        &b,
        &w.enclave,
        |e| matches!(e, BundleError::Header(c) if c.field == "format"),
    );
    let mut b = bundle.clone();
    b.header.not_after_ms = b.header.created_at_ms;
    refused(
        &b,
        &w.enclave,
        |e| matches!(e, BundleError::Header(c) if c.field == "not_after_ms"),
    );
    let mut b = bundle.clone();
    b.header.version = 0;
    refused(
        &b,
        &w.enclave,
        |e| matches!(e, BundleError::Header(c) if c.field == "version"),
    );
    let mut b = bundle.clone();
    b.header.destination.role_arn = "arn:aws:iam::999999999999:role/x".into();
    refused(
        &b,
        &w.enclave,
        |e| matches!(e, BundleError::Header(c) if c.field == "saml_provider_arn"),
    );
    // Seal refuses the same headers.
    let enclave = w.enclave.public();
    let v = vars(&[("A", "b")]);
    let err = seal(
        &w.tenant,
        &enclave,
        destination(),
        Terms::write(0, 0),
        &v,
        &mut w.rng,
    )
    .unwrap_err();
    assert!(matches!(err, BundleError::Header(c) if c.field == "version"));
}

#[test]
fn sizes_are_checked_before_anything_else() {
    let mut w = World::new(12);
    let bundle = w.sealed();
    let mut b = bundle.clone();
    b.ciphertext = vec![0; MAX_CIPHERTEXT_LEN + 1];
    b.header.format = 99; // size wins over the header
    refused(
        &b,
        &w.enclave,
        |e| matches!(e, BundleError::CiphertextTooLarge { len, max } if *len == MAX_CIPHERTEXT_LEN + 1 && *max == MAX_CIPHERTEXT_LEN),
    );
    for len in [0, 31, 33, 65] {
        let mut b = bundle.clone();
        b.enc = vec![9; len];
        refused(
            &b,
            &w.enclave,
            |e| matches!(e, BundleError::EncappedKeyLength { len: l } if *l == len),
        );
    }
    // A ciphertext shorter than the tag, validly signed, is a decryption failure.
    let mut b = bundle.clone();
    b.ciphertext.truncate(5);
    let tenant = TenantKey::from_seed(&w.tenant.seed());
    World::resign(&mut b, &tenant);
    refused(&b, &w.enclave, |e| matches!(e, BundleError::Decrypt));
    // Seal refuses to produce what open would refuse.
    let huge = vars(&[("BIG", &"x".repeat(MAX_CIPHERTEXT_LEN))]);
    let enclave = w.enclave.public();
    let err = seal(
        &w.tenant,
        &enclave,
        destination(),
        Terms::write(1, 0),
        &huge,
        &mut w.rng,
    )
    .unwrap_err();
    assert!(
        matches!(err, BundleError::CiphertextTooLarge { .. }),
        "{err:?}"
    );
}

#[test]
fn bad_keys_are_named() {
    let mut w = World::new(13);
    let mut b = w.sealed();
    let not_a_point = (0u8..=255)
        .map(|i| [i; 32])
        .find(|k| VerifyingKey::from_bytes(k).is_err())
        .unwrap();
    b.header.tenant_key = not_a_point;
    refused(&b, &w.enclave, |e| {
        matches!(e, BundleError::InvalidTenantKey)
    });
    // A low-order enclave key (here: zero) would give an all-zero shared secret.
    let v = vars(&[("A", "b")]);
    let err = seal(
        &w.tenant,
        &[0; 32],
        destination(),
        Terms::write(1, 0),
        &v,
        &mut w.rng,
    )
    .unwrap_err();
    assert!(matches!(err, BundleError::InvalidEnclaveKey), "{err:?}");
}

#[test]
fn debug_output_contains_no_secret() {
    let mut w = World::new(14);
    let v = vars(&[("API_KEY", SECRET)]);
    let seed_hex: String = w.tenant.seed().iter().map(|b| format!("{b:02x}")).collect();
    let enclave_hex: String = w
        .enclave
        .secret_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dbg = format!(
        "{v:?} {v:#?} {:?} {} {:?} {:?}",
        v.get("API_KEY").unwrap(),
        v.get("API_KEY").unwrap(),
        w.tenant,
        w.enclave
    );
    for secret in [
        SECRET,
        &seed_hex,
        &enclave_hex,
        &format!("{:?}", *w.tenant.seed()),
    ] {
        assert!(!dbg.contains(secret), "{dbg}");
    }
    assert!(
        dbg.contains("API_KEY") && dbg.contains("[REDACTED]"),
        "{dbg}"
    );
    let bundle = w.seal_with(destination(), 1, &v);
    let opened: OpenedBundle = open(&bundle, &w.enclave).unwrap();
    assert!(!format!("{opened:?}").contains(SECRET));
}

#[test]
fn render_json_exact_bytes() {
    let v = vars(&[
        ("b", "2\"\\\n"),
        ("B", "é"),
        ("a", ""),
        ("A_1", "\u{7f}\u{1f}"),
    ]);
    assert_eq!(
        std::str::from_utf8(&render_json(&v)).unwrap(),
        "{\"A_1\":\"\u{7f}\\u001f\",\"B\":\"é\",\"a\":\"\",\"b\":\"2\\\"\\\\\\n\"}"
    );
}

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_]{0,40}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_valid_map_round_trips(
        map in proptest::collection::btree_map(name(), ".{0,200}", 0..40),
        seed in any::<u64>(),
        version in 1u64..,
    ) {
        let mut w = World::new(seed);
        let v: Variables = map.iter().map(|(k, v)| (k.clone(), SecretValue::from(v.as_str()))).collect();
        let bundle = w.seal_with(destination(), version, &v);
        let opened = open(&bundle, &w.enclave).unwrap();
        prop_assert_eq!(&opened.variables, &v);
        prop_assert_eq!(opened.header.version, version);
        // And the JSON parses back to the same map.
        let back: BTreeMap<String, String> = serde_json::from_slice(&render_json(&opened.variables)).unwrap();
        prop_assert_eq!(back, map);
    }
}

/// Writes `fuzz/corpus/bundle_open/valid-sealed-bundle` (see fuzz/README.md).
#[test]
#[ignore = "writes the fuzz seed corpus"]
fn write_fuzz_seed() {
    let mut w = World::new(99);
    w.enclave = EnclaveBundleKey::from_secret_bytes(&[0x5a; 32]);
    let bundle = w.sealed();
    open(&bundle, &w.enclave).unwrap();
    let framed = nitrosync_shared::frame::encode(&bundle).unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/bundle_open");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("valid-sealed-bundle"), &framed[4..]).unwrap();
}
