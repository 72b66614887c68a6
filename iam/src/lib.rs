//! `nitrosync-iam`: the customer-side IAM for one destination, as code, and `apply`.
//!
//! The model's set-up guide (1Password's "Sync secrets to AWS Secrets Manager") has the customer
//! click through the console: create a SAML identity provider from the worker's metadata, write a
//! policy, create a role that trusts the provider. This module writes the same three resources
//! for one [`DestinationConfig`], in three forms built from the same two policy documents
//! ([`policy_documents`]):
//!
//! - [`cloudformation`]: a JSON CloudFormation template (`AWS::IAM::SAMLProvider`,
//!   `AWS::IAM::Role` with an inline policy);
//! - [`terraform`]: a Terraform module in Terraform's JSON syntax (`aws_iam_saml_provider`,
//!   `aws_iam_role`, `aws_iam_role_policy`, named `nitrosync_<destination id>`), with no provider
//!   or `terraform` block, so that the files of several destinations can sit in the customer's
//!   root module;
//! - [`json()`]: the documents `nitrosync iam apply` sends through the IAM API ([`apply`]).
//!
//! Every failure is an [`IamError`].
//!
//! [`kms`] writes, in the same three forms, the operator's KMS key that seals the enclave's
//! identity: a key policy that releases data keys only to attested enclaves of released images.
//!
//! # What the role may do
//!
//! Exactly what the enclave's sync engine calls, on this destination's secret only:
//!
//! | path | calls | resource |
//! |---|---|---|
//! | write | `DescribeSecret`; `CreateSecret` (+ the `TagResource` that tags on create implies), or `PutSecretValue` + `TagResource` | `secret:<name>-??????` |
//! | test connection | `CreateSecret` (+ `TagResource`), `DeleteSecret` with `ForceDeleteWithoutRecovery` | `secret:<name>-nitrosync-test-*` |
//! | delete (only when the destination's `delete_policy` is `Delete`) | `RemoveRegionsFromReplication`, `DeleteSecret` | `secret:<name>-??????` |
//! | customer managed KMS key (only when `kms_key_id` is set) | `kms:GenerateDataKey`, `kms:Decrypt` via Secrets Manager | the key |
//!
//! Writes, tag updates and deletes need the secret to carry `nitrosync:managed-by = nitrosync` and
//! `nitrosync:destination = <id>`; creates must set both tags; tag updates may not change them.
//! `UpdateSecret` and `kms:Encrypt` are not granted: the worker never calls `UpdateSecret`, and
//! Secrets Manager encrypts with `GenerateDataKey`, not `Encrypt`.
//!
//! The role's trust policy lets only the provider assume it, only for the destination's SAML
//! subject (`saml:sub`, DESIGN §3), persistent name ids and the AWS sign-in audience.
//!
//! # Choices
//!
//! - **Inline policy.** It lives and dies with the role, needs no ARN or version management (a
//!   managed policy keeps at most five versions, which `iam apply` would have to prune) and
//!   gets 10,240 characters against a managed policy's 6,144, which the longest secret names
//!   need.
//! - **Create-time tagging.** `CreateSecret` with tags is also authorised as `TagResource`,
//!   before the secret carries any tag, so a second `TagResource` statement allows requests
//!   that set `managed-by = nitrosync` and `destination = <id>`. The cost: the role could stamp
//!   those tags onto an unowned secret of exactly this name (the worker never does; it reports
//!   `SecretNameConflict`).
//! - **Lookup of a secret that does not exist yet.** `DescribeSecret` is also allowed on the
//!   name's ARN without the random suffix, the only ARN such a lookup can be authorised
//!   against.
//! - **Deleting the secret** is granted only when the destination's `delete_policy` is
//!   `Delete`: switching a destination to `Delete` needs the IAM regenerated, which keeps that
//!   decision with the account owner.
//! - **KMS.** A key ARN is used as is; a bare key id becomes
//!   `arn:<partition>:kms:<region>:<account>:key/<id>`. IAM authorises `GenerateDataKey` and
//!   `Decrypt` against the key's ARN, never an alias ARN, so an alias becomes `key/*` in its
//!   account and region narrowed with `kms:ResourceAliases`. Every KMS grant also requires
//!   `kms:ViaService = secretsmanager.<region>.amazonaws.com` and an encryption context
//!   (`SecretARN`) of this destination's secret or test placeholders.

#![warn(missing_docs)]

use nitrosync_shared::bundle::{ConfigError, DestinationConfig};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;

mod cloudformation;
pub mod kms;
mod plan;
mod terraform;

pub mod apply;

#[cfg(test)]
mod lint_tests;
#[cfg(test)]
mod tests;

pub use cloudformation::cloudformation;
pub use plan::{json, policy_documents};
pub use terraform::terraform;

