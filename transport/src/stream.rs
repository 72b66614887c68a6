//! Streams and listeners over either endpoint kind.

use crate::TransportError;
use nitrosync_shared::Endpoint;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio_vsock::{VsockAddr, VsockListener, VsockStream};

/// A connected byte stream: a Unix socket or a vsock connection.
#[derive(Debug)]
pub enum Stream {
    /// A Unix stream socket.
    Unix(UnixStream),
    /// A vsock stream.
    Vsock(VsockStream),
}

/// The read half of a [`Stream`], borrowed without locking.
#[derive(Debug)]
pub enum StreamRead<'a> {
    /// Unix.
    Unix(tokio::net::unix::ReadHalf<'a>),
    /// Vsock.
    Vsock(tokio_vsock::ReadHalf<'a>),
}

/// The write half of a [`Stream`], borrowed without locking.
#[derive(Debug)]
pub enum StreamWrite<'a> {
    /// Unix.
    Unix(tokio::net::unix::WriteHalf<'a>),
    /// Vsock.
    Vsock(tokio_vsock::WriteHalf<'a>),
}

impl Stream {
    /// Splits into halves that can be used concurrently (for example, one copy loop each).
    /// Unlike `tokio::io::split`, this takes no lock per operation.
    pub fn split(&mut self) -> (StreamRead<'_>, StreamWrite<'_>) {
        match self {
            Stream::Unix(s) => {
                let (r, w) = s.split();
                (StreamRead::Unix(r), StreamWrite::Unix(w))
            }
            Stream::Vsock(s) => {
                let (r, w) = s.split();
                (StreamRead::Vsock(r), StreamWrite::Vsock(w))
            }
        }
    }

    /// Closes the write half, so the peer reads EOF while we can still read.
    pub async fn shutdown_write(&mut self) -> io::Result<()> {
        // Both types implement `poll_shutdown` as shutdown(SHUT_WR).
        tokio::io::AsyncWriteExt::shutdown(self).await
    }
}

/// How long [`connect`] keeps retrying a Unix socket whose listen backlog is full.
pub const UNIX_BACKLOG_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Connects to `endpoint`.
///
/// A non-blocking connect to a Unix socket whose listen backlog is full fails at once with
/// `EAGAIN`, where a blocking one would wait for room. This waits too: it retries, backing off
/// from 1 ms to 64 ms, for up to [`UNIX_BACKLOG_WAIT`] (a burst of connections the listener is
/// still accepting), then returns the error (a listener that has stopped accepting).
pub async fn connect(endpoint: &Endpoint) -> Result<Stream, TransportError> {
    match endpoint {
        Endpoint::Unix(path) => {
            let started = tokio::time::Instant::now();
            let mut pause = std::time::Duration::from_millis(1);
            loop {
                match UnixStream::connect(path).await {
                    Ok(s) => return Ok(Stream::Unix(s)),
                    Err(e)
                        if e.kind() == io::ErrorKind::WouldBlock
                            && started.elapsed() < UNIX_BACKLOG_WAIT =>
                    {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(std::time::Duration::from_millis(64));
                    }
                    Err(e) => return Err(TransportError::io(endpoint, e)),
                }
            }
        }
        Endpoint::Vsock { cid, port } => VsockStream::connect(VsockAddr::new(*cid, *port))
            .await
            .map(Stream::Vsock)
            .map_err(|e| TransportError::io(endpoint, e)),
    }
}

/// A listening socket on an [`Endpoint`].
#[derive(Debug)]
pub enum Listener {
    /// A Unix listener; the path is removed when the listener is dropped.
    Unix(UnixListener, UnixPathGuard),
    /// A vsock listener.
    Vsock(VsockListener),
}

/// Removes a Unix socket path on drop.
#[derive(Debug)]
pub struct UnixPathGuard(PathBuf);

impl Drop for UnixPathGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Listener {
    /// Binds `endpoint`. For a Unix path, a stale socket file that nobody listens on is
    /// replaced; a live one is an `AddrInUse` error, and a path that is not a socket is never
    /// removed. The socket is made mode 0600: only the owner may connect.
    pub async fn bind(endpoint: &Endpoint) -> Result<Listener, TransportError> {
        let err = |e| TransportError::io(endpoint, e);
        match endpoint {
            Endpoint::Unix(path) => {
                remove_stale_socket(path).await.map_err(err)?;
                let listener = UnixListener::bind(path).map_err(err)?;
                set_owner_only(path).await.map_err(err)?;
                Ok(Listener::Unix(listener, UnixPathGuard(path.clone())))
            }
            Endpoint::Vsock { cid, port } => VsockListener::bind(VsockAddr::new(*cid, *port))
                .map(Listener::Vsock)
                .map_err(err),
        }
    }

    /// Waits for the next connection.
    pub async fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Unix(l, _) => l.accept().await.map(|(s, _)| Stream::Unix(s)),
            Listener::Vsock(l) => l.accept().await.map(|(s, _)| Stream::Vsock(s)),
        }
    }
}

