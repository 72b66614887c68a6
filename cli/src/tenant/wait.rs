//! `--wait` after a submit (`env push --wait`, `bundle submit --wait`): follows the destination
//! and its history until the submitted version is written, or until it is clear that waiting
//! will not get it written.
//!
//! - The newest attempt at the version (or a newer one) is shown as soon as it is recorded, a
//!   retryable failure too, with its code and remedy.
//! - A failure that waiting cannot resolve stops the wait at once (exit 1, with the code, the
//!   remedy and who must act): a terminal error, or a refusal by configuration such as the
//!   relay's `not_allowed` ([`ErrorCode::resolution`]), which the scheduler keeps retrying but
//!   which only the operator can fix.
//! - A disabled destination stops the wait: nothing will be attempted until it is enabled.
//! - While waiting, the phase (submitted, queued, syncing, retrying after CODE) and the elapsed
//!   time are shown: as a line redrawn with `\r` on a terminal, and as one plain line per phase
//!   change otherwise (pipes, logs, CI).

use crate::{CliError, EXIT_FAILED, Format, LocalCode, explained, fail, print_report};
use nitrosync_api::records::{DestinationRecord, DestinationState, HistoryRecord};
use nitrosync_api::{ApiClient, SubmitReply};
use nitrosync_shared::ErrorCode;
use nitrosync_shared::control::{SyncError, SyncReport};
use nitrosync_shared::error_code::Resolution;
use std::fmt;
use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

/// How long `--wait` waits at most for a version that is still expected to be written.
pub(crate) const WAIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the submitted version stands, as shown while waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Acknowledged by the parent; its state not read yet.
    Submitted,
    /// Stored, waiting for the scheduler.
    Queued,
    /// Handed to the enclave.
    Syncing,
    /// The last attempt failed with this code; the scheduler will try again.
    Retrying(ErrorCode),
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Submitted => f.write_str("submitted"),
            Phase::Queued => f.write_str("queued"),
            Phase::Syncing => f.write_str("syncing"),
            Phase::Retrying(code) => write!(f, "retrying after {code}"),
        }
    }
}

/// What one look at the destination and its history says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step<'a> {
    /// The version (or a newer one) was synced.
    Synced(&'a HistoryRecord),
    /// The newest attempt failed in a way that waiting will not fix.
    Stopped(&'a HistoryRecord, &'a SyncError, Resolution),
    /// The destination is disabled: the scheduler will not attempt it.
    Disabled,
    /// Still under way: the phase, and the newest attempt of the version if it failed (to be
    /// retried).
    Waiting(Phase, Option<&'a HistoryRecord>),
}

/// Whether waiting can still get a failed attempt written: only a retryable error that needs
/// nobody to act. Otherwise, who must act.
pub(crate) fn verdict(e: &SyncError) -> Option<Resolution> {
    let resolution = e.code.resolution(&e.message);
    match (e.retryable, resolution) {
        (true, Resolution::Retry) => None,
        // The scheduler has given up: someone must act even if the code is usually transient.
        (false, Resolution::Retry) => Some(Resolution::Tenant),
        (_, r) => Some(r),
    }
}

/// Decides from the history (newest first, as the API returns it) and the destination's record
/// (when read) where the sync of `version` stands.
pub(crate) fn step<'a>(
    version: u64,
    history: &'a [HistoryRecord],
    destination: Option<&DestinationRecord>,
) -> Step<'a> {
    let latest = history
        .iter()
        .filter(|r| r.version >= version)
        .max_by_key(|r| r.seq);
    let mut failed = None;
    if let Some(r) = latest {
        match &r.error {
            None => return Step::Synced(r),
            Some(e) => match verdict(e) {
                Some(resolution) => return Step::Stopped(r, e, resolution),
                None => failed = Some(r),
            },
        }
    }
    let Some(d) = destination else {
        return Step::Waiting(Phase::Submitted, failed);
    };
    if !d.enabled {
        return Step::Disabled;
    }
    let retrying = failed
        .and_then(|r| r.error.as_ref().map(|e| e.code))
        .or_else(|| d.last_error.as_ref().map(|e| e.code));
    let phase = match d.state {
        DestinationState::Syncing => Phase::Syncing,
        DestinationState::FailedRetryable => retrying.map_or(Phase::Queued, Phase::Retrying),
        DestinationState::Pending | DestinationState::Synced | DestinationState::FailedTerminal => {
            Phase::Queued
        }
    };
    Step::Waiting(phase, failed)
}

