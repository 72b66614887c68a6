//! The enclave's control server: the parent connects, sends requests, and reads responses and
//! log events.
//!
//! Each request is handled in its own task, so a slow AWS call does not hold up a health check;
//! responses go back in completion order, matched by id. Every frame from the parent is hostile
//! until decoded: a malformed frame ends that connection, never the enclave.
//!
//! Everything a parent can make the enclave hold is bounded ([`ControlLimits`]): connections
//! (a semaphore in [`serve`]), requests in flight per connection and in all, and time. A
//! connection whose requests fill its share is not read from until one finishes (backpressure
//! into the parent's socket, never a task per frame without bound). A connection that has not
//! delivered a complete frame within [`PREFACE_TIMEOUT`] of connecting, or none for
//! [`IDLE_TIMEOUT`] with nothing in flight, is closed, so half-sent frames cannot hold the
//! connection slots.

use crate::EnclaveError;
use crate::config::IdentityMode;
use crate::config::{EnclaveConfig, Mode};
use crate::https::{AwsHttpClient, RelayConnector, tls_config};
use crate::identity::{IdentitySecrets, NextKeys, PreviousBundleKey};
use crate::sync::EngineKeys;
use crate::sync::SyncEngine;
use crate::sync::mac::MacMasterKey;
use nitrosync_attestation::{Nsm, SimulatedNsm};
use nitrosync_bundle::EnclaveBundleKey;
use nitrosync_saml::SamlSigner;
use nitrosync_shared::ErrorCode;
use nitrosync_shared::binding::{ATTESTED_KEYS_FORMAT, AttestedKeys, IdentitySource};
use nitrosync_shared::control::{
    ControlError, Description, EnclaveMessage, Event, HealthReport, MAX_BUNDLE_KEY_GRACE_S,
    Request, RequestBody, Response, ResponseBody, RotateRequest, RotationStatus, RotationStep,
    RuntimeMode, SealedIdentity, UnsealReport, UnsealRequest,
};
use nitrosync_transport::{FrameReader, Listener, write_frame};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};
use zeroize::Zeroizing;

/// Requests in flight at once over all parent connections. Each holds its request (a bundle
/// of a few KiB, at most one 1 MiB frame) and a task; 256 is four times what the parent's
/// scheduler sends by default (`max_in_flight = 64`) and bounds the memory of a hostile one.
pub const MAX_REQUESTS_IN_FLIGHT: usize = 256;

/// Requests in flight at once on one connection: half of [`MAX_REQUESTS_IN_FLIGHT`], so one
/// connection cannot take every slot from another (the admin's health check, a restarted
/// parent's new connection), and twice the parent's default scheduler concurrency.
pub const MAX_REQUESTS_PER_CONNECTION: usize = 128;

/// Time a new connection has to deliver its first complete frame. The parent sends `Describe`
/// as soon as it connects; ten seconds is far beyond a local socket's latency, and four
/// connections that never finish a frame free their slots within it.
pub const PREFACE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection with no complete frame for this long, and no request in flight, is closed.
/// It frees the slot of a parent that vanished without closing (a vsock peer can), or one stuck
/// in the middle of a frame. Long enough that a quiet parent reconnects rarely (the parent
/// reconnects at once and loses nothing: nothing is in flight).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// What one parent, or all of them, can make the control server hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlLimits {
    /// Requests in flight at once over all connections ([`MAX_REQUESTS_IN_FLIGHT`]).
    pub max_in_flight: usize,
    /// Requests in flight at once on one connection ([`MAX_REQUESTS_PER_CONNECTION`]).
    pub max_in_flight_per_connection: usize,
    /// Time from connecting to the first complete frame ([`PREFACE_TIMEOUT`]).
    pub preface_timeout: Duration,
    /// Time without a complete frame, with nothing in flight, after which a connection is
    /// closed ([`IDLE_TIMEOUT`]).
    pub idle_timeout: Duration,
}

