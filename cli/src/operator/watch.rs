//! `nitrosync status --watch`: the operator's view, refreshed every `--interval`: destinations by
//! state, syncs per second (from two successive snapshots), the relay's refusals and the newest
//! errors.
//!
//! On a terminal each frame replaces the last ([`crate::output::Screen`]: home, clear, lines).
//! Off a terminal (a pipe, a log file, CI) each snapshot is printed as plain lines followed by a
//! blank line, with no cursor codes, so the output reads as a log. With `--output json`, each
//! snapshot is one JSON line. Ctrl-C ends the view with exit 0; `--count N` ends it after N
//! snapshots. A snapshot the daemon cannot give is shown as its error and the view goes on; the
//! exit code after `--count` is that of the last snapshot.
//!
//! Every string from the daemon is printed escaped, as everywhere ([`crate::output`]).

use crate::output::Screen;
use crate::{CliError, Format, LocalCode, StatusArgs, fail};
use nitrosync_api::{AdminClient, Status};
use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

/// The newest errors shown.
const ERRORS_SHOWN: usize = 10;

/// Syncs finished (succeeded and failed) by the scheduler since the daemon started.
fn finished(s: &Status) -> u64 {
    ["succeeded", "failed"]
        .iter()
        .map(|k| s.syncs.get(*k).copied().unwrap_or(0))
        .fold(0u64, u64::saturating_add)
}

/// Syncs per second between two snapshots `elapsed` apart; `None` for the first, or when the
/// counters went back (the daemon restarted).
fn syncs_per_second(previous: Option<u64>, now: u64, elapsed: Duration) -> Option<f64> {
    let previous = previous?;
    let secs = elapsed.as_secs_f64();
    if now < previous || secs <= 0.0 {
        return None;
    }
    let delta = u32::try_from(now - previous)
        .map(f64::from)
        .unwrap_or(f64::MAX);
    Some(delta / secs)
}

/// The lines of one frame.
fn frame(
    s: &Status,
    rate: Option<f64>,
    at: &str,
    interval: Duration,
    terminal: bool,
) -> Vec<String> {
    let mut out = vec![format!(
        "nitrosync status --watch  {at}  every {} s{}",
        interval.as_secs_f64(),
        if terminal { "  (Ctrl-C to stop)" } else { "" }
    )];
    let enclave = match (&s.enclave, &s.enclave_error) {
        (Some(h), _) => format!("healthy, up {} s", h.uptime_ms / 1000),
        (None, Some(e)) => format!("{}: {}", e.code, super::first_line(&e.message)),
        (None, None) => "unknown".to_owned(),
    };
    out.push(format!("enclave       {enclave}"));
    match (&s.destinations, &s.store_error) {
        (Some(counts), _) => {
            let total: u64 = counts.values().copied().fold(0, u64::saturating_add);
            let by_state: Vec<String> = counts
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            out.push(format!(
                "destinations  {total}{}{}",
                if by_state.is_empty() { "" } else { ": " },
                by_state.join(", ")
            ));
        }
        (None, Some(e)) => out.push(format!("destinations  unknown: the store failed: {e}")),
        (None, None) => out.push("destinations  unknown".to_owned()),
    }
    let rate = match rate {
        Some(r) => format!("{r:.1}/s"),
        None => "-/s (after the next snapshot)".to_owned(),
    };
    let counter = |k: &str| s.syncs.get(k).copied().unwrap_or(0);
    out.push(format!(
        "syncs         {rate}; {} succeeded, {} failed since start",
        counter("succeeded"),
        counter("failed")
    ));
    let refused: Vec<String> = s
        .relay
        .stats
        .refused
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if !refused.is_empty() {
        out.push(format!("relay refused {}", refused.join(", ")));
    }
    if s.recent_errors.is_empty() {
        out.push("newest errors: none".to_owned());
    } else {
        out.push("newest errors:".to_owned());
    }
    for e in s.recent_errors.iter().take(ERRORS_SHOWN) {
        let at = if e.at_ms == 0 {
            "-".to_owned()
        } else {
            super::destinations::rfc3339(e.at_ms)
        };
        out.push(format!(
            "  {at}  {}  {}  {}",
            e.code,
            e.destination,
            super::first_line(&e.message)
        ));
    }
    out
}

