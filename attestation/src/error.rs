//! The crate's error types: [`VerifyError`] for reading and verifying documents, [`NsmError`] for
//! making them.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Why a document was not accepted.
///
/// Every variant is fatal for the document at hand: verification never retries. Unless stated
/// otherwise, the fault lies with the party that produced the document (or with whoever altered
/// it on the way). [`VerifyError::InvalidTrustRoot`] is the caller's fault: the trust root given
/// to the verifier is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The document is longer than any NSM produces; it was not parsed.
    #[error("document is {len} bytes, more than the {max} an attestation document may have")]
    DocumentTooLarge {
        /// Length of the input.
        len: usize,
        /// The limit, [`crate::MAX_DOCUMENT_LEN`].
        max: usize,
    },

    /// The bytes are not a well-formed COSE_Sign1 attestation document (bad CBOR, truncated,
    /// trailing bytes, missing or mistyped field, out-of-range length).
    #[error("malformed attestation document: {reason}")]
    Malformed {
        /// What is wrong, for humans.
        reason: String,
    },

    /// The protected header names an algorithm other than ES384 (-35). QEMU's emulated NSM
    /// produces unsigned documents with alg -1; they always end here.
    #[error("unsupported COSE algorithm {alg} (only ES384, -35, is accepted)")]
    UnsupportedAlgorithm {
        /// The `alg` value found in the protected header.
        alg: i64,
    },

    /// The COSE signature does not verify with the leaf certificate's key over the payload as
    /// received.
    #[error("COSE signature does not verify with the leaf certificate's key")]
    BadSignature,

    /// A certificate of the chain could not be parsed as X.509 DER.
    ///
    /// `index` counts along the chain: 0 is the root (`cabundle[0]`), `cabundle.len()` is the
    /// leaf (`certificate`).
    #[error("certificate {index} of the chain does not parse: {reason}")]
    CertificateParse {
        /// Position in the chain (0 = root, last = leaf).
        index: usize,
        /// The parser's complaint.
        reason: String,
    },

    /// A certificate is not correctly issued by its predecessor in the chain: bad signature,
    /// issuer name mismatch, issuer not a CA, path length exceeded, unsupported algorithm or
    /// critical extension.
    #[error("certificate {index} of the chain is invalid: {reason}")]
    ChainInvalid {
        /// Position in the chain (0 = root, last = leaf).
        index: usize,
        /// What failed.
        reason: String,
    },

    /// A certificate of the chain is not valid at the verification time.
    #[error(
        "certificate {index} of the chain is not valid at {}: valid from {} to {}",
        fmt_time(*now), fmt_time(*not_before), fmt_time(*not_after)
    )]
    CertificateExpired {
        /// Position in the chain (0 = root, last = leaf).
        index: usize,
        /// Start of the certificate's validity.
        not_before: SystemTime,
        /// End of the certificate's validity.
        not_after: SystemTime,
        /// The verification time that falls outside.
        now: SystemTime,
    },

    /// The first `cabundle` entry is not, byte for byte, the trusted root.
    #[error("the document's chain does not start at the trusted root")]
    RootMismatch,

    /// The trust root handed to the verifier is unusable (caller's fault).
    #[error("invalid trust root: {reason}")]
    InvalidTrustRoot {
        /// What is wrong with it.
        reason: String,
    },

    /// The PCR digest algorithm is not SHA384.
    #[error("unsupported PCR digest {digest:?} (only SHA384 is accepted)")]
    UnsupportedDigest {
        /// The `digest` field of the document.
        digest: String,
    },

    /// The policy expects a PCR (or debug detection needs PCR0–2) that the document lacks.
    #[error("the document has no PCR{index}")]
    MissingPcr {
        /// The missing index.
        index: u16,
    },

    /// A PCR differs from the value the policy expects.
    #[error(
        "PCR{index} is {} but the policy expects {}",
        hex::encode(actual),
        hex::encode(expected)
    )]
    PcrMismatch {
        /// PCR index.
        index: u16,
        /// The policy's value.
        expected: Vec<u8>,
        /// The document's value.
        actual: Vec<u8>,
    },

    /// PCR0, PCR1 and PCR2 are all zero: the enclave runs in debug mode, where the parent can read
    /// its memory. Rejected unless [`crate::Policy::allow_debug`] is set.
    #[error(
        "debug-mode enclave (PCR0, PCR1 and PCR2 are all zero) and the policy does not allow debug"
    )]
    DebugEnclave,

    /// The policy requires a nonce and the document's differs (or is absent).
    #[error("nonce does not match the expected one")]
    NonceMismatch,

    /// The document is older than the policy's maximum age.
    #[error("document is {} old, more than the allowed {}", humantime::format_duration(*age), humantime::format_duration(*max))]
    TooOld {
        /// Verification time minus the document's timestamp.
        age: Duration,
        /// The policy's maximum.
        max: Duration,
    },

    /// The document's timestamp lies after the verification time by more than the allowed skew.
    #[error("document timestamp is {} in the future (allowed skew {})", humantime::format_duration(*ahead), humantime::format_duration(*skew))]
    FromTheFuture {
        /// How far ahead the timestamp is.
        ahead: Duration,
        /// The policy's allowed clock skew.
        skew: Duration,
    },
}

