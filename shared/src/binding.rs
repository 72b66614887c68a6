//! What the enclave's attestation document binds to the enclave (DESIGN §3, issue 4).
//!
//! - `public_key` is the enclave's X25519 bundle key (32 bytes): tenants seal bundles to it.
//! - `user_data` is the CBOR encoding of [`AttestedKeys`]: the SHA-256 of the DER of the SAML
//!   signing certificate, so a customer can check that the metadata they register in IAM names a
//!   key that lives in this enclave.
//!
//! Both fields are covered by the NSM's signature, and the document's PCRs name the image.

use serde::{Deserialize, Serialize};

/// The `user_data` format this build writes.
pub const ATTESTED_KEYS_FORMAT: u32 = 1;

/// The contents of the attestation document's `user_data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestedKeys {
    /// [`ATTESTED_KEYS_FORMAT`].
    pub format: u32,
    /// SHA-256 of the SAML signing certificate (DER).
    #[serde(with = "serde_bytes")]
    pub saml_cert_sha256: [u8; 32],
    /// Where the keys come from. `None` (absent) means an ephemeral identity, made at start and
    /// never leaving the enclave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentitySource>,
    /// SHA-256 of the next SAML certificate (32 bytes) while a key rotation is under way: the
    /// metadata then lists it beside the current one.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub next_saml_cert_sha256: Option<Vec<u8>>,
}

/// Where the enclave's identity comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdentitySource {
    /// Made at start; it dies with the process.
    Ephemeral,
    /// Sealed under a KMS key; unsealed by every enclave of an image the key's policy names.
    KmsSealed {
        /// The KMS key's ARN.
        key_arn: String,
        /// PCR0 (lowercase hex) of every image the key's policy can release the identity to,
        /// checked by the enclave from the policy itself. A verifier must trust all of them:
        /// any of them can hold these keys.
        images: Vec<String>,
    },
}

impl AttestedKeys {
    /// The bytes to put in `user_data`.
    pub fn to_user_data(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48);
        // Encoding plain data into a Vec cannot fail.
        let _ = ciborium::into_writer(self, &mut out);
        out
    }

    /// Parses `user_data`; rejects other formats.
    pub fn from_user_data(bytes: &[u8]) -> Result<Self, crate::FrameError> {
        let keys: AttestedKeys = crate::frame::decode_payload(bytes)?;
        if keys.format != ATTESTED_KEYS_FORMAT {
            return Err(crate::FrameError::Malformed(format!(
                "attested keys format {} is not supported",
                keys.format
            )));
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let k = AttestedKeys {
            format: ATTESTED_KEYS_FORMAT,
            saml_cert_sha256: [3; 32],
            identity: None,
            next_saml_cert_sha256: None,
        };
        let bytes = k.to_user_data();
        assert!(bytes.len() < 64);
        assert_eq!(AttestedKeys::from_user_data(&bytes).unwrap(), k);
        assert!(AttestedKeys::from_user_data(&[]).is_err());
        assert!(AttestedKeys::from_user_data(&[0xa0]).is_err());
        let other = AttestedKeys {
            format: 2,
            ..k.clone()
        };
        assert!(AttestedKeys::from_user_data(&other.to_user_data()).is_err());
        let sealed = AttestedKeys {
            identity: Some(IdentitySource::KmsSealed {
                key_arn: "arn:aws:kms:us-east-1:111122223333:key/k".into(),
                images: vec!["ab".repeat(48)],
            }),
            ..k
        };
        assert!(sealed.to_user_data().len() < 512);
        assert_eq!(
            AttestedKeys::from_user_data(&sealed.to_user_data()).unwrap(),
            sealed
        );
    }
}
