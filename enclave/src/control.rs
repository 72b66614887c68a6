//! The enclave's control server: the parent connects, sends requests, and reads responses and
//! log events.
//!
//! Each request is handled in its own task, so a slow AWS call does not hold up a health check;
//! responses go back in completion order, matched by id. Every frame from the parent is hostile
//! until decoded: a malformed frame ends that connection, never the enclave.

use crate::EnclaveError;
use crate::config::{EnclaveConfig, Mode};
use crate::https::{AwsHttpClient, RelayConnector, tls_config};
use crate::sync::SyncEngine;
use nitrosync_attestation::{Nsm, SimulatedNsm};
use nitrosync_bundle::EnclaveBundleKey;
use nitrosync_saml::SamlSigner;
use nitrosync_shared::ErrorCode;
use nitrosync_shared::binding::{ATTESTED_KEYS_FORMAT, AttestedKeys};
use nitrosync_shared::control::{
    ControlError, Description, EnclaveMessage, Event, HealthReport, Request, RequestBody, Response,
    ResponseBody, RuntimeMode,
};
use nitrosync_transport::{FrameReader, Listener, write_frame};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};
use zeroize::Zeroizing;

/// What request handlers share.
pub struct EnclaveState {
    started: Instant,
    requests_served: AtomicU64,
    description: Description,
    http: AwsHttpClient,
    engine: SyncEngine,
    nsm: Arc<dyn Nsm>,
    attested_keys: Vec<u8>,
}

impl std::fmt::Debug for EnclaveState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnclaveState")
            .field("mode", &self.description.mode)
            .finish_non_exhaustive()
    }
}

/// Largest nonce accepted in an `Attest` request (the NSM's limit).
pub const MAX_NONCE_LEN: usize = 512;

fn open_nsm(cfg: &EnclaveConfig) -> Result<Arc<dyn Nsm>, EnclaveError> {
    match &cfg.mode {
        Mode::Simulator { nsm_dir, .. } => {
            // PCR0 is the SHA-384 of this very binary: a rebuilt enclave has a new measurement.
            let exe = std::env::current_exe()
                .and_then(std::fs::read)
                .map_err(|e| {
                    EnclaveError::Config(format!(
                        "cannot read the enclave binary to measure it: {e}"
                    ))
                })?;
            let nsm = SimulatedNsm::open_or_create(nsm_dir, &exe).map_err(|e| {
                EnclaveError::Config(format!("simulated NSM in {}: {e}", nsm_dir.display()))
            })?;
            Ok(Arc::new(nsm))
        }
        #[cfg(feature = "nsm")]
        Mode::Production => Ok(Arc::new(
            nitrosync_attestation::HardwareNsm::open()
                .map_err(|e| EnclaveError::Config(format!("/dev/nsm: {e}")))?,
        )),
        #[cfg(not(feature = "nsm"))]
        Mode::Production => Err(EnclaveError::Config(
            "this build has no hardware NSM support (build with --features nsm)".into(),
        )),
    }
}

