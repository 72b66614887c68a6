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
    /// The socket exists but this user may not connect to it (`EACCES`, `EPERM`).
    #[error(
        "permission denied on {socket}: your user may not connect; run as the daemon's user or a member of its group ({error})"
    )]
    PermissionDenied {
        /// The socket path.
        socket: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// No socket at the path (`ENOENT`): the daemon is not running, or the path is wrong.
    #[error(
        "no admin socket at {socket}: the daemon is not running, or the path is wrong (start nitrosync-parent, or set --admin-socket or {env})",
        env = crate::ENV_ADMIN_SOCKET
    )]
    NoSocket {
        /// The socket path.
        socket: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// The socket file exists but nothing listens on it (`ECONNREFUSED`): a stale socket left by
    /// a daemon that is no longer running.
    #[error(
        "nothing listens on {socket} (connection refused): a stale socket, the daemon is not running (start nitrosync-parent, or set --admin-socket or {env})",
        env = crate::ENV_ADMIN_SOCKET
    )]
    StaleSocket {
        /// The socket path.
        socket: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// The socket cannot be reached for another reason.
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
                | ClientError::NoSocket { .. }
                | ClientError::StaleSocket { .. }
                | ClientError::Http { .. }
                | ClientError::EndpointUnreachable { .. }
                | ClientError::Tls { .. }
        )
    }

    /// The error of a failed `connect` to the admin socket at `socket`, by its cause: permission
    /// denied (`EACCES`, `EPERM`), no such file, connection refused (a stale socket), or other.
    pub fn connect(socket: PathBuf, error: std::io::Error) -> Self {
        use std::io::ErrorKind;
        match error.kind() {
            ErrorKind::PermissionDenied => ClientError::PermissionDenied { socket, error },
            ErrorKind::NotFound => ClientError::NoSocket { socket, error },
            ErrorKind::ConnectionRefused => ClientError::StaleSocket { socket, error },
            _ => ClientError::Unreachable {
                socket,
                source: error,
            },
        }
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
            .map_err(|e| ClientError::connect(self.socket.clone(), e))?;
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

#[cfg(test)]
mod tests {
    use super::ClientError;
    use std::io::{Error, ErrorKind};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::path::PathBuf;

    fn message(kind: ErrorKind) -> (String, bool) {
        let e = ClientError::connect(PathBuf::from("/run/x/admin.sock"), Error::from(kind));
        (e.to_string(), e.is_unreachable())
    }

    #[test]
    fn each_connect_failure_names_its_cause_and_is_unreachable() {
        let (m, unreachable) = message(ErrorKind::PermissionDenied);
        assert!(unreachable);
        assert!(
            m.starts_with("permission denied on /run/x/admin.sock: your user may not connect; run as the daemon's user or a member of its group"),
            "{m}"
        );
        assert!(!m.contains("is the daemon running"), "{m}");
        // EPERM is PermissionDenied too.
        let eperm = ClientError::connect(PathBuf::from("/s"), Error::from_raw_os_error(1));
        assert!(
            matches!(eperm, ClientError::PermissionDenied { .. }),
            "{eperm:?}"
        );

        let (m, unreachable) = message(ErrorKind::NotFound);
        assert!(unreachable);
        assert!(m.contains("no admin socket at /run/x/admin.sock"), "{m}");
        assert!(
            m.contains("the daemon is not running, or the path is wrong"),
            "{m}"
        );

        let (m, unreachable) = message(ErrorKind::ConnectionRefused);
        assert!(unreachable);
        assert!(m.contains("connection refused"), "{m}");
        assert!(m.contains("stale socket"), "{m}");

        let (m, unreachable) = message(ErrorKind::TimedOut);
        assert!(unreachable);
        assert!(
            m.starts_with("cannot reach nitrosync-parent at /run/x/admin.sock"),
            "{m}"
        );
    }

    /// Real sockets: a path with nothing, a socket nobody listens on, one this user may not open
    /// (only when not root: root's connect ignores the mode; the e2e test `flags.rs` runs the
    /// CLI as another user for that case).
    #[test]
    fn real_connect_errors_are_classified() {
        let dir = std::env::temp_dir().join(format!("nitrosync-api-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.sock");
        let e = ClientError::connect(missing.clone(), UnixStream::connect(&missing).unwrap_err());
        assert!(matches!(e, ClientError::NoSocket { .. }), "{e:?}");

        let stale = dir.join("stale.sock");
        drop(UnixListener::bind(&stale).unwrap());
        let e = ClientError::connect(stale.clone(), UnixStream::connect(&stale).unwrap_err());
        assert!(matches!(e, ClientError::StaleSocket { .. }), "{e:?}");

        let closed = dir.join("closed.sock");
        let _listener = UnixListener::bind(&closed).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o000)).unwrap();
        match UnixStream::connect(&closed) {
            Ok(_) => {} // root: the mode does not deny.
            Err(err) => {
                let e = ClientError::connect(closed.clone(), err);
                assert!(matches!(e, ClientError::PermissionDenied { .. }), "{e:?}");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
