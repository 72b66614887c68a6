//! The tenant API's router driven in memory: authentication (missing, bad, stale, future,
//! replayed, tampered) and authorisation (another tenant's destinations, bundles and the
//! operator's routes). No enclave runs.

use super::*;
use crate::admin::tests::state;
use crate::store::tests::{header, sealed};
use bytes::Bytes;
use nitrosync_api::to_hex;
use nitrosync_bundle::TenantKey;
use std::sync::atomic::{AtomicU64, Ordering};
use tower::ServiceExt;

const NOW: u64 = 1_800_000_000_000;

static CLOCK: AtomicU64 = AtomicU64::new(NOW);

fn clock() -> u64 {
    CLOCK.load(Ordering::Relaxed)
}

fn auth() -> Arc<Auth> {
    Arc::new(Auth {
        replay: ReplayCache::default(),
        now_ms: clock,
    })
}

fn signed(
    key: &TenantKey,
    method: Method,
    path: &str,
    body: &[u8],
    timestamp_ms: u64,
) -> http::Request<Body> {
    let tenant = key.public();
    let digest = body_digest(body);
    let sig = key.sign_request(&RequestParts {
        method: method.as_str(),
        path_and_query: path,
        tenant: &tenant,
        timestamp_ms,
        body_sha256: &digest,
    });
    http::Request::builder()
        .method(method)
        .uri(path)
        .header(HEADER_TENANT, to_hex(&tenant))
        .header(HEADER_TIMESTAMP, timestamp_ms.to_string())
        .header(HEADER_SIGNATURE, to_hex(&sig))
        .body(Body::from(body.to_vec()))
        .unwrap()
}

async fn send(router: &Router, req: http::Request<Body>) -> (StatusCode, String, Bytes) {
    let resp = router
        .clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let code = serde_json::from_slice::<nitrosync_api::ErrorBody>(&body)
        .map(|b| b.error.code)
        .unwrap_or_default();
    (status, code, body)
}

/// Stores a bundle of destination `id` for `key`'s tenant straight into the store.
fn store_destination(state: &AdminState, key: &TenantKey, id: &str) {
    let mut h = header(0, id, 1);
    h.tenant_key = key.public();
    state.store.submit(&sealed(&h, 1), &h, NOW).unwrap();
}

