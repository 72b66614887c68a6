//! The attestation document's payload, parsed without trusting it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use ciborium::Value;

use crate::cose::{CoseSign1, decode_value};
use crate::{MAX_DOCUMENT_LEN, VerifyError};

/// Most PCRs a document may carry (the NSM exposes at most 32).
pub const MAX_PCRS: usize = 32;
/// Most bytes of `user_data`, `nonce` or `public_key` the verifier accepts.
///
/// The NSM itself takes at most 512 bytes of user data and nonce and 1024 of public key; the
/// verifier is more lenient so that it rejects documents for what they say, not for their size.
pub const MAX_OPTIONAL_FIELD_LEN: usize = 1024;
/// Most bytes of one certificate.
pub const MAX_CERTIFICATE_LEN: usize = 4096;
/// Most certificates in `cabundle`.
pub const MAX_CABUNDLE_LEN: usize = 16;

/// An attestation document as it claims to be, *not verified*: what [`crate::inspect`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttestationDocument {
    /// COSE `alg` from the protected header (-35 for ES384; -1 for QEMU's unsigned documents).
    pub alg: i64,
    /// The NSM's module id, e.g. `i-0123…-enc0123…`.
    pub module_id: String,
    /// PCR digest algorithm name, `SHA384` on every real NSM.
    pub digest: String,
    /// Milliseconds since the Unix epoch when the document was made.
    pub timestamp_ms: u64,
    /// PCR values by index.
    pub pcrs: BTreeMap<u16, Vec<u8>>,
    /// The leaf certificate (DER) whose key signed the document.
    pub certificate: Vec<u8>,
    /// The issuing chain, root first, each DER.
    pub cabundle: Vec<Vec<u8>>,
    /// The `public_key` the enclave asked to include.
    pub public_key: Option<Vec<u8>>,
    /// The `user_data` the enclave asked to include.
    pub user_data: Option<Vec<u8>>,
    /// The `nonce` the enclave asked to include.
    pub nonce: Option<Vec<u8>>,
    /// The COSE signature bytes.
    pub signature: Vec<u8>,
}

impl AttestationDocument {
    /// The document's timestamp as a [`SystemTime`].
    pub fn timestamp(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(self.timestamp_ms)
    }
}

/// Parses a document without checking any signature, certificate or policy.
///
/// Use it to show a document (`nitrosync-attest inspect`), never to trust one: see
/// [`crate::verify`]. It accepts any COSE algorithm so that QEMU's unsigned documents can be
/// inspected too. Hostile input is safe: the input length is capped at
/// [`MAX_DOCUMENT_LEN`], nesting at a small depth, and every field's size is bounded.
pub fn inspect(doc: &[u8]) -> Result<AttestationDocument, VerifyError> {
    parse_payload(&parse_envelope(doc)?)
}

/// Checks the size and parses the COSE envelope.
pub(crate) fn parse_envelope(doc: &[u8]) -> Result<CoseSign1, VerifyError> {
    if doc.len() > MAX_DOCUMENT_LEN {
        return Err(VerifyError::DocumentTooLarge {
            len: doc.len(),
            max: MAX_DOCUMENT_LEN,
        });
    }
    CoseSign1::parse(doc)
}

/// The nine payload fields while they are being collected.
#[derive(Default)]
struct Fields {
    module_id: Option<String>,
    digest: Option<String>,
    timestamp_ms: Option<u64>,
    pcrs: Option<BTreeMap<u16, Vec<u8>>>,
    certificate: Option<Vec<u8>>,
    cabundle: Option<Vec<Vec<u8>>>,
    public_key: Option<Option<Vec<u8>>>,
    user_data: Option<Option<Vec<u8>>>,
    nonce: Option<Option<Vec<u8>>>,
}

fn set<T>(slot: &mut Option<T>, key: &str, value: T) -> Result<(), VerifyError> {
    if slot.is_some() {
        return Err(VerifyError::malformed(format!("payload repeats {key}")));
    }
    *slot = Some(value);
    Ok(())
}

