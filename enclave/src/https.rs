//! HTTPS to AWS from inside the enclave, through the parent's relay.
//!
//! [`RelayConnector`] opens a tunnel: it dials the relay endpoint, sends `Connect { host, port }`,
//! and waits for `Connected`. rustls then runs the TLS handshake over the tunnel, inside this
//! process, so the parent only ever carries TLS records. A hyper client on top pools connections,
//! so a second call to the same endpoint reuses the session instead of paying a new handshake.
//! [`AwsHttpClient`] plugs that client into the AWS SDK.

use crate::EnclaveError;
use crate::clock::TrustedClock;
use crate::config::Mode;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::Response as SdkResponse;
use aws_smithy_types::body::SdkBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use nitrosync_shared::Endpoint;
use nitrosync_shared::control::TlsTrust;
use nitrosync_shared::tunnel::{Connect, ConnectReply, RefusalReason};
use nitrosync_transport::{Stream, read_one_frame, write_frame};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// The relay refused a tunnel. Not retried by the SDK: the policy will not change by itself.
#[derive(Debug, thiserror::Error)]
#[error("relay refused {host}:{port} ({reason}): {detail}")]
pub struct RelayRefused {
    /// Host asked for.
    pub host: String,
    /// Port asked for.
    pub port: u16,
    /// The relay's reason.
    pub reason: RefusalReason,
    /// The relay's explanation.
    pub detail: String,
}

/// A tunnel could not be opened for a reason other than a refusal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TunnelError {
    /// The relay said no.
    #[error(transparent)]
    Refused(#[from] RelayRefused),
    /// The relay could not be reached or broke the preface.
    #[error("relay {relay}: {source}")]
    Transport {
        /// The relay endpoint.
        relay: String,
        /// Why.
        #[source]
        source: nitrosync_transport::TransportError,
    },
    /// The relay closed without answering.
    #[error("relay {0} closed the tunnel without answering")]
    NoAnswer(String),
    /// The request URI has no host.
    #[error("request URI has no host")]
    NoHost,
    /// The relay did not answer in time.
    #[error("relay {0} did not answer in time")]
    Timeout(String),
}

/// Opens tunnels through the relay; a `tower` service from URI to stream, as hyper expects.
#[derive(Debug, Clone)]
pub struct RelayConnector {
    relay: Endpoint,
    timeout: Duration,
    opened: Arc<AtomicU64>,
}

impl RelayConnector {
    /// A connector dialling `relay`, giving each tunnel `timeout` to open.
    pub fn new(relay: Endpoint, timeout: Duration) -> Self {
        Self {
            relay,
            timeout,
            opened: Arc::default(),
        }
    }

    /// Tunnels opened so far.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Opens one tunnel to `host:port`.
    pub async fn open(&self, host: &str, port: u16) -> Result<Stream, TunnelError> {
        let relay = self.relay.to_string();
        let fut = async {
            let mut stream = nitrosync_transport::connect(&self.relay)
                .await
                .map_err(|source| TunnelError::Transport {
                    relay: relay.clone(),
                    source,
                })?;
            let req = Connect {
                host: host.to_owned(),
                port,
            };
            let transport = |source| TunnelError::Transport {
                relay: relay.clone(),
                source,
            };
            write_frame(&mut stream, &req).await.map_err(transport)?;
            match read_one_frame::<_, ConnectReply>(&mut stream)
                .await
                .map_err(transport)?
            {
                Some(ConnectReply::Connected) => Ok(stream),
                Some(ConnectReply::Refused { reason, detail }) => Err(RelayRefused {
                    host: host.to_owned(),
                    port,
                    reason,
                    detail,
                }
                .into()),
                None => Err(TunnelError::NoAnswer(relay.clone())),
            }
        };
        let stream = tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| TunnelError::Timeout(relay.clone()))??;
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(stream)
    }
}

/// A tunnel as hyper sees it.
#[derive(Debug)]
pub struct RelayedStream(TokioIo<Stream>);

