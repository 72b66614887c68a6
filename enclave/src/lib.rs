//! The nitrosync enclave program.
//!
//! It owns what must never leave the enclave: (in later work) the keys, the decrypted variables
//! and the STS credentials. Here it serves the parent's control connection ([`control`]), and
//! reaches AWS with TLS that ends inside this process, over tunnels opened through the parent's
//! relay ([`https`]). Its logs leave only as control-connection events ([`logs`]), so nothing
//! secret may be logged.
//!
//! It does not own the wire formats (`nitrosync-shared`), socket set-up
//! (`nitrosync-transport`) or anything the parent stores.

#![warn(missing_docs)]

pub mod clock;
pub mod config;
pub mod control;
pub mod https;
pub mod identity;
pub mod logs;
pub mod probe;
pub mod sync;

/// Errors of the enclave library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnclaveError {
    /// Invalid settings; the message names the setting.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The simulator CA could not be read or parsed.
    #[error("simulator CA {path}: {reason}")]
    SimulatorCa {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// TLS could not be configured.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A listener could not be bound.
    #[error(transparent)]
    Transport(#[from] nitrosync_transport::TransportError),
}
