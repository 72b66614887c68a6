//! Integration tests: real AWS documents, mutations, the simulated NSM, robustness, the SAML
//! metadata binding, EIF measurement, and the CLI.

#[cfg(feature = "cli")]
mod cli;
mod eif;
mod fixtures;
#[cfg(feature = "sim")]
mod metadata;
mod mutations;
mod robustness;
#[cfg(feature = "sim")]
mod simulated;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use nitrosync_attestation::{TrustRoot, inspect};

/// The AWS-signed fixtures other than the debug-mode one.
pub const AWS_PRODUCTION: [&str; 5] = [
    "aws-2024-12-13-ap-south-1.cbor",
    "aws-2025-04-29-pcr16.cbor",
    "aws-2024-08-07.cbor",
    "aws-2022-10-13-signed-eif.cbor",
    "aws-2026-02-02-indefinite-map.cbor",
];
pub const AWS_DEBUG: &str = "aws-2022-10-12-debug.cbor";
pub const MOCK: &str = "mock-root-signed.cbor";
/// The fixture most mutation tests start from.
pub const BASE: &str = "aws-2024-12-13-ap-south-1.cbor";

pub fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

pub fn data(name: &str) -> Vec<u8> {
    std::fs::read(data_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The document's own timestamp, a time inside its chain's window.
pub fn own_time(doc: &[u8]) -> SystemTime {
    inspect(doc).expect("fixture parses").timestamp()
}

pub fn aws_root() -> TrustRoot {
    TrustRoot::aws_nitro_g1()
}

pub fn mock_root() -> TrustRoot {
    TrustRoot::from_der(data("mock-root.der")).expect("mock root")
}

/// 2026-11-21T00:00:00Z, after every fixture's chain expired.
pub fn expired_time() -> SystemTime {
    humantime::parse_rfc3339("2026-11-21T00:00:00Z").unwrap()
}

pub fn minutes(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

/// A fresh, empty directory under Cargo's scratch space for integration tests.
pub fn scratch_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
