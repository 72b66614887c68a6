//! The crate's one error type.

use nitrosync_shared::bundle::ConfigError;
use nitrosync_shared::names::NameError;

/// Why a bundle could not be sealed or opened.
///
/// No message ever contains a variable value or key bytes. Variable names, destination fields
/// and sizes may appear: they are not secret. Every variant is the caller's or submitter's fault
/// (bad input, or a malformed, tampered or misaddressed bundle) and is final: retrying the same
/// bytes gives the same answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The encapsulated key does not have the length DHKEM(X25519) produces.
    #[error("encapsulated key is {len} bytes; expected {expected}", expected = crate::ENC_LEN)]
    EncappedKeyLength {
        /// The length received.
        len: usize,
    },
    /// The ciphertext is larger than any valid bundle's.
    #[error("ciphertext is {len} bytes; the maximum is {max}")]
    CiphertextTooLarge {
        /// The length received (or produced, when sealing).
        len: usize,
        /// [`nitrosync_shared::bundle::MAX_CIPHERTEXT_LEN`].
        max: usize,
    },
    /// A header field is not acceptable (format, version or destination).
    #[error("bundle header is invalid: {0}")]
    Header(#[source] ConfigError),
    /// The bundle is addressed to another enclave key (an old key, or another enclave).
    #[error("bundle is sealed to a different enclave key than this enclave's")]
    WrongEnclaveKey,
    /// `header.tenant_key` is not a valid Ed25519 public key.
    #[error("tenant key is not a valid Ed25519 public key")]
    InvalidTenantKey,
    /// The signature does not verify for `header.tenant_key` over header, encapsulated key and
    /// ciphertext.
    #[error("tenant signature does not verify over header, encapsulated key and ciphertext")]
    BadSignature,
    /// HPKE could not open the ciphertext: it was not sealed to this key, or it was sealed
    /// under a different header (the associated data), or it was altered.
    #[error("ciphertext does not decrypt under this enclave key and header")]
    Decrypt,
    /// The decrypted plaintext is not the CBOR of a variables map. Decoder messages are not
    /// passed on because they can quote decoded values.
    #[error("decrypted plaintext is not a valid variables map: {problem}{}", at(*.offset))]
    Plaintext {
        /// What is wrong, in fixed words.
        problem: &'static str,
        /// Byte offset in the plaintext, where the decoder knows it.
        offset: Option<usize>,
    },
    /// A variable name does not match `[A-Za-z_][A-Za-z0-9_]*` (names are not secret).
    #[error("invalid variable name: {0}")]
    VariableName(#[source] NameError),
    /// When sealing: the enclave public key is unusable for X25519 (a low-order point, so the
    /// shared secret would be all zeros).
    #[error("enclave public key is not usable for HPKE (low-order X25519 point)")]
    InvalidEnclaveKey,
}

fn at(offset: Option<usize>) -> String {
    offset
        .map(|o| format!(" (at byte {o})"))
        .unwrap_or_default()
}

impl BundleError {
    /// A short, stable, value-free name for the failure: for metrics, logs and error codes.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::EncappedKeyLength { .. } => "encapped_key_length",
            Self::CiphertextTooLarge { .. } => "ciphertext_too_large",
            Self::Header(_) => "header",
            Self::WrongEnclaveKey => "wrong_enclave_key",
            Self::InvalidTenantKey => "invalid_tenant_key",
            Self::BadSignature => "bad_signature",
            Self::Decrypt => "decrypt",
            Self::Plaintext { .. } => "plaintext",
            Self::VariableName(_) => "variable_name",
            Self::InvalidEnclaveKey => "invalid_enclave_key",
        }
    }
}
