//! X.509 chain checking: the trust root, certificate parsing, and the walk from the root to the
//! leaf, with an optional cache of verified intermediates.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode, Header, Reader, SliceReader};
use ring::digest::{SHA256, digest};
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};

use crate::VerifyError;

const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");

/// The AWS Nitro Enclaves Root G1 certificate (PEM), as published by AWS.
/// SHA-256 of its DER: `641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b`.
pub const AWS_NITRO_ROOT_G1_PEM: &str = include_str!("../data/aws-nitro-root-g1.pem");

/// Certificate signature algorithms the chain may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SigAlg {
    EcdsaSha256,
    EcdsaSha384,
}

/// Curves of certificate keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    P384,
}

/// What the chain walk needs from one certificate, kept after its signature was checked.
#[derive(Debug, Clone)]
pub(crate) struct CertInfo {
    subject: Vec<u8>,
    issuer: Vec<u8>,
    pub(crate) not_before: SystemTime,
    pub(crate) not_after: SystemTime,
    pub(crate) curve: Curve,
    /// Uncompressed SEC1 point.
    pub(crate) public_key: Vec<u8>,
    is_ca: bool,
    path_len: Option<u8>,
    /// True when the key may sign certificates (no KeyUsage extension, or keyCertSign set).
    may_sign_certs: bool,
    /// True when the key may sign data (no KeyUsage extension, or digitalSignature set).
    may_sign_data: bool,
}

/// A certificate's signed part and signature, borrowed from its DER.
struct Signed<'a> {
    tbs: &'a [u8],
    alg: SigAlg,
    signature: Vec<u8>,
}

fn parse_err(index: usize, reason: impl fmt::Display) -> VerifyError {
    VerifyError::CertificateParse {
        index,
        reason: reason.to_string(),
    }
}

fn invalid(index: usize, reason: impl Into<String>) -> VerifyError {
    VerifyError::ChainInvalid {
        index,
        reason: reason.into(),
    }
}

/// The exact bytes of `tbsCertificate` inside a certificate's DER.
fn raw_tbs(der: &[u8]) -> der::Result<&[u8]> {
    let mut reader = SliceReader::new(der)?;
    let _outer = Header::decode(&mut reader)?;
    reader.tlv_bytes()
}

fn sig_alg(alg: &x509_cert::spki::AlgorithmIdentifierOwned) -> Option<SigAlg> {
    // RFC 5758 §3.2: ECDSA algorithm identifiers have absent parameters.
    if alg.parameters.is_some() {
        return None;
    }
    match alg.oid {
        ECDSA_WITH_SHA256 => Some(SigAlg::EcdsaSha256),
        ECDSA_WITH_SHA384 => Some(SigAlg::EcdsaSha384),
        _ => None,
    }
}

