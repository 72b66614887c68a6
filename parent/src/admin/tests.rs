//! The admin router driven in memory (`tower::ServiceExt::oneshot`), and [`serve`] on a real Unix
//! socket. No enclave runs: the control client never connects, so every enclave request fails
//! with `EnclaveUnavailable`.

use super::*;
use crate::scheduler::{Scheduler, SchedulerSettings, now_ms};
use crate::store::{GroupCommit, Store};
use http::Request;
use nitrosync_api::{AdminClient, ClientError};
use nitrosync_shared::Endpoint;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

/// A state over a fresh store in `dir`, with a control client that never connects.
pub(crate) fn state(dir: &tempfile::TempDir) -> Arc<AdminState> {
    let store = Arc::new(Store::open(dir.path().join("store.db")).expect("open the store"));
    // The supervisor stops at once: the client stays disconnected and never dials.
    let stopped = CancellationToken::new();
    stopped.cancel();
    let (client, _supervisor) = EnclaveClient::start(
        Endpoint::Unix(dir.path().join("no-enclave.sock")),
        Duration::from_secs(1),
        Duration::from_secs(1),
        Duration::from_secs(1),
        stopped,
    );
    let wake = Arc::new(tokio::sync::Notify::new());
    let scheduler = Scheduler::new(
        store.clone(),
        client.clone(),
        wake.clone(),
        SchedulerSettings::default(),
        Arc::default(),
    );
    Arc::new(AdminState {
        client,
        relay_stats: Arc::default(),
        relay_listen: "unix:/nowhere".to_owned(),
        regions: vec!["us-east-1".to_owned()],
        started: Instant::now(),
        commits: GroupCommit::start(store.clone(), now_ms),
        store,
        wake,
        scheduler,
        identity_kms_key: None,
    })
}

/// Sends one request through a fresh router; returns the status, content type and body.
async fn call(
    state: &Arc<AdminState>,
    method: Method,
    path: &str,
    body: impl Into<Body>,
) -> (StatusCode, Option<String>, Bytes) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .body(body.into())
        .expect("a valid request");
    let resp = router(state.clone())
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("the whole body");
    (status, content_type, body)
}

/// Like [`call`] for an error answer: the status and the parsed `{"error": {...}}`.
async fn call_err(
    state: &Arc<AdminState>,
    method: Method,
    path: &str,
    body: impl Into<Body>,
) -> (StatusCode, ApiError) {
    let (status, content_type, body) = call(state, method, path, body).await;
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let parsed: ErrorBody = serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "not an error body ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    });
    (status, parsed.error)
}

const TENANT: &str = "0101010101010101010101010101010101010101010101010101010101010101";

#[tokio::test]
async fn unknown_route_is_a_json_404_naming_method_and_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state(&dir);
    let (status, content_type, body) =
        call(&state, Method::GET, "/v1/nope?x=1", Body::empty()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let value: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(
        value,
        serde_json::json!({"error": {"code": "NotFound", "message": "no route GET /v1/nope"}})
    );
    let (status, e) = call_err(&state, Method::DELETE, "/v1/destinations/a/b/c/d", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(e.message, "no route DELETE /v1/destinations/a/b/c/d");
}

#[tokio::test]
async fn wrong_method_answers_as_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state(&dir);
    for method in [Method::GET, Method::PUT] {
        let (status, e) = call_err(&state, method, paths::BUNDLES, "").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("BadRequest", "POST a bundle here")
        );
    }
    // Elsewhere a method the path does not take is no route.
    for (method, path) in [
        (Method::POST, paths::STATUS),
        (Method::GET, paths::ENCLAVE_ATTEST),
        (Method::DELETE, paths::ENCLAVE_PROBE),
        (Method::POST, paths::DESTINATIONS),
    ] {
        let (status, e) = call_err(&state, method.clone(), path, "").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(e.code, "NotFound");
        assert_eq!(e.message, format!("no route {method} {path}"));
    }
    // HEAD is not GET here (answers to HEAD carry no body, so only the status is seen).
    for (path, want) in [
        (paths::BUNDLES, StatusCode::METHOD_NOT_ALLOWED),
        (paths::STATUS, StatusCode::NOT_FOUND),
        (paths::SAML_METADATA, StatusCode::NOT_FOUND),
        (paths::DESTINATIONS, StatusCode::NOT_FOUND),
    ] {
        let (status, content_type, _) = call(&state, Method::HEAD, path, Body::empty()).await;
        assert_eq!(status, want, "HEAD {path}");
        assert_eq!(content_type.as_deref(), Some("application/json"));
    }
}