pub(crate) fn parse_payload(cose: &CoseSign1) -> Result<AttestationDocument, VerifyError> {
    let Value::Map(entries) = decode_value(&cose.payload, "payload")? else {
        return Err(VerifyError::malformed("payload is not a map"));
    };
    let mut f = Fields::default();
    for (key, value) in entries {
        let Value::Text(key) = key else {
            return Err(VerifyError::malformed("payload has a non-text key"));
        };
        match key.as_str() {
            "module_id" => {
                let id = text(value, &key)?;
                if id.is_empty() {
                    return Err(VerifyError::malformed("module_id is empty"));
                }
                set(&mut f.module_id, &key, id)?;
            }
            "digest" => set(&mut f.digest, &key, text(value, &key)?)?,
            "timestamp" => {
                let ts = value
                    .as_integer()
                    .and_then(|i| u64::try_from(i).ok())
                    .filter(|&ts| ts > 0)
                    .ok_or_else(|| VerifyError::malformed("timestamp is not a positive integer"))?;
                set(&mut f.timestamp_ms, &key, ts)?;
            }
            "pcrs" => set(&mut f.pcrs, &key, pcrs(value)?)?,
            "certificate" => {
                let cert = bytes(value, &key, 1, MAX_CERTIFICATE_LEN)?;
                set(&mut f.certificate, &key, cert)?;
            }
            "cabundle" => set(&mut f.cabundle, &key, cabundle(value)?)?,
            "public_key" => set(&mut f.public_key, &key, optional_bytes(value, &key)?)?,
            "user_data" => set(&mut f.user_data, &key, optional_bytes(value, &key)?)?,
            "nonce" => set(&mut f.nonce, &key, optional_bytes(value, &key)?)?,
            // Unknown keys are ignored: they are covered by the signature, and a future NSM may
            // add fields.
            _ => {}
        }
    }
    let missing = |name: &str| VerifyError::malformed(format!("payload has no {name}"));
    Ok(AttestationDocument {
        alg: cose.alg,
        module_id: f.module_id.ok_or_else(|| missing("module_id"))?,
        digest: f.digest.ok_or_else(|| missing("digest"))?,
        timestamp_ms: f.timestamp_ms.ok_or_else(|| missing("timestamp"))?,
        pcrs: f.pcrs.ok_or_else(|| missing("pcrs"))?,
        certificate: f.certificate.ok_or_else(|| missing("certificate"))?,
        cabundle: f.cabundle.ok_or_else(|| missing("cabundle"))?,
        public_key: f.public_key.flatten(),
        user_data: f.user_data.flatten(),
        nonce: f.nonce.flatten(),
        signature: cose.signature.clone(),
    })
}

fn text(value: Value, key: &str) -> Result<String, VerifyError> {
    match value {
        Value::Text(t) if t.len() <= 256 => Ok(t),
        _ => Err(VerifyError::malformed(format!(
            "{key} is not a short text string"
        ))),
    }
}

fn bytes(value: Value, key: &str, min: usize, max: usize) -> Result<Vec<u8>, VerifyError> {
    match value {
        Value::Bytes(b) if (min..=max).contains(&b.len()) => Ok(b),
        Value::Bytes(b) => Err(VerifyError::malformed(format!(
            "{key} is {} bytes, outside {min}..={max}",
            b.len()
        ))),
        _ => Err(VerifyError::malformed(format!(
            "{key} is not a byte string"
        ))),
    }
}

fn optional_bytes(value: Value, key: &str) -> Result<Option<Vec<u8>>, VerifyError> {
    match value {
        Value::Null => Ok(None),
        other => bytes(other, key, 0, MAX_OPTIONAL_FIELD_LEN).map(Some),
    }
}

fn pcrs(value: Value) -> Result<BTreeMap<u16, Vec<u8>>, VerifyError> {
    let Value::Map(entries) = value else {
        return Err(VerifyError::malformed("pcrs is not a map"));
    };
    if entries.is_empty() || entries.len() > MAX_PCRS {
        return Err(VerifyError::malformed(format!(
            "pcrs has {} entries, outside 1..={MAX_PCRS}",
            entries.len()
        )));
    }
    let mut out = BTreeMap::new();
    for (index, pcr) in entries {
        let index = index
            .as_integer()
            .and_then(|i| u16::try_from(i).ok())
            .filter(|&i| usize::from(i) < MAX_PCRS)
            .ok_or_else(|| VerifyError::malformed("PCR index is not an integer in 0..32"))?;
        let Value::Bytes(pcr) = pcr else {
            return Err(VerifyError::malformed(format!(
                "PCR{index} is not a byte string"
            )));
        };
        if ![32, 48, 64].contains(&pcr.len()) {
            return Err(VerifyError::malformed(format!(
                "PCR{index} is {} bytes, not 32, 48 or 64",
                pcr.len()
            )));
        }
        if out.insert(index, pcr).is_some() {
            return Err(VerifyError::malformed(format!("pcrs repeats PCR{index}")));
        }
    }
    Ok(out)
}

fn cabundle(value: Value) -> Result<Vec<Vec<u8>>, VerifyError> {
    let Value::Array(entries) = value else {
        return Err(VerifyError::malformed("cabundle is not an array"));
    };
    if entries.is_empty() || entries.len() > MAX_CABUNDLE_LEN {
        return Err(VerifyError::malformed(format!(
            "cabundle has {} entries, outside 1..={MAX_CABUNDLE_LEN}",
            entries.len()
        )));
    }
    entries
        .into_iter()
        .map(|cert| bytes(cert, "cabundle entry", 1, MAX_CERTIFICATE_LEN))
        .collect()
}
