//! Signed SAML Responses for `AssumeRoleWithSAML` (DESIGN §7).

use std::fmt;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, TimeDelta, Utc};
use quick_xml::escape::escape;
use samael::attribute::{Attribute, AttributeValue};
use samael::crypto::{Crypto, CryptoProvider};
use samael::key_info::{KeyInfo, X509Data};
use samael::schema::{
    Assertion, AttributeStatement, AudienceRestriction, AuthnContext, AuthnContextClassRef,
    AuthnStatement, Conditions, Issuer, Response, Status, StatusCode, Subject, SubjectConfirmation,
    SubjectConfirmationData, SubjectNameID,
};
use samael::signature::{
    CanonicalizationMethod, DigestAlgorithm, DigestMethod, DigestValue, Reference, Signature,
    SignatureAlgorithm, SignatureMethod, SignatureValue, SignedInfo, Transform, Transforms,
};
use samael::traits::ToXml;

use crate::{SamlError, SamlSigner, time, validate};

/// The audience AWS requires (`saml:aud` is the recipient; the Audience is this fixed URN).
pub const AWS_AUDIENCE: &str = "urn:amazon:webservices";
/// The global AWS sign-in SAML endpoint (`Destination` and `Recipient`).
pub const AWS_SIGNIN_SAML: &str = "https://signin.aws.amazon.com/saml";
/// The `Role` attribute: `"<role-arn>,<saml-provider-arn>"`.
pub const ATTR_ROLE: &str = "https://aws.amazon.com/SAML/Attributes/Role";
/// The `RoleSessionName` attribute.
pub const ATTR_ROLE_SESSION_NAME: &str = "https://aws.amazon.com/SAML/Attributes/RoleSessionName";
/// The optional `SessionDuration` attribute.
pub const ATTR_SESSION_DURATION: &str = "https://aws.amazon.com/SAML/Attributes/SessionDuration";
/// `NameID` format of the subject.
pub const NAMEID_PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
/// How long the assertion is usable: `Conditions/@NotOnOrAfter` and
/// `SubjectConfirmationData/@NotOnOrAfter` are `now` plus this.
pub const VALIDITY: TimeDelta = TimeDelta::minutes(5);
/// `Conditions/@NotBefore` is `now` minus this, to absorb clock skew at AWS.
pub const NOT_BEFORE_SKEW: TimeDelta = TimeDelta::seconds(30);
/// `AssumeRoleWithSAML` accepts a base64 `SAMLAssertion` of at most this many characters.
pub const MAX_BASE64_LEN: usize = 100_000;

const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const CM_BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
const AC_UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified";
const ATTRNAME_URI: &str = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// What to assert. Ids and time come from the caller so that it controls randomness and the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionRequest {
    /// The `NameID` (persistent), which IAM exposes as `saml:sub`: 1–256 characters.
    pub subject: String,
    /// `arn:<partition>:iam::<account>:role/<path/>name`.
    pub role_arn: String,
    /// `arn:<partition>:iam::<account>:saml-provider/<name>`, same partition and account.
    pub provider_arn: String,
    /// `RoleSessionName`: 2–64 characters of `[A-Za-z0-9_+=,.@-]`.
    pub session_name: String,
    /// Optional `SessionDuration` in seconds, 900–43200.
    pub session_duration: Option<u32>,
    /// `https://signin.aws.amazon.com/saml` or `https://<region>.signin.aws.amazon.com/saml`.
    pub recipient: String,
    /// The trusted current time (truncated to whole seconds).
    pub now: SystemTime,
    /// The Response's `ID`: an `xs:ID` (`[A-Za-z_][A-Za-z0-9_.-]*`).
    pub response_id: String,
    /// The Assertion's `ID`: an `xs:ID`, different from `response_id`.
    pub assertion_id: String,
}

