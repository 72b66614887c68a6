//! The tenant's trust store: the enclave images (PCR measurements) and the attestation roots the
//! tenant has chosen to trust, in `trust.json` in the tenant directory.
//!
//! Nothing here is learned from the daemon: an image is trusted because the tenant ran
//! `nitrosync trust add measurements.json` on a file it checked (rebuilt with `make eif`, or
//! measured with `nitrosync-attest measure`), and a root other than AWS's because the tenant ran
//! `nitrosync trust add-root`. Every command that seals to an enclave, or registers it in IAM,
//! refuses an enclave that matches none of the trusted images.
//!
//! The file holds no secret, but whoever can write it chooses which enclave gets the tenant's
//! variables: it is written with mode 0600 (atomically, through a temporary file) and refused
//! when others may write it.

use nitrosync_attestation::TrustRoot;
use nitrosync_shared::measurements::{FORMAT as MEASUREMENTS_FORMAT, ImageKind, Measurements};
use nitrosync_shared::pcr::{PcrPin, check_complete};
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// File name of the trust store inside the tenant directory.
pub const TRUST_FILE: &str = "trust.json";
const TRUST_FORMAT: &str = "nitrosync-trust/1";
/// Most images trusted at once (an upgrade needs two; a few more for rollbacks).
pub const MAX_IMAGES: usize = 16;
/// Most extra roots.
pub const MAX_ROOTS: usize = 4;
/// Longest measurements or root file read.
const MAX_INPUT: u64 = 1024 * 1024;

/// How to pin, for the errors that refuse to go on without pins.
pub const HOW_TO_PIN: &str = "pin the enclave image you trust: get its measurements.json (rebuild it with `make eif`, or check the operator's published one with `nitrosync-attest measure nitrosync-enclave.eif`), then run `nitrosync trust add measurements.json`; or pass --pcr 0=HEX --pcr 1=HEX --pcr 2=HEX for this command only";

/// Why the trust store cannot be read or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// A file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The trust store is not one of ours, or is damaged.
    #[error("{path}: not a nitrosync trust store: {reason}")]
    BadStore {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Others may write the trust store.
    #[error(
        "{path} may be written by others (mode {mode:o}): whoever writes it chooses the enclave you trust; run chmod 600 on it and check its contents with `nitrosync trust list`"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The measurements file is not usable.
    #[error("{path}: {reason}")]
    BadMeasurements {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The root file is not a certificate.
    #[error("{path}: not a root certificate (PEM or DER): {reason}")]
    BadRoot {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The name is taken.
    #[error("{0:?} is already trusted; remove it first or pick another --name")]
    NameTaken(String),
    /// The same image or root is trusted already.
    #[error("already trusted as {0:?}")]
    Duplicate(String),
    /// Nothing has this name.
    #[error("nothing trusted is named {0:?} (see `nitrosync trust list`)")]
    NoSuchName(String),
    /// Too many entries.
    #[error("at most {max} {what} can be trusted at once; remove one first")]
    Full {
        /// What is full.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// A name that cannot be used.
    #[error("{0:?}: a name is 1 to 64 letters, digits, '.', '_' or '-'")]
    BadName(String),
}

/// One trusted enclave image.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedImage {
    /// The tenant's name for it.
    pub name: String,
    /// When it was added (RFC 3339, UTC).
    pub added: String,
    /// Its measurements.
    pub measurements: Measurements,
}

impl TrustedImage {
    /// The pins this image stands for: PCR0, PCR1, PCR2 and PCR8 when present.
    pub fn pins(&self) -> Vec<PcrPin> {
        // Checked when added and when loaded.
        self.measurements.pins().unwrap_or_default()
    }
}

/// One trusted attestation root besides AWS's (a simulator's).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedRoot {
    /// The tenant's name for it.
    pub name: String,
    /// When it was added (RFC 3339, UTC).
    pub added: String,
    /// SHA-256 of the DER certificate, hex.
    pub sha256: String,
    /// The DER certificate, base64.
    pub der_base64: String,
}

impl TrustedRoot {
    /// The root, for verification.
    pub fn root(&self) -> Option<TrustRoot> {
        use base64::Engine as _;
        let der = base64::engine::general_purpose::STANDARD
            .decode(&self.der_base64)
            .ok()?;
        TrustRoot::from_der(der).ok()
    }
}

/// The trust store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustStore {
    format: String,
    /// Trusted images.
    #[serde(default)]
    pub images: Vec<TrustedImage>,
    /// Trusted roots besides AWS's.
    #[serde(default)]
    pub roots: Vec<TrustedRoot>,
}

