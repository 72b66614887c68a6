//! The hardware NSM through `/dev/nsm` (feature `nsm`). The `aws-nitro-enclaves-nsm-api` types
//! stay inside this module.

use aws_nitro_enclaves_nsm_api::api::{Request, Response};
use aws_nitro_enclaves_nsm_api::driver::{nsm_exit, nsm_init, nsm_process_request};
use serde_bytes::ByteBuf;

use crate::NsmError;
use crate::nsm::{Nsm, check_inputs};

/// The Nitro Secure Module of the enclave this process runs in.
#[derive(Debug)]
pub struct HardwareNsm {
    fd: i32,
}

impl HardwareNsm {
    /// Opens `/dev/nsm`. Fails outside a Nitro enclave.
    pub fn open() -> Result<Self, NsmError> {
        let fd = nsm_init();
        if fd < 0 {
            return Err(NsmError::DeviceUnavailable {
                reason: "cannot open /dev/nsm".into(),
            });
        }
        Ok(Self { fd })
    }

    fn request(&self, request: Request) -> Result<Response, NsmError> {
        match nsm_process_request(self.fd, request) {
            Response::Error(code) => Err(NsmError::Device {
                reason: format!("{code:?}"),
            }),
            response => Ok(response),
        }
    }
}

impl Drop for HardwareNsm {
    fn drop(&mut self) {
        nsm_exit(self.fd);
    }
}

impl Nsm for HardwareNsm {
    fn attest(
        &self,
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
        public_key: Option<&[u8]>,
    ) -> Result<Vec<u8>, NsmError> {
        check_inputs(user_data, nonce, public_key)?;
        let buf = |v: Option<&[u8]>| v.map(|b| ByteBuf::from(b.to_vec()));
        match self.request(Request::Attestation {
            user_data: buf(user_data),
            nonce: buf(nonce),
            public_key: buf(public_key),
        })? {
            Response::Attestation { document } => Ok(document),
            other => Err(NsmError::Device {
                reason: format!("unexpected answer to Attestation: {other:?}"),
            }),
        }
    }

    fn describe_pcr(&self, index: u16) -> Result<Vec<u8>, NsmError> {
        match self.request(Request::DescribePCR { index })? {
            Response::DescribePCR { data, .. } => Ok(data),
            other => Err(NsmError::Device {
                reason: format!("unexpected answer to DescribePCR: {other:?}"),
            }),
        }
    }
}
