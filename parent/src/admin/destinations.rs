//! Admin API routes for bundles and destinations.
//!
//! | method and path | answer |
//! |---|---|
//! | `POST /v1/bundles` (body: the CBOR of a `SealedBundle`) | [`SubmitReply`]; 409 when the version is not newer |
//! | `GET /v1/destinations` | every destination ([`DestinationRecord`]s) |
//! | `GET /v1/destinations/{tenant}/{id}` | one destination |
//! | `POST /v1/destinations/{tenant}/{id}/enable` \| `disable` \| `retry` | the destination after the change |
//! | `POST /v1/destinations/{tenant}/{id}/test` | a `SyncReport` of a connection test with the stored bundle |
//! | `POST /v1/destinations/{tenant}/{id}/delete` | a `SyncReport` of applying the delete policy; the destination is then forgotten |
//! | `GET /v1/destinations/{tenant}/{id}/history?limit=N` | [`HistoryRecord`]s, newest first |
//!
//! `{tenant}` is the tenant's Ed25519 public key in hex. Acknowledgement of a submit means the
//! bundle is committed to the store: it survives a crash of the daemon. Concurrent submits share
//! transactions ([`GroupCommit`](crate::store::GroupCommit)).

// Handlers return a ready HTTP reply as their error: it is built once and sent as is.
#![allow(clippy::result_large_err)]

use super::{AdminState, Reply, SharedState, error, get_only, json, not_found, read_body};
use crate::store::{DestinationKey, DestinationRecord, HistoryRecord, ListFilter, SubmitOutcome};
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::routing::{self, post};
use http::{Method, StatusCode, Uri};
use nitrosync_api::{SubmitReply, from_hex, paths, to_hex};
use nitrosync_shared::bundle::{BundleHeader, Operation, SealedBundle};

/// The routes of this module.
pub(super) fn routes() -> Router<SharedState> {
    let one = format!("{}/{{tenant}}/{{id}}", paths::DESTINATIONS);
    let action = format!("{one}/{{action}}");
    Router::new()
        .route(paths::BUNDLES, post(submit).fallback(bundles_only_post))
        .route(paths::DESTINATIONS, get_only(list))
        .route(&one, get_only(one_destination))
        .route(&action, routing::get(history).head(not_found).post(act))
}

fn store_error(e: impl std::fmt::Display) -> Reply {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "ParentError",
        e.to_string(),
    )
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Reply> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            e.to_string(),
        )
    })
}

fn parse_key(tenant: &str, id: &str) -> Result<DestinationKey, Reply> {
    let bytes = from_hex(tenant)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "tenant must be 64 hex digits",
            )
        })?;
    nitrosync_shared::names::destination_id(id).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("destination id: {e}"),
        )
    })?;
    Ok(DestinationKey::new(bytes, id))
}

/// `POST /v1/bundles`: the body is the CBOR of a `SealedBundle`, at most a frame long.
pub(crate) async fn submit(State(state): State<SharedState>, body: Body) -> Reply {
    let bytes = match read_body(body, nitrosync_shared::MAX_FRAME_LEN).await {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BadRequest",
                format!("bundle: {e}"),
            );
        }
    };
    let bundle: SealedBundle = match nitrosync_shared::frame::decode_payload(&bytes) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidBundle",
                format!("not a sealed bundle: {e}"),
            );
        }
    };
    if let Err(e) = nitrosync_bundle::verify_signed(&bundle) {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidBundle",
            format!("the bundle was rejected: {e}"),
        );
    }
    if bundle.header.operation != Operation::Write {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidBundle",
            format!(
                "a {:?} bundle is not stored: POST it to /v1/destinations/{{tenant}}/{{id}}/{}",
                bundle.header.operation,
                if bundle.header.operation == Operation::Delete {
                    "delete"
                } else {
                    "test"
                }
            ),
        );
    }
    let commits = &state.commits;
    let header = bundle.header.clone();
    let reply = SubmitReply {
        tenant: to_hex(&header.tenant_key),
        destination: header.destination.id.clone(),
        version: header.version,
        previous_version: None,
    };
    match commits.submit(bytes.to_vec(), header).await {
        Err(e) => store_error(e),
        Ok(SubmitOutcome::Stale { stored_version }) => error(
            StatusCode::CONFLICT,
            "StaleVersion",
            format!(
                "version {} is not newer than the stored version {stored_version}",
                reply.version
            ),
        ),
        Ok(SubmitOutcome::Accepted { previous_version }) => {
            state.wake.notify_one();
            json(
                StatusCode::OK,
                &SubmitReply {
                    previous_version,
                    ..reply
                },
            )
        }
    }
}

async fn get(state: &AdminState, key: DestinationKey) -> Result<DestinationRecord, Reply> {
    let store = state.store.clone();
    let id = key.id.clone();
    match blocking(move || store.get(&key)).await? {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(error(
            StatusCode::NOT_FOUND,
            "UnknownDestination",
            format!("no destination {id:?} for this tenant"),
        )),
        Err(e) => Err(store_error(e)),
    }
}

