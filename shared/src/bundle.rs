//! The sealed bundle (DESIGN §6): what a tenant submits for one destination.
//!
//! The header travels in the clear, signed by the tenant's Ed25519 key; it is also the HPKE
//! associated data. The variables travel encrypted to the enclave's attested X25519 key. This
//! module owns the types, their validation, and the exact bytes that are signed and used as AAD.
//! The cryptography itself (HPKE, Ed25519) lives in `nitrosync-bundle`.

use crate::names::{self, NameError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The bundle format this build writes and reads.
pub const BUNDLE_FORMAT: u32 = 1;

/// Domain separator of the tenant's signature.
pub const SIGNATURE_DOMAIN: &[u8] = b"nitrosync/bundle/v1\0";

/// Domain separator of the SAML subject derivation.
pub const SUBJECT_DOMAIN: &[u8] = b"nitrosync/saml-subject/v1";

pub use crate::tags::RESERVED_TAGS;

/// Most user tags a destination may carry: AWS allows 50, nitrosync uses four.
pub const MAX_USER_TAGS: usize = 50 - RESERVED_TAGS.len();

/// Largest encrypted payload accepted (the variables' JSON is capped at 64 KiB; CBOR framing and
/// the AEAD tag add a little).
pub const MAX_CIPHERTEXT_LEN: usize = 256 * 1024;

/// A tenant's submission for one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedBundle {
    /// Clear-text header: signed, and the HPKE associated data.
    pub header: BundleHeader,
    /// HPKE encapsulated key.
    #[serde(with = "serde_bytes")]
    pub enc: Vec<u8>,
    /// HPKE ciphertext of the CBOR-encoded [`BundlePlaintext`].
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
    /// Ed25519 signature by `header.tenant_key` over [`signing_message`].
    #[serde(with = "serde_bytes")]
    pub signature: [u8; 64],
}

/// The signed, clear-text part of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleHeader {
    /// [`BUNDLE_FORMAT`].
    pub format: u32,
    /// The tenant's Ed25519 public key.
    #[serde(with = "serde_bytes")]
    pub tenant_key: [u8; 32],
    /// The enclave X25519 public key the variables are sealed to.
    #[serde(with = "serde_bytes")]
    pub enclave_key: [u8; 32],
    /// Where the variables go.
    pub destination: DestinationConfig,
    /// Strictly increasing per destination.
    pub version: u64,
    /// When the tenant sealed it (Unix milliseconds; informational).
    pub created_at_ms: u64,
}

/// A destination: one secret in one AWS account and region.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DestinationConfig {
    /// The destination's id, unique per tenant: `[A-Za-z0-9_.-]{1,64}`.
    pub id: String,
    /// AWS region.
    pub region: String,
    /// Secrets Manager secret name.
    pub secret_name: String,
    /// The IAM role to assume.
    pub role_arn: String,
    /// The IAM SAML provider that the role trusts.
    pub saml_provider_arn: String,
    /// KMS key for the secret (id, ARN, alias or alias ARN); AWS's default key when absent.
    pub kms_key_id: Option<String>,
    /// User tags for the secret.
    pub tags: BTreeMap<String, String>,
    /// What `Delete` does.
    pub delete_policy: DeletePolicy,
}

/// What deleting a destination does to its secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum DeletePolicy {
    /// Leave the secret in place (the default).
    #[default]
    Retain,
    /// Delete the secret: with a recovery window of 7 to 30 days, or at once when `None`
    /// (`ForceDeleteWithoutRecovery`).
    Delete {
        /// Days before the secret is gone for good.
        recovery_days: Option<u32>,
    },
}

/// The encrypted part of a bundle, once decrypted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundlePlaintext {
    /// The environment: variable name to value.
    pub variables: BTreeMap<String, String>,
}

