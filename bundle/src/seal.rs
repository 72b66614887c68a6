//! Sealing (tenant side) and opening (enclave side).

use crate::error::BundleError;
use crate::keys::{EnclaveBundleKey, HpkePublicKey, TenantKey};
use crate::secret::{PlaintextOwned, PlaintextRef, Variables, ZeroizingWriter};
use crate::verify::verify_signed;
use crate::{HPKE_INFO, TAG_LEN};
use hpke::aead::{AeadTag, AesGcm256};
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use nitrosync_shared::bundle::{
    BUNDLE_FORMAT, BundleHeader, DestinationConfig, MAX_CIPHERTEXT_LEN, SealedBundle, Terms,
    saml_subject, signing_message,
};
use nitrosync_shared::names;
use rand_core::CryptoRng;
use std::fmt;
use zeroize::Zeroizing;

type EncappedKey = <X25519HkdfSha256 as Kem>::EncappedKey;

/// A verified, decrypted bundle, as the enclave uses it.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenedBundle {
    /// The header, whose signature by `header.tenant_key` has been verified.
    pub header: BundleHeader,
    /// The decrypted variables, names checked.
    pub variables: Variables,
    /// The SAML subject, derived from the verified tenant key and the destination id.
    pub subject: String,
}

impl fmt::Debug for OpenedBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `Variables` prints names only.
        f.debug_struct("OpenedBundle")
            .field("header", &self.header)
            .field("variables", &self.variables)
            .field("subject", &self.subject)
            .finish()
    }
}

fn check_names(variables: &Variables) -> Result<(), BundleError> {
    // The same check as `nitrosync_shared::bundle::validate_variables`, without first copying
    // the values into a plain `BTreeMap<String, String>`.
    variables
        .names()
        .try_for_each(names::variable_name)
        .map_err(BundleError::VariableName)
}

/// Seals `variables` for `destination` to the enclave key `enclave_pub`, signed by `tenant`.
///
/// Checks the header and the variable names first. The plaintext is the CBOR of
/// [`BundlePlaintext`](nitrosync_shared::bundle::BundlePlaintext), held only in zeroizing
/// buffers; it is sealed with HPKE base mode (info [`HPKE_INFO`], associated data the header's
/// canonical bytes), and [`signing_message`] is signed with Ed25519.
pub fn seal(
    tenant: &TenantKey,
    enclave_pub: &[u8; 32],
    destination: DestinationConfig,
    terms: Terms,
    variables: &Variables,
    rng: &mut impl CryptoRng,
) -> Result<SealedBundle, BundleError> {
    let header = BundleHeader {
        format: BUNDLE_FORMAT,
        tenant_key: tenant.public(),
        enclave_key: *enclave_pub,
        destination,
        version: terms.version,
        created_at_ms: terms.created_at_ms,
        operation: terms.operation,
        not_after_ms: terms.not_after_ms,
    };
    header.validate().map_err(BundleError::Header)?;
    check_names(variables)?;

    // Names, values, and up to 9 bytes of CBOR head per string: no reallocation in practice.
    let estimate = 32 + variables.text_len() + 18 * variables.len();
    let mut plaintext = ZeroizingWriter::with_capacity(estimate);
    // Encoding strings into memory cannot fail.
    let _ = ciborium::into_writer(&PlaintextRef(variables), &mut plaintext);
    let plaintext = plaintext.into_inner();

    let aad = header.canonical_bytes();
    let recipient =
        HpkePublicKey::from_bytes(enclave_pub).map_err(|_| BundleError::InvalidEnclaveKey)?;
    // `single_shot_seal` copies the plaintext into the buffer it then encrypts in place, so no
    // clear copy outlives this call except ours, which is zeroized.
    let (enc, ciphertext) = hpke::single_shot_seal_with_rng::<
        AesGcm256,
        HkdfSha256,
        X25519HkdfSha256,
    >(&OpModeS::Base, &recipient, HPKE_INFO, &plaintext, &aad, rng)
    .map_err(|_| BundleError::InvalidEnclaveKey)?;
    if ciphertext.len() > MAX_CIPHERTEXT_LEN {
        return Err(BundleError::CiphertextTooLarge {
            len: ciphertext.len(),
            max: MAX_CIPHERTEXT_LEN,
        });
    }
    let enc = enc.to_bytes().to_vec();
    let signature = tenant.sign(&signing_message(&header, &enc, &ciphertext));
    Ok(SealedBundle {
        header,
        enc,
        ciphertext,
        signature,
    })
}

/// Verifies and opens a bundle with the enclave's key.
///
/// The checks run in this order, and nothing is decrypted until the signature has verified:
/// sizes, [`BundleHeader::validate`], the Ed25519 signature (`verify_strict`, all three in
/// [`verify_signed`]), the enclave key, HPKE open, the CBOR of the plaintext (exactly one value, definite
/// lengths, no unknown fields or duplicate names), the variable names.
pub fn open(bundle: &SealedBundle, key: &EnclaveBundleKey) -> Result<OpenedBundle, BundleError> {
    let SealedBundle {
        header,
        enc,
        ciphertext,
        ..
    } = bundle;
    verify_signed(bundle)?;
    if header.enclave_key != key.public() {
        return Err(BundleError::WrongEnclaveKey);
    }

    let plaintext = decrypt(header, enc, ciphertext, key)?;
    let variables = decode_plaintext(&plaintext)?;
    drop(plaintext);
    check_names(&variables)?;

    Ok(OpenedBundle {
        subject: saml_subject(&header.tenant_key, &header.destination.id),
        header: header.clone(),
        variables,
    })
}

