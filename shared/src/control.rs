//! Control messages between the parent (client) and the enclave (server).
//!
//! The parent sends [`Request`]s, each with an id it chose. The enclave answers each with a
//! [`Response`] that echoes the id, in any order, and may send [`Event`]s (log lines, progress) at
//! any time. Both directions use the frame format of [`crate::frame`].

use crate::ErrorCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A request id, chosen by the parent, unique among its requests in flight.
pub type RequestId = u64;

/// One request from the parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Echoed in the response.
    pub id: RequestId,
    /// What is asked.
    pub body: RequestBody,
}

/// The requests the enclave serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RequestBody {
    /// Liveness and counters.
    Health,
    /// What the enclave is: versions, mode, trust anchors.
    Describe,
    /// Make one real call to STS in `region` through the relay, over TLS, to prove the outbound
    /// path. The enclave uses no credentials it holds: the call is `GetCallerIdentity` signed
    /// with a fixed, worthless probe key, so AWS answers with an error and the simulator with an
    /// identity. Either proves the path.
    ProbeAws {
        /// AWS region whose STS endpoint is called.
        region: String,
    },
    /// A fresh attestation document from the enclave's NSM, binding its keys, with `nonce`.
    Attest {
        /// A caller-chosen nonce (at most 512 bytes), echoed in the document.
        #[serde(with = "serde_bytes")]
        nonce: Vec<u8>,
    },
    /// Open a sealed bundle and act on its destination.
    Sync {
        /// The tenant's sealed bundle: the CBOR of a [`SealedBundle`](crate::bundle::SealedBundle)
        /// exactly as the tenant submitted it. The parent stores and forwards these bytes without
        /// re-encoding them; only the enclave decodes them, and treats them as hostile.
        #[serde(with = "serde_bytes")]
        bundle: Vec<u8>,
    },
    /// Load the enclave's identity (SAML key, bundle key, MAC master key) sealed under the
    /// operator's KMS key, or create and seal it when `sealed` is `None`. The parent sends it
    /// after connecting to an enclave whose identity is locked; until then, every request but
    /// this one is refused. Idempotent: an enclave already unsealed under the same key answers
    /// with its sealed identity again.
    Unseal(UnsealRequest),
    /// One step of a key rotation (SAML signing key and bundle key), re-sealed under the same
    /// KMS key with a new data key; answered with the new sealed identity for the parent to
    /// store. The enclave must be unsealed under `key_arn`.
    Rotate(RotateRequest),
}

/// A rotation step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RotationStep {
    /// Make the next SAML key and bundle key. The metadata lists the current and the next
    /// certificate (IAM accepts several), so customers can register it before the switch.
    /// Again while a rotation is under way: nothing changes.
    Begin,
    /// Sign with the next SAML key and attest the next bundle key; the old SAML key is
    /// retired, and the old bundle key still opens bundles until the cut-off.
    Finish,
}

/// [`RequestBody::Rotate`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateRequest {
    /// The step.
    pub step: RotationStep,
    /// The KMS key the identity is sealed under.
    pub key_arn: String,
    /// Credentials for the KMS calls (the instance role).
    pub credentials: AwsCredentials,
    /// `Finish` only: how long (seconds, at most [`MAX_BUNDLE_KEY_GRACE_S`]) the old bundle key
    /// still opens bundles sealed to it.
    pub bundle_key_grace_s: u64,
}

/// The longest an old bundle key may go on opening bundles after a rotation: 30 days.
pub const MAX_BUNDLE_KEY_GRACE_S: u64 = 30 * 24 * 3600;

impl std::fmt::Debug for RotateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotateRequest")
            .field("step", &self.step)
            .field("key_arn", &self.key_arn)
            .field("credentials", &self.credentials)
            .field("bundle_key_grace_s", &self.bundle_key_grace_s)
            .finish()
    }
}

/// What the enclave needs to unseal its identity ([`RequestBody::Unseal`]). Everything here
/// comes from the parent and is treated as hostile: the enclave checks the key's metadata and
/// policy itself, over TLS that ends inside it, before it trusts the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsealRequest {
    /// The KMS key's full ARN (`arn:aws:kms:<region>:<account>:key/<id>`; no aliases).
    pub key_arn: String,
    /// Credentials to sign the KMS calls with: the parent's instance role.
    pub credentials: AwsCredentials,
    /// The sealed identity the parent stored after an earlier start, if any.
    pub sealed: Option<SealedIdentity>,
}

