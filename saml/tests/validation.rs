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
    use openssl::pkey::PKey;
    let key = signer().private_key_pkcs8_der();
    let cert = signer().cert_der();

    let err = SamlSigner::from_parts(b"garbage", cert, ENTITY_ID).unwrap_err();
    assert!(matches!(err, SamlError::InvalidPrivateKey(_)), "{err}");

    let err = SamlSigner::from_parts(&key, b"garbage", ENTITY_ID).unwrap_err();
    assert!(matches!(err, SamlError::InvalidCertificate(_)), "{err}");

    let err = SamlSigner::from_parts(&key, other_signer().cert_der(), ENTITY_ID).unwrap_err();
    assert!(matches!(err, SamlError::KeyCertificateMismatch), "{err}");

    let weak = PKey::from_rsa(openssl::rsa::Rsa::generate(1024).unwrap()).unwrap();
    let err =
        SamlSigner::from_parts(&weak.private_key_to_pkcs8().unwrap(), cert, ENTITY_ID).unwrap_err();
    assert!(
        matches!(&err, SamlError::UnsupportedKey { found } if found == "RSA-1024"),
        "{err}"
    );

    let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
    let ec = PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap()).unwrap();
    let err =
        SamlSigner::from_parts(&ec.private_key_to_pkcs8().unwrap(), cert, ENTITY_ID).unwrap_err();
    assert!(
        matches!(&err, SamlError::UnsupportedKey { found } if found == "non-RSA key"),
        "{err}"
    );

    let err = SamlSigner::from_parts(&key, cert, "not a url").unwrap_err();
    assert!(matches!(err, SamlError::InvalidEntityId { .. }), "{err}");
}

#[test]
fn errors_are_send_sync_and_static() {
    fn assert_traits<T: Send + Sync + 'static + std::error::Error>() {}
    assert_traits::<SamlError>();
}
