//! Configuration of `nitrosync-parent`: a TOML file, then environment variables, then flags.
//!
//! Two steps, as everywhere in nitrosync: [`RawConfig`] mirrors the file with
//! `deny_unknown_fields`, so a misspelt key is an error naming it, and [`ParentConfig`] is the
//! validated result the daemon runs on.
//!
//! Without a config file (`--config`, `NITROSYNC_CONFIG`) nothing falls back to a default path:
//! the store and the admin socket must come from flags or the environment, or the daemon exits 2
//! saying so, so that running it by hand on a developer's machine creates no `/var/lib/nitrosync`
//! or `/run/nitrosync`. With a config file, the paths below are the defaults of keys left out.
//!
//! ```toml
//! [enclave]
//! control = "vsock:16:5000"       # where the parent dials the enclave's control port
//! request_timeout_ms = 30000      # how long one control request may take (but a sync)
//! sync_timeout_ms = 300000        # how long one sync may take (STS, Describe, writes, retries)
//! max_backoff_ms = 5000           # reconnect backoff ceiling
//!
//! [relay]
//! listen = "vsock:any:8000"       # where the enclave's tunnels arrive
//! regions = ["us-east-1"]         # allows sts., secretsmanager., kms.<region>.amazonaws.com:443
//! allow = []                      # extra "host:port" entries, exact match
//! max_connections = 4096          # tunnels open at once (2 fds each)
//! max_queued = 8192               # more tunnels accepted, waiting unread for a slot (1 fd each)
//! buffer_bytes = 131072           # largest copy buffer per direction per tunnel (starts at 4 KiB)
//! preface_timeout_ms = 5000       # time for the enclave to send its Connect frame
//! connect_timeout_ms = 10000      # DNS resolution plus TCP connect
//! idle_timeout_ms = 300000        # a tunnel with no bytes either way for this long is closed
//! # simulator_upstream = "127.0.0.1:4566"  # simulator only: dial allowed AWS hosts here
//!
//! [admin]
//! socket = "/run/nitrosync/admin.sock"
//!
//! [log]
//! format = "text"                 # or "json"
//!
//! [store]
//! path = "/var/lib/nitrosync/parent.db"   # SQLite: destinations, sealed bundles, history
//!
//! [metrics]
//! # listen = "127.0.0.1:9464"    # Prometheus /metrics; off unless set
//!
//! [tenant_api]
//! # listen = "0.0.0.0:8443"      # the tenant API over TLS; off unless set
//! # cert = "/etc/nitrosync/tenant-api.crt"   # PEM certificate chain
//! # key = "/etc/nitrosync/tenant-api.key"    # PEM private key
//!
//! [identity]
//! # kms_key_arn = "arn:aws:kms:us-east-1:111122223333:key/…"  # seals the enclave's keys; its
//! #   region must be among [relay] regions. Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
//! #   and AWS_SESSION_TOKEN, else the EC2 instance role (IMDSv2).
//!
//! [scheduler]
//! writes_per_second = 40          # per (AWS account, region), across all destinations
//! max_in_flight = 64              # syncs in flight at once
//! retry_base_ms = 1000            # full-jitter backoff: uniform in [0, min(cap, base * 2^attempt)]
//! retry_cap_ms = 300000
//! ```
//!
//! ## Tunnels and file descriptors
//!
//! The relay holds at most `max_connections + max_queued` tunnels: 12,288 with the defaults, so
//! 10,000 concurrent tunnels get through (4,096 open, the rest waiting for a slot in arrival
//! order), and past that the kernel's listen backlog (`net.core.somaxconn`, 4,096) holds more
//! before a connect fails. Waiting tunnels are not read or dialled, so their preface timeout
//! starts when they get a slot. An open tunnel holds two file descriptors, a waiting one one, so
//! the defaults need 2 × 4,096 + 8,192 = 16,384 for the relay, plus [`FD_MARGIN`] (1,024) for the
//! store, the admin and tenant APIs and metrics: 17,408 ([`ParentConfig::fds_needed`]). At start
//! the daemon raises its soft `RLIMIT_NOFILE` to that, up to the hard limit, and logs a warning
//! naming both and the remedy when the hard limit is lower (the systemd unit's
//! `LimitNOFILE=65536` covers up to `max_connections` 28,000 with the default queue). Raising
//! `max_connections` raises the fds needed by two each and the memory by a copy buffer pair each
//! (4 KiB per direction until a tunnel carries bulk data, at most `buffer_bytes`).

