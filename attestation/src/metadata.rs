//! Does a SAML IdP metadata file name the key the attested enclave holds?
//!
//! The enclave binds the SHA-256 of its SAML signing certificate (DER) into the attestation
//! document's `user_data` ([`AttestedKeys`]), and its X25519 bundle key into `public_key`. Before
//! registering the enclave as a SAML provider in IAM, a customer checks that every signing
//! certificate the metadata lists is that attested certificate: a metadata file that also lists
//! some other key would let that key's holder sign assertions for the customer's roles.
//!
//! [`check_metadata_binding`] is pure (no I/O) and takes a [`VerifiedDocument`], so the document
//! has already passed [`crate::verify`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use der::Decode as _;
use nitrosync_shared::binding::AttestedKeys;
use ring::digest::{SHA256, digest};
use roxmltree::{Document, Node, NodeType, ParsingOptions};

use crate::VerifiedDocument;

/// Longest metadata document accepted, in bytes. The enclave's own metadata is about 2 KiB per
/// signing certificate, and IAM takes at most 10 of them.
pub const MAX_METADATA_LEN: usize = 1024 * 1024;
/// Most XML nodes parsed (a second bound on the work, after the length).
const MAX_NODES: u32 = 100_000;
/// Length of the enclave's X25519 bundle key.
pub const BUNDLE_KEY_LEN: usize = 32;

const NS_MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";
const NS_DS11: &str = "http://www.w3.org/2009/xmldsig11#";

/// What [`check_metadata_binding`] established.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetadataBinding {
    /// The metadata's `entityID`.
    pub entity_id: String,
    /// SHA-256 of the signing certificate (DER): the value the document's `user_data` attests.
    pub cert_sha256: [u8; 32],
    /// The enclave's X25519 bundle key: the document's `public_key`.
    pub bundle_key: [u8; BUNDLE_KEY_LEN],
    /// How many signing certificates the metadata lists (each the attested one or the attested
    /// next one).
    pub signing_certs: usize,
    /// SHA-256 of the next signing certificate, attested while a key rotation is under way.
    pub next_cert_sha256: Option<[u8; 32]>,
}