async fn remove_stale_socket(path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match tokio::fs::symlink_metadata(path).await {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    match UnixStream::connect(path).await {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} is in use by a running process", path.display()),
        )),
        Err(_) => tokio::fs::remove_file(path).await,
    }
}

async fn set_owner_only(path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).await
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Unix($s) => {
                let $s = Pin::new($s);
                $e
            }
            Stream::Vsock($s) => {
                let $s = Pin::new($s);
                $e
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Unix(s) => s.is_write_vectored(),
            Stream::Vsock(s) => s.is_write_vectored(),
        }
    }
}

impl AsyncRead for StreamRead<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            StreamRead::Unix(s) => Pin::new(s).poll_read(cx, buf),
            StreamRead::Vsock(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for StreamWrite<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            StreamWrite::Unix(s) => Pin::new(s).poll_write(cx, buf),
            StreamWrite::Vsock(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            StreamWrite::Unix(s) => Pin::new(s).poll_flush(cx),
            StreamWrite::Vsock(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            StreamWrite::Unix(s) => Pin::new(s).poll_shutdown(cx),
            StreamWrite::Vsock(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn unix_round_trip_and_owner_only_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ep: Endpoint = format!("unix:{}", dir.path().join("s.sock").display())
            .parse()
            .unwrap();
        let listener = Listener::bind(&ep).await.unwrap();
        let Endpoint::Unix(path) = &ep else {
            unreachable!()
        };
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let server = tokio::spawn(async move {
            let mut s = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        });
        let mut c = connect(&ep).await.unwrap();
        c.write_all(b"ping").await.unwrap();
        c.shutdown_write().await.unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"ping");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn stale_socket_is_replaced_but_live_one_and_plain_file_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let ep = Endpoint::Unix(path.clone());
        let first = Listener::bind(&ep).await.unwrap();
        let err = Listener::bind(&ep).await.unwrap_err().to_string();
        assert!(err.contains("in use"), "{err}");
        drop(first);
        // Leave a stale socket file behind, as a crashed process would: std's listener does
        // not remove its path when closed.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let _second = Listener::bind(&ep).await.unwrap();

        let file = dir.path().join("plain");
        std::fs::write(&file, b"keep me").unwrap();
        let err = Listener::bind(&Endpoint::Unix(file.clone()))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a socket"), "{err}");
        assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    }

    #[tokio::test]
    async fn vsock_connect_fails_cleanly_without_a_device() {
        // There is no vsock loopback here; the call must fail with an error, not panic.
        let ep: Endpoint = "vsock:1:5000".parse().unwrap();
        let err = connect(&ep).await.unwrap_err();
        assert!(err.to_string().contains("vsock:1:5000"), "{err}");
    }
}