use crate::ParentError;
use nitrosync_relay::{RelayPolicy, RelaySettings};
use nitrosync_shared::Endpoint;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file as written. Every section and key is optional; unknown keys are errors.
/// [`RawConfig::default`] is "no config file": then the store and the admin socket have no
/// default and must be given as overrides.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The file this was read from; `None` when there is no config file. Not a key.
    #[serde(skip)]
    pub file: Option<PathBuf>,
    /// `[enclave]`
    #[serde(default)]
    pub enclave: RawEnclave,
    /// `[relay]`
    #[serde(default)]
    pub relay: RawRelay,
    /// `[admin]`
    #[serde(default)]
    pub admin: RawAdmin,
    /// `[log]`
    #[serde(default)]
    pub log: RawLog,
    /// `[store]`
    #[serde(default)]
    pub store: RawStore,
    /// `[scheduler]`
    #[serde(default)]
    pub scheduler: RawScheduler,
    /// `[metrics]`
    #[serde(default)]
    pub metrics: RawMetrics,
    /// `[tenant_api]`
    #[serde(default)]
    pub tenant_api: RawTenantApi,
    /// `[identity]`
    #[serde(default)]
    pub identity: RawIdentity,
}

/// `[identity]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawIdentity {
    pub kms_key_arn: Option<String>,
}

/// `[tenant_api]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawTenantApi {
    pub listen: Option<String>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// `[metrics]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawMetrics {
    pub listen: Option<String>,
}

/// `[store]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawStore {
    pub path: Option<PathBuf>,
}

/// `[scheduler]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawScheduler {
    pub writes_per_second: Option<u32>,
    pub max_in_flight: Option<usize>,
    pub retry_base_ms: Option<u64>,
    pub retry_cap_ms: Option<u64>,
}

/// `[enclave]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawEnclave {
    pub control: Option<String>,
    pub request_timeout_ms: Option<u64>,
    pub sync_timeout_ms: Option<u64>,
    pub max_backoff_ms: Option<u64>,
}

/// `[relay]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawRelay {
    pub listen: Option<String>,
    pub regions: Option<Vec<String>>,
    pub allow: Option<Vec<String>>,
    pub max_connections: Option<usize>,
    pub max_queued: Option<usize>,
    pub buffer_bytes: Option<usize>,
    pub preface_timeout_ms: Option<u64>,
    pub connect_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub simulator_upstream: Option<String>,
}

/// `[admin]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawAdmin {
    pub socket: Option<PathBuf>,
}

/// `[log]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawLog {
    pub format: Option<String>,
}

/// Values given on the command line or in the environment; they win over the file.
#[derive(Debug, Default, Clone)]
#[allow(missing_docs)]
pub struct Overrides {
    pub control: Option<String>,
    pub relay_listen: Option<String>,
    pub admin_socket: Option<PathBuf>,
    pub regions: Vec<String>,
    pub allow: Vec<String>,
    pub simulator_upstream: Option<String>,
    pub log_format: Option<String>,
    pub store: Option<PathBuf>,
    pub metrics_listen: Option<String>,
    pub tenant_api_listen: Option<String>,
    pub tenant_api_cert: Option<PathBuf>,
    pub tenant_api_key: Option<PathBuf>,
    pub identity_kms_key: Option<String>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "log format must be \"text\" or \"json\", not {other:?}"
            )),
        }
    }
}

/// Validated daemon configuration.
#[derive(Debug, Clone)]
pub struct ParentConfig {
    /// The enclave's control endpoint.
    pub control: Endpoint,
    /// Timeout of one control request other than a sync.
    pub request_timeout: Duration,
    /// Timeout of one sync request.
    pub sync_timeout: Duration,
    /// Reconnect backoff ceiling.
    pub max_backoff: Duration,
    /// The relay.
    pub relay: RelaySettings,
    /// The admin socket path.
    pub admin_socket: PathBuf,
    /// Log format.
    pub log_format: LogFormat,
    /// The SQLite database.
    pub store_path: PathBuf,
    /// The scheduler.
    pub scheduler: SchedulerSettings,
    /// Where Prometheus metrics are served (off when absent).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The tenant API over TLS (off when absent).
    pub tenant_api: Option<TenantApiSettings>,
    /// The KMS key that seals the enclave's identity; `None` for an enclave started with
    /// `--identity ephemeral`.
    pub identity_kms_key: Option<String>,
}

