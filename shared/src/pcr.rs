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