/// Parses a certificate and extracts what the chain walk needs.
///
/// Unsupported algorithms and unknown critical extensions are [`VerifyError::ChainInvalid`]:
/// the certificate parses, but cannot be part of an acceptable chain.
fn parse_cert(der: &[u8], index: usize) -> Result<(CertInfo, Signed<'_>), VerifyError> {
    let cert = Certificate::from_der(der).map_err(|e| parse_err(index, e))?;
    let tbs_raw = raw_tbs(der).map_err(|e| parse_err(index, e))?;
    let tbs = cert.tbs_certificate();

    let alg = sig_alg(cert.signature_algorithm())
        .ok_or_else(|| invalid(index, "signature algorithm is not ECDSA with SHA-256/384"))?;
    if tbs.signature() != cert.signature_algorithm() {
        return Err(invalid(
            index,
            "inner and outer signature algorithms differ",
        ));
    }
    let signature = cert
        .signature()
        .as_bytes()
        .ok_or_else(|| parse_err(index, "signature has unused bits"))?
        .to_vec();

    let spki = tbs.subject_public_key_info();
    if spki.algorithm.oid != ID_EC_PUBLIC_KEY {
        return Err(invalid(index, "public key is not an EC key"));
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
        .and_then(|oid| match oid {
            SECP256R1 => Some(Curve::P256),
            SECP384R1 => Some(Curve::P384),
            _ => None,
        })
        .ok_or_else(|| invalid(index, "public key is not on P-256 or P-384"))?;
    let public_key = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| parse_err(index, "public key has unused bits"))?
        .to_vec();

    let mut is_ca = false;
    let mut path_len = None;
    let mut may_sign_certs = true;
    let mut may_sign_data = true;
    let mut seen = Vec::new();
    for ext in tbs.extensions().map(|e| e.as_slice()).unwrap_or_default() {
        if seen.contains(&ext.extn_id) {
            return Err(invalid(index, format!("extension {} repeats", ext.extn_id)));
        }
        seen.push(ext.extn_id);
        match ext.extn_id {
            BASIC_CONSTRAINTS => {
                let bc = BasicConstraints::from_der(ext.extn_value.as_bytes())
                    .map_err(|e| parse_err(index, format!("basicConstraints: {e}")))?;
                is_ca = bc.ca;
                path_len = bc.path_len_constraint;
            }
            KEY_USAGE => {
                let ku = KeyUsage::from_der(ext.extn_value.as_bytes())
                    .map_err(|e| parse_err(index, format!("keyUsage: {e}")))?;
                may_sign_certs = ku.key_cert_sign();
                may_sign_data = ku.digital_signature();
            }
            other if ext.critical => {
                return Err(invalid(
                    index,
                    format!("unsupported critical extension {other}"),
                ));
            }
            _ => {}
        }
    }

    let validity = tbs.validity();
    let info = CertInfo {
        subject: tbs.subject().to_der().map_err(|e| parse_err(index, e))?,
        issuer: tbs.issuer().to_der().map_err(|e| parse_err(index, e))?,
        not_before: validity.not_before.to_system_time(),
        not_after: validity.not_after.to_system_time(),
        curve,
        public_key,
        is_ca,
        path_len,
        may_sign_certs,
        may_sign_data,
    };
    Ok((
        info,
        Signed {
            tbs: tbs_raw,
            alg,
            signature,
        },
    ))
}

/// Checks that `issuer`'s key signed `signed`.
fn check_signature(issuer: &CertInfo, signed: &Signed<'_>) -> bool {
    let alg: &'static dyn VerificationAlgorithm = match (issuer.curve, signed.alg) {
        (Curve::P384, SigAlg::EcdsaSha384) => &signature::ECDSA_P384_SHA384_ASN1,
        (Curve::P384, SigAlg::EcdsaSha256) => &signature::ECDSA_P384_SHA256_ASN1,
        (Curve::P256, SigAlg::EcdsaSha256) => &signature::ECDSA_P256_SHA256_ASN1,
        (Curve::P256, SigAlg::EcdsaSha384) => &signature::ECDSA_P256_SHA384_ASN1,
    };
    UnparsedPublicKey::new(alg, &issuer.public_key)
        .verify(signed.tbs, &signed.signature)
        .is_ok()
}

fn check_validity(index: usize, info: &CertInfo, now: SystemTime) -> Result<(), VerifyError> {
    if now < info.not_before || now > info.not_after {
        return Err(VerifyError::CertificateExpired {
            index,
            not_before: info.not_before,
            not_after: info.not_after,
            now,
        });
    }
    Ok(())
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// A trusted root certificate. The first `cabundle` entry of a document must equal it byte for
/// byte.
#[derive(Clone)]
pub struct TrustRoot {
    der: Arc<[u8]>,
    fingerprint: [u8; 32],
    info: Arc<CertInfo>,
}

impl fmt::Debug for TrustRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustRoot")
            .field("sha256", &hex::encode(self.fingerprint))
            .finish()
    }
}

impl TrustRoot {
    /// The AWS Nitro Enclaves Root G1, compiled in ([`AWS_NITRO_ROOT_G1_PEM`]).
    pub fn aws_nitro_g1() -> Self {
        // The compiled-in PEM is checked by a unit test; it cannot fail at run time.
        Self::from_pem(AWS_NITRO_ROOT_G1_PEM.as_bytes())
            .unwrap_or_else(|e| unreachable!("compiled-in AWS root: {e}"))
    }