fn decrypt(
    header: &BundleHeader,
    enc: &[u8],
    ciphertext: &[u8],
    key: &EnclaveBundleKey,
) -> Result<Zeroizing<Vec<u8>>, BundleError> {
    let encapped = EncappedKey::from_bytes(enc).map_err(|_| BundleError::Decrypt)?;
    let body_len = ciphertext
        .len()
        .checked_sub(TAG_LEN)
        .ok_or(BundleError::Decrypt)?;
    let (body, tag) = ciphertext.split_at(body_len);
    let tag = AeadTag::<AesGcm256>::from_bytes(tag).map_err(|_| BundleError::Decrypt)?;
    // Decrypt in place in our own zeroizing buffer (AES-GCM checks the tag before it
    // decrypts, so a rejected ciphertext never becomes plaintext anywhere).
    let mut buffer = Zeroizing::new(body.to_vec());
    hpke::single_shot_open_inout_detached::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
        &OpModeR::Base,
        key.hpke_secret(),
        &encapped,
        HPKE_INFO,
        buffer.as_mut_slice().into(),
        &header.canonical_bytes(),
        &tag,
    )
    .map_err(|_| BundleError::Decrypt)?;
    Ok(buffer)
}

fn decode_plaintext(plaintext: &[u8]) -> Result<Variables, BundleError> {
    use ciborium::de::Error;
    let mut reader = plaintext;
    // The scratch buffer holds each decoded string before it is copied out. Making it as large
    // as the plaintext means every string is read in one piece into one exact-size allocation
    // (no reallocation leaves partial values behind), and it is zeroized afterwards.
    //
    // Depth: the schema-driven decoder only descends struct → map → text (depth 2), since
    // unknown fields are refused rather than skipped; ciborium's own recursion limit (256)
    // bounds anything else.
    let mut scratch = Zeroizing::new(vec![0u8; plaintext.len().max(1)]);
    let decoded: Result<PlaintextOwned, Error<std::io::Error>> =
        ciborium::de::from_reader_with_buffer(&mut reader, scratch.as_mut_slice());
    let plain = |problem, offset| BundleError::Plaintext { problem, offset };
    let variables = match decoded {
        Ok(p) => p.variables.0,
        // Decoder messages are dropped on purpose: serde quotes the unexpected value.
        Err(Error::Io(_)) => return Err(plain("truncated CBOR", None)),
        Err(Error::Syntax(offset)) => return Err(plain("malformed CBOR", Some(offset))),
        Err(Error::Semantic(offset, _)) => {
            return Err(plain(
                "not a map {variables: {name: text}} with unique names, definite lengths \
                 and no other fields",
                offset,
            ));
        }
        Err(Error::RecursionLimitExceeded) => return Err(plain("CBOR nested too deeply", None)),
    };
    if !reader.is_empty() {
        return Err(plain(
            "trailing bytes after the CBOR value",
            Some(plaintext.len() - reader.len()),
        ));
    }
    Ok(variables)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SecretValue;
    use nitrosync_shared::bundle::BundlePlaintext;
    use std::collections::BTreeMap;

    fn sample() -> (Variables, BundlePlaintext) {
        let pairs = [
            ("A", ""),
            ("B_2", "ünïcødé ✓"),
            ("_Z", "x".repeat(5000).as_str()),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let vars = pairs
            .iter()
            .map(|(k, v)| (k.clone(), SecretValue::from(v.as_str())))
            .collect();
        let plain = BundlePlaintext {
            variables: BTreeMap::from(pairs),
        };
        (vars, plain)
    }

    #[test]
    fn plaintext_bytes_match_the_shared_type() {
        let (vars, plain) = sample();
        let mut ours = Vec::new();
        ciborium::into_writer(&PlaintextRef(&vars), &mut ours).unwrap();
        let mut theirs = Vec::new();
        ciborium::into_writer(&plain, &mut theirs).unwrap();
        assert_eq!(ours, theirs);
        assert_eq!(decode_plaintext(&theirs).unwrap(), vars);
    }

    #[test]
    fn plaintext_decoding_is_strict_and_value_free() {
        let (_, plain) = sample();
        let mut good = Vec::new();
        ciborium::into_writer(&plain, &mut good).unwrap();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            ([good.as_slice(), &[0]].concat(), "trailing"),
            (good[..good.len() - 1].to_vec(), "truncated"),
            (vec![0x1c], "malformed"),
            (vec![0xff], "not a map"),
        ];
        for (bytes, want) in cases {
            let e = decode_plaintext(&bytes).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
        }
        // A value of the wrong type: serde would quote it, we do not.
        #[derive(serde::Serialize)]
        struct Wrong {
            variables: BTreeMap<String, u64>,
        }
        let mut bytes = Vec::new();
        ciborium::into_writer(
            &Wrong {
                variables: BTreeMap::from([("A".into(), 424_242)]),
            },
            &mut bytes,
        )
        .unwrap();
        let e = decode_plaintext(&bytes).unwrap_err().to_string();
        assert!(e.contains("not a map") && !e.contains("424242"), "{e}");
        // Duplicate names, written by hand: {"variables": {"A": "1", "A": "2"}}.
        let mut dup = vec![0xa1, 0x69];
        dup.extend_from_slice(b"variables");
        dup.extend_from_slice(&[0xa2, 0x61, b'A', 0x61, b'1', 0x61, b'A', 0x61, b'2']);
        assert!(matches!(
            decode_plaintext(&dup),
            Err(BundleError::Plaintext { .. })
        ));
        dup[17] = b'B';
        assert_eq!(decode_plaintext(&dup).unwrap().len(), 2);
        // Unknown fields are refused.
        let mut extra = vec![0xa2, 0x69];
        extra.extend_from_slice(b"variables");
        extra.extend_from_slice(&[0xa0, 0x61, b'x', 0x00]);
        assert!(decode_plaintext(&extra).is_err());
    }
}
