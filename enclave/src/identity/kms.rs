//! The KMS side of the sealed identity: check the key, then `GenerateDataKey` (first start) or
//! `Decrypt` (every later start) with a `Recipient`, and seal or unseal with the data key.
//!
//! Every call goes through the parent's relay over TLS that ends here, signed with the parent's
//! instance-role credentials (they authorise the call; the attestation document in `Recipient`
//! decides whether KMS releases the key). What the parent chooses, the key ARN and the sealed
//! blob, is checked before it is used:
//!
//! 1. the ARN is a full key ARN (no alias, which could be re-pointed);
//! 2. `DescribeKey`: a customer-managed, single-region, enabled symmetric key whose material KMS
//!    generated (`Origin` `AWS_KMS`: imported or external material would be the operator's);
//! 3. `GetKeyPolicy`: only attested images can obtain or forge a data key, and nobody can change
//!    that ([`super::check_key_policy`]); its images are attested to tenants;
//! 4. `ListGrants`: none (a grant is a second, unchecked policy);
//! 5. the answer's `KeyId` is the key asked for, and the blob's AAD names it and this image.

use super::{IdentityError, IdentitySecrets, RecipientKey, SealContext};
use crate::https::AwsHttpClient;
use crate::sync::errors::{Failure, Service, classify};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    DataKeySpec, KeyEncryptionMechanism, KeyManagerType, KeySpec, KeyState, KeyUsageType,
    OriginType, RecipientInfo,
};
use nitrosync_attestation::Nsm;
use nitrosync_shared::ErrorCode;
use nitrosync_shared::control::{
    AwsCredentials, SEALED_IDENTITY_FORMAT, SealedIdentity, UnsealRequest,
};
use std::sync::Arc;
use zeroize::Zeroizing;

/// The encryption context of every data key: KMS binds it to the ciphertext, so a data key made
/// for anything else under the same key does not decrypt as an identity key.
const CONTEXT: [(&str, &str); 2] = [
    ("nitrosync:purpose", "enclave-identity"),
    ("nitrosync:format", "1"),
];

/// What [`unseal_or_create`] gives back.
pub struct Unsealed {
    /// The identity.
    pub secrets: IdentitySecrets,
    /// The identity as sealed, for the parent to store.
    pub sealed: SealedIdentity,
    /// True when it was created now.
    pub created: bool,
    /// PCR0s (lowercase hex) of the images the key's policy can release it to.
    pub images: Vec<String>,
}

impl std::fmt::Debug for Unsealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsealed")
            .field("key_arn", &self.sealed.key_arn)
            .field("created", &self.created)
            .field("images", &self.images)
            .finish_non_exhaustive()
    }
}

/// How the KMS client is set up.
#[derive(Debug, Clone)]
pub struct KmsSettings {
    /// The HTTPS client over the relay.
    pub http: AwsHttpClient,
    /// The SDK's retry settings.
    pub retry: aws_smithy_types::retry::RetryConfig,
    /// The SDK's timeouts.
    pub timeouts: aws_smithy_types::timeout::TimeoutConfig,
}

fn kms_failure(message: impl Into<String>) -> Failure {
    Failure::new(ErrorCode::KmsKeyError, message)
}

fn identity_failure(what: &str, e: IdentityError) -> Failure {
    kms_failure(format!("{what}: {e}"))
}

/// The region of a full KMS key ARN, or why it is not one.
pub fn key_region(arn: &str) -> Result<&str, Failure> {
    let bad = |why: &str| {
        Failure::new(
            ErrorCode::InvalidConfig,
            format!(
                "{arn:?} is not a KMS key ARN ({why}); give arn:aws:kms:<region>:<account>:key/<key id>"
            ),
        )
    };
    if arn.len() > 256 {
        return Err(bad("too long"));
    }
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts[..] else {
        return Err(bad("not six ':'-separated fields"));
    };
    if prefix != "arn" || !matches!(partition, "aws" | "aws-cn" | "aws-us-gov") {
        return Err(bad("not an AWS ARN"));
    }
    if service != "kms" {
        return Err(bad("not a KMS ARN"));
    }
    let plausible_region = (4..=32).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !plausible_region {
        return Err(bad("no region"));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("the account is not 12 digits"));
    }
    let Some(id) = resource.strip_prefix("key/") else {
        return Err(bad("an alias or other resource; only key/<id> is stable"));
    };
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(bad("the key id is not [A-Za-z0-9-]"));
    }
    Ok(region)
}

