//! Arbitrary bytes as the sealed identity the parent stores (`SealedIdentity`, CBOR), then
//! opened as the enclave would with a fixed data key: decoding must never panic, whatever
//! decodes must re-encode to the same value, and `unseal` must fail cleanly on its parts.
//!
//! The seeds (`fuzz-enclave/seeds/sealed_identity/`, made by `fuzz-enclave/seeds/make-identity-seeds.py`) are
//! sealed identities that open under that key, and some that do not decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nitrosync_enclave::identity::{IdentityError, SealContext, unseal};
use nitrosync_shared::control::SealedIdentity;

/// The data key, key ARN and PCR0 of the seeds (those of the seal unit tests).
const DATA_KEY: [u8; 32] = [0x11; 32];
const KEY_ARN: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const PCR0: [u8; 48] = [0xa5; 48];

fuzz_target!(|data: &[u8]| {
    let Ok(stored) = SealedIdentity::from_bytes(data) else {
        return;
    };
    let again =
        SealedIdentity::from_bytes(&stored.to_bytes()).expect("a decoded identity re-encodes");
    assert_eq!(again, stored);
    let ctx = SealContext {
        key_arn: KEY_ARN,
        pcr0: &PCR0,
    };
    match unseal(&DATA_KEY, &ctx, &stored.nonce, &stored.sealed) {
        Ok(secrets) => {
            // Only the seeds' authentic blobs (or a forgery of AES-GCM) get here.
            assert!(!secrets.saml_key_pkcs8.is_empty());
        }
        Err(
            IdentityError::SealedMalformed(_)
            | IdentityError::UnsealAuthentication
            | IdentityError::SealedContent(_),
        ) => {}
        Err(e) => panic!("unexpected error: {e:?}"),
    }
});
