//! The product's error codes (DESIGN §8), shared by the enclave's reports, the parent's store and
//! the CLI.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A sync outcome's error code. The first eight are the codes of the model integration; the rest
/// are nitrosync's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The assumed role may not perform a Secrets Manager action on this secret.
    AccessDenied,
    /// STS refused to issue credentials for the SAML assertion.
    AssumeRoleError,
    /// AWS failed, or could not be reached, after the retry budget.
    InternalServiceError,
    /// The KMS key is missing, invalid, or not usable by the role.
    KmsKeyError,
    /// An AWS limit or throttle, after the retry budget.
    LimitExceeded,
    /// The rendered JSON is larger than 65,536 bytes.
    MaximumSecretSizeExceeded,
    /// The role's trust policy does not pin `saml:sub`.
    MissingSamlSubject,
    /// A secret with the target name exists and is not owned by this destination.
    SecretNameConflict,
    /// A bundle failed verification or decryption.
    InvalidBundle,
    /// A bundle's version is not newer than the one already written.
    StaleVersion,
    /// A write bundle found no secret to update and was sealed too long ago to create one
    /// (`bundle::CREATION_WINDOW_MS`), or too far in the future by the enclave's clock.
    CreationWindowClosed,
    /// The destination configuration is invalid.
    InvalidConfig,
    /// The parent's relay refused an outbound connection.
    RelayRefused,
    /// The enclave could not be reached.
    EnclaveUnavailable,
}

impl ErrorCode {
    /// Every code, in the order of DESIGN §8.
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::AccessDenied,
        ErrorCode::AssumeRoleError,
        ErrorCode::InternalServiceError,
        ErrorCode::KmsKeyError,
        ErrorCode::LimitExceeded,
        ErrorCode::MaximumSecretSizeExceeded,
        ErrorCode::MissingSamlSubject,
        ErrorCode::SecretNameConflict,
        ErrorCode::InvalidBundle,
        ErrorCode::StaleVersion,
        ErrorCode::CreationWindowClosed,
        ErrorCode::InvalidConfig,
        ErrorCode::RelayRefused,
        ErrorCode::EnclaveUnavailable,
    ];

    /// The code as users and scripts see it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::AccessDenied => "AccessDenied",
            ErrorCode::AssumeRoleError => "AssumeRoleError",
            ErrorCode::InternalServiceError => "InternalServiceError",
            ErrorCode::KmsKeyError => "KmsKeyError",
            ErrorCode::LimitExceeded => "LimitExceeded",
            ErrorCode::MaximumSecretSizeExceeded => "MaximumSecretSizeExceeded",
            ErrorCode::MissingSamlSubject => "MissingSamlSubject",
            ErrorCode::SecretNameConflict => "SecretNameConflict",
            ErrorCode::InvalidBundle => "InvalidBundle",
            ErrorCode::StaleVersion => "StaleVersion",
            ErrorCode::CreationWindowClosed => "CreationWindowClosed",
            ErrorCode::InvalidConfig => "InvalidConfig",
            ErrorCode::RelayRefused => "RelayRefused",
            ErrorCode::EnclaveUnavailable => "EnclaveUnavailable",
        }
    }

    /// Whether the scheduler should retry on its own. Terminal codes wait for a change by a
    /// person: a new bundle, a fixed policy, an explicit retry.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::InternalServiceError
                | ErrorCode::LimitExceeded
                | ErrorCode::RelayRefused
                | ErrorCode::EnclaveUnavailable
        )
    }

    /// Who must act before a failure with this code and `message` (the [`SyncError`]'s) can go
    /// away. [`is_retryable`](Self::is_retryable) answers the scheduler's question (try again on
    /// its own?); this answers the question of someone waiting for a sync (`--wait`): will
    /// waiting help? They differ for a refusal by configuration: the scheduler retries a relay
    /// that does not allow an endpoint, since the operator may add it at any time, but no amount
    /// of waiting adds it.
    ///
    /// - Transient causes ([`Resolution::Retry`]): AWS's errors and throttling after the SDK's
    ///   retries, an enclave that is restarting, a relay that could not resolve or dial an
    ///   allowed endpoint, or timed out.
    /// - The operator's configuration ([`Resolution::Operator`]): the relay's allowlist refused
    ///   the endpoint (`not_allowed`), or the relay and the enclave disagree on the tunnel
    ///   preface (`bad_preface`, a version mismatch). The enclave names the relay's
    ///   [`RefusalReason`](crate::tunnel::RefusalReason) in parentheses in a `RelayRefused`
    ///   message (`… refused sts.eu-west-1.amazonaws.com:443 (not_allowed).`).
    /// - Everything else ([`Resolution::Tenant`]): the tenant's bundle or destination, or the
    ///   customer's IAM, KMS key or secret must change first.
    ///
    /// [`SyncError`]: crate::control::SyncError
    pub fn resolution(self, message: &str) -> Resolution {
        use crate::tunnel::RefusalReason;
        match self {
            ErrorCode::InternalServiceError
            | ErrorCode::LimitExceeded
            | ErrorCode::EnclaveUnavailable => Resolution::Retry,
            ErrorCode::RelayRefused => {
                let by_configuration = [RefusalReason::NotAllowed, RefusalReason::BadPreface]
                    .iter()
                    .any(|r| message.contains(&format!("({r})")));
                if by_configuration {
                    Resolution::Operator
                } else {
                    Resolution::Retry
                }
            }
            ErrorCode::AccessDenied
            | ErrorCode::AssumeRoleError
            | ErrorCode::KmsKeyError
            | ErrorCode::MaximumSecretSizeExceeded
            | ErrorCode::MissingSamlSubject
            | ErrorCode::SecretNameConflict
            | ErrorCode::InvalidBundle
            | ErrorCode::StaleVersion
            | ErrorCode::CreationWindowClosed
            | ErrorCode::InvalidConfig => Resolution::Tenant,
        }
    }

    /// What the user can do about it, in one sentence.
    pub fn remedy(self) -> &'static str {
        match self {
            ErrorCode::AccessDenied => {
                "Allow the role the Secrets Manager actions on this secret (see `nitrosync iam template`)."
            }
            ErrorCode::AssumeRoleError => {
                "Check that the role trusts the SAML provider and pins this destination's SAML subject, and that the provider holds the current metadata."
            }
            ErrorCode::InternalServiceError => {
                "AWS did not answer successfully; the sync will be retried. If it persists, check the AWS Health Dashboard."
            }
            ErrorCode::KmsKeyError => {
                "Check the KMS key id, and that both the role's policy and the key's policy let the role use the key through Secrets Manager with kms:GenerateDataKey and kms:Decrypt (what `nitrosync iam template` grants)."
            }
            ErrorCode::LimitExceeded => {
                "The account's Secrets Manager rate or quota was exceeded; the sync will be retried with backoff."
            }
            ErrorCode::MaximumSecretSizeExceeded => {
                "Reduce the environment: its JSON must be at most 65,536 bytes."
            }
            ErrorCode::MissingSamlSubject => {
                "Add a StringEquals condition on saml:sub for this destination's subject to the role's trust policy."
            }
            ErrorCode::SecretNameConflict => {
                "Choose another secret name, or delete or rename the existing secret that nitrosync does not own."
            }
            ErrorCode::InvalidBundle => {
                "Seal the bundle again for this enclave's attested key with the tenant key."
            }
            ErrorCode::StaleVersion => {
                "Submit a bundle with a version higher than the one already written."
            }
            ErrorCode::CreationWindowClosed => {
                "Push again to re-sign: a bundle may create its secret only within an hour of being sealed."
            }
            ErrorCode::InvalidConfig => "Fix the destination configuration named in the message.",
            ErrorCode::RelayRefused => {
                "Allow the AWS endpoint in the parent's relay policy (regions or allow list)."
            }
            ErrorCode::EnclaveUnavailable => {
                "Check that the enclave is running and that the parent can reach its control endpoint."
            }
        }
    }
}

