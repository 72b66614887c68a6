//! Transport addresses: `vsock:CID:PORT` in production, `unix:PATH` in simulator mode.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// `VMADDR_CID_ANY`: listen on every CID. Written `any` in an endpoint string.
pub const VSOCK_CID_ANY: u32 = u32::MAX;

/// Where a connection is made or accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// An AF_VSOCK address. CID 3 is the parent on Nitro; `any` only makes sense for listening.
    Vsock {
        /// Context id.
        cid: u32,
        /// Port.
        port: u32,
    },
    /// A Unix stream socket path (simulator mode and tests).
    Unix(PathBuf),
}

/// Why an endpoint string could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointError {
    /// No `vsock:` or `unix:` scheme.
    #[error("endpoint {0:?} must start with 'vsock:' or 'unix:'")]
    UnknownScheme(String),
    /// `vsock:` without exactly `CID:PORT` after it.
    #[error("vsock endpoint {0:?} must be vsock:CID:PORT (CID a number or 'any')")]
    BadVsock(String),
    /// `unix:` with an empty path, or a path holding a NUL byte.
    #[error("unix endpoint {0:?} needs a non-empty path without NUL bytes")]
    BadUnix(String),
}

impl Endpoint {
    /// True for `unix:` endpoints.
    pub fn is_unix(&self) -> bool {
        matches!(self, Endpoint::Unix(_))
    }
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = s.strip_prefix("vsock:") {
            let (cid, port) = rest
                .split_once(':')
                .ok_or_else(|| EndpointError::BadVsock(s.to_owned()))?;
            let cid = if cid.eq_ignore_ascii_case("any") {
                VSOCK_CID_ANY
            } else {
                cid.parse::<u32>()
                    .map_err(|_| EndpointError::BadVsock(s.to_owned()))?
            };
            let port = port
                .parse::<u32>()
                .map_err(|_| EndpointError::BadVsock(s.to_owned()))?;
            Ok(Endpoint::Vsock { cid, port })
        } else if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() || path.contains('\0') {
                return Err(EndpointError::BadUnix(s.to_owned()));
            }
            Ok(Endpoint::Unix(PathBuf::from(path)))
        } else {
            Err(EndpointError::UnknownScheme(s.to_owned()))
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Vsock { cid, port } if *cid == VSOCK_CID_ANY => write!(f, "vsock:any:{port}"),
            Endpoint::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl serde::Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Endpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_both_kinds() {
        assert_eq!(
            "vsock:3:8000".parse::<Endpoint>().unwrap(),
            Endpoint::Vsock { cid: 3, port: 8000 }
        );
        assert_eq!(
            "vsock:any:5000".parse::<Endpoint>().unwrap(),
            Endpoint::Vsock {
                cid: VSOCK_CID_ANY,
                port: 5000
            }
        );
        assert_eq!(
            "unix:/run/ns/enclave-5000.sock"
                .parse::<Endpoint>()
                .unwrap(),
            Endpoint::Unix("/run/ns/enclave-5000.sock".into())
        );
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        for (s, want) in [
            ("tcp:1.2.3.4:5", "must start with"),
            ("vsock:3", "vsock:CID:PORT"),
            ("vsock:x:1", "vsock:CID:PORT"),
            ("vsock:3:99999999999", "vsock:CID:PORT"),
            ("vsock:3:80:1", "vsock:CID:PORT"),
            ("unix:", "non-empty path"),
        ] {
            let err = s.parse::<Endpoint>().unwrap_err().to_string();
            assert!(err.contains(want), "{s}: {err}");
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(cid in any::<u32>(), port in any::<u32>(), path in "/[a-z0-9/._-]{1,40}") {
            for e in [Endpoint::Vsock { cid, port }, Endpoint::Unix(path.clone().into())] {
                prop_assert_eq!(e.to_string().parse::<Endpoint>().unwrap(), e);
            }
        }

        #[test]
        fn parse_never_panics(s in ".{0,64}") {
            let _ = s.parse::<Endpoint>();
        }
    }
}
