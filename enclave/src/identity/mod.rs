//! The enclave's identity, sealed under a KMS key that releases it only to attested images.
//!
//! The identity is what must survive a restart and never leave the enclave in the clear: the
//! SAML signing key and its certificate, the X25519 bundle key and the MAC master key
//! ([`IdentitySecrets`]). The parent stores it, sealed; only an enclave running a released image
//! can open it. This module holds the pure parts (bytes in, bytes out; no I/O): the KMS calls
//! that use them live in `kms`.
//!
//! # Sealing flow
//!
//! 1. The parent names a KMS key. The enclave reads its policy (`GetKeyPolicy`, over TLS that
//!    ends in the enclave) and accepts the key only if [`check_key_policy`] proves that no one
//!    can obtain or forge a data key without an attestation document of a released image, and
//!    that this image is among them. Otherwise the parent, which picks the key, could choose one
//!    whose data keys it can read (`Decrypt` without a condition) or make (`Encrypt`), or whose
//!    policy it could widen later (`PutKeyPolicy`).
//! 2. The enclave makes a throwaway RSA-2048 [`RecipientKey`] and asks the NSM for an
//!    attestation document carrying its public key.
//! 3. At the first start it calls `GenerateDataKey` with that document as `Recipient`; at every
//!    later start, `Decrypt` of the stored `CiphertextBlob`. KMS checks the document against the
//!    key policy and answers with `CiphertextForRecipient`: the data key encrypted to the
//!    recipient key (CMS EnvelopedData, [`RecipientKey::open`]). The parent relays the answer but
//!    cannot read it.
//! 4. The 32-byte data key seals ([`seal`]) or opens ([`unseal`]) the identity with AES-256-GCM.
//!    The AAD names the format, the KMS key ARN and this image's PCR0, so a blob moved to another
//!    key or sealed by another image does not open.
//! 5. The data key and the recipient key are dropped right after use: the data key is a
//!    `Zeroizing` array, and AWS-LC clears the RSA key's memory when it frees it. A recipient
//!    key opens one answer only, so a parent that somehow got to alter answers could not use it
//!    as a padding or OAEP oracle.
//!
//! Every byte of `CiphertextForRecipient`, the policy and the sealed blob passes through the
//! parent: bad input is an error, never a panic, and no error carries key material.

mod cms;
pub mod kms;
mod policy;
mod seal;

pub use cms::{MAX_CIPHERTEXT_FOR_RECIPIENT, RecipientKey};
pub use policy::{MAX_POLICY_LEN, PolicyFacts, check_key_policy};
pub use seal::{
    IdentitySecrets, MAX_SEALED_LEN, NextKeys, PreviousBundleKey, SEAL_FORMAT, SealContext, seal,
    unseal,
};