/// A signed Response. Both forms are bearer credentials until the assertion expires, so `Debug`
/// prints only their lengths.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedResponse {
    /// The Response document, UTF-8 XML.
    pub xml: String,
    /// Standard base64 of `xml`: the `SAMLAssertion` parameter of `AssumeRoleWithSAML`.
    pub base64: String,
}

impl fmt::Debug for SignedResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedResponse")
            .field("xml_len", &self.xml.len())
            .field("base64_len", &self.base64.len())
            .finish_non_exhaustive()
    }
}

/// The checked parts of a request.
struct Validated {
    now: DateTime<Utc>,
    not_before: DateTime<Utc>,
    not_on_or_after: DateTime<Utc>,
}

fn validate_request(req: &AssertionRequest) -> Result<Validated, SamlError> {
    validate::subject(&req.subject)?;
    let role = validate::role_arn(&req.role_arn)?;
    let provider = validate::provider_arn(&req.provider_arn)?;
    if role.partition != provider.partition {
        return Err(SamlError::ArnMismatch { what: "partitions" });
    }
    if role.account != provider.account {
        return Err(SamlError::ArnMismatch { what: "accounts" });
    }
    validate::session_name(&req.session_name)?;
    if let Some(seconds) = req.session_duration {
        validate::session_duration(seconds)?;
    }
    validate::recipient(&req.recipient, role.partition)?;
    validate::xml_id("response", &req.response_id)?;
    validate::xml_id("assertion", &req.assertion_id)?;
    if req.response_id == req.assertion_id {
        return Err(SamlError::DuplicateId);
    }
    let now = time::to_utc(req.now)?;
    Ok(Validated {
        now,
        not_before: time::offset(now, -NOT_BEFORE_SKEW)?,
        not_on_or_after: time::offset(now, VALIDITY)?,
    })
}

impl SamlSigner {
    /// Builds and signs a SAML 2.0 Response for `AssumeRoleWithSAML`.
    ///
    /// The Assertion carries an enveloped XML signature (RSA-SHA256, SHA-256 digest, exclusive
    /// c14n) placed after its `Issuer`; the Response itself is not signed and has no
    /// `InResponseTo` (the Response is IdP-initiated). All inputs are validated first.
    pub fn sign_response(&self, req: &AssertionRequest) -> Result<SignedResponse, SamlError> {
        let checked = validate_request(req)?;
        let response = self.build_response(req, &checked);
        let unsigned = ToXml::to_string(&response).map_err(|e| SamlError::Serialize {
            message: e.to_string(),
        })?;
        // xmlsec registers the `ID` attributes, finds the one `ds:Signature` template (inside the
        // Assertion), computes the digest of `#<assertion id>` and the RSA signature in place.
        let xml = Crypto::sign_xml(unsigned.as_bytes(), self.key_der()).map_err(SamlError::Sign)?;
        let base64 = STANDARD.encode(xml.as_bytes());
        if base64.len() > MAX_BASE64_LEN {
            return Err(SamlError::ResponseTooLarge { len: base64.len() });
        }
        Ok(SignedResponse { xml, base64 })
    }