/// Why a metadata file is not bound by an attestation document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// The metadata is longer than [`MAX_METADATA_LEN`]; it was not parsed.
    #[error("metadata is {len} bytes, more than the {max} accepted")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// The metadata has a document type declaration. DTDs (and so entities) are refused outright:
    /// they can expand without bound, and another parser could read the document differently.
    #[error("metadata has a DOCTYPE declaration; DTDs and entities are not accepted")]
    DtdForbidden,

    /// The metadata is not well-formed XML.
    #[error("metadata is not well-formed XML: {reason}")]
    NotXml {
        /// The parser's complaint.
        reason: String,
    },

    /// The root element is not a SAML 2.0 metadata `EntityDescriptor`.
    #[error("metadata root element is {found}, not an md:EntityDescriptor ({NS_MD})")]
    NoEntityDescriptor {
        /// The root element found, `{namespace}name`.
        found: String,
    },

    /// The `EntityDescriptor` has no (or an empty) `entityID`.
    #[error("the EntityDescriptor has no entityID")]
    NoEntityId,

    /// The `EntityDescriptor` has no `IDPSSODescriptor`.
    #[error("the EntityDescriptor has no md:IDPSSODescriptor")]
    NoIdpDescriptor,

    /// The `EntityDescriptor` has more than one `IDPSSODescriptor`.
    #[error(
        "the EntityDescriptor has {count} md:IDPSSODescriptor elements; exactly one is accepted"
    )]
    MultipleIdpDescriptors {
        /// How many.
        count: usize,
    },

    /// No `KeyDescriptor` with `use="signing"` (or no `use`) lists a certificate.
    #[error("the metadata lists no signing certificate")]
    NoSigningCertificate,

    /// A signing `KeyDescriptor` has no `ds:X509Certificate`.
    #[error("signing KeyDescriptor {index} has no ds:X509Certificate")]
    KeyWithoutCertificate {
        /// Position among the signing `KeyDescriptor`s, from 1.
        index: usize,
    },

    /// A signing `KeyDescriptor` carries key material that is not a certificate, which no
    /// certificate hash can bind.
    #[error("signing KeyDescriptor {index} carries a {element}, a key no certificate hash binds")]
    UnboundKeyMaterial {
        /// Position among the signing `KeyDescriptor`s, from 1.
        index: usize,
        /// The element found, e.g. `ds:KeyValue`.
        element: String,
    },

    /// A signing certificate is not base64 of one X.509 certificate in DER.
    #[error("signing certificate {index} is unusable: {reason}")]
    BadCertificate {
        /// Position among the signing certificates, from 1.
        index: usize,
        /// What is wrong.
        reason: String,
    },

    /// The document has no `user_data`, so it binds no SAML certificate.
    #[error("the attestation document has no user_data, so it binds no SAML certificate")]
    NoUserData,

    /// The document's `user_data` is not an [`AttestedKeys`] record this build understands.
    #[error(
        "the attestation document's user_data is not a nitrosync attested-keys record: {reason}"
    )]
    BadUserData {
        /// The decoder's complaint.
        reason: String,
    },

    /// A signing certificate of the metadata is not the one the document attests.
    #[error(
        "signing certificate {index} of the metadata (sha256 {sha256}) is not bound by the \
         document, which attests sha256 {expected}"
    )]
    CertificateNotBound {
        /// Position among the signing certificates, from 1.
        index: usize,
        /// Hex SHA-256 of the offending certificate (DER).
        sha256: String,
        /// Hex SHA-256 the document attests.
        expected: String,
    },

    /// The document has no `public_key`: no bundle key is attested.
    #[error("the attestation document has no public_key (the enclave's X25519 bundle key)")]
    NoBundleKey,

    /// The document's `public_key` is not a 32-byte X25519 key.
    #[error(
        "the attestation document's public_key is {len} bytes, not a {BUNDLE_KEY_LEN}-byte X25519 key"
    )]
    BadBundleKey {
        /// Its length.
        len: usize,
    },
}

impl MetadataError {
    /// A stable, machine-readable name for the variant (`snake_case`), for logs and JSON.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "metadata_too_large",
            Self::DtdForbidden => "dtd_forbidden",
            Self::NotXml { .. } => "not_xml",
            Self::NoEntityDescriptor { .. } => "no_entity_descriptor",
            Self::NoEntityId => "no_entity_id",
            Self::NoIdpDescriptor => "no_idp_descriptor",
            Self::MultipleIdpDescriptors { .. } => "multiple_idp_descriptors",
            Self::NoSigningCertificate => "no_signing_certificate",
            Self::KeyWithoutCertificate { .. } => "key_without_certificate",
            Self::UnboundKeyMaterial { .. } => "unbound_key_material",
            Self::BadCertificate { .. } => "bad_certificate",
            Self::NoUserData => "no_user_data",
            Self::BadUserData { .. } => "bad_user_data",
            Self::CertificateNotBound { .. } => "certificate_not_bound",
            Self::NoBundleKey => "no_bundle_key",
            Self::BadBundleKey { .. } => "bad_bundle_key",
        }
    }
}

