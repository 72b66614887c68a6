//! Validated enclave settings.
//!
//! In production the enclave's command line is part of the measured image, so these values are
//! covered by PCR0: the parent cannot change what the enclave trusts.

use crate::EnclaveError;
use nitrosync_shared::Endpoint;
use std::path::PathBuf;
use std::time::Duration;

/// How the enclave runs.
#[derive(Debug, Clone)]
pub enum Mode {
    /// On Nitro hardware: web PKI roots for TLS.
    Production,
    /// As an ordinary process: TLS trusts only the simulator's CA, and attestation documents
    /// come from a simulated NSM whose root lives in `nsm_dir`.
    Simulator {
        /// PEM file of the simulator CA.
        ca: PathBuf,
        /// Directory of the simulated NSM's root (created on first start).
        nsm_dir: PathBuf,
    },
}

/// Where the enclave's keys come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityMode {
    /// Sealed under the operator's KMS key: the enclave waits, locked, for the parent's
    /// `Unseal` request, and then every enclave of the image has the same identity across
    /// restarts. The default.
    Kms,
    /// Made at start, never sealed: a restart means new keys, new SAML metadata, and bundles
    /// sealed to the old key no longer open. For tests and trials.
    Ephemeral,
}

/// Enclave settings.
#[derive(Debug, Clone)]
pub struct EnclaveConfig {
    /// Where the keys come from.
    pub identity: IdentityMode,
    /// Where the enclave listens for the parent's control connection.
    pub control: Endpoint,
    /// The parent's relay.
    pub relay: Endpoint,
    /// Production or simulator.
    pub mode: Mode,
    /// Time allowed to open a tunnel and get the relay's answer.
    pub tunnel_timeout: Duration,
    /// Parent connections served at once.
    pub max_parent_connections: usize,
    /// Requests in flight, time limits and idle rules of control connections.
    pub control_limits: crate::control::ControlLimits,
    /// The SAML identity provider's entity id (the Issuer of every assertion).
    pub saml_entity_id: String,
    /// Attempts per AWS call, the first included (full-jitter exponential backoff between).
    pub aws_max_attempts: u32,
    /// First retry backoff ceiling; doubles per attempt up to 5 s.
    pub aws_initial_backoff: Duration,
    /// Write calls a second per (AWS account, region, quota group); AWS allows 50.
    pub writes_per_second: u32,
    /// `DescribeSecret` calls a second per (AWS account, region).
    pub describes_per_second: u32,
    /// Simulator only: skew the host clock by this many milliseconds.
    pub sim_clock_skew_ms: i64,
}

/// Default SAML entity id.
pub const DEFAULT_SAML_ENTITY_ID: &str = "https://saml.nitrosync.invalid/enclave";

impl EnclaveConfig {
    /// Validates raw settings. Simulator mode requires a CA; production forbids one, and
    /// production endpoints must be vsock.
    pub fn new(
        control: &str,
        relay: &str,
        simulator: bool,
        sim_ca: Option<PathBuf>,
        sim_nsm_dir: Option<PathBuf>,
    ) -> Result<Self, EnclaveError> {
        let control: Endpoint = control
            .parse()
            .map_err(|e| EnclaveError::Config(format!("--control: {e}")))?;
        let relay: Endpoint = relay
            .parse()
            .map_err(|e| EnclaveError::Config(format!("--relay: {e}")))?;
        let mode = match (simulator, sim_ca, sim_nsm_dir) {
            (true, Some(ca), Some(nsm_dir)) => Mode::Simulator { ca, nsm_dir },
            (true, None, _) => {
                return Err(EnclaveError::Config(
                    "--simulator needs --sim-ca FILE: the simulator's CA is the only TLS root it trusts".into(),
                ));
            }
            (true, _, None) => {
                return Err(EnclaveError::Config(
                    "--simulator needs --sim-nsm-dir DIR for the simulated NSM's root".into(),
                ));
            }
            (false, Some(_), _) | (false, _, Some(_)) => {
                return Err(EnclaveError::Config(
                    "--sim-ca and --sim-nsm-dir are only allowed with --simulator; production trusts the web PKI and /dev/nsm".into(),
                ));
            }
            (false, None, None) => Mode::Production,
        };
        if matches!(mode, Mode::Production) && (control.is_unix() || relay.is_unix()) {
            return Err(EnclaveError::Config(
                "unix: endpoints are for --simulator; production uses vsock".into(),
            ));
        }
        Ok(Self {
            identity: IdentityMode::Kms,
            control,
            relay,
            mode,
            tunnel_timeout: Duration::from_secs(10),
            max_parent_connections: 4,
            control_limits: crate::control::ControlLimits::default(),
            saml_entity_id: DEFAULT_SAML_ENTITY_ID.to_owned(),
            aws_max_attempts: 4,
            aws_initial_backoff: Duration::from_millis(100),
            writes_per_second: crate::sync::pacing::DEFAULT_WRITES_PER_SECOND,
            describes_per_second: crate::sync::pacing::DEFAULT_DESCRIBES_PER_SECOND,
            sim_clock_skew_ms: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_settings_are_consistent() {
        assert!(EnclaveConfig::new("vsock:any:5000", "vsock:3:8000", false, None, None).is_ok());
        assert!(
            EnclaveConfig::new(
                "unix:/a",
                "unix:/b",
                true,
                Some("/ca".into()),
                Some("/n".into())
            )
            .is_ok()
        );
        let e =
            EnclaveConfig::new("unix:/a", "unix:/b", true, None, Some("/n".into())).unwrap_err();
        assert!(e.to_string().contains("--sim-ca"));
        let e =
            EnclaveConfig::new("unix:/a", "unix:/b", true, Some("/ca".into()), None).unwrap_err();
        assert!(e.to_string().contains("--sim-nsm-dir"));
        let e = EnclaveConfig::new(
            "vsock:any:5000",
            "vsock:3:8000",
            false,
            Some("/ca".into()),
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("only allowed with --simulator"));
        let e = EnclaveConfig::new("unix:/a", "vsock:3:8000", false, None, None).unwrap_err();
        assert!(e.to_string().contains("production uses vsock"));
        let e = EnclaveConfig::new("tcp:x", "vsock:3:8000", false, None, None).unwrap_err();
        assert!(e.to_string().contains("--control"));
    }
}