fn client(settings: &KmsSettings, region: &str, c: &AwsCredentials) -> aws_sdk_kms::Client {
    let creds = aws_credential_types::Credentials::new(
        c.access_key_id.clone(),
        c.secret_access_key.clone(),
        c.session_token.clone(),
        None,
        "nitrosync-parent-instance-role",
    );
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new(region.to_owned()))
        .http_client(settings.http.clone())
        .credentials_provider(creds)
        .retry_config(settings.retry.clone())
        .timeout_config(settings.timeouts.clone())
        .stalled_stream_protection(aws_sdk_kms::config::StalledStreamProtectionConfig::disabled())
        .time_source(settings.http.clock().clone())
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

/// Checks the key itself (`DescribeKey`, `GetKeyPolicy`, `ListGrants`); returns the images its
/// policy releases data keys to.
async fn check_key(
    kms: &aws_sdk_kms::Client,
    arn: &str,
    pcr0: &[u8],
) -> Result<Vec<String>, Failure> {
    let described = kms
        .describe_key()
        .key_id(arn)
        .send()
        .await
        .map_err(|e| classify(Service::Kms, "kms:DescribeKey", &e))?;
    let m = described
        .key_metadata()
        .ok_or_else(|| kms_failure("kms:DescribeKey answered without KeyMetadata."))?;
    let refuse = |why: String| {
        kms_failure(format!(
            "KMS key {arn} cannot hold the enclave's identity: {why}."
        ))
    };
    if m.arn() != Some(arn) {
        return Err(refuse(format!(
            "DescribeKey names another key ({:?})",
            m.arn()
        )));
    }
    if m.key_manager() != Some(&KeyManagerType::Customer) {
        return Err(refuse("it is not a customer managed key".into()));
    }
    if m.origin() != Some(&OriginType::AwsKms) {
        return Err(refuse(format!(
            "its key material's origin is {:?}, not AWS_KMS (imported or external material is known outside KMS)",
            m.origin()
        )));
    }
    if m.key_spec() != Some(&KeySpec::SymmetricDefault)
        || m.key_usage() != Some(&KeyUsageType::EncryptDecrypt)
    {
        return Err(refuse(
            "it is not a SYMMETRIC_DEFAULT ENCRYPT_DECRYPT key".into(),
        ));
    }
    if m.multi_region() == Some(true) {
        return Err(refuse(
            "it is a multi-Region key (each replica has its own policy)".into(),
        ));
    }
    if m.key_state() != Some(&KeyState::Enabled) || !m.enabled() {
        return Err(refuse(format!("its state is {:?}", m.key_state())));
    }
    let policy = kms
        .get_key_policy()
        .key_id(arn)
        .policy_name("default")
        .send()
        .await
        .map_err(|e| classify(Service::Kms, "kms:GetKeyPolicy", &e))?;
    let policy = policy
        .policy()
        .ok_or_else(|| kms_failure("kms:GetKeyPolicy answered without a policy."))?;
    let facts = super::check_key_policy(policy, pcr0)
        .map_err(|e| refuse(format!("its key policy is not safe: {e}")))?;
    let grants = kms
        .list_grants()
        .key_id(arn)
        .limit(1)
        .send()
        .await
        .map_err(|e| classify(Service::Kms, "kms:ListGrants", &e))?;
    if !grants.grants().is_empty() || grants.truncated() {
        return Err(refuse(
            "it has grants (a grant is a second policy that this check cannot see)".into(),
        ));
    }
    Ok(facts.images)
}

