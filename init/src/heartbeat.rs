//! The Nitro heartbeat: `nitro-cli run-enclave` listens on vsock CID 3 (the parent) port 9000
//! while the enclave boots and waits for the byte `0xB7`, which it echoes back. Without it,
//! `nitro-cli` reports that the enclave failed to boot.
//!
//! Sending it never fails the boot: under QEMU, in tests, or when vsock is absent, nobody
//! answers, and init reports that and carries on. [`heartbeat`] takes the connection as a
//! closure, so tests can hand it any stream; [`connect_vsock`] is the real one, with a timeout
//! on connecting and on every read and write.

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, VsockAddr, connect, getsockopt, socket, sockopt,
};

/// The parent's vsock CID, as seen from an enclave.
pub const HEARTBEAT_CID: u32 = 3;
/// The port `nitro-cli` listens on while the enclave boots.
pub const HEARTBEAT_PORT: u32 = 9000;
/// The byte sent, and expected back.
pub const HEARTBEAT_BYTE: u8 = 0xB7;
/// How long connecting, and then waiting for the answer, may each take.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3);

/// The step of the exchange that got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Connecting to the parent.
    Connect,
    /// Sending the heartbeat byte.
    Send,
    /// Reading the answer.
    Reply,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connect",
            Self::Send => "send",
            Self::Reply => "reply",
        })
    }
}

/// How the heartbeat went. None of these stops the boot.
#[derive(Debug)]
pub enum Heartbeat {
    /// The parent echoed `0xB7`.
    Acknowledged,
    /// The parent answered another byte.
    WrongReply(u8),
    /// Nobody answered: no vsock, nobody listening, a timeout, or the peer hung up.
    Unanswered {
        /// Where it stopped.
        step: Step,
        /// Why.
        error: io::Error,
    },
}

impl fmt::Display for Heartbeat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Acknowledged => write!(
                f,
                "heartbeat acknowledged by the parent (vsock {HEARTBEAT_CID}:{HEARTBEAT_PORT})"
            ),
            Self::WrongReply(b) => write!(
                f,
                "heartbeat answered with 0x{b:02x} instead of 0x{HEARTBEAT_BYTE:02x}; continuing"
            ),
            Self::Unanswered { step, error } => write!(
                f,
                "no heartbeat answer (vsock {HEARTBEAT_CID}:{HEARTBEAT_PORT}, {step}: {error}); \
                 continuing, as expected outside a Nitro enclave"
            ),
        }
    }
}

/// Connects with `connect`, sends [`HEARTBEAT_BYTE`] and reads one byte back. Never fails:
/// every outcome is a [`Heartbeat`]. `connect` is responsible for the timeouts of the stream it
/// returns.
pub fn heartbeat<S, C>(connect: C) -> Heartbeat
where
    S: Read + Write,
    C: FnOnce() -> io::Result<S>,
{
    let unanswered = |step, error| Heartbeat::Unanswered { step, error };
    let mut stream = match connect() {
        Ok(stream) => stream,
        Err(e) => return unanswered(Step::Connect, e),
    };
    if let Err(e) = stream.write_all(&[HEARTBEAT_BYTE]) {
        return unanswered(Step::Send, e);
    }
    let mut reply = [0u8; 1];
    match stream.read_exact(&mut reply) {
        Ok(()) if reply[0] == HEARTBEAT_BYTE => Heartbeat::Acknowledged,
        Ok(()) => Heartbeat::WrongReply(reply[0]),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => unanswered(
            Step::Reply,
            io::Error::new(
                ErrorKind::UnexpectedEof,
                "the peer closed without answering",
            ),
        ),
        Err(e) => unanswered(Step::Reply, e),
    }
}

/// A connected, non-blocking vsock stream whose reads and writes wait at most `timeout`.
#[derive(Debug)]
pub struct VsockStream {
    fd: OwnedFd,
    timeout: Duration,
}

