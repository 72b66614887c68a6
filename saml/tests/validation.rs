//! Input validation: every bad input is refused before anything is signed, with a precise error.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use nitrosync_saml::{AssertionRequest, SamlError, SamlSigner};

fn sign_with(edit: impl FnOnce(&mut AssertionRequest)) -> Result<(), SamlError> {
    let mut req = request(fixed_now());
    edit(&mut req);
    signer().sign_response(&req).map(|_| ())
}

#[test]
fn session_name() {
    for bad in [
        "",
        "a",
        &"a".repeat(65),
        "has space",
        "slash/name",
        "ümlaut",
        "semi;colon",
    ] {
        let err = sign_with(|r| r.session_name = bad.to_owned()).unwrap_err();
        assert!(
            matches!(err, SamlError::InvalidSessionName { .. }),
            "{bad}: {err}"
        );
        assert!(err.is_invalid_input());
    }
    for good in ["ab", &"a".repeat(64), "x_+=,.@-Y9"] {
        sign_with(|r| r.session_name = good.to_owned()).unwrap();
    }
}

#[test]
fn session_duration() {
    for bad in [0, 899, 43_201, u32::MAX] {
        let err = sign_with(|r| r.session_duration = Some(bad)).unwrap_err();
        assert!(
            matches!(err, SamlError::InvalidSessionDuration { seconds } if seconds == bad),
            "{bad}: {err}"
        );
    }
    for good in [None, Some(900), Some(43_200)] {
        sign_with(|r| r.session_duration = good).unwrap();
    }
}

#[test]
fn role_arn() {
    for bad in [
        "",
        "SyncRole",
        "arn:aws:iam::123456789012:user/SyncRole",
        "arn:aws:iam::123456789012:saml-provider/nitrosync",
        "arn:aws:sts::123456789012:assumed-role/SyncRole/x",
        "arn:aws:iam::12345678901x:role/SyncRole",
        "arn:aws:iam:us-east-1:123456789012:role/SyncRole",
        "arn:aws:iam::123456789012:role/Sync,Role",
        "arn:aws:iam::123456789012:role/",
        "arn:aws:iam::123456789012:role/Sync Role",
    ] {
        let err = sign_with(|r| r.role_arn = bad.to_owned()).unwrap_err();
        assert!(
            matches!(err, SamlError::InvalidRoleArn { .. }),
            "{bad}: {err}"
        );
    }
}

#[test]
fn provider_arn() {
    for bad in [
        "",
        "arn:aws:iam::123456789012:role/SyncRole",
        "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com",
        "arn:aws:iam::123456789012:saml-provider/",
        "arn:aws:iam::123456789012:saml-provider/a/b",
        "arn:aws:iam::123456789012:saml-provider/a,b",
    ] {
        let err = sign_with(|r| r.provider_arn = bad.to_owned()).unwrap_err();
        assert!(
            matches!(err, SamlError::InvalidProviderArn { .. }),
            "{bad}: {err}"
        );
    }
}

#[test]
fn role_and_provider_must_share_partition_and_account() {
    let err = sign_with(|r| {
        r.provider_arn = "arn:aws:iam::210987654321:saml-provider/nitrosync".to_owned();
    })
    .unwrap_err();
    assert!(
        matches!(err, SamlError::ArnMismatch { what: "accounts" }),
        "{err}"
    );
    let err = sign_with(|r| {
        r.provider_arn = "arn:aws-cn:iam::123456789012:saml-provider/nitrosync".to_owned();
    })
    .unwrap_err();
    assert!(
        matches!(err, SamlError::ArnMismatch { what: "partitions" }),
        "{err}"
    );
}

#[test]
fn recipient() {
    for bad in [
        "",
        "https://signin.aws.amazon.com/saml/",
        "http://signin.aws.amazon.com/saml",
        "https://evil.example/saml",
        "https://signin.aws.amazon.com.evil.example/saml",
        "https://a.b/.signin.aws.amazon.com/saml",
        "https://signin.amazonaws.cn/saml", // right endpoint, wrong partition for an aws role
    ] {
        let err = sign_with(|r| r.recipient = bad.to_owned()).unwrap_err();
        assert!(
            matches!(err, SamlError::InvalidRecipient { .. }),
            "{bad}: {err}"
        );
    }
    sign_with(|r| r.recipient = "https://ap-southeast-2.signin.aws.amazon.com/saml".to_owned())
        .unwrap();
}

#[test]
fn subject() {
    for bad in [
        "",
        " lead",
        "trail ",
        "new\nline",
        "nul\0",
        "c1\u{85}control",
        "not\u{FFFF}xml",
        &"s".repeat(257),
    ] {
        let err = sign_with(|r| r.subject = bad.to_owned()).unwrap_err();
        assert!(
            matches!(err, SamlError::InvalidSubject { .. }),
            "{bad:?}: {err}"
        );
    }
    sign_with(|r| r.subject = "é".repeat(256)).unwrap();
}

