//! Independent verifiers as oracles: xmlsec1 (Debian), signxml and OneLogin python3-saml (PyPI).
//! Each must accept our signed Response and reject one-byte tampering and a foreign key. lxml's
//! exclusive canonicaliser checks that the Response is emitted in canonical form.

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
fn tampered_attribute_values_are_rejected() {
    let signed = signed_now();
    // A SAML attribute's value (RoleSessionName)...
    let good = format!(">{SESSION_NAME}<");
    let bad = good.replacen("-42", "-43", 1);
    assert_all_reject(
        &tamper(&signed.xml, &good, &bad),
        "RoleSessionName value",
        "InvalidDigest",
    );
    // ...and an XML attribute's value that no relying-party check looks at before the signature.
    let good = format!("SessionIndex=\"{ASSERTION_ID}\"");
    let bad = good.replacen("_a5", "_a6", 1);
    assert_all_reject(
        &tamper(&signed.xml, &good, &bad),
        "SessionIndex",
        "InvalidDigest",
    );
}

/// Signs `req` and checks that all three oracles accept it; returns python3-saml's output.
fn verified_by_every_oracle(req: &nitrosync_saml::AssertionRequest) -> String {
    let signed = signer().sign_response(req).expect("sign");
    let pem = cert_pem(signer());
    let x = xmlsec1_verify(&signed.xml, &pem);
    assert!(x.ok, "xmlsec1 rejected:\n{}\n{}", x.log, signed.xml);
    let s = signxml_verify(&signed.xml, &pem, &req.assertion_id);
    assert!(s.ok, "signxml rejected:\n{}\n{}", s.log, signed.xml);
    let o = onelogin_verify(&signer().metadata_xml(), &signed.base64, &req.recipient);
    assert!(o.ok, "python3-saml rejected:\n{}\n{}", o.log, signed.xml);
    o.stdout
}

#[test]
fn xml_special_characters_in_the_subject_are_signed_and_verified() {
    let mut req = request(SystemTime::now());
    req.subject = "ns1 a&b<c>d\"e'f ]]> é€𝄞 &amp;".to_owned();
    let out = verified_by_every_oracle(&req);
    // python3-saml read back exactly the subject (as Python's `json.dumps` writes it).
    assert!(
        out.contains(&format!("\"nameid\": {}", python_json_string(&req.subject))),
        "{out}"
    );
}

/// A string as Python's `json.dumps` (ensure_ascii) writes it.
fn python_json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

#[test]
fn xml_special_characters_in_the_role_path_are_signed_and_verified() {
    // IAM role paths are printable ASCII, so `&<>"'` can reach the Role attribute.
    let mut req = request(SystemTime::now());
    req.role_arn = "arn:aws:iam::123456789012:role/a&b<c>d\"e'f/SyncRole".to_owned();
    let out = verified_by_every_oracle(&req);
    assert!(
        out.contains("role/a&b<c>d\\\"e'f/SyncRole,arn:aws:iam::"),
        "{out}"
    );
}

#[test]
fn xml_special_characters_in_the_session_name_are_refused() {
    for c in ['&', '<', '>', '"', '\''] {
        let mut req = request(SystemTime::now());
        req.session_name = format!("name{c}x");
        let err = signer().sign_response(&req).unwrap_err();
        assert!(
            matches!(err, nitrosync_saml::SamlError::InvalidSessionName { .. }),
            "{c}: {err}"
        );
    }
}

#[test]
fn the_response_is_emitted_in_exclusive_canonical_form() {
    // lxml (libxml2) canonicalises the document and the digested Assertion independently; both
    // must be byte-identical to what was emitted (and so to what was digested).
    let mut req = request(SystemTime::now());
    req.subject = "x&y<z>\"'".to_owned();
    let signed = signer().sign_response(&req).expect("sign");
    let v = lxml_c14n(&signed.xml);
    assert!(v.ok, "{}", v.log);
    let (document, assertion) = v.stdout.split_once('\0').expect("two canonical forms");
    assert_eq!(document, signed.xml);
    let (start, end) = assertion_span(&signed.xml);
    let (sig_start, sig_end) = signature_span(&signed.xml);
    let digested = format!(
        "{}{}",
        &signed.xml[start..sig_start],
        &signed.xml[sig_end..end]
    );
    assert_eq!(assertion, digested);
}

fn span(xml: &str, open: &str, close: &str) -> (usize, usize) {
    let start = xml.find(open).expect(open);
    let end = xml.find(close).expect(close) + close.len();
    (start, end)
}

fn assertion_span(xml: &str) -> (usize, usize) {
    span(xml, "<saml:Assertion ", "</saml:Assertion>")
}

fn signature_span(xml: &str) -> (usize, usize) {
    span(xml, "<ds:Signature ", "</ds:Signature>")
}

#[test]
fn in_process_check_of_the_digest_and_the_signature() {
    // A cheap check without external tools (not independent of the signer's XML writer): the
    // emitted Assertion minus its Signature hashes to DigestValue, and SignedInfo, with the `ds`
    // declaration its canonical form carries, verifies under the certificate's key only.
    use base64::Engine as _;
    use x509_cert::der::Decode as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let signed = signed_now();
    let xml = &signed.xml;

    let (start, end) = assertion_span(xml);
    let (sig_start, sig_end) = signature_span(xml);
    let digested = format!("{}{}", &xml[start..sig_start], &xml[sig_end..end]);
    let digest = ring::digest::digest(&ring::digest::SHA256, digested.as_bytes());
    let (dv_start, dv_end) = span(xml, "<ds:DigestValue>", "</ds:DigestValue>");
    let digest_value =
        &xml[dv_start + "<ds:DigestValue>".len()..dv_end - "</ds:DigestValue>".len()];
    assert_eq!(b64.decode(digest_value).unwrap(), digest.as_ref());

    let (si_start, si_end) = span(xml, "<ds:SignedInfo>", "</ds:SignedInfo>");
    let signed_info = xml[si_start..si_end].replacen(
        "<ds:SignedInfo>",
        "<ds:SignedInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">",
        1,
    );
    let (sv_start, sv_end) = span(xml, "<ds:SignatureValue>", "</ds:SignatureValue>");
    let sig = b64
        .decode(&xml[sv_start + "<ds:SignatureValue>".len()..sv_end - "</ds:SignatureValue>".len()])
        .unwrap();
    let verify = |cert_der: &[u8]| {
        let cert = x509_cert::Certificate::from_der(cert_der).unwrap();
        let key = cert
            .tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes()
            .to_vec();
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, key)
            .verify(signed_info.as_bytes(), &sig)
    };
    verify(signer().cert_der()).expect("verifies with the signer's certificate");
    assert!(verify(other_signer().cert_der()).is_err());
}
