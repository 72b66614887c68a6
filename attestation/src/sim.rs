//! The simulated NSM: documents in the exact AWS format, signed by a P-384 chain
//! `root → intermediate → leaf` under a root generated once per run directory.
//!
//! This module is not pure: it reads and writes the root's files and takes time from a
//! [`Clock`]. The simulator root is never trusted implicitly: a verifier must be handed it
//! (for example from `sim-root.pem`), like any other [`TrustRoot`].

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ciborium::Value;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P384_SHA384, SerialNumber,
};
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair};

use crate::cose::{PROTECTED_ES384, encode_sign1, sig_structure};
use crate::measure::{SIM_PCR1, SIM_PCR2, simulator_pcr0};
use crate::nsm::{Clock, Nsm, SystemClock, check_inputs};
use crate::{NsmError, TrustRoot};

/// File name of the simulator root certificate (PEM) in the run directory.
pub const SIM_ROOT_CERT_FILE: &str = "sim-root.pem";
/// File name of the simulator root private key (PKCS#8 PEM, mode 0600) in the run directory.
pub const SIM_ROOT_KEY_FILE: &str = "sim-root.key";
/// Number of PCRs the simulator reports (indices 0 to 15), like a Nitro enclave.
pub const SIM_PCR_COUNT: u16 = 16;

/// Validity of the simulator root from its creation.
const ROOT_LIFETIME: Duration = Duration::from_secs(20 * 365 * 24 * 3600);
/// Validity of an intermediate.
const INTERMEDIATE_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// Validity of a leaf, as on AWS.
const LEAF_LIFETIME: Duration = Duration::from_secs(3 * 3600);
/// A leaf is reissued when it has less than this left.
const LEAF_RENEW_MARGIN: Duration = Duration::from_secs(10 * 60);
/// Certificates start this long before they are made, to absorb small clock differences.
const BACKDATE: Duration = Duration::from_secs(60);

fn crypto(what: &str, e: impl std::fmt::Display) -> NsmError {
    NsmError::Crypto {
        reason: format!("{what}: {e}"),
    }
}

fn io(path: &Path, source: std::io::Error) -> NsmError {
    NsmError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn offset_time(t: SystemTime) -> Result<time::OffsetDateTime, NsmError> {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .ok_or_else(|| crypto("certificate time", "before 1970 or out of range"))?;
    time::OffsetDateTime::from_unix_timestamp(secs).map_err(|e| crypto("certificate time", e))
}

/// A certificate's parameters: a name, a validity window, a random serial, and CA or leaf use.
fn params(
    rng: &SystemRandom,
    common_name: &str,
    ca: bool,
    not_before: SystemTime,
    lifetime: Duration,
) -> Result<CertificateParams, NsmError> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "nitrosync simulator");
    dn.push(DnType::CommonName, common_name);
    p.distinguished_name = dn;
    p.not_before = offset_time(not_before)?;
    p.not_after = offset_time(not_before + lifetime)?;
    let mut serial = [0u8; 16];
    rng.fill(&mut serial).map_err(|e| crypto("serial", e))?;
    serial[0] &= 0x7f;
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    if ca {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
    } else {
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.use_authority_key_identifier_extension = true;
    }
    Ok(p)
}

fn new_key() -> Result<KeyPair, NsmError> {
    KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).map_err(|e| crypto("key generation", e))
}

/// The intermediate and leaf currently in use.
struct IssuedChain {
    intermediate_der: Vec<u8>,
    intermediate: Issuer<'static, KeyPair>,
    intermediate_not_after: SystemTime,
    leaf_der: Vec<u8>,
    leaf_key: EcdsaKeyPair,
    leaf_not_before: SystemTime,
    leaf_not_after: SystemTime,
}