impl Default for TrustStore {
    fn default() -> Self {
        Self {
            format: TRUST_FORMAT.to_owned(),
            images: Vec::new(),
            roots: Vec::new(),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrustError + '_ {
    move |source| TrustError::Io {
        path: path.to_owned(),
        source,
    }
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn read_limited(path: &Path) -> Result<Vec<u8>, TrustError> {
    use std::io::Read as _;
    let f = std::fs::File::open(path).map_err(io(path))?;
    let mut bytes = Vec::new();
    f.take(MAX_INPUT.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io(path))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_INPUT {
        return Err(TrustError::BadMeasurements {
            path: path.to_owned(),
            reason: format!("larger than {MAX_INPUT} bytes"),
        });
    }
    Ok(bytes)
}

fn check_name(name: &str) -> Result<(), TrustError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(TrustError::BadName(name.to_owned()))
    }
}

/// Reads a measurements file: `make eif`'s `measurements.json` or `nitrosync-attest measure`'s
/// output, or nitro-cli's `{"Measurements": {...}}`. The PCRs must be hex of 48 bytes, PCR0 not
/// zero, and PCR0 with PCR1 and PCR2 (or PCR8) present.
pub fn read_measurements(path: &Path) -> Result<Measurements, TrustError> {
    let bad = |reason: String| TrustError::BadMeasurements {
        path: path.to_owned(),
        reason,
    };
    let bytes = read_limited(path)?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
    let m: Measurements = match value.get("Measurements") {
        // nitro-cli build-enclave / describe-eif: {"Measurements": {"HashAlgorithm", "PCR0", ...}}
        Some(inner) if value.get("format").is_none() => {
            let pcr = |k: &str| inner.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            let need = |k: &str| pcr(k).ok_or_else(|| bad(format!("Measurements has no {k}")));
            Measurements {
                format: MEASUREMENTS_FORMAT.to_owned(),
                kind: ImageKind::Eif,
                hash_algorithm: "Sha384".to_owned(),
                pcr0: need("PCR0")?,
                pcr1: need("PCR1")?,
                pcr2: need("PCR2")?,
                pcr8: pcr("PCR8"),
                eif_sha256: None,
                eif_bytes: None,
                inputs: Default::default(),
            }
        }
        _ => serde_json::from_value(value).map_err(|e| {
            bad(format!(
                "not a measurements file ({e}); expected make eif's measurements.json, `nitrosync-attest measure` output, or nitro-cli's Measurements"
            ))
        })?,
    };
    if m.format != MEASUREMENTS_FORMAT {
        return Err(bad(format!(
            "format {:?}, expected {MEASUREMENTS_FORMAT:?}",
            m.format
        )));
    }
    if !m.hash_algorithm.starts_with("Sha384") {
        return Err(bad(format!(
            "hash algorithm {:?}; Nitro PCRs are Sha384",
            m.hash_algorithm
        )));
    }
    let pins = m.pins().map_err(|e| bad(e.to_string()))?;
    check_complete(&pins).map_err(|e| bad(e.to_string()))?;
    let mut m = m;
    // Store canonical lowercase hex.
    m.pcr0 = m.pcr0.to_ascii_lowercase();
    m.pcr1 = m.pcr1.to_ascii_lowercase();
    m.pcr2 = m.pcr2.to_ascii_lowercase();
    m.pcr8 = m.pcr8.map(|p| p.to_ascii_lowercase());
    Ok(m)
}

/// The trust store's path in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(TRUST_FILE)
}