/// A fresh recipient key and an attestation document carrying its public half.
async fn recipient(nsm: &Arc<dyn Nsm>) -> Result<(RecipientKey, RecipientInfo), Failure> {
    let key = RecipientKey::generate()
        .map_err(|e| identity_failure("cannot make the recipient key", e))?;
    let spki = key.public_key_spki_der();
    let nsm = nsm.clone();
    let doc = tokio::task::spawn_blocking(move || nsm.attest(None, None, Some(&spki)))
        .await
        .map_err(|e| {
            Failure::new(
                ErrorCode::EnclaveUnavailable,
                format!("the NSM task failed: {e}"),
            )
        })?
        .map_err(|e| {
            Failure::new(
                ErrorCode::EnclaveUnavailable,
                format!("the NSM did not attest: {e}"),
            )
        })?;
    let info = RecipientInfo::builder()
        .key_encryption_algorithm(KeyEncryptionMechanism::RsaesOaepSha256)
        .attestation_document(Blob::new(doc))
        .build();
    Ok((key, info))
}

fn data_key(
    key: &RecipientKey,
    cms: Option<&Blob>,
    op: &str,
) -> Result<Zeroizing<[u8; 32]>, Failure> {
    let cms =
        cms.ok_or_else(|| kms_failure(format!("{op} answered without CiphertextForRecipient.")))?;
    let plain = key.open(cms.as_ref()).map_err(|e| {
        identity_failure(&format!("{op}'s CiphertextForRecipient does not open"), e)
    })?;
    let mut out = Zeroizing::new([0u8; 32]);
    if plain.len() != out.len() {
        return Err(kms_failure(format!(
            "{op} released a {}-byte key, not 32 bytes.",
            plain.len()
        )));
    }
    out.copy_from_slice(&plain);
    Ok(out)
}

fn check_key_id(op: &str, arn: &str, answered: Option<&str>) -> Result<(), Failure> {
    match answered {
        Some(id) if id == arn => Ok(()),
        other => Err(kms_failure(format!(
            "{op} answered for key {other:?}, not {arn}."
        ))),
    }
}

/// Unseals `req.sealed`, or, when there is none, creates an identity with `make` and seals it.
/// `pcr0` is this enclave's own (from the NSM).
///
/// # Errors
///
/// A [`Failure`] with `KmsKeyError` when KMS refuses (another image, a debug-mode document) or
/// the key, its policy or the blob does not pass; `InvalidConfig` for a malformed ARN.
pub async fn unseal_or_create(
    settings: &KmsSettings,
    nsm: &Arc<dyn Nsm>,
    pcr0: &[u8],
    req: &UnsealRequest,
    make: impl FnOnce() -> Result<IdentitySecrets, Failure>,
) -> Result<Unsealed, Failure> {
    let Some(s) = &req.sealed else {
        let secrets = make()?;
        let (sealed, images) = seal_new(
            settings,
            nsm,
            pcr0,
            &req.key_arn,
            &req.credentials,
            &secrets,
        )
        .await?;
        return Ok(Unsealed {
            secrets,
            sealed,
            created: true,
            images,
        });
    };
    let arn = req.key_arn.as_str();
    let region = key_region(arn)?;
    if s.format != SEALED_IDENTITY_FORMAT {
        return Err(kms_failure(format!(
            "the stored identity has format {}; this enclave reads {SEALED_IDENTITY_FORMAT}.",
            s.format
        )));
    }
    if s.key_arn != arn {
        return Err(kms_failure(format!(
            "the stored identity was sealed under {}, not the configured key {arn}.",
            s.key_arn
        )));
    }
    let kms = client(settings, region, &req.credentials);
    let images = check_key(&kms, arn, pcr0).await?;
    let pcr0_hex = hex::encode(pcr0);
    let ctx = SealContext { key_arn: arn, pcr0 };
    let (key, recipient) = recipient(nsm).await?;
    let mut call = kms
        .decrypt()
        .key_id(arn)
        .ciphertext_blob(Blob::new(s.ciphertext_blob.clone()))
        .recipient(recipient);
    for (k, v) in CONTEXT {
        call = call.encryption_context(k, v);
    }
    let out = call
        .send()
        .await
        .map_err(|e| released_to(classify(Service::Kms, "kms:Decrypt", &e), &pcr0_hex))?;
    check_key_id("kms:Decrypt", arn, out.key_id())?;
    if out.plaintext().is_some() {
        return Err(kms_failure(
            "kms:Decrypt answered with a plaintext key despite the Recipient.",
        ));
    }
    let data_key = data_key(&key, out.ciphertext_for_recipient(), "kms:Decrypt")?;
    drop(key);
    let secrets = super::unseal(&data_key, &ctx, &s.nonce, &s.sealed).map_err(|e| {
        identity_failure(
            &format!(
                "the stored identity does not open for this image (PCR0 {pcr0_hex}): tampered, or sealed by another image"
            ),
            e,
        )
    })?;
    if secrets.generation != s.generation {
        return Err(kms_failure(format!(
            "the stored identity says generation {} outside and {} inside: tampered.",
            s.generation, secrets.generation
        )));
    }
    Ok(Unsealed {
        secrets,
        sealed: s.clone(),
        created: false,
        images,
    })
}

