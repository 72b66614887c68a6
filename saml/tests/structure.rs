//! The Response and the metadata, checked by parsing them (roxmltree), against DESIGN §7.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use nitrosync_saml::{AWS_AUDIENCE, SamlSigner};
use roxmltree::{Document, Node};

const NS_P: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const NS_A: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";
const NS_MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";

// fixed_now() = 2023-11-14T22:13:20Z
const NOW: &str = "2023-11-14T22:13:20";
const NOW_PLUS_5M: &str = "2023-11-14T22:18:20";
const NOW_MINUS_30S: &str = "2023-11-14T22:12:50";

fn all<'a, 'i>(doc: &'a Document<'i>, ns: &str, name: &str) -> Vec<Node<'a, 'i>> {
    doc.descendants()
        .filter(|n| {
            n.is_element() && n.tag_name().namespace() == Some(ns) && n.tag_name().name() == name
        })
        .collect()
}

fn one<'a, 'i>(doc: &'a Document<'i>, ns: &str, name: &str) -> Node<'a, 'i> {
    let found = all(doc, ns, name);
    assert_eq!(found.len(), 1, "expected exactly one {name}");
    found[0]
}

fn children<'a, 'i>(node: Node<'a, 'i>) -> Vec<Node<'a, 'i>> {
    node.children().filter(Node::is_element).collect()
}

/// Times are UTC `YYYY-MM-DDThh:mm:ssZ`, optionally with milliseconds.
fn assert_time(value: Option<&str>, expected_prefix: &str) {
    let v = value.expect("time attribute present");
    assert!(
        v == format!("{expected_prefix}Z") || v == format!("{expected_prefix}.000Z"),
        "{v} is not {expected_prefix}Z"
    );
}

fn signed_fixed() -> nitrosync_saml::SignedResponse {
    signer().sign_response(&request(fixed_now())).expect("sign")
}

#[test]
fn response_envelope() {
    let signed = signed_fixed();
    assert_eq!(
        STANDARD.decode(&signed.base64).unwrap(),
        signed.xml.as_bytes()
    );
    assert!(signed.base64.len() <= nitrosync_saml::MAX_BASE64_LEN);
    let doc = Document::parse(&signed.xml).expect("well-formed");
    let root = doc.root_element();
    assert_eq!(root.tag_name().namespace(), Some(NS_P));
    assert_eq!(root.tag_name().name(), "Response");
    assert_eq!(root.attribute("ID"), Some(RESPONSE_ID));
    assert_eq!(root.attribute("Version"), Some("2.0"));
    assert_eq!(root.attribute("Destination"), Some(RECIPIENT));
    assert_time(root.attribute("IssueInstant"), NOW);
    // No InResponseTo anywhere (IdP-initiated; an empty one fails the schema).
    assert!(
        doc.descendants()
            .all(|n| n.attribute("InResponseTo").is_none())
    );
    // Issuer, Status, Assertion, in that order; the Response itself is unsigned.
    let kids = children(root);
    let names: Vec<_> = kids.iter().map(|n| n.tag_name().name()).collect();
    assert_eq!(names, ["Issuer", "Status", "Assertion"]);
    assert_eq!(kids[0].text(), Some(ENTITY_ID));
    let status = one(&doc, NS_P, "StatusCode");
    assert_eq!(
        status.attribute("Value"),
        Some("urn:oasis:names:tc:SAML:2.0:status:Success")
    );
}

