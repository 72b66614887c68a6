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
    /// KMS (the sealed identity): any refusal is a `KmsKeyError`.
    Kms,
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
        (Service::Kms, _) => ErrorCode::KmsKeyError,
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

#[cfg(test)]
mod tests {
    //! One case per row of the table in DESIGN §8, as `classify` sees AWS's answers after the
    //! SDK's retries. The local rows (size, trust-policy probe) are made elsewhere in `sync` and
    //! covered end to end.

    use super::*;
    use crate::https::{RelayRefused, TunnelError};
    use aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueError;
    use aws_sdk_sts::operation::assume_role_with_saml::AssumeRoleWithSAMLError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;
    use nitrosync_shared::bundle::{DeletePolicy, DestinationConfig};
    use nitrosync_shared::tunnel::RefusalReason;

    type SmError = SdkError<PutSecretValueError, Response>;

    fn response(status: u16) -> Response {
        Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty())
    }

    fn meta(code: &str, message: &str) -> ErrorMetadata {
        ErrorMetadata::builder().code(code).message(message).build()
    }

    /// A Secrets Manager service error.
    fn sm(status: u16, code: &str, message: &str) -> Failure {
        let err: SmError = SdkError::service_error(
            PutSecretValueError::generic(meta(code, message)),
            response(status),
        );
        classify(
            Service::SecretsManager,
            "secretsmanager:PutSecretValue",
            &err,
        )
    }

    /// An STS service error.
    fn sts(status: u16, code: &str, message: &str) -> Failure {
        let err = SdkError::service_error(
            AssumeRoleWithSAMLError::generic(meta(code, message)),
            response(status),
        );
        classify(Service::Sts, "sts:AssumeRoleWithSAML", &err)
    }

    /// Asserts the product code and the report's retryable flag.
    #[track_caller]
    fn expect(f: Failure, code: ErrorCode, retryable: bool) {
        assert_eq!(f.code, code, "{f}");
        let report = f.into_sync_error();
        assert_eq!(report.code, code);
        assert_eq!(report.retryable, retryable, "{code}");
        assert!(
            report.message.ends_with(code.remedy()),
            "{}",
            report.message
        );
    }

    #[test]
    fn access_denied_that_does_not_mention_kms() {
        let f = sm(
            400,
            "AccessDeniedException",
            "User: arn:aws:sts::111111111111:assumed-role/r/s is not authorized to perform: \
             secretsmanager:PutSecretValue on resource: app/env because no identity-based policy \
             allows the secretsmanager:PutSecretValue action",
        );
        expect(f, ErrorCode::AccessDenied, false);
    }

    #[test]
    fn access_denied_that_mentions_kms_is_a_key_error() {
        for msg in [
            "Access to KMS is not allowed",
            "not authorized to perform: kms:GenerateDataKey on resource: arn:aws:kms:us-east-1:111111111111:key/k",
        ] {
            expect(
                sm(400, "AccessDeniedException", msg),
                ErrorCode::KmsKeyError,
                false,
            );
        }
    }

    #[test]
    fn sts_refusals_are_assume_role_errors() {
        for code in [
            "AccessDenied",
            "InvalidIdentityToken",
            "IDPRejectedClaim",
            "ExpiredToken",
            // What STS sends for an expired assertion; reached through the STS default.
            "ExpiredTokenException",
            "RegionDisabled",
            "RegionDisabledException",
            "ValidationError",
            "MalformedPolicyDocument",
            "PackedPolicyTooLarge",
        ] {
            expect(sts(400, code, "no"), ErrorCode::AssumeRoleError, false);
        }
        // Any other answer from STS with a client status is a refusal too.
        expect(
            sts(403, "SomethingNew", "no"),
            ErrorCode::AssumeRoleError,
            false,
        );
        // A response the SDK could not read, with a client status.
        let err: SdkError<AssumeRoleWithSAMLError, Response> =
            SdkError::response_error("garbage", response(400));
        let f = classify(Service::Sts, "sts:AssumeRoleWithSAML", &err);
        expect(f, ErrorCode::AssumeRoleError, false);
    }

    #[test]
    fn aws_failures_are_internal_service_errors() {
        for code in [
            "InternalServiceError",
            "InternalFailure",
            "ServiceUnavailable",
        ] {
            expect(sm(400, code, "oops"), ErrorCode::InternalServiceError, true);
            expect(
                sts(400, code, "oops"),
                ErrorCode::InternalServiceError,
                true,
            );
        }
        // Any 5xx, whatever the code.
        for status in [500, 502, 503, 504] {
            expect(sm(status, "", ""), ErrorCode::InternalServiceError, true);
            expect(
                sm(status, "Whatever", "x"),
                ErrorCode::InternalServiceError,
                true,
            );
            expect(
                sts(status, "Whatever", "x"),
                ErrorCode::InternalServiceError,
                true,
            );
        }
        // An unknown Secrets Manager code with a client status.
        expect(
            sm(400, "SomethingNew", "x"),
            ErrorCode::InternalServiceError,
            true,
        );
        let err: SmError = SdkError::response_error("garbage", response(400));
        let f = classify(
            Service::SecretsManager,
            "secretsmanager:PutSecretValue",
            &err,
        );
        expect(f, ErrorCode::InternalServiceError, true);
    }

    #[test]
    fn transport_failures_are_internal_service_errors() {
        let io = || std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let dispatch: SmError = SdkError::dispatch_failure(ConnectorError::io(Box::new(io())));
        let timeout: SmError = SdkError::timeout_error(Box::new(io()));
        for err in [&dispatch, &timeout] {
            let f = classify(
                Service::SecretsManager,
                "secretsmanager:PutSecretValue",
                err,
            );
            // No AWS code: the message quotes the whole cause chain.
            assert!(f.message.contains("reset by peer"), "{f}");
            expect(f, ErrorCode::InternalServiceError, true);
        }
        // Even for STS, which otherwise defaults to AssumeRoleError.
        let err: SdkError<AssumeRoleWithSAMLError, Response> =
            SdkError::dispatch_failure(ConnectorError::io(Box::new(io())));
        let f = classify(Service::Sts, "sts:AssumeRoleWithSAML", &err);
        expect(f, ErrorCode::InternalServiceError, true);
    }

    #[test]
    fn kms_failures_are_key_errors() {
        for code in [
            "EncryptionFailure",
            "DecryptionFailure",
            "KMSInvalidStateException",
            "KMSNotFoundException",
            "KMSAccessDeniedException",
            "KMSDisabledException",
        ] {
            expect(sm(400, code, "key"), ErrorCode::KmsKeyError, false);
        }
        // An invalid key id.
        for code in ["InvalidParameterException", "ValidationException"] {
            let f = sm(400, code, "Invalid KMS key id: alias/nope");
            expect(f, ErrorCode::KmsKeyError, false);
        }
    }

    #[test]
    fn limits_and_throttling_are_limit_exceeded() {
        for code in [
            "LimitExceededException",
            "ThrottlingException",
            "Throttling",
            "TooManyRequestsException",
        ] {
            expect(sm(400, code, "slow down"), ErrorCode::LimitExceeded, true);
            expect(sts(400, code, "slow down"), ErrorCode::LimitExceeded, true);
        }
    }

    #[test]
    fn a_name_pending_deletion_is_a_conflict() {
        for msg in [
            "You can't create this secret because a secret with this name is already scheduled for deletion.",
            "You can't perform this operation on the secret because it was marked for deletion.",
        ] {
            expect(
                sm(400, "InvalidRequestException", msg),
                ErrorCode::SecretNameConflict,
                false,
            );
        }
    }

    #[test]
    fn an_existing_secret_not_owned_is_a_conflict() {
        let dest = |id: &str| DestinationConfig {
            id: id.into(),
            region: "us-east-1".into(),
            secret_name: "app/env".into(),
            role_arn: "arn:aws:iam::111111111111:role/r".into(),
            saml_provider_arn: "arn:aws:iam::111111111111:saml-provider/p".into(),
            kms_key_id: None,
            tags: Default::default(),
            delete_policy: DeletePolicy::Retain,
        };
        let ours = super::super::managed_tags(&dest("d"), 1, "m");
        assert_eq!(super::super::check_owner(&dest("d"), &ours, false), Ok(()));
        for (tags, pending) in [(&[][..], false), (&ours[..], true)] {
            let f = super::super::check_owner(&dest("d"), tags, pending).unwrap_err();
            expect(f, ErrorCode::SecretNameConflict, false);
        }
        // Managed by nitrosync, but for another destination.
        let theirs = super::super::managed_tags(&dest("other"), 1, "m");
        let f = super::super::check_owner(&dest("d"), &theirs, false).unwrap_err();
        expect(f, ErrorCode::SecretNameConflict, false);
    }

    #[test]
    fn other_client_errors_are_invalid_config() {
        for code in [
            "InvalidParameterException",
            "ValidationException",
            "InvalidRequestException",
            "MalformedPolicyDocumentException",
        ] {
            expect(sm(400, code, "bad input"), ErrorCode::InvalidConfig, false);
        }
    }

    #[test]
    fn a_relay_refusal_wins_over_everything() {
        let refused = || RelayRefused {
            host: "secretsmanager.us-east-1.amazonaws.com".into(),
            port: 443,
            reason: RefusalReason::NotAllowed,
            detail: "not in the allowlist".into(),
        };
        let direct: SmError = SdkError::dispatch_failure(ConnectorError::user(Box::new(refused())));
        let wrapped: SmError = SdkError::dispatch_failure(ConnectorError::user(Box::new(
            TunnelError::Refused(refused()),
        )));
        for err in [&direct, &wrapped] {
            let f = classify(
                Service::SecretsManager,
                "secretsmanager:PutSecretValue",
                err,
            );
            assert!(
                f.message
                    .contains("secretsmanager.us-east-1.amazonaws.com:443"),
                "{f}"
            );
            expect(f, ErrorCode::RelayRefused, true);
        }
        // Other relay troubles are transport failures.
        let other: SmError = SdkError::dispatch_failure(ConnectorError::io(Box::new(
            TunnelError::NoAnswer("vsock:3:8000".into()),
        )));
        let f = classify(
            Service::SecretsManager,
            "secretsmanager:PutSecretValue",
            &other,
        );
        expect(f, ErrorCode::InternalServiceError, true);
    }

    #[test]
    fn messages_quote_the_operation_and_aws() {
        let f = sm(400, "LimitExceededException", "too many versions");
        assert_eq!(
            f.message,
            "secretsmanager:PutSecretValue failed: LimitExceededException: too many versions"
        );
    }

    #[test]
    fn chain_joins_every_source() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        assert_eq!(
            chain(&Outer(std::io::Error::other("inner"))),
            "outer: inner"
        );
    }
}