impl VerifyError {
    /// A stable, machine-readable name for the variant (`snake_case`), for logs and JSON.
    pub fn code(&self) -> &'static str {
        match self {
            Self::DocumentTooLarge { .. } => "document_too_large",
            Self::Malformed { .. } => "malformed",
            Self::UnsupportedAlgorithm { .. } => "unsupported_algorithm",
            Self::BadSignature => "bad_signature",
            Self::CertificateParse { .. } => "certificate_parse",
            Self::ChainInvalid { .. } => "chain_invalid",
            Self::CertificateExpired { .. } => "certificate_expired",
            Self::RootMismatch => "root_mismatch",
            Self::InvalidTrustRoot { .. } => "invalid_trust_root",
            Self::UnsupportedDigest { .. } => "unsupported_digest",
            Self::MissingPcr { .. } => "missing_pcr",
            Self::PcrMismatch { .. } => "pcr_mismatch",
            Self::DebugEnclave => "debug_enclave",
            Self::NonceMismatch => "nonce_mismatch",
            Self::TooOld { .. } => "too_old",
            Self::FromTheFuture { .. } => "from_the_future",
        }
    }

    pub(crate) fn malformed(reason: impl Into<String>) -> Self {
        Self::Malformed {
            reason: reason.into(),
        }
    }
}

/// Why an NSM could not produce a document.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NsmError {
    /// An input (user data, nonce or public key) is longer than the NSM accepts. Caller's fault.
    #[error("{field} is {len} bytes, more than the NSM's limit of {max}")]
    InputTooLarge {
        /// Which input.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// The PCR index is out of the NSM's range. Caller's fault.
    #[error("no PCR{index} on this NSM")]
    NoSuchPcr {
        /// The requested index.
        index: u16,
    },

    /// Reading or writing the simulator's files failed.
    #[error("simulated NSM: {path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The simulator root in the run directory is unusable (corrupt, mismatched key and
    /// certificate, or a key file readable by others).
    #[error("simulated NSM root at {path}: {reason}")]
    BadSimulatorRoot {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// Generating keys, certificates or signatures failed.
    #[error("simulated NSM crypto failure: {reason}")]
    Crypto {
        /// What failed.
        reason: String,
    },

    /// The NSM device could not be opened (not running inside an enclave?).
    #[error("NSM device unavailable: {reason}")]
    DeviceUnavailable {
        /// Why.
        reason: String,
    },

    /// The NSM device answered with an error or an unexpected response.
    #[error("NSM device error: {reason}")]
    Device {
        /// The NSM's error code or a description of the unexpected answer.
        reason: String,
    },
}

/// RFC 3339 rendering of a time, for error messages.
pub(crate) fn fmt_time(t: SystemTime) -> String {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        // humantime's formatter fails (and `to_string` would panic) past year 9999.
        Ok(d) if d.as_secs() < 253_402_300_800 => humantime::format_rfc3339_seconds(t).to_string(),
        Ok(d) => format!("{}s after 1970", d.as_secs()),
        Err(e) => format!("{}s before 1970", e.duration().as_secs()),
    }
}
