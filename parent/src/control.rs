//! The parent's control connection to the enclave.
//!
//! The parent dials the enclave's control endpoint, sends [`Request`]s with ids it chooses, and
//! matches [`Response`]s by id. Unsolicited events (the enclave's log lines) are re-emitted as
//! `tracing` events under the target `enclave`. If the connection drops, requests in flight fail
//! with `EnclaveUnavailable` and a supervisor reconnects with capped exponential backoff.

use nitrosync_api::ControlState;
use nitrosync_shared::ErrorCode;
use nitrosync_shared::control::{
    ControlError, EnclaveMessage, Event, LogLevel, Request, RequestBody, RequestId, Response,
    ResponseBody,
};
use nitrosync_transport::{FrameReader, write_frame};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

type Pending = Arc<Mutex<HashMap<RequestId, oneshot::Sender<ResponseBody>>>>;

struct Shared {
    connects: tokio::sync::watch::Sender<u64>,
    state: Mutex<ControlState>,
    outbox: Mutex<Option<mpsc::Sender<Request>>>,
    pending: Pending,
    next_id: AtomicU64,
}

impl Shared {
    fn new(endpoint: String) -> Arc<Shared> {
        Arc::new(Shared {
            connects: tokio::sync::watch::Sender::new(0),
            state: Mutex::new(ControlState {
                endpoint,
                connected: false,
                connects: 0,
                last_error: None,
            }),
            outbox: Mutex::new(None),
            pending: Arc::default(),
            next_id: AtomicU64::new(1),
        })
    }
}

/// A handle for making control requests; cheap to clone.
#[derive(Clone)]
pub struct EnclaveClient {
    shared: Arc<Shared>,
    timeout: Duration,
    /// A sync's own timeout: the enclave may spend minutes on STS, Secrets Manager and their
    /// retries, and a sync given up on here would still be running there.
    sync_timeout: Duration,
}

impl std::fmt::Debug for EnclaveClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnclaveClient")
            .field("state", &self.state())
            .finish()
    }
}

fn unavailable(message: impl Into<String>) -> ControlError {
    ControlError {
        code: ErrorCode::EnclaveUnavailable,
        message: message.into(),
    }
}

impl EnclaveClient {
    /// Starts the supervisor that keeps a connection to `endpoint` until `shutdown`.
    pub fn start(
        endpoint: nitrosync_shared::Endpoint,
        request_timeout: Duration,
        sync_timeout: Duration,
        max_backoff: Duration,
        shutdown: CancellationToken,
    ) -> (EnclaveClient, tokio::task::JoinHandle<()>) {
        let shared = Shared::new(endpoint.to_string());
        let supervisor = tokio::spawn(supervise(
            endpoint,
            shared.clone(),
            max_backoff,
            shutdown.clone(),
        ));
        let client = EnclaveClient {
            shared,
            timeout: request_timeout,
            sync_timeout,
        };
        let keepalive = tokio::spawn(keep_alive(client.clone(), shutdown));
        let task = tokio::spawn(async move {
            let _ = supervisor.await;
            let _ = keepalive.await;
        });
        (client, task)
    }

    /// Runs the client over one stream that is already open (`label` names it in the state):
    /// no dialling and no reconnect. Requests can be sent as soon as this returns; when the
    /// stream ends, requests in flight and later ones fail with `EnclaveUnavailable`. The task
    /// ends with the connection and returns why. Protocol tests pass an in-memory pipe here.
    pub fn over_stream<S>(
        stream: S,
        label: &str,
        request_timeout: Duration,
        sync_timeout: Duration,
        shutdown: CancellationToken,
    ) -> (EnclaveClient, tokio::task::JoinHandle<String>)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let shared = Shared::new(label.to_owned());
        let rx = connection_up(&shared);
        let task = tokio::spawn({
            let shared = shared.clone();
            async move {
                let reason = run_connection(stream, rx, &shared, &shutdown).await;
                connection_down(&shared, &reason);
                reason
            }
        });
        (
            EnclaveClient {
                shared,
                timeout: request_timeout,
                sync_timeout,
            },
            task,
        )
    }

    /// Ticks each time a control connection comes up (the value is the number of connects).
    pub fn subscribe_connects(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.connects.subscribe()
    }

    /// The connection state now.
    pub fn state(&self) -> ControlState {
        lock(&self.shared.state).clone()
    }

    /// Sends one request and waits for its response, at most the request timeout (the sync
    /// timeout for a sync).
    pub async fn request(&self, body: RequestBody) -> Result<ResponseBody, ControlError> {
        let timeout = if matches!(body, RequestBody::Sync { .. }) {
            self.sync_timeout
        } else {
            self.timeout
        };
        let outbox = lock(&self.shared.outbox)
            .clone()
            .ok_or_else(|| unavailable("the enclave is not connected"))?;
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.pending).insert(id, tx);
        let forget = || {
            lock(&self.shared.pending).remove(&id);
        };
        if outbox.send(Request { id, body }).await.is_err() {
            forget();
            return Err(unavailable("the control connection closed"));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(ResponseBody::Error(e))) => Err(e),
            Ok(Ok(body)) => Ok(body),
            Ok(Err(_)) => Err(unavailable(
                "the control connection closed during the request",
            )),
            Err(_) => {
                forget();
                Err(unavailable(format!(
                    "the enclave did not answer within {} ms",
                    timeout.as_millis()
                )))
            }
        }
    }
}

