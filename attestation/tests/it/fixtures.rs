//! Real documents: accepted inside their window, rejected outside it or under the wrong root.

use nitrosync_attestation::{ChainCache, Policy, VerifyError, inspect, verify, verify_cached};

use crate::*;

#[test]
fn every_aws_fixture_verifies_at_its_own_timestamp() {
    for name in AWS_PRODUCTION {
        let doc = data(name);
        let claimed = inspect(&doc).unwrap();
        let verified = verify(&doc, &aws_root(), &Policy::new(), own_time(&doc))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(verified.module_id, claimed.module_id, "{name}");
        assert_eq!(verified.pcrs, claimed.pcrs, "{name}");
        assert_eq!(verified.timestamp, claimed.timestamp(), "{name}");
        assert_eq!(verified.digest, "SHA384");
        assert!(!verified.debug);
        assert!(verified.not_after > verified.timestamp, "{name}");
    }
}

#[test]
fn every_aws_fixture_is_expired_at_2026_11_21() {
    for name in AWS_PRODUCTION.into_iter().chain([AWS_DEBUG]) {
        let doc = data(name);
        let policy = Policy::new().with_allow_debug(true);
        let err = verify(&doc, &aws_root(), &policy, expired_time()).unwrap_err();
        assert!(
            matches!(err, VerifyError::CertificateExpired { .. }),
            "{name}: {err}"
        );
    }
}

#[test]
fn expired_leaf_is_reported_at_the_leaf_index() {
    let doc = data(BASE);
    let claimed = inspect(&doc).unwrap();
    // 08:57:45 is the leaf's end; the intermediates live longer.
    let just_after = humantime::parse_rfc3339("2024-12-13T08:57:46Z").unwrap();
    match verify(&doc, &aws_root(), &Policy::new(), just_after) {
        Err(VerifyError::CertificateExpired { index, now, .. }) => {
            assert_eq!(index, claimed.cabundle.len());
            assert_eq!(now, just_after);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn debug_enclave_needs_allow_debug() {
    let doc = data(AWS_DEBUG);
    let at = own_time(&doc);
    assert_eq!(
        verify(&doc, &aws_root(), &Policy::new(), at),
        Err(VerifyError::DebugEnclave)
    );
    let verified = verify(&doc, &aws_root(), &Policy::new().with_allow_debug(true), at).unwrap();
    assert!(verified.debug);
    assert!(verified.pcrs[&0].iter().all(|&b| b == 0));
}

#[test]
fn mock_rooted_document_needs_the_mock_root() {
    let doc = data(MOCK);
    let at = own_time(&doc);
    assert_eq!(
        verify(&doc, &aws_root(), &Policy::new(), at),
        Err(VerifyError::RootMismatch)
    );
    let verified = verify(&doc, &mock_root(), &Policy::new(), at).unwrap();
    assert_eq!(verified.user_data.as_deref(), Some(&[0xab, 0xcd, 0xef][..]));
    assert_eq!(
        verified.public_key.as_deref(),
        Some(&[0x12, 0x34, 0x56, 0x78][..])
    );
}

#[test]
fn fixture_specifics_survive_verification() {
    let pcr16 = data("aws-2025-04-29-pcr16.cbor");
    let v = verify(&pcr16, &aws_root(), &Policy::new(), own_time(&pcr16)).unwrap();
    assert_eq!(v.pcrs.len(), 17);
    assert_eq!(v.user_data.as_deref(), Some(&[][..]), "empty, not null");
    assert_eq!(v.public_key.as_ref().map(Vec::len), Some(32));

    let eif = data("aws-2022-10-13-signed-eif.cbor");
    let v = verify(&eif, &aws_root(), &Policy::new(), own_time(&eif)).unwrap();
    assert_eq!(v.nonce.as_ref().map(Vec::len), Some(256));
    assert_eq!(
        v.public_key, None,
        "null, although the shared README calls it empty"
    );
    assert!(v.pcrs[&8].iter().any(|&b| b != 0), "signed EIF sets PCR8");
}

#[test]
fn expected_pcrs_nonce_and_age_accept_the_right_values() {
    let doc = data("aws-2022-10-13-signed-eif.cbor");
    let claimed = inspect(&doc).unwrap();
    let policy = Policy::new()
        .with_pcr(0, claimed.pcrs[&0].clone())
        .with_pcr(1, claimed.pcrs[&1].clone())
        .with_pcr(2, claimed.pcrs[&2].clone())
        .with_pcr(8, claimed.pcrs[&8].clone())
        .with_nonce(claimed.nonce.clone().unwrap())
        .with_max_age(minutes(5));
    verify(&doc, &aws_root(), &policy, own_time(&doc) + minutes(4)).unwrap();
}

#[test]
fn cached_and_uncached_verification_agree() {
    let cache = ChainCache::new();
    let mut pairs = std::collections::BTreeSet::new();
    for name in AWS_PRODUCTION.into_iter().chain([MOCK]) {
        let doc = data(name);
        let root = if name == MOCK {
            mock_root()
        } else {
            aws_root()
        };
        let at = own_time(&doc);
        for pair in inspect(&doc).unwrap().cabundle.windows(2) {
            pairs.insert(pair.to_vec());
        }
        let plain = verify(&doc, &root, &Policy::new(), at);
        assert_eq!(
            verify_cached(&doc, &root, &Policy::new(), at, &cache),
            plain,
            "{name}"
        );
        assert_eq!(
            verify_cached(&doc, &root, &Policy::new(), at, &cache),
            plain,
            "{name} hit"
        );
        let expired = verify(&doc, &root, &Policy::new(), expired_time());
        assert_eq!(
            verify_cached(&doc, &root, &Policy::new(), expired_time(), &cache),
            expired,
            "{name}: a cache hit still checks validity"
        );
    }
    // Every (issuer, intermediate) pair is cached once; the mock chain has no intermediate.
    assert!(pairs.len() >= AWS_PRODUCTION.len());
    assert_eq!(cache.len(), pairs.len());
}
