//! Feeds arbitrary bytes to the document parser and verifier. Neither may panic, and bytes that
//! `inspect` rejects must never verify.
//!
//! Run from the repository root: `cargo fuzz run attestation_doc fuzz/corpus/attestation_doc`, seeding
//! the corpus with `cp attestation/tests/data/*.cbor fuzz/corpus/attestation_doc/`.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use nitrosync_attestation::{ChainCache, Policy, TrustRoot, inspect, verify, verify_cached};

struct Fixed {
    root: TrustRoot,
    policy: Policy,
    cache: ChainCache,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| Fixed {
        root: TrustRoot::aws_nitro_g1(),
        policy: Policy::new().with_allow_debug(true),
        cache: ChainCache::new(),
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixed();
    let inspected = inspect(data);
    // A time inside the ap-south-1 fixture's window, so that real chains get past validity.
    let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_734_075_478_960);
    let verified = verify(data, &f.root, &f.policy, now);
    let cached = verify_cached(data, &f.root, &f.policy, now, &f.cache);
    assert_eq!(verified, cached);
    if inspected.is_err() {
        assert!(verified.is_err());
    }
    if let Ok(doc) = inspected {
        let _ = doc.verify_chain(&f.root, now, None);
    }
});
