//! The one transport seam of nitrosync: connect to and listen on an [`Endpoint`], which is a
//! vsock address on Nitro hardware and a Unix socket in simulator mode and tests, plus async
//! frame reading and writing on top of the sans-io codec in `nitrosync-shared`.
//!
//! Everything above this crate is written against [`Stream`] and [`Listener`], so the same code
//! runs in an enclave and in CI. The vsock half compiles and is type-checked everywhere; it can
//! only run where the kernel has a vsock transport.
//!
//! This crate owns no protocol logic: what the frames mean is the business of the enclave and
//! parent crates.

#![warn(missing_docs)]

mod framed;
mod stream;

pub use framed::{FrameReader, read_one_frame, write_frame};
pub use stream::{Listener, Stream, StreamRead, StreamWrite, connect};

use nitrosync_shared::FrameError;

/// A transport failure. `Io` is the network's or the kernel's; `Frame` is the peer's fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The socket failed.
    #[error("i/o error on {endpoint}: {source}")]
    Io {
        /// The endpoint (or "peer") involved.
        endpoint: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The peer sent bytes that are not a valid frame or message.
    #[error("protocol error from peer: {0}")]
    Frame(#[from] FrameError),
    /// The peer did not send what was expected in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}

impl TransportError {
    pub(crate) fn io(endpoint: impl ToString, source: std::io::Error) -> Self {
        TransportError::Io {
            endpoint: endpoint.to_string(),
            source,
        }
    }
}

pub use nitrosync_shared::Endpoint;
