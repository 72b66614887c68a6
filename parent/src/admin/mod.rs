//! The admin API: HTTP/1.1 + JSON on a Unix socket (mode 0600), for the `nitrosync` CLI and for
//! automation.
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /v1/status` | [`Status`]: parent, control connection, enclave health, relay counters |
//! | `GET /v1/enclave/describe` | the enclave's `Description` and a fresh attestation document ([`EnclaveDescription`]) |
//! | `GET /v1/enclave/saml-metadata` | the SAML IdP metadata XML to register in IAM |
//! | `POST /v1/enclave/attest` with `{"nonce": "HEX"}` (optional) | a fresh attestation document ([`AttestationReply`]) |
//! | `POST /v1/enclave/probe` with `{"region": "us-east-1"}` | a `ProbeReport`: one STS call made by the enclave through the relay |
//!
//! Errors are `{"error": {"code": "...", "message": "..."}}` with 400 (bad request), 404 (no such
//! route) or 503 (enclave unavailable).

pub mod destinations;

use crate::control::{ControlState, EnclaveClient};
use crate::relay::{RelayStats, RelayStatsSnapshot};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use nitrosync_shared::ErrorCode;
use nitrosync_shared::control::{ControlError, HealthReport, RequestBody, ResponseBody};
use nitrosync_transport::Listener;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

/// Largest admin request body accepted.
const MAX_BODY: usize = 64 * 1024;

/// What `GET /v1/status` returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// The daemon itself.
    pub parent: ParentStatus,
    /// The control connection.
    pub control: ControlState,
    /// The enclave's health, when it answered.
    pub enclave: Option<HealthReport>,
    /// Why there is no health report.
    pub enclave_error: Option<ControlError>,
    /// The relay.
    pub relay: RelayStatus,
    /// Destinations by state.
    pub destinations: std::collections::BTreeMap<String, u64>,
    /// Scheduler counters: syncs started, succeeded, failed, and `rate_limited` (scheduling
    /// passes that held back an account at its rate).
    pub syncs: std::collections::BTreeMap<String, u64>,
    /// The most recent failures (destination, code, message).
    pub recent_errors: Vec<RecentError>,
}

/// A destination whose last sync failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecentError {
    /// Destination id.
    pub destination: String,
    /// Error code.
    pub code: String,
    /// Message.
    pub message: String,
}

/// The daemon's own facts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParentStatus {
    /// Crate version.
    pub version: String,
    /// Milliseconds since start.
    pub uptime_ms: u64,
}

/// The relay's settings summary and counters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelayStatus {
    /// Where tunnels arrive.
    pub listen: String,
    /// Regions allowed.
    pub regions: Vec<String>,
    /// Counters.
    pub stats: RelayStatsSnapshot,
}

/// Body of `POST /v1/enclave/probe`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeRequest {
    /// The region whose STS endpoint is called.
    pub region: String,
}

/// Body of `POST /v1/enclave/attest`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestRequest {
    /// Hex nonce to bind into the document; 32 random bytes when absent.
    pub nonce: Option<String>,
}

/// A fresh attestation document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttestationReply {
    /// The nonce bound into the document, hex.
    pub nonce: String,
    /// The COSE_Sign1 document, base64.
    pub document: String,
}

/// What `GET /v1/enclave/describe` returns: the enclave's description and a fresh attestation
/// document that binds its keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnclaveDescription {
    /// The enclave's own description.
    #[serde(flatten)]
    pub description: nitrosync_shared::control::Description,
    /// A fresh document (random nonce), when the enclave could attest.
    pub attestation: Option<AttestationReply>,
    /// Why there is no document.
    pub attestation_error: Option<String>,
}

/// Lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses hex (an optional `0x` prefix is allowed).
pub fn from_hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if !s.len().is_multiple_of(2) {
        return Err("hex must have an even number of digits".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&s[i..i + 2], 16)
                .map_err(|_| format!("{:?} is not hex", &s[i..i + 2]))
        })
        .collect()
}

async fn attest(
    state: &AdminState,
    nonce: Option<Vec<u8>>,
) -> Result<AttestationReply, ControlError> {
    let nonce = match nonce {
        Some(n) => n,
        None => {
            let mut n = vec![0u8; 32];
            getrandom::fill(&mut n).map_err(|e| ControlError {
                code: ErrorCode::EnclaveUnavailable,
                message: format!("no entropy for a nonce: {e}"),
            })?;
            n
        }
    };
    match state
        .client
        .request(RequestBody::Attest {
            nonce: nonce.clone(),
        })
        .await?
    {
        ResponseBody::Attestation { document } => {
            use base64::Engine as _;
            Ok(AttestationReply {
                nonce: to_hex(&nonce),
                document: base64::engine::general_purpose::STANDARD.encode(document),
            })
        }
        other => Err(ControlError {
            code: ErrorCode::EnclaveUnavailable,
            message: format!("unexpected answer to Attest: {other:?}"),
        }),
    }
}

/// The error body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ApiError,
}

/// One error.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    /// A product error code, or `BadRequest` / `NotFound`.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

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
    /// The durable store (absent only in relay-only test set-ups).
    pub store: Option<Arc<crate::store::Store>>,
    /// Group commit of submits into `store` (present with it).
    pub commits: Option<crate::store::GroupCommit>,
    /// Wakes the scheduler after a submit or an enable.
    pub wake: Arc<tokio::sync::Notify>,
    /// Scheduler counters.
    pub scheduler: Arc<crate::scheduler::SchedulerStats>,
}

pub(crate) type Reply = Response<Full<Bytes>>;

pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Reply {
    let body = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"{}".to_vec());
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
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

async fn status(state: &AdminState) -> Status {
    let (enclave, enclave_error) = match state.client.request(RequestBody::Health).await {
        Ok(ResponseBody::Health(h)) => (Some(h), None),
        Ok(other) => (
            None,
            Some(ControlError {
                code: ErrorCode::EnclaveUnavailable,
                message: format!("unexpected answer to Health: {other:?}"),
            }),
        ),
        Err(e) => (None, Some(e)),
    };
    let (destinations, recent_errors) = match state.store.clone() {
        Some(store) => tokio::task::spawn_blocking(move || {
            let counts = store.counts_by_state().unwrap_or_default();
            let errors: Vec<RecentError> = store
                .recent_errors(10)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|d| {
                    d.last_error.map(|e| RecentError {
                        destination: d.key.id,
                        code: e.code.to_string(),
                        message: e.message,
                    })
                })
                .collect();
            (counts, errors)
        })
        .await
        .unwrap_or_default(),
        None => Default::default(),
    };
    use std::sync::atomic::Ordering::Relaxed;
    let syncs = [
        ("started", state.scheduler.started.load(Relaxed)),
        ("succeeded", state.scheduler.succeeded.load(Relaxed)),
        ("failed", state.scheduler.failed.load(Relaxed)),
        ("rate_limited", state.scheduler.rate_limited.load(Relaxed)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Status {
        destinations,
        syncs,
        recent_errors,
        parent: ParentStatus {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_ms: u64::try_from(state.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        },
        control: state.client.state(),
        enclave,
        enclave_error,
        relay: RelayStatus {
            listen: state.relay_listen.clone(),
            regions: state.regions.clone(),
            stats: state.relay_stats.snapshot(),
        },
    }
}

async fn route(state: &AdminState, req: Request<Incoming>) -> Reply {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    if path == "/v1/bundles" || path.starts_with("/v1/destinations") {
        return match destinations::route(state, &parts.method, path, parts.uri.query(), body).await
        {
            Some(r) => r,
            None => error(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("no route {} {path}", parts.method),
            ),
        };
    }
    match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/v1/status") => json(StatusCode::OK, &status(state).await),
        (&Method::GET, "/v1/enclave/describe") => {
            let description = match state.client.request(RequestBody::Describe).await {
                Ok(ResponseBody::Describe(d)) => d,
                Ok(other) => return unexpected(&other),
                Err(e) => return control_error(e),
            };
            let (attestation, attestation_error) = match attest(state, None).await {
                Ok(a) => (Some(a), None),
                Err(e) => (None, Some(format!("{}: {}", e.code, e.message))),
            };
            json(
                StatusCode::OK,
                &EnclaveDescription {
                    description,
                    attestation,
                    attestation_error,
                },
            )
        }
        (&Method::GET, "/v1/enclave/saml-metadata") => {
            match state.client.request(RequestBody::Describe).await {
                Ok(ResponseBody::Describe(d)) => Response::builder()
                    .status(StatusCode::OK)
                    .header(http::header::CONTENT_TYPE, "application/samlmetadata+xml")
                    .body(Full::new(Bytes::from(d.saml_metadata)))
                    .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))),
                Ok(other) => unexpected(&other),
                Err(e) => control_error(e),
            }
        }
        (&Method::POST, "/v1/enclave/attest") => {
            let bytes = match Limited::new(body, MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return error(StatusCode::BAD_REQUEST, "BadRequest", e.to_string()),
            };
            let req: AttestRequest = if bytes.is_empty() {
                AttestRequest::default()
            } else {
                match serde_json::from_slice(&bytes) {
                    Ok(r) => r,
                    Err(e) => {
                        return error(StatusCode::BAD_REQUEST, "BadRequest", format!("body: {e}"));
                    }
                }
            };
            let nonce = match req.nonce.as_deref().map(from_hex).transpose() {
                Ok(n) => n,
                Err(e) => {
                    return error(StatusCode::BAD_REQUEST, "BadRequest", format!("nonce: {e}"));
                }
            };
            if nonce.as_ref().is_some_and(|n| n.len() > 512) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "nonce: at most 512 bytes",
                );
            }
            match attest(state, nonce).await {
                Ok(a) => json(StatusCode::OK, &a),
                Err(e) => control_error(e),
            }
        }
        (&Method::POST, "/v1/enclave/probe") => {
            let bytes = match Limited::new(body, MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return error(StatusCode::BAD_REQUEST, "BadRequest", e.to_string()),
            };
            let probe: ProbeRequest = match serde_json::from_slice(&bytes) {
                Ok(p) => p,
                Err(e) => {
                    return error(StatusCode::BAD_REQUEST, "BadRequest", format!("body: {e}"));
                }
            };
            if !crate::relay::is_region(&probe.region) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!("{:?} is not an AWS region name", probe.region),
                );
            }
            let req = RequestBody::ProbeAws {
                region: probe.region,
            };
            match state.client.request(req).await {
                Ok(ResponseBody::ProbeAws(r)) => json(StatusCode::OK, &r),
                Ok(other) => unexpected(&other),
                Err(e) => control_error(e),
            }
        }
        (_, path) => error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no route {} {path}", parts.method),
        ),
    }
}

/// Serves the admin API on `listener` until `shutdown`.
pub async fn serve(listener: Listener, state: Arc<AdminState>, shutdown: CancellationToken) {
    let tasks = TaskTracker::new();
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            s = listener.accept() => s,
        };
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(route(&state, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => if let Err(e) = r { debug!(error = %e, "admin connection ended") },
                _ = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
            }
        });
    }
    tasks.close();
    tasks.wait().await;
}