/// The region of a KMS key ARN (`arn:<partition>:kms:<region>:<account>:key/<id>`), or why it
/// is not one. The enclave checks the key itself; this is for an early, clear error.
pub fn kms_key_region(arn: &str) -> Result<&str, String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts[..] {
        ["arn", _, "kms", region, account, resource]
            if !region.is_empty()
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource.starts_with("key/")
                && resource.len() > 4 =>
        {
            Ok(region)
        }
        _ => Err(format!(
            "{arn:?} is not a KMS key ARN: give arn:aws:kms:<region>:<account>:key/<key id> (an alias could be re-pointed, so it is not accepted)"
        )),
    }
}

/// Where and with which certificate the tenant API is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantApiSettings {
    /// The TCP address.
    pub listen: std::net::SocketAddr,
    /// The PEM certificate chain (leaf first).
    pub cert: PathBuf,
    /// The PEM private key.
    pub key: PathBuf,
}

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// Writes per second per (account, region).
    pub writes_per_second: u32,
    /// Syncs in flight at once.
    pub max_in_flight: usize,
    /// First retry delay ceiling; doubles per attempt.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_cap: Duration,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            writes_per_second: 40,
            max_in_flight: 64,
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(300),
        }
    }
}

/// File descriptors the daemon keeps for itself beyond the relay's: the store, the admin API (at
/// most 256 connections), the tenant API, metrics (at most 64), the control connection, logs.
pub const FD_MARGIN: u64 = 1024;

impl ParentConfig {
    /// The file descriptors these settings may need at once: the relay's
    /// ([`RelaySettings::fds_needed`]) plus [`FD_MARGIN`].
    pub fn fds_needed(&self) -> u64 {
        self.relay.fds_needed().saturating_add(FD_MARGIN)
    }
}

/// Default store path, for a config file without `[store] path`.
pub const DEFAULT_STORE_PATH: &str = "/var/lib/nitrosync/parent.db";

/// Default admin socket path, for a config file without `[admin] socket`.
pub const DEFAULT_ADMIN_SOCKET: &str = "/run/nitrosync/admin.sock";

/// The config file the systemd unit (`dist/nitrosync-parent.service`) passes with `--config`.
pub const SYSTEM_CONFIG_PATH: &str = "/etc/nitrosync/parent.toml";

/// The one-line error for a daemon started with no config file and without the store or the
/// admin socket (`missing`: each as its flag and environment variable), saying what to give.
fn unconfigured(missing: &[String]) -> ParentError {
    ParentError::Unconfigured(format!(
        "not configured: give a config file with --config FILE or {config} (the systemd unit \
         passes {SYSTEM_CONFIG_PATH}; dist/parent.toml has every key), or give {missing}; \
         without a config file no default path is used",
        config = crate::env::CONFIG,
        missing = missing.join(" and "),
    ))
}