/// How often an otherwise quiet control connection carries a `Health` request. The enclave
/// closes a connection with no complete frame for ten minutes (a bound on peers that vanished);
/// this keeps a live parent well inside it.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);

/// Sends `Health` every [`KEEPALIVE_INTERVAL`] while connected, until `shutdown`.
async fn keep_alive(client: EnclaveClient, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(KEEPALIVE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if client.state().connected {
            // The answer does not matter: a failure shows in the connection's state.
            let _ = client.request(RequestBody::Health).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn supervise(
    endpoint: nitrosync_shared::Endpoint,
    shared: Arc<Shared>,
    max_backoff: Duration,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = nitrosync_transport::connect(&endpoint) => r,
        };
        match attempt {
            Ok(stream) => {
                backoff = Duration::from_millis(50);
                let rx = connection_up(&shared);
                info!(%endpoint, "control connection up");
                let reason = run_connection(stream, rx, &shared, &shutdown).await;
                connection_down(&shared, &reason);
                if shutdown.is_cancelled() {
                    return;
                }
                warn!(%endpoint, %reason, "control connection lost; reconnecting");
            }
            Err(e) => {
                let msg = e.to_string();
                let changed = lock(&shared.state).last_error.as_deref() != Some(&msg);
                if changed {
                    debug!(%endpoint, error = %msg, "enclave not reachable yet");
                }
                lock(&shared.state).last_error = Some(msg);
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(max_backoff);
    }
}

/// Marks a connection up and opens the outbox it will drain.
fn connection_up(shared: &Shared) -> mpsc::Receiver<Request> {
    {
        let mut st = lock(&shared.state);
        st.connected = true;
        st.connects += 1;
        st.last_error = None;
    }
    let (tx, rx) = mpsc::channel::<Request>(256);
    *lock(&shared.outbox) = Some(tx);
    let connect_count = lock(&shared.state).connects;
    // Requests can be sent from here on: tell whoever waits for a (re)connect.
    shared.connects.send_replace(connect_count);
    rx
}

/// Marks the connection down for `reason`, closing the outbox.
fn connection_down(shared: &Shared, reason: &str) {
    lock(&shared.outbox).take();
    // Fail everything in flight: those answers will never come.
    lock(&shared.pending).clear();
    let mut st = lock(&shared.state);
    st.connected = false;
    st.last_error = Some(reason.to_owned());
}

async fn run_connection<S>(
    stream: S,
    mut rx: mpsc::Receiver<Request>,
    shared: &Shared,
    shutdown: &CancellationToken,
) -> String
where
    S: AsyncRead + AsyncWrite,
{
    let (read, mut write) = tokio::io::split(stream);
    let writer = async {
        while let Some(req) = rx.recv().await {
            if let Err(e) = write_frame(&mut write, &req).await {
                return format!("write failed: {e}");
            }
        }
        "outbox closed".to_owned()
    };
    let reader = async {
        let mut frames = FrameReader::new(read);
        loop {
            match frames.next::<EnclaveMessage>().await {
                Ok(Some(EnclaveMessage::Response(Response { id, body }))) => {
                    match lock(&shared.pending).remove(&id) {
                        Some(waiter) => {
                            let _ = waiter.send(body);
                        }
                        None => debug!(id, "response for a request no longer waited for"),
                    }
                }
                Ok(Some(EnclaveMessage::Event(event))) => relay_event(event),
                Ok(None) => return "the enclave closed the connection".to_owned(),
                Err(e) => return format!("{e}"),
            }
        }
    };
    tokio::select! {
        r = writer => r,
        r = reader => r,
        _ = shutdown.cancelled() => "shutting down".to_owned(),
    }
}

fn relay_event(event: Event) {
    match event {
        Event::Log {
            level,
            target,
            message,
            fields,
        } => {
            let fields = fields
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            match level {
                LogLevel::Error => {
                    tracing::error!(target: "enclave", module = %target, %fields, "{message}")
                }
                LogLevel::Warn => {
                    tracing::warn!(target: "enclave", module = %target, %fields, "{message}")
                }
                LogLevel::Info => {
                    tracing::info!(target: "enclave", module = %target, %fields, "{message}")
                }
                LogLevel::Debug => {
                    tracing::debug!(target: "enclave", module = %target, %fields, "{message}")
                }
            }
        }
        other => debug!(?other, "unhandled enclave event"),
    }
}
