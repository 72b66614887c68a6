//! Trusted time for the enclave.
//!
//! An enclave has no synchronised clock of its own, and the host could skew the one it has. SAML
//! assertions (a five-minute window) and SigV4 signatures (fifteen minutes) both need real
//! time. [`TrustedClock`] is the system clock corrected by the offset seen in the `Date` header
//! of AWS responses. Those arrive over TLS that ends in this process, authenticated by the
//! pinned roots, so the host cannot forge them. The correction is bounded: an offset larger
//! than [`MAX_CORRECTION`] is ignored and reported, because no honest host clock is that far off.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

/// The largest correction applied to the system clock.
pub const MAX_CORRECTION: Duration = Duration::from_secs(24 * 3600);

/// Offsets smaller than this are left alone: `Date` has one-second resolution.
const DEAD_BAND_MS: i64 = 1500;

/// The system clock corrected by authenticated AWS `Date` headers. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct TrustedClock {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    offset_ms: AtomicI64,
    synced: AtomicBool,
    /// Simulator only: how far the simulated host clock is off (never set in production).
    host_skew_ms: i64,
}

fn shift(t: SystemTime, ms: i64) -> SystemTime {
    let mag = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 { t + mag } else { t - mag }
}

fn signed_ms(later: SystemTime, earlier: SystemTime) -> i64 {
    match later.duration_since(earlier) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

impl TrustedClock {
    /// A clock with no correction yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulator only: a clock whose host time is off by `skew_ms`, as a badly set or hostile
    /// host's would be, so tests can show the correction at work.
    pub fn with_host_skew(skew_ms: i64) -> Self {
        Self {
            inner: Arc::new(Inner {
                host_skew_ms: skew_ms,
                ..Inner::default()
            }),
        }
    }

    fn system(&self) -> SystemTime {
        shift(SystemTime::now(), self.inner.host_skew_ms)
    }

    /// Now, corrected.
    pub fn now(&self) -> SystemTime {
        self.at(self.system())
    }

    fn at(&self, system: SystemTime) -> SystemTime {
        shift(system, self.inner.offset_ms.load(Ordering::Relaxed))
    }

    /// The correction in milliseconds (AWS minus system).
    pub fn offset_ms(&self) -> i64 {
        self.inner.offset_ms.load(Ordering::Relaxed)
    }

    /// Whether an AWS `Date` has been seen.
    pub fn synced(&self) -> bool {
        self.inner.synced.load(Ordering::Relaxed)
    }

    /// Takes an authenticated `Date` header value into account. Returns the new offset when it
    /// changed.
    pub fn observe_header(&self, value: &str) -> Option<i64> {
        let aws = httpdate::parse_http_date(value).ok()?;
        self.observe(aws, self.system())
    }

    fn observe(&self, aws: SystemTime, system: SystemTime) -> Option<i64> {
        self.inner.synced.store(true, Ordering::Relaxed);
        let offset = signed_ms(aws, system);
        if offset.unsigned_abs() > u64::try_from(MAX_CORRECTION.as_millis()).unwrap_or(u64::MAX) {
            tracing::warn!(
                offset_ms = offset,
                "AWS time differs from the system clock by more than the allowed correction; ignoring it"
            );
            return None;
        }
        let current = self.inner.offset_ms.load(Ordering::Relaxed);
        // `Date` is truncated to the second: only move when the difference is real.
        let target = if offset.abs() < DEAD_BAND_MS {
            0
        } else {
            offset
        };
        if (target - current).abs() < DEAD_BAND_MS {
            return None;
        }
        self.inner.offset_ms.store(target, Ordering::Relaxed);
        tracing::info!(
            offset_ms = target,
            "clock corrected from an authenticated AWS Date header"
        );
        Some(target)
    }
}

impl aws_smithy_async::time::TimeSource for TrustedClock {
    fn now(&self) -> SystemTime {
        TrustedClock::now(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_aws_within_bounds() {
        let c = TrustedClock::new();
        let sys = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert!(!c.synced());
        // Within the dead band: no change.
        assert_eq!(c.observe(sys + Duration::from_millis(900), sys), None);
        assert_eq!(c.offset_ms(), 0);
        // Ten minutes behind: corrected.
        assert_eq!(
            c.observe(sys + Duration::from_secs(600), sys),
            Some(600_000)
        );
        assert_eq!(c.at(sys), sys + Duration::from_secs(600));
        // Ahead of AWS: corrected the other way.
        assert_eq!(c.observe(sys - Duration::from_secs(30), sys), Some(-30_000));
        assert_eq!(c.at(sys), sys - Duration::from_secs(30));
        // A year off: ignored.
        assert_eq!(c.observe(sys + Duration::from_secs(365 * 86400), sys), None);
        assert_eq!(c.offset_ms(), -30_000);
        assert!(c.synced());
    }

    #[test]
    fn parses_http_dates() {
        let c = TrustedClock::new();
        c.observe_header("Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(c.offset_ms(), 0, "decades off: ignored");
        assert!(c.observe_header("not a date").is_none());
    }
}
