//! Protocol tests: the parent's control client and the enclave's control server, in one process,
//! passing bytes through an in-memory pipe. No processes, no sockets, no AWS.
//!
//! They cover what the enclave answers on its own (health, description, attestation, refusals),
//! that every response carries its request's id, and that the parent fails a request cleanly
//! when the enclave side goes away in the middle of it.

use nitrosync_attestation::{Policy, TrustRoot};
use nitrosync_enclave::config::EnclaveConfig;
use nitrosync_enclave::control::{EnclaveState, MAX_NONCE_LEN, serve_connection};
use nitrosync_parent::control::EnclaveClient;
use nitrosync_shared::ErrorCode;
use nitrosync_shared::control::{
    EnclaveMessage, Event, Request, RequestBody, ResponseBody, RuntimeMode,
};
use nitrosync_transport::{FrameReader, write_frame};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Generous: nothing here waits on anything slower than a local computation.
const TIMEOUT: Duration = Duration::from_secs(30);
const PIPE_BYTES: usize = 64 * 1024;

/// A simulator-mode enclave state in `dir`: a throwaway TLS CA (never used: no request here goes
/// to AWS) and a simulated NSM whose root is created there.
fn enclave_state(dir: &Path) -> Arc<EnclaveState> {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["aws-sim.invalid".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, cert.pem()).unwrap();
    let cfg = EnclaveConfig::new(
        &format!("unix:{}", dir.join("control.sock").display()),
        &format!("unix:{}", dir.join("relay.sock").display()),
        true,
        Some(ca),
        Some(dir.join("nsm")),
    )
    .unwrap();
    let mut cfg = cfg;
    cfg.identity = nitrosync_enclave::config::IdentityMode::Ephemeral;
    Arc::new(EnclaveState::new(&cfg).unwrap())
}

/// The enclave's control server on one end of a pipe; it ends when the parent's end closes.
struct Enclave {
    /// Kept so the server's log stream stays open.
    _logs: broadcast::Sender<Event>,
    task: JoinHandle<String>,
}

impl Enclave {
    fn serve(state: Arc<EnclaveState>, end: DuplexStream) -> Enclave {
        let (logs, rx) = broadcast::channel(16);
        let task = tokio::spawn(serve_connection(end, state, rx, CancellationToken::new()));
        Enclave { _logs: logs, task }
    }
}

fn client(end: DuplexStream) -> (EnclaveClient, JoinHandle<String>, CancellationToken) {
    let shutdown = CancellationToken::new();
    let (client, task) =
        EnclaveClient::over_stream(end, "in-memory", TIMEOUT, TIMEOUT, shutdown.clone());
    (client, task, shutdown)
}

