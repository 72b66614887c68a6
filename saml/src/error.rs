//! The crate's one error type.

/// The underlying error of a crypto or encoding failure (from `rsa`, `rcgen`, `ring`, `der` or the
/// operating system's RNG), boxed so that those crates' versions stay out of this crate's API.
pub type CryptoError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while making keys, metadata or signed Responses.
///
/// Variants fall in two groups. *Caller errors* (the input was not acceptable; retrying with the
/// same input fails again) are reported by [`SamlError::is_invalid_input`]. The rest are internal
/// failures of the crypto or XML layers. None of them is retryable with the same input; none
/// carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SamlError {
    /// Generating the RSA key or building the self-signed certificate failed (including the
    /// operating system's RNG failing).
    #[error("generating the SAML signing key or certificate failed")]
    KeyGeneration(#[source] CryptoError),

    /// The private key bytes given to [`SamlSigner::from_parts`](crate::SamlSigner::from_parts)
    /// are not a PKCS#8 DER private key, or are an RSA key that `ring` refuses to sign with
    /// (for example an inconsistent key, a public exponent below 65537 or a modulus over 8192 bits).
    #[error("the SAML signing key is not a usable PKCS#8 DER RSA private key")]
    InvalidPrivateKey(#[source] CryptoError),

    /// The private key is not RSA, or is shorter than 2048 bits (AWS requires RSA-2048 or larger).
    #[error("the SAML signing key must be RSA with at least 2048 bits (got {found})")]
    UnsupportedKey {
        /// What was found, e.g. `"RSA-1024"` or `"non-RSA key"`.
        found: String,
    },

    /// The certificate bytes are not a DER X.509 certificate.
    #[error("the SAML signing certificate is not a DER X.509 certificate")]
    InvalidCertificate(#[source] CryptoError),

    /// The certificate does not carry the public half of the private key.
    #[error("the SAML signing certificate does not match the private key")]
    KeyCertificateMismatch,

    /// The IdP entity id is not an acceptable `https://` URL.
    #[error("invalid SAML entity id: {reason}")]
    InvalidEntityId {
        /// Which rule was broken.
        reason: &'static str,
    },

    /// A time was before 1970 or too far in the future to represent.
    #[error("time out of range for a SAML timestamp")]
    TimeOutOfRange,

    /// The SAML subject (NameID) is empty, too long or contains unusable characters.
    #[error("invalid SAML subject: {reason}")]
    InvalidSubject {
        /// Which rule was broken.
        reason: &'static str,
    },

    /// The role ARN is not an IAM role ARN usable in the `Role` attribute.
    #[error("invalid IAM role ARN: {reason}")]
    InvalidRoleArn {
        /// Which rule was broken.
        reason: &'static str,
    },

    /// The provider ARN is not an IAM SAML provider ARN.
    #[error("invalid IAM SAML provider ARN: {reason}")]
    InvalidProviderArn {
        /// Which rule was broken.
        reason: &'static str,
    },

    /// The role and the SAML provider are in different partitions or accounts.
    #[error("the role ARN and the SAML provider ARN are in different {what}")]
    ArnMismatch {
        /// `"partitions"` or `"accounts"`.
        what: &'static str,
    },

    /// `RoleSessionName` must be 2–64 characters of `[A-Za-z0-9_+=,.@-]`.
    #[error("invalid role session name: {reason}")]
    InvalidSessionName {
        /// Which rule was broken.
        reason: &'static str,
    },

    /// `SessionDuration` must be 900–43200 seconds.
    #[error("session duration {seconds} s is outside 900..=43200")]
    InvalidSessionDuration {
        /// The rejected value.
        seconds: u32,
    },

    /// The recipient is not an AWS sign-in SAML endpoint matching the role's partition.
    #[error("invalid SAML recipient: {reason}")]
    InvalidRecipient {
        /// Which rule was broken.
        reason: &'static str,
    },

    /// A Response or Assertion id is not a valid `xs:ID`.
    #[error("invalid {which} id: {reason}")]
    InvalidId {
        /// `"response"` or `"assertion"`.
        which: &'static str,
        /// Which rule was broken.
        reason: &'static str,
    },

    /// The Response id and the Assertion id are equal; XML ids must be unique in a document.
    #[error("the response id and the assertion id must differ")]
    DuplicateId,

    /// More than 10 signing certificates were asked for in metadata (IAM's limit), or an extra
    /// certificate was unusable.
    #[error("metadata may list at most 10 signing certificates (got {count})")]
    TooManySigningKeys {
        /// How many were asked for, including the signer's own.
        count: usize,
    },

    /// The metadata document is outside IAM's 1,000–10,000,000 character range.
    #[error("SAML metadata is {len} characters; IAM accepts 1000..=10000000")]
    MetadataSize {
        /// The document's length in characters.
        len: usize,
    },

    /// The RSA signature over the Assertion's `SignedInfo` failed (`ring` reports no detail).
    #[error("signing the SAML assertion failed")]
    Sign(#[source] CryptoError),

    /// The base64 Response is longer than the 100,000 characters `AssumeRoleWithSAML` accepts.
    #[error("the base64 SAML response is {len} characters; AWS accepts at most 100000")]
    ResponseTooLarge {
        /// The base64 length.
        len: usize,
    },
}

impl SamlError {
    /// True when the caller's input was rejected (as opposed to an internal failure).
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Self::InvalidPrivateKey(_)
                | Self::UnsupportedKey { .. }
                | Self::InvalidCertificate(_)
                | Self::KeyCertificateMismatch
                | Self::InvalidEntityId { .. }
                | Self::TimeOutOfRange
                | Self::InvalidSubject { .. }
                | Self::InvalidRoleArn { .. }
                | Self::InvalidProviderArn { .. }
                | Self::ArnMismatch { .. }
                | Self::InvalidSessionName { .. }
                | Self::InvalidSessionDuration { .. }
                | Self::InvalidRecipient { .. }
                | Self::InvalidId { .. }
                | Self::DuplicateId
                | Self::TooManySigningKeys { .. }
                | Self::MetadataSize { .. }
                | Self::ResponseTooLarge { .. }
        )
    }
}