impl std::fmt::Debug for UnsealRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsealRequest")
            .field("key_arn", &self.key_arn)
            .field("credentials", &self.credentials)
            .field("sealed", &self.sealed.as_ref().map(|_| "…"))
            .finish()
    }
}

/// AWS credentials handed to the enclave. Never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token of temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The format of [`SealedIdentity`] this build writes.
pub const SEALED_IDENTITY_FORMAT: u32 = 1;

/// The enclave's identity sealed under a KMS data key. Not secret: the data key is in
/// `ciphertext_blob`, which KMS decrypts only for an attested enclave of an image its key policy
/// names, and `sealed` is AES-256-GCM under it, its AAD naming the format, the key ARN and the
/// image's PCR0. The parent stores it and hands it back at every start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedIdentity {
    /// [`SEALED_IDENTITY_FORMAT`].
    pub format: u32,
    /// The KMS key the data key is encrypted under.
    pub key_arn: String,
    /// PCR0 of the image that sealed it, lowercase hex (informational; it is in the AAD).
    pub pcr0: String,
    /// Incremented at every rotation step (also inside the sealed plaintext, where the enclave
    /// checks it); the parent keeps the highest.
    #[serde(default)]
    pub generation: u64,
    /// KMS's `CiphertextBlob` of the data key.
    #[serde(with = "serde_bytes")]
    pub ciphertext_blob: Vec<u8>,
    /// The AES-GCM nonce.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// The AES-256-GCM ciphertext and tag of the identity.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

impl SealedIdentity {
    /// The CBOR bytes the parent stores.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        // Encoding plain data into a Vec cannot fail.
        let _ = ciborium::into_writer(self, &mut out);
        out
    }

    /// Parses stored bytes; rejects other formats.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, crate::FrameError> {
        let s: SealedIdentity = crate::frame::decode_payload(bytes)?;
        if s.format != SEALED_IDENTITY_FORMAT {
            return Err(crate::FrameError::Malformed(format!(
                "sealed identity format {} is not supported",
                s.format
            )));
        }
        Ok(s)
    }
}

/// The answer to [`RequestBody::Unseal`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsealReport {
    /// The identity as sealed: the one given, or a new one to store.
    pub sealed: SealedIdentity,
    /// True when the enclave created a new identity (no `sealed` was given).
    pub created: bool,
    /// The images (PCR0, lowercase hex) the key's policy can release the identity to; they are
    /// bound in every attestation document's `user_data`.
    pub images: Vec<String>,
}

/// What a sync did, as reports and history name it. It is always the bundle's signed
/// [`Operation`](crate::bundle::Operation): the parent's request carries no mode of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SyncMode {
    /// Make the secret equal to the bundle's variables.
    Write,
    /// Check the set-up without touching the real secret: create and force-delete a placeholder,
    /// then check that the role's trust policy pins the SAML subject.
    TestConnection,
    /// Apply the destination's delete policy to its secret.
    Delete,
}

impl From<crate::bundle::Operation> for SyncMode {
    fn from(op: crate::bundle::Operation) -> Self {
        match op {
            crate::bundle::Operation::Write => SyncMode::Write,
            crate::bundle::Operation::Delete => SyncMode::Delete,
            crate::bundle::Operation::TestConnection => SyncMode::TestConnection,
        }
    }
}

/// The result of a `Sync` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    /// Destination id (from the verified header; empty when the bundle did not verify).
    pub destination: String,
    /// Bundle version.
    pub version: u64,
    /// What the bundle's signed operation asked for.
    pub mode: SyncMode,
    /// What happened.
    pub outcome: SyncOutcome,
    /// Why it failed, when it did.
    pub error: Option<SyncError>,
    /// The secret's ARN, when known.
    pub secret_arn: Option<String>,
    /// The AWS version id written, when a write happened.
    pub aws_version_id: Option<String>,
    /// Where the time went.
    pub timings: SyncTimings,
}

