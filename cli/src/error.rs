//! A failed command: its stable code, one line for the user, and the exit code.
//!
//! A code is a name, shown as the daemon's are: `nitrosync: CODE: message` on standard error, or
//! `{"error": {"code", "message", "exit"}}` with `--output json`. Errors the daemon reports keep
//! the daemon's code (a sync error code such as `RelayRefused`, or an API code such as
//! `UnknownDestination`, both in `docs/errors.md`); errors found on this machine carry a
//! [`LocalCode`], each of which decides its exit code.

use nitrosync_api::ClientError;

/// Exit code: the operation reported a failure.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: wrong usage.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the daemon cannot be reached.
pub const EXIT_DAEMON_UNREACHABLE: u8 = 3;
/// Exit code: the daemon is up but the enclave is not.
pub const EXIT_ENCLAVE_UNAVAILABLE: u8 = 4;

/// The code of an error the CLI finds itself, on the tenant's or operator's machine. The names
/// are stable: scripts may match them (`docs/errors.md`, "Local error codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocalCode {
    /// A flag is missing, has a bad value, or does not fit the command (exit 2).
    InvalidFlag,
    /// `iam apply`: an unknown profile, or credentials of another account (exit 2).
    WrongCredentials,
    /// The environment holds no variable and `--allow-empty` was not given (exit 2).
    EmptyEnvironment,
    /// A destructive command off a terminal without `--yes` (exit 2).
    ConfirmationRequired,
    /// The answer at the confirmation prompt was not the destination's id.
    NotConfirmed,
    /// The input (`--file`) cannot be opened or read.
    InputRead,
    /// The input is too long, not UTF-8, or not dotenv.
    InputInvalid,
    /// The environment's JSON passes Secrets Manager's limit (the sync code of the same name).
    MaximumSecretSizeExceeded,
    /// The tenant key is missing, exists already, is readable by others, or is not a key file.
    TenantKey,
    /// The destination file is missing or invalid.
    DestinationFile,
    /// The trust store cannot be read or changed.
    TrustStore,
    /// Another local file cannot be read, parsed or written.
    LocalFile,
    /// The enclave's attestation or SAML metadata was refused: nothing was sealed or registered.
    AttestationRefused,
    /// An AWS call of `iam apply` failed.
    AwsError,
    /// The daemon answered something unreadable.
    BadAnswer,
    /// The daemon (admin socket or tenant API) cannot be reached (exit 3).
    DaemonUnreachable,
    /// `--wait`: the destination is disabled, so the version will not be written.
    DestinationDisabled,
    /// `--wait`: no report for the version in time.
    WaitTimeout,
    /// `enclave probe`: STS was not reached.
    ProbeFailed,
    /// Something on this machine failed that is none of the above (randomness, the runtime).
    Internal,
}

impl LocalCode {
    /// Every code, as `docs/errors.md` lists them.
    pub const ALL: [LocalCode; 20] = [
        LocalCode::InvalidFlag,
        LocalCode::WrongCredentials,
        LocalCode::EmptyEnvironment,
        LocalCode::ConfirmationRequired,
        LocalCode::NotConfirmed,
        LocalCode::InputRead,
        LocalCode::InputInvalid,
        LocalCode::MaximumSecretSizeExceeded,
        LocalCode::TenantKey,
        LocalCode::DestinationFile,
        LocalCode::TrustStore,
        LocalCode::LocalFile,
        LocalCode::AttestationRefused,
        LocalCode::AwsError,
        LocalCode::BadAnswer,
        LocalCode::DaemonUnreachable,
        LocalCode::DestinationDisabled,
        LocalCode::WaitTimeout,
        LocalCode::ProbeFailed,
        LocalCode::Internal,
    ];

