//! Altered documents: each alteration is refused with its own error variant.

use ciborium::Value;
use nitrosync_attestation::{Policy, VerifyError, inspect, verify};

use crate::*;

/// Position of the first occurrence of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle occurs")
}

fn flip(doc: &[u8], at: usize) -> Vec<u8> {
    let mut out = doc.to_vec();
    out[at] ^= 0x01;
    out
}

fn check(doc: &[u8], policy: &Policy) -> Result<(), VerifyError> {
    verify(doc, &aws_root(), policy, own_time(&data(BASE))).map(|_| ())
}

/// Decodes the COSE array and its payload, lets `edit` change the payload map, and re-encodes
/// both (definite lengths), keeping the original signature.
fn edit_payload(doc: &[u8], edit: impl FnOnce(&mut Vec<(Value, Value)>)) -> Vec<u8> {
    let Value::Array(mut cose) = ciborium::from_reader::<Value, _>(doc).unwrap() else {
        panic!("not an array")
    };
    let Value::Bytes(payload) = &cose[2] else {
        panic!("payload")
    };
    let Value::Map(mut map) = ciborium::from_reader::<Value, _>(payload.as_slice()).unwrap() else {
        panic!("payload map")
    };
    edit(&mut map);
    let mut payload = Vec::new();
    ciborium::into_writer(&Value::Map(map), &mut payload).unwrap();
    cose[2] = Value::Bytes(payload);
    let mut out = Vec::new();
    ciborium::into_writer(&Value::Array(cose), &mut out).unwrap();
    out
}

fn cabundle_of(map: &mut [(Value, Value)]) -> &mut Vec<Value> {
    map.iter_mut()
        .find(|(k, _)| k.as_text() == Some("cabundle"))
        .and_then(|(_, v)| v.as_array_mut())
        .expect("cabundle")
}

#[test]
fn the_unaltered_base_verifies() {
    check(&data(BASE), &Policy::new()).unwrap();
}

