//! `measurements.json`: the PCRs of an enclave image, as `make eif` publishes them,
//! `nitrosync-attest measure` recomputes them, and `nitrosync trust add` pins them.
//!
//! The PCR keys (`PCR0`, `PCR1`, `PCR2`, optional `PCR8`) and `HashAlgorithm` use the names
//! `nitro-cli build-enclave` prints, so a tenant can also pin nitro-cli's `Measurements` object.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::pcr::{PcrPin, PcrPinError};

/// The value of [`Measurements::format`].
pub const FORMAT: &str = "nitrosync-measurements/1";

/// The length of a SHA-384 PCR.
pub const PCR_LEN: usize = 48;

/// What was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    /// A Nitro Enclave Image File: PCR0/1/2 as the Nitro hypervisor computes them.
    Eif,
    /// The simulator: PCR0 is the SHA-384 of the enclave binary, PCR1 and PCR2 are the
    /// simulator's fixed values.
    Simulator,
}

/// The published measurements of one enclave image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measurements {
    /// Always [`FORMAT`].
    pub format: String,
    /// What was measured.
    pub kind: ImageKind,
    /// Always `"Sha384"`.
    #[serde(rename = "HashAlgorithm")]
    pub hash_algorithm: String,
    /// PCR0: the whole image (kernel, cmdline, every ramdisk), lowercase hex.
    #[serde(rename = "PCR0")]
    pub pcr0: String,
    /// PCR1: the kernel, cmdline and first (boot) ramdisk, lowercase hex.
    #[serde(rename = "PCR1")]
    pub pcr1: String,
    /// PCR2: the application ramdisks, lowercase hex.
    #[serde(rename = "PCR2")]
    pub pcr2: String,
    /// PCR8: the signing certificate of a signed EIF, lowercase hex.
    #[serde(rename = "PCR8", default, skip_serializing_if = "Option::is_none")]
    pub pcr8: Option<String>,
    /// SHA-256 of the EIF file (EIF only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eif_sha256: Option<String>,
    /// Size of the EIF file in bytes (EIF only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eif_bytes: Option<u64>,
    /// The versions and hashes of every build input (kernel source package, toolchain,
    /// Cargo.lock, …), flat `name → value`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
}

impl Measurements {
    /// Measurements with the given PCRs (raw bytes), no PCR8, no file facts and no inputs.
    pub fn new(kind: ImageKind, pcr0: &[u8], pcr1: &[u8], pcr2: &[u8]) -> Self {
        let hex = |v: &[u8]| data_encoding::HEXLOWER.encode(v);
        Self {
            format: FORMAT.to_owned(),
            kind,
            hash_algorithm: "Sha384".to_owned(),
            pcr0: hex(pcr0),
            pcr1: hex(pcr1),
            pcr2: hex(pcr2),
            pcr8: None,
            eif_sha256: None,
            eif_bytes: None,
            inputs: BTreeMap::new(),
        }
    }

    /// The PCRs as pins (PCR0, PCR1, PCR2 and PCR8 if present). Fails on a value that is not
    /// hex; [`crate::pcr::check_complete`] then checks lengths and completeness.
    pub fn pins(&self) -> Result<Vec<PcrPin>, PcrPinError> {
        let mut pins = vec![
            format!("0={}", self.pcr0).parse()?,
            format!("1={}", self.pcr1).parse()?,
            format!("2={}", self.pcr2).parse()?,
        ];
        if let Some(p8) = &self.pcr8 {
            pins.push(format!("8={p8}").parse()?);
        }
        Ok(pins)
    }

    /// Whether the PCRs (0, 1, 2 and 8) are the same as `other`'s, ignoring everything else.
    pub fn same_pcrs(&self, other: &Measurements) -> bool {
        self.pcr0 == other.pcr0
            && self.pcr1 == other.pcr1
            && self.pcr2 == other.pcr2
            && self.pcr8 == other.pcr8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_hex_encodes_and_compares_pcrs_only() {
        let a = Measurements::new(
            ImageKind::Eif,
            &[0xab; PCR_LEN],
            &[1; PCR_LEN],
            &[2; PCR_LEN],
        );
        assert_eq!(a.pcr0, "ab".repeat(PCR_LEN));
        let mut b = a.clone();
        b.inputs.insert("rustc".into(), "1.95.0".into());
        b.eif_bytes = Some(1);
        assert!(a.same_pcrs(&b));
        b.pcr2 = "00".repeat(PCR_LEN);
        assert!(!a.same_pcrs(&b));
        let pins = a.pins().unwrap();
        assert_eq!(pins.len(), 3);
        assert_eq!(crate::pcr::check_complete(&pins), Ok(()));
        b.pcr1 = "zz".into();
        assert!(b.pins().is_err());
    }
}
