//! Stopping the enclave once the program has ended: an enclave whose program died must end,
//! not hang.
//!
//! `RB_POWER_OFF` is what the brief of an init usually asks for, but on a kernel without a
//! power-off driver (the enclave kernel has no ACPI) Linux turns it into a halt: the vCPUs stop
//! and the enclave hangs, holding its memory and CPUs. So without ACPI init restarts instead,
//! as AWS's own enclave init does: with `reboot=k` on the command line the kernel resets
//! through the keyboard controller, which the Nitro hypervisor (and Firecracker, and QEMU with
//! `-no-reboot`) take as the end of the VM. With ACPI (a QEMU test machine) it powers off.

use std::io;
use std::path::Path;

use nix::sys::reboot::{RebootMode, reboot};

/// Present when the kernel has ACPI, and so a working power-off.
pub const ACPI_DIR: &str = "/sys/firmware/acpi";

/// The `reboot(2)` command that ends the machine: power-off with ACPI, restart without.
pub fn mode(acpi: bool) -> RebootMode {
    if acpi {
        RebootMode::RB_POWER_OFF
    } else {
        RebootMode::RB_AUTOBOOT
    }
}

/// Flushes the file systems and the console, then ends the machine. Returns only if
/// `reboot(2)` failed.
pub fn stop() -> io::Error {
    nix::unistd::sync();
    let _ = nix::sys::termios::tcdrain(std::io::stdout());
    let _ = nix::sys::termios::tcdrain(std::io::stderr());
    match reboot(mode(Path::new(ACPI_DIR).exists())) {
        Ok(never) => match never {},
        Err(e) => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_off_only_where_it_works() {
        assert_eq!(mode(true), RebootMode::RB_POWER_OFF);
        assert_eq!(mode(false), RebootMode::RB_AUTOBOOT);
    }
}
