//! What anyone can check of a bundle without the enclave's key. This part builds without HPKE
//! (the crate's `seal` feature off), so the parent can check submissions without linking the
//! sealing and opening code.

use crate::ENC_LEN;
use crate::error::BundleError;
use ed25519_dalek::{Signature, VerifyingKey};
use nitrosync_shared::bundle::{MAX_CIPHERTEXT_LEN, SealedBundle, signing_message};

/// Checks what anyone can check without the enclave's key: sizes, the header's rules and the
/// tenant's signature. The parent runs this before it stores a submitted bundle; the enclave's
/// [`open`] repeats it.
pub fn verify_signed(bundle: &SealedBundle) -> Result<(), BundleError> {
    let SealedBundle {
        header,
        enc,
        ciphertext,
        signature,
    } = bundle;
    if enc.len() != ENC_LEN {
        return Err(BundleError::EncappedKeyLength { len: enc.len() });
    }
    if ciphertext.len() > MAX_CIPHERTEXT_LEN {
        return Err(BundleError::CiphertextTooLarge {
            len: ciphertext.len(),
            max: MAX_CIPHERTEXT_LEN,
        });
    }
    header.validate().map_err(BundleError::Header)?;
    let tenant =
        VerifyingKey::from_bytes(&header.tenant_key).map_err(|_| BundleError::InvalidTenantKey)?;
    tenant
        .verify_strict(
            &signing_message(header, enc, ciphertext),
            &Signature::from_bytes(signature),
        )
        .map_err(|_| BundleError::BadSignature)
}
