//! A client for the tenant API: HTTPS to the parent's TCP port, the server's certificate (or its
//! CA) pinned as the only root, every request signed by the tenant's key
//! (`nitrosync_shared::request_auth`).

use crate::client::{ClientError, exchange};
use bytes::Bytes;
use http_body_util::Full;
use nitrosync_shared::request_auth::{
    HEADER_SIGNATURE, HEADER_TENANT, HEADER_TIMESTAMP, RequestParts, body_digest,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Environment variable with the tenant API's URL, `https://host:port`.
pub const ENV_ENDPOINT: &str = "NITROSYNC_ENDPOINT";

/// Environment variable with the PEM file of the tenant API's certificate or CA.
pub const ENV_ENDPOINT_CA: &str = "NITROSYNC_ENDPOINT_CA";

/// Signs tenant API requests. The CLI implements it with the tenant's key; this crate never
/// holds key material.
pub trait RequestSigner: std::fmt::Debug + Send + Sync {
    /// The tenant's Ed25519 public key.
    fn tenant(&self) -> [u8; 32];
    /// The Ed25519 signature over `nitrosync_shared::request_auth::signed_bytes(parts)`.
    fn sign(&self, parts: &RequestParts<'_>) -> [u8; 64];
}

/// An idle connection is reused only while it is this fresh: the server closes one that sends
/// no request head for 10 s.
const REUSE_WITHIN: Duration = Duration::from_secs(5);

/// Idle connections kept for reuse.
const MAX_IDLE: usize = 8;

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A client for the tenant API over TLS.
#[derive(Debug, Clone)]
pub struct TenantApiClient {
    endpoint: String,
    authority: String,
    connect_to: String,
    server_name: ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
    signer: Arc<dyn RequestSigner>,
    idle: Arc<Mutex<Vec<(Sender, Instant)>>>,
}

impl TenantApiClient {
    /// A client for `endpoint` (`https://host[:port]`, port 443 by default) that trusts only the
    /// certificates in `ca_pem` (the server's own self-signed certificate, or its CA) and signs
    /// with `signer`.
    pub fn new(
        endpoint: &str,
        ca_pem: &[u8],
        signer: Arc<dyn RequestSigner>,
    ) -> Result<Self, ClientError> {
        let bad = |reason: String| ClientError::Endpoint {
            endpoint: endpoint.to_owned(),
            reason,
        };
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|e| bad(format!("not a URL: {e}")))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad("must start with https://".into()));
        }
        if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
            return Err(bad("must be https://host:port, without a path".into()));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| bad("has no host".into()))?
            .clone();
        if authority.as_str().contains('@') {
            return Err(bad("must not carry credentials".into()));
        }
        let host = authority.host();
        let port = authority.port_u16().unwrap_or(443);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(bare.to_owned())
            .map_err(|e| bad(format!("host {host:?}: {e}")))?;
        let mut roots = rustls::RootCertStore::empty();
        let mut found = 0usize;
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|e| bad(format!("--endpoint-ca: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("--endpoint-ca: {e}")))?;
            found += 1;
        }
        if found == 0 {
            return Err(bad("--endpoint-ca holds no PEM certificate".into()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            endpoint: endpoint.to_owned(),
            authority: authority.to_string(),
            connect_to: format!("{bare}:{port}"),
            server_name,
            tls: Arc::new(config),
            signer,
            idle: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn connect(&self) -> Result<Sender, ClientError> {
        let unreachable = |source| ClientError::EndpointUnreachable {
            endpoint: self.endpoint.clone(),
            source,
        };
        let tcp = tokio::net::TcpStream::connect(&self.connect_to)
            .await
            .map_err(unreachable)?;
        tcp.set_nodelay(true).map_err(unreachable)?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|source| ClientError::Tls {
                endpoint: self.endpoint.clone(),
                source,
            })?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|source| ClientError::Http {
                    stage: "handshake",
                    source,
                })?;
        tokio::spawn(conn);
        Ok(sender)
    }

    fn take_idle(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((sender, at)) = idle.pop() {
            if at.elapsed() < REUSE_WITHIN && !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn put_idle(&self, sender: Sender) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE && !sender.is_closed() {
            idle.push((sender, Instant::now()));
        }
    }

    /// Signs and sends one request; returns the successful answer's body as it is.
    pub async fn raw(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Result<Bytes, ClientError> {
        let body = Bytes::from(body.unwrap_or_default());
        let tenant = self.signer.tenant();
        let timestamp_ms = nitrosync_shared::unix_ms(SystemTime::now());
        let digest = body_digest(&body);
        let signature = self.signer.sign(&RequestParts {
            method: method.as_str(),
            path_and_query: path,
            tenant: &tenant,
            timestamp_ms,
            body_sha256: &digest,
        });
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.authority)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(HEADER_TENANT, crate::to_hex(&tenant))
            .header(HEADER_TIMESTAMP, timestamp_ms.to_string())
            .header(HEADER_SIGNATURE, crate::to_hex(&signature))
            .body(Full::new(body))?;
        let mut sender = match self.take_idle() {
            Some(s) => s,
            None => self.connect().await?,
        };
        let answer = exchange(&mut sender, req).await;
        if answer.is_ok() {
            self.put_idle(sender);
        }
        answer
    }
}
