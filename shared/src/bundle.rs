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

/// The bundle format this build writes and reads. Format 2 added the signed operation and the
/// bundle's lifetime.
pub const BUNDLE_FORMAT: u32 = 2;

/// How long a write or delete bundle stays valid by default: long enough to ride out an outage
/// of the parent, short enough that an abandoned bundle cannot be replayed for ever.
pub const DEFAULT_LIFETIME_MS: u64 = 30 * 24 * 3600 * 1000;

/// The longest lifetime a bundle may carry.
pub const MAX_LIFETIME_MS: u64 = 400 * 24 * 3600 * 1000;

/// How long a test-connection bundle stays valid by default.
pub const TEST_LIFETIME_MS: u64 = 5 * 60 * 1000;

/// The longest lifetime a test-connection bundle may carry: a test is signed for now, not for
/// whenever the parent would like to spend the customer's quota.
pub const MAX_TEST_LIFETIME_MS: u64 = 15 * 60 * 1000;

/// How long after it was sealed (`created_at_ms`, by the enclave's trusted clock) a write bundle
/// may still *create* its secret. Past it, the bundle may still update the secret for the rest
/// of its lifetime, but no longer create it: a secret that is absent may have been deleted by
/// the tenant's tombstone (with `ForceDeleteWithoutRecovery`, or after its recovery window),
/// and then nothing in AWS holds the version floor that would refuse an older bundle. An hour
/// bounds how long the parent can resurrect a deleted secret with a bundle it kept, and is long
/// enough for an honest first push to reach the enclave. A tenant whose bundle missed it pushes
/// again, which seals a new one.
pub const CREATION_WINDOW_MS: u64 = 3600 * 1000;

/// How far ahead of the enclave's trusted clock a bundle's `created_at_ms` may be and still
/// create its secret: a tenant clock that runs a little fast. Five minutes, the clock
/// difference AWS accepts in a SigV4 signature. A bundle sealed further in the future would
/// otherwise carry a creation window that opens later than the hour after it reached the
/// parent.
pub const CREATION_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

/// Whether a bundle may create its secret at a given time ([`BundleHeader::creation_window_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreationWindow {
    /// Within [`CREATION_WINDOW_MS`] after `created_at_ms` (or at most
    /// [`CREATION_CLOCK_SKEW_MS`] before it).
    Open,
    /// The window closed at `closed_at_ms` (Unix milliseconds), before now.
    Passed {
        /// `created_at_ms` + [`CREATION_WINDOW_MS`].
        closed_at_ms: u64,
    },
    /// `created_at_ms` is more than [`CREATION_CLOCK_SKEW_MS`] after now: the tenant's clock
    /// is ahead.
    NotYetOpen {
        /// How far `created_at_ms` is ahead of now, in milliseconds.
        ahead_ms: u64,
    },
}

/// What the tenant signs the enclave to do with a bundle. The parent cannot choose another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Operation {
    /// Make the secret equal to the bundle's variables.
    #[default]
    Write,
    /// A tombstone: apply the destination's delete policy. Its version is a floor: no older
    /// bundle is accepted afterwards.
    Delete,
    /// Check the role and the trust policy with a placeholder secret; writes nothing else.
    TestConnection,
}

/// The signed terms of a bundle: its version, its operation and its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    /// Strictly increasing per destination.
    pub version: u64,
    /// When the tenant sealed it (Unix milliseconds).
    pub created_at_ms: u64,
    /// What the enclave may do with it.
    pub operation: Operation,
    /// After this (Unix milliseconds, by the enclave's trusted clock) the bundle is refused.
    pub not_after_ms: u64,
}

impl Terms {
    /// A write of `version` sealed at `now_ms`, valid for [`DEFAULT_LIFETIME_MS`].
    pub fn write(version: u64, now_ms: u64) -> Self {
        Self::lasting(Operation::Write, version, now_ms, DEFAULT_LIFETIME_MS)
    }

    /// A tombstone of `version` sealed at `now_ms`, valid for [`DEFAULT_LIFETIME_MS`].
    pub fn delete(version: u64, now_ms: u64) -> Self {
        Self::lasting(Operation::Delete, version, now_ms, DEFAULT_LIFETIME_MS)
    }

    /// A connection test sealed at `now_ms`, valid for [`TEST_LIFETIME_MS`].
    pub fn test_connection(version: u64, now_ms: u64) -> Self {
        Self::lasting(Operation::TestConnection, version, now_ms, TEST_LIFETIME_MS)
    }

    /// `operation` of `version` sealed at `now_ms`, valid for `lifetime_ms`.
    pub fn lasting(operation: Operation, version: u64, now_ms: u64, lifetime_ms: u64) -> Self {
        Self {
            version,
            created_at_ms: now_ms,
            operation,
            not_after_ms: now_ms.saturating_add(lifetime_ms),
        }
    }
}

/// Domain separator of the tenant's signature.
pub const SIGNATURE_DOMAIN: &[u8] = b"nitrosync/bundle/v1\0";

/// Domain separator of the SAML subject derivation.
pub const SUBJECT_DOMAIN: &[u8] = b"nitrosync/saml-subject/v1";

pub use crate::tags::RESERVED_TAGS;

/// Most user tags a destination may carry: AWS allows 50, nitrosync uses four.
pub const MAX_USER_TAGS: usize = 50 - RESERVED_TAGS.len();

