//! The one error type of `nitrosync-parent`. Each variant says what failed, whose problem it is,
//! and carries its source. The store's variants are the operator's or the disk's problem, never
//! a tenant's: a tenant's stale submit is a `SubmitOutcome::Stale`,
//! not an error.

use std::borrow::Cow;
use std::path::PathBuf;

/// Errors of the parent library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParentError {
    /// The config file is not valid TOML or has an unknown key (the message names it).
    #[error("{path}: {source}")]
    ConfigSyntax {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: toml::de::Error,
    },
    /// A config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A setting is out of range or does not parse.
    #[error("invalid configuration: {key}: {reason}")]
    InvalidSetting {
        /// The key, as written in the file (`relay.max_connections`).
        key: Cow<'static, str>,
        /// What is wrong with it.
        reason: Cow<'static, str>,
        /// The parser's error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// No config file was given and the flags or environment do not name the store and the
    /// admin socket: the daemon uses no default path unless a config file asks for it, so that
    /// running it by hand creates no directory. The message says what to give.
    #[error("{0}")]
    Unconfigured(String),
    /// A listener could not be bound.
    #[error(transparent)]
    Transport(#[from] nitrosync_transport::TransportError),
    /// The relay could not start.
    #[error("relay: {0}")]
    Relay(#[from] nitrosync_relay::RelayError),
    /// The admin socket's directory could not be made.
    #[error("admin socket {path}: {source}")]
    Admin {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The metrics listener could not be bound.
    #[error("metrics listener {addr}: {source}")]
    MetricsBind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The tenant API's certificate or key cannot be used.
    #[error("tenant API TLS: {path}: {reason}")]
    TenantApiTls {
        /// The PEM file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The tenant API's listener could not be bound.
    #[error("tenant API listener {addr}: {source}")]
    TenantApiBind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store's directory could not be made.
    #[error("store directory {path}: {source}")]
    StoreDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database file could not be opened or configured. Fatal at start.
    #[error("cannot open store {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// SQLite would not switch to WAL mode (for example an in-memory database). Fatal at start.
    #[error("store {path}: journal mode is {mode:?}, not WAL")]
    JournalMode {
        /// The database file.
        path: PathBuf,
        /// The mode SQLite kept.
        mode: String,
    },
    /// The file is an SQLite database of some other program. Fatal at start.
    #[error("{path} is an SQLite database of another program, not a nitrosync store")]
    NotAStore {
        /// The database file.
        path: PathBuf,
    },
    /// The database was written by a newer nitrosync; this build will not touch it. Fatal at
    /// start: run the newer build, or restore a backup.
    #[error(
        "store {path} has schema version {found}, newer than the {known} this build knows; \
         it was written by a newer nitrosync-parent"
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// The newest version this build knows.
        known: u32,
    },
    /// A schema migration failed; the database stays at the version before it.
    #[error("store {path}: migration to schema version {version} failed: {source}")]
    Migration {
        /// The database file.
        path: PathBuf,
        /// The version being migrated to.
        version: i64,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// A query failed (disk full, I/O error, lock timeout). The transaction was rolled back;
    /// a submit was not stored and must not be acknowledged.
    #[error("store query failed: {0}")]
    Query(#[from] rusqlite::Error),
    /// A stored value is not one this build writes: the file was edited or damaged.
    #[error("store holds a corrupt value in {column}: {detail}")]
    Corrupt {
        /// `table.column`.
        column: &'static str,
        /// What was found.
        detail: String,
    },
    /// A number does not fit SQLite's signed 64-bit integers. The caller passed it.
    #[error("{field} {value} is too large to store")]
    OutOfRange {
        /// What it is.
        field: &'static str,
        /// The value.
        value: u64,
    },
    /// A bundle larger than a frame can carry. The caller passed it.
    #[error("bundle of {len} bytes is larger than the {max}-byte maximum")]
    BundleTooLarge {
        /// Its length.
        len: usize,
        /// The maximum (`nitrosync_shared::MAX_FRAME_LEN`).
        max: usize,
    },
    /// A destination's role ARN names no account, so it has no rate bucket of its own. Bundles
    /// are validated before they are stored, so this is a caller's bug or a damaged store.
    #[error("destination {destination}: role ARN {role_arn:?} names no AWS account")]
    NoAccount {
        /// The destination id.
        destination: String,
        /// The role ARN.
        role_arn: String,
    },
    /// A destination's configuration could not be written or read as JSON.
    #[error("destination config JSON: {0}")]
    ConfigJson(#[source] serde_json::Error),
    /// The group-commit task has stopped; the submit was not stored.
    #[error("the store's committer has stopped; the submit was not stored")]
    CommitterStopped,
    /// A blocking store task did not finish (it panicked or was cancelled).
    #[error("a store task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl ParentError {
    /// An out-of-range setting.
    pub(crate) fn setting(
        key: impl Into<Cow<'static, str>>,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        ParentError::InvalidSetting {
            key: key.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// A setting whose value does not parse.
    pub(crate) fn unparsable(
        key: impl Into<Cow<'static, str>>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        let reason = Cow::Owned(source.to_string());
        ParentError::InvalidSetting {
            key: key.into(),
            reason,
            source: Some(Box::new(source)),
        }
    }
}
