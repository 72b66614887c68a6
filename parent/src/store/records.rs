//! The values the store hands out. The ones the operator's API carries are defined in
//! `nitrosync-api` and re-exported here.

use crate::ParentError;
pub use nitrosync_api::records::{
    DISABLED, DestinationKey, DestinationRecord, DestinationState, HistoryRecord, LastError,
};
use nitrosync_shared::ErrorCode;
use nitrosync_shared::control::{SyncMode, SyncOutcome};
use serde::{Deserialize, Serialize};
use std::fmt;

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

pub(super) fn parse_mode(s: &str) -> Result<SyncMode, ParentError> {
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

pub(super) fn parse_outcome(s: &str) -> Result<SyncOutcome, ParentError> {
    OUTCOMES
        .into_iter()
        .find(|o| outcome_str(*o) == s)
        .ok_or_else(|| corrupt("history.outcome", s))
}

pub(super) fn parse_code(column: &'static str, s: &str) -> Result<ErrorCode, ParentError> {
    ErrorCode::ALL
        .into_iter()
        .find(|c| c.as_str() == s)
        .ok_or_else(|| corrupt(column, s))
}

pub(super) fn parse_state(s: &str) -> Result<DestinationState, ParentError> {
    DestinationState::parse(s).ok_or_else(|| corrupt("destinations.state", s))
}

pub(super) fn corrupt(column: &'static str, value: impl fmt::Display) -> ParentError {
    ParentError::Corrupt {
        column,
        detail: format!("unexpected value {value}"),
    }
}

/// SQLite integers are `i64`; every number the store keeps is a `u64` that must fit.
pub(super) fn to_sql(field: &'static str, value: u64) -> Result<i64, ParentError> {
    i64::try_from(value).map_err(|_| ParentError::OutOfRange { field, value })
}

/// The inverse of [`to_sql`]: a negative stored number is corruption.
pub(super) fn from_sql<T: TryFrom<i64>>(
    column: &'static str,
    value: i64,
) -> Result<T, ParentError> {
    T::try_from(value).map_err(|_| corrupt(column, value))
}

pub(super) fn opt_from_sql<T: TryFrom<i64>>(
    column: &'static str,
    value: Option<i64>,
) -> Result<Option<T>, ParentError> {
    value.map(|v| from_sql(column, v)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
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
    fn sql_numbers_are_checked() {
        assert!(to_sql("v", u64::MAX).is_err());
        assert!(from_sql::<u64>("v", -1).is_err());
    }
}
