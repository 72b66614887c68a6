//! The parent side of nitrosync: everything that runs on the EC2 host outside the enclave.
//!
//! - [`relay`]: allowlisted outbound TCP for the enclave. It reads one `Connect` preface, checks
//!   it against the [`relay::RelayPolicy`], dials, and then copies opaque bytes (TLS records) both
//!   ways. It never sees plaintext.
//! - [`control`]: the control connection to the enclave, with reconnection and request ids.
//! - [`admin`]: the HTTP+JSON admin API on a Unix socket, used by the `nitrosync` CLI.
//! - [`daemon`]: wiring of the above with an explicit lifecycle (`start` → [`daemon::Handle`]).
//! - [`config`]: the TOML file, environment and flags, validated into [`config::ParentConfig`].
//!
//! It does not own the wire formats (`nitrosync-shared`) or socket set-up (`nitrosync-transport`),
//! and it never holds a variable value or key material.

#![warn(missing_docs)]

pub mod admin;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod iam;
pub mod iam_apply;
pub mod logging;
pub mod metrics;
pub mod relay;
pub mod scheduler;
pub mod store;

/// Environment variable names, in one place.
pub mod env {
    /// Path of the parent's TOML config file.
    pub const CONFIG: &str = "NITROSYNC_CONFIG";
    /// The enclave's control endpoint (overrides the file).
    pub const CONTROL: &str = "NITROSYNC_CONTROL";
    /// The relay's listen endpoint (overrides the file).
    pub const RELAY_LISTEN: &str = "NITROSYNC_RELAY_LISTEN";
    /// The admin socket path, for the daemon and the CLI.
    pub const ADMIN_SOCKET: &str = "NITROSYNC_ADMIN_SOCKET";
    /// `text` or `json`.
    pub const LOG_FORMAT: &str = "NITROSYNC_LOG_FORMAT";
    /// The parent's SQLite store.
    pub const STORE: &str = "NITROSYNC_STORE";
    /// The tenant directory of the CLI (key and destination files).
    pub const TENANT_DIR: &str = "NITROSYNC_TENANT_DIR";
}

/// Errors of the parent library. Each says what failed and carries its source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParentError {
    /// The configuration is invalid; the message names the key.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ConfigRead {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A listener could not be bound.
    #[error(transparent)]
    Transport(#[from] nitrosync_transport::TransportError),
    /// The admin socket could not be used.
    #[error("admin socket {path}: {source}")]
    Admin {
        /// The socket path.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
