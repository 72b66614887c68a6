//! The API's request and response bodies.

use nitrosync_shared::control::{ControlError, HealthReport};
use nitrosync_shared::tunnel::RelayStatsSnapshot;
use serde::{Deserialize, Serialize};

/// What `GET /v1/status` returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// The daemon itself.
    pub parent: ParentStatus,
    /// The control connection.
    pub control: ControlState,
    /// The enclave's health, when it answered.
    pub enclave: Option<HealthReport>,
    /// Why there is no health report.
    pub enclave_error: Option<ControlError>,
    /// The relay.
    pub relay: RelayStatus,
    /// Destinations by state; absent when the store could not be read (see `store_error`).
    pub destinations: Option<std::collections::BTreeMap<String, u64>>,
    /// Why the store could not be read, when it could not.
    #[serde(default)]
    pub store_error: Option<String>,
    /// Scheduler counters: syncs started, succeeded, failed, and `rate_limited` (scheduling
    /// passes that held back an account at its rate).
    pub syncs: std::collections::BTreeMap<String, u64>,
    /// The most recent failures (destination, tenant, code, message, time), newest first.
    pub recent_errors: Vec<RecentError>,
}

/// A destination whose last sync failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecentError {
    /// Destination id.
    pub destination: String,
    /// The destination's tenant key, hex; empty from a parent older than this field.
    #[serde(default)]
    pub tenant: String,
    /// Error code.
    pub code: String,
    /// Message.
    pub message: String,
    /// When the failed attempt finished (Unix milliseconds); 0 from a parent older than this
    /// field.
    #[serde(default)]
    pub at_ms: u64,
}

/// The daemon's own facts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParentStatus {
    /// Crate version.
    pub version: String,
    /// Milliseconds since start.
    pub uptime_ms: u64,
}

/// The relay's settings summary and counters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelayStatus {
    /// Where tunnels arrive.
    pub listen: String,
    /// Regions allowed.
    pub regions: Vec<String>,
    /// Counters.
    pub stats: RelayStatsSnapshot,
}

/// Body of `POST /v1/enclave/probe`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeRequest {
    /// The region whose STS endpoint is called.
    pub region: String,
}

/// Body of `POST /v1/enclave/rotate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// `begin` or `finish`.
    pub step: String,
    /// `finish` only: seconds the old bundle key still opens bundles sealed to it (default
    /// 7 days, at most 30).
    #[serde(default)]
    pub bundle_key_grace_s: Option<u64>,
}

/// Answer to `POST /v1/enclave/rotate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RotateReply {
    /// The step done.
    pub step: String,
    /// The KMS key the identity is sealed under.
    pub key_arn: String,
    /// The sealed identity's generation now (stored by the parent).
    pub generation: u64,
    /// SHA-256 (hex) of the certificate the enclave signs with now.
    pub saml_cert_sha256: String,
    /// SHA-256 (hex) of the next certificate, listed in the metadata, after `begin`.
    pub next_saml_cert_sha256: Option<String>,
    /// Until when (Unix ms) the previous bundle key still opens bundles, after `finish`.
    pub previous_bundle_key_until_ms: Option<u64>,
}

/// Default of [`RotateRequest::bundle_key_grace_s`]: seven days.
pub const DEFAULT_BUNDLE_KEY_GRACE_S: u64 = 7 * 24 * 3600;

/// Body of `POST /v1/enclave/attest`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestRequest {
    /// Hex nonce to bind into the document; 32 random bytes when absent.
    pub nonce: Option<String>,
}

/// A fresh attestation document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttestationReply {
    /// The nonce bound into the document, hex.
    pub nonce: String,
    /// The COSE_Sign1 document, base64.
    pub document: String,
}

/// What `GET /v1/enclave/describe` returns: the enclave's description and a fresh attestation
/// document that binds its keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnclaveDescription {
    /// The enclave's own description.
    #[serde(flatten)]
    pub description: nitrosync_shared::control::Description,
    /// A fresh document (random nonce), when the enclave could attest.
    pub attestation: Option<AttestationReply>,
    /// Why there is no document.
    pub attestation_error: Option<String>,
}

/// The state of the control connection, for status output.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ControlState {
    /// The endpoint dialled.
    pub endpoint: String,
    /// Whether a connection is up now.
    pub connected: bool,
    /// Successful connections so far (1 after the first connect).
    pub connects: u64,
    /// The last connection error, if the last attempt failed.
    pub last_error: Option<String>,
}

/// The answer to a submit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmitReply {
    /// Tenant key, hex.
    pub tenant: String,
    /// Destination id.
    pub destination: String,
    /// The version submitted.
    pub version: u64,
    /// The version it replaced, if any.
    pub previous_version: Option<u64>,
}

/// The error body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ApiError,
}

/// One error.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    /// A product error code, or `BadRequest` / `NotFound`.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recent_error_from_an_older_parent_reads_without_tenant_and_time() {
        let old = r#"{"destination":"app","code":"RelayRefused","message":"refused"}"#;
        let e: RecentError = serde_json::from_str(old).unwrap();
        assert_eq!((e.tenant.as_str(), e.at_ms), ("", 0));
        let new = serde_json::to_value(RecentError {
            tenant: "ab".repeat(32),
            at_ms: 7,
            ..e
        })
        .unwrap();
        assert_eq!(new["tenant"], "ab".repeat(32));
        assert_eq!(new["at_ms"], 7);
    }
}
