//! Arbitrary text as a KMS key policy, checked against a fixed image. The check must never
//! panic; its verdict may depend on the image only through "is it released"; and whatever it
//! accepts must, read again independently, release data keys only to pinned images.
//!
//! The seeds (`fuzz-enclave/seeds/key_policy/`) are the template policy of the enclave's policy tests,
//! which passes for `OWN`, and variants it refuses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nitrosync_enclave::identity::{IdentityError, PolicyFacts, check_key_policy};
use serde_json::Value;

/// This image's PCR0: the seeds' `EnclaveImage1` (IMAGE_A of the policy tests).
const OWN: [u8; 48] = [
    0xaa, 0x01, 0xaa, 0x01, 0xaa, 0x01, 0xaa, 0x01, 0xaa, 0x01, 0xaa, 0x01, 0xaa, 0x01, 0xaa, 0x01,
    0xaa, 0x01, 0xaa, 0x01, 0xaa, 0x01, 0xaa, 0x01, 0xaa, 0x01, 0xaa, 0x01, 0xaa, 0x01, 0xaa, 0x01,
    0xaa, 0x01, 0xaa, 0x01, 0xaa, 0x01, 0xaa, 0x01, 0xaa, 0x01, 0xaa, 0x01, 0xaa, 0x01, 0xaa, 0x01,
];
/// An image no seed releases to.
const OTHER: [u8; 48] = [0x5c; 48];
/// The condition key that pins PCR0.
const IMAGE_SHA384: &str = "kms:RecipientAttestation:ImageSha384";
/// Actions that hand out, forge or delegate key material, or change the policy: never in an
/// accepted Allow (compared case-insensitively; wildcards are refused separately).
const DANGEROUS: [&str; 16] = [
    "kms:Encrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyPairWithoutPlaintext",
    "kms:GenerateRandom",
    "kms:CreateGrant",
    "kms:PutKeyPolicy",
    "kms:ImportKeyMaterial",
    "kms:GetParametersForImport",
    "kms:GetPublicKey",
    "kms:Sign",
    "kms:GenerateMac",
    "kms:DeriveSharedSecret",
    "kms:ReplicateKey",
];
/// The actions that release a data key.
const RELEASING: [&str; 2] = ["kms:Decrypt", "kms:GenerateDataKey"];

/// The images a verdict names: those released (accepted, or safe for another image), or
/// `None` when the policy itself is refused.
fn released(verdict: &Result<PolicyFacts, IdentityError>) -> Option<Vec<String>> {
    match verdict {
        Ok(facts) => Some(facts.images.clone()),
        Err(IdentityError::ImageNotReleased { released, .. }) if released == "none" => Some(vec![]),
        Err(IdentityError::ImageNotReleased { released, .. }) => {
            Some(released.split(", ").map(str::to_owned).collect())
        }
        Err(_) => None,
    }
}

/// An error's message and its sources, formatted all the way down.
fn describe(e: &IdentityError) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A string or a list of strings, as IAM reads `Action` and condition values.
fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

/// Reads an accepted policy again, without the checker's code, and asserts what acceptance
/// promises: every Allow names its actions, none of them dangerous, and one that releases a
/// data key pins `kms:RecipientAttestation:ImageSha384` to images among `images`.
fn assert_safe(policy: &str, images: &[String]) {
    // Accepted, so it is JSON without duplicate member names: `Value` reads it faithfully.
    let doc: Value = serde_json::from_str(policy).expect("an accepted policy is JSON");
    let statements = match &doc["Statement"] {
        Value::Array(list) => list.iter().collect(),
        one @ Value::Object(_) => vec![one],
        other => panic!("accepted with Statement {other}"),
    };
    for st in statements {
        match st["Effect"].as_str() {
            Some("Deny") => continue,
            Some("Allow") => {}
            other => panic!("accepted a statement with Effect {other:?}"),
        }
        assert!(st.get("NotAction").is_none() && st.get("NotResource").is_none());
        let actions = strings(&st["Action"]);
        assert!(!actions.is_empty(), "accepted an Allow without actions");
        for a in &actions {
            assert!(!a.contains(['*', '?']), "accepted the wildcard {a:?}");
            assert!(
                !DANGEROUS.iter().any(|d| d.eq_ignore_ascii_case(a)),
                "accepted an Allow of {a:?}"
            );
        }
        if !actions
            .iter()
            .any(|a| RELEASING.iter().any(|r| r.eq_ignore_ascii_case(a)))
        {
            continue;
        }
        let mut pins = 0;
        for (operator, block) in st["Condition"].as_object().expect("a pinned Allow") {
            if operator != "StringEquals" && operator != "StringEqualsIgnoreCase" {
                continue;
            }
            for (key, values) in block.as_object().expect("a condition block is an object") {
                if !key.eq_ignore_ascii_case(IMAGE_SHA384) {
                    continue;
                }
                pins += 1;
                let values = strings(values);
                assert!(!values.is_empty(), "accepted an empty pin");
                for v in values {
                    let v = v.to_ascii_lowercase();
                    assert!(images.contains(&v), "pins {v}, not among {images:?}");
                }
            }
        }
        assert_eq!(pins, 1, "an accepted release must be pinned exactly once");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(policy) = std::str::from_utf8(data) else {
        return;
    };
    let own = check_key_policy(policy, &OWN);
    let other = check_key_policy(policy, &OTHER);
    if let Err(e) = &own {
        let _ = describe(e);
    }
    match (released(&own), released(&other)) {
        (Some(images), Some(again)) => {
            assert_eq!(
                images, again,
                "the released images depend on the caller's image"
            );
            let mut sorted = images.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(images, sorted);
            for image in &images {
                assert_eq!(image.len(), 96);
                assert!(
                    image
                        .bytes()
                        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                );
                assert!(
                    image.bytes().any(|b| b != b'0'),
                    "releases to a debug image"
                );
            }
            // Every released image passes, with the same facts.
            for image in images.iter().take(4) {
                let pcr0 = hex::decode(image).expect("hex");
                let facts = check_key_policy(policy, &pcr0).expect("a released image passes");
                assert_eq!(facts.images, images);
            }
            assert_eq!(own.is_ok(), images.contains(&hex::encode(OWN)));
            assert_eq!(other.is_ok(), images.contains(&hex::encode(OTHER)));
            if own.is_ok() {
                assert_safe(policy, &images);
            }
        }
        (None, None) => {
            // Refused for what the policy says, whoever asks: the same error.
            let (Err(a), Err(b)) = (&own, &other) else {
                unreachable!()
            };
            assert_eq!(describe(a), describe(b));
        }
        (a, b) => panic!("the verdict depends on the caller's image: {a:?} / {b:?}"),
    }
    // A PCR0 that is not 48 bytes is the caller's error, before the policy is read.
    assert!(matches!(
        check_key_policy(policy, &OWN[..47]),
        Err(IdentityError::Pcr0Length { len: 47 })
    ));
});