/// Checks that SAML IdP metadata names exactly the signing certificate `doc` attests.
///
/// Pure: no clock, files or network. It
/// 1. parses `metadata_xml` (at most [`MAX_METADATA_LEN`] bytes; any DOCTYPE is refused, so no
///    entity is ever expanded),
/// 2. requires the root to be an `md:EntityDescriptor` with an `entityID` and exactly one
///    `md:IDPSSODescriptor`,
/// 3. collects the certificates of every `md:KeyDescriptor` in the entity whose `use` is not
///    `encryption` (absent means both uses, so signing): each `ds:X509Certificate`,
///    whitespace removed, base64-decoded, must be one DER X.509 certificate; a signing
///    `KeyDescriptor` without a certificate, or with a bare `ds:KeyValue`,
///    `ds:RetrievalMethod` or `dsig11:DEREncodedKeyValue`, is refused,
/// 4. decodes the document's `user_data` as [`AttestedKeys`] and its `public_key` as the
///    32-byte X25519 bundle key,
/// 5. requires at least one signing certificate and every signing certificate's SHA-256 to equal
///    the attested `saml_cert_sha256`, or the attested `next_saml_cert_sha256` while a key
///    rotation is under way: an extra, unattested key is named in the error.
pub fn check_metadata_binding(
    metadata_xml: &str,
    doc: &VerifiedDocument,
) -> Result<MetadataBinding, MetadataError> {
    let (entity_id, certs) = signing_certificates(metadata_xml)?;

    let user_data = doc.user_data.as_deref().ok_or(MetadataError::NoUserData)?;
    let attested =
        AttestedKeys::from_user_data(user_data).map_err(|e| MetadataError::BadUserData {
            reason: e.to_string(),
        })?;
    let public_key = doc
        .public_key
        .as_deref()
        .ok_or(MetadataError::NoBundleKey)?;
    let bundle_key: [u8; BUNDLE_KEY_LEN] =
        public_key
            .try_into()
            .map_err(|_| MetadataError::BadBundleKey {
                len: public_key.len(),
            })?;

    if certs.is_empty() {
        return Err(MetadataError::NoSigningCertificate);
    }
    // A 32-byte next certificate hash, or none; anything else is not what an enclave attests.
    let next: Option<[u8; 32]> = match &attested.next_saml_cert_sha256 {
        None => None,
        Some(v) => Some(
            v.as_slice()
                .try_into()
                .map_err(|_| MetadataError::BadUserData {
                    reason: format!("next_saml_cert_sha256 is {} bytes, not 32", v.len()),
                })?,
        ),
    };
    for (i, der) in certs.iter().enumerate() {
        let sha256 = digest(&SHA256, der);
        if sha256.as_ref() != attested.saml_cert_sha256 && next.is_none_or(|n| sha256.as_ref() != n)
        {
            return Err(MetadataError::CertificateNotBound {
                index: i.saturating_add(1),
                sha256: hex::encode(sha256),
                expected: hex::encode(attested.saml_cert_sha256),
            });
        }
    }
    Ok(MetadataBinding {
        entity_id,
        cert_sha256: attested.saml_cert_sha256,
        bundle_key,
        signing_certs: certs.len(),
        next_cert_sha256: next,
    })
}

fn element_name(node: Node<'_, '_>) -> String {
    let name = node.tag_name();
    match name.namespace() {
        Some(ns) => format!("{{{ns}}}{}", name.name()),
        None => name.name().to_owned(),
    }
}

fn is(node: Node<'_, '_>, ns: &str, name: &str) -> bool {
    node.is_element() && node.tag_name().namespace() == Some(ns) && node.tag_name().name() == name
}

