//! The IdP's signing key and self-signed certificate.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use ring::digest::{SHA256, digest};
use ring::signature::RsaKeyPair;
use zeroize::Zeroizing;

use crate::{SamlError, key, metadata, validate};

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
/// `AssumeRoleWithSAML`. `Debug` shows the entity id and the certificate fingerprint only. The
/// PKCS#8 form of the private key is held in zeroizing memory; the parsed form `ring` signs with
/// is shared between clones and is not zeroized by `ring` when dropped.
#[derive(Clone)]
pub struct SamlSigner {
    /// PKCS#8 DER, for [`private_key_pkcs8_der`](Self::private_key_pkcs8_der).
    key_pkcs8_der: Zeroizing<Vec<u8>>,
    /// The same key, parsed and checked once by `ring`, which makes every signature.
    key_pair: Arc<RsaKeyPair>,
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
        let key_pkcs8_der = key::generate_pkcs8(GENERATED_KEY_BITS)?;
        // A key we just made that `ring` refuses is our failure, not the caller's.
        let key_pair = key::load_private_key(&key_pkcs8_der).map_err(|e| match e {
            SamlError::InvalidPrivateKey(source) => SamlError::KeyGeneration(source),
            other => other,
        })?;
        let cert_der = key::self_signed_certificate(&key_pair, now)?;
        Self::assemble(key_pkcs8_der, key_pair, cert_der, entity_id)
    }

    /// Rebuilds a signer from persisted parts: the PKCS#8 DER private key (RSA, ≥ 2048 bits), the
    /// DER certificate (which must carry that key's public half) and the entity id.
    pub fn from_parts(
        private_key_pkcs8_der: &[u8],
        cert_der: &[u8],
        entity_id: &str,
    ) -> Result<Self, SamlError> {
        validate::entity_id(entity_id)?;
        let key_pair = key::load_private_key(private_key_pkcs8_der)?;
        let cert_key = key::certificate_rsa_key(cert_der).map_err(|e| match e {
            // An RSA key with a certificate for some other (or weaker) key: a mismatch.
            SamlError::UnsupportedKey { .. } => SamlError::KeyCertificateMismatch,
            other => other,
        })?;
        if !key::same_public_key(&key_pair, &cert_key) {
            return Err(SamlError::KeyCertificateMismatch);
        }
        let key_pkcs8_der = Zeroizing::new(private_key_pkcs8_der.to_vec());
        Self::assemble(key_pkcs8_der, key_pair, cert_der.to_vec(), entity_id)
    }

    fn assemble(
        key_pkcs8_der: Zeroizing<Vec<u8>>,
        key_pair: RsaKeyPair,
        cert_der: Vec<u8>,
        entity_id: &str,
    ) -> Result<Self, SamlError> {
        let mut cert_sha256 = [0u8; 32];
        cert_sha256.copy_from_slice(digest(&SHA256, &cert_der).as_ref());
        let metadata = metadata::render(entity_id, &[cert_der.as_slice()])?;
        Ok(Self {
            key_pkcs8_der,
            key_pair: Arc::new(key_pair),
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
            key::certificate_rsa_key(cert)?;
        }
        let mut certs = Vec::with_capacity(count);
        certs.push(self.cert_der.as_slice());
        certs.extend_from_slice(extra_certs_der);
        metadata::render(&self.entity_id, &certs)
    }

    pub(crate) fn key_pair(&self) -> &RsaKeyPair {
        &self.key_pair
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