/// The error that ends a wait on a failed attempt: its code, and [`failure_line`].
fn failure(e: &SyncError, resolution: Resolution) -> CliError {
    CliError::reported(
        e.code.as_str(),
        failure_line(e, Some(resolution)),
        EXIT_FAILED,
    )
}

/// One line for a failed attempt (after its code): the message, what to do and, when waiting
/// will not help, who must act.
pub(crate) fn failure_line(e: &SyncError, resolution: Option<Resolution>) -> String {
    let what = explained(e.code, &e.message);
    match resolution {
        None => format!("{what} The parent will try again."),
        Some(Resolution::Operator) => format!(
            "{what} Waiting will not help: {} must act; the parent keeps retrying, so the sync goes through once that is done.",
            Resolution::Operator.who(),
        ),
        Some(r) => format!("{what} Waiting will not help: {} must act.", r.who()),
    }
}

fn report_of(reply: &SubmitReply, r: &HistoryRecord) -> SyncReport {
    SyncReport {
        destination: reply.destination.clone(),
        version: r.version,
        mode: r.mode,
        outcome: r.outcome,
        error: r.error.clone(),
        secret_arn: r.secret_arn.clone(),
        aws_version_id: r.aws_version_id.clone(),
        timings: r.timings.clone(),
    }
}

/// Shows progress on stderr: a redrawn line on a terminal, plain lines elsewhere.
struct Progress {
    terminal: bool,
    drawn: bool,
    shown: Option<Phase>,
    frame: usize,
}

impl Progress {
    fn new(format: Format) -> Self {
        Progress {
            terminal: !format.is_json() && std::io::stderr().is_terminal(),
            drawn: false,
            shown: None,
            frame: 0,
        }
    }

    fn phase(&mut self, what: &str, phase: Phase, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if self.terminal {
            let frames = ['|', '/', '-', '\\'];
            let line = format!(
                "{} waiting for {what}: {phase}, {secs:.1} s",
                frames[self.frame % 4]
            );
            crate::output::redraw_stderr(&line, 78);
            self.frame += 1;
            self.drawn = true;
        } else if self.shown != Some(phase) {
            note!("waiting for {what}: {phase} ({secs:.1} s)");
        }
        self.shown = Some(phase);
    }

    /// A line that stays: clears the redrawn line first.
    fn line(&mut self, text: &str) {
        self.clear();
        note!("{text}");
    }

    fn clear(&mut self) {
        if self.drawn {
            crate::output::redraw_stderr("", 78);
            self.drawn = false;
        }
    }
}

/// Polls slowly as the wait grows: 100 ms for the first 2 s, 250 ms to 30 s, then 1 s.
fn poll_interval(elapsed: Duration) -> Duration {
    if elapsed < Duration::from_secs(2) {
        Duration::from_millis(100)
    } else if elapsed < Duration::from_secs(30) {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(1)
    }
}

