//! The pure verifier: document bytes, a trust root, a policy and a time in; a verified document
//! out.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED, UnparsedPublicKey};

use crate::VerifyError;
use crate::chain::{ChainCache, TrustRoot, verify_chain};
use crate::cose::ALG_ES384;
use crate::document::{AttestationDocument, parse_envelope, parse_payload};

/// The only PCR digest a document may use.
pub const DIGEST_SHA384: &str = "SHA384";
/// Length of an ES384 signature in COSE: r and s, 48 bytes each.
const ES384_SIGNATURE_LEN: usize = 96;
/// Default tolerance for a document timestamp ahead of the verifier's clock.
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// What a document must show, beyond a good signature and chain, to be accepted.
///
/// The default expects no PCR values, rejects debug enclaves, requires no nonce, has no maximum
/// age and tolerates [`DEFAULT_MAX_CLOCK_SKEW`] of clock skew.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Policy {
    /// Expected PCR values by index. Each must be present and equal.
    pub pcrs: BTreeMap<u16, Vec<u8>>,
    /// Accept debug-mode enclaves (PCR0, PCR1 and PCR2 all zero).
    pub allow_debug: bool,
    /// If set, the document's nonce must equal it.
    pub nonce: Option<Vec<u8>>,
    /// If set, `now - timestamp` must not exceed it.
    pub max_age: Option<Duration>,
    /// How far the document's timestamp may lie ahead of `now`.
    pub max_clock_skew: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            pcrs: BTreeMap::new(),
            allow_debug: false,
            nonce: None,
            max_age: None,
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
        }
    }
}

impl Policy {
    /// The default policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// Expects PCR `index` to equal `value`.
    #[must_use]
    pub fn with_pcr(mut self, index: u16, value: impl Into<Vec<u8>>) -> Self {
        self.pcrs.insert(index, value.into());
        self
    }

    /// Requires the document's nonce to equal `nonce`.
    #[must_use]
    pub fn with_nonce(mut self, nonce: impl Into<Vec<u8>>) -> Self {
        self.nonce = Some(nonce.into());
        self
    }

    /// Rejects documents older than `max_age`.
    #[must_use]
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Accepts (`true`) or rejects (`false`, the default) debug-mode enclaves.
    #[must_use]
    pub fn with_allow_debug(mut self, allow: bool) -> Self {
        self.allow_debug = allow;
        self
    }

    /// Sets how far a timestamp may lie ahead of `now`.
    #[must_use]
    pub fn with_max_clock_skew(mut self, skew: Duration) -> Self {
        self.max_clock_skew = skew;
        self
    }
}

/// A document that passed [`verify`]: every field here is vouched for by the trust root.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedDocument {
    /// The NSM's module id.
    pub module_id: String,
    /// When the NSM made the document.
    pub timestamp: SystemTime,
    /// PCR digest algorithm (always `SHA384`).
    pub digest: String,
    /// PCR values by index.
    pub pcrs: BTreeMap<u16, Vec<u8>>,
    /// The leaf certificate (DER) that signed the document.
    pub certificate: Vec<u8>,
    /// The public key the enclave bound to the document.
    pub public_key: Option<Vec<u8>>,
    /// The user data the enclave bound to the document.
    pub user_data: Option<Vec<u8>>,
    /// The nonce the enclave bound to the document.
    pub nonce: Option<Vec<u8>>,
    /// End of the leaf certificate's validity: the document cannot be verified after it.
    pub not_after: SystemTime,
    /// Whether the enclave runs in debug mode (accepted only under `allow_debug`).
    pub debug: bool,
}

/// Verifies an attestation document.
///
/// Pure: no clock, files or network. In order, it checks that
/// 1. the bytes are a COSE_Sign1 whose protected header names ES384 (QEMU's alg -1 is refused),
/// 2. the first `cabundle` entry is `root` byte for byte, and the chain `root → cabundle[1..] →
///    certificate` verifies, each certificate valid at `now`,
/// 3. the COSE signature verifies with the leaf's P-384 key over the payload as received,
/// 4. the digest is `SHA384`,
/// 5. the PCRs meet the policy (debug-mode documents only with `allow_debug`),
/// 6. the nonce matches, if the policy requires one,
/// 7. the timestamp is not ahead of `now` by more than the skew, nor older than the maximum age.
///
/// The first failure is returned; each has its own [`VerifyError`] variant.
pub fn verify(
    doc: &[u8],
    root: &TrustRoot,
    policy: &Policy,
    now: SystemTime,
) -> Result<VerifiedDocument, VerifyError> {
    verify_inner(doc, root, policy, now, None)
}