impl std::fmt::Debug for BundlePlaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names are not secret; values are.
        f.debug_struct("BundlePlaintext")
            .field("variables", &self.variables.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A field of a destination or bundle that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    /// The field, as users write it (`secret_name`, `tags.env`, ...).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

fn bad(field: impl Into<String>, e: impl ToString) -> ConfigError {
    ConfigError {
        field: field.into(),
        reason: e.to_string(),
    }
}

impl DestinationConfig {
    /// Checks every field against nitrosync's and AWS's rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        names::destination_id(&self.id).map_err(|e| bad("id", e))?;
        if !names::is_region(&self.region) {
            return Err(bad(
                "region",
                format!("{:?} is not an AWS region name", self.region),
            ));
        }
        names::secret_name(&self.secret_name).map_err(|e| bad("secret_name", e))?;
        let role = names::role_arn(&self.role_arn).map_err(|e| bad("role_arn", e))?;
        let provider = names::saml_provider_arn(&self.saml_provider_arn)
            .map_err(|e| bad("saml_provider_arn", e))?;
        if role.account != provider.account || role.partition != provider.partition {
            return Err(bad(
                "saml_provider_arn",
                "must be in the same account and partition as role_arn",
            ));
        }
        if let Some(k) = &self.kms_key_id {
            names::kms_key_id(k).map_err(|e| bad("kms_key_id", e))?;
        }
        if self.tags.len() > MAX_USER_TAGS {
            return Err(bad(
                "tags",
                format!("at most {MAX_USER_TAGS} tags (AWS allows 50; nitrosync uses 4)"),
            ));
        }
        for (k, v) in &self.tags {
            names::tag(k, v).map_err(|e| bad(format!("tags.{k}"), e))?;
        }
        if let DeletePolicy::Delete {
            recovery_days: Some(d),
        } = self.delete_policy
            && !(7..=30).contains(&d)
        {
            return Err(bad("delete_policy", "recovery window must be 7 to 30 days"));
        }
        Ok(())
    }

    /// The AWS account id, from the role ARN (valid configs only).
    pub fn account(&self) -> Option<String> {
        names::role_arn(&self.role_arn).ok().map(|a| a.account)
    }
}

impl BundleHeader {
    /// The header's canonical CBOR: the bytes that are signed and used as HPKE AAD.
    /// Our encoder is deterministic (fixed field order, sorted maps, shortest integers), so a
    /// decoded header re-encodes to the same bytes the tenant signed.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        // Encoding plain data into a Vec cannot fail.
        let _ = ciborium::into_writer(self, &mut out);
        out
    }

    /// Checks the header's own fields (not the signature or the enclave key).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.format != BUNDLE_FORMAT {
            return Err(bad(
                "format",
                format!(
                    "format {} is not supported (expected {BUNDLE_FORMAT})",
                    self.format
                ),
            ));
        }
        if self.version == 0 {
            return Err(bad("version", "versions start at 1"));
        }
        self.destination.validate()
    }
}

fn push_len_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    // Every part is far below 4 GiB (frames are at most 1 MiB).
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The exact bytes the tenant signs: a domain separator, then the canonical header, the
/// encapsulated key and the ciphertext, each with a `u32` big-endian length.
pub fn signing_message(header: &BundleHeader, enc: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    let header = header.canonical_bytes();
    let mut out = Vec::with_capacity(
        SIGNATURE_DOMAIN.len() + 12 + header.len() + enc.len() + ciphertext.len(),
    );
    out.extend_from_slice(SIGNATURE_DOMAIN);
    push_len_prefixed(&mut out, &header);
    push_len_prefixed(&mut out, enc);
    push_len_prefixed(&mut out, ciphertext);
    out
}

/// The SAML subject of a destination (DESIGN §3):
/// `"ns1-" + base32lower_nopad(SHA-256(domain ‖ tenant_key ‖ destination_id))[0..32]`.
pub fn saml_subject(tenant_key: &[u8; 32], destination_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(SUBJECT_DOMAIN);
    h.update(tenant_key);
    h.update(destination_id.as_bytes());
    let digest = h.finalize();
    let mut b32 = data_encoding::BASE32_NOPAD
        .encode(&digest)
        .to_ascii_lowercase();
    b32.truncate(32);
    format!("ns1-{b32}")
}