impl EnclaveState {
    /// Builds the state from the configuration: TLS trust, the relay client, fresh keys, the NSM.
    pub fn new(cfg: &EnclaveConfig) -> Result<Self, EnclaveError> {
        let (tls, trust) = tls_config(&cfg.mode)?;
        let http = AwsHttpClient::new(
            RelayConnector::new(cfg.relay.clone(), cfg.tunnel_timeout),
            tls,
            crate::clock::TrustedClock::with_host_skew(cfg.sim_clock_skew_ms),
        );
        let nsm = open_nsm(cfg)?;
        let signer = SamlSigner::generate(&cfg.saml_entity_id, SystemTime::now()).map_err(|e| {
            EnclaveError::Config(format!("cannot create the SAML signing key: {e}"))
        })?;
        let bundle_key =
            EnclaveBundleKey::generate(&mut getrandom::rand_core::UnwrapErr(getrandom::SysRng));
        let mut mac_key = Zeroizing::new([0u8; 32]);
        getrandom::fill(mac_key.as_mut())
            .map_err(|e| EnclaveError::Config(format!("no entropy: {e}")))?;
        let retry = aws_smithy_types::retry::RetryConfig::standard()
            .with_max_attempts(cfg.aws_max_attempts)
            .with_initial_backoff(cfg.aws_initial_backoff)
            .with_max_backoff(Duration::from_secs(5));
        let saml_cert_sha256 = signer.cert_sha256();
        let attested_keys = AttestedKeys {
            format: ATTESTED_KEYS_FORMAT,
            saml_cert_sha256,
        }
        .to_user_data();
        let description = Description {
            protocol_version: nitrosync_shared::PROTOCOL_VERSION,
            enclave_version: env!("CARGO_PKG_VERSION").to_owned(),
            mode: match cfg.mode {
                Mode::Production => RuntimeMode::Production,
                Mode::Simulator { .. } => RuntimeMode::Simulator,
            },
            tls_trust: trust,
            bundle_key: bundle_key.public(),
            saml_entity_id: signer.entity_id().to_owned(),
            saml_metadata: signer.metadata_xml(),
            saml_cert_sha256: hex::encode(saml_cert_sha256),
            simulator_root_pem: match &cfg.mode {
                Mode::Simulator { nsm_dir, .. } => Some(
                    std::fs::read_to_string(
                        nsm_dir.join(nitrosync_attestation::SIM_ROOT_CERT_FILE),
                    )
                    .map_err(|e| EnclaveError::Config(format!("simulated NSM root: {e}")))?,
                ),
                Mode::Production => None,
            },
        };
        let engine = SyncEngine::new(
            http.clone(),
            signer,
            bundle_key,
            mac_key,
            retry,
            cfg.writes_per_second,
        );
        Ok(Self {
            started: Instant::now(),
            requests_served: AtomicU64::new(0),
            description,
            http,
            engine,
            nsm,
            attested_keys,
        })
    }

    /// The HTTPS client over the relay.
    pub fn http(&self) -> &AwsHttpClient {
        &self.http
    }

    /// The sync engine.
    pub fn engine(&self) -> &SyncEngine {
        &self.engine
    }

    async fn attest(&self, nonce: Vec<u8>) -> ResponseBody {
        if nonce.len() > MAX_NONCE_LEN {
            return ResponseBody::Error(ControlError {
                code: ErrorCode::InvalidConfig,
                message: format!("nonce of {} bytes; at most {MAX_NONCE_LEN}", nonce.len()),
            });
        }
        let nsm = self.nsm.clone();
        let user_data = self.attested_keys.clone();
        let public_key = self.description.bundle_key;
        // The hardware NSM is an ioctl: keep it off the async workers.
        let doc = tokio::task::spawn_blocking(move || {
            nsm.attest(Some(&user_data), Some(&nonce), Some(&public_key))
        })
        .await;
        match doc {
            Ok(Ok(document)) => ResponseBody::Attestation { document },
            Ok(Err(e)) => ResponseBody::Error(ControlError {
                code: ErrorCode::EnclaveUnavailable,
                message: format!("the NSM did not attest: {e}"),
            }),
            Err(e) => ResponseBody::Error(ControlError {
                code: ErrorCode::EnclaveUnavailable,
                message: format!("the NSM task failed: {e}"),
            }),
        }
    }

    /// Answers one request.
    pub async fn handle(&self, body: RequestBody) -> ResponseBody {
        let answer = match body {
            RequestBody::Health => ResponseBody::Health(HealthReport {
                uptime_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
                requests_served: self.requests_served.load(Ordering::Relaxed),
                tunnels_opened: self.http.tunnels_opened(),
            }),
            RequestBody::Describe => ResponseBody::Describe(self.description.clone()),
            RequestBody::Attest { nonce } => self.attest(nonce).await,
            RequestBody::Sync { bundle } => ResponseBody::Sync(self.engine.sync(&bundle).await),
            RequestBody::ProbeAws { region } => {
                if !is_plausible_region(&region) {
                    ResponseBody::Error(ControlError {
                        code: ErrorCode::InvalidConfig,
                        message: format!("{region:?} is not an AWS region name"),
                    })
                } else {
                    let report = crate::probe::probe_sts(&self.http, &region).await;
                    info!(host = %report.host, reached = report.reached, elapsed_ms = report.elapsed_ms, "STS probe done");
                    ResponseBody::ProbeAws(report)
                }
            }
            other => ResponseBody::Error(ControlError {
                code: ErrorCode::InvalidConfig,
                message: format!("request not supported by this enclave build: {other:?}"),
            }),
        };
        self.requests_served.fetch_add(1, Ordering::Relaxed);
        answer
    }
}

