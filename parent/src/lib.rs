//! `nitrosync-parent`: the operator's control plane on the EC2 host, in layers. Each module uses
//! only the ones listed before it:
//!
//! 1. [`config`]: the TOML file, environment and flags, validated into [`config::ParentConfig`];
//!    [`logging`].
//! 2. [`store`] (SQLite: destinations, sealed bundles, history) and [`control`] (the control
//!    connection to the enclave, with reconnection and request ids).
//! 3. [`scheduler`]: the only way into a sync. It paces, claims and runs scheduled syncs, and
//!    runs the admin API's test and delete through [`scheduler::Scheduler::run_now`].
//! 4. [`admin`]: the HTTP+JSON admin API on a Unix socket (its contract is `nitrosync-api`);
//!    [`tenant_api`]: the same handlers over TLS on TCP for tenants, each request signed by the
//!    tenant's key and limited to the tenant's own destinations.
//! 5. [`metrics`]: Prometheus text from the store, the scheduler and the relay.
//! 6. [`daemon`]: wiring of the above and the relay (`nitrosync-relay`), with an explicit
//!    lifecycle (`start` → [`daemon::Handle`]).
//!
//! It does not own the wire formats (`nitrosync-shared`), socket set-up (`nitrosync-transport`),
//! the data plane (`nitrosync-relay`), the tenant's tools or the customer's IAM (`nitrosync-cli`,
//! `nitrosync-iam`). It never holds a variable value or key material: bundles pass through it
//! sealed.

#![warn(missing_docs)]

pub mod admin;
pub mod config;
pub mod control;
pub mod daemon;
pub mod fd_limit;
pub mod identity;
pub mod logging;
pub mod metrics;
pub mod scheduler;
pub mod store;
pub mod tenant_api;

/// Environment variable names, in one place.
pub mod env {
    /// Path of the parent's TOML config file.
    pub const CONFIG: &str = "NITROSYNC_CONFIG";
    /// The enclave's control endpoint (overrides the file).
    pub const CONTROL: &str = "NITROSYNC_CONTROL";
    /// The relay's listen endpoint (overrides the file).
    pub const RELAY_LISTEN: &str = "NITROSYNC_RELAY_LISTEN";
    /// The admin socket path, for the daemon and the CLI.
    pub const ADMIN_SOCKET: &str = nitrosync_api::ENV_ADMIN_SOCKET;
    /// `text` or `json`.
    pub const LOG_FORMAT: &str = "NITROSYNC_LOG_FORMAT";
    /// The parent's SQLite store.
    pub const STORE: &str = "NITROSYNC_STORE";
    /// The tenant API's TCP address, host:port (off unless set).
    pub const TENANT_API_LISTEN: &str = "NITROSYNC_TENANT_API_LISTEN";
    /// The tenant API's PEM certificate chain.
    pub const TENANT_API_CERT: &str = "NITROSYNC_TENANT_API_CERT";
    /// The tenant API's PEM private key.
    pub const TENANT_API_KEY: &str = "NITROSYNC_TENANT_API_KEY";
    /// The KMS key that seals the enclave's identity.
    pub const IDENTITY_KMS_KEY: &str = "NITROSYNC_IDENTITY_KMS_KEY";
}

mod error;

pub use error::ParentError;