#[tokio::test]
async fn oversize_bodies_are_refused_with_an_error_body() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state(&dir);
    for path in [paths::ENCLAVE_ATTEST, paths::ENCLAVE_PROBE] {
        let (status, e) = call_err(&state, Method::POST, path, vec![b' '; MAX_BODY + 1]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(e.code, "BadRequest");
        assert_eq!(e.message, "length limit exceeded");
    }
    // A bundle may be a whole frame: more than a JSON body is read, then decoded.
    let (status, e) = call_err(&state, Method::POST, paths::BUNDLES, vec![0; MAX_BODY + 1]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(e.code, "InvalidBundle");
    let too_long = vec![0; nitrosync_shared::MAX_FRAME_LEN + 1];
    let (status, e) = call_err(&state, Method::POST, paths::BUNDLES, too_long).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(e.code, "BadRequest");
    assert_eq!(e.message, "bundle: length limit exceeded");
}

#[tokio::test]
async fn bad_json_bodies_are_bad_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state(&dir);
    let (status, e) = call_err(&state, Method::POST, paths::ENCLAVE_ATTEST, "{").await;
    assert_eq!(
        (status, e.code.as_str()),
        (StatusCode::BAD_REQUEST, "BadRequest")
    );
    assert!(e.message.starts_with("body: "), "{}", e.message);
    let (status, e) = call_err(
        &state,
        Method::POST,
        paths::ENCLAVE_ATTEST,
        r#"{"nonce":"zz"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(e.message.starts_with("nonce: "), "{}", e.message);
    let (status, e) = call_err(
        &state,
        Method::POST,
        paths::ENCLAVE_PROBE,
        r#"{"region":"mars-1"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(e.message, r#""mars-1" is not an AWS region name"#);
}

#[tokio::test]
async fn without_an_enclave_requests_fail_as_unavailable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state(&dir);
    for (method, path, body) in [
        (Method::GET, paths::ENCLAVE_DESCRIBE, ""),
        (Method::GET, paths::SAML_METADATA, ""),
        (Method::POST, paths::ENCLAVE_ATTEST, ""),
        (
            Method::POST,
            paths::ENCLAVE_PROBE,
            r#"{"region":"us-east-1"}"#,
        ),
    ] {
        let (status, e) = call_err(&state, method, path, body).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(e.code, "EnclaveUnavailable");
    }
    // Status still answers, with the reason and the store's counts.
    let (status, _, body) = call(&state, Method::GET, paths::STATUS, Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    let s: nitrosync_api::Status = serde_json::from_slice(&body).expect("a Status");
    assert_eq!(
        s.enclave_error.map(|e| e.code),
        Some(ErrorCode::EnclaveUnavailable)
    );
    assert!(s.destinations.is_some());
    assert_eq!(s.store_error, None);
}

#[tokio::test]
async fn destination_routes_check_the_key_then_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state(&dir);
    let (status, _, body) = call(&state, Method::GET, paths::DESTINATIONS, Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).ok(),
        Some(serde_json::json!([]))
    );

    let cases = [
        (
            Method::GET,
            "/v1/destinations/abc/prod".to_owned(),
            StatusCode::BAD_REQUEST,
            "BadRequest",
        ),
        (
            Method::GET,
            format!("/v1/destinations/{TENANT}/a%20b"),
            StatusCode::BAD_REQUEST,
            "BadRequest",
        ),
        (
            Method::GET,
            format!("/v1/destinations/{TENANT}/prod"),
            StatusCode::NOT_FOUND,
            "UnknownDestination",
        ),
        (
            Method::GET,
            format!("/v1/destinations/{TENANT}/prod/history?limit=5"),
            StatusCode::NOT_FOUND,
            "UnknownDestination",
        ),
        (
            Method::GET,
            "/v1/destinations/abc/prod/history".to_owned(),
            StatusCode::BAD_REQUEST,
            "BadRequest",
        ),
        // Not history: no route, before the key is looked at.
        (
            Method::GET,
            "/v1/destinations/abc/prod/frob".to_owned(),
            StatusCode::NOT_FOUND,
            "NotFound",
        ),
        // An unknown action is named as such, whatever the destination.
        (
            Method::POST,
            format!("/v1/destinations/{TENANT}/prod/frob"),
            StatusCode::NOT_FOUND,
            "NotFound",
        ),
        (
            Method::POST,
            format!("/v1/destinations/{TENANT}/prod/enable"),
            StatusCode::NOT_FOUND,
            "UnknownDestination",
        ),
        // A test or delete needs a bundle the tenant signed for it; without one, nothing runs.
        (
            Method::POST,
            format!("/v1/destinations/{TENANT}/prod/test"),
            StatusCode::BAD_REQUEST,
            "InvalidBundle",
        ),
        (
            Method::POST,
            format!("/v1/destinations/{TENANT}/prod/delete"),
            StatusCode::BAD_REQUEST,
            "InvalidBundle",
        ),
        (
            Method::POST,
            "/v1/destinations/abc/prod/delete".to_owned(),
            StatusCode::BAD_REQUEST,
            "BadRequest",
        ),
        (
            Method::POST,
            format!("/v1/destinations/{TENANT}/prod"),
            StatusCode::NOT_FOUND,
            "NotFound",
        ),
    ];
    for (method, path, want_status, want_code) in cases {
        let (status, e) = call_err(&state, method.clone(), &path, "").await;
        assert_eq!(
            (status, e.code.as_str()),
            (want_status, want_code),
            "{method} {path}: {}",
            e.message
        );
    }
}

