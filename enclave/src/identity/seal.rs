//! The sealed identity: [`IdentitySecrets`] in CBOR under AES-256-GCM with the KMS data key.
//!
//! The AAD binds the blob to the format, the KMS key ARN and this image's PCR0, each
//! length-prefixed after a domain label:
//!
//! ```text
//! u32be(26) "nitrosync/enclave-identity" || u32be(SEAL_FORMAT)
//!   || u32be(len) key_arn || u32be(48) pcr0
//! ```
//!
//! so a blob moved to another key, or sealed by another image, does not open. The plaintext is a
//! CBOR map (`format`, then the four secrets as byte strings). Every buffer that holds it is
//! allocated once at its final size and zeroized on drop, so no copy of a secret is left behind
//! by a growing vector.

use super::IdentityError;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::de::{Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use zeroize::Zeroizing;

/// The format of the sealed identity's plaintext and AAD.
pub const SEAL_FORMAT: u32 = 1;

/// The longest sealed identity [`unseal`] accepts (and [`seal`] makes).
pub const MAX_SEALED_LEN: usize = 64 * 1024;

/// The AAD's domain label.
const AAD_LABEL: &[u8] = b"nitrosync/enclave-identity";
/// SHA-384.
const PCR0_LEN: usize = 48;
/// The longest key ARN in the AAD (KMS key ARNs are under 100 characters).
const MAX_KEY_ARN: usize = 2048;
/// The AES-GCM tag.
const TAG_LEN: usize = 16;
/// Room for the CBOR map, its keys and the byte-string headers around the secrets.
const CBOR_OVERHEAD: usize = 256;

/// The identity an enclave keeps across restarts.
pub struct IdentitySecrets {
    /// The SAML signing key (RSA), PKCS#8 DER.
    pub saml_key_pkcs8: Zeroizing<Vec<u8>>,
    /// Its self-signed certificate (DER), so that the SAML metadata is byte-identical after a
    /// restart.
    pub saml_cert_der: Vec<u8>,
    /// The X25519 secret of the bundle key.
    pub bundle_key: Zeroizing<[u8; 32]>,
    /// The MAC master key. It never rotates: a new one would rewrite every secret once.
    pub mac_master: Zeroizing<[u8; 32]>,
    /// Incremented at every re-seal (a rotation step); the parent keeps the highest.
    pub generation: u64,
    /// Keys published by `rotate begin`, current after `rotate finish`.
    pub next: Option<NextKeys>,
    /// The bundle key before the last `rotate finish`, still opened until its cut-off.
    pub previous_bundle: Option<PreviousBundleKey>,
}

/// The keys a rotation moves to.
pub struct NextKeys {
    /// The next SAML signing key (RSA), PKCS#8 DER.
    pub saml_key_pkcs8: Zeroizing<Vec<u8>>,
    /// Its self-signed certificate (DER), listed in the metadata beside the current one.
    pub saml_cert_der: Vec<u8>,
    /// The next X25519 bundle key.
    pub bundle_key: Zeroizing<[u8; 32]>,
}

/// A retired bundle key and when it stops opening bundles.
pub struct PreviousBundleKey {
    /// The X25519 secret.
    pub bundle_key: Zeroizing<[u8; 32]>,
    /// Unix milliseconds (by the enclave's trusted clock) after which it opens nothing.
    pub until_ms: u64,
}

impl std::fmt::Debug for NextKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NextKeys")
            .field(
                "saml_cert_der",
                &format_args!("{} bytes", self.saml_cert_der.len()),
            )
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PreviousBundleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreviousBundleKey")
            .field("until_ms", &self.until_ms)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for IdentitySecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentitySecrets")
            .field("saml_key_pkcs8", &"[REDACTED]")
            .field(
                "saml_cert_der",
                &format_args!("{} bytes", self.saml_cert_der.len()),
            )
            .field("bundle_key", &"[REDACTED]")
            .field("mac_master", &"[REDACTED]")
            .field("generation", &self.generation)
            .field("next", &self.next.as_ref().map(|_| "[REDACTED]"))
            .field(
                "previous_bundle_until_ms",
                &self.previous_bundle.as_ref().map(|p| p.until_ms),
            )
            .finish()
    }
}

