//! `nitrosync-init`: PID 1 of the nitrosync enclave image.
//!
//! It owns the few steps between the kernel and the enclave program: mount `/dev`, `/proc`,
//! `/sys`, `/tmp` and `/run` ([`mounts`]); make sure the console is standard output
//! ([`console`]); bring up the loopback interface ([`loopback`]); send the Nitro heartbeat that
//! tells `nitro-cli` the enclave booted ([`heartbeat`]); start the enclave program with its
//! production arguments, built in or read from a measured file ([`argv`]); reap zombies, forward
//! SIGTERM and SIGINT, and stop the enclave when the program ends ([`supervise`], [`stop`]).
//!
//! It owns no secrets and no policy. The kernel command line and init's own arguments are never
//! used to choose the program: the command line is measured, but some tools let the parent set
//! it. Each step prints one line on the console; a step that fails is reported and, unless the
//! program cannot be started at all, the boot goes on.
//!
//! The pure parts (argument files, heartbeat exchange, netlink messages, supervisor decisions,
//! exit descriptions) are unit-tested; [`boot`] strings the system calls together.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod argv;
pub mod boot;
pub mod console;
pub mod heartbeat;
pub mod loopback;
pub mod mounts;
pub mod stop;
pub mod supervise;

/// Prints one line on the console (standard error), prefixed with `nitrosync-init: `. A
/// console that cannot be written to is ignored (`eprintln!` would panic, and PID 1 must not).
pub fn say(line: impl std::fmt::Display) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "nitrosync-init: {line}");
}
