//! The `N=HEX` syntax of a PCR pin, as every tool takes it (`--pcr 0=…`, `PCR8=…`).

use std::fmt;
use std::str::FromStr;

/// How many PCRs a Nitro attestation document can carry.
pub const MAX_PCRS: u16 = 32;

/// One expected PCR value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrPin {
    /// The PCR index, below [`MAX_PCRS`].
    pub index: u16,
    /// The expected value (48 bytes for SHA-384 PCRs).
    pub value: Vec<u8>,
}

/// Why a pin does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PcrPinError {
    /// No `=`.
    #[error("{0:?}: expected N=HEX (like 0=a1b2…)")]
    Syntax(String),
    /// The index is not a number below [`MAX_PCRS`].
    #[error("{0:?}: the PCR index must be a number from 0 to 31")]
    Index(String),
    /// The value is not hex, or is empty.
    #[error("{0:?}: the PCR value must be non-empty hex")]
    Value(String),
}

impl FromStr for PcrPin {
    type Err = PcrPinError;

    fn from_str(s: &str) -> Result<Self, PcrPinError> {
        let (index, value) = s
            .split_once('=')
            .ok_or_else(|| PcrPinError::Syntax(s.to_owned()))?;
        let index_text = index.strip_prefix("PCR").unwrap_or(index);
        let index: u16 = index_text
            .parse()
            .ok()
            .filter(|i| *i < MAX_PCRS)
            .ok_or_else(|| PcrPinError::Index(s.to_owned()))?;
        let hex = value.strip_prefix("0x").unwrap_or(value);
        let value = data_encoding::HEXLOWER_PERMISSIVE
            .decode(hex.as_bytes())
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| PcrPinError::Value(s.to_owned()))?;
        Ok(PcrPin { index, value })
    }
}

impl fmt::Display for PcrPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={}",
            self.index,
            data_encoding::HEXLOWER.encode(&self.value)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_and_print() {
        let p: PcrPin = "0=ABcd".parse().unwrap();
        assert_eq!(
            p,
            PcrPin {
                index: 0,
                value: vec![0xab, 0xcd]
            }
        );
        assert_eq!(p.to_string(), "0=abcd");
        assert_eq!("PCR8=0x01".parse::<PcrPin>().unwrap().index, 8);
        assert!(matches!("0".parse::<PcrPin>(), Err(PcrPinError::Syntax(_))));
        assert!(matches!(
            "32=00".parse::<PcrPin>(),
            Err(PcrPinError::Index(_))
        ));
        assert!(matches!(
            "x=00".parse::<PcrPin>(),
            Err(PcrPinError::Index(_))
        ));
        assert!(matches!(
            "0=zz".parse::<PcrPin>(),
            Err(PcrPinError::Value(_))
        ));
        assert!(matches!("0=".parse::<PcrPin>(), Err(PcrPinError::Value(_))));
        assert!(matches!(
            "0=abc".parse::<PcrPin>(),
            Err(PcrPinError::Value(_))
        ));
    }
}

/// Why a set of pins does not identify one enclave image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IncompletePins {
    /// PCR0 (the whole image) is not pinned.
    #[error("PCR0 is not pinned")]
    NoPcr0,
    /// PCR0 is pinned, but neither PCR1 and PCR2 nor PCR8.
    #[error("PCR0 is pinned, but neither PCR1 and PCR2 nor PCR8 is")]
    NoPcr1And2OrPcr8,
    /// A pin is not 48 bytes (SHA-384).
    #[error("PCR{index} is pinned to {len} bytes; Nitro PCRs are 48 bytes (SHA-384)")]
    Length {
        /// The PCR index.
        index: u16,
        /// The pinned length.
        len: usize,
    },
    /// PCR0 is pinned to zeros: that is a debug-mode enclave, which the operator can read.
    #[error("PCR0 is pinned to zeros, which only a debug-mode enclave reports")]
    DebugPcr0,
}

/// Checks that `pins` identify one enclave image: PCR0, plus PCR1 and PCR2 or PCR8, each 48
/// bytes, and PCR0 not the zeros of a debug-mode enclave.
pub fn check_complete(pins: &[PcrPin]) -> Result<(), IncompletePins> {
    if let Some(p) = pins.iter().find(|p| p.value.len() != 48) {
        return Err(IncompletePins::Length {
            index: p.index,
            len: p.value.len(),
        });
    }
    let has = |i: u16| pins.iter().any(|p| p.index == i);
    let pcr0 = pins
        .iter()
        .find(|p| p.index == 0)
        .ok_or(IncompletePins::NoPcr0)?;
    if pcr0.value.iter().all(|b| *b == 0) {
        return Err(IncompletePins::DebugPcr0);
    }
    if !((has(1) && has(2)) || has(8)) {
        return Err(IncompletePins::NoPcr1And2OrPcr8);
    }
    Ok(())
}

/// Whether every pin in `pins` equals the PCR of that index in `pcrs`.
pub fn all_match(pins: &[PcrPin], pcrs: &std::collections::BTreeMap<u16, Vec<u8>>) -> bool {
    pins.iter()
        .all(|p| pcrs.get(&p.index).is_some_and(|v| *v == p.value))
}

#[cfg(test)]
mod completeness {
    use super::*;

    fn pin(index: u16, byte: u8) -> PcrPin {
        PcrPin {
            index,
            value: vec![byte; 48],
        }
    }

    #[test]
    fn pcr0_and_pcr1_2_or_pcr8_are_complete() {
        assert_eq!(check_complete(&[]), Err(IncompletePins::NoPcr0));
        assert_eq!(
            check_complete(&[pin(0, 1)]),
            Err(IncompletePins::NoPcr1And2OrPcr8)
        );
        assert_eq!(
            check_complete(&[pin(0, 1), pin(1, 1)]),
            Err(IncompletePins::NoPcr1And2OrPcr8)
        );
        assert_eq!(check_complete(&[pin(0, 1), pin(1, 1), pin(2, 1)]), Ok(()));
        assert_eq!(check_complete(&[pin(0, 1), pin(8, 1)]), Ok(()));
        assert_eq!(
            check_complete(&[pin(0, 0), pin(8, 1)]),
            Err(IncompletePins::DebugPcr0)
        );
        let short = PcrPin {
            index: 2,
            value: vec![1; 32],
        };
        assert_eq!(
            check_complete(&[pin(0, 1), pin(1, 1), short]),
            Err(IncompletePins::Length { index: 2, len: 32 })
        );
    }

    #[test]
    fn all_match_needs_every_pin() {
        let pcrs: std::collections::BTreeMap<u16, Vec<u8>> =
            [(0, vec![1; 48]), (1, vec![2; 48])].into_iter().collect();
        assert!(all_match(&[pin(0, 1), pin(1, 2)], &pcrs));
        assert!(!all_match(&[pin(0, 1), pin(1, 3)], &pcrs));
        assert!(!all_match(&[pin(0, 1), pin(2, 2)], &pcrs));
    }
}
