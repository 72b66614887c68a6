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
    /// As an ordinary process: TLS trusts only the simulator's CA.
    Simulator {
        /// PEM file of the simulator CA.
        ca: PathBuf,
    },
}

/// Enclave settings.
#[derive(Debug, Clone)]
pub struct EnclaveConfig {
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
}

impl EnclaveConfig {
    /// Validates raw settings. Simulator mode requires a CA; production forbids one, and
    /// production endpoints must be vsock.
    pub fn new(
        control: &str,
        relay: &str,
        simulator: bool,
        sim_ca: Option<PathBuf>,
    ) -> Result<Self, EnclaveError> {
        let control: Endpoint = control
            .parse()
            .map_err(|e| EnclaveError::Config(format!("--control: {e}")))?;
        let relay: Endpoint = relay
            .parse()
            .map_err(|e| EnclaveError::Config(format!("--relay: {e}")))?;
        let mode = match (simulator, sim_ca) {
            (true, Some(ca)) => Mode::Simulator { ca },
            (true, None) => {
                return Err(EnclaveError::Config(
                    "--simulator needs --sim-ca FILE: the simulator's CA is the only TLS root it trusts".into(),
                ));
            }
            (false, Some(_)) => {
                return Err(EnclaveError::Config(
                    "--sim-ca is only allowed with --simulator; production trusts the web PKI"
                        .into(),
                ));
            }
            (false, None) => Mode::Production,
        };
        if matches!(mode, Mode::Production) && (control.is_unix() || relay.is_unix()) {
            return Err(EnclaveError::Config(
                "unix: endpoints are for --simulator; production uses vsock".into(),
            ));
        }
        Ok(Self {
            control,
            relay,
            mode,
            tunnel_timeout: Duration::from_secs(10),
            max_parent_connections: 4,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_settings_are_consistent() {
        assert!(EnclaveConfig::new("vsock:any:5000", "vsock:3:8000", false, None).is_ok());
        let e = EnclaveConfig::new("unix:/a", "unix:/b", true, None).unwrap_err();
        assert!(e.to_string().contains("--sim-ca"));
        let e = EnclaveConfig::new("vsock:any:5000", "vsock:3:8000", false, Some("/ca".into()))
            .unwrap_err();
        assert!(e.to_string().contains("only allowed with --simulator"));
        let e = EnclaveConfig::new("unix:/a", "vsock:3:8000", false, None).unwrap_err();
        assert!(e.to_string().contains("production uses vsock"));
        let e = EnclaveConfig::new("tcp:x", "vsock:3:8000", false, None).unwrap_err();
        assert!(e.to_string().contains("--control"));
    }
}