/// [`verify`], skipping the signature check of intermediates found in `cache` (and adding the
/// ones it verifies). The result is the same as [`verify`]'s.
pub fn verify_cached(
    doc: &[u8],
    root: &TrustRoot,
    policy: &Policy,
    now: SystemTime,
    cache: &ChainCache,
) -> Result<VerifiedDocument, VerifyError> {
    verify_inner(doc, root, policy, now, Some(cache))
}

impl AttestationDocument {
    /// Checks only this document's certificate chain (step 2 of [`verify`]); a building block
    /// for benchmarks and diagnostics. It says nothing about the document's signature.
    pub fn verify_chain(
        &self,
        root: &TrustRoot,
        now: SystemTime,
        cache: Option<&ChainCache>,
    ) -> Result<SystemTime, VerifyError> {
        verify_chain(root, &self.cabundle, &self.certificate, now, cache).map(|leaf| leaf.not_after)
    }
}

fn verify_inner(
    doc: &[u8],
    root: &TrustRoot,
    policy: &Policy,
    now: SystemTime,
    cache: Option<&ChainCache>,
) -> Result<VerifiedDocument, VerifyError> {
    let cose = parse_envelope(doc)?;
    if cose.alg != ALG_ES384 {
        return Err(VerifyError::UnsupportedAlgorithm { alg: cose.alg });
    }
    let parsed = parse_payload(&cose)?;

    let leaf = verify_chain(root, &parsed.cabundle, &parsed.certificate, now, cache)?;

    if cose.signature.len() != ES384_SIGNATURE_LEN
        || UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, &leaf.public_key)
            .verify(&cose.to_be_signed(), &cose.signature)
            .is_err()
    {
        return Err(VerifyError::BadSignature);
    }

    if parsed.digest != DIGEST_SHA384 {
        return Err(VerifyError::UnsupportedDigest {
            digest: parsed.digest,
        });
    }

    let debug = is_debug(&parsed.pcrs)?;
    if debug && !policy.allow_debug {
        return Err(VerifyError::DebugEnclave);
    }
    for (&index, expected) in &policy.pcrs {
        let actual = parsed
            .pcrs
            .get(&index)
            .ok_or(VerifyError::MissingPcr { index })?;
        if actual != expected {
            return Err(VerifyError::PcrMismatch {
                index,
                expected: expected.clone(),
                actual: actual.clone(),
            });
        }
    }

    if let Some(expected) = &policy.nonce
        && parsed.nonce.as_ref() != Some(expected)
    {
        return Err(VerifyError::NonceMismatch);
    }

    let timestamp = parsed.timestamp();
    match now.duration_since(timestamp) {
        Ok(age) => {
            if let Some(max) = policy.max_age
                && age > max
            {
                return Err(VerifyError::TooOld { age, max });
            }
        }
        Err(ahead) => {
            let ahead = ahead.duration();
            if ahead > policy.max_clock_skew {
                return Err(VerifyError::FromTheFuture {
                    ahead,
                    skew: policy.max_clock_skew,
                });
            }
        }
    }

    Ok(VerifiedDocument {
        module_id: parsed.module_id,
        timestamp,
        digest: parsed.digest,
        pcrs: parsed.pcrs,
        certificate: parsed.certificate,
        public_key: parsed.public_key,
        user_data: parsed.user_data,
        nonce: parsed.nonce,
        not_after: leaf.not_after,
        debug,
    })
}

/// Debug mode: PCR0, PCR1 and PCR2 are all zero.
fn is_debug(pcrs: &BTreeMap<u16, Vec<u8>>) -> Result<bool, VerifyError> {
    let mut all_zero = true;
    for index in 0..=2 {
        let pcr = pcrs.get(&index).ok_or(VerifyError::MissingPcr { index })?;
        all_zero &= pcr.iter().all(|&b| b == 0);
    }
    Ok(all_zero)
}
