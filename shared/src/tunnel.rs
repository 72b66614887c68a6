//! The outbound tunnel preface: the enclave's one `Connect` frame and the relay's one reply.
//!
//! After a [`ConnectReply::Connected`] frame the connection carries raw bytes (TLS records from
//! the enclave) both ways; no more frames are exchanged.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest host name accepted in a `Connect` (RFC 1035's limit on a name's text form).
pub const MAX_HOST_LEN: usize = 253;

/// The enclave's request to open a TCP connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connect {
    /// A DNS name or an IP literal (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// A point-in-time copy of the relay's counters, as the operator's API reports them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RelayStatsSnapshot {
    /// Connections accepted from the enclave.
    pub accepted: u64,
    /// Tunnels open now (holding one of the relay's `max_connections` slots).
    pub active: u64,
    /// Tunnels accepted past `max_connections`, waiting unread for a slot. Absent from the
    /// JSON of a daemon older than this field, hence the default.
    #[serde(default)]
    pub queued: u64,
    /// Tunnels that reached `Connected`.
    pub connected: u64,
    /// Bytes copied from the enclave to upstream.
    pub bytes_to_upstream: u64,
    /// Bytes copied from upstream to the enclave.
    pub bytes_to_enclave: u64,
    /// Refusals by reason.
    pub refused: std::collections::BTreeMap<String, u64>,
}

/// The relay's answer to a [`Connect`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectReply {
    /// The TCP connection is open; raw bytes follow.
    Connected,
    /// No connection was made. The relay closes the stream after this frame.
    Refused {
        /// The class of refusal.
        reason: RefusalReason,
        /// A human-readable explanation (never contains payload bytes).
        detail: String,
    },
}

/// Why the relay refused a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RefusalReason {
    /// The preface was not a well-formed `Connect`.
    BadPreface,
    /// The host and port are not in the relay's allowlist.
    NotAllowed,
    /// The host name did not resolve.
    ResolveFailed,
    /// Every resolved address refused or failed the TCP connection.
    DialFailed,
    /// The preface, the resolution or the dial took too long.
    Timeout,
}

impl RefusalReason {
    /// Every reason, for counters.
    pub const ALL: [RefusalReason; 5] = [
        RefusalReason::BadPreface,
        RefusalReason::NotAllowed,
        RefusalReason::ResolveFailed,
        RefusalReason::DialFailed,
        RefusalReason::Timeout,
    ];

    /// A stable snake_case name for metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::BadPreface => "bad_preface",
            RefusalReason::NotAllowed => "not_allowed",
            RefusalReason::ResolveFailed => "resolve_failed",
            RefusalReason::DialFailed => "dial_failed",
            RefusalReason::Timeout => "timeout",
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a `Connect` host is not acceptable on its face.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// Empty or longer than [`MAX_HOST_LEN`].
    #[error("host must be 1 to {MAX_HOST_LEN} characters")]
    Length,
    /// A character outside letters, digits, '-', '.', or ':' (IPv6).
    #[error("host contains a character that is not allowed in a DNS name or IP address")]
    Character,
    /// An empty label, or a label that starts or ends with '-'.
    #[error("host has an empty label or a label starting or ending with '-'")]
    Label,
    /// Port 0 cannot be dialled.
    #[error("port 0 is not a valid destination")]
    Port,
}

impl Connect {
    /// Checks the request's syntax and returns the host in canonical form: lower case, no
    /// trailing dot. Policy (what is allowed) is the relay's business; this only rejects what
    /// could never be a host name or address.
    pub fn canonical_host(&self) -> Result<String, HostError> {
        if self.port == 0 {
            return Err(HostError::Port);
        }
        let host = self.host.strip_suffix('.').unwrap_or(&self.host);
        if host.is_empty() || host.len() > MAX_HOST_LEN {
            return Err(HostError::Length);
        }
        if host.parse::<std::net::IpAddr>().is_ok() {
            return Ok(host.to_ascii_lowercase());
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(HostError::Character);
        }
        if host
            .split('.')
            .any(|l| l.is_empty() || l.len() > 63 || l.starts_with('-') || l.ends_with('-'))
        {
            return Err(HostError::Label);
        }
        Ok(host.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(host: &str, port: u16) -> Connect {
        Connect {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn canonical_hosts() {
        assert_eq!(
            c("STS.us-east-1.AmazonAWS.com.", 443)
                .canonical_host()
                .unwrap(),
            "sts.us-east-1.amazonaws.com"
        );
        assert_eq!(c("127.0.0.1", 8443).canonical_host().unwrap(), "127.0.0.1");
        assert_eq!(c("::1", 8443).canonical_host().unwrap(), "::1");
    }

    #[test]
    fn rejects_nonsense() {
        assert_eq!(c("a b", 1).canonical_host(), Err(HostError::Character));
        assert_eq!(c("a..b", 1).canonical_host(), Err(HostError::Label));
        assert_eq!(c("-a.b", 1).canonical_host(), Err(HostError::Label));
        assert_eq!(c("", 1).canonical_host(), Err(HostError::Length));
        assert_eq!(
            c(&"a".repeat(300), 1).canonical_host(),
            Err(HostError::Length)
        );
        assert_eq!(c("a.b", 0).canonical_host(), Err(HostError::Port));
        assert_eq!(c("a.b/x", 1).canonical_host(), Err(HostError::Character));
    }
}