/// A simulated Nitro Secure Module.
///
/// Documents are byte-for-byte shaped like AWS's: an untagged COSE_Sign1 with protected header
/// `{1: -35}`, an empty unprotected map, the payload map with its nine keys in AWS's order, and
/// a 96-byte ES384 signature. The chain is `root → intermediate → leaf`, all P-384. The leaf
/// lives three hours, like AWS's, and is reissued before it expires.
///
/// PCR0 is the SHA-384 of the enclave binary given at construction, PCR1 and PCR2 are
/// [`SIM_PCR1`] and [`SIM_PCR2`], PCR3 to PCR15 are zero.
pub struct SimulatedNsm {
    root_der: Vec<u8>,
    root: Issuer<'static, KeyPair>,
    module_id: String,
    pcrs: BTreeMap<u16, Vec<u8>>,
    clock: Arc<dyn Clock>,
    rng: SystemRandom,
    chain: Mutex<Option<IssuedChain>>,
}

impl std::fmt::Debug for SimulatedNsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedNsm")
            .field("module_id", &self.module_id)
            .field("pcr0", &hex::encode(&self.pcrs[&0]))
            .finish_non_exhaustive()
    }
}

impl SimulatedNsm {
    /// Opens the simulator root in `run_dir`, creating it on first use, for an enclave whose
    /// binary is `enclave_binary`. Uses the system clock.
    pub fn open_or_create(run_dir: &Path, enclave_binary: &[u8]) -> Result<Self, NsmError> {
        Self::open_or_create_with_clock(run_dir, enclave_binary, Arc::new(SystemClock))
    }

    /// [`SimulatedNsm::open_or_create`] for an enclave whose PCR0 was already computed, for
    /// example streamed from its binary with
    /// [`simulator_pcr0_from_reader`](crate::measure::simulator_pcr0_from_reader) so that the
    /// binary is never held in memory. Uses the system clock.
    pub fn open_or_create_for_pcr0(run_dir: &Path, pcr0: [u8; 48]) -> Result<Self, NsmError> {
        Self::open_with_pcr0(run_dir, pcr0, Arc::new(SystemClock))
    }

    /// [`SimulatedNsm::open_or_create`] with a given clock, for tests.
    pub fn open_or_create_with_clock(
        run_dir: &Path,
        enclave_binary: &[u8],
        clock: Arc<dyn Clock>,
    ) -> Result<Self, NsmError> {
        Self::open_with_pcr0(run_dir, simulator_pcr0(enclave_binary), clock)
    }

    fn open_with_pcr0(
        run_dir: &Path,
        pcr0: [u8; 48],
        clock: Arc<dyn Clock>,
    ) -> Result<Self, NsmError> {
        let rng = SystemRandom::new();
        let (root_der, root) = open_or_create_root(run_dir, &rng, clock.now())?;
        let module_id = format!(
            "i-00000000000000000-enc{}",
            hex::encode(&digest(&SHA256, &root_der).as_ref()[..8])
        );
        let mut pcrs = BTreeMap::new();
        for index in 0..SIM_PCR_COUNT {
            pcrs.insert(index, vec![0u8; 48]);
        }
        pcrs.insert(0, pcr0.to_vec());
        pcrs.insert(1, SIM_PCR1.to_vec());
        pcrs.insert(2, SIM_PCR2.to_vec());
        Ok(Self {
            root_der,
            root,
            module_id,
            pcrs,
            clock,
            rng,
            chain: Mutex::new(None),
        })
    }

    /// The simulator root certificate (DER), also in `sim-root.pem`.
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// The simulator root as a trust root, for verifying this simulator's documents.
    pub fn trust_root(&self) -> Result<TrustRoot, NsmError> {
        TrustRoot::from_der(self.root_der.clone()).map_err(|e| crypto("simulator root", e))
    }

    /// The module id stamped on documents (stable per run directory).
    pub fn module_id(&self) -> &str {
        &self.module_id
    }

    /// All PCR values by index.
    pub fn pcrs(&self) -> &BTreeMap<u16, Vec<u8>> {
        &self.pcrs
    }

