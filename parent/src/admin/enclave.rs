//! Admin API routes for the parent's status and the enclave: `/v1/status` and `/v1/enclave/…`.

use super::{
    AdminState, MAX_BODY, Reply, SharedState, control_error, error, json, read_body, unexpected,
};
use axum::body::Body;
use axum::extract::State;
use http::{Response, StatusCode};
use nitrosync_api::{
    AttestRequest, AttestationReply, EnclaveDescription, ParentStatus, ProbeRequest, RecentError,
    RelayStatus, Status, from_hex, to_hex,
};
use nitrosync_shared::ErrorCode;
use nitrosync_shared::control::{ControlError, RequestBody, ResponseBody};

async fn attest_with(
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

/// `GET /v1/status`.
pub(crate) async fn status(State(state): State<SharedState>) -> Reply {
    json(StatusCode::OK, &status_of(&state).await)
}

async fn status_of(state: &AdminState) -> Status {
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
    // A store that cannot answer is reported as such, never as zero destinations.
    let store = state.store.clone();
    let read = tokio::task::spawn_blocking(move || -> Result<_, crate::ParentError> {
        let counts = store.counts_by_state()?;
        let errors: Vec<RecentError> = store
            .recent_errors(10)?
            .into_iter()
            .filter_map(|d| {
                d.last_error.map(|e| RecentError {
                    tenant: to_hex(&d.key.tenant_key),
                    destination: d.key.id,
                    code: e.code.to_string(),
                    message: e.message,
                    at_ms: e.at_ms,
                })
            })
            .collect();
        Ok((counts, errors))
    })
    .await;
    let (destinations, recent_errors, store_error) = match read {
        Ok(Ok((counts, errors))) => (Some(counts), errors, None),
        Ok(Err(e)) => (None, Vec::new(), Some(e.to_string())),
        Err(e) => (
            None,
            Vec::new(),
            Some(format!("the store task failed: {e}")),
        ),
    };
    use std::sync::atomic::Ordering::Relaxed;
    let stats = state.scheduler.stats();
    let syncs = [
        ("started", stats.started.load(Relaxed)),
        ("succeeded", stats.succeeded.load(Relaxed)),
        ("failed", stats.failed.load(Relaxed)),
        ("rate_limited", stats.rate_limited.load(Relaxed)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Status {
        destinations,
        store_error,
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

/// `GET /v1/enclave/describe`.
pub(crate) async fn describe(State(state): State<SharedState>) -> Reply {
    let description = match state.client.request(RequestBody::Describe).await {
        Ok(ResponseBody::Describe(d)) => d,
        Ok(other) => return unexpected(&other),
        Err(e) => return control_error(e),
    };
    let (attestation, attestation_error) = match attest_with(&state, None).await {
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

/// `GET /v1/enclave/saml-metadata`.
pub(crate) async fn saml_metadata(State(state): State<SharedState>) -> Reply {
    match state.client.request(RequestBody::Describe).await {
        Ok(ResponseBody::Describe(d)) => Response::builder()
            .status(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "application/samlmetadata+xml")
            .body(Body::from(d.saml_metadata))
            .unwrap_or_else(|_| Response::new(Body::empty())),
        Ok(other) => unexpected(&other),
        Err(e) => control_error(e),
    }
}

/// `POST /v1/enclave/attest`; an empty body asks for a random nonce.
pub(crate) async fn attest(State(state): State<SharedState>, body: Body) -> Reply {
    let bytes = match read_body(body, MAX_BODY).await {
        Ok(b) => b,
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
    match attest_with(&state, nonce).await {
        Ok(a) => json(StatusCode::OK, &a),
        Err(e) => control_error(e),
    }
}

/// `POST /v1/enclave/probe`.
pub(crate) async fn probe(State(state): State<SharedState>, body: Body) -> Reply {
    let bytes = match read_body(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, "BadRequest", e.to_string()),
    };
    let probe: ProbeRequest = match serde_json::from_slice(&bytes) {
        Ok(p) => p,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, "BadRequest", format!("body: {e}"));
        }
    };
    if !nitrosync_shared::names::is_region(&probe.region) {
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

/// `POST /v1/enclave/rotate`: one step of a key rotation of the sealed identity. The parent
/// stores the re-sealed identity before it answers.
pub(crate) async fn rotate(State(state): State<SharedState>, body: Body) -> Reply {
    use nitrosync_shared::control::{MAX_BUNDLE_KEY_GRACE_S, RotationStep};
    let bytes = match read_body(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, "BadRequest", e.to_string()),
    };
    let req: nitrosync_api::RotateRequest = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "BadRequest", format!("body: {e}")),
    };
    let step = match req.step.as_str() {
        "begin" => RotationStep::Begin,
        "finish" => RotationStep::Finish,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("step: {other:?} is not \"begin\" or \"finish\""),
            );
        }
    };
    let grace = req
        .bundle_key_grace_s
        .unwrap_or(nitrosync_api::DEFAULT_BUNDLE_KEY_GRACE_S);
    if grace > MAX_BUNDLE_KEY_GRACE_S {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("bundle_key_grace_s: {grace} is more than {MAX_BUNDLE_KEY_GRACE_S} (30 days)"),
        );
    }
    let Some(key_arn) = state.identity_kms_key.clone() else {
        return error(
            StatusCode::CONFLICT,
            "InvalidConfig",
            "the enclave's identity is not sealed under KMS here ([identity] kms_key_arn is not set): there is nothing to rotate",
        );
    };
    let report =
        match crate::identity::rotate(&state.client, &state.store, &key_arn, step, grace).await {
            Ok(r) => r,
            Err(e) => return control_error(e),
        };
    // What the enclave attests now, for the answer.
    let description = match state.client.request(RequestBody::Describe).await {
        Ok(ResponseBody::Describe(d)) => d,
        Ok(other) => return unexpected(&other),
        Err(e) => return control_error(e),
    };
    let rotation = description
        .rotation
        .unwrap_or(nitrosync_shared::control::RotationStatus {
            generation: report.sealed.generation,
            next_saml_cert_sha256: None,
            previous_bundle_key_until_ms: None,
        });
    json(
        StatusCode::OK,
        &nitrosync_api::RotateReply {
            step: req.step,
            key_arn,
            generation: report.sealed.generation,
            saml_cert_sha256: description.saml_cert_sha256,
            next_saml_cert_sha256: rotation.next_saml_cert_sha256,
            previous_bundle_key_until_ms: rotation.previous_bundle_key_until_ms,
        },
    )
}