/// Who must act before a failure goes away: see [`ErrorCode::resolution`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resolution {
    /// Nobody: the cause is transient and a later attempt may succeed.
    Retry,
    /// The parent's operator must change its configuration; the scheduler keeps retrying, so
    /// the sync goes through once they have.
    Operator,
    /// The tenant (a new bundle, the destination) or the customer's AWS account (IAM, the KMS
    /// key, the secret) must change something, then submit again or ask for a retry.
    Tenant,
}

impl Resolution {
    /// Whether waiting alone can resolve it.
    pub fn by_waiting(self) -> bool {
        self == Resolution::Retry
    }

    /// Who must act, for messages: `the operator`, `you`.
    pub fn who(self) -> &'static str {
        match self {
            Resolution::Retry => "nobody",
            Resolution::Operator => "the operator of the parent",
            Resolution::Tenant => "you (the tenant or the AWS account's administrator)",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_says_whether_waiting_helps() {
        let refused = |reason: &str| {
            format!(
                "AssumeRoleWithSAML: the parent's relay refused sts.eu-west-1.amazonaws.com:443 ({reason})."
            )
        };
        let code = ErrorCode::RelayRefused;
        assert_eq!(
            code.resolution(&refused("not_allowed")),
            Resolution::Operator
        );
        assert_eq!(
            code.resolution(&refused("bad_preface")),
            Resolution::Operator
        );
        for transient in ["dial_failed", "resolve_failed", "timeout"] {
            assert_eq!(code.resolution(&refused(transient)), Resolution::Retry);
        }
        for code in ErrorCode::ALL {
            let r = code.resolution("");
            // Nothing the scheduler gives up on resolves by waiting; everything it retries on
            // its own does, except a refusal by configuration.
            if !code.is_retryable() {
                assert_eq!(r, Resolution::Tenant, "{code}");
            } else if code != ErrorCode::RelayRefused {
                assert!(r.by_waiting(), "{code}");
            }
        }
        assert!(!ErrorCode::StaleVersion.resolution("").by_waiting());
        assert!(ErrorCode::LimitExceeded.resolution("").by_waiting());
        assert!(ErrorCode::EnclaveUnavailable.resolution("").by_waiting());
    }

    #[test]
    fn names_are_distinct_and_round_trip_through_cbor() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()));
            assert!(!code.remedy().is_empty());
            let bytes = crate::frame::encode(&code).unwrap();
            let back: ErrorCode = crate::frame::decode_payload(&bytes[4..]).unwrap();
            assert_eq!(back, code);
            assert_eq!(format!("{code:?}"), code.as_str());
        }
    }
}
