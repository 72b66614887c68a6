//! Starting the enclave program and staying PID 1 while it runs: reaping every child that
//! ends (orphans are re-parented to init), forwarding SIGTERM and SIGINT to the program, and
//! returning when the program itself ends.
//!
//! Signals are taken synchronously: [`block_signals`] blocks them before anything else runs
//! (blocked signals are queued even for PID 1, which otherwise drops signals it has no handler
//! for), and [`supervise`] waits for them with `sigwait`. The program starts with an empty
//! signal mask (the standard library resets it in the child).

use std::fmt;
use std::io;
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::argv::PROGRAM_ENV;

/// Signals passed on to the program.
pub const FORWARDED: [Signal; 2] = [Signal::SIGTERM, Signal::SIGINT];

/// The signals init waits for: SIGCHLD and the forwarded ones.
pub fn signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for s in FORWARDED {
        set.add(s);
    }
    set
}

/// Blocks [`signals`] in this (the only) thread, so that they queue for [`supervise`].
pub fn block_signals() -> nix::Result<SigSet> {
    let set = signals();
    set.thread_block()?;
    Ok(set)
}

/// How the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramEnd {
    /// It exited with this status.
    Exited(i32),
    /// A signal killed it.
    Killed {
        /// The signal.
        signal: Signal,
        /// Whether it dumped core.
        core_dumped: bool,
    },
}

impl fmt::Display for ProgramEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exited(code) => write!(f, "exited with status {code}"),
            Self::Killed {
                signal,
                core_dumped,
            } => write!(
                f,
                "was killed by {}{}",
                signal.as_str(),
                if *core_dumped { " (core dumped)" } else { "" }
            ),
        }
    }
}

/// What a wait status means: `Some` when it is the end of `program`.
pub fn program_end(status: WaitStatus, program: Pid) -> Option<ProgramEnd> {
    match status {
        WaitStatus::Exited(pid, code) if pid == program => Some(ProgramEnd::Exited(code)),
        WaitStatus::Signaled(pid, signal, core_dumped) if pid == program => {
            Some(ProgramEnd::Killed {
                signal,
                core_dumped,
            })
        }
        _ => None,
    }
}

/// What init does with a signal it waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Reap every child that has ended.
    Reap,
    /// Send the signal to the program.
    Forward(Signal),
    /// Nothing.
    Ignore,
}

/// Decides what to do with `signal`.
pub fn decide(signal: Signal) -> Decision {
    match signal {
        Signal::SIGCHLD => Decision::Reap,
        s if FORWARDED.contains(&s) => Decision::Forward(s),
        _ => Decision::Ignore,
    }
}

/// Something [`supervise`] did, for the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A signal was passed on to the program.
    Forwarded(Signal),
    /// Passing a signal on failed.
    ForwardFailed(Signal, Errno),
    /// A child other than the program was reaped.
    ReapedOrphan(Pid),
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Forwarded(s) => write!(f, "passed {} on to the program", s.as_str()),
            Self::ForwardFailed(s, e) => write!(f, "could not pass {} on: {e}", s.as_str()),
            Self::ReapedOrphan(pid) => write!(f, "reaped orphan process {pid}"),
        }
    }
}

/// Starts `argv` in `/`, with [`PROGRAM_ENV`] as its whole environment, standard input from
/// `/dev/null` and init's standard output and error (the console).
pub fn spawn(argv: &[String]) -> io::Result<Pid> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no program to start"))?;
    let child = Command::new(program)
        .args(args)
        .env_clear()
        .envs(PROGRAM_ENV)
        .current_dir("/")
        .stdin(Stdio::null())
        .spawn()?;
    let pid = i32::try_from(child.id())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "process id out of range"))?;
    // Dropping `child` neither waits for nor kills it; `supervise` reaps it.
    Ok(Pid::from_raw(pid))
}

/// Waits for `signals` (blocked by [`block_signals`]) until `program` ends, reaping every
/// child and forwarding SIGTERM and SIGINT to `program`; reports each step to `on_event`.
pub fn supervise(
    program: Pid,
    signals: &SigSet,
    mut on_event: impl FnMut(Event),
) -> io::Result<ProgramEnd> {
    loop {
        let signal = match signals.wait() {
            Ok(s) => s,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        match decide(signal) {
            Decision::Forward(s) => match kill(program, s) {
                Ok(()) => on_event(Event::Forwarded(s)),
                Err(e) => on_event(Event::ForwardFailed(s, e)),
            },
            Decision::Reap => loop {
                match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                    Ok(status) => {
                        if let Some(end) = program_end(status, program) {
                            return Ok(end);
                        }
                        if let (Some(pid), WaitStatus::Exited(..) | WaitStatus::Signaled(..)) =
                            (status.pid(), status)
                        {
                            on_event(Event::ReapedOrphan(pid));
                        }
                    }
                    Err(Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
            },
            Decision::Ignore => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_reaped_forwarded_or_ignored() {
        assert_eq!(decide(Signal::SIGCHLD), Decision::Reap);
        assert_eq!(decide(Signal::SIGTERM), Decision::Forward(Signal::SIGTERM));
        assert_eq!(decide(Signal::SIGINT), Decision::Forward(Signal::SIGINT));
        assert_eq!(decide(Signal::SIGHUP), Decision::Ignore);
        let set = signals();
        assert!(set.contains(Signal::SIGCHLD) && set.contains(Signal::SIGTERM));
        assert!(!set.contains(Signal::SIGKILL));
    }

    #[test]
    fn only_the_program_s_end_ends_supervision() {
        let program = Pid::from_raw(42);
        let other = Pid::from_raw(43);
        assert_eq!(
            program_end(WaitStatus::Exited(program, 3), program),
            Some(ProgramEnd::Exited(3))
        );
        assert_eq!(program_end(WaitStatus::Exited(other, 0), program), None);
        assert_eq!(
            program_end(
                WaitStatus::Signaled(program, Signal::SIGKILL, false),
                program
            ),
            Some(ProgramEnd::Killed {
                signal: Signal::SIGKILL,
                core_dumped: false
            })
        );
        assert_eq!(
            program_end(WaitStatus::Stopped(program, Signal::SIGSTOP), program),
            None
        );
    }

    #[test]
    fn ends_and_events_read_as_one_line() {
        assert_eq!(ProgramEnd::Exited(1).to_string(), "exited with status 1");
        assert_eq!(
            ProgramEnd::Killed {
                signal: Signal::SIGSEGV,
                core_dumped: true
            }
            .to_string(),
            "was killed by SIGSEGV (core dumped)"
        );
        assert_eq!(
            Event::Forwarded(Signal::SIGTERM).to_string(),
            "passed SIGTERM on to the program"
        );
    }

    #[test]
    fn spawn_refuses_an_empty_command_and_reports_a_missing_program() {
        assert!(spawn(&[]).is_err());
        let err = spawn(&["/nonexistent/nitrosync-enclave".to_owned()]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