    /// A root from its DER encoding. It must be a self-signed CA certificate with a P-256 or
    /// P-384 ECDSA key.
    pub fn from_der(der: impl Into<Vec<u8>>) -> Result<Self, VerifyError> {
        let der: Vec<u8> = der.into();
        let bad = |reason: String| VerifyError::InvalidTrustRoot { reason };
        let (info, signed) = parse_cert(&der, 0).map_err(|e| bad(e.to_string()))?;
        if info.subject != info.issuer || !check_signature(&info, &signed) {
            return Err(bad("not a self-signed certificate".into()));
        }
        if !info.is_ca || !info.may_sign_certs {
            return Err(bad("not a CA certificate".into()));
        }
        Ok(Self {
            fingerprint: sha256(&der),
            der: der.into(),
            info: Arc::new(info),
        })
    }

    /// A root from a PEM `CERTIFICATE` block.
    pub fn from_pem(pem: &[u8]) -> Result<Self, VerifyError> {
        let block = pem::parse(pem).map_err(|e| VerifyError::InvalidTrustRoot {
            reason: format!("PEM: {e}"),
        })?;
        if block.tag() != "CERTIFICATE" {
            return Err(VerifyError::InvalidTrustRoot {
                reason: format!("PEM block is {:?}, not CERTIFICATE", block.tag()),
            });
        }
        Self::from_der(block.into_contents())
    }

    /// A root from PEM or DER, whichever `bytes` is (PEM is recognised by its `-----BEGIN`).
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Self, VerifyError> {
        let trimmed = bytes.trim_ascii_start();
        if trimmed.starts_with(b"-----BEGIN") {
            Self::from_pem(trimmed)
        } else {
            Self::from_der(bytes)
        }
    }

    /// The root's DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// SHA-256 of the root's DER encoding.
    pub fn sha256_fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// Whether the root's key is `point` (uncompressed SEC1).
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    pub(crate) fn public_key_is(&self, point: &[u8]) -> bool {
        self.info.public_key == point
    }
}

/// A cache key: SHA-256 of the issuer's DER, SHA-256 of the certificate's DER.
type CacheKey = ([u8; 32], [u8; 32]);
/// The cache's map.
type CacheMap = HashMap<CacheKey, Arc<CertInfo>>;

/// Most entries a [`ChainCache`] keeps before it starts over.
const DEFAULT_CACHE_CAPACITY: usize = 256;

/// Remembers intermediate certificates whose signature has been verified, so that verifying
/// the next document from the same chain checks only the leaf.
///
/// An entry is keyed by the SHA-256 of the issuer's DER and of the certificate's DER: a hit means
/// "this exact certificate was verified as issued by this exact certificate". The validity
/// period, CA flag and path length are still checked on every use. Leaves are never cached. The
/// cache is bounded: when full it is cleared. It is in-memory and needs no clock.
#[derive(Debug)]
pub struct ChainCache {
    entries: Mutex<CacheMap>,
    capacity: usize,
}

impl Default for ChainCache {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainCache {
    /// An empty cache holding up to 256 intermediates.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CACHE_CAPACITY)
    }

    /// An empty cache holding up to `capacity` intermediates (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// How many intermediates are cached.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheMap> {
        // A panic while holding the lock cannot leave a half-written entry; keep using it.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, key: &CacheKey) -> Option<Arc<CertInfo>> {
        self.lock().get(key).cloned()
    }

    fn insert(&self, key: CacheKey, info: Arc<CertInfo>) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(key, info);
    }
}

