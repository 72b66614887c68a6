//! The tenant's side of the CLI: the Ed25519 key file and the destination files, kept in a
//! tenant directory (`--tenant-dir`, `NITROSYNC_TENANT_DIR`, default `~/.config/nitrosync`).
//!
//! The key file is created with mode 0600 and refused if anyone else may read it. Destination
//! files hold only configuration (no secrets): they are what the tenant signs into each bundle
//! header.

use nitrosync_bundle::TenantKey;
use nitrosync_shared::bundle::DestinationConfig;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// File name of the tenant key inside the tenant directory.
pub const KEY_FILE: &str = "tenant.key";
/// Key file format marker.
const KEY_FORMAT: &str = "nitrosync-tenant-key/v1";

/// What went wrong with the tenant's files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TenantError {
    /// The key file is missing.
    #[error("no tenant key at {0} (create one with `nitrosync tenant init`)")]
    NoKey(PathBuf),
    /// The key file exists already.
    #[error("{0} exists already; refusing to overwrite a tenant key")]
    Exists(PathBuf),
    /// Others may read the key file.
    #[error("{path} is readable by others (mode {mode:o}); run chmod 600 on it")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The key file is not one of ours.
    #[error("{0} is not a nitrosync tenant key file")]
    BadKey(PathBuf),
    /// A destination file is missing.
    #[error("no destination {id:?} in {dir} (create it with `nitrosync destination create`)")]
    NoDestination {
        /// The id.
        id: String,
        /// Where it was looked for.
        dir: PathBuf,
    },
    /// A destination file is invalid.
    #[error("{path}: {reason}")]
    BadDestination {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TenantError + '_ {
    move |source| TenantError::Io {
        path: path.to_owned(),
        source,
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    format: String,
    public: String,
    seed: String,
}

impl Drop for KeyFile {
    /// The seed's hex is key material: wipe it when the struct goes, on every path.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.seed);
    }
}

/// Creates a new tenant key in `dir` (mode 0600) and returns its public half.
pub fn init(dir: &Path) -> Result<[u8; 32], TenantError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(KEY_FILE);
    let key = TenantKey::generate(&mut getrandom::rand_core::UnwrapErr(getrandom::SysRng));
    let body = KeyFile {
        format: KEY_FORMAT.into(),
        public: hex::encode(key.public()),
        seed: hex::encode(&key.seed()[..]),
    };
    let text = zeroize::Zeroizing::new(serde_json::to_string_pretty(&body).unwrap_or_default());
    drop(body);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                TenantError::Exists(path.clone())
            } else {
                TenantError::Io {
                    path: path.clone(),
                    source: e,
                }
            }
        })?;
    f.write_all(text.as_bytes()).map_err(io(&path))?;
    f.sync_all().map_err(io(&path))?;
    Ok(key.public())
}

/// Loads the tenant key from `dir`.
pub fn load(dir: &Path) -> Result<TenantKey, TenantError> {
    let path = dir.join(KEY_FILE);
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(TenantError::NoKey(path)),
        Err(e) => return Err(TenantError::Io { path, source: e }),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TenantError::Permissions { path, mode });
    }
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(&path).map_err(io(&path))?);
    let file: KeyFile =
        serde_json::from_str(&text).map_err(|_| TenantError::BadKey(path.clone()))?;
    let seed = zeroize::Zeroizing::new(
        hex::decode(&file.seed).map_err(|_| TenantError::BadKey(path.clone()))?,
    );
    let seed: &[u8; 32] = seed
        .as_slice()
        .try_into()
        .map_err(|_| TenantError::BadKey(path.clone()))?;
    if file.format != KEY_FORMAT {
        return Err(TenantError::BadKey(path));
    }
    let key = TenantKey::from_seed(seed);
    if hex::encode(key.public()) != file.public {
        return Err(TenantError::BadKey(path));
    }
    Ok(key)
}

/// Where destination files live.
pub fn destinations_dir(dir: &Path) -> PathBuf {
    dir.join("destinations")
}

/// Saves a destination (validated first).
pub fn save_destination(
    dir: &Path,
    d: &DestinationConfig,
    overwrite: bool,
) -> Result<PathBuf, TenantError> {
    let ddir = destinations_dir(dir);
    std::fs::create_dir_all(&ddir).map_err(io(&ddir))?;
    let path = ddir.join(format!("{}.json", d.id));
    d.validate().map_err(|e| TenantError::BadDestination {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if path.exists() && !overwrite {
        return Err(TenantError::BadDestination {
            path,
            reason: "exists already (use --force to replace it)".into(),
        });
    }
    let text = serde_json::to_string_pretty(d).unwrap_or_default();
    std::fs::write(&path, text).map_err(io(&path))?;
    Ok(path)
}

/// Loads a destination by id.
pub fn load_destination(dir: &Path, id: &str) -> Result<DestinationConfig, TenantError> {
    nitrosync_shared::names::destination_id(id).map_err(|e| TenantError::BadDestination {
        path: destinations_dir(dir),
        reason: format!("destination id: {e}"),
    })?;
    let path = destinations_dir(dir).join(format!("{id}.json"));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(TenantError::NoDestination {
                id: id.to_owned(),
                dir: destinations_dir(dir),
            });
        }
        Err(e) => return Err(TenantError::Io { path, source: e }),
    };
    let d: DestinationConfig =
        serde_json::from_str(&text).map_err(|e| TenantError::BadDestination {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    d.validate().map_err(|e| TenantError::BadDestination {
        path,
        reason: e.to_string(),
    })?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trip_and_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let public = init(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(load(dir.path()).unwrap().public(), public);
        assert!(matches!(init(dir.path()), Err(TenantError::Exists(_))));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(TenantError::Permissions { .. })
        ));
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(load(empty.path()), Err(TenantError::NoKey(_))));
    }
}
