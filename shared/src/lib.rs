//! Wire types and the sans-io codec shared by the nitrosync enclave, the parent and the CLI.
//!
//! This crate owns what both sides of a connection must agree on: the length-prefixed CBOR
//! [frame](frame) format, the [control](control) messages between parent and enclave, the
//! [tunnel](tunnel) preface the enclave sends to the parent's relay, the [`Endpoint`] address
//! syntax and the product's [`ErrorCode`]s.
//!
//! It does not own I/O. There is no tokio, no socket, no file and no clock here: bytes go in and
//! typed values come out, so both state machines can be driven in memory by tests and fuzzers.
//! Connect and listen code lives in `nitrosync-transport`.

#![warn(missing_docs)]

pub mod binding;
pub mod bundle;
pub mod control;
pub mod endpoint;
pub mod error_code;
pub mod frame;
pub mod hex_bytes;
pub mod measurements;
pub mod names;
pub mod pcr;
pub mod ratelimit;
pub mod request_auth;
pub mod tags;
pub mod tunnel;

pub use endpoint::{Endpoint, EndpointError};
pub use error_code::ErrorCode;
pub use frame::{Decoded, FrameDecoder, FrameError, MAX_FRAME_LEN};

/// The control protocol version this build speaks. Bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// The vsock port the enclave listens on for the parent's control connection.
pub const CONTROL_VSOCK_PORT: u32 = 5000;

/// The vsock port the parent's relay listens on for the enclave's outbound tunnels.
pub const RELAY_VSOCK_PORT: u32 = 8000;

/// Milliseconds since the Unix epoch of `t` (0 before the epoch, `u64::MAX` past year 584 million).
/// The caller reads the clock; this crate does not.
pub fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