/// Loads the trust store (empty when there is none). Refuses a file others may write.
pub fn load(dir: &Path) -> Result<TrustStore, TrustError> {
    let p = path(dir);
    let meta = match std::fs::metadata(&p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(TrustStore::default()),
        Err(e) => return Err(io(&p)(e)),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(TrustError::Permissions { path: p, mode });
    }
    let bytes = read_limited(&p)?;
    let bad = |reason: String| TrustError::BadStore {
        path: p.clone(),
        reason,
    };
    let store: TrustStore = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if store.format != TRUST_FORMAT {
        return Err(bad(format!("format {:?}", store.format)));
    }
    for image in &store.images {
        let pins = image
            .measurements
            .pins()
            .map_err(|e| bad(format!("{}: {e}", image.name)))?;
        check_complete(&pins).map_err(|e| bad(format!("{}: {e}", image.name)))?;
    }
    for root in &store.roots {
        if root.root().is_none() {
            return Err(bad(format!("{}: the root does not parse", root.name)));
        }
    }
    Ok(store)
}

fn save(dir: &Path, store: &TrustStore) -> Result<PathBuf, TrustError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let p = path(dir);
    let tmp = dir.join(format!(".{TRUST_FILE}.tmp"));
    let text = serde_json::to_string_pretty(store).map_err(|e| TrustError::BadStore {
        path: p.clone(),
        reason: e.to_string(),
    })?;
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io(&tmp))?;
    f.write_all(b"\n").map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, &p).map_err(io(&p))?;
    Ok(p)
}

fn taken(store: &TrustStore, name: &str) -> bool {
    store.images.iter().any(|i| i.name == name) || store.roots.iter().any(|r| r.name == name)
}

/// Adds the image of the measurements file at `file`, named `name` or after its kind and
/// PCR0. Returns the entry.
pub fn add_image(dir: &Path, file: &Path, name: Option<&str>) -> Result<TrustedImage, TrustError> {
    let m = read_measurements(file)?;
    let mut store = load(dir)?;
    if let Some(same) = store.images.iter().find(|i| i.measurements.same_pcrs(&m)) {
        return Err(TrustError::Duplicate(same.name.clone()));
    }
    if store.images.len() >= MAX_IMAGES {
        return Err(TrustError::Full {
            what: "images",
            max: MAX_IMAGES,
        });
    }
    let kind = match m.kind {
        ImageKind::Eif => "eif",
        ImageKind::Simulator => "simulator",
    };
    let name = match name {
        Some(n) => n.to_owned(),
        None => format!("{kind}-{}", m.pcr0.get(..12).unwrap_or(&m.pcr0)),
    };
    check_name(&name)?;
    if taken(&store, &name) {
        return Err(TrustError::NameTaken(name));
    }
    let entry = TrustedImage {
        name,
        added: now_rfc3339(),
        measurements: m,
    };
    store.images.push(entry.clone());
    save(dir, &store)?;
    Ok(entry)
}

/// Adds an attestation root (PEM or DER) besides AWS's, such as the simulator's.
pub fn add_root(dir: &Path, file: &Path, name: Option<&str>) -> Result<TrustedRoot, TrustError> {
    use base64::Engine as _;
    let bytes = read_limited(file)?;
    let root = TrustRoot::from_pem_or_der(&bytes).map_err(|e| TrustError::BadRoot {
        path: file.to_owned(),
        reason: e.to_string(),
    })?;
    let sha256 = hex::encode(root.sha256_fingerprint());
    let mut store = load(dir)?;
    if let Some(same) = store.roots.iter().find(|r| r.sha256 == sha256) {
        return Err(TrustError::Duplicate(same.name.clone()));
    }
    if store.roots.len() >= MAX_ROOTS {
        return Err(TrustError::Full {
            what: "roots",
            max: MAX_ROOTS,
        });
    }
    let name = match name {
        Some(n) => n.to_owned(),
        None => format!("root-{}", sha256.get(..12).unwrap_or(&sha256)),
    };
    check_name(&name)?;
    if taken(&store, &name) {
        return Err(TrustError::NameTaken(name));
    }
    let entry = TrustedRoot {
        name,
        added: now_rfc3339(),
        sha256,
        der_base64: base64::engine::general_purpose::STANDARD.encode(root.der()),
    };
    store.roots.push(entry.clone());
    save(dir, &store)?;
    Ok(entry)
}

