//! The destination records the operator's API hands out: plain data, JSON on the wire.

use nitrosync_shared::ErrorCode;
use nitrosync_shared::bundle::DestinationConfig;
use nitrosync_shared::control::{SyncError, SyncMode, SyncOutcome, SyncTimings};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Identifies a destination: ids are unique per tenant, so the tenant's key is part of the name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DestinationKey {
    /// The tenant's Ed25519 public key (lowercase hex in JSON).
    #[serde(serialize_with = "serialize_hex", deserialize_with = "deserialize_hex")]
    pub tenant_key: [u8; 32],
    /// The destination id.
    pub id: String,
}

impl DestinationKey {
    /// The key of destination `id` of the tenant `tenant_key`.
    pub fn new(tenant_key: [u8; 32], id: impl Into<String>) -> Self {
        Self {
            tenant_key,
            id: id.into(),
        }
    }
}

impl fmt::Display for DestinationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", hex::encode(self.tenant_key), self.id)
    }
}

fn deserialize_hex<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
    let s = String::deserialize(d)?;
    let bytes = crate::from_hex(&s).map_err(serde::de::Error::custom)?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| serde::de::Error::custom("expected 32 bytes"))
}

fn serialize_hex<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

/// Where a destination stands in the sync cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationState {
    /// The stored bundle waits to be written (at `next_attempt_at`).
    Pending,
    /// Handed to the scheduler by the scheduler; its result is not recorded yet.
    Syncing,
    /// The stored bundle's version was written (or was already there).
    Synced,
    /// The last attempt failed; the scheduler retries at `next_attempt_at`.
    FailedRetryable,
    /// The last attempt failed and waits for a person: a new bundle or an explicit retry.
    FailedTerminal,
}

impl DestinationState {
    /// Every state.
    pub const ALL: [DestinationState; 5] = [
        DestinationState::Pending,
        DestinationState::Syncing,
        DestinationState::Synced,
        DestinationState::FailedRetryable,
        DestinationState::FailedTerminal,
    ];

    /// The state as stored and shown (`failed_retryable`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationState::Pending => "pending",
            DestinationState::Syncing => "syncing",
            DestinationState::Synced => "synced",
            DestinationState::FailedRetryable => "failed_retryable",
            DestinationState::FailedTerminal => "failed_terminal",
        }
    }

    /// The state named `s`, as [`as_str`](Self::as_str) writes it.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for DestinationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The label under which the store's state counts counts
/// disabled destinations.
pub const DISABLED: &str = "disabled";

/// The last failure of a destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    /// The product error code.
    pub code: ErrorCode,
    /// What happened.
    pub message: String,
    /// When the attempt finished (Unix milliseconds).
    pub at_ms: u64,
}

/// A destination as stored: its configuration from the newest signed header, and its sync state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationRecord {
    /// Tenant and id.
    pub key: DestinationKey,
    /// The configuration from the newest accepted bundle's header.
    pub config: DestinationConfig,
    /// The SAML subject the enclave will derive (DESIGN §3), for the customer's trust policy.
    pub saml_subject: String,
    /// Whether the scheduler syncs it.
    pub enabled: bool,
    /// Where it stands.
    pub state: DestinationState,
    /// The stored (newest) bundle's version.
    pub version: u64,
    /// When the stored bundle arrived (Unix milliseconds).
    pub received_at_ms: u64,
    /// The newest version known written, if any.
    pub synced_version: Option<u64>,
    /// When that write was recorded (Unix milliseconds).
    pub synced_at_ms: Option<u64>,
    /// When the scheduler may next try (pending and retryable states).
    pub next_attempt_at_ms: Option<u64>,
    /// Failed attempts since the last success, new bundle or explicit retry.
    pub attempts: u32,
    /// The last failure, kept until a success.
    pub last_error: Option<LastError>,
    /// When the destination first appeared (Unix milliseconds).
    pub created_at_ms: u64,
    /// When its configuration or enablement last changed (Unix milliseconds).
    pub updated_at_ms: u64,
}

impl DestinationRecord {
    /// `disabled` for a disabled destination, else its state's name.
    pub fn status(&self) -> &'static str {
        if self.enabled {
            self.state.as_str()
        } else {
            DISABLED
        }
    }
}

/// One sync attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// Increases with every record in the store.
    pub seq: u64,
    /// The bundle version attempted.
    pub version: u64,
    /// What was asked.
    pub mode: SyncMode,
    /// What happened.
    pub outcome: SyncOutcome,
    /// Why it failed, when it did.
    pub error: Option<SyncError>,
    /// The AWS version id written, when a write happened.
    pub aws_version_id: Option<String>,
    /// The secret's ARN, when known.
    pub secret_arn: Option<String>,
    /// The enclave's timings.
    pub timings: SyncTimings,
    /// When the parent sent the request (Unix milliseconds).
    pub started_at_ms: u64,
    /// When the report arrived (Unix milliseconds).
    pub finished_at_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_round_trip() {
        for s in DestinationState::ALL {
            assert_eq!(DestinationState::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::from(s.as_str())
            );
        }
        assert_eq!(DestinationState::parse("bogus"), None);
    }

    #[test]
    fn keys_print_as_hex() {
        let key = DestinationKey::new([0xab; 32], "prod");
        assert_eq!(key.to_string(), format!("{}/prod", "ab".repeat(32)));
        let json = serde_json::to_value(&key).unwrap();
        assert_eq!(json["tenant_key"], "ab".repeat(32));
        let back: DestinationKey = serde_json::from_value(json).unwrap();
        assert_eq!(back, key);
    }
}