/// Now, as RFC 3339 UTC to the second.
fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Runs the view until Ctrl-C or `--count` snapshots.
pub(super) async fn watch(
    api: &AdminClient,
    args: &StatusArgs,
    format: Format,
) -> Result<(), CliError> {
    let terminal = !format.is_json() && std::io::stdout().is_terminal();
    let mut screen = Screen;
    let mut previous: Option<(u64, Instant)> = None;
    let mut shown = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let fetched = api
            .call::<Status>(http::Method::GET, nitrosync_api::paths::STATUS, None)
            .await;
        let taken = Instant::now();
        let at = now();
        let last = match fetched {
            Ok(s) => {
                let total = finished(&s);
                let rate =
                    previous.and_then(|(n, then)| syncs_per_second(Some(n), total, taken - then));
                previous = Some((total, taken));
                if format.is_json() {
                    crate::output::json_text(
                        &serde_json::json!({
                            "at": at,
                            "syncs_per_second": rate,
                            "status": s,
                        })
                        .to_string(),
                    );
                } else {
                    let lines = frame(&s, rate, &at, args.interval, terminal);
                    show(&mut screen, terminal, &lines);
                }
                Ok(())
            }
            Err(e) => {
                let e = CliError::from(e);
                if format.is_json() {
                    crate::output::json_text(
                        &serde_json::json!({"at": at, "error": e.to_json()["error"]}).to_string(),
                    );
                } else {
                    let lines = vec![
                        format!("nitrosync status --watch  {at}"),
                        format!("no status: {e}"),
                    ];
                    show(&mut screen, terminal, &lines);
                }
                Err(e)
            }
        };
        shown += 1;
        if args.count.is_some_and(|n| shown >= n) {
            return last;
        }
        tokio::select! {
            r = &mut ctrl_c => {
                return r.map_err(|e| fail(LocalCode::Internal, format!("cannot wait for Ctrl-C: {e}")));
            }
            () = tokio::time::sleep(args.interval) => {}
        }
    }
}

/// Draws a frame: in place on a terminal, else as lines and a blank line.
fn show(screen: &mut Screen, terminal: bool, lines: &[String]) {
    if terminal {
        screen.draw(lines);
    } else {
        for line in lines {
            say!("{line}");
        }
        say!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(syncs: &[(&str, u64)], errors: usize) -> Status {
        let mut v = serde_json::json!({
            "parent": {"version": "0.1.0", "uptime_ms": 1000},
            "control": {"endpoint": "unix:x", "connected": true, "connects": 1},
            "enclave": null,
            "enclave_error": {"code": "EnclaveUnavailable", "message": "down\nsecond line"},
            "relay": {"listen": "unix:r", "regions": ["us-east-1"], "stats": {
                "accepted": 0, "active": 0, "connected": 0, "bytes_to_upstream": 0,
                "bytes_to_enclave": 0, "refused": {"not_allowed": 2, "timeout": 0}}},
            "destinations": {"pending": 1, "synced": 3, "disabled": 0},
            "syncs": {},
            "recent_errors": [],
        });
        for (k, n) in syncs {
            v["syncs"][*k] = (*n).into();
        }
        for i in 0..errors {
            v["recent_errors"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({
                "destination": format!("d{i}"), "tenant": "ab".repeat(32),
                "code": "AccessDenied", "message": "no", "at_ms": 0}));
        }
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_rate_comes_from_two_snapshots() {
        assert_eq!(syncs_per_second(None, 10, Duration::from_secs(2)), None);
        assert_eq!(
            syncs_per_second(Some(10), 30, Duration::from_secs(4)),
            Some(5.0)
        );
        // A restarted daemon's counters start again: no rate rather than a negative one.
        assert_eq!(syncs_per_second(Some(30), 3, Duration::from_secs(2)), None);
        assert_eq!(syncs_per_second(Some(3), 3, Duration::ZERO), None);
        let s = status(&[("succeeded", 7), ("failed", 2), ("started", 11)], 0);
        assert_eq!(finished(&s), 9);
    }

    #[test]
    fn a_frame_shows_states_rate_refusals_and_the_newest_errors() {
        let s = status(&[("succeeded", 7), ("failed", 2)], 12);
        let lines = frame(
            &s,
            Some(2.5),
            "2026-01-01T00:00:00Z",
            Duration::from_secs(2),
            false,
        );
        let text = lines.join("\n");
        assert!(
            text.contains("destinations  4: pending 1, synced 3"),
            "{text}"
        );
        assert!(
            text.contains("syncs         2.5/s; 7 succeeded, 2 failed"),
            "{text}"
        );
        assert!(text.contains("relay refused not_allowed 2"), "{text}");
        assert!(
            text.contains("enclave       EnclaveUnavailable: down"),
            "{text}"
        );
        assert!(!text.contains("second line"), "{text}");
        assert_eq!(text.matches("AccessDenied").count(), ERRORS_SHOWN, "{text}");
        assert!(!text.contains("Ctrl-C"), "{text}");
        let first = frame(&s, None, "t", Duration::from_millis(500), true);
        assert!(
            first[0].contains("every 0.5 s  (Ctrl-C to stop)"),
            "{first:?}"
        );
        assert!(first.iter().any(|l| l.contains("-/s")), "{first:?}");
    }
}
