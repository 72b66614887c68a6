//! The RSA key and its self-signed certificate: generation, parsing and the checks that tie them.
//!
//! Three libraries, each for the one thing it is trusted with: `rsa` generates the key (and
//! nothing else: its private-key operations are not constant-time, RUSTSEC-2023-0071), `ring`
//! holds the key and makes every signature, and `rcgen` lays out the certificate, which it has
//! `ring` sign through [`CertSigningKey`]. `pkcs1` / `pkcs8` (re-exported by `rsa`) and
//! `x509-cert` only parse.

use ::time::OffsetDateTime;
use getrandom::SysRng;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, IsCa, KeyUsagePurpose, PKCS_RSA_SHA256,
    PublicKeyData, SerialNumber, SigningKey,
};
use ring::rand::SystemRandom;
use ring::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use rsa::pkcs1::{RsaPrivateKeyRef, RsaPublicKeyRef, UintRef};
use rsa::pkcs8::{EncodePrivateKey as _, PrivateKeyInfoRef};
use x509_cert::Certificate;
use x509_cert::der::Decode as _;
use zeroize::Zeroizing;

use crate::signer::{CERT_COMMON_NAME, MIN_KEY_BITS};
use crate::{SamlError, time};

/// A fresh RSA key of `bits` bits, as PKCS#8 DER.
pub(crate) fn generate_pkcs8(bits: u32) -> Result<Zeroizing<Vec<u8>>, SamlError> {
    let bits = usize::try_from(bits).map_err(|e| SamlError::KeyGeneration(Box::new(e)))?;
    // `rsa::PrivateKey` zeroizes its components on drop; `SecretDocument` zeroizes the DER.
    let key = rsa::PrivateKey::new(&mut SysRng, bits)
        .map_err(|e| SamlError::KeyGeneration(Box::new(e)))?;
    let der = key
        .to_pkcs8_der()
        .map_err(|e| SamlError::KeyGeneration(Box::new(e)))?;
    Ok(Zeroizing::new(der.as_bytes().to_vec()))
}

/// Checks a PKCS#8 DER private key (RSA, at least [`MIN_KEY_BITS`]) and loads it into `ring`.
pub(crate) fn load_private_key(pkcs8_der: &[u8]) -> Result<RsaKeyPair, SamlError> {
    let invalid = |e: rsa::pkcs8::der::Error| SamlError::InvalidPrivateKey(Box::new(e));
    let info = PrivateKeyInfoRef::from_der(pkcs8_der).map_err(invalid)?;
    if info.algorithm.oid != rsa::pkcs1::ALGORITHM_OID {
        return Err(non_rsa());
    }
    let rsa_key = RsaPrivateKeyRef::from_der(info.private_key.as_bytes()).map_err(invalid)?;
    check_strength(rsa_key.modulus)?;
    RsaKeyPair::from_pkcs8(pkcs8_der).map_err(|e| SamlError::InvalidPrivateKey(Box::new(e)))
}

/// Parses a DER certificate and returns the bytes of its `SubjectPublicKeyInfo` RSA key
/// (a PKCS#1 `RSAPublicKey`), after checking that it is RSA with at least [`MIN_KEY_BITS`].
pub(crate) fn certificate_rsa_key(cert_der: &[u8]) -> Result<Vec<u8>, SamlError> {
    let cert =
        Certificate::from_der(cert_der).map_err(|e| SamlError::InvalidCertificate(Box::new(e)))?;
    let spki = cert.tbs_certificate().subject_public_key_info();
    if spki.algorithm.oid != rsa::pkcs1::ALGORITHM_OID {
        return Err(non_rsa());
    }
    let bytes = spki.subject_public_key.as_bytes().ok_or_else(|| {
        SamlError::InvalidCertificate("public key bit string is not whole bytes".into())
    })?;
    let key =
        RsaPublicKeyRef::from_der(bytes).map_err(|e| SamlError::InvalidCertificate(Box::new(e)))?;
    check_strength(key.modulus)?;
    Ok(bytes.to_vec())
}

