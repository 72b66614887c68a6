//! Arbitrary sealed identities opened with a fixed data key and context: `unseal` must never
//! panic, and whatever it opens must seal and open again to the same identity.
//!
//! The first byte chooses how the rest is used:
//!
//! - odd: the rest is the identity's *plaintext* (CBOR). The target encrypts it under the fixed
//!   key with the AAD `seal` writes (its layout is documented in `enclave/src/identity/seal.rs`),
//!   so the fuzzer reaches the CBOR reader behind AES-GCM, as a writer holding the data key
//!   would. Such a blob must authenticate: it opens, or its content is refused.
//! - even: the rest is a nonce and a ciphertext, as the parent hands them back; the nonce is 12
//!   bytes, or `(first >> 2) % 24` when bit 1 is set.
//!
//! The seeds (`fuzz-enclave/seeds/identity_unseal/`, made by `fuzz-enclave/seeds/make-identity-seeds.py`) are
//! identities in both forms, some valid, some with refused content.
#![no_main]

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use libfuzzer_sys::fuzz_target;
use nitrosync_enclave::identity::{
    IdentityError, IdentitySecrets, MAX_SEALED_LEN, SEAL_FORMAT, SealContext, seal, unseal,
};

/// The data key, key ARN and PCR0 of the seeds (those of the seal unit tests).
const DATA_KEY: [u8; 32] = [0x11; 32];
const KEY_ARN: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const PCR0: [u8; 48] = [0xa5; 48];
/// The nonce the target encrypts fuzzed plaintexts with.
const NONCE: [u8; NONCE_LEN] = [0x07; NONCE_LEN];

fn ctx() -> SealContext<'static> {
    SealContext {
        key_arn: KEY_ARN,
        pcr0: &PCR0,
    }
}

/// The AAD of `seal`: `u32be(26) "nitrosync/enclave-identity" || u32be(SEAL_FORMAT) ||
/// u32be(len) key_arn || u32be(48) pcr0`.
fn aad() -> Vec<u8> {
    fn length_prefixed(out: &mut Vec<u8>, field: &[u8]) {
        let len = u32::try_from(field.len()).expect("a short field");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(field);
    }
    let mut out = vec![];
    length_prefixed(&mut out, b"nitrosync/enclave-identity");
    out.extend_from_slice(&SEAL_FORMAT.to_be_bytes());
    length_prefixed(&mut out, KEY_ARN.as_bytes());
    length_prefixed(&mut out, &PCR0);
    out
}

/// `plaintext` under the fixed key and nonce: what `seal` would write for it.
fn encrypt(plaintext: &[u8]) -> Vec<u8> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &DATA_KEY).expect("a 32-byte key"));
    let mut out = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(NONCE),
        Aad::from(&aad()[..]),
        &mut out,
    )
    .expect("AES-GCM seals");
    out
}

fn assert_same(a: &IdentitySecrets, b: &IdentitySecrets) {
    assert_eq!(*a.saml_key_pkcs8, *b.saml_key_pkcs8);
    assert_eq!(a.saml_cert_der, b.saml_cert_der);
    assert_eq!(*a.bundle_key, *b.bundle_key);
    assert_eq!(*a.mac_master, *b.mac_master);
    assert_eq!(a.generation, b.generation);
    match (&a.next, &b.next) {
        (None, None) => {}
        (Some(x), Some(y)) => {
            assert_eq!(*x.saml_key_pkcs8, *y.saml_key_pkcs8);
            assert_eq!(x.saml_cert_der, y.saml_cert_der);
            assert_eq!(*x.bundle_key, *y.bundle_key);
        }
        _ => panic!("the next keys did not survive a re-seal"),
    }
    match (&a.previous_bundle, &b.previous_bundle) {
        (None, None) => {}
        (Some(x), Some(y)) => {
            assert_eq!(*x.bundle_key, *y.bundle_key);
            assert_eq!(x.until_ms, y.until_ms);
        }
        _ => panic!("the previous bundle key did not survive a re-seal"),
    }
}

/// An opened identity seals again, and that opens to the same identity. `seal` keeps a margin
/// below [`MAX_SEALED_LEN`] that `unseal` does not ask for, so an identity within about 1 KiB of
/// it may open but not seal again (only with `-max_len` above the default 4096).
fn round_trip(secrets: &IdentitySecrets, sealed_len: usize) {
    let (nonce, sealed) = match seal(&DATA_KEY, &ctx(), secrets) {
        Ok(sealed) => sealed,
        Err(IdentityError::Seal(_)) if sealed_len + 1024 > MAX_SEALED_LEN => return,
        Err(e) => panic!("an opened identity does not seal again: {e:?}"),
    };
    let again = unseal(&DATA_KEY, &ctx(), &nonce, &sealed).expect("a re-sealed identity opens");
    assert_same(secrets, &again);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 1 {
        let sealed = encrypt(rest);
        match unseal(&DATA_KEY, &ctx(), &NONCE, &sealed) {
            Ok(secrets) => round_trip(&secrets, sealed.len()),
            Err(IdentityError::SealedContent(_)) => {}
            Err(IdentityError::SealedMalformed(_)) if sealed.len() > MAX_SEALED_LEN => {}
            Err(e) => panic!("an authentic blob is refused for another reason: {e:?}"),
        }
        return;
    }
    let nonce_len = if mode & 2 == 2 {
        usize::from(mode >> 2) % 24
    } else {
        NONCE_LEN
    };
    let (nonce, sealed) = rest.split_at(nonce_len.min(rest.len()));
    match unseal(&DATA_KEY, &ctx(), nonce, sealed) {
        Ok(secrets) => round_trip(&secrets, sealed.len()),
        Err(IdentityError::SealedMalformed(_)) => {
            assert!(nonce.len() != NONCE_LEN || sealed.len() < 16 || sealed.len() > MAX_SEALED_LEN);
        }
        Err(IdentityError::UnsealAuthentication | IdentityError::SealedContent(_)) => {
            assert_eq!(nonce.len(), NONCE_LEN);
        }
        Err(e) => panic!("unexpected error: {e:?}"),
    }
});