#[test]
fn flipped_bit_in_the_signature_is_bad_signature() {
    let doc = data(BASE);
    let last = doc.len() - 1;
    assert_eq!(
        check(&flip(&doc, last), &Policy::new()),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        check(&flip(&doc, last - 95), &Policy::new()),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn flipped_bit_in_the_payload_is_bad_signature() {
    let doc = data(BASE);
    let claimed = inspect(&doc).unwrap();
    let pcr0 = find(&doc, &claimed.pcrs[&0]);
    assert_eq!(
        check(&flip(&doc, pcr0 + 7), &Policy::new()),
        Err(VerifyError::BadSignature)
    );
    // The payload's module_id comes before the leaf certificate, which repeats it.
    let module_id = find(&doc, claimed.module_id.as_bytes());
    assert_eq!(
        check(&flip(&doc, module_id + 3), &Policy::new()),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn flipped_bit_in_the_leaf_certificate_breaks_the_chain_at_the_leaf() {
    let doc = data(BASE);
    let claimed = inspect(&doc).unwrap();
    let leaf = find(&doc, &claimed.certificate);
    // The last byte is inside the certificate's ECDSA signature.
    let mutated = flip(&doc, leaf + claimed.certificate.len() - 1);
    assert_eq!(
        check(&mutated, &Policy::new()),
        Err(VerifyError::ChainInvalid {
            index: claimed.cabundle.len(),
            reason: "signature does not verify with the issuer's key".into()
        })
    );
    // A bit inside the subject public key: the chain signature fails first too.
    let key_bit = leaf + claimed.certificate.len() / 2;
    assert!(matches!(
        check(&flip(&doc, key_bit), &Policy::new()),
        Err(VerifyError::ChainInvalid { .. } | VerifyError::CertificateParse { .. })
    ));
}

#[test]
fn flipped_bit_in_a_cabundle_entry_is_refused() {
    let doc = data(BASE);
    let claimed = inspect(&doc).unwrap();
    for (index, cert) in claimed.cabundle.iter().enumerate() {
        let at = find(&doc, cert) + cert.len() - 1;
        let expected = if index == 0 {
            VerifyError::RootMismatch
        } else {
            VerifyError::ChainInvalid {
                index,
                reason: "signature does not verify with the issuer's key".into(),
            }
        };
        assert_eq!(
            check(&flip(&doc, at), &Policy::new()),
            Err(expected),
            "cabundle[{index}]"
        );
    }
}

#[test]
fn truncated_documents_are_malformed() {
    let doc = data(BASE);
    for len in [0, 1, 10, 100, doc.len() / 2, doc.len() - 97, doc.len() - 1] {
        let err = check(&doc[..len], &Policy::new()).unwrap_err();
        assert!(
            matches!(err, VerifyError::Malformed { .. }),
            "len {len}: {err}"
        );
        assert!(inspect(&doc[..len]).is_err());
    }
}

#[test]
fn swapped_cabundle_order_is_refused() {
    let doc = data(BASE);
    let root_second = edit_payload(&doc, |map| cabundle_of(map).swap(0, 1));
    assert_eq!(
        check(&root_second, &Policy::new()),
        Err(VerifyError::RootMismatch)
    );
    let intermediates_swapped = edit_payload(&doc, |map| cabundle_of(map).swap(1, 2));
    assert!(matches!(
        check(&intermediates_swapped, &Policy::new()),
        Err(VerifyError::ChainInvalid { index: 1, .. })
    ));
}

#[test]
fn reencoded_payload_is_bad_signature() {
    // Same content, different bytes: the signature covers the bytes as received.
    let doc = data("aws-2026-02-02-indefinite-map.cbor");
    let reencoded = edit_payload(&doc, |_| {});
    assert_ne!(reencoded, doc);
    assert_eq!(
        verify(&reencoded, &aws_root(), &Policy::new(), own_time(&doc)).map(|_| ()),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn wrong_pcr_is_pcr_mismatch() {
    let doc = data(BASE);
    let policy = Policy::new().with_pcr(0, vec![0x42; 48]);
    match check(&doc, &policy) {
        Err(VerifyError::PcrMismatch {
            index: 0,
            expected,
            actual,
        }) => {
            assert_eq!(expected, vec![0x42; 48]);
            assert_eq!(actual, inspect(&doc).unwrap().pcrs[&0]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        check(&doc, &Policy::new().with_pcr(20, vec![0; 48])),
        Err(VerifyError::MissingPcr { index: 20 })
    );
}

#[test]
fn wrong_or_missing_nonce_is_nonce_mismatch() {
    let eif = data("aws-2022-10-13-signed-eif.cbor");
    let policy = Policy::new().with_nonce(vec![1, 2, 3]);
    assert_eq!(
        verify(&eif, &aws_root(), &policy, own_time(&eif)).map(|_| ()),
        Err(VerifyError::NonceMismatch)
    );
    assert_eq!(check(&data(BASE), &policy), Err(VerifyError::NonceMismatch));
}

#[test]
fn too_old_and_from_the_future() {
    let doc = data(BASE);
    let at = own_time(&doc);
    let policy = Policy::new().with_max_age(minutes(5));
    assert_eq!(
        verify(&doc, &aws_root(), &policy, at + minutes(10)).map(|_| ()),
        Err(VerifyError::TooOld {
            age: minutes(10),
            max: minutes(5)
        })
    );
    verify(&doc, &aws_root(), &policy, at + minutes(5)).unwrap();
    assert!(matches!(
        verify(&doc, &aws_root(), &Policy::new(), at - minutes(2)),
        Err(VerifyError::FromTheFuture { .. })
    ));
    verify(
        &doc,
        &aws_root(),
        &Policy::new(),
        at - std::time::Duration::from_secs(30),
    )
    .unwrap();
}

/// A document shaped like QEMU's emulated NSM output: `{1: -1}`, zero-filled certificate and
/// signature.
pub fn qemu_style_document() -> Vec<u8> {
    let base = inspect(&data(BASE)).unwrap();
    let pcrs = base
        .pcrs
        .iter()
        .map(|(&i, v)| (Value::from(i), Value::Bytes(v.clone())))
        .collect();
    let payload = Value::Map(vec![
        (
            Value::from("module_id"),
            Value::from("i-00000000000000000-enc0000000000000000"),
        ),
        (Value::from("digest"), Value::from("SHA384")),
        (Value::from("timestamp"), Value::from(base.timestamp_ms)),
        (Value::from("pcrs"), Value::Map(pcrs)),
        (Value::from("certificate"), Value::Bytes(vec![0; 640])),
        (
            Value::from("cabundle"),
            Value::Array(vec![Value::Bytes(vec![0; 640])]),
        ),
        (Value::from("public_key"), Value::Null),
        (Value::from("user_data"), Value::Null),
        (Value::from("nonce"), Value::Null),
    ]);
    let mut payload_bytes = Vec::new();
    ciborium::into_writer(&payload, &mut payload_bytes).unwrap();
    let mut protected = Vec::new();
    ciborium::into_writer(
        &Value::Map(vec![(Value::from(1), Value::from(-1))]),
        &mut protected,
    )
    .unwrap();
    let cose = Value::Array(vec![
        Value::Bytes(protected),
        Value::Map(vec![]),
        Value::Bytes(payload_bytes),
        Value::Bytes(vec![0; 96]),
    ]);
    let mut out = Vec::new();
    ciborium::into_writer(&cose, &mut out).unwrap();
    out
}

#[test]
fn qemu_unsigned_document_is_unsupported_algorithm() {
    let doc = qemu_style_document();
    assert_eq!(inspect(&doc).unwrap().alg, -1, "inspect still shows it");
    let policy = Policy::new().with_allow_debug(true);
    for root in [aws_root(), mock_root()] {
        assert_eq!(
            check_with(&doc, &root, &policy),
            Err(VerifyError::UnsupportedAlgorithm { alg: -1 })
        );
    }
}

fn check_with(
    doc: &[u8],
    root: &nitrosync_attestation::TrustRoot,
    policy: &Policy,
) -> Result<(), VerifyError> {
    verify(doc, root, policy, own_time(&data(BASE))).map(|_| ())
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let big = vec![0u8; nitrosync_attestation::MAX_DOCUMENT_LEN + 1];
    assert!(matches!(
        check(&big, &Policy::new()),
        Err(VerifyError::DocumentTooLarge { .. })
    ));
}
