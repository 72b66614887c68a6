//! Test helpers: a recording stream, a TLS echo server with a test CA, a TCP echo server.

use nitrosync_shared::tunnel::{Connect, ConnectReply};
use nitrosync_tests::{Proc, Sockets, cli, start_parent, wait_for};
use nitrosync_transport::{Endpoint, Stream, read_one_frame, write_frame};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;

/// A stream that records every byte read from and written to it.
pub struct Recording<S> {
    pub inner: S,
    pub log: Arc<Mutex<Vec<u8>>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Recording<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            this.log
                .lock()
                .unwrap()
                .extend_from_slice(&buf.filled()[before..]);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recording<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            this.log.lock().unwrap().extend_from_slice(&buf[..n]);
        }
        r
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// True when `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A test CA and a server certificate for `localhost`.
pub struct TestPki {
    pub ca_der: rustls::pki_types::CertificateDer<'static>,
    pub server: Arc<rustls::ServerConfig>,
}

pub fn test_pki() -> TestPki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    TestPki {
        ca_der: ca.der().clone(),
        server: Arc::new(server),
    }
}

pub fn client_config(ca: &rustls::pki_types::CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A TLS server on loopback that echoes each connection's plaintext and records the raw bytes
/// it received and sent (what the relay carried on its upstream side).
pub async fn tls_echo_server(server: Arc<rustls::ServerConfig>) -> (u16, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let raw = Arc::new(Mutex::new(Vec::new()));
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let log = raw.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(Recording { inner: tcp, log }).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                loop {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if tls.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                            let _ = tls.flush().await;
                        }
                    }
                }
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, raw)
}

/// A TCP server that reads each connection to EOF, then writes back what it read and closes.
/// Answering only after EOF makes the relay's half-close handling observable.
pub async fn echo_after_eof_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if tcp.read_to_end(&mut buf).await.is_ok() {
                    let _ = tcp.write_all(&buf).await;
                }
                let _ = tcp.shutdown().await;
            });
        }
    });
    port
}

/// A parent daemon with no enclave behind it: enough to test the relay.
pub struct RelayUnderTest {
    /// Kept so the directory lives as long as the daemon.
    pub _dir: tempfile::TempDir,
    pub sockets: Sockets,
    pub parent: Proc,
}

impl RelayUnderTest {
    pub async fn start(extra: &[&str]) -> RelayUnderTest {
        let dir = tempfile::tempdir().unwrap();
        let sockets = Sockets::in_dir(dir.path());
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut parent = start_parent(dir.path(), &sockets, &extra, "parent.log").unwrap();
        let admin = sockets.admin.clone();
        let relay = sockets.relay.clone();
        wait_for("the parent's sockets", Duration::from_secs(20), || {
            let (admin, relay) = (admin.clone(), relay.clone());
            async move { (admin.exists() && relay.exists()).then_some(()) }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", parent.log_tail(20)));
        parent.check_alive().unwrap();
        RelayUnderTest {
            _dir: dir,
            sockets,
            parent,
        }
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint::Unix(self.sockets.relay.clone())
    }

    /// Opens a tunnel as the enclave would and returns the relay's reply with the stream.
    pub async fn open(&self, host: &str, port: u16) -> (ConnectReply, Stream) {
        let mut s = nitrosync_transport::connect(&self.endpoint())
            .await
            .unwrap();
        write_frame(
            &mut s,
            &Connect {
                host: host.into(),
                port,
            },
        )
        .await
        .unwrap();
        let reply = read_one_frame::<_, ConnectReply>(&mut s)
            .await
            .unwrap()
            .expect("a reply");
        (reply, s)
    }

    /// The relay counters, through the real CLI.
    pub async fn stats(&self) -> serde_json::Value {
        let out = cli(&self.sockets.admin, &["status", "--json"])
            .await
            .unwrap();
        // The daemon runs without an enclave here, so status exits 4 but still prints JSON.
        assert_eq!(out.code, 4, "status: {}", out.stderr);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v["relay"]["stats"].clone()
    }
}
