//! Arbitrary bytes as a `SealedBundle` frame body, opened with a fixed enclave key: decoding and
//! every check in `open` must fail cleanly, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nitrosync_bundle::{EnclaveBundleKey, open};
use nitrosync_shared::bundle::SealedBundle;
use std::sync::LazyLock;

/// The key `fuzz/seeds/bundle_open/valid-*` is sealed to (made by the bundle tests; see bundle/tests).
pub const FUZZ_ENCLAVE_SECRET: [u8; 32] = [0x5a; 32];

static KEY: LazyLock<EnclaveBundleKey> =
    LazyLock::new(|| EnclaveBundleKey::from_secret_bytes(&FUZZ_ENCLAVE_SECRET));

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = nitrosync_shared::frame::decode_payload::<SealedBundle>(data) else {
        return;
    };
    if let Ok(opened) = open(&bundle, &KEY) {
        // Only a bundle sealed to KEY and signed by its tenant gets here: it must be
        // self-consistent.
        assert_eq!(opened.header, bundle.header);
        assert_eq!(opened.header.enclave_key, KEY.public());
    }
});
