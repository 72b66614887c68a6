//! Mapping AWS failures to the product's error codes (DESIGN §8).
//!
//! Messages say what happened and what the user can do; they quote AWS's error code and
//! message, which name resources but never a secret value.

use crate::https::find_refusal;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use nitrosync_shared::ErrorCode;
use nitrosync_shared::control::SyncError;

/// A sync failure, ready for a report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Failure {
    /// The product code.
    pub code: ErrorCode,
    /// What happened.
    pub message: String,
}

impl Failure {
    /// A failure with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The report form, with the remedy appended.
    pub fn into_sync_error(self) -> SyncError {
        SyncError {
            retryable: self.code.is_retryable(),
            message: format!("{} {}", self.message, self.code.remedy()),
            code: self.code,
        }
    }
}

/// Which service a call went to, for classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// STS (`AssumeRoleWithSAML`).
    Sts,
    /// Secrets Manager.
    SecretsManager,
}

/// What an AWS error said: its code, message and HTTP status.
#[derive(Debug, Clone, Default)]
pub struct AwsErrorInfo {
    /// AWS error code, e.g. `AccessDeniedException`.
    pub code: Option<String>,
    /// AWS message.
    pub message: Option<String>,
    /// HTTP status, when a response came back.
    pub status: Option<u16>,
}

/// Extracts code, message and status from any SDK error.
pub fn info<E, R>(err: &SdkError<E, R>) -> AwsErrorInfo
where
    E: ProvideErrorMetadata,
    R: HasStatus,
{
    match err {
        SdkError::ServiceError(e) => AwsErrorInfo {
            code: e.err().code().map(str::to_owned),
            message: e.err().message().map(str::to_owned),
            status: Some(e.raw().status_code()),
        },
        SdkError::ResponseError(e) => AwsErrorInfo {
            code: None,
            message: Some("unreadable response".into()),
            status: Some(e.raw().status_code()),
        },
        _ => AwsErrorInfo::default(),
    }
}

/// Raw responses that carry an HTTP status.
pub trait HasStatus {
    /// The HTTP status code.
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// Classifies a failed call to `service` (after the SDK's retries).
pub fn classify<E, R>(service: Service, operation: &str, err: &SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: HasStatus + std::fmt::Debug + 'static,
{
    if let Some(refusal) = find_refusal(err) {
        return Failure::new(
            ErrorCode::RelayRefused,
            format!(
                "{operation}: the parent's relay refused {}:{} ({}).",
                refusal.host, refusal.port, refusal.reason
            ),
        );
    }
    let i = info(err);
    let code = i.code.as_deref().unwrap_or("");
    let msg = i.message.as_deref().unwrap_or("");
    let quoted = if code.is_empty() {
        format!("{operation} failed: {}", chain(err))
    } else {
        format!("{operation} failed: {code}: {msg}")
    };
    let product = match (service, code) {
        (_, "ThrottlingException" | "Throttling" | "TooManyRequestsException") => {
            ErrorCode::LimitExceeded
        }
        (_, "LimitExceededException") => ErrorCode::LimitExceeded,
        (
            Service::Sts,
            "AccessDenied"
            | "InvalidIdentityToken"
            | "IDPRejectedClaim"
            | "ExpiredToken"
            | "RegionDisabledException"
            | "RegionDisabled"
            | "ValidationError"
            | "MalformedPolicyDocument"
            | "PackedPolicyTooLarge",
        ) => ErrorCode::AssumeRoleError,
        (Service::SecretsManager, "AccessDeniedException") if mentions_kms(msg) => {
            ErrorCode::KmsKeyError
        }
        (Service::SecretsManager, "AccessDeniedException") => ErrorCode::AccessDenied,
        (
            Service::SecretsManager,
            "EncryptionFailure"
            | "DecryptionFailure"
            | "KMSInvalidStateException"
            | "KMSNotFoundException"
            | "KMSAccessDeniedException"
            | "KMSDisabledException",
        ) => ErrorCode::KmsKeyError,
        (Service::SecretsManager, "InvalidRequestException")
            if msg.contains("scheduled for deletion") || msg.contains("marked for deletion") =>
        {
            ErrorCode::SecretNameConflict
        }
        (Service::SecretsManager, "InvalidParameterException" | "ValidationException")
            if mentions_kms(msg) =>
        {
            ErrorCode::KmsKeyError
        }
        (
            Service::SecretsManager,
            "InvalidParameterException"
            | "ValidationException"
            | "InvalidRequestException"
            | "MalformedPolicyDocumentException",
        ) => ErrorCode::InvalidConfig,
        _ if i.status.is_some_and(|s| s >= 500) => ErrorCode::InternalServiceError,
        (_, "InternalServiceError" | "InternalFailure" | "ServiceUnavailable") => {
            ErrorCode::InternalServiceError
        }
        _ if i.status.is_none() => ErrorCode::InternalServiceError,
        (Service::Sts, _) => ErrorCode::AssumeRoleError,
        (Service::SecretsManager, _) => ErrorCode::InternalServiceError,
    };
    Failure::new(product, quoted)
}

fn mentions_kms(msg: &str) -> bool {
    msg.contains("KMS") || msg.contains("kms:")
}

/// An error and its sources, joined with `: `.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