/// Parses the metadata and returns its entity id and the DER of every signing certificate.
fn signing_certificates(xml: &str) -> Result<(String, Vec<Vec<u8>>), MetadataError> {
    if xml.len() > MAX_METADATA_LEN {
        return Err(MetadataError::TooLarge {
            len: xml.len(),
            max: MAX_METADATA_LEN,
        });
    }
    // roxmltree accepts an empty DOCTYPE; refuse every one, so that no parser, here or in IAM,
    // applies a DTD's entities or attribute defaults.
    if xml.contains("<!DOCTYPE") {
        return Err(MetadataError::DtdForbidden);
    }
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
    };
    let parsed = Document::parse_with_options(xml, options).map_err(|e| match e {
        roxmltree::Error::DtdDetected => MetadataError::DtdForbidden,
        other => MetadataError::NotXml {
            reason: other.to_string(),
        },
    })?;

    let entity = parsed.root_element();
    if !is(entity, NS_MD, "EntityDescriptor") {
        return Err(MetadataError::NoEntityDescriptor {
            found: element_name(entity),
        });
    }
    let entity_id = entity
        .attribute("entityID")
        .filter(|id| !id.trim().is_empty())
        .ok_or(MetadataError::NoEntityId)?
        .to_owned();

    let idp_count = entity
        .children()
        .filter(|n| is(*n, NS_MD, "IDPSSODescriptor"))
        .count();
    match idp_count {
        0 => return Err(MetadataError::NoIdpDescriptor),
        1 => {}
        count => return Err(MetadataError::MultipleIdpDescriptors { count }),
    }

    // Every signing KeyDescriptor of the entity counts, not only the IdP role's: a key listed
    // anywhere must be the attested one.
    let mut certs = Vec::new();
    let signing = entity
        .descendants()
        .filter(|n| is(*n, NS_MD, "KeyDescriptor"))
        .filter(|n| n.attribute("use") != Some("encryption"));
    for (i, key) in signing.enumerate() {
        let index = i.saturating_add(1);
        let mut found = false;
        for node in key.descendants() {
            if is(node, NS_DS, "KeyValue")
                || is(node, NS_DS, "RetrievalMethod")
                || is(node, NS_DS11, "DEREncodedKeyValue")
            {
                let prefix = if node.tag_name().namespace() == Some(NS_DS) {
                    "ds"
                } else {
                    "dsig11"
                };
                return Err(MetadataError::UnboundKeyMaterial {
                    index,
                    element: format!("{prefix}:{}", node.tag_name().name()),
                });
            }
            if is(node, NS_DS, "X509Certificate") {
                found = true;
                let cert_index = certs.len().saturating_add(1);
                certs.push(certificate_der(node, cert_index)?);
            }
        }
        if !found {
            return Err(MetadataError::KeyWithoutCertificate { index });
        }
    }
    Ok((entity_id, certs))
}

