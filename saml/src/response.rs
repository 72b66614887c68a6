//! Signed SAML Responses for `AssumeRoleWithSAML` (DESIGN §7).

use std::fmt;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Datelike as _, TimeDelta, Utc};
use ring::digest::{SHA256, digest};
use ring::rand::SystemRandom;
use ring::signature::RSA_PKCS1_SHA256;

use crate::xml::Writer;
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
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const DIGEST_SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const NS_SAMLP: (&str, &str) = ("samlp", "urn:oasis:names:tc:SAML:2.0:protocol");
const NS_SAML: (&str, &str) = ("saml", "urn:oasis:names:tc:SAML:2.0:assertion");
const NS_DS: (&str, &str) = ("ds", "http://www.w3.org/2000/09/xmldsig#");

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

/// The checked parts of a request, with its times already as `xs:dateTime` strings.
struct Validated {
    now: String,
    not_before: String,
    not_on_or_after: String,
}

/// `YYYY-MM-DDThh:mm:ssZ`. Years past 9999 do not fit `xs:dateTime`'s four digits without a sign.
fn xs_date_time(t: DateTime<Utc>) -> Result<String, SamlError> {
    if t.year() > 9999 {
        return Err(SamlError::TimeOutOfRange);
    }
    Ok(t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
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
        now: xs_date_time(now)?,
        not_before: xs_date_time(time::offset(now, -NOT_BEFORE_SKEW)?)?,
        not_on_or_after: xs_date_time(time::offset(now, VALIDITY)?)?,
    })
}

impl SamlSigner {
    /// Builds and signs a SAML 2.0 Response for `AssumeRoleWithSAML`.
    ///
    /// The Assertion carries an enveloped XML signature (RSA-SHA256, SHA-256 digest, exclusive
    /// c14n) placed after its `Issuer`; the Response itself is not signed and has no
    /// `InResponseTo` (the Response is IdP-initiated). All inputs are validated first, and every
    /// value is escaped.
    ///
    /// The document is written directly in exclusive canonical form, so the bytes that are
    /// digested are the bytes of the Assertion as emitted, minus its `ds:Signature`.
    pub fn sign_response(&self, req: &AssertionRequest) -> Result<SignedResponse, SamlError> {
        let t = validate_request(req)?;

        // The Assertion, split around the place of its Signature (after its Issuer). Standalone,
        // `head + tail` is its canonical form after the enveloped-signature transform: it
        // declares the one namespace it uses itself.
        let mut head = Writer::with_capacity(512);
        head.open(
            "saml:Assertion",
            Some(NS_SAML),
            &[
                ("ID", &req.assertion_id),
                ("IssueInstant", &t.now),
                ("Version", "2.0"),
            ],
        );
        head.leaf("saml:Issuer", None, &[], self.entity_id());
        let tail = assertion_tail(req, &t);

        let mut digested = String::with_capacity(head.as_str().len() + tail.len());
        digested.push_str(head.as_str());
        digested.push_str(&tail);
        let digest_value = STANDARD.encode(digest(&SHA256, digested.as_bytes()));

        // SignedInfo is canonicalised as its own apex, so there it declares `ds` itself; inside
        // the document `ds:Signature` declares it and SignedInfo inherits it.
        let signed_info = signed_info(&req.assertion_id, &digest_value, true);
        let key = self.key_pair();
        let mut signature = vec![0; key.public().modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            signed_info.as_bytes(),
            &mut signature,
        )
        .map_err(|e| SamlError::Sign(Box::new(e)))?;

        let mut doc = Writer::with_capacity(4_096 + tail.len());
        doc.open(
            "samlp:Response",
            Some(NS_SAMLP),
            &[
                ("Destination", &req.recipient),
                ("ID", &req.response_id),
                ("IssueInstant", &t.now),
                ("Version", "2.0"),
            ],
        );
        doc.leaf("saml:Issuer", Some(NS_SAML), &[], self.entity_id());
        doc.open("samlp:Status", None, &[]);
        doc.leaf("samlp:StatusCode", None, &[("Value", STATUS_SUCCESS)], "");
        doc.close("samlp:Status");
        doc.raw(head.as_str());
        doc.open("ds:Signature", Some(NS_DS), &[]);
        doc.raw(&signed_info_in_place(&req.assertion_id, &digest_value));
        doc.leaf("ds:SignatureValue", None, &[], &STANDARD.encode(&signature));
        doc.open("ds:KeyInfo", None, &[]);
        doc.open("ds:X509Data", None, &[]);
        doc.leaf(
            "ds:X509Certificate",
            None,
            &[],
            &STANDARD.encode(self.cert_der()),
        );
        doc.close("ds:X509Data");
        doc.close("ds:KeyInfo");
        doc.close("ds:Signature");
        doc.raw(&tail);
        doc.close("samlp:Response");

        let xml = doc.into_string();
        let base64 = STANDARD.encode(xml.as_bytes());
        if base64.len() > MAX_BASE64_LEN {
            return Err(SamlError::ResponseTooLarge { len: base64.len() });
        }
        Ok(SignedResponse { xml, base64 })
    }
}