/// Errors of the sealed identity. None of them carries key material: they name the part that
/// failed, lengths, algorithm identifiers, public key identifiers or policy text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// AWS-LC could not generate the RSA-2048 recipient key. The enclave's fault; retrying
    /// may help, but it usually means the crypto library is broken.
    #[error("could not generate the RSA-2048 recipient key")]
    RecipientKeyGeneration,
    /// This recipient key already opened a `CiphertextForRecipient`. The caller's fault: each
    /// KMS request gets a fresh key.
    #[error(
        "this recipient key already opened a CiphertextForRecipient; each KMS request needs a new one"
    )]
    RecipientKeyUsed,
    /// `CiphertextForRecipient` is longer than this reader accepts (checked before parsing).
    #[error("CiphertextForRecipient is {len} bytes, more than the {max} accepted")]
    EnvelopeTooLarge {
        /// Its length.
        len: usize,
        /// The most accepted.
        max: usize,
    },
    /// `CiphertextForRecipient` is not BER/DER that decodes as the named CMS part. KMS never
    /// sends that: the answer was altered or is not from KMS.
    #[error("CiphertextForRecipient: the {part} does not decode")]
    EnvelopeDecode {
        /// The CMS structure that failed.
        part: &'static str,
        /// What the decoder said (positions and tags only).
        #[source]
        source: der::Error,
    },
    /// `CiphertextForRecipient` decodes but is not what KMS sends to a `Recipient`: another
    /// content type, several recipients, another algorithm, a wrapped key of the wrong size.
    #[error("CiphertextForRecipient is refused: {0}")]
    EnvelopeRefused(String),
    /// `CiphertextForRecipient` is addressed to another key (its recipient's subject key
    /// identifier is not the SHA-256 of this key's public key): an answer meant for another
    /// request or another enclave.
    #[error(
        "CiphertextForRecipient is addressed to another key (subject key identifier {found}; this recipient key's is {ours})"
    )]
    WrongRecipient {
        /// The recipient the envelope names (hex).
        found: String,
        /// This key's subject key identifier (hex).
        ours: String,
    },
    /// RSAES-OAEP did not unwrap the content key: altered, or encrypted to another key.
    #[error("CiphertextForRecipient: the content key does not decrypt with this recipient key")]
    KeyUnwrap,
    /// AES-256-CBC did not decrypt the content, or its padding is not PKCS#7: altered.
    #[error("CiphertextForRecipient: the content does not decrypt (AES-256-CBC, PKCS#7 padding)")]
    ContentDecryption,
    /// The operating system's random generator failed. Fatal for this attempt.
    #[error("the operating system gave no randomness")]
    Random(#[source] getrandom::Error),
    /// The caller's PCR0 is not 48 bytes (SHA-384). The caller's fault.
    #[error("this image's PCR0 is {len} bytes, not 48")]
    Pcr0Length {
        /// Its length.
        len: usize,
    },
    /// The seal context is unusable (a PCR0 that is not 48 bytes, an empty or oversized ARN):
    /// the caller's fault.
    #[error("seal context: {0}")]
    SealContext(String),
    /// The identity could not be sealed (too large, or AES-GCM failed).
    #[error("cannot seal the identity: {0}")]
    Seal(&'static str),
    /// The sealed identity is not shaped as one (nonce length, size). The stored blob was
    /// altered or is not a sealed identity.
    #[error("the sealed identity is malformed: {0}")]
    SealedMalformed(String),
    /// AES-GCM refused the sealed identity: another data key, sealed under another KMS key ARN
    /// or by another image (PCR0), another format, or altered.
    #[error(
        "the sealed identity does not open: another data key, KMS key or image sealed it, or it was altered"
    )]
    UnsealAuthentication,
    /// The sealed identity opened, but its content is not a format-1 identity. Only a writer
    /// with the data key could have made it: a bug, or another format.
    #[error("the sealed identity opened but its content is refused: {0}")]
    SealedContent(&'static str),
    /// The key policy is longer than KMS allows.
    #[error("the key policy is {len} bytes, more than the {max} KMS allows")]
    PolicyTooLarge {
        /// Its length.
        len: usize,
        /// The most accepted.
        max: usize,
    },
    /// The key policy is not JSON (or has a duplicate member name, which IAM and this check
    /// might read differently).
    #[error("the key policy is not valid JSON")]
    PolicyJson(#[source] serde_json::Error),
    /// The key policy does not have the shape of one (no `Statement`, an unknown element).
    #[error("the key policy is malformed: {0}")]
    PolicyMalformed(String),
    /// A statement could let someone obtain or forge key material without an attestation of a
    /// released image, or change the policy. The operator's fault: the key must not be used.
    #[error("the key policy is refused: {statement}: {reason}")]
    PolicyRefused {
        /// The statement (`Sid "…"`, or its position).
        statement: String,
        /// Why.
        reason: String,
    },
    /// The policy is safe but does not release the key to this image.
    #[error(
        "this image's PCR0 {pcr0} is not one the key policy releases to (it releases to: {released})"
    )]
    ImageNotReleased {
        /// This image's PCR0 (hex).
        pcr0: String,
        /// The PCR0s it releases to (hex, comma-separated), or "none".
        released: String,
    },
}