    /// Issues a fresh intermediate or leaf when the current ones do not cover `now`.
    fn ensure_chain(
        &self,
        chain: &mut Option<IssuedChain>,
        now: SystemTime,
    ) -> Result<(), NsmError> {
        let fresh = |c: &IssuedChain| {
            now >= c.leaf_not_before && now + LEAF_RENEW_MARGIN < c.leaf_not_after
        };
        if chain.as_ref().is_some_and(fresh) {
            return Ok(());
        }
        let start = now.checked_sub(BACKDATE).unwrap_or(now);
        let keep_intermediate = chain.take().filter(|c| {
            now >= c.leaf_not_before && start + LEAF_LIFETIME < c.intermediate_not_after
        });
        let (intermediate_der, intermediate, intermediate_not_after) = match keep_intermediate {
            Some(c) => (c.intermediate_der, c.intermediate, c.intermediate_not_after),
            None => {
                let key = new_key()?;
                let p = params(
                    &self.rng,
                    "nitrosync-sim intermediate",
                    true,
                    start,
                    INTERMEDIATE_LIFETIME,
                )?;
                let cert = p
                    .signed_by(&key, &self.root)
                    .map_err(|e| crypto("intermediate", e))?;
                (
                    cert.der().to_vec(),
                    Issuer::new(p, key),
                    start + INTERMEDIATE_LIFETIME,
                )
            }
        };
        let key = new_key()?;
        let name = format!("{}.nitrosync-sim", self.module_id);
        let p = params(&self.rng, &name, false, start, LEAF_LIFETIME)?;
        let cert = p
            .signed_by(&key, &intermediate)
            .map_err(|e| crypto("leaf", e))?;
        let leaf_key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P384_SHA384_FIXED_SIGNING,
            &key.serialize_der(),
            &self.rng,
        )
        .map_err(|e| crypto("leaf key", e))?;
        *chain = Some(IssuedChain {
            intermediate_der,
            intermediate,
            intermediate_not_after,
            leaf_der: cert.der().to_vec(),
            leaf_key,
            leaf_not_before: start,
            leaf_not_after: start + LEAF_LIFETIME,
        });
        Ok(())
    }
}

impl Nsm for SimulatedNsm {
    fn attest(
        &self,
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
        public_key: Option<&[u8]>,
    ) -> Result<Vec<u8>, NsmError> {
        self.attest_with_digest(user_data, nonce, public_key, crate::DIGEST_SHA384)
    }

    fn describe_pcr(&self, index: u16) -> Result<Vec<u8>, NsmError> {
        self.pcrs
            .get(&index)
            .cloned()
            .ok_or(NsmError::NoSuchPcr { index })
    }
}

impl SimulatedNsm {
    /// Makes a document naming `digest` as the PCR digest (only `SHA384` is real; tests use
    /// others).
    fn attest_with_digest(
        &self,
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
        public_key: Option<&[u8]>,
        digest: &str,
    ) -> Result<Vec<u8>, NsmError> {
        check_inputs(user_data, nonce, public_key)?;
        let now = self.clock.now();
        let timestamp_ms = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()
            .and_then(|d| u64::try_from(d.as_millis()).ok())
            .ok_or_else(|| crypto("timestamp", "clock before 1970"))?;

        let mut guard = self.chain.lock().unwrap_or_else(|e| e.into_inner());
        self.ensure_chain(&mut guard, now)?;
        let Some(chain) = guard.as_ref() else {
            return Err(crypto("chain", "not issued"));
        };

        let optional = |v: Option<&[u8]>| v.map_or(Value::Null, |b| Value::Bytes(b.to_vec()));
        let pcrs = self
            .pcrs
            .iter()
            .map(|(&i, v)| (Value::from(i), Value::Bytes(v.clone())))
            .collect();
        // AWS's key order.
        let payload = Value::Map(vec![
            (
                Value::from("module_id"),
                Value::from(self.module_id.as_str()),
            ),
            (Value::from("digest"), Value::from(digest)),
            (Value::from("timestamp"), Value::from(timestamp_ms)),
            (Value::from("pcrs"), Value::Map(pcrs)),
            (
                Value::from("certificate"),
                Value::Bytes(chain.leaf_der.clone()),
            ),
            (
                Value::from("cabundle"),
                Value::Array(vec![
                    Value::Bytes(self.root_der.clone()),
                    Value::Bytes(chain.intermediate_der.clone()),
                ]),
            ),
            (Value::from("public_key"), optional(public_key)),
            (Value::from("user_data"), optional(user_data)),
            (Value::from("nonce"), optional(nonce)),
        ]);
        let mut payload_bytes = Vec::with_capacity(4096);
        ciborium::ser::into_writer(&payload, &mut payload_bytes)
            .map_err(|e| crypto("payload encoding", e))?;

        let to_sign = sig_structure(&PROTECTED_ES384, &payload_bytes);
        let signature = chain
            .leaf_key
            .sign(&self.rng, &to_sign)
            .map_err(|e| crypto("signing", e))?;
        Ok(encode_sign1(
            &PROTECTED_ES384,
            &payload_bytes,
            signature.as_ref(),
        ))
    }
}