    fn build_response(&self, req: &AssertionRequest, t: &Validated) -> Response {
        // samael writes element text verbatim (`BytesText::from_escaped`), so every text value
        // is escaped here. Attribute values are escaped by quick-xml itself.
        let issuer = Issuer {
            value: Some(escape(self.entity_id()).into_owned()),
            ..Issuer::default()
        };
        let mut attributes = vec![
            string_attribute(ATTR_ROLE, &format!("{},{}", req.role_arn, req.provider_arn)),
            string_attribute(ATTR_ROLE_SESSION_NAME, &req.session_name),
        ];
        if let Some(seconds) = req.session_duration {
            attributes.push(string_attribute(
                ATTR_SESSION_DURATION,
                &seconds.to_string(),
            ));
        }

        let assertion = Assertion {
            id: req.assertion_id.clone(),
            issue_instant: t.now,
            version: "2.0".to_owned(),
            issuer: issuer.clone(),
            signature: Some(self.signature_template(&req.assertion_id)),
            subject: Some(Subject {
                name_id: Some(SubjectNameID {
                    format: Some(NAMEID_PERSISTENT.to_owned()),
                    value: escape(req.subject.as_str()).into_owned(),
                }),
                subject_confirmations: Some(vec![SubjectConfirmation {
                    method: Some(CM_BEARER.to_owned()),
                    name_id: None,
                    subject_confirmation_data: Some(SubjectConfirmationData {
                        not_before: None,
                        not_on_or_after: Some(t.not_on_or_after),
                        recipient: Some(req.recipient.clone()),
                        in_response_to: None,
                        address: None,
                        content: None,
                    }),
                }]),
            }),
            conditions: Some(Conditions {
                not_before: Some(t.not_before),
                not_on_or_after: Some(t.not_on_or_after),
                audience_restrictions: Some(vec![AudienceRestriction {
                    audience: vec![AWS_AUDIENCE.to_owned()],
                }]),
                one_time_use: None,
                proxy_restriction: None,
            }),
            authn_statements: Some(vec![AuthnStatement {
                authn_instant: Some(t.now),
                session_index: Some(req.assertion_id.clone()),
                session_not_on_or_after: None,
                subject_locality: None,
                authn_context: Some(AuthnContext {
                    value: Some(AuthnContextClassRef {
                        value: Some(AC_UNSPECIFIED.to_owned()),
                    }),
                }),
            }]),
            attribute_statements: Some(vec![AttributeStatement { attributes }]),
        };

        Response {
            id: req.response_id.clone(),
            in_response_to: None,
            version: "2.0".to_owned(),
            issue_instant: t.now,
            destination: Some(req.recipient.clone()),
            consent: None,
            issuer: Some(issuer),
            signature: None,
            status: Some(Status {
                status_code: StatusCode {
                    value: Some(STATUS_SUCCESS.to_owned()),
                },
                status_message: None,
                status_detail: None,
            }),
            encrypted_assertion: None,
            assertion: Some(assertion),
        }
    }

    /// The `ds:Signature` template xmlsec fills in. Written out in full (rather than taken from
    /// `Signature::template`, which uses a SHA-1 digest) so every algorithm is visible here.
    fn signature_template(&self, assertion_id: &str) -> Signature {
        Signature {
            id: None,
            signed_info: SignedInfo {
                id: None,
                canonicalization_method: CanonicalizationMethod {
                    algorithm: EXC_C14N.to_owned(),
                },
                signature_method: SignatureMethod {
                    algorithm: SignatureAlgorithm::RsaSha256,
                    hmac_output_length: None,
                },
                reference: vec![Reference {
                    transforms: Some(Transforms {
                        transforms: vec![
                            Transform {
                                algorithm: ENVELOPED.to_owned(),
                                xpath: None,
                            },
                            Transform {
                                algorithm: EXC_C14N.to_owned(),
                                xpath: None,
                            },
                        ],
                    }),
                    digest_method: DigestMethod {
                        algorithm: DigestAlgorithm::Sha256,
                    },
                    digest_value: Some(DigestValue {
                        base64_content: Some(String::new()),
                    }),
                    uri: Some(format!("#{assertion_id}")),
                    reference_type: None,
                    id: None,
                }],
            },
            signature_value: SignatureValue {
                id: None,
                base64_content: Some(String::new()),
            },
            key_info: Some(vec![KeyInfo {
                id: None,
                x509_data: Some(X509Data {
                    certificates: vec![STANDARD.encode(self.cert_der())],
                }),
            }]),
        }
    }
}

fn string_attribute(name: &str, value: &str) -> Attribute {
    Attribute {
        friendly_name: None,
        name: Some(name.to_owned()),
        name_format: Some(ATTRNAME_URI.to_owned()),
        values: vec![AttributeValue {
            attribute_type: Some("xs:string".to_owned()),
            value: Some(escape(value).into_owned()),
        }],
    }
}