/// Reads a bundle the tenant signed for `want` on destination `key`: it must decode, verify,
/// and name this tenant, this destination and this operation. The parent checks so that it can
/// answer clearly; the enclave checks again, and is the one that counts.
async fn signed_bundle(
    body: Body,
    key: &DestinationKey,
    want: Operation,
) -> Result<(Vec<u8>, BundleHeader), Reply> {
    let bytes = read_body(body, nitrosync_shared::MAX_FRAME_LEN)
        .await
        .map_err(|e| {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BadRequest",
                format!("bundle: {e}"),
            )
        })?;
    if bytes.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "InvalidBundle",
            format!(
                "a {want:?} needs a bundle signed by the tenant for it (`nitrosync destination {}` seals one)",
                if want == Operation::Delete {
                    "delete"
                } else {
                    "test"
                }
            ),
        ));
    }
    let bundle: SealedBundle = nitrosync_shared::frame::decode_payload(&bytes).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "InvalidBundle",
            format!("not a sealed bundle: {e}"),
        )
    })?;
    nitrosync_bundle::verify_signed(&bundle).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "InvalidBundle",
            format!("the bundle was rejected: {e}"),
        )
    })?;
    let h = bundle.header;
    if h.tenant_key != key.tenant_key || h.destination.id != key.id || h.operation != want {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "InvalidBundle",
            format!(
                "the bundle is a {:?} of destination {:?}, not a {want:?} of {:?} for this tenant",
                h.operation, h.destination.id, key.id
            ),
        ));
    }
    Ok((bytes.to_vec(), h))
}

/// Runs a tenant-signed test or delete now through the scheduler (its pacing, its
/// per-destination lock, its record keeping).
async fn run_signed(
    state: &AdminState,
    bundle: Vec<u8>,
    header: &BundleHeader,
) -> Result<nitrosync_shared::control::SyncReport, Reply> {
    state
        .scheduler
        .run_signed(bundle, header)
        .await
        .map_err(store_error)
}

/// Anything but `POST` on `/v1/bundles`.
pub(crate) async fn bundles_only_post() -> Reply {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "BadRequest",
        "POST a bundle here",
    )
}

/// A path segment that does not decode (percent-encoding of invalid UTF-8).
fn bad_path(e: PathRejection) -> Reply {
    error(StatusCode::BAD_REQUEST, "BadRequest", e.body_text())
}

/// `GET /v1/destinations`.
async fn list(State(state): State<SharedState>) -> Reply {
    let store = state.store.clone();
    match blocking(move || store.list(ListFilter::All)).await {
        Ok(Ok(list)) => json(StatusCode::OK, &list),
        Ok(Err(e)) => store_error(e),
        Err(r) => r,
    }
}

/// `GET /v1/destinations/{tenant}/{id}`.
pub(crate) async fn one_destination(
    State(state): State<SharedState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Reply, Reply> {
    let Path((tenant, id)) = path.map_err(bad_path)?;
    let key = parse_key(&tenant, &id)?;
    let rec = get(&state, key).await?;
    Ok(json(StatusCode::OK, &rec))
}

/// `GET /v1/destinations/{tenant}/{id}/history?limit=N`; any other `GET` below a destination is
/// no route.
pub(crate) async fn history(
    State(state): State<SharedState>,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Reply, Reply> {
    let Path((tenant, id, action)) = path.map_err(bad_path)?;
    if action != "history" {
        return Err(not_found(method, uri).await);
    }
    let key = parse_key(&tenant, &id)?;
    let limit = query
        .as_deref()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("limit=")))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(20)
        .min(1000);
    get(&state, key.clone()).await?;
    let store = state.store.clone();
    Ok(match blocking(move || store.history(&key, limit)).await? {
        Ok(h) => json::<Vec<HistoryRecord>>(StatusCode::OK, &h),
        Err(e) => store_error(e),
    })
}

/// `POST /v1/destinations/{tenant}/{id}/{enable|disable|retry|test|delete}`. `test` and
/// `delete` take a bundle the tenant signed for that operation as their body.
pub(crate) async fn act(
    State(state): State<SharedState>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    body: Body,
) -> Result<Reply, Reply> {
    let Path((tenant, id, action)) = path.map_err(bad_path)?;
    let key = parse_key(&tenant, &id)?;
    let store = state.store.clone();
    let now = crate::scheduler::now_ms();
    Ok(match action.as_str() {
        "enable" | "disable" | "retry" => {
            get(&state, key.clone()).await?;
            let enable = action == "enable";
            let k = key.clone();
            let s = store.clone();
            let changed = blocking(move || {
                if action == "retry" {
                    s.retry_now(&k, now)
                } else {
                    s.set_enabled(&k, enable, now)
                }
            })
            .await?;
            match changed {
                Ok(_) => {
                    state.wake.notify_one();
                    json(StatusCode::OK, &get(&state, key).await?)
                }
                Err(e) => store_error(e),
            }
        }
        "test" => {
            let (bytes, header) = signed_bundle(body, &key, Operation::TestConnection).await?;
            json(StatusCode::OK, &run_signed(&state, bytes, &header).await?)
        }
        "delete" => {
            let (bytes, header) = signed_bundle(body, &key, Operation::Delete).await?;
            let report = run_signed(&state, bytes, &header).await?;
            if report.error.is_none()
                && let Ok(Err(e)) = blocking(move || store.delete_destination(&key)).await
            {
                return Err(store_error(e));
            }
            json(StatusCode::OK, &report)
        }
        other => error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no action {other:?}"),
        ),
    })
}