impl Connection for RelayedStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for RelayedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for RelayedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl tower_service::Service<http::Uri> for RelayConnector {
    type Response = RelayedStream;
    type Error = TunnelError;
    type Future = Pin<Box<dyn Future<Output = Result<RelayedStream, TunnelError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri.host().ok_or(TunnelError::NoHost)?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let stream = this.open(&host, port).await?;
            Ok(RelayedStream(TokioIo::new(stream)))
        })
    }
}

/// The TLS client configuration and a description of what it trusts.
pub fn tls_config(mode: &Mode) -> Result<(rustls::ClientConfig, TlsTrust), EnclaveError> {
    let mut roots = rustls::RootCertStore::empty();
    let trust = match mode {
        Mode::Production => {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            TlsTrust::WebPki {
                roots: u32::try_from(roots.len()).unwrap_or(u32::MAX),
            }
        }
        Mode::Simulator { ca, .. } => {
            let bad = |reason: String| EnclaveError::SimulatorCa {
                path: ca.clone(),
                reason,
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
                .map_err(|e| bad(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| bad(e.to_string()))?;
            let [cert] = certs.as_slice() else {
                return Err(bad(format!(
                    "expected exactly one certificate, found {}",
                    certs.len()
                )));
            };
            roots.add(cert.clone()).map_err(|e| bad(e.to_string()))?;
            TlsTrust::SimulatorCa {
                sha256: hex::encode(Sha256::digest(cert.as_ref())),
            }
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((config, trust))
}

type HyperClient = Client<hyper_rustls::HttpsConnector<RelayConnector>, SdkBody>;

/// A pooled HTTPS client over relay tunnels, usable by the AWS SDK as its HTTP client.
#[derive(Debug, Clone)]
pub struct AwsHttpClient {
    client: HyperClient,
    connector: RelayConnector,
    clock: TrustedClock,
}

impl AwsHttpClient {
    /// Builds the client. Idle pooled connections are kept for 60 s (AWS closes them later).
    pub fn new(connector: RelayConnector, tls: rustls::ClientConfig, clock: TrustedClock) -> Self {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(connector.clone());
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .build(https);
        Self {
            client,
            connector,
            clock,
        }
    }

    /// The clock corrected by the `Date` of responses received through this client.
    pub fn clock(&self) -> &TrustedClock {
        &self.clock
    }

    /// Tunnels opened so far (each is one new TLS connection).
    pub fn tunnels_opened(&self) -> u64 {
        self.connector.opened()
    }

    /// Sends one request.
    pub async fn send(
        &self,
        req: http::Request<SdkBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error> {
        self.client.request(req).await
    }
}

/// Finds a relay refusal in an error's source chain.
pub fn find_refusal<'a>(
    mut err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a RelayRefused> {
    loop {
        if let Some(r) = err.downcast_ref::<RelayRefused>() {
            return Some(r);
        }
        if let Some(TunnelError::Refused(r)) = err.downcast_ref::<TunnelError>() {
            return Some(r);
        }
        err = err.source()?;
    }
}

impl HttpConnector for AwsHttpClient {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let this = self.clone();
        HttpConnectorFuture::new(async move {
            let req = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(e.into()))?;
            let resp = match this.send(req).await {
                Ok(r) => r,
                // A refusal is a policy decision: retrying will not help.
                Err(e) if find_refusal(&e).is_some() => return Err(ConnectorError::user(e.into())),
                Err(e) => return Err(ConnectorError::io(e.into())),
            };
            // TLS to AWS ended in this process, so this Date is authenticated.
            if let Some(date) = resp
                .headers()
                .get(http::header::DATE)
                .and_then(|d| d.to_str().ok())
            {
                this.clock.observe_header(date);
            }
            let (parts, body) = resp.into_parts();
            let resp = http::Response::from_parts(parts, SdkBody::from_body_1_x(body));
            SdkResponse::try_from(resp).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

impl HttpClient for AwsHttpClient {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}