/// Region names go into a host name, so only `[a-z0-9-]` of a sane length passes.
fn is_plausible_region(r: &str) -> bool {
    (4..=32).contains(&r.len())
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !r.starts_with('-')
        && !r.ends_with('-')
}

/// A running control server.
#[derive(Debug)]
pub struct Handle {
    task: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// Waits until the server has stopped (after the shutdown token is cancelled).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Binds the control endpoint and serves it in the background.
pub async fn start(
    cfg: &EnclaveConfig,
    logs: broadcast::Sender<Event>,
    shutdown: CancellationToken,
) -> Result<Handle, EnclaveError> {
    let state = Arc::new(EnclaveState::new(cfg)?);
    let listener = Listener::bind(&cfg.control).await?;
    info!(control = %cfg.control, relay = %cfg.relay, mode = ?state.description.mode, "enclave listening");
    let task = tokio::spawn(serve(
        listener,
        state,
        logs,
        cfg.max_parent_connections,
        shutdown,
    ));
    Ok(Handle { task })
}

/// Accepts parent connections until `shutdown`.
pub async fn serve(
    listener: Listener,
    state: Arc<EnclaveState>,
    logs: broadcast::Sender<Event>,
    max_connections: usize,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    let tasks = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            s = listener.accept() => s,
        };
        match stream {
            Ok(stream) => {
                let (state, rx, shutdown) = (state.clone(), logs.subscribe(), shutdown.clone());
                tasks.spawn(async move {
                    info!("parent connected");
                    let why = serve_connection(stream, state, rx, shutdown).await;
                    info!(reason = %why, "parent disconnected");
                    drop(permit);
                });
            }
            Err(e) => {
                warn!(error = %e, "control accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    tasks.close();
    tasks.wait().await;
}

/// Serves one parent connection over any byte stream (what [`serve`] runs for each accepted
/// one; a protocol test passes an in-memory pipe) until the parent closes it, a frame is bad, the
/// log channel closes or `shutdown`. Returns why it ended.
pub async fn serve_connection<S>(
    stream: S,
    state: Arc<EnclaveState>,
    mut logs: broadcast::Receiver<Event>,
    shutdown: CancellationToken,
) -> String
where
    S: AsyncRead + AsyncWrite,
{
    let (read, mut write) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<EnclaveMessage>(256);
    let handlers = TaskTracker::new();
    let reader = async {
        let mut frames = FrameReader::new(read);
        loop {
            match frames.next::<Request>().await {
                Ok(Some(Request { id, body })) => {
                    debug!(id, "control request");
                    let (state, tx) = (state.clone(), tx.clone());
                    handlers.spawn(async move {
                        let body = state.handle(body).await;
                        let _ = tx
                            .send(EnclaveMessage::Response(Response { id, body }))
                            .await;
                    });
                }
                Ok(None) => return "the parent closed the connection".to_owned(),
                Err(e) => {
                    warn!(error = %e, "bad frame from the parent; closing the connection");
                    return format!("bad frame: {e}");
                }
            }
        }
    };
    let writer = async {
        loop {
            let msg = tokio::select! {
                m = rx.recv() => match m { Some(m) => m, None => return "no more responses".to_owned() },
                e = logs.recv() => match e {
                    Ok(ev) => EnclaveMessage::Event(ev),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return "log channel closed".to_owned(),
                },
            };
            if let Err(e) = write_frame(&mut write, &msg).await {
                return format!("write failed: {e}");
            }
        }
    };
    let why = tokio::select! {
        r = reader => r,
        r = writer => r,
        _ = shutdown.cancelled() => "shutting down".to_owned(),
    };
    handlers.close();
    why
}
