//! COSE_Sign1 (RFC 9052) as the NSM uses it: untagged (tag 18 tolerated), protected header
//! `{1: -35}`, empty unprotected map, attached payload, raw 96-byte ES384 signature.

use ciborium::Value;

use crate::VerifyError;

/// COSE algorithm identifier of ECDSA with SHA-384 (ES384).
pub const ALG_ES384: i64 = -35;
/// COSE tag for COSE_Sign1, tolerated on input, never produced.
const COSE_SIGN1_TAG: u64 = 18;
/// Nesting allowed while decoding. The deepest legitimate structure is the payload map's
/// `cabundle` array (depth 3); hostile input cannot recurse further than this.
pub(crate) const RECURSION_LIMIT: usize = 8;

/// A COSE_Sign1 split into its parts, as received.
#[derive(Debug, Clone)]
pub(crate) struct CoseSign1 {
    /// The protected header's bstr contents, exactly as received.
    pub protected: Vec<u8>,
    /// The `alg` value in the protected header.
    pub alg: i64,
    /// The payload's bstr contents, exactly as received.
    pub payload: Vec<u8>,
    /// The signature bstr.
    pub signature: Vec<u8>,
}

/// Decodes exactly one CBOR item from `bytes`, rejecting trailing bytes.
pub(crate) fn decode_value(bytes: &[u8], what: &str) -> Result<Value, VerifyError> {
    let mut reader = bytes;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut reader, RECURSION_LIMIT)
        .map_err(|e| VerifyError::malformed(format!("{what}: {e}")))?;
    if !reader.is_empty() {
        return Err(VerifyError::malformed(format!(
            "{what}: {} trailing bytes",
            reader.len()
        )));
    }
    Ok(value)
}

impl CoseSign1 {
    /// Splits a document into its four parts and reads the algorithm. Checks structure only.
    pub(crate) fn parse(doc: &[u8]) -> Result<Self, VerifyError> {
        let value = decode_value(doc, "COSE_Sign1")?;
        let value = match value {
            Value::Tag(COSE_SIGN1_TAG, inner) => *inner,
            Value::Tag(tag, _) => {
                return Err(VerifyError::malformed(format!(
                    "COSE_Sign1: unexpected CBOR tag {tag}"
                )));
            }
            other => other,
        };
        let Value::Array(parts) = value else {
            return Err(VerifyError::malformed("COSE_Sign1 is not an array"));
        };
        let Ok::<[Value; 4], _>([protected, unprotected, payload, signature]) = parts.try_into()
        else {
            return Err(VerifyError::malformed(
                "COSE_Sign1 array does not have 4 elements",
            ));
        };
        let Value::Bytes(protected) = protected else {
            return Err(VerifyError::malformed(
                "protected header is not a byte string",
            ));
        };
        if !matches!(unprotected, Value::Map(_)) {
            return Err(VerifyError::malformed("unprotected header is not a map"));
        }
        let Value::Bytes(payload) = payload else {
            return Err(VerifyError::malformed(
                "payload is not an attached byte string",
            ));
        };
        let Value::Bytes(signature) = signature else {
            return Err(VerifyError::malformed("signature is not a byte string"));
        };
        let alg = protected_alg(&protected)?;
        Ok(Self {
            protected,
            alg,
            payload,
            signature,
        })
    }

    /// The bytes the signature covers: `["Signature1", protected, h'', payload]`, encoded with
    /// definite lengths and shortest heads (RFC 9052 §4.4, deterministic encoding).
    pub(crate) fn to_be_signed(&self) -> Vec<u8> {
        sig_structure(&self.protected, &self.payload)
    }
}

/// Reads `alg` (label 1) from a protected header bstr.
fn protected_alg(protected: &[u8]) -> Result<i64, VerifyError> {
    let Value::Map(entries) = decode_value(protected, "protected header")? else {
        return Err(VerifyError::malformed("protected header is not a map"));
    };
    let mut alg = None;
    for (key, value) in &entries {
        if key.as_integer().and_then(|k| i64::try_from(k).ok()) != Some(1) {
            continue;
        }
        if alg.is_some() {
            return Err(VerifyError::malformed("protected header repeats alg"));
        }
        let value = value
            .as_integer()
            .and_then(|v| i64::try_from(v).ok())
            .ok_or_else(|| VerifyError::malformed("protected header alg is not an integer"))?;
        alg = Some(value);
    }
    alg.ok_or_else(|| VerifyError::malformed("protected header has no alg"))
}