fn released_to(e: Failure, pcr0_hex: &str) -> Failure {
    Failure::new(
        e.code,
        format!("{} (this enclave's image: PCR0 {pcr0_hex})", e.message),
    )
}

/// Seals `secrets` under a new data key of `key_arn` (a first start, or a rotation step), after
/// checking the key; returns the sealed identity and the images the key's policy releases it to.
///
/// # Errors
///
/// As [`unseal_or_create`].
pub async fn seal_new(
    settings: &KmsSettings,
    nsm: &Arc<dyn Nsm>,
    pcr0: &[u8],
    key_arn: &str,
    credentials: &AwsCredentials,
    secrets: &IdentitySecrets,
) -> Result<(SealedIdentity, Vec<String>), Failure> {
    let region = key_region(key_arn)?;
    let kms = client(settings, region, credentials);
    let images = check_key(&kms, key_arn, pcr0).await?;
    let pcr0_hex = hex::encode(pcr0);
    let ctx = SealContext { key_arn, pcr0 };
    let (key, recipient) = recipient(nsm).await?;
    let mut call = kms
        .generate_data_key()
        .key_id(key_arn)
        .key_spec(DataKeySpec::Aes256)
        .recipient(recipient);
    for (k, v) in CONTEXT {
        call = call.encryption_context(k, v);
    }
    let out = call
        .send()
        .await
        .map_err(|e| released_to(classify(Service::Kms, "kms:GenerateDataKey", &e), &pcr0_hex))?;
    check_key_id("kms:GenerateDataKey", key_arn, out.key_id())?;
    if out.plaintext().is_some() {
        return Err(kms_failure(
            "kms:GenerateDataKey answered with a plaintext key despite the Recipient.",
        ));
    }
    let data_key = data_key(&key, out.ciphertext_for_recipient(), "kms:GenerateDataKey")?;
    drop(key);
    let blob = out
        .ciphertext_blob()
        .ok_or_else(|| kms_failure("kms:GenerateDataKey answered without CiphertextBlob."))?;
    let (nonce, sealed) = super::seal(&data_key, &ctx, secrets)
        .map_err(|e| identity_failure("cannot seal the identity", e))?;
    Ok((
        SealedIdentity {
            format: SEALED_IDENTITY_FORMAT,
            key_arn: key_arn.to_owned(),
            pcr0: pcr0_hex,
            generation: secrets.generation,
            ciphertext_blob: blob.as_ref().to_vec(),
            nonce: nonce.to_vec(),
            sealed,
        },
        images,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_arns() {
        assert_eq!(
            key_region(
                "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
            )
            .unwrap(),
            "eu-west-1"
        );
        for bad in [
            "",
            "arn:aws:kms:eu-west-1:111122223333:alias/nitrosync",
            "arn:aws:kms:eu-west-1:1111:key/k",
            "arn:aws:s3:eu-west-1:111122223333:key/k",
            "arn:aws:kms:EU:111122223333:key/k",
            "arn:aws:kms:eu-west-1:111122223333:key/",
            "arn:aws:kms:eu-west-1:111122223333:key/a/b",
            "1234abcd-12ab-34cd-56ef-1234567890ab",
        ] {
            let e = key_region(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidConfig, "{bad}");
        }
    }
}