/// The role's `MaxSessionDuration`, in seconds: the worker asks for the default hour.
pub const MAX_SESSION_DURATION: u32 = 3600;

pub use nitrosync_shared::tags::{MANAGED_BY, TAG_DESTINATION, TAG_MANAGED_BY, TEST_SECRET_INFIX};

/// The largest SAML metadata document IAM accepts, in characters.
pub const MAX_METADATA_CHARS: usize = 10_000_000;

/// The smallest SAML metadata document IAM accepts, in characters.
pub const MIN_METADATA_CHARS: usize = 1000;

const POLICY_VERSION: &str = "2012-10-17";

/// What the IAM for one destination is made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IamInput {
    /// The destination: its role ARN, SAML provider ARN, region, secret name and KMS key decide
    /// every name and resource below.
    pub destination: DestinationConfig,
    /// The destination's SAML subject (`ns1-` and 32 base32 characters), as
    /// `nitrosync_shared::bundle::saml_subject` derives it.
    pub subject: String,
    /// The worker's SAML IdP metadata XML (an `EntityDescriptor` with an `IDPSSODescriptor`).
    pub saml_metadata: String,
    /// The enclave whose attestation was checked before `saml_metadata` was believed; recorded
    /// in every generated file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<VerifiedEnclave>,
}

/// What was checked before the metadata was used: a fresh attestation document, chained to
/// `root`, whose PCRs equal the trusted image `image`, and which attests the SHA-256 of the
/// metadata's only signing certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedEnclave {
    /// The tenant's name for the trusted image the PCRs matched.
    pub image: String,
    /// The root the document's chain starts at.
    pub root: String,
    /// PCR0, hex.
    pub pcr0: String,
    /// PCR1, hex.
    pub pcr1: String,
    /// PCR2, hex.
    pub pcr2: String,
    /// PCR8, hex, when the image is signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcr8: Option<String>,
    /// SHA-256 of the attested SAML signing certificate, hex.
    pub saml_cert_sha256: String,
    /// The NSM module id of the document.
    pub module_id: String,
    /// The document's timestamp (RFC 3339).
    pub attested_at: String,
}

impl VerifiedEnclave {
    /// One line for comments and descriptions.
    pub fn summary(&self) -> String {
        format!(
            "Enclave verified before use: image {} (PCR0 {}, PCR1 {}, PCR2 {}{}), root {}, SAML certificate sha256 {}, attested {} by {}.",
            self.image,
            self.pcr0,
            self.pcr1,
            self.pcr2,
            self.pcr8
                .as_deref()
                .map(|p| format!(", PCR8 {p}"))
                .unwrap_or_default(),
            self.root,
            self.saml_cert_sha256,
            self.attested_at,
            self.module_id
        )
    }
}

/// What can go wrong in this crate: an input that cannot produce working IAM, the TLS set-up of
/// `apply`, or an IAM API call of `apply`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IamError {
    /// A field of the destination is invalid, or does not fit the others (region vs role ARN
    /// partition, KMS key region, names the worker or IAM would refuse). The caller's input.
    #[error("destination.{}: {}", .0.field, .0.reason)]
    Destination(ConfigError),
    /// The SAML subject is not of the form `ns1-` + 32 lowercase base32 characters. The caller's
    /// input.
    #[error("subject: {reason}")]
    Subject {
        /// What is wrong with it.
        reason: String,
    },
    /// The SAML metadata is empty, out of IAM's size limits or not IdP metadata. The enclave's
    /// output, or the caller's input.
    #[error("saml_metadata: {reason}")]
    Metadata {
        /// What is wrong with it.
        reason: String,
    },
    /// An input of the enclave's KMS key ([`kms`]) cannot make a safe key policy: the account,
    /// an ARN, the region, the alias, or a released image's measurements. The caller's input.
    #[error("{field}: {reason}")]
    Kms {
        /// The input: `account`, `key_admin_arn`, `enclave_role_arn`, `region`, `alias`,
        /// `measurements`, or an image's source and PCR (`measurements.json PCR1`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The extra CA file for `apply` cannot be read, is not PEM or holds no certificate.
    #[error("CA bundle {}: cannot read PEM certificates", .path.display())]
    CaBundle {
        /// The file.
        path: PathBuf,
        /// What the PEM reader found (an I/O error, bad PEM, no `CERTIFICATE` section).
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// A certificate in the extra CA file cannot be a trust anchor (it does not parse as X.509).
    #[error("CA bundle {}: certificate {number} cannot be trusted", .path.display())]
    CaCertificate {
        /// The file.
        path: PathBuf,
        /// The certificate's position in the file, from 1.
        number: usize,
        /// Why rustls refused it.
        #[source]
        source: rustls::Error,
    },
    /// The HTTPS client's TLS configuration was refused.
    #[error("cannot configure the HTTPS client's TLS")]
    Tls(#[source] aws_smithy_http_client::HttpClientError),
    /// `--profile` names a profile that neither AWS config file defines (the AWS CLI's words).
    #[error("the config profile ({name}) could not be found (looked in {searched})")]
    UnknownProfile {
        /// The profile.
        name: String,
        /// The files read.
        searched: String,
    },
    /// The caller's credentials (`sts:GetCallerIdentity`) are of another account than the one
    /// the destination's role ARN names: `apply` would create the role where the destination
    /// does not look for it. Nothing was written.
    #[error(
        "the AWS credentials are for account {caller_account} ({caller_arn}), but the destination's role {role_arn} is in account {account}: nothing was written; use credentials of account {account} (--profile, AWS_PROFILE or AWS_ACCESS_KEY_ID)"
    )]
    WrongAccount {
        /// The caller's account.
        caller_account: String,
        /// The caller's ARN.
        caller_arn: String,
        /// The account of the destination's role.
        account: String,
        /// The destination's role ARN.
        role_arn: String,
    },
    /// An IAM API call failed: refused by IAM (then `code` and `message` say why), or never
    /// answered (no credentials, connection, TLS or timeout: see the source).
    #[error("{call}{}", api_detail(.code.as_deref(), .message.as_deref()))]
    Api {
        /// The call.
        call: apply::IamCall,
        /// The AWS error code (`AccessDenied`, `MalformedPolicyDocument`, ...), when IAM answered.
        code: Option<String>,
        /// IAM's error message, when it answered.
        message: Option<String>,
        /// The SDK's error (an `SdkError` of the call's operation).
        #[source]
        source: aws_sdk_iam::error::BoxError,
    },
}