/// The outcome of a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SyncOutcome {
    /// The secret was created.
    Created,
    /// A new secret version was written.
    Updated,
    /// The secret already held this content and version: nothing was written.
    Unchanged,
    /// The connection test passed.
    Tested,
    /// The secret was deleted or scheduled for deletion.
    Deleted,
    /// The delete policy is Retain: the secret was left in place.
    Retained,
    /// The sync failed; see `error`.
    Failed,
}

/// A failed sync: a product code, and what the user can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncError {
    /// The product error code.
    pub code: ErrorCode,
    /// What happened. Never contains a variable value.
    pub message: String,
    /// Whether the scheduler should retry by itself.
    pub retryable: bool,
}

/// Timings and costs of a sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncTimings {
    /// Wall time inside the enclave, microseconds.
    pub total_us: u64,
    /// Time spent waiting for AWS, microseconds.
    pub aws_us: u64,
    /// AWS calls made (retries included).
    pub aws_calls: u32,
    /// Whether a SAML assertion was signed (a credential refresh).
    pub signed_assertion: bool,
}

/// Everything the enclave sends on the control connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// One message is decoded, handled and dropped at a time; a box per response would cost more
// than the few hundred bytes an event carries unused.
#[allow(clippy::large_enum_variant)]
pub enum EnclaveMessage {
    /// The answer to one request.
    Response(Response),
    /// Something the enclave reports unasked.
    Event(Event),
}

/// The answer to the request with the same id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: RequestId,
    /// The result.
    pub body: ResponseBody,
}

/// A result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ResponseBody {
    /// Answer to [`RequestBody::Health`].
    Health(HealthReport),
    /// Answer to [`RequestBody::Describe`].
    Describe(Description),
    /// Answer to [`RequestBody::ProbeAws`].
    ProbeAws(ProbeReport),
    /// Answer to [`RequestBody::Sync`].
    Sync(SyncReport),
    /// Answer to [`RequestBody::Unseal`].
    Unsealed(UnsealReport),
    /// Answer to [`RequestBody::Attest`].
    Attestation {
        /// The COSE_Sign1 attestation document, as the NSM produced it.
        #[serde(with = "serde_bytes")]
        document: Vec<u8>,
    },
    /// The request failed.
    Error(ControlError),
}

/// Whether the enclave runs on Nitro hardware or in the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuntimeMode {
    /// In a Nitro Enclave, with `/dev/nsm` and vsock.
    Production,
    /// An ordinary process with a simulated NSM and Unix sockets.
    Simulator,
}

/// Liveness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// Milliseconds since the enclave program started.
    pub uptime_ms: u64,
    /// Control requests served so far.
    pub requests_served: u64,
    /// Outbound tunnels opened through the relay so far.
    pub tunnels_opened: u64,
}

/// Which roots the enclave trusts for TLS to AWS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsTrust {
    /// The web PKI roots compiled into the enclave binary.
    WebPki {
        /// Number of roots.
        roots: u32,
    },
    /// Only the simulator's CA (simulator mode).
    SimulatorCa {
        /// SHA-256 of the CA certificate's DER, hex.
        sha256: String,
    },
}

/// What the enclave is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description {
    /// [`crate::PROTOCOL_VERSION`] of the enclave build.
    pub protocol_version: u32,
    /// The enclave crate's version.
    pub enclave_version: String,
    /// Production or simulator.
    pub mode: RuntimeMode,
    /// Trust anchors for TLS to AWS.
    pub tls_trust: TlsTrust,
    /// The X25519 key bundles are sealed to (also the attestation document's `public_key`):
    /// hex in JSON, a byte string in CBOR.
    #[serde(with = "crate::hex_bytes")]
    pub bundle_key: [u8; 32],
    /// The SAML identity provider's entity id.
    pub saml_entity_id: String,
    /// The SAML metadata XML to register as an IAM SAML provider.
    pub saml_metadata: String,
    /// SHA-256 of the SAML signing certificate (DER), hex; bound by the attestation document.
    pub saml_cert_sha256: String,
    /// Simulator mode only: the simulated NSM's root certificate (PEM). Never trusted
    /// implicitly: verifiers must be handed it explicitly.
    pub simulator_root_pem: Option<String>,
    /// Where the identity comes from; `None` from an enclave older than this field.
    #[serde(default)]
    pub identity: Option<crate::binding::IdentitySource>,
    /// The state of a key rotation, for a sealed identity.
    #[serde(default)]
    pub rotation: Option<RotationStatus>,
}