/// True when the PKCS#1 `RSAPublicKey` in `cert_key` has the same modulus and exponent as the
/// key pair (compared as decoded DER integers).
pub(crate) fn same_public_key(key_pair: &RsaKeyPair, cert_key: &[u8]) -> bool {
    let (Ok(ours), Ok(theirs)) = (
        RsaPublicKeyRef::from_der(key_pair.public_key().as_ref()),
        RsaPublicKeyRef::from_der(cert_key),
    ) else {
        return false;
    };
    ours == theirs
}

fn non_rsa() -> SamlError {
    SamlError::UnsupportedKey {
        found: "non-RSA key".to_owned(),
    }
}

fn check_strength(modulus: UintRef<'_>) -> Result<(), SamlError> {
    let bits = bit_length(modulus.as_bytes());
    if bits < u64::from(MIN_KEY_BITS) {
        return Err(SamlError::UnsupportedKey {
            found: format!("RSA-{bits}"),
        });
    }
    Ok(())
}

/// The number of significant bits of a big-endian unsigned integer.
fn bit_length(be: &[u8]) -> u64 {
    let Some(start) = be.iter().position(|&b| b != 0) else {
        return 0;
    };
    let rest = &be[start..];
    let bytes = u64::try_from(rest.len()).unwrap_or(u64::MAX);
    bytes
        .saturating_mul(8)
        .saturating_sub(u64::from(rest[0].leading_zeros()))
}

/// rcgen's view of our `ring` key: it builds the TBS certificate, `ring` signs it.
struct CertSigningKey<'a>(&'a RsaKeyPair);

impl PublicKeyData for CertSigningKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key().as_ref()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &PKCS_RSA_SHA256
    }
}

impl SigningKey for CertSigningKey<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let mut signature = vec![0; self.0.public().modulus_len()];
        self.0
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut signature)
            .map_err(|_| rcgen::Error::RingUnspecified)?;
        Ok(signature)
    }
}

/// A self-signed X.509 v3 certificate for `key`: subject and issuer CN [`CERT_COMMON_NAME`], valid
/// from `now` − 1 day to `now` + 10 years, a random positive 20-byte serial, critical
/// BasicConstraints (not a CA), critical KeyUsage digitalSignature, a SubjectKeyIdentifier, and
/// signed with SHA-256 with RSA.
pub(crate) fn self_signed_certificate(
    key: &RsaKeyPair,
    now: std::time::SystemTime,
) -> Result<Vec<u8>, SamlError> {
    let (not_before, not_after) = time::certificate_validity(now)?;
    let to_time =
        |secs| OffsetDateTime::from_unix_timestamp(secs).map_err(|_| SamlError::TimeOutOfRange);

    let mut serial = [0u8; 20];
    getrandom::fill(&mut serial).map_err(|e| SamlError::KeyGeneration(Box::new(e)))?;
    // Top bit clear (positive) and the next one set (no leading zero byte): exactly 20 bytes,
    // the RFC 5280 §4.1.2.2 maximum, with 158 random bits.
    serial[0] = (serial[0] & 0x7f) | 0x40;

    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CERT_COMMON_NAME);

    let mut params = CertificateParams::default();
    params.not_before = to_time(not_before)?;
    params.not_after = to_time(not_after)?;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.distinguished_name = name;
    // ExplicitNoCa writes a critical, empty BasicConstraints and a SubjectKeyIdentifier.
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];

    let cert = params
        .self_signed(&CertSigningKey(key))
        .map_err(|e| SamlError::KeyGeneration(Box::new(e)))?;
    Ok(cert.der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[0, 0]), 0);
        assert_eq!(bit_length(&[1]), 1);
        assert_eq!(bit_length(&[0, 0x80, 0]), 16);
        assert_eq!(bit_length(&[0x7f; 256]), 2047);
        assert_eq!(bit_length(&[0xff; 256]), 2048);
    }
}