/// Waits until `fd` is ready for `events`, at most `timeout`.
fn wait_ready(fd: &OwnedFd, events: PollFlags, timeout: Duration) -> io::Result<()> {
    let limit = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), events)];
        match poll(&mut fds, limit) {
            Ok(0) => {
                return Err(io::Error::new(
                    ErrorKind::TimedOut,
                    format!("no answer within {timeout:?}"),
                ));
            }
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Connects a vsock stream to `cid:port`, giving up after `timeout`.
pub fn connect_vsock(cid: u32, port: u32, timeout: Duration) -> io::Result<VsockStream> {
    let fd = socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    match connect(fd.as_raw_fd(), &VsockAddr::new(cid, port)) {
        Ok(()) => {}
        Err(Errno::EINPROGRESS) => {
            wait_ready(&fd, PollFlags::POLLOUT, timeout)?;
            let error = getsockopt(&fd, sockopt::SocketError)?;
            if error != 0 {
                return Err(io::Error::from_raw_os_error(error));
            }
        }
        Err(e) => return Err(e.into()),
    }
    Ok(VsockStream { fd, timeout })
}

impl Read for VsockStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            wait_ready(&self.fd, PollFlags::POLLIN, self.timeout)?;
            match nix::unistd::read(&self.fd, buf) {
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                other => return other.map_err(io::Error::from),
            }
        }
    }
}

impl Write for VsockStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            wait_ready(&self.fd, PollFlags::POLLOUT, self.timeout)?;
            match nix::unistd::write(&self.fd, buf) {
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                other => return other.map_err(io::Error::from),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::net::UnixStream;

    /// A peer that reads one byte and answers `reply` (or hangs up if `None`).
    fn peer(reply: Option<u8>) -> (UnixStream, std::thread::JoinHandle<u8>) {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let handle = std::thread::spawn(move || {
            let mut got = [0u8; 1];
            theirs.read_exact(&mut got).unwrap();
            if let Some(b) = reply {
                theirs.write_all(&[b]).unwrap();
            }
            got[0]
        });
        (ours, handle)
    }

    #[test]
    fn an_echoed_byte_is_an_acknowledgement() {
        let (stream, handle) = peer(Some(HEARTBEAT_BYTE));
        assert!(matches!(heartbeat(|| Ok(stream)), Heartbeat::Acknowledged));
        assert_eq!(handle.join().unwrap(), 0xB7);
    }

    #[test]
    fn another_byte_or_a_hang_up_is_reported_not_fatal() {
        let (stream, handle) = peer(Some(0));
        assert!(matches!(heartbeat(|| Ok(stream)), Heartbeat::WrongReply(0)));
        handle.join().unwrap();

        let (stream, handle) = peer(None);
        let outcome = heartbeat(|| Ok(stream));
        handle.join().unwrap();
        assert!(
            matches!(
                outcome,
                Heartbeat::Unanswered {
                    step: Step::Reply,
                    ..
                }
            ),
            "{outcome}"
        );
        assert!(outcome.to_string().contains("closed without answering"));
    }

    #[test]
    fn a_refused_connection_returns_unanswered() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let outcome = heartbeat(|| TcpStream::connect_timeout(&addr, Duration::from_secs(2)));
        match &outcome {
            Heartbeat::Unanswered {
                step: Step::Connect,
                error,
            } => assert_eq!(error.kind(), ErrorKind::ConnectionRefused),
            other => panic!("expected a refused connect, got {other}"),
        }
        assert!(outcome.to_string().contains("continuing"));
    }

    #[test]
    fn a_silent_peer_times_out() {
        let (ours, _theirs) = UnixStream::pair().unwrap();
        ours.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let outcome = heartbeat(|| Ok(ours));
        assert!(
            matches!(
                outcome,
                Heartbeat::Unanswered {
                    step: Step::Reply,
                    ..
                }
            ),
            "{outcome}"
        );
    }

    #[test]
    fn the_real_vsock_heartbeat_returns_where_nobody_answers() {
        // On a development machine or CI there is no Nitro parent: no vsock at all, or nobody
        // on port 9000. Whatever happens, the call returns an outcome.
        let outcome =
            heartbeat(|| connect_vsock(HEARTBEAT_CID, HEARTBEAT_PORT, Duration::from_millis(200)));
        assert!(!outcome.to_string().is_empty());
    }
}