#[tokio::test]
async fn unsigned_stale_future_tampered_and_replayed_requests_are_401() {
    let dir = tempfile::tempdir().unwrap();
    let router = router(state(&dir), auth());
    let key = TenantKey::from_seed(&[1; 32]);

    let unsigned = http::Request::builder()
        .uri(paths::DESTINATIONS)
        .body(Body::empty())
        .unwrap();
    let (status, code, _) = send(&router, unsigned).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "Unauthenticated")
    );
    // Not even an unknown route answers without a signature.
    let unsigned = http::Request::builder()
        .uri("/nowhere")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&router, unsigned).await.0, StatusCode::UNAUTHORIZED);

    let good = signed(&key, Method::GET, paths::DESTINATIONS, b"", NOW);
    assert_eq!(send(&router, good).await.0, StatusCode::OK);
    // The same signed request again, inside the window.
    let again = signed(&key, Method::GET, paths::DESTINATIONS, b"", NOW);
    let (status, _, body) = send(&router, again).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(String::from_utf8_lossy(&body).contains("already used"));

    for ts in [NOW - 10 * 60_000, NOW + 2 * 60_000] {
        let req = signed(&key, Method::GET, paths::DESTINATIONS, b"", ts);
        assert_eq!(send(&router, req).await.0, StatusCode::UNAUTHORIZED, "{ts}");
    }

    // A body other than the one signed.
    let mut req = signed(&key, Method::POST, paths::ENCLAVE_ATTEST, b"{}", NOW + 1);
    *req.body_mut() = Body::from("{ }");
    assert_eq!(send(&router, req).await.0, StatusCode::UNAUTHORIZED);
    // A path other than the one signed.
    let mut req = signed(&key, Method::GET, paths::DESTINATIONS, b"", NOW + 2);
    *req.uri_mut() = "/v1/destinations?all=1".parse().unwrap();
    assert_eq!(send(&router, req).await.0, StatusCode::UNAUTHORIZED);
    // Another tenant's key in the header, this tenant's signature.
    let mut req = signed(&key, Method::GET, paths::DESTINATIONS, b"", NOW + 3);
    let other = TenantKey::from_seed(&[2; 32]).public();
    req.headers_mut()
        .insert(HEADER_TENANT, to_hex(&other).parse().unwrap());
    assert_eq!(send(&router, req).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_tenant_sees_and_touches_only_its_own_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(&dir);
    let router = router(st.clone(), auth());
    let alice = TenantKey::from_seed(&[1; 32]);
    let bob = TenantKey::from_seed(&[2; 32]);
    store_destination(&st, &alice, "a1");
    store_destination(&st, &bob, "b1");

    let (status, _, body) = send(
        &router,
        signed(&alice, Method::GET, paths::DESTINATIONS, b"", NOW),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let list: Vec<crate::store::DestinationRecord> = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        list.iter().map(|d| d.key.id.as_str()).collect::<Vec<_>>(),
        ["a1"]
    );

    let alices = paths::destination(&alice.public(), "a1");
    let ok = signed(&alice, Method::GET, &alices, b"", NOW);
    assert_eq!(send(&router, ok).await.0, StatusCode::OK);
    let history = format!("{alices}/history?limit=5");
    let ok = signed(&alice, Method::GET, &history, b"", NOW);
    assert_eq!(send(&router, ok).await.0, StatusCode::OK);

    // Bob, authenticated, on Alice's destination.
    for (method, path) in [
        (Method::GET, alices.clone()),
        (Method::GET, history.clone()),
        (Method::POST, format!("{alices}/delete")),
        (Method::POST, format!("{alices}/test")),
        (Method::POST, format!("{alices}/disable")),
    ] {
        let req = signed(&bob, method.clone(), &path, b"", NOW);
        let (status, code, _) = send(&router, req).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::FORBIDDEN, "Forbidden"),
            "{method} {path}"
        );
    }

    // A bundle whose header names Alice, submitted by Bob.
    let mut h = header(0, "a1", 2);
    h.tenant_key = alice.public();
    let req = signed(&bob, Method::POST, paths::BUNDLES, &sealed(&h, 2), NOW + 1);
    assert_eq!(send(&router, req).await.0, StatusCode::FORBIDDEN);
    // Alice's own (fake-signed) bundle passes authorisation and is judged by the handler.
    let req = signed(
        &alice,
        Method::POST,
        paths::BUNDLES,
        &sealed(&h, 2),
        NOW + 1,
    );
    let (status, code, _) = send(&router, req).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "InvalidBundle")
    );

    // The operator's routes are not here.
    for (method, path) in [
        (Method::GET, paths::STATUS.to_owned()),
        (Method::POST, paths::ENCLAVE_PROBE.to_owned()),
        (Method::POST, format!("{alices}/disable")),
        (Method::POST, format!("{alices}/enable")),
        (Method::POST, format!("{alices}/retry")),
    ] {
        let req = signed(&alice, method.clone(), &path, b"", NOW + 2);
        let (status, code, _) = send(&router, req).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::NOT_FOUND, "NotFound"),
            "{method} {path}"
        );
    }
    // Alice's destination is still enabled.
    let rec = st
        .store
        .get(&crate::store::DestinationKey::new(alice.public(), "a1"))
        .unwrap()
        .unwrap();
    assert!(rec.enabled);
}

#[test]
fn the_replay_cache_forgets_only_what_the_window_refuses_anyway() {
    let cache = ReplayCache::default();
    assert_eq!(cache.first_use([1; 32], NOW, NOW), Ok(()));
    assert_eq!(
        cache.first_use([1; 32], NOW, NOW),
        Err(ReplayRefusal::Replayed)
    );
    assert_eq!(cache.first_use([2; 32], NOW, NOW), Ok(()));
}