/// Removes the image or root named `name`.
pub fn remove(dir: &Path, name: &str) -> Result<(), TrustError> {
    let mut store = load(dir)?;
    let before = store.images.len().saturating_add(store.roots.len());
    store.images.retain(|i| i.name != name);
    store.roots.retain(|r| r.name != name);
    if store.images.len().saturating_add(store.roots.len()) == before {
        return Err(TrustError::NoSuchName(name.to_owned()));
    }
    save(dir, &store)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn ours(byte: u8) -> String {
        serde_json::to_string(&Measurements::new(
            ImageKind::Eif,
            &[byte; 48],
            &[2; 48],
            &[3; 48],
        ))
        .unwrap()
    }

    #[test]
    fn add_list_remove_and_permissions() {
        let d = tempfile::tempdir().unwrap();
        let m = write(d.path(), "m.json", &ours(1));
        let e = add_image(d.path(), &m, None).unwrap();
        assert_eq!(e.name, "eif-010101010101");
        assert!(matches!(
            add_image(d.path(), &m, Some("again")),
            Err(TrustError::Duplicate(_))
        ));
        let m2 = write(d.path(), "m2.json", &ours(9));
        assert!(matches!(
            add_image(d.path(), &m2, Some("eif-010101010101")),
            Err(TrustError::NameTaken(_))
        ));
        assert!(matches!(
            add_image(d.path(), &m2, Some("bad name")),
            Err(TrustError::BadName(_))
        ));
        add_image(d.path(), &m2, Some("next")).unwrap();
        let store = load(d.path()).unwrap();
        assert_eq!(store.images.len(), 2);
        let mode = std::fs::metadata(path(d.path()))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        remove(d.path(), "next").unwrap();
        assert!(matches!(
            remove(d.path(), "next"),
            Err(TrustError::NoSuchName(_))
        ));
        assert_eq!(load(d.path()).unwrap().images.len(), 1);
        std::fs::set_permissions(path(d.path()), std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            load(d.path()),
            Err(TrustError::Permissions { .. })
        ));
    }

    #[test]
    fn incomplete_or_malformed_measurements_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let h = |b: u8| hex::encode([b; 48]);
        // nitro-cli's shape is accepted.
        let nitro = write(
            d.path(),
            "nitro.json",
            &format!(
                r#"{{"Measurements":{{"HashAlgorithm":"Sha384 {{ ... }}","PCR0":"{}","PCR1":"{}","PCR2":"{}"}}}}"#,
                h(1),
                h(2),
                h(3)
            ),
        );
        assert_eq!(read_measurements(&nitro).unwrap().pcr0, h(1));
        for (name, text) in [
            ("notjson", "PCR0=00".to_owned()),
            (
                "nopcr2",
                format!(
                    r#"{{"Measurements":{{"PCR0":"{}","PCR1":"{}"}}}}"#,
                    h(1),
                    h(2)
                ),
            ),
            ("zero", ours(0)),
            ("short", ours(1).replace(&h(2), "0202")),
            ("format", ours(1).replace(MEASUREMENTS_FORMAT, "other/9")),
        ] {
            let p = write(d.path(), name, &text);
            let e = read_measurements(&p).unwrap_err();
            assert!(
                matches!(e, TrustError::BadMeasurements { .. }),
                "{name}: {e}"
            );
        }
    }
}