/// Verifies `root → cabundle[1..] → leaf` at `now`, and returns the leaf's details.
///
/// Positions in errors count along the chain: 0 is the root (`cabundle[0]`), `cabundle.len()` is
/// the leaf.
pub(crate) fn verify_chain(
    root: &TrustRoot,
    cabundle: &[Vec<u8>],
    leaf: &[u8],
    now: SystemTime,
    cache: Option<&ChainCache>,
) -> Result<Arc<CertInfo>, VerifyError> {
    let Some(first) = cabundle.first() else {
        return Err(VerifyError::malformed("cabundle is empty"));
    };
    if first.as_slice() != &*root.der {
        return Err(VerifyError::RootMismatch);
    }
    check_validity(0, &root.info, now)?;

    let leaf_index = cabundle.len();
    let mut chain: Vec<Arc<CertInfo>> = Vec::with_capacity(leaf_index + 1);
    chain.push(Arc::clone(&root.info));
    let mut parent_hash = root.fingerprint;
    let below_root = cabundle[1..]
        .iter()
        .map(Vec::as_slice)
        .chain(std::iter::once(leaf));
    for (offset, der) in below_root.enumerate() {
        let index = offset + 1;
        let is_leaf = index == leaf_index;
        let parent = &chain[offset];
        if !parent.is_ca || !parent.may_sign_certs {
            return Err(invalid(offset, "issues a certificate but is not a CA"));
        }
        let hash = sha256(der);
        let key = (parent_hash, hash);
        let cached = if is_leaf {
            None
        } else {
            cache.and_then(|c| c.get(&key))
        };
        let info = match cached {
            Some(info) => info,
            None => {
                let (info, signed) = parse_cert(der, index)?;
                if info.issuer != parent.subject {
                    return Err(invalid(
                        index,
                        "issuer name is not the previous certificate's subject",
                    ));
                }
                if !check_signature(parent, &signed) {
                    return Err(invalid(
                        index,
                        "signature does not verify with the issuer's key",
                    ));
                }
                let info = Arc::new(info);
                if let (false, Some(cache)) = (is_leaf, cache) {
                    cache.insert(key, Arc::clone(&info));
                }
                info
            }
        };
        check_validity(index, &info, now)?;
        chain.push(info);
        parent_hash = hash;
    }

    // RFC 5280 §4.2.1.9: a CA's pathLenConstraint bounds the intermediates below it.
    for (index, cert) in chain.iter().enumerate().take(leaf_index) {
        let below = leaf_index - index - 1;
        if let Some(max) = cert.path_len
            && below > usize::from(max)
        {
            return Err(invalid(
                index,
                format!("path length constraint {max} exceeded by {below} intermediates"),
            ));
        }
    }

    let leaf = chain
        .pop()
        .unwrap_or_else(|| unreachable!("chain holds at least the leaf"));
    if leaf.curve != Curve::P384 {
        return Err(invalid(
            leaf_index,
            "leaf key is not P-384, which ES384 needs",
        ));
    }
    if !leaf.may_sign_data {
        return Err(invalid(
            leaf_index,
            "leaf key usage does not allow digital signatures",
        ));
    }
    Ok(leaf)
}

/// A human-readable summary of one certificate, for showing a document.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertificateSummary {
    /// Subject distinguished name (RFC 4514).
    pub subject: String,
    /// Issuer distinguished name (RFC 4514).
    pub issuer: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// SHA-256 of the DER encoding.
    pub sha256: [u8; 32],
}

impl CertificateSummary {
    /// Summarises a DER certificate without checking anything about it.
    pub fn parse(der: &[u8]) -> Result<Self, VerifyError> {
        let cert = Certificate::from_der(der).map_err(|e| parse_err(0, e))?;
        let tbs = cert.tbs_certificate();
        Ok(Self {
            subject: tbs.subject().to_string(),
            issuer: tbs.issuer().to_string(),
            not_before: tbs.validity().not_before.to_system_time(),
            not_after: tbs.validity().not_after.to_system_time(),
            sha256: sha256(der),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_in_aws_root_has_the_published_fingerprint() {
        let root = TrustRoot::aws_nitro_g1();
        assert_eq!(
            hex::encode(root.sha256_fingerprint()),
            "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
        );
        assert_eq!(root.info.curve, Curve::P384);
    }

    #[test]
    fn pem_and_der_give_the_same_root() {
        let pem_root = TrustRoot::from_pem_or_der(AWS_NITRO_ROOT_G1_PEM.as_bytes()).unwrap();
        let der_root = TrustRoot::from_pem_or_der(pem_root.der()).unwrap();
        assert_eq!(pem_root.der(), der_root.der());
    }

    #[test]
    fn garbage_is_not_a_root() {
        assert!(matches!(
            TrustRoot::from_pem_or_der(b"not a certificate"),
            Err(VerifyError::InvalidTrustRoot { .. })
        ));
    }
}
