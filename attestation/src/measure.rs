//! What the simulator measures: its fixed PCR1 and PCR2, and PCR0 as the SHA-384 of the enclave
//! binary. `SimulatedNsm` reports these values and `nitrosync-attest measure --simulator` prints
//! them, so both come from here. Pure: no files, no clock.

use nitrosync_shared::measurements::{ImageKind, Measurements, PCR_LEN};
use ring::digest::{SHA384, digest};

/// PCR1 of every simulated document: SHA-384 of the ASCII string
/// `nitrosync simulator PCR1 (kernel and boot ramfs)`. On Nitro, PCR1 measures the kernel and
/// boot ramfs; the simulator has neither.
pub const SIM_PCR1: [u8; PCR_LEN] = hex_48(
    b"03968c15dc3213e337d0c137c68be55931235f6bf41b4d88221f6320d93533c87f74363a4cc246d615942b2ec78f71b8",
);
/// PCR2 of every simulated document: SHA-384 of the ASCII string
/// `nitrosync simulator PCR2 (user application)`. On Nitro, PCR2 measures the user application
/// ramfs; in the simulator the application is measured by PCR0 alone.
pub const SIM_PCR2: [u8; PCR_LEN] = hex_48(
    b"905aa68abdf25979103c05324f1b7a3f53569d5fa6faefcd37da093b0ca8216f72e84ffe19fab68116562a535ae4bb19",
);

/// Decodes 96 lowercase hex digits at compile time.
const fn hex_48(hex: &[u8; 96]) -> [u8; PCR_LEN] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not a lowercase hex digit"),
        }
    }
    let mut out = [0u8; 48];
    let mut i = 0;
    while i < 48 {
        out[i] = (nibble(hex[2 * i]) << 4) | nibble(hex[2 * i + 1]);
        i += 1;
    }
    out
}

/// PCR0 of a simulated enclave: the SHA-384 of its binary.
pub fn simulator_pcr0(enclave_binary: &[u8]) -> [u8; PCR_LEN] {
    let mut pcr0 = [0u8; PCR_LEN];
    pcr0.copy_from_slice(digest(&SHA384, enclave_binary).as_ref());
    pcr0
}

/// The measurements the simulator reports for `enclave_binary`, in the published
/// `measurements.json` form (kind `simulator`, no file facts, no inputs).
pub fn simulator_measurements(enclave_binary: &[u8]) -> Measurements {
    Measurements::new(
        ImageKind::Simulator,
        &simulator_pcr0(enclave_binary),
        &SIM_PCR1,
        &SIM_PCR2,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_constants_are_the_documented_hashes() {
        let h = |s: &str| digest(&SHA384, s.as_bytes()).as_ref().to_vec();
        assert_eq!(
            SIM_PCR1.to_vec(),
            h("nitrosync simulator PCR1 (kernel and boot ramfs)")
        );
        assert_eq!(
            SIM_PCR2.to_vec(),
            h("nitrosync simulator PCR2 (user application)")
        );
    }

    #[test]
    fn simulator_measurements_hash_the_binary() {
        let m = simulator_measurements(b"enclave");
        assert_eq!(m.kind, ImageKind::Simulator);
        assert_eq!(m.pcr0, hex::encode(digest(&SHA384, b"enclave")));
        assert_eq!(m.pcr1, hex::encode(SIM_PCR1));
        assert_eq!(m.pcr2, hex::encode(SIM_PCR2));
        assert_eq!((m.pcr8, m.eif_sha256, m.eif_bytes), (None, None, None));
    }
}
