//! The seam over the Nitro Secure Module: something that makes attestation documents.

use std::time::SystemTime;

use crate::NsmError;

/// Most bytes of `user_data` an NSM accepts (AWS's documented limit).
pub const NSM_MAX_USER_DATA_LEN: usize = 512;
/// Most bytes of `nonce` an NSM accepts (AWS's documented limit).
pub const NSM_MAX_NONCE_LEN: usize = 512;
/// Most bytes of `public_key` an NSM accepts (AWS's documented limit).
pub const NSM_MAX_PUBLIC_KEY_LEN: usize = 1024;

/// A Nitro Secure Module: the hardware one (`HardwareNsm`, feature `nsm`) or the
/// simulated one (`SimulatedNsm`, feature `sim`).
pub trait Nsm: Send + Sync {
    /// Makes a signed attestation document (COSE_Sign1 bytes) that binds the given optional
    /// user data, nonce and public key to this enclave's measurements.
    fn attest(
        &self,
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
        public_key: Option<&[u8]>,
    ) -> Result<Vec<u8>, NsmError>;

    /// The current value of PCR `index`.
    fn describe_pcr(&self, index: u16) -> Result<Vec<u8>, NsmError>;
}

/// Checks attestation inputs against the NSM's limits, so that both implementations refuse the
/// same requests.
#[cfg_attr(not(any(feature = "sim", feature = "nsm")), allow(dead_code))]
pub(crate) fn check_inputs(
    user_data: Option<&[u8]>,
    nonce: Option<&[u8]>,
    public_key: Option<&[u8]>,
) -> Result<(), NsmError> {
    for (field, value, max) in [
        ("user_data", user_data, NSM_MAX_USER_DATA_LEN),
        ("nonce", nonce, NSM_MAX_NONCE_LEN),
        ("public_key", public_key, NSM_MAX_PUBLIC_KEY_LEN),
    ] {
        if let Some(value) = value
            && value.len() > max
        {
            return Err(NsmError::InputTooLarge {
                field,
                len: value.len(),
                max,
            });
        }
    }
    Ok(())
}

/// A source of the current time, so that tests control what the simulator stamps.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

impl<F: Fn() -> SystemTime + Send + Sync> Clock for F {
    fn now(&self) -> SystemTime {
        self()
    }
}
