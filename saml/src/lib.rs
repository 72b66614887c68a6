//! The nitrosync enclave's SAML 2.0 identity provider.
//!
//! This crate owns the IdP side of AWS `AssumeRoleWithSAML` (DESIGN §7): the RSA signing key and
//! its self-signed certificate ([`SamlSigner`]), the IdP metadata the customer registers with IAM
//! ([`SamlSigner::metadata_xml`]), and signed Responses for a tenant's SAML subject
//! ([`SamlSigner::sign_response`]).
//!
//! Signing is pure Rust and links no C XML or TLS library. The crate writes the Response itself,
//! directly in exclusive canonical form (exc-c14n), with every value escaped. It digests the
//! Assertion's bytes without its `ds:Signature` (SHA-256, enveloped-signature transform), writes
//! `ds:SignedInfo` canonically, signs it with RSASSA-PKCS1-v1_5 / SHA-256 through `ring`
//! (constant-time), and places `ds:Signature` after the Assertion's `Issuer`. Only the Assertion
//! is signed. The RSA-2048 key is generated with the `rsa` crate (used for nothing else), the
//! self-signed certificate is laid out by `rcgen` and signed by `ring`, and certificates handed
//! in are parsed with `x509-cert`. The tests check every signed Response against three
//! independent verifiers (xmlsec1, signxml, python3-saml).
//!
//! It does not own the subject derivation, the trusted clock, randomness for ids, persistence of
//! the key (KMS sealing) or the STS call: those belong to the enclave, which passes their results
//! in. The crate is sans-io: it reads no clock and opens no files or sockets.
//!
//! ```no_run
//! use std::time::SystemTime;
//! use nitrosync_saml::{AssertionRequest, SamlSigner};
//!
//! let now = SystemTime::now();
//! let signer = SamlSigner::generate("https://nitrosync.example/saml", now)?;
//! let metadata = signer.metadata_xml(); // register with iam:CreateSAMLProvider
//! let signed = signer.sign_response(&AssertionRequest {
//!     subject: "ns1-abcdefghijklmnopqrstuvwxyz234567".into(),
//!     role_arn: "arn:aws:iam::123456789012:role/SyncRole".into(),
//!     provider_arn: "arn:aws:iam::123456789012:saml-provider/nitrosync".into(),
//!     session_name: "nitrosync-dest-1".into(),
//!     session_duration: Some(3600),
//!     recipient: "https://signin.aws.amazon.com/saml".into(),
//!     now,
//!     response_id: "_r0123456789abcdef".into(),
//!     assertion_id: "_a0123456789abcdef".into(),
//! })?;
//! // signed.base64 is the SAMLAssertion parameter of AssumeRoleWithSAML.
//! # Ok::<(), nitrosync_saml::SamlError>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod key;
mod metadata;
mod response;
mod signer;
mod time;
mod validate;
mod xml;

pub use error::{CryptoError, SamlError};
pub use metadata::{MAX_SIGNING_KEYS, METADATA_LEN_RANGE};
pub use response::{
    ATTR_ROLE, ATTR_ROLE_SESSION_NAME, ATTR_SESSION_DURATION, AWS_AUDIENCE, AWS_SIGNIN_SAML,
    AssertionRequest, MAX_BASE64_LEN, NAMEID_PERSISTENT, NOT_BEFORE_SKEW, SignedResponse, VALIDITY,
};
pub use signer::{CERT_COMMON_NAME, GENERATED_KEY_BITS, MIN_KEY_BITS, SamlSigner};
