//! Sealed bundles for nitrosync (DESIGN §6): the cryptography around
//! [`nitrosync_shared::bundle::SealedBundle`].
//!
//! This crate owns both ends of a bundle. The tenant's CLI calls [`seal`]: it validates the
//! destination and the variable names, encrypts the variables to the enclave's attested X25519
//! key with HPKE (RFC 9180 base mode; DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM, with
//! the canonical header as associated data), and signs header, encapsulated key and ciphertext
//! with the tenant's Ed25519 key. The enclave calls [`open`]: it checks sizes, header, enclave
//! key and signature before it decrypts anything, then decodes and checks the variables. It also
//! owns the key types ([`TenantKey`], [`EnclaveBundleKey`]), the redacting, zeroizing secret
//! types ([`SecretValue`], [`Variables`]) and the deterministic JSON rendering of the variables
//! ([`render_json`]).
//!
//! It does not own the wire types, their validation, the signed-bytes layout or the SAML subject
//! formula (those are in `nitrosync-shared`), nor key persistence, attestation, rollback checks
//! against the stored version, or the 65,536-byte secret size limit, which belong to the enclave.
//! It is sans-io: randomness comes in as an argument, and there is no clock, file or socket.
//!
//! It also signs and verifies tenant API requests ([`TenantKey::sign_request`],
//! [`verify_request`]) over the bytes `nitrosync-shared` defines: the same Ed25519 key, another
//! domain.
//!
//! Everything but [`verify_signed`] and [`verify_request`] is behind the default `seal` feature. The parent turns it
//! off: it checks a submission's signature, and has no HPKE, key types or secret types linked.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
#[cfg(feature = "seal")]
mod keys;
mod request;
#[cfg(feature = "seal")]
mod seal;
#[cfg(feature = "seal")]
mod secret;
mod verify;

pub use error::BundleError;
#[cfg(feature = "seal")]
pub use keys::{EnclaveBundleKey, TenantKey};
pub use request::verify_request;
#[cfg(feature = "seal")]
pub use seal::{OpenedBundle, open, seal};
#[cfg(feature = "seal")]
pub use secret::{SecretValue, Variables, render_json};
pub use verify::verify_signed;

/// The HPKE `info` string: binds every bundle key schedule to this format and purpose.
pub const HPKE_INFO: &[u8] = b"nitrosync/bundle/v1 hpke";

/// Length of the HPKE encapsulated key (`Nenc` of DHKEM(X25519, HKDF-SHA256)).
pub const ENC_LEN: usize = 32;

/// Length of the AES-256-GCM tag that ends every ciphertext.
pub const TAG_LEN: usize = 16;
