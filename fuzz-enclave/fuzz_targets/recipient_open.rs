//! Arbitrary bytes as KMS's `CiphertextForRecipient` (CMS EnvelopedData in BER), opened with the
//! fixture recipient key: every check must fail cleanly, never panic, and the key must refuse a
//! second answer whatever the first one was.
//!
//! The seeds (`fuzz-enclave/seeds/recipient_open/`) are the envelopes of `enclave/tests/data/identity/`,
//! addressed to that key, so mutations reach the RSA-OAEP unwrap and the AES-256-CBC content.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nitrosync_enclave::identity::{IdentityError, RecipientKey};

/// The fixture key the seeds are encrypted to (`enclave/tests/data/identity/README.md`).
const KEY: &[u8] = include_bytes!("../../enclave/tests/data/identity/recipient-key.pk8.der");

/// An error's message and its sources, formatted all the way down (as the binary prints them).
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

fuzz_target!(|data: &[u8]| {
    // A fresh key per input: a recipient key opens one answer. Parsing PKCS#8 is cheap;
    // generating RSA-2048 is not.
    let key = RecipientKey::from_pkcs8_for_fuzzing(KEY).expect("the fixture key parses");
    match key.open(data) {
        Ok(plain) => {
            // Only an envelope to this key with an authentic content key gets here; AES-CBC
            // with PKCS#7 leaves at most the ciphertext minus one byte.
            assert!(plain.len() < data.len());
        }
        Err(e) => {
            assert!(!matches!(e, IdentityError::RecipientKeyUsed));
            let _ = describe(&e);
        }
    }
    assert!(matches!(
        key.open(data),
        Err(IdentityError::RecipientKeyUsed)
    ));
});
