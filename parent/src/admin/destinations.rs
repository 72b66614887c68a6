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

use super::{AdminState, Reply, error, json, to_hex};
use crate::store::{
    DestinationKey, DestinationRecord, DueSync, HistoryRecord, ListFilter, SubmitOutcome,
};
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use nitrosync_shared::bundle::SealedBundle;
use nitrosync_shared::control::SyncMode;
use serde::{Deserialize, Serialize};

/// The answer to a submit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmitReply {
    /// Tenant key, hex.
    pub tenant: String,
    /// Destination id.
    pub destination: String,
    /// The version submitted.
    pub version: u64,
    /// The version it replaced, if any.
    pub previous_version: Option<u64>,
}

fn store_error(e: impl std::fmt::Display) -> Reply {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "StoreError",
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
    let bytes = super::from_hex(tenant)
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

async fn submit(state: &AdminState, body: Incoming) -> Reply {
    let bytes: Bytes = match Limited::new(body, nitrosync_shared::MAX_FRAME_LEN)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
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
    let Some(commits) = state.commits.clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "NoStore",
            "this daemon has no store",
        );
    };
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
    let Some(store) = state.store.clone() else {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "NoStore",
            "this daemon has no store",
        ));
    };
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

/// Runs a test or delete now with the stored bundle, and records it in the history.
async fn run_now(
    state: &AdminState,
    record: &DestinationRecord,
    mode: SyncMode,
) -> Result<nitrosync_shared::control::SyncReport, Reply> {
    let Some(store) = state.store.clone() else {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "NoStore",
            "this daemon has no store",
        ));
    };
    let key = record.key.clone();
    let bundle = {
        let store = store.clone();
        let key = key.clone();
        match blocking(move || store.bundle(&key)).await? {
            Ok(Some(b)) => b,
            Ok(None) => {
                return Err(error(
                    StatusCode::CONFLICT,
                    "NoBundle",
                    "no bundle stored for this destination yet",
                ));
            }
            Err(e) => return Err(store_error(e)),
        }
    };
    let due = DueSync {
        key: key.clone(),
        region: record.config.region.clone(),
        account: record.config.account().unwrap_or_default(),
        version: record.version,
        bundle,
        mode,
        attempts: 0,
    };
    let started = crate::scheduler::now_ms();
    let report = crate::scheduler::run_sync(&state.client, &due).await;
    let finished = crate::scheduler::now_ms();
    let (r, version) = (report.clone(), record.version);
    if let Ok(Err(e)) =
        blocking(move || store.record_result(&key, version, &r, started, finished, None)).await
    {
        return Err(store_error(e));
    }
    Ok(report)
}

/// Routes `/v1/bundles` and `/v1/destinations…`; `None` when the path is not one of these.
pub async fn route(
    state: &AdminState,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: Incoming,
) -> Option<Reply> {
    if path == "/v1/bundles" {
        return Some(match *method {
            Method::POST => submit(state, body).await,
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "BadRequest",
                "POST a bundle here",
            ),
        });
    }
    let rest = path.strip_prefix("/v1/destinations")?;
    let store = match state.store.clone() {
        Some(s) => s,
        None => {
            return Some(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "NoStore",
                "this daemon has no store",
            ));
        }
    };
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let reply = match (method, parts.as_slice()) {
        (&Method::GET, []) => match blocking(move || store.list(ListFilter::All)).await {
            Ok(Ok(list)) => json(StatusCode::OK, &list),
            Ok(Err(e)) => store_error(e),
            Err(r) => r,
        },
        (&Method::GET, [tenant, id]) => match parse_key(tenant, id) {
            Err(r) => r,
            Ok(key) => match get(state, key).await {
                Ok(rec) => json(StatusCode::OK, &rec),
                Err(r) => r,
            },
        },
        (&Method::GET, [tenant, id, "history"]) => match parse_key(tenant, id) {
            Err(r) => r,
            Ok(key) => {
                let limit = query
                    .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("limit=")))
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(20)
                    .min(1000);
                if let Err(r) = get(state, key.clone()).await {
                    return Some(r);
                }
                match blocking(move || store.history(&key, limit)).await {
                    Ok(Ok(h)) => json::<Vec<HistoryRecord>>(StatusCode::OK, &h),
                    Ok(Err(e)) => store_error(e),
                    Err(r) => r,
                }
            }
        },
        (&Method::POST, [tenant, id, action]) => match parse_key(tenant, id) {
            Err(r) => r,
            Ok(key) => {
                let record = match get(state, key.clone()).await {
                    Ok(r) => r,
                    Err(r) => return Some(r),
                };
                let now = crate::scheduler::now_ms();
                match *action {
                    "enable" | "disable" | "retry" => {
                        let enable = *action == "enable";
                        let action = action.to_string();
                        let k = key.clone();
                        let s = store.clone();
                        let changed = blocking(move || {
                            if action == "retry" {
                                s.retry_now(&k, now)
                            } else {
                                s.set_enabled(&k, enable, now)
                            }
                        })
                        .await;
                        match changed {
                            Ok(Ok(_)) => {
                                state.wake.notify_one();
                                match get(state, key).await {
                                    Ok(rec) => json(StatusCode::OK, &rec),
                                    Err(r) => r,
                                }
                            }
                            Ok(Err(e)) => store_error(e),
                            Err(r) => r,
                        }
                    }
                    "test" => match run_now(state, &record, SyncMode::TestConnection).await {
                        Ok(report) => json(StatusCode::OK, &report),
                        Err(r) => r,
                    },
                    "delete" => match run_now(state, &record, SyncMode::Delete).await {
                        Ok(report) => {
                            if report.error.is_none()
                                && let Ok(Err(e)) =
                                    blocking(move || store.delete_destination(&key)).await
                            {
                                return Some(store_error(e));
                            }
                            json(StatusCode::OK, &report)
                        }
                        Err(r) => r,
                    },
                    other => error(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        format!("no action {other:?}"),
                    ),
                }
            }
        },
        _ => error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no route {method} {path}"),
        ),
    };
    Some(reply)
}
