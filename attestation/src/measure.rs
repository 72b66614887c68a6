//! What the simulator measures: its fixed PCR1 and PCR2, and PCR0 as the SHA-384 of the enclave
//! binary. `SimulatedNsm` reports these values and `nitrosync-attest measure --simulator` prints
//! them, so both come from here. No clock; files are only read, in bounded chunks, by the
//! `_from_reader` forms, so measuring a large binary never holds it in memory.

use std::io::{self, Read};

use nitrosync_shared::measurements::{ImageKind, Measurements, PCR_LEN};
use ring::digest::{Context, SHA384, digest};

/// Bytes read at a time when hashing a binary from a reader.
const HASH_CHUNK: usize = 64 * 1024;

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

/// PCR0 of a simulated enclave whose binary is read from `binary`, hashed in
/// 64 KiB chunks: the memory used does not grow with the binary's size.
pub fn simulator_pcr0_from_reader(mut binary: impl Read) -> io::Result<[u8; PCR_LEN]> {
    let mut ctx = Context::new(&SHA384);
    let mut buf = vec![0u8; HASH_CHUNK];
    loop {
        match binary.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => ctx.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let mut pcr0 = [0u8; PCR_LEN];
    pcr0.copy_from_slice(ctx.finish().as_ref());
    Ok(pcr0)
}

/// The measurements the simulator reports for `enclave_binary`, in the published
/// `measurements.json` form (kind `simulator`, no file facts, no inputs).
pub fn simulator_measurements(enclave_binary: &[u8]) -> Measurements {
    simulator_measurements_for_pcr0(&simulator_pcr0(enclave_binary))
}

/// [`simulator_measurements`] for a PCR0 already computed (for example by
/// [`simulator_pcr0_from_reader`]).
pub fn simulator_measurements_for_pcr0(pcr0: &[u8; PCR_LEN]) -> Measurements {
    Measurements::new(ImageKind::Simulator, pcr0, &SIM_PCR1, &SIM_PCR2)
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

    /// A reader that hands out at most 7 bytes per call and is interrupted once, so chunk
    /// boundaries and retries are exercised.
    struct Trickle<'a> {
        data: &'a [u8],
        interrupted: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if !self.interrupted {
                self.interrupted = true;
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(7).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn streamed_pcr0_equals_the_whole_buffer_hash() {
        let data: Vec<u8> = (0..(3 * HASH_CHUNK + 5))
            .map(|i| u8::try_from(i * 31 % 251).unwrap())
            .collect();
        let whole = simulator_pcr0(&data);
        assert_eq!(simulator_pcr0_from_reader(&data[..]).unwrap(), whole);
        let trickle = Trickle {
            data: &data,
            interrupted: false,
        };
        assert_eq!(simulator_pcr0_from_reader(trickle).unwrap(), whole);
        assert_eq!(
            simulator_pcr0_from_reader(io::empty()).unwrap(),
            simulator_pcr0(b"")
        );
        assert_eq!(
            simulator_measurements_for_pcr0(&whole),
            simulator_measurements(&data)
        );
    }

    #[test]
    fn a_failing_reader_is_an_error_not_a_hash() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk gone"))
            }
        }
        assert!(simulator_pcr0_from_reader(Broken).is_err());
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
