//! `nitrosync-api`: the contract of the operator's admin API, and the client both CLIs use.
//!
//! It owns the request and response bodies ([`types`], [`records`]), the paths ([`paths`]), the
//! error body, [`client::AdminClient`], which speaks HTTP/1.1 + JSON over the daemon's Unix
//! socket, and [`TenantApiClient`], which speaks the same over TLS to the tenant API with every
//! request signed by the tenant (through a [`RequestSigner`]: the key stays with the caller);
//! [`ApiClient`] is either. It does not own the server (that is `nitrosync-parent`) and holds no secret: every body
//! here is metadata or ciphertext.

#![warn(missing_docs)]

pub mod client;
pub mod records;
pub mod tenant_client;
pub mod types;

pub use client::{AdminClient, ApiClient, ClientError};
pub use tenant_client::{ENV_ENDPOINT, ENV_ENDPOINT_CA, RequestSigner, TenantApiClient};
pub use types::*;

/// Environment variable naming the admin socket, for the daemon and the CLI.
pub const ENV_ADMIN_SOCKET: &str = "NITROSYNC_ADMIN_SOCKET";

/// The admin socket's default path.
pub const DEFAULT_ADMIN_SOCKET: &str = "/run/nitrosync/admin.sock";

/// In simulator mode, the daemon writes the simulated NSM's root certificate under this name
/// beside its admin socket.
pub const SIM_ROOT_FILE: &str = "sim-root.pem";

/// The admin API's paths.
pub mod paths {
    /// `GET`: [`Status`](crate::Status).
    pub const STATUS: &str = "/v1/status";
    /// `GET`: [`EnclaveDescription`](crate::EnclaveDescription).
    pub const ENCLAVE_DESCRIBE: &str = "/v1/enclave/describe";
    /// `GET`: the SAML metadata XML.
    pub const SAML_METADATA: &str = "/v1/enclave/saml-metadata";
    /// `POST` [`AttestRequest`](crate::AttestRequest): [`AttestationReply`](crate::AttestationReply).
    pub const ENCLAVE_ATTEST: &str = "/v1/enclave/attest";
    /// `POST` [`ProbeRequest`](crate::ProbeRequest): a `ProbeReport`.
    pub const ENCLAVE_PROBE: &str = "/v1/enclave/probe";
    /// `POST` [`RotateRequest`](crate::RotateRequest): [`RotateReply`](crate::RotateReply).
    pub const ENCLAVE_ROTATE: &str = "/v1/enclave/rotate";
    /// `POST` a sealed bundle's bytes: [`SubmitReply`](crate::SubmitReply).
    pub const BUNDLES: &str = "/v1/bundles";
    /// `GET`: every destination; `/{tenant}/{id}[/action]` below it.
    pub const DESTINATIONS: &str = "/v1/destinations";

    /// The path of one destination, `/v1/destinations/{tenant hex}/{id}`.
    pub fn destination(tenant_key: &[u8; 32], id: &str) -> String {
        format!("{DESTINATIONS}/{}/{id}", hex::encode(tenant_key))
    }
}

/// Lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Parses hex; an optional `0x` prefix is allowed.
pub fn from_hex(s: &str) -> Result<Vec<u8>, hex::FromHexError> {
    hex::decode(s.strip_prefix("0x").unwrap_or(s))
}
