//! The IdP's signing key and self-signed certificate.

use std::fmt;
use std::time::SystemTime;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509, X509NameBuilder};
use zeroize::Zeroizing;

use crate::{SamlError, metadata, time, validate};

/// The subject (and issuer) common name of the self-signed certificate.
pub const CERT_COMMON_NAME: &str = "nitrosync enclave SAML signing";
/// The RSA modulus size [`SamlSigner::generate`] uses.
pub const GENERATED_KEY_BITS: u32 = 2048;
/// The smallest RSA modulus accepted (AWS requires RSA-2048 or larger).
pub const MIN_KEY_BITS: u32 = 2048;

/// The enclave's SAML identity provider: an RSA private key, a self-signed X.509 certificate for
/// it, and the IdP entity id.
///
/// It produces the IdP metadata ([`metadata_xml`](Self::metadata_xml)) that the customer registers
/// with IAM, and signed Responses ([`sign_response`](Self::sign_response)) for
/// `AssumeRoleWithSAML`. `Debug` shows the entity id and the certificate fingerprint only; the
/// private key is held in zeroizing memory.
#[derive(Clone)]
pub struct SamlSigner {
    /// PKCS#8 DER. xmlsec reads it from memory on every signature.
    key_pkcs8_der: Zeroizing<Vec<u8>>,
    cert_der: Vec<u8>,
    cert_sha256: [u8; 32],
    entity_id: String,
    /// The metadata document, built and size-checked once at construction.
    metadata: String,
}

impl SamlSigner {
    /// Generates an RSA-2048 key and a self-signed certificate valid from `now` − 1 day to
    /// `now` + 10 years (subject CN [`CERT_COMMON_NAME`], SHA-256 with RSA).
    ///
    /// `entity_id` must be an `https://` URL (see [`SamlError::InvalidEntityId`]).
    pub fn generate(entity_id: &str, now: SystemTime) -> Result<Self, SamlError> {
        validate::entity_id(entity_id)?;
        let rsa = Rsa::generate(GENERATED_KEY_BITS).map_err(SamlError::KeyGeneration)?;
        let key = PKey::from_rsa(rsa).map_err(SamlError::KeyGeneration)?;
        let cert = self_signed_certificate(&key, now)?;
        let key_pkcs8_der = Zeroizing::new(
            key.private_key_to_pkcs8()
                .map_err(SamlError::KeyGeneration)?,
        );
        let cert_der = cert.to_der().map_err(SamlError::KeyGeneration)?;
        Self::assemble(key_pkcs8_der, cert_der, entity_id)
    }

    /// Rebuilds a signer from persisted parts: the PKCS#8 DER private key (RSA, ≥ 2048 bits), the
    /// DER certificate (which must carry that key's public half) and the entity id.
    pub fn from_parts(
        private_key_pkcs8_der: &[u8],
        cert_der: &[u8],
        entity_id: &str,
    ) -> Result<Self, SamlError> {
        validate::entity_id(entity_id)?;
        let key = PKey::private_key_from_pkcs8(private_key_pkcs8_der)
            .map_err(SamlError::InvalidPrivateKey)?;
        check_rsa_strength(&key)?;
        let cert = X509::from_der(cert_der).map_err(SamlError::InvalidCertificate)?;
        let cert_key = cert.public_key().map_err(SamlError::InvalidCertificate)?;
        if !cert_key.public_eq(&key) {
            return Err(SamlError::KeyCertificateMismatch);
        }
        // Re-encode rather than keep the caller's bytes, so that what xmlsec later reads is
        // exactly what OpenSSL understood here.
        let key_pkcs8_der = Zeroizing::new(
            key.private_key_to_pkcs8()
                .map_err(SamlError::InvalidPrivateKey)?,
        );
        Self::assemble(key_pkcs8_der, cert_der.to_vec(), entity_id)
    }

    fn assemble(
        key_pkcs8_der: Zeroizing<Vec<u8>>,
        cert_der: Vec<u8>,
        entity_id: &str,
    ) -> Result<Self, SamlError> {
        let cert_sha256 = openssl::sha::sha256(&cert_der);
        let metadata = metadata::render(entity_id, &[cert_der.as_slice()])?;
        Ok(Self {
            key_pkcs8_der,
            cert_der,
            cert_sha256,
            entity_id: entity_id.to_owned(),
            metadata,
        })
    }

