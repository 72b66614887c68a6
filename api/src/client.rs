//! A client for the admin API over its Unix socket, and [`ApiClient`], which is either it or
//! the tenant API's client.

use crate::ErrorBody;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Why an admin API call failed. Each variant names the cause; the CLI maps them to exit codes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The socket exists but this user may not open it.
    #[error(
        "cannot open the admin socket {socket}: permission denied (run as the daemon's user or a member of its group)"
    )]
    PermissionDenied {
        /// The socket path.
        socket: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Nothing answers on the socket.
    #[error(
        "cannot reach nitrosync-parent at {socket}: {source} (is the daemon running? set --admin-socket or {env})",
        env = crate::ENV_ADMIN_SOCKET
    )]
    Unreachable {
        /// The socket path.
        socket: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange broke off.
    #[error("admin API {stage}: {source}")]
    Http {
        /// `handshake`, `request` or `response`.
        stage: &'static str,
        /// The error.
        #[source]
        source: hyper::Error,
    },
    /// The request could not be built (a path that is not a URI).
    #[error("admin API request: {0}")]
    Request(#[from] http::Error),
    /// The API answered with an error body.
    #[error("{code}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// A product error code, or `BadRequest` / `NotFound` / the HTTP status.
        code: String,
        /// What went wrong.
        message: String,
    },
    /// `--endpoint` or `--endpoint-ca` is unusable.
    #[error("tenant API endpoint {endpoint}: {reason}")]
    Endpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing answers at the tenant API's address.
    #[error(
        "cannot reach the tenant API at {endpoint}: {source} (set --endpoint or {env})",
        env = crate::ENV_ENDPOINT
    )]
    EndpointUnreachable {
        /// The endpoint.
        endpoint: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed: most often a certificate that `--endpoint-ca` does not vouch for.
    #[error("TLS with the tenant API at {endpoint}: {source}")]
    Tls {
        /// The endpoint.
        endpoint: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The answer is not the JSON expected.
    #[error("unreadable admin API answer: {0}")]
    Decode(#[source] serde_json::Error),
}

impl ClientError {
    /// Whether the daemon could not be reached at all.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable { .. }
                | ClientError::PermissionDenied { .. }
                | ClientError::Http { .. }
                | ClientError::EndpointUnreachable { .. }
                | ClientError::Tls { .. }
        )
    }

    /// Whether the daemon answered that the enclave is unavailable.
    pub fn is_enclave_unavailable(&self) -> bool {
        matches!(self, ClientError::Api { code, .. } if code == "EnclaveUnavailable")
    }
}

/// A client for the admin API over its Unix socket.
#[derive(Debug, Clone)]
pub struct AdminClient {
    socket: PathBuf,
}

impl AdminClient {
    /// A client for the socket at `socket`.
    pub fn new(socket: PathBuf) -> Self {
        Self { socket }
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Calls the API with a JSON body (or none) and decodes the JSON answer.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        self.call_with(method, path, body, "application/json").await
    }

    /// Like [`AdminClient::call`] with another request content type.
    pub async fn call_with<T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Result<T, ClientError> {
        let bytes = self.raw(method, path, body, content_type).await?;
        serde_json::from_slice(&bytes).map_err(ClientError::Decode)
    }

    /// Calls the API and returns the successful answer's body as it is.
    pub async fn raw(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Result<Bytes, ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| {
                let socket = self.socket.clone();
                if source.kind() == std::io::ErrorKind::PermissionDenied {
                    ClientError::PermissionDenied { socket, source }
                } else {
                    ClientError::Unreachable { socket, source }
                }
            })?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|source| ClientError::Http {
                    stage: "handshake",
                    source,
                })?;
        tokio::spawn(conn);
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, "nitrosync-parent")
            .header(http::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        exchange(&mut sender, req).await
    }
}

/// Sends `req` on `sender` and returns the successful answer's body, or the API's error.
pub(crate) async fn exchange(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    req: http::Request<Full<Bytes>>,
) -> Result<Bytes, ClientError> {
    let resp = sender
        .send_request(req)
        .await
        .map_err(|source| ClientError::Http {
            stage: "request",
            source,
        })?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|source| ClientError::Http {
            stage: "response",
            source,
        })?
        .to_bytes();
    if !status.is_success() {
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => (b.error.code, b.error.message),
            Err(_) => (
                status.to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ),
        };
        return Err(ClientError::Api {
            status: status.as_u16(),
            code,
            message,
        });
    }
    Ok(bytes)
}

/// The daemon's API as the CLI reaches it: the admin socket on the parent host, or the tenant
/// API over TLS from anywhere. The tenant's commands take either.
#[derive(Debug, Clone)]
pub enum ApiClient {
    /// The admin API on its Unix socket (the operator's machine).
    Admin(AdminClient),
    /// The tenant API over TLS, each request signed by the tenant.
    Tenant(crate::TenantApiClient),
}

impl ApiClient {
    /// The admin socket, when this client uses it.
    pub fn socket(&self) -> Option<&Path> {
        match self {
            ApiClient::Admin(a) => Some(a.socket()),
            ApiClient::Tenant(_) => None,
        }
    }

    /// Calls the API with a JSON body (or none) and decodes the JSON answer.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        self.call_with(method, path, body, "application/json").await
    }

    /// Like [`ApiClient::call`] with another request content type.
    pub async fn call_with<T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Result<T, ClientError> {
        let bytes = self.raw(method, path, body, content_type).await?;
        serde_json::from_slice(&bytes).map_err(ClientError::Decode)
    }

    /// Calls the API and returns the successful answer's body as it is.
    pub async fn raw(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Result<Bytes, ClientError> {
        match self {
            ApiClient::Admin(a) => a.raw(method, path, body, content_type).await,
            ApiClient::Tenant(t) => t.raw(method, path, body, content_type).await,
        }
    }
}
