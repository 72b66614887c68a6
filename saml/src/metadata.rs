//! SAML 2.0 IdP metadata, written by hand.
//!
//! The document is small and fixed, so it is written as text. It is not signed (IAM takes it
//! from the account owner over an authenticated API), so it need not be canonical; its values
//! are escaped all the same.

use crate::SamlError;
use crate::xml::escape_plain;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// IAM accepts at most 10 signing certificates per SAML provider.
pub const MAX_SIGNING_KEYS: usize = 10;
/// IAM's bounds on the metadata document, in characters.
pub const METADATA_LEN_RANGE: std::ops::RangeInclusive<usize> = 1_000..=10_000_000;

const NS_MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";
const PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const NAMEID_PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

/// The `SingleSignOnService` location derived from an entity id.
pub(crate) fn sso_location(entity_id: &str) -> String {
    format!("{}/sso", entity_id.trim_end_matches('/'))
}

/// Renders `EntityDescriptor/IDPSSODescriptor` with one signing `KeyDescriptor` per certificate.
pub(crate) fn render(entity_id: &str, certs_der: &[&[u8]]) -> Result<String, SamlError> {
    let entity = escape_plain(entity_id);
    let location = escape_plain(&sso_location(entity_id));
    let mut xml = String::with_capacity(1_024 + certs_der.len() * 1_600);
    xml.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&format!(
        "<md:EntityDescriptor xmlns:md=\"{NS_MD}\" xmlns:ds=\"{NS_DS}\" entityID=\"{entity}\">\n"
    ));
    xml.push_str(&format!(
        "  <md:IDPSSODescriptor WantAuthnRequestsSigned=\"false\" \
         protocolSupportEnumeration=\"{PROTOCOL}\">\n"
    ));
    for cert in certs_der {
        xml.push_str(&format!(
            "    <md:KeyDescriptor use=\"signing\">\n      <ds:KeyInfo>\n        <ds:X509Data>\n          \
             <ds:X509Certificate>{}</ds:X509Certificate>\n        </ds:X509Data>\n      \
             </ds:KeyInfo>\n    </md:KeyDescriptor>\n",
            STANDARD.encode(cert)
        ));
    }
    xml.push_str(&format!(
        "    <md:NameIDFormat>{NAMEID_PERSISTENT}</md:NameIDFormat>\n"
    ));
    xml.push_str(&format!(
        "    <md:SingleSignOnService Binding=\"{BINDING_POST}\" Location=\"{location}\"/>\n"
    ));
    xml.push_str("  </md:IDPSSODescriptor>\n</md:EntityDescriptor>\n");

    let len = xml.chars().count();
    if !METADATA_LEN_RANGE.contains(&len) {
        return Err(SamlError::MetadataSize { len });
    }
    Ok(xml)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_small_is_rejected() {
        // A tiny "certificate" makes the document shorter than IAM's minimum.
        assert!(matches!(
            render("https://idp.example", &[b"x".as_slice()]),
            Err(SamlError::MetadataSize { .. })
        ));
    }

    #[test]
    fn sso_location_is_derived() {
        assert_eq!(
            sso_location("https://a.example/idp/"),
            "https://a.example/idp/sso"
        );
        assert_eq!(sso_location("https://a.example"), "https://a.example/sso");
    }
}
