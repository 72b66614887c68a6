//! `nitrosync-init`: the enclave's `/init`. See the library for the steps.

use std::process::ExitCode;

use nitrosync_init::{argv, boot};

fn main() -> ExitCode {
    if nix::unistd::getpid().as_raw() != 1 {
        // It mounts file systems and stops the machine: never do that on a host by accident.
        eprintln!(
            "nitrosync-init: not PID 1, refusing to run (it is the enclave image's /init).\n\
             It would start: {}\n\
             unless {} exists (one argument per line, the program first).",
            argv::production_argv().join(" "),
            argv::ARGS_FILE
        );
        return ExitCode::from(2);
    }
    boot::run();
    // `boot::run` stops the machine; returning means that failed. PID 1 exiting makes the
    // kernel panic, and `panic=N` on the command line then restarts (ends) the enclave.
    ExitCode::FAILURE
}