    /// The private key, PKCS#8 DER, for sealing and persisting. Zeroized when dropped.
    pub fn private_key_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        self.key_pkcs8_der.clone()
    }

    /// The self-signed certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// SHA-256 of the DER certificate (its fingerprint).
    pub fn cert_sha256(&self) -> [u8; 32] {
        self.cert_sha256
    }

    /// The IdP entity id: `Issuer` of every Response and `entityID` of the metadata.
    pub fn entity_id(&self) -> &str {
        &self.entity_id
    }

    /// The `SingleSignOnService` location advertised in the metadata: the entity id with `/sso`
    /// appended. Nothing is served there; AWS never sends AuthnRequests to an IdP.
    pub fn sso_location(&self) -> String {
        metadata::sso_location(&self.entity_id)
    }

    /// SAML 2.0 IdP metadata for IAM `CreateSAMLProvider` / `UpdateSAMLProvider`, listing this
    /// signer's certificate. Its size was checked against IAM's 1,000–10,000,000 characters when
    /// the signer was built.
    pub fn metadata_xml(&self) -> String {
        self.metadata.clone()
    }

    /// Metadata that lists this signer's certificate first, then `extra_certs_der` (for key
    /// rotation: an old or upcoming key). IAM accepts at most 10 signing certificates.
    pub fn metadata_xml_with(&self, extra_certs_der: &[&[u8]]) -> Result<String, SamlError> {
        let count = extra_certs_der.len().saturating_add(1);
        if count > metadata::MAX_SIGNING_KEYS {
            return Err(SamlError::TooManySigningKeys { count });
        }
        for cert in extra_certs_der {
            let parsed = X509::from_der(cert).map_err(SamlError::InvalidCertificate)?;
            let key = parsed.public_key().map_err(SamlError::InvalidCertificate)?;
            check_rsa_strength(&key)?;
        }
        let mut certs = Vec::with_capacity(count);
        certs.push(self.cert_der.as_slice());
        certs.extend_from_slice(extra_certs_der);
        metadata::render(&self.entity_id, &certs)
    }

    pub(crate) fn key_der(&self) -> &[u8] {
        &self.key_pkcs8_der
    }
}

impl fmt::Debug for SamlSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SamlSigner")
            .field("entity_id", &self.entity_id)
            .field("cert_sha256", &Hex(&self.cert_sha256))
            .field("private_key", &"[REDACTED]")
            .finish()
    }
}

struct Hex<'a>(&'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

fn check_rsa_strength<T: openssl::pkey::HasPublic>(key: &PKey<T>) -> Result<(), SamlError> {
    if key.id() != Id::RSA {
        return Err(SamlError::UnsupportedKey {
            found: "non-RSA key".to_owned(),
        });
    }
    let bits = key.bits();
    if bits < MIN_KEY_BITS {
        return Err(SamlError::UnsupportedKey {
            found: format!("RSA-{bits}"),
        });
    }
    Ok(())
}

fn self_signed_certificate(key: &PKey<Private>, now: SystemTime) -> Result<X509, SamlError> {
    let (not_before, not_after) = time::certificate_validity(now)?;
    let gen_err = SamlError::KeyGeneration;

    let mut name = X509NameBuilder::new().map_err(gen_err)?;
    name.append_entry_by_nid(Nid::COMMONNAME, CERT_COMMON_NAME)
        .map_err(gen_err)?;
    let name = name.build();

    let serial = {
        let mut serial = BigNum::new().map_err(gen_err)?;
        // 159 random bits, top bit clear: a positive 20-byte serial (RFC 5280 §4.1.2.2).
        serial
            .rand(159, MsbOption::MAYBE_ZERO, false)
            .map_err(gen_err)?;
        serial.to_asn1_integer().map_err(gen_err)?
    };

    let mut builder = X509::builder().map_err(gen_err)?;
    builder.set_version(2).map_err(gen_err)?;
    builder.set_serial_number(&serial).map_err(gen_err)?;
    builder.set_subject_name(&name).map_err(gen_err)?;
    builder.set_issuer_name(&name).map_err(gen_err)?;
    builder.set_pubkey(key).map_err(gen_err)?;
    let not_before = Asn1Time::from_unix(not_before).map_err(gen_err)?;
    let not_after = Asn1Time::from_unix(not_after).map_err(gen_err)?;
    builder.set_not_before(&not_before).map_err(gen_err)?;
    builder.set_not_after(&not_after).map_err(gen_err)?;

    let basic = BasicConstraints::new()
        .critical()
        .build()
        .map_err(gen_err)?;
    builder.append_extension(basic).map_err(gen_err)?;
    let usage = KeyUsage::new()
        .critical()
        .digital_signature()
        .build()
        .map_err(gen_err)?;
    builder.append_extension(usage).map_err(gen_err)?;
    let ski = SubjectKeyIdentifier::new()
        .build(&builder.x509v3_context(None, None))
        .map_err(gen_err)?;
    builder.append_extension(ski).map_err(gen_err)?;

    builder
        .sign(key, MessageDigest::sha256())
        .map_err(gen_err)?;
    Ok(builder.build())
}