#[tokio::test]
async fn health_describe_and_attest_round_trip_between_parent_and_enclave() {
    let dir = tempfile::tempdir().unwrap();
    let (parent_end, enclave_end) = tokio::io::duplex(PIPE_BYTES);
    let enclave = Enclave::serve(enclave_state(dir.path()), enclave_end);
    let (client, client_task, client_shutdown) = client(parent_end);

    let ResponseBody::Health(h) = client.request(RequestBody::Health).await.unwrap() else {
        panic!("Health answered with something else");
    };
    assert_eq!(h.requests_served, 0);
    assert_eq!(h.tunnels_opened, 0);

    let ResponseBody::Describe(d) = client.request(RequestBody::Describe).await.unwrap() else {
        panic!("Describe answered with something else");
    };
    assert_eq!(d.protocol_version, nitrosync_shared::PROTOCOL_VERSION);
    assert_eq!(d.mode, RuntimeMode::Simulator);
    let root_pem = d.simulator_root_pem.clone().expect("a simulator's root");

    let nonce = b"protocol-test-nonce".to_vec();
    let answer = client
        .request(RequestBody::Attest {
            nonce: nonce.clone(),
        })
        .await
        .unwrap();
    let ResponseBody::Attestation { document } = answer else {
        panic!("Attest answered with {answer:?}");
    };
    // Verified at the document's own time: the test does not read the clock.
    let at = nitrosync_attestation::inspect(&document)
        .unwrap()
        .timestamp();
    let root = TrustRoot::from_pem(root_pem.as_bytes()).unwrap();
    let verified = nitrosync_attestation::verify(
        &document,
        &root,
        &Policy::new().with_nonce(nonce.clone()),
        at,
    )
    .unwrap();
    assert_eq!(verified.nonce, Some(nonce));
    assert_eq!(verified.public_key, Some(d.bundle_key.to_vec()));

    // Refusals come back as errors, and the connection stays up.
    let e = client
        .request(RequestBody::Attest {
            nonce: vec![0; MAX_NONCE_LEN + 1],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidConfig, "{e:?}");
    let e = client
        .request(RequestBody::ProbeAws {
            region: "Moon Base".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidConfig, "{e:?}");

    let ResponseBody::Health(h) = client.request(RequestBody::Health).await.unwrap() else {
        panic!("Health answered with something else");
    };
    assert_eq!(h.requests_served, 5, "each request above answered once");
    assert!(client.state().connected);

    client_shutdown.cancel();
    assert_eq!(client_task.await.unwrap(), "shutting down");
    // The parent's end of the pipe is gone with its connection task.
    assert_eq!(
        enclave.task.await.unwrap(),
        "the parent closed the connection"
    );
}

#[tokio::test]
async fn each_response_carries_its_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let (parent_end, enclave_end) = tokio::io::duplex(PIPE_BYTES);
    let enclave = Enclave::serve(enclave_state(dir.path()), enclave_end);
    let (read, mut write) = tokio::io::split(parent_end);
    let mut frames = FrameReader::new(read);

    // Ids are the parent's choice: not in order, not starting at 1. The enclave answers in
    // completion order, so responses are matched by id only.
    let sent: BTreeMap<u64, &str> = [(907, "Health"), (12, "Describe"), (4242, "Attest")].into();
    for (id, body) in [
        (907, RequestBody::Health),
        (12, RequestBody::Describe),
        (4242, RequestBody::Attest { nonce: vec![7; 32] }),
    ] {
        write_frame(&mut write, &Request { id, body })
            .await
            .unwrap();
    }
    let mut got = BTreeMap::new();
    while got.len() < sent.len() {
        match frames.next::<EnclaveMessage>().await.unwrap() {
            Some(EnclaveMessage::Response(r)) => {
                let kind = match r.body {
                    ResponseBody::Health(_) => "Health",
                    ResponseBody::Describe(_) => "Describe",
                    ResponseBody::Attestation { .. } => "Attest",
                    other => panic!("response {} is {other:?}", r.id),
                };
                assert!(
                    got.insert(r.id, kind).is_none(),
                    "two responses for {}",
                    r.id
                );
            }
            Some(EnclaveMessage::Event(_)) => {}
            None => panic!("the enclave closed the connection"),
        }
    }
    assert_eq!(got, sent);

    // A clean close from the parent ends the connection, and the enclave says so.
    drop(write);
    drop(frames);
    assert_eq!(
        enclave.task.await.unwrap(),
        "the parent closed the connection"
    );
}

#[tokio::test]
async fn the_parent_fails_a_request_cleanly_when_the_enclave_closes_mid_request() {
    let (parent_end, enclave_end) = tokio::io::duplex(PIPE_BYTES);
    // An enclave that reads one request, then goes away without answering.
    let enclave = tokio::spawn(async move {
        let mut frames = FrameReader::new(enclave_end);
        let req: Request = frames.next().await.unwrap().expect("a request");
        drop(frames);
        req
    });
    let (client, client_task, _shutdown) = client(parent_end);

    let e = client.request(RequestBody::Health).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::EnclaveUnavailable, "{e:?}");
    assert!(e.message.contains("closed during the request"), "{e:?}");
    // It failed after the enclave had the request, not before.
    assert!(matches!(enclave.await.unwrap().body, RequestBody::Health));

    let why = client_task.await.unwrap();
    assert_eq!(why, "the enclave closed the connection");
    let state = client.state();
    assert!(!state.connected);
    assert_eq!(state.last_error.as_deref(), Some(why.as_str()));
    // Later requests fail at once, with the same code.
    let e = client.request(RequestBody::Describe).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::EnclaveUnavailable, "{e:?}");
}
