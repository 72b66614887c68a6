//! The boot, step by step, as PID 1. Each step prints one line on the console.

use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;

use crate::argv::{self, ARGS_FILE, Source};
use crate::heartbeat::{self, HEARTBEAT_CID, HEARTBEAT_PORT, HEARTBEAT_TIMEOUT};
use crate::mounts::{self, MOUNTS};
use crate::{console, loopback, say, stop, supervise};

/// An error and its sources, on one line.
fn chain(e: &dyn Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(out, ": {s}");
        source = s.source();
    }
    out
}

/// Ends the machine; returns only if that failed (then PID 1 exits and the kernel panics).
fn stop_enclave() {
    let e = stop::stop();
    say(format!("cannot stop the machine: {e}; exiting"));
}

/// Runs the boot: mounts, console, loopback, heartbeat, the program, then the stop. Returns
/// only if the machine could not be stopped.
pub fn run() {
    // First of all, so that no SIGCHLD or SIGTERM is lost.
    let signals = supervise::block_signals();

    let early: Vec<_> = MOUNTS[..2]
        .iter()
        .map(|m| (m, mounts::mount_one(m)))
        .collect();
    let reopened = console::ensure();
    say(format!(
        "nitrosync-init {} starting",
        env!("CARGO_PKG_VERSION")
    ));
    for (spec, outcome) in &early {
        say(mounts::describe(spec, outcome));
    }
    match reopened {
        Ok(0) => {}
        Ok(n) => say(format!(
            "reopened /dev/console on {n} of standard input, output and error"
        )),
        Err(e) => say(format!("cannot open {}: {e}", console::CONSOLE)),
    }
    for spec in &MOUNTS[2..] {
        say(mounts::describe(spec, &mounts::mount_one(spec)));
    }
    match loopback::up() {
        Ok(()) => say("loopback interface lo is up"),
        Err(e) => say(format!("cannot bring up lo: {e}; continuing")),
    }
    say(heartbeat::heartbeat(|| {
        heartbeat::connect_vsock(HEARTBEAT_CID, HEARTBEAT_PORT, HEARTBEAT_TIMEOUT)
    }));

    let signals = match signals {
        Ok(set) => set,
        Err(e) => {
            say(format!("cannot block signals: {e}; stopping the enclave"));
            return stop_enclave();
        }
    };
    let from_kernel = std::env::args_os().count().saturating_sub(1);
    if from_kernel > 0 {
        say(format!(
            "ignoring {from_kernel} argument(s) from the kernel command line"
        ));
    }
    let argv = match argv::load(Path::new(ARGS_FILE)) {
        Ok((argv, source)) => {
            let from = match source {
                Source::BuiltIn => "built in".to_owned(),
                Source::File(path) => path.display().to_string(),
            };
            say(format!("command ({from}): {}", argv.join(" ")));
            argv
        }
        Err(e) => {
            say(format!(
                "refusing {ARGS_FILE}: {}; stopping the enclave",
                chain(&e)
            ));
            return stop_enclave();
        }
    };
    let program = &argv[0];
    let pid = match supervise::spawn(&argv) {
        Ok(pid) => pid,
        Err(e) => {
            say(format!(
                "cannot start {program}: {}; stopping the enclave",
                chain(&e)
            ));
            return stop_enclave();
        }
    };
    say(format!("started {program} as process {pid}"));
    match supervise::supervise(pid, &signals, say) {
        Ok(end) => say(format!("{program} {end}; stopping the enclave")),
        Err(e) => say(format!(
            "lost track of {program}: {}; stopping the enclave",
            chain(&e)
        )),
    }
    stop_enclave();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_prints_every_source() {
        // A directory opens but cannot be read: an error with a source.
        let dir = std::env::temp_dir();
        let line = chain(&argv::load(&dir).unwrap_err());
        assert!(
            line.starts_with(&format!("cannot read {}: ", dir.display())) && line.len() > 20,
            "{line}"
        );
    }
}