/// The largest secret value AWS accepts: the variables' JSON must fit (DESIGN §6). The tenant's
/// CLI checks it before sealing; the enclave checks it again before any AWS call.
pub const MAX_SECRET_BYTES: usize = 65_536;

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
    /// When the tenant sealed it (Unix milliseconds).
    pub created_at_ms: u64,
    /// What the tenant signs the enclave to do: the parent cannot turn a write into a delete
    /// or a test.
    pub operation: Operation,
    /// The bundle is refused after this (Unix milliseconds, by the enclave's trusted clock).
    pub not_after_ms: u64,
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
        let lifetime = self
            .not_after_ms
            .checked_sub(self.created_at_ms)
            .filter(|l| *l > 0)
            .ok_or_else(|| bad("not_after_ms", "must be later than created_at_ms"))?;
        let max = match self.operation {
            Operation::TestConnection => MAX_TEST_LIFETIME_MS,
            Operation::Write | Operation::Delete => MAX_LIFETIME_MS,
        };
        if lifetime > max {
            return Err(bad(
                "not_after_ms",
                format!(
                    "a {:?} bundle may live at most {} s, this one {} s",
                    self.operation,
                    max / 1000,
                    lifetime / 1000
                ),
            ));
        }
        self.destination.validate()
    }

    /// The header's terms.
    pub fn terms(&self) -> Terms {
        Terms {
            version: self.version,
            created_at_ms: self.created_at_ms,
            operation: self.operation,
            not_after_ms: self.not_after_ms,
        }
    }

    /// Whether the bundle is still valid at `now_ms`.
    pub fn is_live_at(&self, now_ms: u64) -> bool {
        now_ms <= self.not_after_ms
    }

    /// Whether the bundle may create its secret at `now_ms` (the enclave's trusted clock): from
    /// [`CREATION_CLOCK_SKEW_MS`] before `created_at_ms` to [`CREATION_WINDOW_MS`] after it,
    /// both ends included. Updating an existing secret is not limited by it, only by
    /// [`Self::is_live_at`].
    pub fn creation_window_at(&self, now_ms: u64) -> CreationWindow {
        let closed_at_ms = self.created_at_ms.saturating_add(CREATION_WINDOW_MS);
        if now_ms > closed_at_ms {
            return CreationWindow::Passed { closed_at_ms };
        }
        match self.created_at_ms.checked_sub(now_ms) {
            Some(ahead_ms) if ahead_ms > CREATION_CLOCK_SKEW_MS => {
                CreationWindow::NotYetOpen { ahead_ms }
            }
            _ => CreationWindow::Open,
        }
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
            operation: Operation::Write,
            not_after_ms: 1_700_000_000_000 + DEFAULT_LIFETIME_MS,
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
    fn lifetimes_are_bounded_by_operation() {
        let h = |terms: Terms| BundleHeader {
            format: BUNDLE_FORMAT,
            tenant_key: [1; 32],
            enclave_key: [2; 32],
            destination: sample(),
            version: terms.version,
            created_at_ms: terms.created_at_ms,
            operation: terms.operation,
            not_after_ms: terms.not_after_ms,
        };
        let now = 1_700_000_000_000;
        for t in [
            Terms::write(1, now),
            Terms::delete(2, now),
            Terms::test_connection(3, now),
        ] {
            let header = h(t);
            header.validate().unwrap();
            assert_eq!(header.terms(), t);
            assert!(header.is_live_at(t.not_after_ms));
            assert!(!header.is_live_at(t.not_after_ms + 1));
        }
        let field = |t: Terms| h(t).validate().unwrap_err().field;
        // A test signed for an hour, a write for two years, or one that ends before it begins.
        let long_test = Terms::lasting(Operation::TestConnection, 1, now, 3600 * 1000);
        assert_eq!(field(long_test), "not_after_ms");
        let long_write = Terms::lasting(Operation::Write, 1, now, 2 * MAX_LIFETIME_MS);
        assert_eq!(field(long_write), "not_after_ms");
        let backwards = Terms {
            not_after_ms: now - 1,
            ..Terms::write(1, now)
        };
        assert_eq!(field(backwards), "not_after_ms");
    }

    #[test]
    fn a_bundle_may_create_its_secret_only_in_the_hour_after_sealing() {
        let now = 1_700_000_000_000;
        let header = |created_at_ms: u64| BundleHeader {
            format: BUNDLE_FORMAT,
            tenant_key: [1; 32],
            enclave_key: [2; 32],
            destination: sample(),
            version: 1,
            created_at_ms,
            operation: Operation::Write,
            not_after_ms: created_at_ms.saturating_add(DEFAULT_LIFETIME_MS),
        };
        let h = header(now);
        assert_eq!(h.creation_window_at(now), CreationWindow::Open);
        assert_eq!(
            h.creation_window_at(now + CREATION_WINDOW_MS),
            CreationWindow::Open,
            "the last millisecond of the window is in it"
        );
        assert_eq!(
            h.creation_window_at(now + CREATION_WINDOW_MS + 1),
            CreationWindow::Passed {
                closed_at_ms: now + CREATION_WINDOW_MS
            }
        );
        // Still live, so it may update, but no longer create.
        assert!(h.is_live_at(now + CREATION_WINDOW_MS + 1));
        // A tenant clock a little fast is tolerated; further ahead is not.
        assert_eq!(
            header(now + CREATION_CLOCK_SKEW_MS).creation_window_at(now),
            CreationWindow::Open
        );
        assert_eq!(
            header(now + CREATION_CLOCK_SKEW_MS + 1).creation_window_at(now),
            CreationWindow::NotYetOpen {
                ahead_ms: CREATION_CLOCK_SKEW_MS + 1
            }
        );
        // No overflow at the ends of the range.
        assert_eq!(
            header(u64::MAX - 1).creation_window_at(u64::MAX),
            CreationWindow::Open
        );
        assert!(matches!(
            header(0).creation_window_at(u64::MAX),
            CreationWindow::Passed { .. }
        ));
        assert!(matches!(
            header(u64::MAX).creation_window_at(0),
            CreationWindow::NotYetOpen { .. }
        ));
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