/// What the sealed identity is bound to besides the data key.
#[derive(Debug, Clone, Copy)]
pub struct SealContext<'a> {
    /// The full ARN of the KMS key whose data key seals it.
    pub key_arn: &'a str,
    /// This image's PCR0 (48 bytes, SHA-384).
    pub pcr0: &'a [u8],
}

impl SealContext<'_> {
    /// The AAD, after checking the context.
    fn aad(&self) -> Result<Vec<u8>, IdentityError> {
        if self.pcr0.len() != PCR0_LEN {
            return Err(IdentityError::SealContext(format!(
                "PCR0 is {} bytes, not {PCR0_LEN}",
                self.pcr0.len()
            )));
        }
        if self.key_arn.is_empty() || self.key_arn.len() > MAX_KEY_ARN {
            return Err(IdentityError::SealContext(format!(
                "the key ARN is {} bytes, not 1 to {MAX_KEY_ARN}",
                self.key_arn.len()
            )));
        }
        let mut aad = Vec::with_capacity(4 * 4 + AAD_LABEL.len() + self.key_arn.len() + PCR0_LEN);
        length_prefixed(&mut aad, AAD_LABEL)?;
        aad.extend_from_slice(&SEAL_FORMAT.to_be_bytes());
        length_prefixed(&mut aad, self.key_arn.as_bytes())?;
        length_prefixed(&mut aad, self.pcr0)?;
        Ok(aad)
    }
}

fn length_prefixed(out: &mut Vec<u8>, field: &[u8]) -> Result<(), IdentityError> {
    let len = u32::try_from(field.len())
        .map_err(|_| IdentityError::SealContext("an AAD field is too long".into()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(field);
    Ok(())
}

/// A byte string in CBOR, borrowed.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// The plaintext as written: borrowed, so that nothing is copied.
#[derive(Serialize)]
struct SealedPlaintextRef<'a> {
    format: u32,
    saml_key_pkcs8: Bytes<'a>,
    saml_cert_der: Bytes<'a>,
    bundle_key: Bytes<'a>,
    mac_master: Bytes<'a>,
    generation: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_saml_key_pkcs8: Option<Bytes<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_saml_cert_der: Option<Bytes<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_bundle_key: Option<Bytes<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_bundle_key: Option<Bytes<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_bundle_until_ms: Option<u64>,
}

/// A CBOR byte string read into a zeroizing buffer of its exact size.
struct SecretBytes(Zeroizing<Vec<u8>>);

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SecretBytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<SecretBytes, E> {
                let mut out = Zeroizing::new(Vec::with_capacity(v.len()));
                out.extend_from_slice(v);
                Ok(SecretBytes(out))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<SecretBytes, E> {
                Ok(SecretBytes(Zeroizing::new(v)))
            }
        }
        // `deserialize_bytes`: ciborium reads the string into the (zeroizing) scratch buffer,
        // where `deserialize_byte_buf` would grow a vector chunk by chunk.
        deserializer.deserialize_bytes(V)
    }
}

/// The plaintext as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedPlaintext {
    format: u32,
    saml_key_pkcs8: SecretBytes,
    saml_cert_der: SecretBytes,
    bundle_key: SecretBytes,
    mac_master: SecretBytes,
    generation: u64,
    #[serde(default)]
    next_saml_key_pkcs8: Option<SecretBytes>,
    #[serde(default)]
    next_saml_cert_der: Option<SecretBytes>,
    #[serde(default)]
    next_bundle_key: Option<SecretBytes>,
    #[serde(default)]
    previous_bundle_key: Option<SecretBytes>,
    #[serde(default)]
    previous_bundle_until_ms: Option<u64>,
}

fn gcm_key(data_key: &[u8; 32]) -> Result<LessSafeKey, IdentityError> {
    UnboundKey::new(&AES_256_GCM, data_key)
        .map(LessSafeKey::new)
        .map_err(|_| IdentityError::Seal("AES-256-GCM refused the data key"))
}