/// Waits for the sync of the version `reply` acknowledges; see the module's documentation.
pub(crate) async fn wait(
    api: &ApiClient,
    reply: &SubmitReply,
    format: Format,
) -> Result<(), CliError> {
    let base = format!("/v1/destinations/{}/{}", reply.tenant, reply.destination);
    let history_path = format!("{base}/history?limit=5");
    let what = format!("{} v{}", reply.destination, reply.version);
    let started = Instant::now();
    let mut progress = Progress::new(format);
    progress.phase(&what, Phase::Submitted, started.elapsed());
    let mut reported_seq = None;
    loop {
        let history: Vec<HistoryRecord> = api.call(http::Method::GET, &history_path, None).await?;
        let destination: DestinationRecord = api.call(http::Method::GET, &base, None).await?;
        match step(reply.version, &history, Some(&destination)) {
            Step::Synced(r) => {
                progress.clear();
                return print_report(&report_of(reply, r), format);
            }
            Step::Stopped(r, e, resolution) => {
                progress.clear();
                print_report(&report_of(reply, r), format)?;
                return Err(failure(e, resolution));
            }
            Step::Disabled => {
                progress.clear();
                return Err(fail(
                    LocalCode::DestinationDisabled,
                    format!(
                        "destination {} is disabled: version {} is stored but will not be written until the operator enables it (`nitrosync destination enable {}`)",
                        reply.destination, reply.version, reply.destination
                    ),
                ));
            }
            Step::Waiting(now, failed) => {
                if let Some(r) = failed
                    && reported_seq != Some(r.seq)
                    && let Some(e) = &r.error
                {
                    reported_seq = Some(r.seq);
                    progress.line(&format!(
                        "{} v{}: attempt failed: {}: {}",
                        reply.destination,
                        r.version,
                        e.code,
                        failure_line(e, None)
                    ));
                    progress.shown = None;
                }
                progress.phase(&what, now, started.elapsed());
            }
        }
        if started.elapsed() > WAIT_TIMEOUT {
            progress.clear();
            let phase = progress.shown.unwrap_or(Phase::Submitted);
            return Err(fail(
                LocalCode::WaitTimeout,
                format!(
                    "{what} is still {phase} after {} s; it stays submitted: see `nitrosync destination history {}`",
                    WAIT_TIMEOUT.as_secs(),
                    reply.destination
                ),
            ));
        }
        tokio::time::sleep(poll_interval(started.elapsed())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nitrosync_api::records::{DestinationKey, LastError};
    use nitrosync_shared::bundle::{DeletePolicy, DestinationConfig};
    use nitrosync_shared::control::{SyncMode, SyncOutcome, SyncTimings};

    fn attempt(seq: u64, version: u64, error: Option<(ErrorCode, &str, bool)>) -> HistoryRecord {
        HistoryRecord {
            seq,
            version,
            mode: SyncMode::Write,
            outcome: if error.is_some() {
                SyncOutcome::Failed
            } else {
                SyncOutcome::Created
            },
            error: error.map(|(code, message, retryable)| SyncError {
                code,
                message: message.to_owned(),
                retryable,
            }),
            aws_version_id: None,
            secret_arn: None,
            timings: SyncTimings::default(),
            started_at_ms: 0,
            finished_at_ms: 0,
        }
    }

    fn destination(enabled: bool, state: DestinationState) -> DestinationRecord {
        DestinationRecord {
            key: DestinationKey::new([1; 32], "app"),
            config: DestinationConfig {
                id: "app".into(),
                region: "eu-west-1".into(),
                secret_name: "app/env".into(),
                role_arn: "arn:aws:iam::123456789012:role/r".into(),
                saml_provider_arn: "arn:aws:iam::123456789012:saml-provider/p".into(),
                kms_key_id: None,
                tags: Default::default(),
                delete_policy: DeletePolicy::Retain,
            },
            saml_subject: "ns1-x".into(),
            enabled,
            state,
            version: 10,
            received_at_ms: 0,
            synced_version: None,
            synced_at_ms: None,
            next_attempt_at_ms: None,
            attempts: 0,
            last_error: None,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    const NOT_ALLOWED: &str = "AssumeRoleWithSAML: the parent's relay refused sts.eu-west-1.amazonaws.com:443 (not_allowed).";
    const DIAL_FAILED: &str = "AssumeRoleWithSAML: the parent's relay refused sts.eu-west-1.amazonaws.com:443 (dial_failed).";

    #[test]
    fn verdicts() {
        let e = |code, message: &str, retryable| SyncError {
            code,
            message: message.to_owned(),
            retryable,
        };
        assert_eq!(verdict(&e(ErrorCode::LimitExceeded, "", true)), None);
        assert_eq!(
            verdict(&e(ErrorCode::RelayRefused, DIAL_FAILED, true)),
            None
        );
        assert_eq!(
            verdict(&e(ErrorCode::RelayRefused, NOT_ALLOWED, true)),
            Some(Resolution::Operator)
        );
        assert_eq!(
            verdict(&e(ErrorCode::AccessDenied, "", false)),
            Some(Resolution::Tenant)
        );
        // Given up by the scheduler: a person must act whatever the code.
        assert_eq!(
            verdict(&e(ErrorCode::InternalServiceError, "", false)),
            Some(Resolution::Tenant)
        );
    }

    #[test]
    fn steps() {
        let pending = destination(true, DestinationState::Pending);
        // Nothing yet: queued; before the record is read, submitted.
        assert_eq!(
            step(10, &[], Some(&pending)),
            Step::Waiting(Phase::Queued, None)
        );
        assert_eq!(step(10, &[], None), Step::Waiting(Phase::Submitted, None));
        let syncing = destination(true, DestinationState::Syncing);
        assert_eq!(
            step(10, &[], Some(&syncing)),
            Step::Waiting(Phase::Syncing, None)
        );
        // An older version's attempt says nothing about this one.
        let old = [attempt(1, 9, Some((ErrorCode::AccessDenied, "no", false)))];
        assert_eq!(
            step(10, &old, Some(&pending)),
            Step::Waiting(Phase::Queued, None)
        );
        // A success of this version or a newer one ends the wait.
        let ok = [attempt(2, 11, None), attempt(1, 10, None)];
        assert_eq!(step(10, &ok, Some(&pending)), Step::Synced(&ok[0]));
        // A retryable failure is shown at once and the wait goes on.
        let throttled = [attempt(
            3,
            10,
            Some((ErrorCode::LimitExceeded, "slow", true)),
        )];
        let mut retrying = destination(true, DestinationState::FailedRetryable);
        retrying.last_error = Some(LastError {
            code: ErrorCode::LimitExceeded,
            message: "slow".into(),
            at_ms: 0,
        });
        assert_eq!(
            step(10, &throttled, Some(&retrying)),
            Step::Waiting(
                Phase::Retrying(ErrorCode::LimitExceeded),
                Some(&throttled[0])
            )
        );
        // A refusal by configuration stops at once, though the scheduler retries it.
        let refused = [attempt(
            4,
            10,
            Some((ErrorCode::RelayRefused, NOT_ALLOWED, true)),
        )];
        let Step::Stopped(r, e, who) = step(10, &refused, Some(&retrying)) else {
            panic!("stops");
        };
        assert_eq!(
            (r.seq, e.code, who),
            (4, ErrorCode::RelayRefused, Resolution::Operator)
        );
        let line = failure(e, who).to_string();
        assert!(line.starts_with("RelayRefused: "), "{line}");
        assert!(line.contains(ErrorCode::RelayRefused.remedy()), "{line}");
        assert!(line.contains("the operator"), "{line}");
        // A terminal failure stops too.
        let denied = [attempt(
            5,
            10,
            Some((ErrorCode::AccessDenied, "denied", false)),
        )];
        assert!(matches!(
            step(10, &denied, Some(&pending)),
            Step::Stopped(_, _, Resolution::Tenant)
        ));
        // Disabled: stop, even after a retryable failure; a terminal one is said first.
        let disabled = destination(false, DestinationState::Pending);
        assert_eq!(step(10, &[], Some(&disabled)), Step::Disabled);
        assert_eq!(step(10, &throttled, Some(&disabled)), Step::Disabled);
        assert!(matches!(
            step(10, &denied, Some(&disabled)),
            Step::Stopped(..)
        ));
        // The newest attempt decides, by sequence number.
        let recovered = [
            attempt(7, 10, None),
            attempt(6, 10, Some((ErrorCode::LimitExceeded, "", true))),
        ];
        assert_eq!(
            step(10, &recovered, Some(&pending)),
            Step::Synced(&recovered[0])
        );
    }

    #[test]
    fn the_remedy_is_said_once() {
        let remedy = ErrorCode::RelayRefused.remedy();
        for message in [NOT_ALLOWED.to_owned(), format!("{NOT_ALLOWED} {remedy}")] {
            let e = SyncError {
                code: ErrorCode::RelayRefused,
                message,
                retryable: true,
            };
            let line = failure_line(&e, verdict(&e));
            assert_eq!(line.matches(remedy).count(), 1, "{line}");
            assert!(!line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn phases_read_well() {
        assert_eq!(Phase::Submitted.to_string(), "submitted");
        assert_eq!(
            Phase::Retrying(ErrorCode::LimitExceeded).to_string(),
            "retrying after LimitExceeded"
        );
        assert_eq!(poll_interval(Duration::ZERO), Duration::from_millis(100));
        assert_eq!(
            poll_interval(Duration::from_secs(60)),
            Duration::from_secs(1)
        );
    }
}