/// Where a sealed identity's keys stand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationStatus {
    /// The sealed identity's generation.
    pub generation: u64,
    /// SHA-256 (hex) of the next SAML certificate, between `rotate begin` and `rotate finish`.
    pub next_saml_cert_sha256: Option<String>,
    /// Until when (Unix ms) the previous bundle key still opens bundles, after a finish.
    pub previous_bundle_key_until_ms: Option<u64>,
}

/// The outcome of [`RequestBody::ProbeAws`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// The STS host called.
    pub host: String,
    /// True when a TLS-authenticated HTTP response came back, whatever its status.
    pub reached: bool,
    /// The account id STS returned, when the call succeeded (simulator).
    pub account: Option<String>,
    /// The AWS error code, when AWS answered with an error (real AWS, worthless key).
    pub aws_error: Option<String>,
    /// What failed, when nothing came back.
    pub failure: Option<String>,
    /// Milliseconds the call took, handshake included.
    pub elapsed_ms: u64,
}

/// A failed request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlError {
    /// The product error code.
    pub code: ErrorCode,
    /// What went wrong, for a person. Never contains a variable value or key material.
    pub message: String,
}

/// Severity of an [`Event::Log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something is wrong but work goes on.
    Warn,
    /// Normal operation.
    Info,
    /// Detail for diagnosis.
    Debug,
}

