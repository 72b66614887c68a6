//! Independent verifiers as oracles: xmlsec1 (Debian), signxml and OneLogin python3-saml (PyPI).
//! Each must accept our signed Response and reject one-byte tampering and a foreign key.

mod common;

use std::time::SystemTime;

use common::*;

fn signed_now() -> nitrosync_saml::SignedResponse {
    signer()
        .sign_response(&request(SystemTime::now()))
        .expect("sign")
}

#[test]
fn xmlsec1_verifies_the_assertion_signature() {
    let signed = signed_now();
    let v = xmlsec1_verify(&signed.xml, &cert_pem(signer()));
    assert!(v.ok, "xmlsec1 rejected a good response:\n{}", v.log);
    assert!(
        v.log.contains("SignedInfo References (ok/all): 1/1"),
        "{}",
        v.log
    );
}

#[test]
fn signxml_strict_returns_the_signed_assertion() {
    let signed = signed_now();
    let v = signxml_verify(&signed.xml, &cert_pem(signer()), ASSERTION_ID);
    assert!(v.ok, "signxml rejected a good response:\n{}", v.log);
    assert!(
        v.stdout
            .starts_with("OK {urn:oasis:names:tc:SAML:2.0:assertion}Assertion")
    );
}

#[test]
fn onelogin_strict_accepts_as_aws_would() {
    let signed = signed_now();
    let v = onelogin_verify(&signer().metadata_xml(), &signed.base64, RECIPIENT);
    assert!(v.ok, "python3-saml rejected a good response:\n{}", v.log);
    // What AWS would read out of it.
    assert!(
        v.stdout.contains(&format!("\"nameid\": \"{SUBJECT}\"")),
        "{}",
        v.stdout
    );
    assert!(
        v.stdout
            .contains("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"),
        "{}",
        v.stdout
    );
    assert!(
        v.stdout.contains(&format!("{ROLE_ARN},{PROVIDER_ARN}")),
        "{}",
        v.stdout
    );
    assert!(v.stdout.contains(SESSION_NAME), "{}", v.stdout);
    assert!(v.stdout.contains("\"3600\""), "{}", v.stdout);
}

#[test]
fn onelogin_accepts_a_regional_endpoint() {
    let recipient = "https://eu-west-1.signin.aws.amazon.com/saml";
    let mut req = request(SystemTime::now());
    req.recipient = recipient.to_owned();
    req.session_duration = None;
    let signed = signer().sign_response(&req).expect("sign");
    let v = onelogin_verify(&signer().metadata_xml(), &signed.base64, recipient);
    assert!(
        v.ok,
        "python3-saml rejected a regional response:\n{}",
        v.log
    );
    assert!(!v.stdout.contains("SessionDuration"), "{}", v.stdout);
}

#[test]
fn onelogin_rejects_an_expired_response() {
    // Signed 10 minutes ago: past NotOnOrAfter (5 min) even with python3-saml's 300 s drift.
    let then = SystemTime::now() - std::time::Duration::from_secs(20 * 60);
    let signed = signer().sign_response(&request(then)).expect("sign");
    let v = onelogin_verify(&signer().metadata_xml(), &signed.base64, RECIPIENT);
    assert!(
        !v.ok,
        "python3-saml accepted an expired response:\n{}",
        v.log
    );
}

#[test]
fn wrong_certificate_is_rejected_by_every_oracle() {
    let signed = signed_now();
    let other = cert_pem(other_signer());
    assert!(!xmlsec1_verify(&signed.xml, &other).ok);
    assert!(!signxml_verify(&signed.xml, &other, ASSERTION_ID).ok);
    let v = onelogin_verify(&other_signer().metadata_xml(), &signed.base64, RECIPIENT);
    assert!(!v.ok, "python3-saml accepted a foreign key:\n{}", v.log);
}

/// Checks that a tampered document fails all three verifiers, for the expected reason
/// (`signxml_error` is the signxml exception name: a digest or a signature mismatch).
fn assert_all_reject(tampered: &str, what: &str, signxml_error: &str) {
    let pem = cert_pem(signer());
    let x = xmlsec1_verify(tampered, &pem);
    assert!(!x.ok, "xmlsec1 accepted tampered {what}:\n{}", x.log);
    assert!(
        x.log.contains("\nFAIL\n"),
        "xmlsec1 failed for another reason:\n{}",
        x.log
    );
    let s = signxml_verify(tampered, &pem, ASSERTION_ID);
    assert!(!s.ok, "signxml accepted tampered {what}:\n{}", s.log);
    assert!(
        s.log.contains(signxml_error),
        "signxml failed for another reason:\n{}",
        s.log
    );
    let b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(tampered)
    };
    let o = onelogin_verify(&signer().metadata_xml(), &b64, RECIPIENT);
    assert!(!o.ok, "python3-saml accepted tampered {what}:\n{}", o.log);
    assert!(
        o.log.contains("Signature validation failed"),
        "python3-saml: {}",
        o.log
    );
}

#[test]
fn one_byte_change_in_name_id_is_rejected() {
    let signed = signed_now();
    let good = format!(">{SUBJECT}</");
    let bad = good.replacen("ns1-a", "ns1-b", 1);
    assert_all_reject(&tamper(&signed.xml, &good, &bad), "NameID", "InvalidDigest");
}

#[test]
fn one_byte_change_in_role_attribute_is_rejected() {
    let signed = signed_now();
    let good = format!(">{ROLE_ARN},");
    let bad = good.replacen("123456789012", "123456789013", 1);
    assert_all_reject(
        &tamper(&signed.xml, &good, &bad),
        "Role attribute",
        "InvalidDigest",
    );
}

#[test]
fn tampered_signature_value_is_rejected() {
    let signed = signed_now();
    let start = signed
        .xml
        .find("<ds:SignatureValue>")
        .expect("SignatureValue")
        + 19;
    let mut bytes = signed.xml.into_bytes();
    // Flip one base64 character of the first (full) 4-character group; still valid base64.
    let i = start + 1;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).expect("utf8");
    assert_all_reject(&tampered, "SignatureValue", "InvalidSignature");
}

#[test]
fn tampered_destination_is_caught_by_onelogin() {
    // The Response envelope is not signed (only the Assertion is), so xmlsec1 and signxml still
    // verify the Assertion; the relying party must check Destination/Recipient itself.
    let signed = signed_now();
    let tampered = tamper(
        &signed.xml,
        "Destination=\"https://signin.aws.amazon.com/saml\"",
        "Destination=\"https://signin.aws.amazon.com/samm\"",
    );
    assert!(xmlsec1_verify(&tampered, &cert_pem(signer())).ok);
    let b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&tampered)
    };
    let o = onelogin_verify(&signer().metadata_xml(), &b64, RECIPIENT);
    assert!(
        !o.ok,
        "python3-saml accepted a wrong Destination:\n{}",
        o.log
    );
}

#[test]
fn samael_verifies_its_own_signature() {
    // A fourth, in-process check through the same library (not independent, but cheap).
    use samael::crypto::{CertificateDer, Crypto, CryptoProvider};
    let signed = signed_now();
    let cert = CertificateDer::from(signer().cert_der().to_vec());
    Crypto::verify_signed_xml(signed.xml.as_bytes(), &cert, Some("ID")).expect("samael verifies");
    let other = CertificateDer::from(other_signer().cert_der().to_vec());
    assert!(Crypto::verify_signed_xml(signed.xml.as_bytes(), &other, Some("ID")).is_err());
}