/// Seals `secrets` under `data_key`, bound to `ctx`; returns the random nonce and the
/// ciphertext with its tag.
///
/// # Errors
///
/// [`IdentityError::SealContext`] for a bad context, [`IdentityError::Random`] without
/// randomness, [`IdentityError::Seal`] when the identity is too large or AES-GCM fails.
pub fn seal(
    data_key: &[u8; 32],
    ctx: &SealContext,
    secrets: &IdentitySecrets,
) -> Result<([u8; NONCE_LEN], Vec<u8>), IdentityError> {
    let aad = ctx.aad()?;
    let next_len = secrets.next.as_ref().map_or(0, |n| {
        n.saml_key_pkcs8
            .len()
            .saturating_add(n.saml_cert_der.len())
            .saturating_add(32 + CBOR_OVERHEAD)
    });
    let capacity = secrets
        .saml_key_pkcs8
        .len()
        .saturating_add(secrets.saml_cert_der.len())
        .saturating_add(next_len)
        .saturating_add(3 * 32 + 2 * CBOR_OVERHEAD);
    if capacity > MAX_SEALED_LEN - TAG_LEN {
        return Err(IdentityError::Seal(
            "the identity is larger than a sealed identity may be",
        ));
    }
    let plaintext = SealedPlaintextRef {
        format: SEAL_FORMAT,
        saml_key_pkcs8: Bytes(&secrets.saml_key_pkcs8),
        saml_cert_der: Bytes(&secrets.saml_cert_der),
        bundle_key: Bytes(&secrets.bundle_key[..]),
        mac_master: Bytes(&secrets.mac_master[..]),
        generation: secrets.generation,
        next_saml_key_pkcs8: secrets.next.as_ref().map(|n| Bytes(&n.saml_key_pkcs8[..])),
        next_saml_cert_der: secrets.next.as_ref().map(|n| Bytes(&n.saml_cert_der[..])),
        next_bundle_key: secrets.next.as_ref().map(|n| Bytes(&n.bundle_key[..])),
        previous_bundle_key: secrets
            .previous_bundle
            .as_ref()
            .map(|p| Bytes(&p.bundle_key[..])),
        previous_bundle_until_ms: secrets.previous_bundle.as_ref().map(|p| p.until_ms),
    };
    // Written into a buffer of its final size: a full buffer is an error, never a reallocation
    // that would leave a copy of the secrets in freed memory.
    let mut buf = Zeroizing::new(vec![0u8; capacity]);
    let mut rest: &mut [u8] = &mut buf[..];
    ciborium::into_writer(&plaintext, &mut rest)
        .map_err(|_| IdentityError::Seal("the identity does not encode as CBOR"))?;
    let written = capacity - rest.len();
    buf.truncate(written);

    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(IdentityError::Random)?;
    let tag = gcm_key(data_key)?
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad[..]),
            &mut buf[..],
        )
        .map_err(|_| IdentityError::Seal("AES-256-GCM failed"))?;
    let mut sealed = Vec::with_capacity(buf.len() + TAG_LEN);
    sealed.extend_from_slice(&buf);
    sealed.extend_from_slice(tag.as_ref());
    Ok((nonce, sealed))
}