fn api_detail(code: Option<&str>, message: Option<&str>) -> String {
    match (code, message) {
        (Some(code), Some(message)) => format!(": {code}: {message}"),
        (Some(code), None) => format!(": {code}"),
        (None, Some(message)) => format!(": {message}"),
        (None, None) => " failed".to_owned(),
    }
}

impl IamError {
    /// The offending input field as users write it (`destination.kms_key_id`, `subject`,
    /// `saml_metadata`, ...), or `None` for errors that are not about the input.
    #[must_use]
    pub fn field(&self) -> Option<String> {
        match self {
            Self::Destination(e) => Some(format!("destination.{}", e.field)),
            Self::Subject { .. } => Some("subject".to_owned()),
            Self::Metadata { .. } => Some("saml_metadata".to_owned()),
            Self::Kms { field, .. } => Some(field.clone()),
            Self::UnknownProfile { .. } => Some("profile".to_owned()),
            Self::CaBundle { .. }
            | Self::CaCertificate { .. }
            | Self::Tls(_)
            | Self::WrongAccount { .. }
            | Self::Api { .. } => None,
        }
    }
}

pub(crate) fn dest_err(field: &str, reason: impl Into<String>) -> IamError {
    IamError::Destination(ConfigError {
        field: field.to_owned(),
        reason: reason.into(),
    })
}

/// The role's trust policy and its permissions policy, as IAM JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyDocuments {
    /// The trust (assume-role) policy; its `Principal.Federated` is the provider's ARN.
    pub trust_policy: Value,
    /// The identity policy attached inline to the role.
    pub identity_policy: Value,
}

/// The three resources in the form the IAM API takes them (`CreateSAMLProvider`, `CreateRole`,
/// `PutRolePolicy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IamDocuments {
    /// The AWS account all three live in (from `role_arn`): check the caller's account against
    /// it before applying.
    pub account: String,
    /// The SAML identity provider.
    pub saml_provider: SamlProviderSpec,
    /// The role the worker assumes.
    pub role: RoleSpec,
    /// The role's inline permissions policy.
    pub policy: PolicySpec,
    /// The enclave verified before the metadata was used (from [`IamInput::verified`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_enclave: Option<VerifiedEnclave>,
}

/// A SAML identity provider to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamlProviderSpec {
    /// `Name`: the last part of the destination's `saml_provider_arn`.
    pub name: String,
    /// `SAMLMetadataDocument`.
    pub metadata: String,
}

/// A role to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleSpec {
    /// `RoleName`: the last part of the destination's `role_arn`.
    pub name: String,
    /// `Path`: `/` or the `/…/` between `role` and the name in `role_arn`.
    pub path: String,
    /// `Description`.
    pub description: String,
    /// `AssumeRolePolicyDocument`.
    pub trust_policy: Value,
    /// `MaxSessionDuration`, seconds.
    pub max_session_duration: u32,
}

/// An inline role policy to put.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicySpec {
    /// `PolicyName`: `nitrosync-<destination id>`.
    pub name: String,
    /// `PolicyDocument`.
    pub document: Value,
}