#[test]
fn signature_is_inside_the_assertion_after_its_issuer() {
    let signed = signed_fixed();
    let doc = Document::parse(&signed.xml).unwrap();
    let sig = one(&doc, NS_DS, "Signature");
    let assertion = one(&doc, NS_A, "Assertion");
    assert_eq!(sig.parent_element(), Some(assertion));
    assert_eq!(assertion.attribute("ID"), Some(ASSERTION_ID));
    let kids = children(assertion);
    let names: Vec<_> = kids.iter().map(|n| n.tag_name().name()).collect();
    assert_eq!(
        names,
        [
            "Issuer",
            "Signature",
            "Subject",
            "Conditions",
            "AuthnStatement",
            "AttributeStatement"
        ]
    );
    assert_eq!(kids[0].text(), Some(ENTITY_ID));

    let c14n = "http://www.w3.org/2001/10/xml-exc-c14n#";
    assert_eq!(
        one(&doc, NS_DS, "CanonicalizationMethod").attribute("Algorithm"),
        Some(c14n)
    );
    assert_eq!(
        one(&doc, NS_DS, "SignatureMethod").attribute("Algorithm"),
        Some("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
    );
    assert_eq!(
        one(&doc, NS_DS, "DigestMethod").attribute("Algorithm"),
        Some("http://www.w3.org/2001/04/xmlenc#sha256")
    );
    let reference = one(&doc, NS_DS, "Reference");
    assert_eq!(
        reference.attribute("URI"),
        Some(format!("#{ASSERTION_ID}").as_str())
    );
    let transforms: Vec<_> = all(&doc, NS_DS, "Transform")
        .iter()
        .map(|t| t.attribute("Algorithm").unwrap())
        .collect();
    assert_eq!(
        transforms,
        [
            "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
            c14n
        ]
    );
    // A SHA-256 digest and a 2048-bit signature.
    let digest = one(&doc, NS_DS, "DigestValue").text().unwrap();
    assert_eq!(STANDARD.decode(digest).unwrap().len(), 32);
    let value: String = one(&doc, NS_DS, "SignatureValue")
        .text()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(STANDARD.decode(value).unwrap().len(), 256);
    let cert = one(&doc, NS_DS, "X509Certificate").text().unwrap();
    assert_eq!(STANDARD.decode(cert).unwrap(), signer().cert_der());
}

#[test]
fn subject_and_conditions() {
    let signed = signed_fixed();
    let doc = Document::parse(&signed.xml).unwrap();
    let name_id = one(&doc, NS_A, "NameID");
    assert_eq!(name_id.text(), Some(SUBJECT));
    assert_eq!(
        name_id.attribute("Format"),
        Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent")
    );
    let sc = one(&doc, NS_A, "SubjectConfirmation");
    assert_eq!(
        sc.attribute("Method"),
        Some("urn:oasis:names:tc:SAML:2.0:cm:bearer")
    );
    let scd = one(&doc, NS_A, "SubjectConfirmationData");
    assert_eq!(scd.parent_element(), Some(sc));
    assert_eq!(scd.attribute("Recipient"), Some(RECIPIENT));
    assert_time(scd.attribute("NotOnOrAfter"), NOW_PLUS_5M);
    assert_eq!(
        scd.attribute("NotBefore"),
        None,
        "bearer SubjectConfirmationData has no NotBefore"
    );

    let conditions = one(&doc, NS_A, "Conditions");
    assert_time(conditions.attribute("NotBefore"), NOW_MINUS_30S);
    assert_time(conditions.attribute("NotOnOrAfter"), NOW_PLUS_5M);
    let audience = one(&doc, NS_A, "Audience");
    assert_eq!(audience.text(), Some(AWS_AUDIENCE));
    assert_eq!(
        audience.parent_element().unwrap().tag_name().name(),
        "AudienceRestriction"
    );

    let authn = one(&doc, NS_A, "AuthnStatement");
    assert_time(authn.attribute("AuthnInstant"), NOW);
    assert!(
        authn
            .attribute("SessionIndex")
            .is_some_and(|s| !s.is_empty())
    );
    assert!(one(&doc, NS_A, "AuthnContextClassRef").text().is_some());
}

fn attribute_values(doc: &Document<'_>, name: &str) -> Vec<String> {
    all(doc, NS_A, "Attribute")
        .into_iter()
        .filter(|a| a.attribute("Name") == Some(name))
        .flat_map(|a| {
            children(a)
                .into_iter()
                .map(|v| v.text().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn aws_attributes() {
    let signed = signed_fixed();
    let doc = Document::parse(&signed.xml).unwrap();
    assert_eq!(
        attribute_values(&doc, "https://aws.amazon.com/SAML/Attributes/Role"),
        [format!("{ROLE_ARN},{PROVIDER_ARN}")]
    );
    assert_eq!(
        attribute_values(
            &doc,
            "https://aws.amazon.com/SAML/Attributes/RoleSessionName"
        ),
        [SESSION_NAME]
    );
    assert_eq!(
        attribute_values(
            &doc,
            "https://aws.amazon.com/SAML/Attributes/SessionDuration"
        ),
        ["3600"]
    );

    let mut req = request(fixed_now());
    req.session_duration = None;
    let signed = signer().sign_response(&req).unwrap();
    let doc = Document::parse(&signed.xml).unwrap();
    assert!(
        attribute_values(
            &doc,
            "https://aws.amazon.com/SAML/Attributes/SessionDuration"
        )
        .is_empty()
    );
    assert_eq!(all(&doc, NS_A, "Attribute").len(), 2);
}

#[test]
fn xml_special_characters_in_the_subject_are_escaped() {
    let mut req = request(fixed_now());
    req.subject = "a&b<c>\"d'".to_owned();
    let signed = signer().sign_response(&req).unwrap();
    let doc = Document::parse(&signed.xml).expect("still well-formed");
    assert_eq!(one(&doc, NS_A, "NameID").text(), Some("a&b<c>\"d'"));
    // ...and the signature covers the value as escaped.
    assert!(xmlsec1_verify(&signed.xml, &cert_pem(signer())).ok);
}

#[test]
fn signing_is_deterministic_for_fixed_inputs() {
    // RSASSA-PKCS1-v1_5 is deterministic; with ids and time fixed, so is the whole Response.
    let a = signed_fixed();
    let b = signed_fixed();
    assert_eq!(a, b);
}

#[test]
fn metadata_document() {
    let md = signer().metadata_xml();
    assert!(
        md.chars().count() >= 1_000,
        "IAM requires at least 1000 characters"
    );
    let doc = Document::parse(&md).expect("well-formed");
    let root = doc.root_element();
    assert_eq!(root.tag_name().namespace(), Some(NS_MD));
    assert_eq!(root.tag_name().name(), "EntityDescriptor");
    assert_eq!(root.attribute("entityID"), Some(ENTITY_ID));
    let idp = one(&doc, NS_MD, "IDPSSODescriptor");
    assert_eq!(
        idp.attribute("protocolSupportEnumeration"),
        Some("urn:oasis:names:tc:SAML:2.0:protocol")
    );
    assert_eq!(idp.attribute("WantAuthnRequestsSigned"), Some("false"));
    let kd = one(&doc, NS_MD, "KeyDescriptor");
    assert_eq!(kd.attribute("use"), Some("signing"));
    let cert = one(&doc, NS_DS, "X509Certificate");
    assert_eq!(
        cert.ancestors()
            .skip(1)
            .map(|n| n.tag_name().name())
            .take(3)
            .collect::<Vec<_>>(),
        ["X509Data", "KeyInfo", "KeyDescriptor"]
    );
    assert_eq!(
        STANDARD.decode(cert.text().unwrap()).unwrap(),
        signer().cert_der()
    );
    assert_eq!(
        one(&doc, NS_MD, "NameIDFormat").text(),
        Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent")
    );
    let sso = one(&doc, NS_MD, "SingleSignOnService");
    assert_eq!(
        sso.attribute("Binding"),
        Some("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST")
    );
    assert_eq!(
        sso.attribute("Location"),
        Some(signer().sso_location().as_str())
    );
    assert_eq!(signer().sso_location(), format!("{ENTITY_ID}/sso"));
}

#[test]
fn metadata_is_read_by_python3_saml_and_is_schema_valid() {
    let v = onelogin_parse_metadata(&signer().metadata_xml());
    assert!(v.ok, "{}", v.log);
    assert!(
        v.stdout.contains(&format!("\"entityId\": \"{ENTITY_ID}\"")),
        "{}",
        v.stdout
    );
    let cert_b64 = STANDARD.encode(signer().cert_der());
    assert!(
        v.stdout.contains(&format!("\"x509cert\": \"{cert_b64}\"")),
        "{}",
        v.stdout
    );
    assert!(v.stdout.contains(&signer().sso_location()), "{}", v.stdout);
    assert!(v.stdout.contains("\"schema_valid\": true"), "{}", v.stdout);
}

#[test]
fn metadata_lists_extra_keys_for_rotation() {
    let other = other_signer().cert_der();
    let md = signer().metadata_xml_with(&[other]).expect("two keys");
    let doc = Document::parse(&md).unwrap();
    let certs: Vec<_> = all(&doc, NS_DS, "X509Certificate")
        .iter()
        .map(|c| STANDARD.decode(c.text().unwrap()).unwrap())
        .collect();
    assert_eq!(certs, [signer().cert_der(), other]);
    let v = onelogin_parse_metadata(&md);
    assert!(
        v.ok && v.stdout.contains("\"schema_valid\": true"),
        "{}",
        v.log
    );
    assert!(v.stdout.contains(&STANDARD.encode(other)), "{}", v.stdout);

    let ten = vec![other; 9];
    assert!(signer().metadata_xml_with(&ten).is_ok());
    let eleven = vec![other; 10];
    assert!(matches!(
        signer().metadata_xml_with(&eleven),
        Err(nitrosync_saml::SamlError::TooManySigningKeys { count: 11 })
    ));
    assert!(matches!(
        signer().metadata_xml_with(&[b"not a cert".as_slice()]),
        Err(nitrosync_saml::SamlError::InvalidCertificate(_))
    ));
}

#[test]
fn signer_round_trips_through_its_parts() {
    let key = signer().private_key_pkcs8_der();
    let again = SamlSigner::from_parts(&key, signer().cert_der(), ENTITY_ID).expect("from_parts");
    assert_eq!(again.cert_sha256(), signer().cert_sha256());
    assert_eq!(again.metadata_xml(), signer().metadata_xml());
    // Same key, same inputs: byte-identical Response.
    assert_eq!(
        again.sign_response(&request(fixed_now())).unwrap(),
        signed_fixed()
    );
}

#[test]
fn certificate_properties() {
    use x509_cert::der::{Decode as _, Encode as _};
    use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
    let now = fixed_now();
    let s = SamlSigner::generate(ENTITY_ID, now).unwrap();
    let cert = x509_cert::Certificate::from_der(s.cert_der()).unwrap();
    let tbs = cert.tbs_certificate();
    assert_eq!(tbs.version(), x509_cert::Version::V3);
    assert_eq!(
        tbs.subject().to_string(),
        "CN=nitrosync enclave SAML signing"
    );
    assert_eq!(tbs.issuer(), tbs.subject(), "self-issued");

    // sha256WithRSAEncryption, both outside and inside the signed part.
    let sha256_rsa = "1.2.840.113549.1.1.11";
    assert_eq!(cert.signature_algorithm().oid.to_string(), sha256_rsa);
    assert_eq!(tbs.signature().oid.to_string(), sha256_rsa);

    // An RSA-2048 key, the same one the signer uses.
    let spki = tbs.subject_public_key_info();
    assert_eq!(spki.algorithm.oid.to_string(), "1.2.840.113549.1.1.1");
    let pkcs1 = spki.subject_public_key.as_bytes().unwrap();
    let rsa_pub = rsa::pkcs1::RsaPublicKeyRef::from_der(pkcs1).unwrap();
    assert_eq!(rsa_pub.modulus.as_bytes().len(), 256);
    assert!(
        rsa_pub.modulus.as_bytes()[0] & 0x80 != 0,
        "exactly 2048 bits"
    );

    // Self-signed: the signature verifies with the certificate's own key.
    let tbs_der = tbs.to_der().unwrap();
    let sig = cert.signature().as_bytes().unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, pkcs1)
        .verify(&tbs_der, sig)
        .expect("self-signed");

    // Validity: now - 1 day .. now + 10 years (2023-11-13T22:13:20Z .. 2033-11-14T22:13:20Z).
    let validity = tbs.validity();
    assert_eq!(
        validity.not_before.to_unix_duration().as_secs(),
        1_700_000_000 - 86_400
    );
    assert_eq!(
        validity.not_after.to_unix_duration().as_secs(),
        1_700_000_000 + (3650 + 3) * 86_400
    );

    // A positive serial of 20 bytes (RFC 5280's maximum), random: two certificates differ.
    let serial = tbs.serial_number().as_bytes();
    assert_eq!(serial.len(), 20, "{serial:02x?}");
    assert!(serial[0] & 0x80 == 0, "positive");
    let again = SamlSigner::generate(ENTITY_ID, now).unwrap();
    let again = x509_cert::Certificate::from_der(again.cert_der()).unwrap();
    assert_ne!(again.tbs_certificate().serial_number().as_bytes(), serial);

    // Extensions: critical BasicConstraints (not a CA), critical KeyUsage digitalSignature only,
    // a SubjectKeyIdentifier.
    let (critical, bc) = tbs.get_extension::<BasicConstraints>().unwrap().unwrap();
    assert!(critical && !bc.ca && bc.path_len_constraint.is_none());
    let (critical, ku) = tbs.get_extension::<KeyUsage>().unwrap().unwrap();
    assert!(critical && ku.digital_signature());
    assert_eq!(
        ku.0.into_iter().collect::<Vec<_>>(),
        [x509_cert::ext::pkix::KeyUsages::DigitalSignature]
    );
    let (critical, ski) = tbs
        .get_extension::<SubjectKeyIdentifier>()
        .unwrap()
        .unwrap();
    assert!(!critical && !ski.0.as_bytes().is_empty());

    let fingerprint = ring::digest::digest(&ring::digest::SHA256, s.cert_der());
    assert_eq!(s.cert_sha256().as_slice(), fingerprint.as_ref());
}

#[test]
fn debug_never_prints_key_material() {
    let s = signer();
    let dbg = format!("{s:?}");
    assert!(dbg.contains("[REDACTED]"));
    assert!(dbg.contains(ENTITY_ID));
    let key = s.private_key_pkcs8_der();
    let hex: String = key[..32].iter().map(|b| format!("{b:02x}")).collect();
    for needle in [format!("{:?}", &key[..8]), STANDARD.encode(&key[..30]), hex] {
        assert!(!dbg.contains(&needle), "{dbg}");
    }
    // A signed Response is a bearer credential; Debug shows lengths only.
    let signed = format!("{:?}", signed_fixed());
    assert!(
        !signed.contains(SUBJECT) && !signed.contains("Assertion"),
        "{signed}"
    );
}