/// Everything in the Assertion after its Signature, up to and including `</saml:Assertion>`.
fn assertion_tail(req: &AssertionRequest, t: &Validated) -> String {
    let mut w = Writer::with_capacity(2_048);
    w.open("saml:Subject", None, &[]);
    w.leaf(
        "saml:NameID",
        None,
        &[("Format", NAMEID_PERSISTENT)],
        &req.subject,
    );
    w.open("saml:SubjectConfirmation", None, &[("Method", CM_BEARER)]);
    w.leaf(
        "saml:SubjectConfirmationData",
        None,
        &[
            ("NotOnOrAfter", &t.not_on_or_after),
            ("Recipient", &req.recipient),
        ],
        "",
    );
    w.close("saml:SubjectConfirmation");
    w.close("saml:Subject");

    w.open(
        "saml:Conditions",
        None,
        &[
            ("NotBefore", &t.not_before),
            ("NotOnOrAfter", &t.not_on_or_after),
        ],
    );
    w.open("saml:AudienceRestriction", None, &[]);
    w.leaf("saml:Audience", None, &[], AWS_AUDIENCE);
    w.close("saml:AudienceRestriction");
    w.close("saml:Conditions");

    w.open(
        "saml:AuthnStatement",
        None,
        &[
            ("AuthnInstant", &t.now),
            ("SessionIndex", &req.assertion_id),
        ],
    );
    w.open("saml:AuthnContext", None, &[]);
    w.leaf("saml:AuthnContextClassRef", None, &[], AC_UNSPECIFIED);
    w.close("saml:AuthnContext");
    w.close("saml:AuthnStatement");

    w.open("saml:AttributeStatement", None, &[]);
    let role = format!("{},{}", req.role_arn, req.provider_arn);
    string_attribute(&mut w, ATTR_ROLE, &role);
    string_attribute(&mut w, ATTR_ROLE_SESSION_NAME, &req.session_name);
    if let Some(seconds) = req.session_duration {
        string_attribute(&mut w, ATTR_SESSION_DURATION, &seconds.to_string());
    }
    w.close("saml:AttributeStatement");
    w.close("saml:Assertion");
    w.into_string()
}

/// One `saml:Attribute` with one plain-text `saml:AttributeValue`.
///
/// The value carries no `xsi:type="xs:string"`: that QName sits in an attribute *value*, so
/// exclusive c14n would not count `xs` as visibly used and would leave its declaration out of the
/// signed bytes. AWS reads the text either way.
fn string_attribute(w: &mut Writer, name: &str, value: &str) {
    w.open(
        "saml:Attribute",
        None,
        &[("Name", name), ("NameFormat", ATTRNAME_URI)],
    );
    w.leaf("saml:AttributeValue", None, &[], value);
    w.close("saml:Attribute");
}

/// Canonical `ds:SignedInfo`; `declare_ds` when it is the apex (the bytes that are signed).
fn signed_info(assertion_id: &str, digest_value: &str, declare_ds: bool) -> String {
    let mut w = Writer::with_capacity(1_024);
    w.open("ds:SignedInfo", declare_ds.then_some(NS_DS), &[]);
    w.leaf(
        "ds:CanonicalizationMethod",
        None,
        &[("Algorithm", EXC_C14N)],
        "",
    );
    w.leaf("ds:SignatureMethod", None, &[("Algorithm", RSA_SHA256)], "");
    let uri = format!("#{assertion_id}");
    w.open("ds:Reference", None, &[("URI", &uri)]);
    w.open("ds:Transforms", None, &[]);
    w.leaf("ds:Transform", None, &[("Algorithm", ENVELOPED)], "");
    w.leaf("ds:Transform", None, &[("Algorithm", EXC_C14N)], "");
    w.close("ds:Transforms");
    w.leaf("ds:DigestMethod", None, &[("Algorithm", DIGEST_SHA256)], "");
    w.leaf("ds:DigestValue", None, &[], digest_value);
    w.close("ds:Reference");
    w.close("ds:SignedInfo");
    w.into_string()
}

/// `ds:SignedInfo` as it sits inside `ds:Signature`, which declares `ds`.
fn signed_info_in_place(assertion_id: &str, digest_value: &str) -> String {
    signed_info(assertion_id, digest_value, false)
}