/// Checks variable names against `[A-Za-z_][A-Za-z0-9_]*`.
pub fn validate_variables(vars: &BTreeMap<String, String>) -> Result<(), NameError> {
    vars.keys().try_for_each(|k| names::variable_name(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> DestinationConfig {
        DestinationConfig {
            id: "prod-api".into(),
            region: "us-east-1".into(),
            secret_name: "prod/api/env".into(),
            role_arn: "arn:aws:iam::123456789012:role/nitrosync-prod".into(),
            saml_provider_arn: "arn:aws:iam::123456789012:saml-provider/nitrosync".into(),
            kms_key_id: None,
            tags: BTreeMap::from([("team".into(), "payments".into())]),
            delete_policy: DeletePolicy::Retain,
        }
    }

    #[test]
    fn sample_is_valid_and_mismatched_accounts_are_not() {
        sample().validate().unwrap();
        let mut d = sample();
        d.saml_provider_arn = "arn:aws:iam::210987654321:saml-provider/nitrosync".into();
        assert_eq!(d.validate().unwrap_err().field, "saml_provider_arn");
        let mut d = sample();
        d.tags.insert("aws:owner".into(), "x".into());
        assert_eq!(d.validate().unwrap_err().field, "tags.aws:owner");
        let mut d = sample();
        d.delete_policy = DeletePolicy::Delete {
            recovery_days: Some(3),
        };
        assert_eq!(d.validate().unwrap_err().field, "delete_policy");
        let mut d = sample();
        d.tags = (0..=MAX_USER_TAGS)
            .map(|i| (format!("k{i}"), "v".into()))
            .collect();
        assert_eq!(d.validate().unwrap_err().field, "tags");
    }

    #[test]
    fn subject_matches_the_design_formula() {
        let key = [7u8; 32];
        let s = saml_subject(&key, "prod-api");
        assert!(s.starts_with("ns1-") && s.len() == 36, "{s}");
        assert!(
            s[4..]
                .bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
        );
        // Independent computation of the same formula.
        let mut input = SUBJECT_DOMAIN.to_vec();
        input.extend_from_slice(&key);
        input.extend_from_slice(b"prod-api");
        let d = Sha256::digest(&input);
        let want = data_encoding::BASE32_NOPAD.encode(&d).to_ascii_lowercase();
        assert_eq!(&s[4..], &want[..32]);
        assert_ne!(s, saml_subject(&key, "prod-api2"));
        assert_ne!(s, saml_subject(&[8u8; 32], "prod-api"));
    }

    #[test]
    fn header_bytes_are_canonical_and_bundles_round_trip() {
        let header = BundleHeader {
            format: BUNDLE_FORMAT,
            tenant_key: [1; 32],
            enclave_key: [2; 32],
            destination: sample(),
            version: 3,
            created_at_ms: 1_700_000_000_000,
        };
        header.validate().unwrap();
        let bytes = header.canonical_bytes();
        let back: BundleHeader = crate::frame::decode_payload(&bytes).unwrap();
        assert_eq!(back, header);
        assert_eq!(back.canonical_bytes(), bytes);
        let bundle = SealedBundle {
            header,
            enc: vec![9; 32],
            ciphertext: vec![8; 100],
            signature: [5; 64],
        };
        let framed = crate::frame::encode(&bundle).unwrap();
        // Byte strings, not arrays of integers: the encoding stays compact.
        assert!(
            framed.len() < bytes.len() + 32 + 100 + 64 + 64,
            "{}",
            framed.len()
        );
        let back: SealedBundle = crate::frame::decode_payload(&framed[4..]).unwrap();
        assert_eq!(back, bundle);
        let m1 = signing_message(&bundle.header, &bundle.enc, &bundle.ciphertext);
        let m2 = signing_message(&bundle.header, &bundle.ciphertext, &bundle.enc);
        assert_ne!(m1, m2);
    }

    #[test]
    fn plaintext_debug_hides_values() {
        let p = BundlePlaintext {
            variables: BTreeMap::from([("API_KEY".into(), "hunter2".into())]),
        };
        let s = format!("{p:?}");
        assert!(s.contains("API_KEY") && !s.contains("hunter2"), "{s}");
    }
}