#[test]
fn ids() {
    for bad in [
        "", "1abc", "-abc", ".abc", "a b", "a:b", "a#b", "a\"b", "ünicode",
    ] {
        let err = sign_with(|r| r.response_id = bad.to_owned()).unwrap_err();
        assert!(
            matches!(
                err,
                SamlError::InvalidId {
                    which: "response",
                    ..
                }
            ),
            "{bad}: {err}"
        );
        let err = sign_with(|r| r.assertion_id = bad.to_owned()).unwrap_err();
        assert!(
            matches!(
                err,
                SamlError::InvalidId {
                    which: "assertion",
                    ..
                }
            ),
            "{bad}: {err}"
        );
    }
    let err = sign_with(|r| r.assertion_id = r.response_id.clone()).unwrap_err();
    assert!(matches!(err, SamlError::DuplicateId), "{err}");
    sign_with(|r| {
        r.response_id = "R".to_owned();
        r.assertion_id = "_".to_owned();
    })
    .unwrap();
}

#[test]
fn time_before_the_epoch() {
    let err = sign_with(|r| r.now = UNIX_EPOCH - Duration::from_secs(1)).unwrap_err();
    assert!(matches!(err, SamlError::TimeOutOfRange), "{err}");
}

#[test]
fn entity_id() {
    for bad in [
        "",
        "urn:nitrosync:idp",
        "http://nitrosync.example/",
        "https://a.example/?x=1",
    ] {
        let err = SamlSigner::generate(bad, SystemTime::now()).unwrap_err();
        assert!(
            matches!(err, SamlError::InvalidEntityId { .. }),
            "{bad}: {err}"
        );
    }
}

#[test]
fn from_parts_rejects_bad_keys_and_certificates() {
    use rsa::pkcs8::EncodePrivateKey as _;
    let key = signer().private_key_pkcs8_der();
    let cert = signer().cert_der();

    let err = SamlSigner::from_parts(b"garbage", cert, ENTITY_ID).unwrap_err();
    assert!(matches!(err, SamlError::InvalidPrivateKey(_)), "{err}");

    let err = SamlSigner::from_parts(&key, b"garbage", ENTITY_ID).unwrap_err();
    assert!(matches!(err, SamlError::InvalidCertificate(_)), "{err}");

    let err = SamlSigner::from_parts(&key, other_signer().cert_der(), ENTITY_ID).unwrap_err();
    assert!(matches!(err, SamlError::KeyCertificateMismatch), "{err}");

    let weak = rsa::PrivateKey::new(&mut getrandom::SysRng, 1024).unwrap();
    let weak = weak.to_pkcs8_der().unwrap();
    let err = SamlSigner::from_parts(weak.as_bytes(), cert, ENTITY_ID).unwrap_err();
    assert!(
        matches!(&err, SamlError::UnsupportedKey { found } if found == "RSA-1024"),
        "{err}"
    );

    let ec = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    let err = SamlSigner::from_parts(ec.as_ref(), cert, ENTITY_ID).unwrap_err();
    assert!(
        matches!(&err, SamlError::UnsupportedKey { found } if found == "non-RSA key"),
        "{err}"
    );

    // A truncated key and a key with trailing bytes are not PKCS#8.
    let err = SamlSigner::from_parts(&key[..key.len() - 1], cert, ENTITY_ID).unwrap_err();
    assert!(matches!(err, SamlError::InvalidPrivateKey(_)), "{err}");
    let mut long = key.to_vec();
    long.push(0);
    let err = SamlSigner::from_parts(&long, cert, ENTITY_ID).unwrap_err();
    assert!(matches!(err, SamlError::InvalidPrivateKey(_)), "{err}");

    let err = SamlSigner::from_parts(&key, cert, "not a url").unwrap_err();
    assert!(matches!(err, SamlError::InvalidEntityId { .. }), "{err}");
}

/// An rcgen key that only claims a public key: the certificate's signature is zeros. Enough for a
/// certificate that is parsed and never verified.
struct UnsignedKey(Vec<u8>);

impl rcgen::PublicKeyData for UnsignedKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

impl rcgen::SigningKey for UnsignedKey {
    fn sign(&self, _msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        Ok(vec![0; 128])
    }
}

#[test]
fn metadata_rejects_weak_and_non_rsa_extra_certificates() {
    use rsa::pkcs1::EncodeRsaPublicKey as _;
    let weak = rsa::PrivateKey::new(&mut getrandom::SysRng, 1024).unwrap();
    let weak = UnsignedKey(weak.to_public_key().to_pkcs1_der().unwrap().into_vec());
    let params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    let weak_cert = params.self_signed(&weak).unwrap();
    let err = signer()
        .metadata_xml_with(&[weak_cert.der().as_ref()])
        .unwrap_err();
    assert!(
        matches!(&err, SamlError::UnsupportedKey { found } if found == "RSA-1024"),
        "{err}"
    );

    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let ec_cert = params.self_signed(&ec).unwrap();
    let err = signer()
        .metadata_xml_with(&[ec_cert.der().as_ref()])
        .unwrap_err();
    assert!(
        matches!(&err, SamlError::UnsupportedKey { found } if found == "non-RSA key"),
        "{err}"
    );
    assert!(err.is_invalid_input());
    // And a certificate for a non-RSA key does not match an RSA private key.
    let err = SamlSigner::from_parts(&signer().private_key_pkcs8_der(), ec_cert.der(), ENTITY_ID)
        .unwrap_err();
    assert!(matches!(err, SamlError::KeyCertificateMismatch), "{err}");
}

#[test]
fn errors_are_send_sync_and_static() {
    fn assert_traits<T: Send + Sync + 'static + std::error::Error>() {}
    assert_traits::<SamlError>();
}
