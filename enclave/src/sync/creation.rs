//! Which write bundles may create their secret.
//!
//! An existing secret carries its version floor (the `nitrosync:version` tag and the version in
//! `AWSCURRENT`'s id, [`super::record`]), so an older bundle cannot roll it back. An absent
//! secret carries nothing: after the tenant's tombstone with `ForceDeleteWithoutRecovery`, or
//! once a recovery window has run out, the floor is gone with the secret, and any write bundle
//! the parent kept (they live 30 days) would create it again with old content. So a bundle may
//! create its secret only within [`CREATION_WINDOW_MS`] after it was sealed, by the enclave's
//! trusted clock; past that, it may still update the secret while it is live.
//!
//! The check runs after `DescribeSecret` has said the secret is absent and before
//! `CreateSecret`, with the clock as AWS's authenticated `Date` headers have corrected it: the
//! `DescribeSecret` just answered over TLS, and its SigV4 signature was accepted, which AWS does
//! only within five minutes of its own time.

use super::errors::Failure;
use nitrosync_shared::ErrorCode;
use nitrosync_shared::bundle::{
    BundleHeader, CREATION_CLOCK_SKEW_MS, CREATION_WINDOW_MS, CreationWindow,
};

/// Refuses to create the secret of `header`'s destination at `now_ms` (Unix milliseconds, the
/// enclave's trusted clock) outside the bundle's creation window.
pub(crate) fn may_create(header: &BundleHeader, now_ms: u64) -> Result<(), Failure> {
    let secret = &header.destination.secret_name;
    match header.creation_window_at(now_ms) {
        CreationWindow::Open => Ok(()),
        CreationWindow::Passed { closed_at_ms } => Err(Failure::new(
            ErrorCode::CreationWindowClosed,
            format!(
                "the secret {secret:?} does not exist, and bundle version {} was sealed at {} ms, more than {} s before now ({now_ms} ms by the enclave's clock): it may update the secret until it expires, but create it only until {closed_at_ms} ms, so that a bundle kept by the parent cannot bring back a deleted secret. Nothing was created.",
                header.version,
                header.created_at_ms,
                CREATION_WINDOW_MS / 1000,
            ),
        )),
        CreationWindow::NotYetOpen { ahead_ms } => Err(Failure::new(
            ErrorCode::CreationWindowClosed,
            format!(
                "the secret {secret:?} does not exist, and bundle version {} was sealed {} s in the future of the enclave's clock (at most {} s are tolerated): the sealing machine's clock is ahead. Nothing was created.",
                header.version,
                ahead_ms / 1000,
                CREATION_CLOCK_SKEW_MS / 1000,
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nitrosync_shared::bundle::{
        BUNDLE_FORMAT, DEFAULT_LIFETIME_MS, DeletePolicy, DestinationConfig, Operation,
    };

    const NOW: u64 = 1_800_000_000_000;

    fn header(created_at_ms: u64) -> BundleHeader {
        BundleHeader {
            format: BUNDLE_FORMAT,
            tenant_key: [1; 32],
            enclave_key: [2; 32],
            destination: DestinationConfig {
                id: "d".into(),
                region: "us-east-1".into(),
                secret_name: "prod/env".into(),
                role_arn: "arn:aws:iam::111111111111:role/r".into(),
                saml_provider_arn: "arn:aws:iam::111111111111:saml-provider/p".into(),
                kms_key_id: None,
                tags: Default::default(),
                delete_policy: DeletePolicy::Delete {
                    recovery_days: None,
                },
            },
            version: 7,
            created_at_ms,
            operation: Operation::Write,
            not_after_ms: created_at_ms.saturating_add(DEFAULT_LIFETIME_MS),
        }
    }

    #[test]
    fn a_fresh_bundle_may_create() {
        assert_eq!(may_create(&header(NOW), NOW), Ok(()));
        // Sealed just under an hour ago: the first push after a short parent outage.
        assert_eq!(may_create(&header(NOW - CREATION_WINDOW_MS), NOW), Ok(()));
        // A tenant clock a minute fast.
        assert_eq!(may_create(&header(NOW + 60_000), NOW), Ok(()));
    }

    #[test]
    fn a_live_bundle_past_the_window_may_not_create() {
        // Sealed a day ago, live for 29 more: a replay after the secret was force-deleted.
        let h = header(NOW - 24 * 3600 * 1000);
        assert!(h.is_live_at(NOW));
        let f = may_create(&h, NOW).unwrap_err();
        assert_eq!(f.code, ErrorCode::CreationWindowClosed);
        assert!(f.message.contains("\"prod/env\" does not exist"), "{f}");
        assert!(f.message.contains("version 7"), "{f}");
        assert!(f.message.contains("Nothing was created"), "{f}");
        let closes = (NOW - 23 * 3600 * 1000).to_string();
        assert!(f.message.contains(&closes), "names when it closed: {f}");
        // One millisecond past the window is past it.
        let f = may_create(&header(NOW - CREATION_WINDOW_MS - 1), NOW).unwrap_err();
        assert_eq!(f.code, ErrorCode::CreationWindowClosed);
    }

    #[test]
    fn a_bundle_sealed_in_the_future_may_not_create() {
        let f = may_create(&header(NOW + CREATION_CLOCK_SKEW_MS + 1), NOW).unwrap_err();
        assert_eq!(f.code, ErrorCode::CreationWindowClosed);
        assert!(f.message.contains("in the future"), "{f}");
        assert!(f.message.contains("clock is ahead"), "{f}");
        assert_eq!(
            may_create(&header(NOW + CREATION_CLOCK_SKEW_MS), NOW),
            Ok(())
        );
    }

    #[test]
    fn the_refusal_is_terminal_and_left_to_the_tenant() {
        let f = may_create(&header(NOW - 2 * CREATION_WINDOW_MS), NOW).unwrap_err();
        let report = f.clone().into_sync_error();
        assert!(!report.retryable, "the scheduler does not retry it");
        assert_eq!(
            f.code.resolution(&report.message),
            nitrosync_shared::error_code::Resolution::Tenant
        );
        assert!(
            report.message.ends_with(f.code.remedy()),
            "{}",
            report.message
        );
    }
}
