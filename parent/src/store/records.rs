//! The values the store hands out: plain data, serialisable to JSON for the admin API.

use super::StoreError;
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
        write!(f, "{}/{}", hex(&self.tenant_key), self.id)
    }
}

/// Lowercase hex of `bytes`.
pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

fn deserialize_hex<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
    let s = String::deserialize(d)?;
    let bytes = crate::admin::from_hex(&s).map_err(serde::de::Error::custom)?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| serde::de::Error::custom("expected 32 bytes"))
}

fn serialize_hex<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex(bytes))
}

/// Where a destination stands in the sync cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationState {
    /// The stored bundle waits to be written (at `next_attempt_at`).
    Pending,
    /// Handed to the scheduler by [`Store::due`](super::Store::due); its result is not recorded yet.
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

/// Which destinations [`Store::list`](super::Store::list) returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFilter {
    /// Every destination.
    All,
    /// Enabled destinations in this state.
    State(DestinationState),
    /// Disabled destinations, whatever their state.
    Disabled,
}

/// The label under which [`Store::counts_by_state`](super::Store::counts_by_state) counts
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

/// A sync the scheduler should run now, claimed by [`Store::due`](super::Store::due).
#[derive(Clone, PartialEq, Eq)]
pub struct DueSync {
    /// Which destination.
    pub key: DestinationKey,
    /// AWS region, for the per-(account, region) rate limit.
    pub region: String,
    /// AWS account id, for the per-(account, region) rate limit.
    pub account: String,
    /// The stored bundle's version.
    pub version: u64,
    /// The sealed bundle, as submitted (CBOR of `SealedBundle`).
    pub bundle: Vec<u8>,
    /// Always [`SyncMode::Write`] for scheduled syncs.
    pub mode: SyncMode,
    /// Failed attempts so far, for the backoff.
    pub attempts: u32,
}

impl fmt::Debug for DueSync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DueSync")
            .field("key", &self.key)
            .field("region", &self.region)
            .field("account", &self.account)
            .field("version", &self.version)
            .field("bundle_len", &self.bundle.len())
            .field("mode", &self.mode)
            .field("attempts", &self.attempts)
            .finish()
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

/// The answer to a submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubmitOutcome {
    /// Stored durably; it replaced `previous_version`, if there was one.
    Accepted {
        /// The version it replaced.
        previous_version: Option<u64>,
    },
    /// Refused: the stored bundle is as new or newer, and stays.
    Stale {
        /// The stored bundle's version.
        stored_version: u64,
    },
}

/// One bundle of a batch for [`Store::submit_many`](super::Store::submit_many).
#[derive(Debug, Clone, Copy)]
pub struct Submission<'a> {
    /// The sealed bundle's bytes (CBOR of `SealedBundle`), stored as they are.
    pub bundle: &'a [u8],
    /// Its verified header.
    pub header: &'a nitrosync_shared::bundle::BundleHeader,
}

pub(super) fn mode_str(mode: SyncMode) -> &'static str {
    match mode {
        SyncMode::Write => "write",
        SyncMode::TestConnection => "test_connection",
        SyncMode::Delete => "delete",
    }
}

pub(super) fn parse_mode(s: &str) -> Result<SyncMode, StoreError> {
    [SyncMode::Write, SyncMode::TestConnection, SyncMode::Delete]
        .into_iter()
        .find(|m| mode_str(*m) == s)
        .ok_or_else(|| corrupt("history.mode", s))
}

const OUTCOMES: [SyncOutcome; 7] = [
    SyncOutcome::Created,
    SyncOutcome::Updated,
    SyncOutcome::Unchanged,
    SyncOutcome::Tested,
    SyncOutcome::Deleted,
    SyncOutcome::Retained,
    SyncOutcome::Failed,
];

pub(super) fn outcome_str(outcome: SyncOutcome) -> &'static str {
    match outcome {
        SyncOutcome::Created => "created",
        SyncOutcome::Updated => "updated",
        SyncOutcome::Unchanged => "unchanged",
        SyncOutcome::Tested => "tested",
        SyncOutcome::Deleted => "deleted",
        SyncOutcome::Retained => "retained",
        SyncOutcome::Failed => "failed",
    }
}

pub(super) fn parse_outcome(s: &str) -> Result<SyncOutcome, StoreError> {
    OUTCOMES
        .into_iter()
        .find(|o| outcome_str(*o) == s)
        .ok_or_else(|| corrupt("history.outcome", s))
}

pub(super) fn parse_code(column: &'static str, s: &str) -> Result<ErrorCode, StoreError> {
    ErrorCode::ALL
        .into_iter()
        .find(|c| c.as_str() == s)
        .ok_or_else(|| corrupt(column, s))
}

pub(super) fn parse_state(s: &str) -> Result<DestinationState, StoreError> {
    DestinationState::parse(s).ok_or_else(|| corrupt("destinations.state", s))
}

pub(super) fn corrupt(column: &'static str, value: impl fmt::Display) -> StoreError {
    StoreError::Corrupt {
        column,
        detail: format!("unexpected value {value}"),
    }
}

/// SQLite integers are `i64`; every number the store keeps is a `u64` that must fit.
pub(super) fn to_sql(field: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { field, value })
}

/// The inverse of [`to_sql`]: a negative stored number is corruption.
pub(super) fn from_sql<T: TryFrom<i64>>(column: &'static str, value: i64) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| corrupt(column, value))
}

pub(super) fn opt_from_sql<T: TryFrom<i64>>(
    column: &'static str,
    value: Option<i64>,
) -> Result<Option<T>, StoreError> {
    value.map(|v| from_sql(column, v)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in DestinationState::ALL {
            assert_eq!(DestinationState::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::from(s.as_str())
            );
        }
        for m in [SyncMode::Write, SyncMode::TestConnection, SyncMode::Delete] {
            assert_eq!(parse_mode(mode_str(m)).unwrap(), m);
        }
        for o in OUTCOMES {
            assert_eq!(parse_outcome(outcome_str(o)).unwrap(), o);
        }
        for c in ErrorCode::ALL {
            assert_eq!(parse_code("c", c.as_str()).unwrap(), c);
        }
        assert!(parse_state("bogus").is_err());
    }

    #[test]
    fn keys_print_as_hex() {
        let key = DestinationKey::new([0xab; 32], "prod");
        assert_eq!(key.to_string(), format!("{}/prod", "ab".repeat(32)));
        let json = serde_json::to_value(&key).unwrap();
        assert_eq!(json["tenant_key"], "ab".repeat(32));
        assert!(to_sql("v", u64::MAX).is_err());
        assert!(from_sql::<u64>("v", -1).is_err());
    }
}