    /// The code as users and scripts see it.
    pub fn as_str(self) -> &'static str {
        match self {
            LocalCode::InvalidFlag => "InvalidFlag",
            LocalCode::WrongCredentials => "WrongCredentials",
            LocalCode::EmptyEnvironment => "EmptyEnvironment",
            LocalCode::ConfirmationRequired => "ConfirmationRequired",
            LocalCode::NotConfirmed => "NotConfirmed",
            LocalCode::InputRead => "InputRead",
            LocalCode::InputInvalid => "InputInvalid",
            LocalCode::MaximumSecretSizeExceeded => "MaximumSecretSizeExceeded",
            LocalCode::TenantKey => "TenantKey",
            LocalCode::DestinationFile => "DestinationFile",
            LocalCode::TrustStore => "TrustStore",
            LocalCode::LocalFile => "LocalFile",
            LocalCode::AttestationRefused => "AttestationRefused",
            LocalCode::AwsError => "AwsError",
            LocalCode::BadAnswer => "BadAnswer",
            LocalCode::DaemonUnreachable => "DaemonUnreachable",
            LocalCode::DestinationDisabled => "DestinationDisabled",
            LocalCode::WaitTimeout => "WaitTimeout",
            LocalCode::ProbeFailed => "ProbeFailed",
            LocalCode::Internal => "Internal",
        }
    }

    /// The exit code of an error with this code.
    pub fn exit(self) -> u8 {
        match self {
            LocalCode::InvalidFlag
            | LocalCode::WrongCredentials
            | LocalCode::EmptyEnvironment
            | LocalCode::ConfirmationRequired => EXIT_USAGE,
            LocalCode::DaemonUnreachable => EXIT_DAEMON_UNREACHABLE,
            _ => EXIT_FAILED,
        }
    }
}

impl std::fmt::Display for LocalCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed CLI command.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CliError {
    /// A [`LocalCode`], or the code the daemon reported.
    pub code: String,
    /// One line for the user, without the code.
    pub message: String,
    /// The process exit code.
    pub exit: u8,
}

impl CliError {
    /// An error the daemon reported with `code`.
    pub(crate) fn reported(code: impl Into<String>, message: impl Into<String>, exit: u8) -> Self {
        CliError {
            code: code.into(),
            message: message.into(),
            exit,
        }
    }

    /// The JSON form, `{"error": {"code", "message", "exit"}}`: the API's error body and the exit.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.code, "message": self.message, "exit": self.exit}})
    }
}

/// A local error with `code` (which decides the exit code).
pub(crate) fn fail(code: LocalCode, message: impl Into<String>) -> CliError {
    CliError {
        code: code.as_str().to_owned(),
        message: message.into(),
        exit: code.exit(),
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Api { code, message, .. } => {
                let exit = if code == "EnclaveUnavailable" {
                    EXIT_ENCLAVE_UNAVAILABLE
                } else {
                    EXIT_FAILED
                };
                CliError::reported(code, message, exit)
            }
            e if e.is_unreachable() => fail(LocalCode::DaemonUnreachable, error_chain(&e)),
            e @ ClientError::Endpoint { .. } => fail(LocalCode::InvalidFlag, error_chain(&e)),
            e @ ClientError::Decode(_) => fail(LocalCode::BadAnswer, error_chain(&e)),
            e => fail(LocalCode::Internal, error_chain(&e)),
        }
    }
}

/// `error: cause: cause ...`, the whole `source()` chain on one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_decide_the_exit() {
        let names: std::collections::BTreeSet<_> =
            LocalCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), LocalCode::ALL.len());
        assert_eq!(LocalCode::InvalidFlag.exit(), EXIT_USAGE);
        assert_eq!(LocalCode::EmptyEnvironment.exit(), EXIT_USAGE);
        assert_eq!(LocalCode::DaemonUnreachable.exit(), EXIT_DAEMON_UNREACHABLE);
        assert_eq!(LocalCode::InputRead.exit(), EXIT_FAILED);
        let e = fail(LocalCode::TenantKey, "no tenant key at /x");
        assert_eq!(e.to_string(), "TenantKey: no tenant key at /x");
        assert_eq!(e.to_json()["error"]["code"], "TenantKey");
        assert_eq!(e.to_json()["error"]["exit"], 1);
    }

    #[test]
    fn the_daemons_codes_are_kept() {
        let e = CliError::from(ClientError::Api {
            status: 404,
            code: "UnknownDestination".into(),
            message: "no destination \"app\" for this tenant".into(),
        });
        assert_eq!(
            (e.code.as_str(), e.exit),
            ("UnknownDestination", EXIT_FAILED)
        );
        assert_eq!(e.message, "no destination \"app\" for this tenant");
        let e = CliError::from(ClientError::Api {
            status: 503,
            code: "EnclaveUnavailable".into(),
            message: "down".into(),
        });
        assert_eq!(e.exit, EXIT_ENCLAVE_UNAVAILABLE);
        let e = CliError::from(ClientError::connect(
            "/nope.sock".into(),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
        assert_eq!((e.code.as_str(), e.exit), ("DaemonUnreachable", 3));
    }
}