/// A state, a socket and a running [`serve`] in `dir`.
async fn start(
    dir: &tempfile::TempDir,
) -> (AdminClient, CancellationToken, tokio::task::JoinHandle<()>) {
    let socket = dir.path().join("admin.sock");
    let listener = Listener::bind(&Endpoint::Unix(socket.clone()))
        .await
        .expect("bind the admin socket");
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(listener, state(dir), shutdown.clone()));
    (AdminClient::new(socket), shutdown, server)
}

#[tokio::test]
async fn serve_answers_on_the_socket_and_stops_on_cancel() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (client, shutdown, server) = start(&dir).await;
    let s: nitrosync_api::Status = client
        .call(Method::GET, paths::STATUS, None)
        .await
        .expect("status");
    assert!(!s.control.connected);
    match client
        .call::<serde_json::Value>(Method::GET, "/v1/nope", None)
        .await
    {
        Err(ClientError::Api {
            status,
            code,
            message,
        }) => {
            assert_eq!((status, code.as_str()), (404, "NotFound"));
            assert_eq!(message, "no route GET /v1/nope");
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    shutdown.cancel();
    server.await.expect("serve stops");
}

#[tokio::test(start_paused = true)]
async fn a_half_sent_request_is_dropped_after_the_header_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (client, shutdown, server) = start(&dir).await;
    let sent = tokio::time::Instant::now();
    let mut conn = tokio::net::UnixStream::connect(client.socket())
        .await
        .expect("connect");
    conn.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write half a head");
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer)
        .await
        .expect("the server closes the connection");
    assert!(sent.elapsed() >= HEADER_READ_TIMEOUT);
    // Whatever hyper says before closing, it is not an answer to the request.
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    shutdown.cancel();
    server.await.expect("serve stops");
}
