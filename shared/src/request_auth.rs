//! The tenant API's request signatures (issue 12): what a tenant signs for each request, and
//! the timestamp window. Sans-io: the caller reads the clock and does the Ed25519 arithmetic
//! (`nitrosync-bundle`), so the CLI that signs and the parent that verifies share this one
//! definition of the signed bytes.
//!
//! A request carries three headers: [`HEADER_TENANT`] (the tenant's Ed25519 public key, hex),
//! [`HEADER_TIMESTAMP`] (Unix milliseconds, decimal) and [`HEADER_SIGNATURE`] (64 bytes, hex),
//! the signature over [`signed_bytes`] of the request.

use sha2::{Digest, Sha256};

/// Header naming the tenant: its Ed25519 public key, 64 hex digits.
pub const HEADER_TENANT: &str = "x-nitrosync-tenant";
/// Header with the signing time, Unix milliseconds in decimal.
pub const HEADER_TIMESTAMP: &str = "x-nitrosync-timestamp";
/// Header with the Ed25519 signature over [`signed_bytes`], 128 hex digits.
pub const HEADER_SIGNATURE: &str = "x-nitrosync-signature";

/// Domain separator: no other signature a tenant key makes (a bundle) can pass for a request.
pub const DOMAIN: &[u8] = b"nitrosync/tenant-api/request/v1\0";

/// How far a request's timestamp may be from the server's clock, either way.
pub const WINDOW_MS: u64 = 60_000;

/// SHA-256 of a request body (of the empty string when there is none).
pub fn body_digest(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

/// What a request is, as signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestParts<'a> {
    /// The HTTP method, upper case (`GET`, `POST`).
    pub method: &'a str,
    /// The request target: path and query exactly as sent (`/v1/…?limit=5`).
    pub path_and_query: &'a str,
    /// The tenant's Ed25519 public key.
    pub tenant: &'a [u8; 32],
    /// Unix milliseconds when the tenant signed.
    pub timestamp_ms: u64,
    /// [`body_digest`] of the body.
    pub body_sha256: &'a [u8; 32],
}

/// The canonical bytes a tenant signs for a request: the domain separator, then the method and
/// the path with its query (each as a big-endian `u32` length and the bytes), the tenant key, the
/// timestamp (big-endian `u64`) and the body's SHA-256. Every field has a fixed size or a length
/// prefix, so no two requests have the same bytes.
pub fn signed_bytes(p: &RequestParts<'_>) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(DOMAIN.len() + 8 + p.method.len() + p.path_and_query.len() + 72);
    out.extend_from_slice(DOMAIN);
    for field in [p.method.as_bytes(), p.path_and_query.as_bytes()] {
        // A request head is far below 4 GiB; saturate rather than cast.
        let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(field);
    }
    out.extend_from_slice(p.tenant);
    out.extend_from_slice(&p.timestamp_ms.to_be_bytes());
    out.extend_from_slice(p.body_sha256);
    out
}

/// Why a timestamp is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// Signed more than the window before `now`.
    #[error("the request was signed {age_ms} ms ago, more than the {WINDOW_MS} ms allowed")]
    TooOld {
        /// How long ago.
        age_ms: u64,
    },
    /// Signed more than the window after `now`.
    #[error(
        "the request is dated {ahead_ms} ms in the future, more than the {WINDOW_MS} ms allowed"
    )]
    InFuture {
        /// How far ahead.
        ahead_ms: u64,
    },
}

/// Checks that `timestamp_ms` is within `window_ms` of `now_ms`, either way.
pub fn check_timestamp(
    now_ms: u64,
    timestamp_ms: u64,
    window_ms: u64,
) -> Result<(), TimestampError> {
    if timestamp_ms <= now_ms {
        let age_ms = now_ms - timestamp_ms;
        if age_ms > window_ms {
            return Err(TimestampError::TooOld { age_ms });
        }
    } else {
        let ahead_ms = timestamp_ms - now_ms;
        if ahead_ms > window_ms {
            return Err(TimestampError::InFuture { ahead_ms });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(method: &'a str, path: &'a str, digest: &'a [u8; 32]) -> RequestParts<'a> {
        RequestParts {
            method,
            path_and_query: path,
            tenant: &[7; 32],
            timestamp_ms: 1_000,
            body_sha256: digest,
        }
    }

    #[test]
    fn every_field_changes_the_bytes() {
        let d = body_digest(b"body");
        let base = signed_bytes(&parts("GET", "/v1/destinations", &d));
        assert!(base.starts_with(DOMAIN));
        // Moving a byte from the method into the path is a different message.
        assert_ne!(signed_bytes(&parts("GE", "T/v1/destinations", &d)), base);
        assert_ne!(signed_bytes(&parts("POST", "/v1/destinations", &d)), base);
        assert_ne!(
            signed_bytes(&parts("GET", "/v1/destinations?a=1", &d)),
            base
        );
        let other = body_digest(b"bodY");
        assert_ne!(
            signed_bytes(&parts("GET", "/v1/destinations", &other)),
            base
        );
        let mut p = parts("GET", "/v1/destinations", &d);
        p.timestamp_ms = 1_001;
        assert_ne!(signed_bytes(&p), base);
        p = parts("GET", "/v1/destinations", &d);
        p.tenant = &[8; 32];
        assert_ne!(signed_bytes(&p), base);
    }

    #[test]
    fn the_window_is_inclusive_both_ways() {
        assert!(check_timestamp(100_000, 40_000, WINDOW_MS).is_ok());
        assert!(check_timestamp(100_000, 160_000, WINDOW_MS).is_ok());
        assert_eq!(
            check_timestamp(100_000, 39_999, WINDOW_MS),
            Err(TimestampError::TooOld { age_ms: 60_001 })
        );
        assert_eq!(
            check_timestamp(100_000, 160_001, WINDOW_MS),
            Err(TimestampError::InFuture { ahead_ms: 60_001 })
        );
    }
}