/// The root's parameters. Only the name, key usages and key-identifier method matter for
/// issuing, so the same function serves creation and reopening.
fn root_params(rng: &SystemRandom, now: SystemTime) -> Result<CertificateParams, NsmError> {
    params(
        rng,
        "nitrosync-sim root",
        true,
        now.checked_sub(BACKDATE).unwrap_or(now),
        ROOT_LIFETIME,
    )
}

fn open_or_create_root(
    dir: &Path,
    rng: &SystemRandom,
    now: SystemTime,
) -> Result<(Vec<u8>, Issuer<'static, KeyPair>), NsmError> {
    let cert_path = dir.join(SIM_ROOT_CERT_FILE);
    let key_path = dir.join(SIM_ROOT_KEY_FILE);
    if !cert_path.exists() {
        fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let key = new_key()?;
        let cert = root_params(rng, now)?
            .self_signed(&key)
            .map_err(|e| crypto("root certificate", e))?;
        // The key lands first: whoever sees the certificate can also read the key.
        write_atomically(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
        write_atomically(&cert_path, cert.pem().as_bytes(), 0o644)?;
    }
    load_root(&cert_path, &key_path, rng, now)
}

fn load_root(
    cert_path: &Path,
    key_path: &Path,
    rng: &SystemRandom,
    now: SystemTime,
) -> Result<(Vec<u8>, Issuer<'static, KeyPair>), NsmError> {
    let bad = |path: &Path, reason: String| NsmError::BadSimulatorRoot {
        path: path.to_path_buf(),
        reason,
    };
    check_private(key_path)?;
    let key_pem = fs::read_to_string(key_path).map_err(|e| io(key_path, e))?;
    let key = KeyPair::from_pem_and_sign_algo(&key_pem, &PKCS_ECDSA_P384_SHA384)
        .map_err(|e| bad(key_path, format!("not a P-384 PKCS#8 key: {e}")))?;
    let cert_pem = fs::read(cert_path).map_err(|e| io(cert_path, e))?;
    let root = TrustRoot::from_pem(&cert_pem).map_err(|e| bad(cert_path, e.to_string()))?;
    if !root.public_key_is(key.public_key_raw()) {
        return Err(bad(cert_path, "certificate does not match the key".into()));
    }
    Ok((
        root.der().to_vec(),
        Issuer::new(root_params(rng, now)?, key),
    ))
}

/// Refuses a key file that others may read.
fn check_private(path: &Path) -> Result<(), NsmError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .map_err(|e| io(path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(NsmError::BadSimulatorRoot {
                path: path.to_path_buf(),
                reason: format!(
                    "key file mode {:o} lets others read it; expected 0600",
                    mode & 0o777
                ),
            });
        }
    }
    Ok(())
}

/// Writes `bytes` to a temporary file with `mode`, then renames it into place.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), NsmError> {
    let mut tmp = PathBuf::from(path);
    tmp.set_extension(format!("tmp.{}", std::process::id()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(|e| io(&tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_other_than_sha384_is_unsupported_digest() {
        let dir = std::env::temp_dir().join(format!("nitrosync-sim-digest-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let nsm = SimulatedNsm::open_or_create(&dir, b"binary").unwrap();
        let root = nsm.trust_root().unwrap();
        let policy = crate::Policy::new();
        let good = nsm.attest_with_digest(None, None, None, "SHA384").unwrap();
        crate::verify(&good, &root, &policy, SystemTime::now()).unwrap();
        let doc = nsm.attest_with_digest(None, None, None, "SHA256").unwrap();
        assert_eq!(
            crate::verify(&doc, &root, &policy, SystemTime::now()),
            Err(crate::VerifyError::UnsupportedDigest {
                digest: "SHA256".into()
            })
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