impl RawConfig {
    /// Parses TOML text. `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<RawConfig, ParentError> {
        let mut raw: RawConfig =
            toml::from_str(text).map_err(|source| ParentError::ConfigSyntax {
                path: origin.to_owned(),
                source,
            })?;
        raw.file = Some(origin.to_owned());
        Ok(raw)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<RawConfig, ParentError> {
        let text = std::fs::read_to_string(path).map_err(|source| ParentError::ConfigRead {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Applies overrides and validates. Without a config file ([`RawConfig::file`] is `None`),
    /// the store and the admin socket must be among the overrides
    /// ([`ParentError::Unconfigured`], checked after every other setting).
    pub fn resolve(self, o: Overrides) -> Result<ParentConfig, ParentError> {
        let have_file = self.file.is_some();
        let control = o
            .control
            .or(self.enclave.control)
            .unwrap_or_else(|| "vsock:16:5000".to_owned());
        let control: Endpoint = control
            .parse()
            .map_err(|e| ParentError::unparsable("enclave.control", e))?;
        let listen = o
            .relay_listen
            .or(self.relay.listen)
            .unwrap_or_else(|| format!("vsock:any:{}", nitrosync_shared::RELAY_VSOCK_PORT));
        let listen: Endpoint = listen
            .parse()
            .map_err(|e| ParentError::unparsable("relay.listen", e))?;

        let mut regions = self.relay.regions.unwrap_or_default();
        regions.extend(o.regions);
        let mut allow = self.relay.allow.unwrap_or_default();
        allow.extend(o.allow);
        let upstream = o.simulator_upstream.or(self.relay.simulator_upstream);
        let identity_kms_key = o.identity_kms_key.or(self.identity.kms_key_arn);
        if let Some(arn) = &identity_kms_key {
            let region =
                kms_key_region(arn).map_err(|e| ParentError::setting("identity.kms_key_arn", e))?;
            if !regions.iter().any(|r| r == region) {
                return Err(ParentError::setting(
                    "identity.kms_key_arn",
                    format!(
                        "the key is in {region}, which relay.regions (--region) does not allow: the enclave reaches kms.{region}.amazonaws.com through the relay"
                    ),
                ));
            }
        }
        let policy = RelayPolicy::new(&regions, &allow, upstream.as_deref())
            .map_err(|e| ParentError::unparsable("relay", e))?;

        let max_connections = self.relay.max_connections.unwrap_or(4096);
        if !(1..=1_000_000).contains(&max_connections) {
            return Err(ParentError::setting(
                "relay.max_connections",
                "must be 1 to 1000000",
            ));
        }
        let max_queued = self.relay.max_queued.unwrap_or(8192);
        if max_queued > 1_000_000 {
            return Err(ParentError::setting(
                "relay.max_queued",
                "must be 0 to 1000000",
            ));
        }
        let buffer_bytes = self.relay.buffer_bytes.unwrap_or(128 * 1024);
        if !(4096..=16 * 1024 * 1024).contains(&buffer_bytes) {
            return Err(ParentError::setting(
                "relay.buffer_bytes",
                "must be 4096 to 16777216",
            ));
        }
        let ms =
            |key: &'static str, v: Option<u64>, default: u64| -> Result<Duration, ParentError> {
                match v.unwrap_or(default) {
                    0 => Err(ParentError::setting(key, "must be greater than 0")),
                    n => Ok(Duration::from_millis(n)),
                }
            };
        let log_format = o
            .log_format
            .or(self.log.format)
            .unwrap_or_else(|| "text".to_owned())
            .parse::<LogFormat>()
            .map_err(|e| ParentError::InvalidSetting {
                key: "log.format".into(),
                reason: e.into(),
                source: None,
            })?;
        let tenant_api = match (
            o.tenant_api_listen.or(self.tenant_api.listen),
            o.tenant_api_cert.or(self.tenant_api.cert),
            o.tenant_api_key.or(self.tenant_api.key),
        ) {
            (None, None, None) => None,
            (Some(listen), Some(cert), Some(key)) => Some(TenantApiSettings {
                listen: listen
                    .parse()
                    .map_err(|e| ParentError::unparsable("tenant_api.listen", e))?,
                cert,
                key,
            }),
            (None, _, _) => {
                return Err(ParentError::setting(
                    "tenant_api.listen",
                    "is required when tenant_api.cert or tenant_api.key is set",
                ));
            }
            (Some(_), None, _) => {
                return Err(ParentError::setting(
                    "tenant_api.cert",
                    "is required to serve the tenant API (a PEM certificate chain)",
                ));
            }
            (Some(_), Some(_), None) => {
                return Err(ParentError::setting(
                    "tenant_api.key",
                    "is required to serve the tenant API (a PEM private key)",
                ));
            }
        };
        let admin_socket = o.admin_socket.or(self.admin.socket);
        let store_path = o.store.or(self.store.path);
        if !have_file {
            let mut missing = Vec::new();
            if store_path.is_none() {
                missing.push(format!("--store PATH ({})", crate::env::STORE));
            }
            if admin_socket.is_none() {
                missing.push(format!(
                    "--admin-socket PATH ({})",
                    crate::env::ADMIN_SOCKET
                ));
            }
            if !missing.is_empty() {
                return Err(unconfigured(&missing));
            }
        }
        Ok(ParentConfig {
            tenant_api,
            identity_kms_key,
            control,
            request_timeout: ms(
                "enclave.request_timeout_ms",
                self.enclave.request_timeout_ms,
                30_000,
            )?,
            sync_timeout: ms(
                "enclave.sync_timeout_ms",
                self.enclave.sync_timeout_ms,
                300_000,
            )?,
            max_backoff: ms("enclave.max_backoff_ms", self.enclave.max_backoff_ms, 5_000)?,
            relay: RelaySettings {
                listen,
                policy,
                max_connections,
                max_queued,
                buffer_bytes,
                preface_timeout: ms(
                    "relay.preface_timeout_ms",
                    self.relay.preface_timeout_ms,
                    5_000,
                )?,
                connect_timeout: ms(
                    "relay.connect_timeout_ms",
                    self.relay.connect_timeout_ms,
                    10_000,
                )?,
                idle_timeout: ms("relay.idle_timeout_ms", self.relay.idle_timeout_ms, 300_000)?,
            },
            admin_socket: admin_socket.unwrap_or_else(|| DEFAULT_ADMIN_SOCKET.into()),
            log_format,
            metrics_listen: o
                .metrics_listen
                .or(self.metrics.listen)
                .map(|a| {
                    a.parse()
                        .map_err(|e| ParentError::unparsable("metrics.listen", e))
                })
                .transpose()?,
            store_path: store_path.unwrap_or_else(|| DEFAULT_STORE_PATH.into()),
            scheduler: SchedulerSettings {
                writes_per_second: match self.scheduler.writes_per_second.unwrap_or(40) {
                    0 => {
                        return Err(ParentError::setting(
                            "scheduler.writes_per_second",
                            "must be greater than 0",
                        ));
                    }
                    n => n,
                },
                max_in_flight: match self.scheduler.max_in_flight.unwrap_or(64) {
                    0 => {
                        return Err(ParentError::setting(
                            "scheduler.max_in_flight",
                            "must be greater than 0",
                        ));
                    }
                    n => n,
                },
                retry_base: ms(
                    "scheduler.retry_base_ms",
                    self.scheduler.retry_base_ms,
                    1_000,
                )?,
                retry_cap: ms(
                    "scheduler.retry_cap_ms",
                    self.scheduler.retry_cap_ms,
                    300_000,
                )?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named() {
        let err = RawConfig::parse("[relay]\nregion = [\"us-east-1\"]\n", Path::new("p.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("region"), "{err}");
        assert!(err.contains("p.toml"), "{err}");
        let err = RawConfig::parse("[relays]\n", Path::new("p.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("relays"), "{err}");
    }

    #[test]
    fn flags_win_over_file() {
        let raw = RawConfig::parse(
            "[enclave]\ncontrol = \"unix:/a\"\n[relay]\nregions = [\"eu-west-1\"]\n",
            Path::new("p.toml"),
        )
        .unwrap();
        let cfg = raw
            .resolve(Overrides {
                control: Some("unix:/b".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(cfg.control, "unix:/b".parse().unwrap());
        assert!(cfg.relay.policy.allows("sts.eu-west-1.amazonaws.com", 443));
        assert_eq!(cfg.relay.buffer_bytes, 131_072);
    }

    /// The defaults hold 10,000 concurrent tunnels (open or waiting) within the fds they ask
    /// for: two per open tunnel, one per waiting one, and the margin.
    #[test]
    fn default_relay_limits_hold_ten_thousand_tunnels() {
        let cfg = RawConfig::parse("", Path::new("p.toml"))
            .unwrap()
            .resolve(Overrides::default())
            .unwrap();
        assert_eq!(cfg.relay.max_connections, 4096);
        assert_eq!(cfg.relay.max_queued, 8192);
        assert!(cfg.relay.max_connections + cfg.relay.max_queued >= 10_000);
        assert_eq!(cfg.fds_needed(), 2 * 4096 + 8192 + FD_MARGIN);
        let cfg = RawConfig::parse(
            "[relay]\nmax_connections = 10\nmax_queued = 0\n",
            Path::new("p.toml"),
        )
        .unwrap()
        .resolve(Overrides::default())
        .unwrap();
        assert_eq!(cfg.fds_needed(), 20 + FD_MARGIN);
    }

    /// No config file: the store and the admin socket must be given, and the error names what
    /// is missing; a config file (even an empty one) keeps the default paths.
    #[test]
    fn without_a_file_the_paths_are_required() {
        let err = RawConfig::default()
            .resolve(Overrides::default())
            .unwrap_err();
        assert!(matches!(err, ParentError::Unconfigured(_)), "{err:?}");
        let msg = err.to_string();
        for want in [
            "--config",
            crate::env::CONFIG,
            SYSTEM_CONFIG_PATH,
            "--store",
            crate::env::STORE,
            "--admin-socket",
            crate::env::ADMIN_SOCKET,
        ] {
            assert!(msg.contains(want), "{want}: {msg}");
        }
        assert!(!msg.contains('\n'), "{msg}");

        let err = RawConfig::default()
            .resolve(Overrides {
                store: Some("/x/parent.db".into()),
                ..Default::default()
            })
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--admin-socket") && !err.contains("--store PATH"),
            "{err}"
        );

        let cfg = RawConfig::default()
            .resolve(Overrides {
                store: Some("/x/parent.db".into()),
                admin_socket: Some("/x/admin.sock".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(cfg.store_path, Path::new("/x/parent.db"));
        assert_eq!(cfg.admin_socket, Path::new("/x/admin.sock"));

        let cfg = RawConfig::parse("", Path::new("p.toml"))
            .unwrap()
            .resolve(Overrides::default())
            .unwrap();
        assert_eq!(cfg.store_path, Path::new(DEFAULT_STORE_PATH));
        assert_eq!(cfg.admin_socket, Path::new(DEFAULT_ADMIN_SOCKET));
    }

    /// Another setting's error is reported first: it is what the user typed.
    #[test]
    fn setting_errors_come_before_unconfigured() {
        let err = RawConfig::default()
            .resolve(Overrides {
                regions: vec!["moon-1".into()],
                ..Default::default()
            })
            .unwrap_err();
        assert!(matches!(err, ParentError::InvalidSetting { .. }), "{err:?}");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (toml, key) in [
            ("[relay]\nmax_connections = 0\n", "relay.max_connections"),
            ("[relay]\nmax_queued = 1000001\n", "relay.max_queued"),
            ("[relay]\nlisten = \"tcp:1\"\n", "relay.listen"),
            ("[relay]\nidle_timeout_ms = 0\n", "relay.idle_timeout_ms"),
            ("[relay]\nregions = [\"Mars-1\"]\n", "region"),
            ("[log]\nformat = \"xml\"\n", "log.format"),
            ("[tenant_api]\ncert = \"c.pem\"\n", "tenant_api.listen"),
            (
                "[tenant_api]\nlisten = \"127.0.0.1:1\"\n",
                "tenant_api.cert",
            ),
            (
                "[tenant_api]\nlisten = \"127.0.0.1:1\"\ncert = \"c\"\n",
                "tenant_api.key",
            ),
            (
                "[tenant_api]\nlisten = \"nowhere\"\ncert = \"c\"\nkey = \"k\"\n",
                "tenant_api.listen",
            ),
        ] {
            let err = RawConfig::parse(toml, Path::new("p.toml"))
                .unwrap()
                .resolve(Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
    }
}

#[cfg(test)]
mod dist_tests {
    use super::*;

    /// The example configuration shipped in dist/ parses and validates.
    #[test]
    fn shipped_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/parent.toml");
        let cfg = RawConfig::load(&path)
            .unwrap()
            .resolve(Overrides::default())
            .unwrap();
        assert_eq!(cfg.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(cfg.scheduler.writes_per_second, 40);
        assert_eq!(cfg.log_format, LogFormat::Json);
        assert_eq!(cfg.relay.max_connections, 4096);
        assert_eq!(cfg.relay.max_queued, 8192);
    }
}