impl Default for ControlLimits {
    fn default() -> Self {
        Self {
            max_in_flight: MAX_REQUESTS_IN_FLIGHT,
            max_in_flight_per_connection: MAX_REQUESTS_PER_CONNECTION,
            preface_timeout: PREFACE_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// What is made from the identity; a rotation step replaces it whole.
struct View {
    description: Description,
    attested_keys: Vec<u8>,
    /// The sealed identity and its images, when it came from KMS.
    sealed: Option<(SealedIdentity, Vec<String>)>,
    /// The identity, to re-seal at a rotation step.
    secrets: IdentitySecrets,
}

/// The loaded identity: the engine (kept across rotations: its locks, pacers and sessions
/// stay) and the current view.
struct Unlocked {
    engine: SyncEngine,
    view: std::sync::RwLock<Arc<View>>,
}

impl Unlocked {
    fn view(&self) -> Arc<View> {
        self.view
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_view(&self, view: View, keys: EngineKeys) {
        self.engine.set_keys(keys);
        *self
            .view
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(view);
    }
}

/// What request handlers share.
pub struct EnclaveState {
    started: Instant,
    requests_served: AtomicU64,
    /// The description's parts that do not depend on the keys.
    base: Description,
    http: AwsHttpClient,
    nsm: Arc<dyn Nsm>,
    saml_entity_id: String,
    retry: aws_smithy_types::retry::RetryConfig,
    writes_per_second: u32,
    describes_per_second: u32,
    unlocked: std::sync::OnceLock<Unlocked>,
    /// Held while an `Unseal` runs, so two connections do not make two identities; it keeps
    /// the last failure for `Health`.
    unsealing: tokio::sync::Mutex<Option<String>>,
    limits: ControlLimits,
    /// One permit per request in flight, over all connections.
    in_flight: Arc<Semaphore>,
}

impl std::fmt::Debug for EnclaveState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnclaveState")
            .field("mode", &self.base.mode)
            .field("unlocked", &self.unlocked.get().is_some())
            .finish_non_exhaustive()
    }
}

/// Largest nonce accepted in an `Attest` request (the NSM's limit).
pub const MAX_NONCE_LEN: usize = 512;

fn open_nsm(cfg: &EnclaveConfig) -> Result<Arc<dyn Nsm>, EnclaveError> {
    match &cfg.mode {
        Mode::Simulator { nsm_dir, .. } => {
            // PCR0 is the SHA-384 of this very binary: a rebuilt enclave has a new measurement.
            // Streamed in small chunks: the whole binary in memory would double the peak.
            let pcr0 = std::env::current_exe()
                .and_then(std::fs::File::open)
                .and_then(nitrosync_attestation::simulator_pcr0_from_reader)
                .map_err(|e| {
                    EnclaveError::Config(format!(
                        "cannot read the enclave binary to measure it: {e}"
                    ))
                })?;
            let nsm = SimulatedNsm::open_or_create_for_pcr0(nsm_dir, pcr0).map_err(|e| {
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

/// A fresh identity: a SAML key and certificate, an X25519 bundle key, a MAC master key.
fn generate_identity(entity_id: &str) -> Result<IdentitySecrets, String> {
    let signer = SamlSigner::generate(entity_id, SystemTime::now())
        .map_err(|e| format!("cannot create the SAML signing key: {e}"))?;
    let bundle_key =
        EnclaveBundleKey::generate(&mut getrandom::rand_core::UnwrapErr(getrandom::SysRng));
    let mut mac_master = Zeroizing::new([0u8; 32]);
    getrandom::fill(mac_master.as_mut()).map_err(|e| format!("no entropy: {e}"))?;
    Ok(IdentitySecrets {
        saml_key_pkcs8: signer.private_key_pkcs8_der(),
        saml_cert_der: signer.cert_der().to_vec(),
        bundle_key: bundle_key.secret_bytes(),
        mac_master,
        generation: 0,
        next: None,
        previous_bundle: None,
    })
}

/// Fresh keys for a rotation: a SAML key and certificate, and an X25519 bundle key.
fn generate_next(entity_id: &str) -> Result<NextKeys, String> {
    let signer = SamlSigner::generate(entity_id, SystemTime::now())
        .map_err(|e| format!("cannot create the next SAML signing key: {e}"))?;
    let bundle_key =
        EnclaveBundleKey::generate(&mut getrandom::rand_core::UnwrapErr(getrandom::SysRng));
    Ok(NextKeys {
        saml_key_pkcs8: signer.private_key_pkcs8_der(),
        saml_cert_der: signer.cert_der().to_vec(),
        bundle_key: bundle_key.secret_bytes(),
    })
}

fn locked(message: String) -> ResponseBody {
    ResponseBody::Error(ControlError {
        code: ErrorCode::EnclaveUnavailable,
        message,
    })
}

impl EnclaveState {
    /// Builds the state from the configuration: TLS trust, the relay client, the NSM, and with
    /// [`IdentityMode::Ephemeral`] fresh keys. With [`IdentityMode::Kms`] the state is locked
    /// until an `Unseal` request loads the identity.
    pub fn new(cfg: &EnclaveConfig) -> Result<Self, EnclaveError> {
        let (tls, trust) = tls_config(&cfg.mode)?;
        let http = AwsHttpClient::new(
            RelayConnector::new(cfg.relay.clone(), cfg.tunnel_timeout),
            tls,
            crate::clock::TrustedClock::with_host_skew(cfg.sim_clock_skew_ms),
        );
        let nsm = open_nsm(cfg)?;
        let retry = aws_smithy_types::retry::RetryConfig::standard()
            .with_max_attempts(cfg.aws_max_attempts)
            .with_initial_backoff(cfg.aws_initial_backoff)
            .with_max_backoff(Duration::from_secs(5));
        let base = Description {
            protocol_version: nitrosync_shared::PROTOCOL_VERSION,
            enclave_version: env!("CARGO_PKG_VERSION").to_owned(),
            mode: match cfg.mode {
                Mode::Production => RuntimeMode::Production,
                Mode::Simulator { .. } => RuntimeMode::Simulator,
            },
            tls_trust: trust,
            bundle_key: [0; 32],
            saml_entity_id: cfg.saml_entity_id.clone(),
            saml_metadata: String::new(),
            saml_cert_sha256: String::new(),
            simulator_root_pem: match &cfg.mode {
                Mode::Simulator { nsm_dir, .. } => Some(
                    std::fs::read_to_string(
                        nsm_dir.join(nitrosync_attestation::SIM_ROOT_CERT_FILE),
                    )
                    .map_err(|e| EnclaveError::Config(format!("simulated NSM root: {e}")))?,
                ),
                Mode::Production => None,
            },
            identity: None,
            rotation: None,
        };
        let state = Self {
            started: Instant::now(),
            requests_served: AtomicU64::new(0),
            base,
            http,
            nsm,
            saml_entity_id: cfg.saml_entity_id.clone(),
            retry,
            writes_per_second: cfg.writes_per_second,
            describes_per_second: cfg.describes_per_second,
            unlocked: std::sync::OnceLock::new(),
            unsealing: tokio::sync::Mutex::new(None),
            limits: cfg.control_limits,
            in_flight: Arc::new(Semaphore::new(cfg.control_limits.max_in_flight.max(1))),
        };
        if cfg.identity == IdentityMode::Ephemeral {
            let secrets = generate_identity(&cfg.saml_entity_id).map_err(EnclaveError::Config)?;
            let unlocked = state.unlock(secrets, None).map_err(EnclaveError::Config)?;
            let _ = state.unlocked.set(unlocked);
        }
        Ok(state)
    }

    /// The view and engine keys an identity stands for.
    fn build(
        &self,
        secrets: IdentitySecrets,
        sealed: Option<(SealedIdentity, Vec<String>)>,
    ) -> Result<(View, EngineKeys), String> {
        let signer = SamlSigner::from_parts(
            &secrets.saml_key_pkcs8,
            &secrets.saml_cert_der,
            &self.saml_entity_id,
        )
        .map_err(|e| format!("the identity's SAML key does not load: {e}"))?;
        let bundle_key = EnclaveBundleKey::from_secret_bytes(&secrets.bundle_key);
        let next_cert_sha256 = match &secrets.next {
            None => None,
            Some(n) => Some(
                SamlSigner::from_parts(&n.saml_key_pkcs8, &n.saml_cert_der, &self.saml_entity_id)
                    .map_err(|e| format!("the identity's next SAML key does not load: {e}"))?
                    .cert_sha256(),
            ),
        };
        let saml_metadata = match &secrets.next {
            None => signer.metadata_xml(),
            Some(n) => signer
                .metadata_xml_with(&[n.saml_cert_der.as_slice()])
                .map_err(|e| format!("cannot write the metadata with the next certificate: {e}"))?,
        };
        let identity = match &sealed {
            Some((s, images)) => IdentitySource::KmsSealed {
                key_arn: s.key_arn.clone(),
                images: images.clone(),
            },
            None => IdentitySource::Ephemeral,
        };
        let saml_cert_sha256 = signer.cert_sha256();
        let attested_keys = AttestedKeys {
            format: ATTESTED_KEYS_FORMAT,
            saml_cert_sha256,
            // Absent for an ephemeral identity, as documents before sealing had it.
            identity: sealed.is_some().then(|| identity.clone()),
            next_saml_cert_sha256: next_cert_sha256.map(|h| h.to_vec()),
        }
        .to_user_data();
        let rotation = sealed.as_ref().map(|_| RotationStatus {
            generation: secrets.generation,
            next_saml_cert_sha256: next_cert_sha256.map(hex::encode),
            previous_bundle_key_until_ms: secrets.previous_bundle.as_ref().map(|p| p.until_ms),
        });
        let description = Description {
            bundle_key: bundle_key.public(),
            saml_entity_id: signer.entity_id().to_owned(),
            saml_metadata,
            saml_cert_sha256: hex::encode(saml_cert_sha256),
            identity: Some(identity),
            rotation,
            ..self.base.clone()
        };
        let keys = EngineKeys {
            signer,
            bundle_key,
            previous_bundle: secrets.previous_bundle.as_ref().map(|p| {
                (
                    EnclaveBundleKey::from_secret_bytes(&p.bundle_key),
                    p.until_ms,
                )
            }),
        };
        Ok((
            View {
                description,
                attested_keys,
                sealed,
                secrets,
            },
            keys,
        ))
    }

    /// Builds the engine and view from an identity.
    fn unlock(
        &self,
        secrets: IdentitySecrets,
        sealed: Option<(SealedIdentity, Vec<String>)>,
    ) -> Result<Unlocked, String> {
        let mac_master = MacMasterKey::from_bytes(secrets.mac_master.clone());
        let (view, keys) = self.build(secrets, sealed)?;
        let engine = SyncEngine::new(
            self.http.clone(),
            keys,
            mac_master,
            self.retry.clone(),
            self.writes_per_second,
            self.describes_per_second,
        );
        Ok(Unlocked {
            engine,
            view: std::sync::RwLock::new(Arc::new(view)),
        })
    }

    /// The HTTPS client over the relay.
    pub fn http(&self) -> &AwsHttpClient {
        &self.http
    }

    /// The sync engine, once the identity is loaded.
    pub fn engine(&self) -> Option<&SyncEngine> {
        self.unlocked.get().map(|u| &u.engine)
    }

    /// The loaded identity, or the answer a locked enclave gives.
    async fn ready(&self) -> Result<&Unlocked, ResponseBody> {
        if let Some(u) = self.unlocked.get() {
            return Ok(u);
        }
        let last = self.unsealing.try_lock().ok().and_then(|g| g.clone());
        Err(locked(match last {
            Some(why) => format!(
                "the enclave's identity is locked: the last Unseal failed: {why}"
            ),
            None => "the enclave's identity is locked: it waits for the parent's Unseal request (is the parent configured with the KMS key?)".to_owned(),
        }))
    }

    async fn unseal(&self, req: UnsealRequest) -> ResponseBody {
        let mut last = self.unsealing.lock().await;
        if let Some(u) = self.unlocked.get() {
            let view = u.view();
            return match &view.sealed {
                Some((s, images)) if s.key_arn == req.key_arn => {
                    ResponseBody::Unsealed(UnsealReport {
                        sealed: s.clone(),
                        created: false,
                        images: images.clone(),
                    })
                }
                Some((s, _)) => ResponseBody::Error(ControlError {
                    code: ErrorCode::InvalidConfig,
                    message: format!(
                        "the identity is already unsealed under {}, not {}; restart the enclave to change keys",
                        s.key_arn, req.key_arn
                    ),
                }),
                None => ResponseBody::Error(ControlError {
                    code: ErrorCode::InvalidConfig,
                    message: "this enclave runs with an ephemeral identity (--identity ephemeral): it has nothing to unseal".into(),
                }),
            };
        }
        match self.unseal_locked(&req).await {
            Ok((unlocked, created)) => {
                let report = unlocked
                    .view()
                    .sealed
                    .as_ref()
                    .map(|(s, images)| UnsealReport {
                        sealed: s.clone(),
                        created,
                        images: images.clone(),
                    });
                let _ = self.unlocked.set(unlocked);
                *last = None;
                match report {
                    Some(r) => {
                        info!(key_arn = %r.sealed.key_arn, created = r.created, images = r.images.len(), "identity unsealed");
                        ResponseBody::Unsealed(r)
                    }
                    None => locked("unsealing produced no sealed identity".into()),
                }
            }
            Err(f) => {
                warn!(code = %f.code, message = %f.message, "unseal failed");
                *last = Some(format!("{}: {}", f.code, f.message));
                ResponseBody::Error(ControlError {
                    code: f.code,
                    message: f.message,
                })
            }
        }
    }

    async fn unseal_locked(
        &self,
        req: &UnsealRequest,
    ) -> Result<(Unlocked, bool), crate::sync::errors::Failure> {
        use crate::sync::errors::Failure;
        let pcr0 = self.own_pcr0().await?;
        let settings = self.kms_settings();
        let entity_id = self.saml_entity_id.clone();
        let out = crate::identity::kms::unseal_or_create(&settings, &self.nsm, &pcr0, req, || {
            generate_identity(&entity_id).map_err(|e| Failure::new(ErrorCode::InvalidConfig, e))
        })
        .await?;
        let created = out.created;
        let unlocked = self
            .unlock(out.secrets, Some((out.sealed, out.images)))
            .map_err(|e| Failure::new(ErrorCode::KmsKeyError, e))?;
        Ok((unlocked, created))
    }

    /// This image's PCR0, refused when all zeros (a debug-mode enclave).
    async fn own_pcr0(&self) -> Result<Vec<u8>, crate::sync::errors::Failure> {
        use crate::sync::errors::Failure;
        let nsm = self.nsm.clone();
        let pcr0 = tokio::task::spawn_blocking(move || nsm.describe_pcr(0))
            .await
            .map_err(|e| {
                Failure::new(
                    ErrorCode::EnclaveUnavailable,
                    format!("the NSM task failed: {e}"),
                )
            })?
            .map_err(|e| {
                Failure::new(
                    ErrorCode::EnclaveUnavailable,
                    format!("the NSM cannot read PCR0: {e}"),
                )
            })?;
        if pcr0.iter().all(|b| *b == 0) {
            return Err(Failure::new(
                ErrorCode::KmsKeyError,
                "this enclave runs in debug mode (PCR0 is all zeros): its memory is readable by the parent, so it never holds the sealed identity",
            ));
        }
        Ok(pcr0)
    }

    fn kms_settings(&self) -> crate::identity::kms::KmsSettings {
        crate::identity::kms::KmsSettings {
            http: self.http.clone(),
            retry: self.retry.clone(),
            timeouts: aws_smithy_types::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_secs(15))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        }
    }

    /// One rotation step: new secrets, sealed under a new data key, then swapped in. Nothing
    /// changes unless the new identity is sealed (the parent can store it).
    async fn rotate(&self, req: RotateRequest) -> ResponseBody {
        let refuse =
            |code: ErrorCode, message: String| ResponseBody::Error(ControlError { code, message });
        let _serial = self.unsealing.lock().await;
        let Some(u) = self.unlocked.get() else {
            return locked("the enclave's identity is locked: unseal it before rotating".into());
        };
        let view = u.view();
        let Some((sealed, images)) = &view.sealed else {
            return refuse(
                ErrorCode::InvalidConfig,
                "this enclave runs with an ephemeral identity: there is nothing to rotate".into(),
            );
        };
        if sealed.key_arn != req.key_arn {
            return refuse(
                ErrorCode::InvalidConfig,
                format!(
                    "the identity is sealed under {}, not {}",
                    sealed.key_arn, req.key_arn
                ),
            );
        }
        if req.bundle_key_grace_s > MAX_BUNDLE_KEY_GRACE_S {
            return refuse(
                ErrorCode::InvalidConfig,
                format!(
                    "a bundle key grace of {} s is longer than {MAX_BUNDLE_KEY_GRACE_S} s (30 days)",
                    req.bundle_key_grace_s
                ),
            );
        }
        let current = &view.secrets;
        let now_ms = nitrosync_shared::unix_ms(self.http.clock().now());
        // A previous bundle key past its cut-off is dropped at any step.
        let previous = current
            .previous_bundle
            .as_ref()
            .filter(|p| p.until_ms >= now_ms)
            .map(|p| PreviousBundleKey {
                bundle_key: p.bundle_key.clone(),
                until_ms: p.until_ms,
            });
        let next_secrets = match (req.step, &current.next) {
            (RotationStep::Begin, Some(_)) => {
                // Already under way: the same answer again.
                return ResponseBody::Unsealed(UnsealReport {
                    sealed: sealed.clone(),
                    created: false,
                    images: images.clone(),
                });
            }
            (RotationStep::Begin, None) => match generate_next(&self.saml_entity_id) {
                Ok(next) => IdentitySecrets {
                    saml_key_pkcs8: current.saml_key_pkcs8.clone(),
                    saml_cert_der: current.saml_cert_der.clone(),
                    bundle_key: current.bundle_key.clone(),
                    mac_master: current.mac_master.clone(),
                    generation: current.generation.saturating_add(1),
                    next: Some(next),
                    previous_bundle: previous,
                },
                Err(e) => return refuse(ErrorCode::InvalidConfig, e),
            },
            (RotationStep::Finish, None) => {
                return refuse(
                    ErrorCode::InvalidConfig,
                    "no rotation is under way: run `nitrosync enclave rotate begin` first".into(),
                );
            }
            (RotationStep::Finish, Some(next)) => IdentitySecrets {
                saml_key_pkcs8: next.saml_key_pkcs8.clone(),
                saml_cert_der: next.saml_cert_der.clone(),
                bundle_key: next.bundle_key.clone(),
                mac_master: current.mac_master.clone(),
                generation: current.generation.saturating_add(1),
                next: None,
                previous_bundle: Some(PreviousBundleKey {
                    bundle_key: current.bundle_key.clone(),
                    until_ms: now_ms.saturating_add(req.bundle_key_grace_s.saturating_mul(1000)),
                }),
            },
        };
        let pcr0 = match self.own_pcr0().await {
            Ok(p) => p,
            Err(f) => return refuse(f.code, f.message),
        };
        let sealed_new = crate::identity::kms::seal_new(
            &self.kms_settings(),
            &self.nsm,
            &pcr0,
            &req.key_arn,
            &req.credentials,
            &next_secrets,
        )
        .await;
        let (sealed_new, images) = match sealed_new {
            Ok(s) => s,
            Err(f) => {
                warn!(code = %f.code, message = %f.message, "rotation step failed");
                return refuse(f.code, f.message);
            }
        };
        let built = self.build(next_secrets, Some((sealed_new.clone(), images.clone())));
        let (view_new, keys) = match built {
            Ok(v) => v,
            Err(e) => return refuse(ErrorCode::KmsKeyError, e),
        };
        u.set_view(view_new, keys);
        info!(step = ?req.step, generation = sealed_new.generation, "key rotation step done");
        ResponseBody::Unsealed(UnsealReport {
            sealed: sealed_new,
            created: false,
            images,
        })
    }

    async fn attest(&self, u: &Unlocked, nonce: Vec<u8>) -> ResponseBody {
        if nonce.len() > MAX_NONCE_LEN {
            return ResponseBody::Error(ControlError {
                code: ErrorCode::InvalidConfig,
                message: format!("nonce of {} bytes; at most {MAX_NONCE_LEN}", nonce.len()),
            });
        }
        let nsm = self.nsm.clone();
        let view = u.view();
        let user_data = view.attested_keys.clone();
        let public_key = view.description.bundle_key;
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
            RequestBody::Unseal(req) => self.unseal(req).await,
            RequestBody::Rotate(req) => self.rotate(req).await,
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
            other => match self.ready().await {
                Err(answer) => answer,
                Ok(u) => match other {
                    RequestBody::Health => ResponseBody::Health(HealthReport {
                        uptime_ms: u64::try_from(self.started.elapsed().as_millis())
                            .unwrap_or(u64::MAX),
                        requests_served: self.requests_served.load(Ordering::Relaxed),
                        tunnels_opened: self.http.tunnels_opened(),
                    }),
                    RequestBody::Describe => ResponseBody::Describe(u.view().description.clone()),
                    RequestBody::Attest { nonce } => self.attest(u, nonce).await,
                    RequestBody::Sync { bundle } => {
                        ResponseBody::Sync(u.engine.sync(&bundle).await)
                    }
                    other => ResponseBody::Error(ControlError {
                        code: ErrorCode::InvalidConfig,
                        message: format!("request not supported by this enclave build: {other:?}"),
                    }),
                },
            },
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
    info!(control = %cfg.control, relay = %cfg.relay, mode = ?state.base.mode, "enclave listening");
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
/// connection overstays [`ControlLimits`]' time limits, the log channel closes or `shutdown`.
/// Returns why it ended.
pub async fn serve_connection<S>(
    stream: S,
    state: Arc<EnclaveState>,
    logs: broadcast::Receiver<Event>,
    shutdown: CancellationToken,
) -> String
where
    S: AsyncRead + AsyncWrite,
{
    let (limits, in_flight) = (state.limits, state.in_flight.clone());
    let handle = move |body| {
        let state = state.clone();
        async move { state.handle(body).await }
    };
    serve_requests(stream, limits, in_flight, handle, logs, shutdown).await
}

/// The connection loop of [`serve_connection`], over any request handler. `in_flight` is shared
/// by all connections (`limits.max_in_flight` permits).
async fn serve_requests<S, H, F>(
    stream: S,
    limits: ControlLimits,
    in_flight: Arc<Semaphore>,
    handle: H,
    mut logs: broadcast::Receiver<Event>,
    shutdown: CancellationToken,
) -> String
where
    S: AsyncRead + AsyncWrite,
    H: Fn(RequestBody) -> F,
    F: Future<Output = ResponseBody> + Send + 'static,
{
    let connected = tokio::time::Instant::now();
    let (read, mut write) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<EnclaveMessage>(256);
    let handlers = TaskTracker::new();
    let mine = Arc::new(Semaphore::new(limits.max_in_flight_per_connection.max(1)));
    let reader = async {
        let mut frames = FrameReader::new(read);
        let mut first = true;
        loop {
            // Backpressure: while this connection's requests fill its share, nothing more is
            // read from it; the parent's writes wait in the socket.
            let Ok(own_slot) = mine.clone().acquire_owned().await else {
                return "the request limit closed".to_owned();
            };
            // `FrameReader::next` is cancel-safe: bytes read so far stay in its buffer.
            let next = loop {
                let deadline = if first {
                    connected + limits.preface_timeout
                } else {
                    tokio::time::Instant::now() + limits.idle_timeout
                };
                match tokio::time::timeout_at(deadline, frames.next::<Request>()).await {
                    Ok(next) => break next,
                    Err(_) if first => {
                        warn!(
                            timeout_ms = limits.preface_timeout.as_millis(),
                            "no complete frame from a new control connection in time; closing it"
                        );
                        return format!(
                            "no complete frame within {} ms of connecting",
                            limits.preface_timeout.as_millis()
                        );
                    }
                    // Quiet while requests run is not idle: their answers are still to come.
                    Err(_) if !handlers.is_empty() => continue,
                    Err(_) => {
                        return format!("idle: no request for {} s", limits.idle_timeout.as_secs());
                    }
                }
            };
            first = false;
            match next {
                Ok(Some(Request { id, body })) => {
                    debug!(id, "control request");
                    // Backpressure across connections: while all of them together fill the
                    // enclave's limit, this one is not read from either.
                    let Ok(shared_slot) = in_flight.clone().acquire_owned().await else {
                        return "the request limit closed".to_owned();
                    };
                    let (answer, tx) = (handle(body), tx.clone());
                    handlers.spawn(async move {
                        let slots: (OwnedSemaphorePermit, OwnedSemaphorePermit) =
                            (own_slot, shared_slot);
                        let body = answer.await;
                        let _ = tx
                            .send(EnclaveMessage::Response(Response { id, body }))
                            .await;
                        drop(slots);
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

#[cfg(test)]
mod tests {
    use super::*;
    use nitrosync_transport::FrameReader;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::{AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
    use tokio::task::JoinHandle;

    fn limits(per_connection: usize, all: usize) -> ControlLimits {
        ControlLimits {
            max_in_flight: all,
            max_in_flight_per_connection: per_connection,
            ..ControlLimits::default()
        }
    }

    fn health() -> ResponseBody {
        ResponseBody::Health(HealthReport {
            uptime_ms: 0,
            requests_served: 0,
            tunnels_opened: 0,
        })
    }

    /// Handlers that report when they start and answer when the test lets them
    /// (`gate.add_permits`); `Health` is answered at once.
    #[derive(Clone)]
    struct Handlers {
        gate: Arc<Semaphore>,
        started: Arc<AtomicUsize>,
        running: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }

    impl Default for Handlers {
        fn default() -> Self {
            Self {
                gate: Arc::new(Semaphore::new(0)),
                started: Arc::default(),
                running: Arc::default(),
                most: Arc::default(),
            }
        }
    }

    impl Handlers {
        fn handle(&self, body: RequestBody) -> impl Future<Output = ResponseBody> + Send + use<> {
            let me = self.clone();
            async move {
                if matches!(body, RequestBody::Health) {
                    return health();
                }
                me.started.fetch_add(1, Ordering::SeqCst);
                let now = me.running.fetch_add(1, Ordering::SeqCst) + 1;
                me.most.fetch_max(now, Ordering::SeqCst);
                me.gate.acquire().await.unwrap().forget();
                me.running.fetch_sub(1, Ordering::SeqCst);
                health()
            }
        }

        fn started(&self) -> usize {
            self.started.load(Ordering::SeqCst)
        }
    }

    struct Conn {
        frames: FrameReader<ReadHalf<DuplexStream>>,
        write: WriteHalf<DuplexStream>,
        server: JoinHandle<String>,
        _logs: broadcast::Sender<Event>,
    }

    fn connect(limits: ControlLimits, in_flight: &Arc<Semaphore>, handlers: &Handlers) -> Conn {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let (logs, rx) = broadcast::channel(16);
        let h = handlers.clone();
        let server = tokio::spawn(serve_requests(
            theirs,
            limits,
            in_flight.clone(),
            move |body| h.handle(body),
            rx,
            CancellationToken::new(),
        ));
        let (read, write) = tokio::io::split(ours);
        Conn {
            frames: FrameReader::new(read),
            write,
            server,
            _logs: logs,
        }
    }

    impl Conn {
        async fn send(&mut self, id: u64, body: RequestBody) {
            write_frame(&mut self.write, &Request { id, body })
                .await
                .unwrap();
        }

        async fn response(&mut self) -> u64 {
            loop {
                match self.frames.next::<EnclaveMessage>().await.unwrap() {
                    Some(EnclaveMessage::Response(r)) => return r.id,
                    Some(EnclaveMessage::Event(_)) => continue,
                    None => panic!("the server closed the connection"),
                }
            }
        }
    }

    /// With the clock paused, a sleep returns only once every task has run as far as it can
    /// (the runtime advances the clock only when it is idle), so what has not happened by then
    /// cannot happen without the test's next step.
    async fn quiesce() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn half_sent_first_frames_are_closed_at_the_preface_timeout() {
        let handlers = Handlers::default();
        let in_flight = Arc::new(Semaphore::new(MAX_REQUESTS_IN_FLIGHT));
        let start = tokio::time::Instant::now();
        let mut half = connect(ControlLimits::default(), &in_flight, &handlers);
        half.write.write_all(&[0, 0]).await.unwrap();
        let silent = connect(ControlLimits::default(), &in_flight, &handlers);
        for conn in [half, silent] {
            let why = conn.server.await.unwrap();
            assert!(why.contains("no complete frame within 10000 ms"), "{why}");
        }
        assert_eq!(start.elapsed(), PREFACE_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_connection_is_closed_when_idle_but_not_while_a_request_runs() {
        let handlers = Handlers::default();
        let in_flight = Arc::new(Semaphore::new(MAX_REQUESTS_IN_FLIGHT));
        let mut conn = connect(ControlLimits::default(), &in_flight, &handlers);
        // A frame within the preface timeout: the connection is served past it.
        tokio::time::advance(PREFACE_TIMEOUT - Duration::from_millis(1)).await;
        conn.send(1, RequestBody::Describe).await;
        // The request runs for longer than the idle timeout: the connection stays.
        tokio::time::sleep(IDLE_TIMEOUT * 2).await;
        assert_eq!(handlers.started(), 1);
        conn.send(2, RequestBody::Health).await;
        assert_eq!(conn.response().await, 2, "still served");
        handlers.gate.add_permits(1);
        assert_eq!(conn.response().await, 1);
        // Nothing in flight, nothing sent: closed one idle timeout after the last frame.
        let last = tokio::time::Instant::now();
        let why = conn.server.await.unwrap();
        assert!(why.contains("idle"), "{why}");
        assert_eq!(last.elapsed(), IDLE_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_connection_is_not_read_until_a_request_finishes() {
        let handlers = Handlers::default();
        let in_flight = Arc::new(Semaphore::new(MAX_REQUESTS_IN_FLIGHT));
        let mut conn = connect(limits(2, MAX_REQUESTS_IN_FLIGHT), &in_flight, &handlers);
        for id in 1..=5 {
            conn.send(id, RequestBody::Describe).await;
        }
        quiesce().await;
        assert_eq!(
            handlers.started(),
            2,
            "two run; the rest wait in the socket"
        );
        // Health is not answered ahead of the queue either: the connection is not read.
        conn.send(6, RequestBody::Health).await;
        quiesce().await;
        handlers.gate.add_permits(1);
        assert_eq!(conn.response().await, 1);
        quiesce().await;
        assert_eq!(handlers.started(), 3, "one finished, one more read");
        handlers.gate.add_permits(4);
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(conn.response().await);
        }
        ids.sort();
        assert_eq!(ids, [2, 3, 4, 5, 6]);
        assert_eq!(handlers.most.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn connections_share_the_global_limit() {
        let handlers = Handlers::default();
        let in_flight = Arc::new(Semaphore::new(3));
        let mut a = connect(limits(2, 3), &in_flight, &handlers);
        let mut b = connect(limits(2, 3), &in_flight, &handlers);
        for id in 1..=2 {
            a.send(id, RequestBody::Describe).await;
            b.send(id, RequestBody::Describe).await;
        }
        quiesce().await;
        assert_eq!(handlers.started(), 3);
        assert_eq!(in_flight.available_permits(), 0);
        handlers.gate.add_permits(1);
        quiesce().await;
        assert_eq!(
            handlers.started(),
            4,
            "the waiting request got the freed slot"
        );
        handlers.gate.add_permits(3);
        for _ in 0..2 {
            a.response().await;
            b.response().await;
        }
        assert_eq!(handlers.most.load(Ordering::SeqCst), 3);
        assert_eq!(in_flight.available_permits(), 3, "every slot is given back");
    }
}