/// An unsolicited message from the enclave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Event {
    /// A log line. The enclave's logs leave it only this way, so nothing secret goes in here.
    Log {
        /// Severity.
        level: LogLevel,
        /// The module that logged.
        target: String,
        /// The message.
        message: String,
        /// Structured fields, already rendered.
        fields: BTreeMap<String, String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{self, Decoded, FrameDecoder};
    use proptest::prelude::*;

    fn arb_request() -> impl Strategy<Value = Request> {
        let body = prop_oneof![
            Just(RequestBody::Health),
            Just(RequestBody::Describe),
            "[a-z0-9-]{0,20}".prop_map(|region| RequestBody::ProbeAws { region }),
            proptest::collection::vec(any::<u8>(), 0..64)
                .prop_map(|nonce| RequestBody::Attest { nonce }),
        ];
        (any::<u64>(), body).prop_map(|(id, body)| Request { id, body })
    }

    fn arb_message() -> impl Strategy<Value = EnclaveMessage> {
        let health = (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(a, b, c)| {
            ResponseBody::Health(HealthReport {
                uptime_ms: a,
                requests_served: b,
                tunnels_opened: c,
            })
        });
        let describe = (any::<u32>(), ".{0,12}", any::<bool>(), any::<u32>()).prop_map(
            |(protocol_version, enclave_version, sim, roots)| {
                ResponseBody::Describe(Description {
                    protocol_version,
                    enclave_version,
                    mode: if sim {
                        RuntimeMode::Simulator
                    } else {
                        RuntimeMode::Production
                    },
                    tls_trust: if sim {
                        TlsTrust::SimulatorCa {
                            sha256: "ab".repeat(32),
                        }
                    } else {
                        TlsTrust::WebPki { roots }
                    },
                    bundle_key: [7; 32],
                    saml_entity_id: "urn:nitrosync:enclave".into(),
                    saml_metadata: "<EntityDescriptor/>".into(),
                    saml_cert_sha256: "cd".repeat(32),
                    simulator_root_pem: sim.then(|| "-----BEGIN CERTIFICATE-----".into()),
                    identity: None,
                    rotation: None,
                })
            },
        );
        let probe = (
            ".{0,30}",
            any::<bool>(),
            proptest::option::of("[0-9]{12}"),
            proptest::option::of(".{0,20}"),
            any::<u64>(),
        )
            .prop_map(|(host, reached, account, aws_error, elapsed_ms)| {
                ResponseBody::ProbeAws(ProbeReport {
                    host,
                    reached,
                    account,
                    aws_error,
                    failure: None,
                    elapsed_ms,
                })
            });
        let error = (0..ErrorCode::ALL.len(), ".{0,40}").prop_map(|(i, message)| {
            ResponseBody::Error(ControlError {
                code: ErrorCode::ALL[i],
                message,
            })
        });
        let response = (any::<u64>(), prop_oneof![health, describe, probe, error])
            .prop_map(|(id, body)| EnclaveMessage::Response(Response { id, body }));
        let log = (
            0..4usize,
            "[a-z:_]{0,20}",
            ".{0,60}",
            proptest::collection::btree_map("[a-z_]{1,8}", ".{0,16}", 0..4),
        )
            .prop_map(|(l, target, message, fields)| {
                EnclaveMessage::Event(Event::Log {
                    level: [
                        LogLevel::Error,
                        LogLevel::Warn,
                        LogLevel::Info,
                        LogLevel::Debug,
                    ][l],
                    target,
                    message,
                    fields,
                })
            });
        prop_oneof![response, log]
    }

    /// Encodes a sequence of messages into one byte stream, then decodes it after splitting the
    /// stream at arbitrary points, as a socket would deliver it.
    fn round_trip_stream<T>(msgs: &[T], cuts: &[usize]) -> Vec<T>
    where
        T: Serialize + serde::de::DeserializeOwned,
    {
        let mut stream = Vec::new();
        for m in msgs {
            frame::encode_into(m, &mut stream).unwrap();
        }
        let decoder = FrameDecoder::default();
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        let mut pos = 0;
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        cuts.push(stream.len());
        cuts.sort_unstable();
        for cut in cuts {
            buf.extend_from_slice(&stream[pos..cut.max(pos)]);
            pos = cut.max(pos);
            while let Decoded::Frame { payload, consumed } = decoder.decode(&buf).unwrap() {
                out.push(frame::decode_payload(payload).unwrap());
                buf.drain(..consumed);
            }
        }
        decoder.finish(&buf).unwrap();
        out
    }

    proptest! {
        #[test]
        fn requests_round_trip(msgs in proptest::collection::vec(arb_request(), 0..8), cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
            prop_assert_eq!(round_trip_stream(&msgs, &cuts), msgs);
        }

        #[test]
        fn enclave_messages_round_trip(msgs in proptest::collection::vec(arb_message(), 0..8), cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
            prop_assert_eq!(round_trip_stream(&msgs, &cuts), msgs);
        }

        #[test]
        fn tunnel_messages_round_trip(host in "[a-z0-9.-]{1,40}", port in any::<u16>(), refused in any::<bool>(), detail in ".{0,40}", r in 0..5usize) {
            let connect = crate::tunnel::Connect { host, port };
            prop_assert_eq!(round_trip_stream(std::slice::from_ref(&connect), &[]), vec![connect]);
            let reply = if refused {
                crate::tunnel::ConnectReply::Refused { reason: crate::tunnel::RefusalReason::ALL[r], detail }
            } else {
                crate::tunnel::ConnectReply::Connected
            };
            prop_assert_eq!(round_trip_stream(std::slice::from_ref(&reply), &[]), vec![reply]);
        }

        /// Arbitrary bytes never panic the decoder: they are a frame, too short, or an error.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let decoder = FrameDecoder::default();
            if let Ok(Decoded::Frame { payload, .. }) = decoder.decode(&bytes) {
                let _ = frame::decode_payload::<Request>(payload);
                let _ = frame::decode_payload::<EnclaveMessage>(payload);
                let _ = frame::decode_payload::<crate::tunnel::Connect>(payload);
            }
            let _ = frame::decode_payload::<Request>(&bytes);
            let _ = frame::decode_payload::<EnclaveMessage>(&bytes);
            let _ = frame::decode_payload::<crate::tunnel::ConnectReply>(&bytes);
            let _ = decoder.finish(&bytes);
        }

        /// A valid frame with any single byte flipped decodes to an error or to some message,
        /// never a panic.
        #[test]
        fn bit_flips_never_panic(msg in arb_message(), at in any::<usize>(), bit in 0..8u8) {
            let mut bytes = frame::encode(&msg).unwrap();
            let i = at % bytes.len();
            bytes[i] ^= 1 << bit;
            if let Ok(Decoded::Frame { payload, .. }) = FrameDecoder::default().decode(&bytes) {
                let _ = frame::decode_payload::<EnclaveMessage>(payload);
            }
        }
    }
}