/// Appends a CBOR head (major type and argument) in its shortest form.
fn push_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    let be = arg.to_be_bytes();
    match arg {
        0..=23 => out.push(m | be[7]),
        24..=0xff => out.extend_from_slice(&[m | 24, be[7]]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&be[6..]);
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&be[4..]);
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&be);
        }
    }
}

/// Appends a definite-length byte string.
pub(crate) fn push_bstr(out: &mut Vec<u8>, bytes: &[u8]) {
    push_head(out, 2, u64::try_from(bytes.len()).unwrap_or(u64::MAX));
    out.extend_from_slice(bytes);
}

/// Builds the Sig_structure for COSE_Sign1 with empty external AAD.
pub(crate) fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + protected.len() + 32);
    push_head(&mut out, 4, 4);
    push_head(&mut out, 3, 10);
    out.extend_from_slice(b"Signature1");
    push_bstr(&mut out, protected);
    push_bstr(&mut out, &[]);
    push_bstr(&mut out, payload);
    out
}

/// The protected header the NSM uses: the map `{1: -35}`.
#[cfg_attr(not(feature = "sim"), allow(dead_code))]
pub(crate) const PROTECTED_ES384: [u8; 4] = [0xa1, 0x01, 0x38, 0x22];

/// Encodes an untagged COSE_Sign1 `[protected, {}, payload, signature]`.
#[cfg_attr(not(feature = "sim"), allow(dead_code))]
pub(crate) fn encode_sign1(protected: &[u8], payload: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + signature.len() + 16);
    push_head(&mut out, 4, 4);
    push_bstr(&mut out, protected);
    push_head(&mut out, 5, 0);
    push_bstr(&mut out, payload);
    push_bstr(&mut out, signature);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_es384_is_the_map_1_minus_35() {
        assert_eq!(protected_alg(&PROTECTED_ES384).unwrap(), ALG_ES384);
        let mut via_ciborium = Vec::new();
        let map = Value::Map(vec![(Value::from(1), Value::from(-35))]);
        ciborium::ser::into_writer(&map, &mut via_ciborium).unwrap();
        assert_eq!(via_ciborium, PROTECTED_ES384);
    }

    #[test]
    fn sig_structure_matches_ciborium_encoding() {
        for len in [0usize, 5, 23, 24, 255, 256, 70_000] {
            let payload = vec![7u8; len];
            let expected = Value::Array(vec![
                Value::Text("Signature1".into()),
                Value::Bytes(PROTECTED_ES384.to_vec()),
                Value::Bytes(vec![]),
                Value::Bytes(payload.clone()),
            ]);
            let mut bytes = Vec::new();
            ciborium::ser::into_writer(&expected, &mut bytes).unwrap();
            assert_eq!(
                sig_structure(&PROTECTED_ES384, &payload),
                bytes,
                "len {len}"
            );
        }
    }

    #[test]
    fn encode_then_parse_round_trips() {
        let doc = encode_sign1(&PROTECTED_ES384, b"payload", &[1u8; 96]);
        let cose = CoseSign1::parse(&doc).unwrap();
        assert_eq!(cose.alg, ALG_ES384);
        assert_eq!(cose.payload, b"payload");
        assert_eq!(cose.signature, vec![1u8; 96]);
    }

    #[test]
    fn trailing_bytes_and_deep_nesting_are_malformed() {
        let mut doc = encode_sign1(&PROTECTED_ES384, b"p", &[0u8; 96]);
        doc.push(0);
        assert!(matches!(
            CoseSign1::parse(&doc),
            Err(VerifyError::Malformed { .. })
        ));
        let deep = vec![0x81u8; 10_000];
        assert!(matches!(
            CoseSign1::parse(&deep),
            Err(VerifyError::Malformed { .. })
        ));
    }
}