/// The DER inside one `ds:X509Certificate`.
fn certificate_der(node: Node<'_, '_>, index: usize) -> Result<Vec<u8>, MetadataError> {
    let bad = |reason: String| MetadataError::BadCertificate { index, reason };
    let mut text = String::new();
    for child in node.children() {
        match child.node_type() {
            NodeType::Text => text.push_str(child.text().unwrap_or_default()),
            // Parsers differ on text split by comments or markup: refuse it.
            _ => return Err(bad("ds:X509Certificate contains markup or comments".into())),
        }
    }
    let compact: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '\r' | '\n'))
        .collect();
    if compact.is_empty() {
        return Err(bad("ds:X509Certificate is empty".into()));
    }
    let der = STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| bad(format!("not base64: {e}")))?;
    x509_cert::Certificate::from_der(&der)
        .map_err(|e| bad(format!("not a DER X.509 certificate: {e}")))?;
    Ok(der)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    use super::*;

    fn doc(user_data: Option<Vec<u8>>, public_key: Option<Vec<u8>>) -> VerifiedDocument {
        VerifiedDocument {
            module_id: "i-0-enc0".into(),
            timestamp: SystemTime::UNIX_EPOCH,
            digest: "SHA384".into(),
            pcrs: BTreeMap::new(),
            certificate: Vec::new(),
            public_key,
            user_data,
            nonce: None,
            not_after: SystemTime::UNIX_EPOCH,
            debug: false,
        }
    }

    fn attested(sha: [u8; 32]) -> VerifiedDocument {
        let keys = AttestedKeys {
            format: nitrosync_shared::binding::ATTESTED_KEYS_FORMAT,
            saml_cert_sha256: sha,
            identity: None,
            next_saml_cert_sha256: None,
        };
        doc(Some(keys.to_user_data()), Some(vec![7; 32]))
    }

    /// The root certificate shipped in `data/`: any DER certificate will do.
    fn cert_der() -> Vec<u8> {
        crate::TrustRoot::aws_nitro_g1().der().to_vec()
    }

    fn metadata(key_descriptors: &str) -> String {
        format!(
            "<md:EntityDescriptor xmlns:md=\"{NS_MD}\" xmlns:ds=\"{NS_DS}\" \
             entityID=\"https://idp.example\"><md:IDPSSODescriptor \
             protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">\
             {key_descriptors}</md:IDPSSODescriptor></md:EntityDescriptor>"
        )
    }

    fn key(use_attr: &str, cert_b64: &str) -> String {
        format!(
            "<md:KeyDescriptor {use_attr}><ds:KeyInfo><ds:X509Data><ds:X509Certificate>\
             {cert_b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
        )
    }

    fn sha(der: &[u8]) -> [u8; 32] {
        digest(&SHA256, der).as_ref().try_into().unwrap()
    }

    #[test]
    fn absent_use_is_signing_and_encryption_keys_are_ignored() {
        let der = cert_der();
        let b64 = STANDARD.encode(&der);
        // Wrapped at 64 columns with indentation, as many tools write it.
        let wrapped: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let wrapped = format!("\n   {}\n", wrapped.join("\n   "));
        let xml = metadata(&format!(
            "{}{}",
            key("", &wrapped),
            key("use=\"encryption\"", "bm90IGEgY2VydA==")
        ));
        let b = check_metadata_binding(&xml, &attested(sha(&der))).unwrap();
        assert_eq!(b.entity_id, "https://idp.example");
        assert_eq!(b.signing_certs, 1);
        assert_eq!(b.bundle_key, [7; 32]);
    }

    #[test]
    fn structural_errors() {
        let d = attested([0; 32]);
        let check = |xml: &str| check_metadata_binding(xml, &d).unwrap_err();
        assert_eq!(check(&metadata("")), MetadataError::NoSigningCertificate);
        assert!(matches!(
            check(&metadata(&key("use=\"signing\"", "!!!"))),
            MetadataError::BadCertificate { index: 1, .. }
        ));
        assert!(matches!(
            check(&metadata(&key("", "bm90IGEgY2VydA=="))),
            MetadataError::BadCertificate { index: 1, .. }
        ));
        let b64 = STANDARD.encode(cert_der());
        let (head, tail) = b64.split_at(10);
        assert!(matches!(
            check(&metadata(&key("", &format!("{head}<!-- x -->{tail}")))),
            MetadataError::BadCertificate { .. }
        ));
        assert_eq!(
            check(&metadata(
                "<md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:KeyName>k</ds:KeyName>\
                 </ds:KeyInfo></md:KeyDescriptor>"
            )),
            MetadataError::KeyWithoutCertificate { index: 1 }
        );
        assert!(matches!(
            check(&metadata(&format!(
                "<md:KeyDescriptor><ds:KeyInfo><ds:KeyValue/><ds:X509Data>\
                 <ds:X509Certificate>{b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>\
                 </md:KeyDescriptor>"
            ))),
            MetadataError::UnboundKeyMaterial { element, .. } if element == "ds:KeyValue"
        ));
        let two_idps = metadata("").replace(
            "</md:EntityDescriptor>",
            "<md:IDPSSODescriptor/></md:EntityDescriptor>",
        );
        assert_eq!(
            check(&two_idps),
            MetadataError::MultipleIdpDescriptors { count: 2 }
        );
        assert_eq!(
            check(&metadata("").replace("entityID=\"https://idp.example\"", "")),
            MetadataError::NoEntityId
        );
        assert_eq!(
            check(&format!(
                "<md:EntityDescriptor xmlns:md=\"{NS_MD}\" entityID=\"x\"/>"
            )),
            MetadataError::NoIdpDescriptor
        );
        assert!(matches!(
            check("<EntityDescriptor entityID=\"x\"/>"),
            MetadataError::NoEntityDescriptor { found } if found == "EntityDescriptor"
        ));
        let huge = " ".repeat(MAX_METADATA_LEN + 1);
        assert!(matches!(check(&huge), MetadataError::TooLarge { .. }));
    }

    #[test]
    fn bundle_key_must_be_32_bytes() {
        let der = cert_der();
        let xml = metadata(&key("", &STANDARD.encode(&der)));
        let mut d = attested(sha(&der));
        d.public_key = Some(vec![1; 33]);
        assert_eq!(
            check_metadata_binding(&xml, &d),
            Err(MetadataError::BadBundleKey { len: 33 })
        );
        d.public_key = None;
        assert_eq!(
            check_metadata_binding(&xml, &d),
            Err(MetadataError::NoBundleKey)
        );
    }
}
