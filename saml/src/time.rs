//! `SystemTime` to SAML timestamps. No clock is read here: every time comes from the caller.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Months, TimeDelta, Utc};

use crate::SamlError;

/// `now` truncated to whole seconds, as UTC.
pub(crate) fn to_utc(now: SystemTime) -> Result<DateTime<Utc>, SamlError> {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| SamlError::TimeOutOfRange)?
        .as_secs();
    let secs = i64::try_from(secs).map_err(|_| SamlError::TimeOutOfRange)?;
    DateTime::from_timestamp(secs, 0).ok_or(SamlError::TimeOutOfRange)
}

/// `base + delta`, or [`SamlError::TimeOutOfRange`].
pub(crate) fn offset(base: DateTime<Utc>, delta: TimeDelta) -> Result<DateTime<Utc>, SamlError> {
    base.checked_add_signed(delta)
        .ok_or(SamlError::TimeOutOfRange)
}

/// The certificate's `notBefore` (now − 1 day) and `notAfter` (now + 10 years) as Unix seconds.
pub(crate) fn certificate_validity(now: SystemTime) -> Result<(i64, i64), SamlError> {
    let now = to_utc(now)?;
    let not_before = offset(now, TimeDelta::days(-1))?;
    let not_after = now
        .checked_add_months(Months::new(120))
        .ok_or(SamlError::TimeOutOfRange)?;
    Ok((not_before.timestamp(), not_after.timestamp()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn truncates_and_rejects_pre_epoch() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_999);
        assert_eq!(to_utc(t).unwrap().timestamp(), 1_700_000_000);
        assert!(matches!(
            to_utc(UNIX_EPOCH - Duration::from_secs(1)),
            Err(SamlError::TimeOutOfRange)
        ));
    }

    #[test]
    fn validity_window() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (nb, na) = certificate_validity(t).unwrap();
        assert_eq!(nb, 1_700_000_000 - 86_400);
        // 2023-11-14 + 10 years = 2033-11-14, which spans 3 leap days (2024, 2028, 2032).
        assert_eq!(na, 1_700_000_000 + (3650 + 3) * 86_400);
    }
}
