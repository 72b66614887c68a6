//! The tenant API: the admin API's tenant routes over TLS on a TCP port, so that a tenant's
//! `.env` and key stay on the tenant's own machine (issue 12). Off unless `[tenant_api]` is set.
//!
//! Every request is signed by the tenant (`nitrosync_shared::request_auth`: method, path with
//! query, SHA-256 of the body, a timestamp, under a domain separator) and is refused with 401
//! when a header is missing, the signature does not verify, the timestamp is more than 60 s
//! from this host's clock, or the same signed request was already seen within that window.
//! The parent verifies with the tenant's public key alone.
//!
//! A tenant acts only on its own destinations (403 otherwise): a submitted bundle's header must
//! name the authenticated key, and so must the `{tenant}` of `/v1/destinations/{tenant}/…`;
//! `GET /v1/destinations` lists the tenant's own. The routes are the admin API's handlers:
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /v1/enclave/describe`, `POST /v1/enclave/attest`, `GET /v1/enclave/saml-metadata` | as on the admin API: what a tenant checks before sealing |
//! | `POST /v1/bundles` | as on the admin API, for a bundle of this tenant |
//! | `GET /v1/destinations` | this tenant's destinations |
//! | `GET /v1/destinations/{tenant}/{id}[/history]`, `POST …/test\|delete` | as on the admin API |
//!
//! The operator's routes (status, probe, enable, disable, retry) are not served here (404).
//! Bounds: 256 connections, 64 requests in flight, 10 s for the TLS handshake and for each
//! request head, 1 MiB bodies (read whole to hash them; headers are checked first).

// Handlers return a ready HTTP reply as their error: it is built once and sent as is.
#![allow(clippy::result_large_err)]

use crate::ParentError;
use crate::admin::{AdminState, Reply, destinations, enclave, error, get_only, json, not_found};
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::routing::{self, post};
use http::{Method, StatusCode, Uri};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use nitrosync_api::{from_hex, paths};
use nitrosync_shared::bundle::SealedBundle;
use nitrosync_shared::request_auth::{
    HEADER_SIGNATURE, HEADER_TENANT, HEADER_TIMESTAMP, RequestParts, WINDOW_MS, body_digest,
    check_timestamp, signed_bytes,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path as FsPath;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::limit::ConcurrencyLimit;
use tracing::{debug, info, warn};

/// Most tenant API connections open at once; further clients wait in the listen backlog.
const MAX_CONNECTIONS: usize = 256;

/// Most requests handled at once over all connections.
const MAX_REQUESTS_IN_FLIGHT: usize = 64;

/// Time for the TLS handshake, and for each request head (also between requests on a
/// kept-alive connection).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after a failed accept (EMFILE, ENFILE): accepting again at once would spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Most signed requests remembered for replay detection. Only requests whose signature
/// verified are remembered, for the window of their timestamp; a full cache refuses (503)
/// rather than forget one that could then be replayed.
const REPLAY_CACHE_MAX: usize = 100_000;

/// The authenticated tenant of a request, for the handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tenant(pub [u8; 32]);

/// The signed requests seen within the timestamp window: an exact replay inside it is refused.
#[derive(Debug, Default)]
pub struct ReplayCache {
    seen: Mutex<HashMap<[u8; 32], u64>>,
}

/// Why [`ReplayCache::first_use`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayRefusal {
    /// The same signed request was seen before.
    Replayed,
    /// Too many requests in the window to remember another.
    Full,
}

impl ReplayCache {
    /// Records the signed request `digest` dated `timestamp_ms`; refuses one seen before.
    /// Entries older than the window (from `now_ms`) are dropped first when the cache is full.
    pub fn first_use(
        &self,
        digest: [u8; 32],
        timestamp_ms: u64,
        now_ms: u64,
    ) -> Result<(), ReplayRefusal> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains_key(&digest) {
            return Err(ReplayRefusal::Replayed);
        }
        if seen.len() >= REPLAY_CACHE_MAX {
            seen.retain(|_, ts| ts.saturating_add(WINDOW_MS) >= now_ms);
            if seen.len() >= REPLAY_CACHE_MAX {
                return Err(ReplayRefusal::Full);
            }
        }
        seen.insert(digest, timestamp_ms);
        Ok(())
    }
}

/// What the authentication layer needs: the replay cache and the clock (Unix ms).
#[derive(Debug)]
pub struct Auth {
    /// Requests seen within the window.
    pub replay: ReplayCache,
    /// The clock.
    pub now_ms: fn() -> u64,
}

impl Auth {
    /// Authentication against the system clock.
    pub fn new() -> Self {
        Self {
            replay: ReplayCache::default(),
            now_ms: crate::scheduler::now_ms,
        }
    }
}

impl Default for Auth {
    fn default() -> Self {
        Self::new()
    }
}

/// Loads the certificate chain and key into a TLS server configuration (TLS 1.2 and 1.3,
/// `ring`, HTTP/1.1 by ALPN).
pub fn tls_config(cert: &FsPath, key: &FsPath) -> Result<Arc<rustls::ServerConfig>, ParentError> {
    let tls_err = |path: &FsPath, reason: String| ParentError::TenantApiTls {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_err(cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(tls_err(cert, "holds no PEM certificate".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_err(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| tls_err(key, format!("does not go with the certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Binds the tenant API's TCP listener.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ParentError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ParentError::TenantApiBind { addr, source })
}

/// The tenant API's routes over `state`, behind request authentication with `auth`.
pub fn router(state: Arc<AdminState>, auth: Arc<Auth>) -> Router {
    let one = format!("{}/{{tenant}}/{{id}}", paths::DESTINATIONS);
    let action = format!("{one}/{{action}}");
    Router::new()
        .route(paths::ENCLAVE_DESCRIBE, get_only(enclave::describe))
        .route(paths::SAML_METADATA, get_only(enclave::saml_metadata))
        .route(paths::ENCLAVE_ATTEST, post(enclave::attest))
        .route(
            paths::BUNDLES,
            post(destinations::submit).fallback(destinations::bundles_only_post),
        )
        .route(paths::DESTINATIONS, get_only(list_own))
        .route(&one, get_only(destinations::one_destination))
        .route(
            &action,
            routing::get(destinations::history)
                .head(not_found)
                .post(act),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .with_state(state)
        // Outermost: nothing, not even a 404, answers an unsigned request.
        .layer(from_fn_with_state(auth, authenticate))
}

fn unauthorized(message: impl Into<String>) -> Reply {
    error(StatusCode::UNAUTHORIZED, "Unauthenticated", message)
}

fn forbidden(message: impl Into<String>) -> Reply {
    error(StatusCode::FORBIDDEN, "Forbidden", message)
}

fn header<'a>(req: &'a Request, name: &str) -> Result<&'a str, Reply> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized(format!("the {name} header is missing")))
}

fn hex_array<const N: usize>(name: &str, text: &str) -> Result<[u8; N], Reply> {
    from_hex(text)
        .ok()
        .and_then(|b| <[u8; N]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| unauthorized(format!("{name} must be {} hex digits", N * 2)))
}

/// Checks the request's signature, timestamp and freshness, then that it touches only the
/// tenant's own destinations; hands the handlers the body it read and the [`Tenant`].
async fn authenticate(State(auth): State<Arc<Auth>>, req: Request, next: Next) -> Reply {
    match authenticated(&auth, req).await {
        Ok(req) => next.run(req).await,
        Err(reply) => reply,
    }
}

async fn authenticated(auth: &Auth, req: Request) -> Result<Request, Reply> {
    // The headers are checked before the body is read.
    let tenant: [u8; 32] = hex_array(HEADER_TENANT, header(&req, HEADER_TENANT)?)?;
    let timestamp_ms: u64 = header(&req, HEADER_TIMESTAMP)?
        .parse()
        .map_err(|_| unauthorized(format!("{HEADER_TIMESTAMP} must be Unix milliseconds")))?;
    let signature: [u8; 64] = hex_array(HEADER_SIGNATURE, header(&req, HEADER_SIGNATURE)?)?;
    let now_ms = (auth.now_ms)();
    check_timestamp(now_ms, timestamp_ms, WINDOW_MS).map_err(|e| unauthorized(e.to_string()))?;
    let (mut parts, body) = req.into_parts();
    let bytes = crate::admin::read_body(body, nitrosync_shared::MAX_FRAME_LEN)
        .await
        .map_err(|e| {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BadRequest",
                format!("body: {e}"),
            )
        })?;
    let digest = body_digest(&bytes);
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let signed = RequestParts {
        method: parts.method.as_str(),
        path_and_query,
        tenant: &tenant,
        timestamp_ms,
        body_sha256: &digest,
    };
    nitrosync_bundle::verify_request(&signed, &signature).map_err(|e| {
        debug!(tenant = %nitrosync_api::to_hex(&tenant), error = %e, "tenant API: signature refused");
        unauthorized(format!("the request's signature does not verify: {e}"))
    })?;
    auth.replay
        .first_use(body_digest(&signed_bytes(&signed)), timestamp_ms, now_ms)
        .map_err(|r| match r {
            ReplayRefusal::Replayed => unauthorized("this signed request was already used"),
            ReplayRefusal::Full => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Busy",
                "too many requests in the signature window; retry shortly",
            ),
        })?;
    authorize(&parts.method, &parts.uri, &tenant, &bytes)?;
    parts.extensions.insert(Tenant(tenant));
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// A tenant's request may touch only its own destinations.
fn authorize(method: &Method, uri: &Uri, tenant: &[u8; 32], body: &[u8]) -> Result<(), Reply> {
    let path = uri.path();
    if path == paths::BUNDLES && method == Method::POST {
        // A body that is not a bundle is the handler's 400.
        if let Ok(bundle) = nitrosync_shared::frame::decode_payload::<SealedBundle>(body)
            && bundle.header.tenant_key != *tenant
        {
            return Err(forbidden(
                "the bundle is signed for another tenant than the one authenticated",
            ));
        }
        return Ok(());
    }
    if let Some(rest) = path
        .strip_prefix(paths::DESTINATIONS)
        .and_then(|r| r.strip_prefix('/'))
    {
        let segment = rest.split('/').next().unwrap_or_default();
        let own = from_hex(segment).is_ok_and(|b| b.as_slice() == tenant.as_slice());
        if !own {
            return Err(forbidden("a tenant may act only on its own destinations"));
        }
    }
    Ok(())
}

/// `GET /v1/destinations`: the authenticated tenant's destinations.
async fn list_own(State(state): State<Arc<AdminState>>, Extension(t): Extension<Tenant>) -> Reply {
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.list(crate::store::ListFilter::All)).await {
        Ok(Ok(mut list)) => {
            list.retain(|d| d.key.tenant_key == t.0);
            json(StatusCode::OK, &list)
        }
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ParentError",
            e.to_string(),
        ),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            e.to_string(),
        ),
    }
}

/// `POST /v1/destinations/{tenant}/{id}/{test|delete}`; the operator's actions are no route.
async fn act(
    state: State<Arc<AdminState>>,
    method: Method,
    uri: Uri,
    path: Result<Path<(String, String, String)>, PathRejection>,
    body: Body,
) -> Result<Reply, Reply> {
    if let Ok(Path((_, _, action))) = &path
        && !matches!(action.as_str(), "test" | "delete")
    {
        return Ok(not_found(method, uri).await);
    }
    destinations::act(state, path, body).await
}

/// Serves the tenant API on `listener` with `tls` until `shutdown`, then lets requests in
/// flight finish and returns once every connection has closed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<AdminState>,
    shutdown: CancellationToken,
) {
    let service =
        ConcurrencyLimit::new(router(state, Arc::new(Auth::new())), MAX_REQUESTS_IN_FLIGHT);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "tenant API listening (TLS)");
    }
    let tasks = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = connections.clone().acquire_owned() => p,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            s = listener.accept() => s,
        };
        let (tcp, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "tenant API accept failed");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                }
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let http = http.clone();
        let service = service.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let handshake = tokio::select! {
                _ = shutdown.cancelled() => return,
                h = tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(tcp)) => h,
            };
            let stream = match handshake {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "tenant API TLS handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(%peer, "tenant API TLS handshake timed out");
                    return;
                }
            };
            let conn =
                http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            tokio::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => r,
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                debug!(%peer, error = %e, "tenant API connection ended");
            }
            drop(permit);
        });
    }
    tasks.close();
    tasks.wait().await;
}

#[cfg(test)]
mod tests;
