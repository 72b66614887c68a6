//! The admin API: HTTP/1.1 + JSON on a Unix socket (mode 0600), for the `nitrosync` CLI and for
//! automation. [`router`] is the axum router (its contract is `nitrosync-api`); [`serve`] runs it
//! on a [`Listener`] with bounded connections and requests until a cancellation token fires.
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /v1/status` | [`Status`](nitrosync_api::Status): parent, control connection, enclave health, relay counters |
//! | `GET /v1/enclave/describe` | the enclave's `Description` and a fresh attestation document ([`EnclaveDescription`](nitrosync_api::EnclaveDescription)) |
//! | `GET /v1/enclave/saml-metadata` | the SAML IdP metadata XML to register in IAM |
//! | `POST /v1/enclave/attest` with `{"nonce": "HEX"}` (optional) | a fresh attestation document ([`AttestationReply`](nitrosync_api::AttestationReply)) |
//! | `POST /v1/enclave/probe` with `{"region": "us-east-1"}` | a `ProbeReport`: one STS call made by the enclave through the relay |
//! | `/v1/bundles`, `/v1/destinations…` | see [`destinations`] |
//!
//! Errors are `{"error": {"code": "...", "message": "..."}}` with 400 (bad request), 404 (no such
//! route, or a method the path does not take), 405 (anything but `POST` on `/v1/bundles`) or 503
//! (enclave unavailable).

pub mod destinations;
pub(crate) mod enclave;
#[cfg(test)]
pub(crate) mod tests;

use crate::control::EnclaveClient;
use axum::Router;
use axum::body::Body;
use axum::handler::Handler;
use axum::routing::{MethodRouter, get, post};
use bytes::Bytes;
use http::{Method, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use nitrosync_api::{ApiError, ErrorBody, paths};
use nitrosync_relay::RelayStats;
use nitrosync_shared::ErrorCode;
use nitrosync_shared::control::{ControlError, ResponseBody};
use nitrosync_transport::Listener;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::limit::ConcurrencyLimit;
use tracing::{debug, warn};

/// Largest admin request body accepted (JSON bodies; a bundle may be a whole frame).
const MAX_BODY: usize = 64 * 1024;

/// Most admin connections open at once. A permit is taken before `accept`, so further clients
/// wait in the socket's backlog rather than each costing a task and buffers.
const MAX_CONNECTIONS: usize = 256;

/// Most admin requests handled at once, over all connections; more wait for a slot. A request
/// may hold a blocking store thread or an enclave request while it runs.
const MAX_REQUESTS_IN_FLIGHT: usize = 64;

/// A client must send a request's head within this time, for the first request and after each
/// answer on a kept-alive connection; otherwise its connection is closed and its slot freed.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after a failed accept (EMFILE, ENFILE, ENOBUFS): accepting again at once would spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// What the admin handlers need.
#[derive(Debug)]
pub struct AdminState {
    /// The control connection.
    pub client: EnclaveClient,
    /// Relay counters.
    pub relay_stats: Arc<RelayStats>,
    /// Relay listen endpoint, for display.
    pub relay_listen: String,
    /// Allowed regions, for display.
    pub regions: Vec<String>,
    /// Start time.
    pub started: Instant,
    /// The durable store.
    pub store: Arc<crate::store::Store>,
    /// Group commit of submits into `store`.
    pub commits: crate::store::GroupCommit,
    /// Wakes the scheduler after a submit or an enable.
    pub wake: Arc<tokio::sync::Notify>,
    /// The scheduler: its counters, and the way into a test or delete.
    pub scheduler: Arc<crate::scheduler::Scheduler>,
    /// The KMS key the enclave's identity is sealed under, when configured.
    pub identity_kms_key: Option<String>,
}

/// The shared state of every handler.
pub(crate) type SharedState = Arc<AdminState>;

/// The admin API's routes over `state`. Every answer, including an unknown route or method, is
/// JSON with the [`ErrorBody`] shape when it is an error.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route(paths::STATUS, get_only(enclave::status))
        .route(paths::ENCLAVE_DESCRIBE, get_only(enclave::describe))
        .route(paths::SAML_METADATA, get_only(enclave::saml_metadata))
        .route(paths::ENCLAVE_ATTEST, post(enclave::attest))
        .route(paths::ENCLAVE_PROBE, post(enclave::probe))
        .route(paths::ENCLAVE_ROTATE, post(enclave::rotate))
        .merge(destinations::routes())
        .fallback(not_found)
        // A known path with a method it does not take is "no route", as for any other path
        // (`/v1/bundles` sets its own 405).
        .method_not_allowed_fallback(not_found)
        .with_state(state)
}

/// `GET` only. axum would also answer `HEAD` with the `GET` handler; this API never has.
pub(crate) fn get_only<H, T>(handler: H) -> MethodRouter<SharedState>
where
    H: Handler<T, SharedState>,
    T: 'static,
{
    get(handler).head(not_found)
}

/// Serves the admin API on `listener` until `shutdown`, then lets the requests in flight finish
/// and returns once every connection has closed.
///
/// At most 256 connections are open and 64 requests are handled at once (`MAX_CONNECTIONS`,
/// `MAX_REQUESTS_IN_FLIGHT`); a connection that does not send a request head within 10 s
/// (`HEADER_READ_TIMEOUT`) is closed.
pub async fn serve(listener: Listener, state: Arc<AdminState>, shutdown: CancellationToken) {
    let service = ConcurrencyLimit::new(router(state), MAX_REQUESTS_IN_FLIGHT);
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let tasks = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = connections.clone().acquire_owned() => p,
        };
        // The semaphore is never closed.
        let Ok(permit) = permit else { break };
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            s = listener.accept() => s,
        };
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "admin accept failed");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                }
            }
        };
        let conn = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(service.clone()),
        );
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            tokio::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => r,
                _ = shutdown.cancelled() => {
                    // Finish the request in flight, if any, then close.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                debug!(error = %e, "admin connection ended");
            }
            drop(permit);
        });
    }
    tasks.close();
    tasks.wait().await;
}

/// A complete answer, built once and sent as is.
pub(crate) type Reply = Response<Body>;

pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Reply {
    let body = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"{}".to_vec());
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Reply {
    json(
        status,
        &ErrorBody {
            error: ApiError {
                code: code.to_owned(),
                message: message.into(),
            },
        },
    )
}

/// The answer to a path or method this API does not have.
pub(crate) async fn not_found(method: Method, uri: Uri) -> Reply {
    error(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("no route {method} {}", uri.path()),
    )
}

/// Reads a whole request body of at most `limit` bytes.
pub(crate) async fn read_body(
    body: Body,
    limit: usize,
) -> Result<Bytes, Box<dyn std::error::Error + Send + Sync>> {
    Ok(Limited::new(body, limit).collect().await?.to_bytes())
}

fn control_error(e: ControlError) -> Reply {
    let status = if e.code == ErrorCode::EnclaveUnavailable {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::BAD_GATEWAY
    };
    error(status, e.code.as_str(), e.message)
}

fn unexpected(body: &ResponseBody) -> Reply {
    warn!(?body, "unexpected control response");
    error(
        StatusCode::BAD_GATEWAY,
        "EnclaveUnavailable",
        "the enclave answered with the wrong response type",
    )
}
