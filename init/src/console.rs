//! Making sure standard input, output and error are the console.
//!
//! The kernel opens `/dev/console` for init from the initramfs, which must hold that node:
//! without it (and without `/dev/null`) the Rust runtime aborts before `main`. If the runtime
//! had to fall back to `/dev/null`, or a descriptor is closed, this reopens the console on it
//! from the devtmpfs on `/dev`, so every later line is seen.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd as _, IntoRawFd as _};
use std::path::Path;

/// The console device.
pub const CONSOLE: &str = "/dev/console";

/// Whether the descriptor's target (from `/proc/self/fd/N`) is a usable console: open, and not
/// `/dev/null`.
pub fn is_usable(fd_target: Option<&Path>) -> bool {
    fd_target.is_some_and(|t| t != Path::new("/dev/null"))
}

/// Reopens [`CONSOLE`] on whichever of descriptors 0, 1 and 2 is closed or `/dev/null`.
/// Needs `/proc` and `/dev` mounted. Returns how many it reopened.
pub fn ensure() -> io::Result<usize> {
    let unusable: Vec<u8> = (0..3u8)
        .filter(|fd| {
            !is_usable(
                std::fs::read_link(format!("/proc/self/fd/{fd}"))
                    .ok()
                    .as_deref(),
            )
        })
        .collect();
    if unusable.is_empty() {
        return Ok(0);
    }
    let console = OpenOptions::new().read(true).write(true).open(CONSOLE)?;
    for fd in &unusable {
        match fd {
            0 => nix::unistd::dup2_stdin(&console)?,
            1 => nix::unistd::dup2_stdout(&console)?,
            _ => nix::unistd::dup2_stderr(&console)?,
        }
    }
    if console.as_raw_fd() <= 2 {
        // It landed on one of the standard descriptors, which must stay open.
        let _ = console.into_raw_fd();
    }
    Ok(unusable.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_null_and_closed_descriptors_are_not_a_console() {
        assert!(!is_usable(None));
        assert!(!is_usable(Some(Path::new("/dev/null"))));
        assert!(is_usable(Some(Path::new("/dev/console"))));
        assert!(is_usable(Some(Path::new("/dev/ttyS0"))));
    }
}