/// Opens what [`seal`] made, with the same data key and context.
///
/// # Errors
///
/// [`IdentityError::SealContext`] for a bad context; [`IdentityError::SealedMalformed`] for a
/// nonce that is not 12 bytes or a blob of impossible size;
/// [`IdentityError::UnsealAuthentication`] when AES-GCM refuses it (another data key, key ARN,
/// image or format, or altered); [`IdentityError::SealedContent`] when it opens but is not a
/// format-1 identity.
pub fn unseal(
    data_key: &[u8; 32],
    ctx: &SealContext,
    nonce: &[u8],
    sealed: &[u8],
) -> Result<IdentitySecrets, IdentityError> {
    let aad = ctx.aad()?;
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| {
        IdentityError::SealedMalformed(format!(
            "the nonce is {} bytes, not {NONCE_LEN}",
            nonce.len()
        ))
    })?;
    if sealed.len() < TAG_LEN || sealed.len() > MAX_SEALED_LEN {
        return Err(IdentityError::SealedMalformed(format!(
            "it is {} bytes, not {TAG_LEN} to {MAX_SEALED_LEN}",
            sealed.len()
        )));
    }
    let mut buf = Zeroizing::new(sealed.to_vec());
    let plain = gcm_key(data_key)?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad[..]),
            &mut buf[..],
        )
        .map_err(|_| IdentityError::UnsealAuthentication)?;

    // Every byte string fits the scratch buffer, so ciborium reads each in one piece into it
    // (see `SecretBytes`); the buffer is zeroized on drop.
    let mut scratch = Zeroizing::new(vec![0u8; plain.len()]);
    let mut rest: &[u8] = plain;
    let p: SealedPlaintext = ciborium::de::from_reader_with_buffer(&mut rest, &mut scratch[..])
        .map_err(|_| IdentityError::SealedContent("it is not the CBOR of an identity"))?;
    if !rest.is_empty() {
        return Err(IdentityError::SealedContent(
            "bytes follow the identity's CBOR",
        ));
    }
    if p.format != SEAL_FORMAT {
        return Err(IdentityError::SealedContent("its format is not 1"));
    }
    let key32 = |b: &SecretBytes, what: &'static str| {
        let mut out = Zeroizing::new([0u8; 32]);
        if b.0.len() != out.len() {
            return Err(IdentityError::SealedContent(what));
        }
        out.copy_from_slice(&b.0);
        Ok(out)
    };
    let bundle_key = key32(&p.bundle_key, "the bundle key is not 32 bytes")?;
    let mac_master = key32(&p.mac_master, "the MAC master key is not 32 bytes")?;
    if p.saml_key_pkcs8.0.is_empty() || p.saml_cert_der.0.is_empty() {
        return Err(IdentityError::SealedContent(
            "the SAML key or certificate is empty",
        ));
    }
    let next = match (
        p.next_saml_key_pkcs8,
        p.next_saml_cert_der,
        p.next_bundle_key,
    ) {
        (None, None, None) => None,
        (Some(key), Some(cert), Some(bundle)) => {
            if key.0.is_empty() || cert.0.is_empty() {
                return Err(IdentityError::SealedContent(
                    "the next SAML key or certificate is empty",
                ));
            }
            let bundle_key = key32(&bundle, "the next bundle key is not 32 bytes")?;
            let SecretBytes(mut cert) = cert;
            Some(NextKeys {
                saml_key_pkcs8: key.0,
                saml_cert_der: std::mem::take(&mut *cert),
                bundle_key,
            })
        }
        _ => {
            return Err(IdentityError::SealedContent("the next keys are incomplete"));
        }
    };
    let previous_bundle = match (p.previous_bundle_key, p.previous_bundle_until_ms) {
        (None, None) => None,
        (Some(key), Some(until_ms)) => Some(PreviousBundleKey {
            bundle_key: key32(&key, "the previous bundle key is not 32 bytes")?,
            until_ms,
        }),
        _ => {
            return Err(IdentityError::SealedContent(
                "the previous bundle key has no cut-off",
            ));
        }
    };
    let SecretBytes(mut cert) = p.saml_cert_der;
    Ok(IdentitySecrets {
        saml_key_pkcs8: p.saml_key_pkcs8.0,
        saml_cert_der: std::mem::take(&mut *cert),
        bundle_key,
        mac_master,
        generation: p.generation,
        next,
        previous_bundle,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    const PCR0: [u8; 48] = [0xa5; 48];
    const DATA_KEY: [u8; 32] = [0x11; 32];

    fn secrets() -> IdentitySecrets {
        IdentitySecrets {
            // Recognisable, so that a test can look for them in error messages.
            saml_key_pkcs8: Zeroizing::new(b"SAML-PRIVATE-KEY-PKCS8-".repeat(50)),
            saml_cert_der: b"SAML-CERTIFICATE-".repeat(40),
            bundle_key: Zeroizing::new(*b"BUNDLE-KEY-BUNDLE-KEY-BUNDLE-KEY"),
            mac_master: Zeroizing::new(*b"MAC-MASTER-MAC-MASTER-MAC-MASTER"),
            generation: 0,
            next: None,
            previous_bundle: None,
        }
    }

    fn ctx() -> SealContext<'static> {
        SealContext {
            key_arn: ARN,
            pcr0: &PCR0,
        }
    }

    fn assert_same(a: &IdentitySecrets, b: &IdentitySecrets) {
        assert_eq!(*a.saml_key_pkcs8, *b.saml_key_pkcs8);
        assert_eq!(a.saml_cert_der, b.saml_cert_der);
        assert_eq!(*a.bundle_key, *b.bundle_key);
        assert_eq!(*a.mac_master, *b.mac_master);
    }

    /// No error message or Debug output shows any part of the secrets or the data key.
    fn assert_no_secret(shown: &str) {
        for needle in [
            "SAML-PRIVATE",
            "BUNDLE-KEY",
            "MAC-MASTER",
            "1111111111",
            "5341",
            "4255",
        ] {
            assert!(!shown.contains(needle), "{needle} in {shown:?}");
        }
    }

    #[test]
    fn round_trip_with_rotation_keys() {
        let mut s = secrets();
        s.generation = 7;
        s.next = Some(NextKeys {
            saml_key_pkcs8: Zeroizing::new(b"NEXT-SAML-KEY-".repeat(60)),
            saml_cert_der: b"NEXT-CERT-".repeat(50),
            bundle_key: Zeroizing::new([0x42; 32]),
        });
        s.previous_bundle = Some(PreviousBundleKey {
            bundle_key: Zeroizing::new([0x24; 32]),
            until_ms: 1_800_000_000_000,
        });
        let (nonce, sealed) = seal(&DATA_KEY, &ctx(), &s).unwrap();
        assert!(!sealed.windows(9).any(|w| w == b"NEXT-SAML"));
        let opened = unseal(&DATA_KEY, &ctx(), &nonce, &sealed).unwrap();
        assert_same(&s, &opened);
        assert_eq!(opened.generation, 7);
        assert!(!format!("{opened:?}").contains("NEXT"));
        let (a, b) = (s.next.unwrap(), opened.next.unwrap());
        assert_eq!(*a.saml_key_pkcs8, *b.saml_key_pkcs8);
        assert_eq!(a.saml_cert_der, b.saml_cert_der);
        assert_eq!(*a.bundle_key, *b.bundle_key);
        let (a, b) = (s.previous_bundle.unwrap(), opened.previous_bundle.unwrap());
        assert_eq!(*a.bundle_key, *b.bundle_key);
        assert_eq!(a.until_ms, b.until_ms);
    }

    #[test]
    fn round_trip() {
        let s = secrets();
        let (nonce, sealed) = seal(&DATA_KEY, &ctx(), &s).unwrap();
        assert_eq!(nonce.len(), 12);
        assert!(
            !sealed.windows(10).any(|w| w == b"SAML-PRIVA"),
            "the plaintext is encrypted"
        );
        let opened = unseal(&DATA_KEY, &ctx(), &nonce, &sealed).unwrap();
        assert_same(&s, &opened);
        let (nonce2, sealed2) = seal(&DATA_KEY, &ctx(), &s).unwrap();
        assert_ne!(nonce, nonce2, "a fresh nonce each time");
        assert_ne!(sealed, sealed2);
    }

    #[test]
    fn the_plaintext_is_cbor_with_a_format_field() {
        let s = secrets();
        let (nonce, sealed) = seal(&DATA_KEY, &ctx(), &s).unwrap();
        let mut buf = sealed.clone();
        let plain = gcm_key(&DATA_KEY)
            .unwrap()
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&ctx().aad().unwrap()[..]),
                &mut buf,
            )
            .unwrap()
            .to_vec();
        let v: ciborium::Value = ciborium::from_reader(&plain[..]).unwrap();
        let map = v.as_map().unwrap();
        let keys: Vec<&str> = map.iter().map(|(k, _)| k.as_text().unwrap()).collect();
        assert_eq!(
            keys,
            [
                "format",
                "saml_key_pkcs8",
                "saml_cert_der",
                "bundle_key",
                "mac_master",
                "generation"
            ]
        );
        assert_eq!(map[0].1, ciborium::Value::Integer(1.into()));
        assert!(map[1].1.is_bytes());
    }

    #[test]
    fn the_aad_is_length_prefixed_and_labelled() {
        let aad = ctx().aad().unwrap();
        let mut expected = vec![0, 0, 0, 26];
        expected.extend_from_slice(b"nitrosync/enclave-identity");
        expected.extend_from_slice(&[0, 0, 0, 1]);
        expected.extend_from_slice(&u32::try_from(ARN.len()).unwrap().to_be_bytes());
        expected.extend_from_slice(ARN.as_bytes());
        expected.extend_from_slice(&[0, 0, 0, 48]);
        expected.extend_from_slice(&PCR0);
        assert_eq!(aad, expected);
    }

    #[test]
    fn another_key_arn_pcr0_or_data_key_does_not_open() {
        let (nonce, sealed) = seal(&DATA_KEY, &ctx(), &secrets()).unwrap();
        let other_arn = SealContext {
            key_arn: "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ac",
            pcr0: &PCR0,
        };
        let mut pcr0 = PCR0;
        pcr0[47] ^= 1;
        let other_pcr0 = SealContext {
            key_arn: ARN,
            pcr0: &pcr0,
        };
        for (what, key, c) in [
            ("key ARN", DATA_KEY, other_arn),
            ("PCR0", DATA_KEY, other_pcr0),
            ("data key", [0x12; 32], ctx()),
        ] {
            match unseal(&key, &c, &nonce, &sealed) {
                Err(IdentityError::UnsealAuthentication) => {}
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    #[test]
    fn altered_blobs_and_nonces_do_not_open() {
        let (nonce, sealed) = seal(&DATA_KEY, &ctx(), &secrets()).unwrap();
        for i in [0, sealed.len() / 2, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(matches!(
                unseal(&DATA_KEY, &ctx(), &nonce, &bad),
                Err(IdentityError::UnsealAuthentication)
            ));
        }
        let mut bad_nonce = nonce;
        bad_nonce[0] ^= 1;
        assert!(matches!(
            unseal(&DATA_KEY, &ctx(), &bad_nonce, &sealed),
            Err(IdentityError::UnsealAuthentication)
        ));
        for n in [0, 11, 13, 16] {
            assert!(matches!(
                unseal(&DATA_KEY, &ctx(), &vec![0; n], &sealed),
                Err(IdentityError::SealedMalformed(_))
            ));
        }
        for len in [0, 15] {
            assert!(matches!(
                unseal(&DATA_KEY, &ctx(), &nonce, &sealed[..len]),
                Err(IdentityError::SealedMalformed(_))
            ));
        }
        assert!(matches!(
            unseal(&DATA_KEY, &ctx(), &nonce, &sealed[..sealed.len() - 1]),
            Err(IdentityError::UnsealAuthentication)
        ));
        assert!(matches!(
            unseal(&DATA_KEY, &ctx(), &nonce, &vec![0; MAX_SEALED_LEN + 1]),
            Err(IdentityError::SealedMalformed(_))
        ));
    }

    #[test]
    fn bad_contexts_are_refused() {
        let s = secrets();
        for pcr0 in [&PCR0[..47], &[0u8; 64][..], &[][..]] {
            let c = SealContext { key_arn: ARN, pcr0 };
            assert!(matches!(
                seal(&DATA_KEY, &c, &s),
                Err(IdentityError::SealContext(_))
            ));
            assert!(matches!(
                unseal(&DATA_KEY, &c, &[0; 12], &[0; 64]),
                Err(IdentityError::SealContext(_))
            ));
        }
        let c = SealContext {
            key_arn: "",
            pcr0: &PCR0,
        };
        assert!(matches!(
            seal(&DATA_KEY, &c, &s),
            Err(IdentityError::SealContext(_))
        ));
    }

    #[test]
    fn an_oversized_identity_is_refused() {
        let mut s = secrets();
        s.saml_cert_der = vec![0; MAX_SEALED_LEN];
        assert!(matches!(
            seal(&DATA_KEY, &ctx(), &s),
            Err(IdentityError::Seal(_))
        ));
    }

    /// A plaintext sealed under the right key and AAD but not shaped as an identity.
    fn sealed_plaintext(plain: &[u8]) -> ([u8; 12], Vec<u8>) {
        let nonce = [7u8; 12];
        let mut buf = plain.to_vec();
        let tag = gcm_key(&DATA_KEY)
            .unwrap()
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&ctx().aad().unwrap()[..]),
                &mut buf,
            )
            .unwrap();
        buf.extend_from_slice(tag.as_ref());
        (nonce, buf)
    }

    #[test]
    fn authentic_but_wrong_content_is_refused() {
        let cbor = |v: &ciborium::Value| {
            let mut out = vec![];
            ciborium::into_writer(v, &mut out).unwrap();
            out
        };
        use ciborium::Value as V;
        let good = |format: u64, bundle_len: usize, extra: bool| {
            let mut m = vec![
                (V::Text("format".into()), V::Integer(format.into())),
                (V::Text("saml_key_pkcs8".into()), V::Bytes(vec![1; 10])),
                (V::Text("saml_cert_der".into()), V::Bytes(vec![2; 10])),
                (V::Text("bundle_key".into()), V::Bytes(vec![3; bundle_len])),
                (V::Text("mac_master".into()), V::Bytes(vec![4; 32])),
                (V::Text("generation".into()), V::Integer(0.into())),
            ];
            if extra {
                m.push((V::Text("other".into()), V::Bool(true)));
            }
            cbor(&V::Map(m))
        };
        let (n, s) = sealed_plaintext(&good(1, 32, false));
        unseal(&DATA_KEY, &ctx(), &n, &s).expect("the hand-made plaintext is valid");
        let mut trailing = good(1, 32, false);
        trailing.push(0);
        for plain in [
            good(2, 32, false),
            good(1, 31, false),
            good(1, 32, true),
            trailing,
            vec![],
            b"not cbor".to_vec(),
            cbor(&V::Array(vec![])),
        ] {
            let (n, s) = sealed_plaintext(&plain);
            assert!(matches!(
                unseal(&DATA_KEY, &ctx(), &n, &s),
                Err(IdentityError::SealedContent(_))
            ));
        }
        // Rotation fields: the next keys come together, a previous key with its cut-off.
        let with = |extra: Vec<(V, V)>| {
            let mut v: ciborium::Value = ciborium::from_reader(&good(1, 32, false)[..]).unwrap();
            if let V::Map(m) = &mut v {
                m.extend(extra);
            }
            cbor(&v)
        };
        for plain in [
            with(vec![(
                V::Text("next_bundle_key".into()),
                V::Bytes(vec![5; 32]),
            )]),
            with(vec![(
                V::Text("previous_bundle_key".into()),
                V::Bytes(vec![6; 32]),
            )]),
            with(vec![
                (V::Text("previous_bundle_key".into()), V::Bytes(vec![6; 31])),
                (
                    V::Text("previous_bundle_until_ms".into()),
                    V::Integer(1.into()),
                ),
            ]),
        ] {
            let (n, s) = sealed_plaintext(&plain);
            assert!(matches!(
                unseal(&DATA_KEY, &ctx(), &n, &s),
                Err(IdentityError::SealedContent(_))
            ));
        }
    }

    #[test]
    fn debug_and_errors_never_show_secrets() {
        let s = secrets();
        let shown = format!("{s:?}");
        assert_no_secret(&shown);
        assert!(shown.contains("[REDACTED]"));
        let (nonce, sealed) = seal(&DATA_KEY, &ctx(), &s).unwrap();
        let mut bad = sealed.clone();
        bad[3] ^= 1;
        let errors = [
            unseal(&[0x12; 32], &ctx(), &nonce, &sealed).unwrap_err(),
            unseal(&DATA_KEY, &ctx(), &nonce, &bad).unwrap_err(),
            unseal(&DATA_KEY, &ctx(), &nonce[..5], &sealed).unwrap_err(),
            unseal(&DATA_KEY, &ctx(), &nonce, &sealed[..3]).unwrap_err(),
        ];
        for e in errors {
            assert_no_secret(&format!("{e} {e:?}"));
        }
    }
}
