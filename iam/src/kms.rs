//! The operator's KMS key that seals the enclave's identity (DESIGN §10), as code.
//!
//! The enclave seals its keys under a data key that KMS releases only to a `Recipient`
//! attestation document, so the key policy is the security control. [`key_policy`] writes it
//! from the released images' measurements (`measurements.json`, one per image):
//!
//! - **`KeyAdministration`**: the key admin may manage the key (rotation, aliases, tags, enable,
//!   disable, deletion) but never `PutKeyPolicy`, `Decrypt`, `GenerateDataKey*`, `ReEncrypt*` or
//!   `CreateGrant`. The admin creates the key; CloudFormation and Terraform read it back with
//!   these permissions.
//! - **`EnclaveInspectKey`**: the enclave's instance role may call `DescribeKey`, `GetKeyPolicy`
//!   and `ListGrants` without condition: the enclave reads the key's policy and grants, and
//!   refuses a key that is not provably safe, before it asks for key material.
//! - **`EnclaveImageN`**, one per released image (the keys of one condition block are ANDed,
//!   so several images need several statements): the enclave's instance role may call `Decrypt`
//!   and `GenerateDataKey` only with `kms:RecipientAttestation:ImageSha384` (PCR0) and
//!   `kms:RecipientAttestation:PCR1`, `PCR2` (and `PCR8` for a signed image) equal to that
//!   image's, compared with `StringEqualsIgnoreCase` as the KMS guide does.
//! - **`DenyWithoutAttestation`**: `Decrypt`, `GenerateDataKey*` and `ReEncrypt*` are denied to
//!   everyone when the request carries no attestation document (`Null` on `ImageSha384`), the
//!   admin included. `ReEncrypt*` never carries one, so it is always denied: it would move the
//!   identity's data key under another key.
//! - **`DenyDebugImage`**: `Decrypt`, `GenerateDataKey` and `GenerateDataKeyPair` (what an
//!   attested `Recipient` can get) are denied to an all-zero `ImageSha384`, a debug-mode
//!   enclave. Inputs with an all-zero PCR0, PCR1 or PCR2 are refused.
//! - **`DenyOtherImages`**: the same for any other `ImageSha384`.
//! - **`DenyGrants`**: `CreateGrant` is denied: a grant would be a second, less visible, policy.
//! - **`DenyPolicyChange`**: `PutKeyPolicy` is denied to everyone.
//!
//! **The policy is immutable by design.** Whoever may call `PutKeyPolicy` can later allow
//! `Decrypt` to an image of their own, or without attestation, and read every identity sealed
//! under the key. So no principal may call it, there is no statement for the account root (IAM
//! policies in the account cannot widen the key), and the enclave refuses a key whose policy
//! allows `PutKeyPolicy` to anyone. KMS's lockout safety check refuses such a policy at `CreateKey`, so
//! the key must be created with `BypassPolicyLockoutSafetyCheck` true: the CloudFormation and
//! Terraform forms set it, and the `json` form's [`KmsKeyPolicy::create_key`] is the `CreateKey`
//! request with it. The consequence: the released images are fixed when the key is created. A
//! new release (a new PCR0) needs a new key, and so the enclave gets a new identity, until
//! identity rotation exists. Several measurements files are for images that are all known when
//! the key is made.
//!
//! Three forms, like the IAM of a destination: [`kms_cloudformation`] (`AWS::KMS::Key` and
//! `AWS::KMS::Alias`), [`kms_terraform`] (`aws_kms_key` and `aws_kms_alias`, Terraform's JSON
//! syntax, no `provider` block, named after the alias) and [`kms_json`] (the policy document with its inputs and the
//! `CreateKey` request). Each records the measurements it was made from.

use crate::IamError;
use crate::terraform::{PROVIDER_NOTE, label, literal, policy_string};
use nitrosync_shared::measurements::{self, ImageKind, Measurements};
use nitrosync_shared::names::{self, IamArn};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The alias the templates give the key unless told otherwise.
pub const DEFAULT_ALIAS: &str = "alias/nitrosync-enclave-identity";

/// The value of [`KmsKeyPolicy::format`].
pub const KMS_FORMAT: &str = "nitrosync-kms-key/1";

/// The days KMS waits before it deletes a key scheduled for deletion: the most it allows, since
/// deleting the key loses every sealed identity.
pub const PENDING_WINDOW_DAYS: u32 = 30;

/// Why the key policy cannot change and how the key must be created: in every form.
pub const IMMUTABLE_POLICY_NOTE: &str = "The key policy is immutable by design: nobody may call kms:PutKeyPolicy, because whoever can may widen the policy and read every identity sealed under the key, and the enclave refuses a key whose policy allows it. Create the key with BypassPolicyLockoutSafetyCheck=true (KMS's lockout safety check refuses this policy otherwise). A new release (a new PCR0) needs a new key, and the enclave then gets a new identity.";

/// The condition key of PCR0.
pub const IMAGE_SHA384: &str = "kms:RecipientAttestation:ImageSha384";

/// What a debug-mode enclave attests for every PCR.
const ZERO_PCR: &str = "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

/// Hex characters of a SHA-384 PCR.
const PCR_HEX: usize = measurements::PCR_LEN * 2;

/// What the key admin may do: everything but use the key, grant its use or change its policy.
const ADMIN_ACTIONS: [&str; 21] = [
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
];

/// What the enclave reads to check the key before it uses it: no key material.
const INSPECT_ACTIONS: [&str; 3] = ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:ListGrants"];

/// What the enclave calls for key material (DESIGN §10).
const ENCLAVE_ACTIONS: [&str; 2] = ["kms:Decrypt", "kms:GenerateDataKey"];

/// What releases key material to an attested `Recipient`: only ever for a released image.
const ATTESTED_ACTIONS: [&str; 3] = [
    "kms:Decrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyPair",
];

/// What is denied without an attestation document. The `WithoutPlaintext` variants that
/// `GenerateDataKey*` covers, and `ReEncrypt*`, never carry one: they are always denied.
const UNATTESTED_DENIED: [&str; 3] = ["kms:Decrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"];

/// One released enclave image: the PCRs the key releases data keys to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasedImage {
    /// Where the PCRs came from: a measurements file, or `--pcr0`.
    pub source: String,
    /// What was measured, when the PCRs come from a measurements file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ImageKind>,
    /// PCR0, lowercase hex.
    #[serde(rename = "PCR0")]
    pub pcr0: String,
    /// PCR1, lowercase hex; `None` when only PCR0 is known.
    #[serde(rename = "PCR1", default, skip_serializing_if = "Option::is_none")]
    pub pcr1: Option<String>,
    /// PCR2, lowercase hex; `None` when only PCR0 is known.
    #[serde(rename = "PCR2", default, skip_serializing_if = "Option::is_none")]
    pub pcr2: Option<String>,
    /// PCR8 of a signed image, lowercase hex.
    #[serde(rename = "PCR8", default, skip_serializing_if = "Option::is_none")]
    pub pcr8: Option<String>,
    /// SHA-256 of the EIF, when the measurements say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eif_sha256: Option<String>,
    /// The source commit the image was built from, when the measurements say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_commit: Option<String>,
}

impl ReleasedImage {
    /// The image a `measurements.json` describes.
    ///
    /// # Errors
    ///
    /// [`IamError::Kms`] for another format or hash algorithm, or a PCR that is not 96 hex
    /// characters or is all zeros (a debug-mode enclave).
    pub fn from_measurements(source: &str, m: &Measurements) -> Result<Self, IamError> {
        if m.format != measurements::FORMAT {
            return Err(kms_err(
                source,
                format!("format {:?} is not {:?}", m.format, measurements::FORMAT),
            ));
        }
        if m.hash_algorithm != "Sha384" {
            return Err(kms_err(
                source,
                format!("HashAlgorithm {:?} is not \"Sha384\"", m.hash_algorithm),
            ));
        }
        let image = Self {
            source: source.to_owned(),
            kind: Some(m.kind),
            pcr0: m.pcr0.clone(),
            pcr1: Some(m.pcr1.clone()),
            pcr2: Some(m.pcr2.clone()),
            pcr8: m.pcr8.clone(),
            eif_sha256: m.eif_sha256.clone(),
            source_commit: m.inputs.get("source_commit").cloned(),
        };
        image.checked()
    }

    /// An image known by its PCR0 only: its policy statement cannot pin PCR1 and PCR2.
    ///
    /// # Errors
    ///
    /// [`IamError::Kms`] for a value that is not 96 hex characters or is all zeros.
    pub fn from_pcr0(source: &str, pcr0: &str) -> Result<Self, IamError> {
        Self {
            source: source.to_owned(),
            kind: None,
            pcr0: pcr0.to_owned(),
            pcr1: None,
            pcr2: None,
            pcr8: None,
            eif_sha256: None,
            source_commit: None,
        }
        .checked()
    }

    /// Whether PCR1 and PCR2 are pinned too.
    pub fn is_complete(&self) -> bool {
        self.pcr1.is_some() && self.pcr2.is_some()
    }

    /// The PCRs checked and in lowercase.
    fn checked(mut self) -> Result<Self, IamError> {
        self.pcr0 = pcr(&self.source, "PCR0", &self.pcr0, true)?;
        for (name, value) in [("PCR1", &mut self.pcr1), ("PCR2", &mut self.pcr2)] {
            if let Some(v) = value {
                *v = pcr(&self.source, name, v, true)?;
            }
        }
        if let Some(v) = &mut self.pcr8 {
            *v = pcr(&self.source, "PCR8", v, false)?;
        }
        if self.pcr1.is_some() != self.pcr2.is_some() {
            return Err(kms_err(&self.source, "PCR1 and PCR2 come together"));
        }
        Ok(self)
    }

    /// The statement's condition: every known PCR of this image.
    fn condition(&self) -> Value {
        let mut c = serde_json::Map::new();
        c.insert(IMAGE_SHA384.to_owned(), json!(self.pcr0));
        for (n, v) in [(1, &self.pcr1), (2, &self.pcr2), (8, &self.pcr8)] {
            if let Some(v) = v {
                c.insert(format!("kms:RecipientAttestation:PCR{n}"), json!(v));
            }
        }
        json!({ "StringEqualsIgnoreCase": c })
    }

    /// One line for comments: the source and the PCRs.
    fn summary(&self) -> String {
        let mut s = format!("{}: PCR0 {}", self.source, self.pcr0);
        for (n, v) in [(1, &self.pcr1), (2, &self.pcr2), (8, &self.pcr8)] {
            if let Some(v) = v {
                s.push_str(&format!(", PCR{n} {v}"));
            }
        }
        if let Some(c) = &self.source_commit {
            s.push_str(&format!(" (commit {c})"));
        }
        s
    }
}

/// What the key and its policy are made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsKeyInput {
    /// The operator's AWS account (12 digits), where the key lives.
    pub account: String,
    /// The principal (IAM role or user ARN, in `account`) that administers the key and creates it.
    pub key_admin_arn: String,
    /// The instance role of the enclave's parent (IAM role ARN, in `account`): the enclave's KMS
    /// requests are signed with its credentials.
    pub enclave_role_arn: String,
    /// The region the key must be created in, when it is checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The key's alias (`alias/…`).
    pub alias: String,
    /// The released images; at least one.
    pub images: Vec<ReleasedImage>,
}

/// The key policy and what it was made from: the `json` form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KmsKeyPolicy {
    /// Always [`KMS_FORMAT`].
    pub format: String,
    /// The account the key lives in.
    pub account: String,
    /// The region it must be created in, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The key's alias.
    pub alias: String,
    /// The key admin.
    pub key_admin_arn: String,
    /// The enclave's instance role.
    pub enclave_role_arn: String,
    /// The images the policy releases data keys to.
    pub measurements: Vec<ReleasedImage>,
    /// What a reviewer should know (images pinned by PCR0 only, simulator measurements).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The policy document (`CreateKey`'s `Policy`).
    pub key_policy: Value,
    /// The `CreateKey` request that creates the key, for `aws kms create-key --cli-input-json`:
    /// `Policy` (the policy above, as a string), `Description`, `KeySpec`, `KeyUsage`, `Origin`
    /// and `BypassPolicyLockoutSafetyCheck: true`. Rotation (`EnableKeyRotation`) and the alias
    /// (`CreateAlias`) are separate calls by the key admin.
    pub create_key: Value,
    /// [`IMMUTABLE_POLICY_NOTE`].
    pub note: String,
}

fn kms_err(field: &str, reason: impl Into<String>) -> IamError {
    IamError::Kms {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// A PCR as 96 lowercase hex characters; `nonzero` refuses a debug-mode value.
fn pcr(source: &str, name: &str, value: &str, nonzero: bool) -> Result<String, IamError> {
    let field = format!("{source} {name}");
    if value.len() != PCR_HEX || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(kms_err(
            &field,
            format!(
                "must be {PCR_HEX} hex characters (a SHA-384 PCR), not {} characters",
                value.len()
            ),
        ));
    }
    let value = value.to_ascii_lowercase();
    if nonzero && value == ZERO_PCR {
        return Err(kms_err(
            &field,
            "is all zeros: that is what a debug-mode enclave attests, and the key must never be released to one",
        ));
    }
    Ok(value)
}

/// An IAM role ARN, or with `user` also an IAM user ARN (the same syntax).
fn principal(field: &str, arn: &str, user: bool) -> Result<IamArn, IamError> {
    let parsed = match arn.split_once(":user/") {
        Some((head, tail)) if user => names::role_arn(&format!("{head}:role/{tail}"))
            .map(|mut a| {
                a.resource = format!("user/{tail}");
                a
            })
            .map_err(|e| names::NameError(e.0.replace("role", "user"))),
        _ => names::role_arn(arn),
    };
    parsed.map_err(|e| {
        kms_err(
            field,
            format!(
                "{e} (expected arn:aws:iam::ACCOUNT:role/NAME{})",
                if user { " or …:user/NAME" } else { "" }
            ),
        )
    })
}

/// A KMS alias name: `alias/` and 1 to 250 of `[A-Za-z0-9/_-]`, not under `alias/aws/`.
fn alias(name: &str) -> Result<(), IamError> {
    let rest = name
        .strip_prefix("alias/")
        .ok_or_else(|| kms_err("alias", "must start with alias/"))?;
    if rest.is_empty() || rest.len() > 250 {
        return Err(kms_err(
            "alias",
            "the name after alias/ must be 1 to 250 characters",
        ));
    }
    if !rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
    {
        return Err(kms_err(
            "alias",
            "may contain only letters, digits, '/', '_' and '-'",
        ));
    }
    if rest.starts_with("aws/") {
        return Err(kms_err(
            "alias",
            "alias/aws/ is reserved for AWS managed keys",
        ));
    }
    Ok(())
}

/// The checked input: principals parsed, images checked and without duplicates.
struct Plan<'a> {
    input: &'a KmsKeyInput,
    images: Vec<ReleasedImage>,
    warnings: Vec<String>,
}

fn plan(input: &KmsKeyInput) -> Result<Plan<'_>, IamError> {
    if input.account.len() != 12 || !input.account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(kms_err("account", "must be 12 digits"));
    }
    let admin = principal("key_admin_arn", &input.key_admin_arn, true)?;
    let enclave = principal("enclave_role_arn", &input.enclave_role_arn, false)?;
    for (field, arn) in [("key_admin_arn", &admin), ("enclave_role_arn", &enclave)] {
        if arn.account != input.account {
            return Err(kms_err(
                field,
                format!(
                    "is in account {}, not the key's account {}",
                    arn.account, input.account
                ),
            ));
        }
    }
    if admin.partition != enclave.partition {
        return Err(kms_err(
            "key_admin_arn",
            format!(
                "is in partition {}, the enclave role in {}",
                admin.partition, enclave.partition
            ),
        ));
    }
    if input.key_admin_arn == input.enclave_role_arn {
        return Err(kms_err(
            "key_admin_arn",
            "must not be the enclave's role: the parent host holds that role's credentials, and an admin can rewrite the policy",
        ));
    }
    if let Some(region) = &input.region {
        if !names::is_region(region) {
            return Err(kms_err(
                "region",
                format!("{region:?} is not an AWS region"),
            ));
        }
        if names::partition_of(region) != enclave.partition {
            return Err(kms_err(
                "region",
                format!(
                    "{region} is in partition {}, the ARNs in {}",
                    names::partition_of(region),
                    enclave.partition
                ),
            ));
        }
    }
    alias(&input.alias)?;
    if input.images.is_empty() {
        return Err(kms_err(
            "measurements",
            "no released image: give at least one measurements file or PCR0",
        ));
    }
    let mut images: Vec<ReleasedImage> = vec![];
    for image in &input.images {
        let image = image.clone().checked()?;
        match images.iter().find(|i| i.pcr0 == image.pcr0) {
            Some(seen) if seen.pcr1 == image.pcr1 && seen.pcr2 == image.pcr2 => {}
            Some(seen) => {
                return Err(kms_err(
                    &image.source,
                    format!(
                        "has the PCR0 of {} with other PCR1/PCR2 (or only one of them has PCR1/PCR2)",
                        seen.source
                    ),
                ));
            }
            None => images.push(image),
        }
    }
    let mut warnings = vec![];
    for image in &images {
        if !image.is_complete() {
            warnings.push(format!(
                "{}: only PCR0 ({IMAGE_SHA384}) is conditioned; PCR1 and PCR2 are not pinned. Generate the policy from the image's measurements.json to pin them too.",
                image.source
            ));
        }
        if image.kind == Some(ImageKind::Simulator) {
            warnings.push(format!(
                "{}: simulator measurements; no Nitro enclave attests these PCRs, so only the simulator's KMS will release data keys to this image.",
                image.source
            ));
        }
    }
    Ok(Plan {
        input,
        images,
        warnings,
    })
}

impl Plan<'_> {
    fn policy(&self) -> Value {
        let i = self.input;
        let mut statements = vec![json!({
            "Sid": "KeyAdministration",
            "Effect": "Allow",
            "Principal": { "AWS": i.key_admin_arn },
            "Action": ADMIN_ACTIONS,
            "Resource": "*",
        })];
        statements.push(json!({
            "Sid": "EnclaveInspectKey",
            "Effect": "Allow",
            "Principal": { "AWS": i.enclave_role_arn },
            "Action": INSPECT_ACTIONS,
            "Resource": "*",
        }));
        for (n, image) in self.images.iter().enumerate() {
            statements.push(json!({
                "Sid": format!("EnclaveImage{}", n + 1),
                "Effect": "Allow",
                "Principal": { "AWS": i.enclave_role_arn },
                "Action": ENCLAVE_ACTIONS,
                "Resource": "*",
                "Condition": image.condition(),
            }));
        }
        let released: Vec<&str> = self.images.iter().map(|i| i.pcr0.as_str()).collect();
        statements.extend([
            json!({
                "Sid": "DenyWithoutAttestation",
                "Effect": "Deny",
                "Principal": { "AWS": "*" },
                "Action": UNATTESTED_DENIED,
                "Resource": "*",
                "Condition": { "Null": { IMAGE_SHA384: "true" } },
            }),
            json!({
                "Sid": "DenyDebugImage",
                "Effect": "Deny",
                "Principal": { "AWS": "*" },
                "Action": ATTESTED_ACTIONS,
                "Resource": "*",
                "Condition": { "StringEqualsIgnoreCase": { IMAGE_SHA384: ZERO_PCR } },
            }),
            json!({
                "Sid": "DenyOtherImages",
                "Effect": "Deny",
                "Principal": { "AWS": "*" },
                "Action": ATTESTED_ACTIONS,
                "Resource": "*",
                "Condition": { "StringNotEqualsIgnoreCase": { IMAGE_SHA384: released } },
            }),
            json!({
                "Sid": "DenyGrants",
                "Effect": "Deny",
                "Principal": { "AWS": "*" },
                "Action": "kms:CreateGrant",
                "Resource": "*",
            }),
            json!({
                "Sid": "DenyPolicyChange",
                "Effect": "Deny",
                "Principal": { "AWS": "*" },
                "Action": "kms:PutKeyPolicy",
                "Resource": "*",
            }),
        ]);
        json!({
            "Version": crate::POLICY_VERSION,
            "Id": "nitrosync-enclave-identity",
            "Statement": statements,
        })
    }

    fn description(&self) -> String {
        format!(
            "nitrosync enclave identity: data keys only for attested enclaves of {} released image(s). Generated by nitrosync kms template; the policy is immutable, a new release needs a new key.",
            self.images.len()
        )
    }

    fn comment(&self) -> String {
        let mut s = format!(
            "nitrosync: the KMS key that seals the enclave's identity (account {}{}). Create it as the key admin {}. Released images: {}. {IMMUTABLE_POLICY_NOTE}",
            self.input.account,
            self.input
                .region
                .as_deref()
                .map(|r| format!(", region {r}"))
                .unwrap_or_default(),
            self.input.key_admin_arn,
            self.images
                .iter()
                .map(ReleasedImage::summary)
                .collect::<Vec<_>>()
                .join("; ")
        );
        for w in &self.warnings {
            s.push_str(" WARNING: ");
            s.push_str(w);
        }
        s
    }
}

/// The key policy with its inputs and warnings (the `json` form).
///
/// # Errors
///
/// [`IamError::Kms`] for an input that cannot make a safe policy: an account that is not 12
/// digits, an ARN that does not parse or is in another account or partition, the admin being
/// the enclave's role, a bad region or alias, no image, a bad or all-zero PCR, or two images
/// with one PCR0 and different PCR1/PCR2.
pub fn kms_json(input: &KmsKeyInput) -> Result<KmsKeyPolicy, IamError> {
    let plan = plan(input)?;
    let policy = plan.policy();
    let create_key = json!({
        "Policy": serde_json::to_string(&policy).unwrap_or_default(),
        "Description": plan.description(),
        "KeySpec": "SYMMETRIC_DEFAULT",
        "KeyUsage": "ENCRYPT_DECRYPT",
        "Origin": "AWS_KMS",
        "BypassPolicyLockoutSafetyCheck": true,
    });
    Ok(KmsKeyPolicy {
        format: KMS_FORMAT.to_owned(),
        account: input.account.clone(),
        region: input.region.clone(),
        alias: input.alias.clone(),
        key_admin_arn: input.key_admin_arn.clone(),
        enclave_role_arn: input.enclave_role_arn.clone(),
        key_policy: policy,
        create_key,
        note: IMMUTABLE_POLICY_NOTE.to_owned(),
        measurements: plan.images,
        warnings: plan.warnings,
    })
}

/// The key policy document alone.
///
/// # Errors
///
/// As [`kms_json`].
pub fn key_policy(input: &KmsKeyInput) -> Result<Value, IamError> {
    Ok(plan(input)?.policy())
}

const CFN_KEY: &str = "EnclaveIdentityKey";
const CFN_ALIAS: &str = "EnclaveIdentityKeyAlias";

/// A CloudFormation template (JSON): the key with the policy (`BypassPolicyLockoutSafetyCheck`:
/// nobody may put it again), rotation on, retained on stack deletion, and its alias. `Rules`
/// refuse another account (and region, when given); the measurements are in `Metadata`, with
/// [`IMMUTABLE_POLICY_NOTE`].
///
/// # Errors
///
/// As [`kms_json`].
pub fn kms_cloudformation(input: &KmsKeyInput) -> Result<String, IamError> {
    let plan = plan(input)?;
    let mut rules = serde_json::Map::new();
    rules.insert(
        "KeyAccount".to_owned(),
        json!({ "Assertions": [{
            "Assert": { "Fn::Equals": [{ "Ref": "AWS::AccountId" }, input.account] },
            "AssertDescription": format!("The key policy is made for account {}.", input.account),
        }]}),
    );
    if let Some(region) = &input.region {
        rules.insert(
            "KeyRegion".to_owned(),
            json!({ "Assertions": [{
                "Assert": { "Fn::Equals": [{ "Ref": "AWS::Region" }, region] },
                "AssertDescription": format!("The key is meant for region {region}."),
            }]}),
        );
    }
    let mut metadata = json!({
        "nitrosync:ReleasedImages": plan.images,
        "nitrosync:KeyPolicy": IMMUTABLE_POLICY_NOTE,
    });
    if !plan.warnings.is_empty() {
        metadata["nitrosync:Warnings"] = json!(plan.warnings);
    }
    let template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!(
            "nitrosync: the KMS key that seals the enclave's identity (account {}), released only to attested enclaves of {} image(s). Deploy it as the key admin {}.",
            input.account,
            plan.images.len(),
            input.key_admin_arn
        ),
        "Metadata": metadata,
        "Rules": rules,
        "Resources": {
            CFN_KEY: {
                "Type": "AWS::KMS::Key",
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "Description": plan.description(),
                    "Enabled": true,
                    "EnableKeyRotation": true,
                    "KeySpec": "SYMMETRIC_DEFAULT",
                    "KeyUsage": "ENCRYPT_DECRYPT",
                    "PendingWindowInDays": PENDING_WINDOW_DAYS,
                    "BypassPolicyLockoutSafetyCheck": true,
                    "KeyPolicy": plan.policy(),
                },
            },
            CFN_ALIAS: {
                "Type": "AWS::KMS::Alias",
                "Properties": {
                    "AliasName": input.alias,
                    "TargetKeyId": { "Ref": CFN_KEY },
                },
            },
        },
        "Outputs": {
            "KeyArn": {
                "Description": "The key's ARN: the enclave's KMS key.",
                "Value": { "Fn::GetAtt": [CFN_KEY, "Arn"] },
            },
            "KeyId": {
                "Description": "The key's id.",
                "Value": { "Ref": CFN_KEY },
            },
            "AliasName": {
                "Description": "The key's alias.",
                "Value": { "Ref": CFN_ALIAS },
            },
        },
    });
    let mut out = serde_json::to_string_pretty(&template).unwrap_or_default();
    out.push('\n');
    Ok(out)
}

/// The label of the key's Terraform resources, data sources and outputs: the alias without
/// `alias/`, as a Terraform identifier (`/` becomes `_`, with a hash of the alias appended when
/// a character had to change): `nitrosync-enclave-identity` for [`DEFAULT_ALIAS`]. Two keys with
/// two aliases, and the root module's own names, do not collide.
pub fn terraform_label(alias: &str) -> String {
    label(alias.strip_prefix("alias/").unwrap_or(alias))
}

/// A Terraform module in Terraform's JSON syntax: `aws_kms_key` with the policy
/// (`bypass_policy_lockout_safety_check`: nobody may put it again), rotation on and
/// `prevent_destroy`, and `aws_kms_alias`, all named [`terraform_label`] of the alias (the
/// outputs `<label>_key_arn`, `<label>_key_id` and `<label>_alias_name`). No `provider` block
/// and no `terraform` block: the root module's provider is used, and preconditions refuse
/// another account (and region, when given). The measurements are in the `//` comment.
///
/// # Errors
///
/// As [`kms_json`].
pub fn kms_terraform(input: &KmsKeyInput) -> Result<String, IamError> {
    let plan = plan(input)?;
    let name = terraform_label(&input.alias);
    let mut data = json!({ "aws_caller_identity": { &name: {} } });
    let mut preconditions = vec![json!({
        "condition": format!(
            "${{data.aws_caller_identity.{name}.account_id == \"{}\"}}",
            input.account
        ),
        "error_message": literal(&format!(
            "The key policy is made for account {}.",
            input.account
        )),
    })];
    if let Some(region) = &input.region {
        data["aws_region"] = json!({ &name: {} });
        preconditions.push(json!({
            "condition": format!("${{data.aws_region.{name}.name == \"{region}\"}}"),
            "error_message": literal(&format!("The key is meant for region {region}.")),
        }));
    }
    let key = format!("aws_kms_key.{name}");
    let module = json!({
        "//": literal(&format!("{} {PROVIDER_NOTE}", plan.comment())),
        "data": data,
        "resource": {
            "aws_kms_key": {
                &name: {
                    "description": literal(&plan.description()),
                    "key_usage": "ENCRYPT_DECRYPT",
                    "customer_master_key_spec": "SYMMETRIC_DEFAULT",
                    "is_enabled": true,
                    "enable_key_rotation": true,
                    "deletion_window_in_days": PENDING_WINDOW_DAYS,
                    "bypass_policy_lockout_safety_check": true,
                    "policy": policy_string(&plan.policy(), None),
                    "lifecycle": {
                        "prevent_destroy": true,
                        "precondition": preconditions,
                    },
                }
            },
            "aws_kms_alias": {
                &name: {
                    "name": literal(&input.alias),
                    "target_key_id": format!("${{{key}.key_id}}"),
                }
            }
        },
        "output": {
            format!("{name}_key_arn"): {
                "description": "The key's ARN: the enclave's KMS key.",
                "value": format!("${{{key}.arn}}"),
            },
            format!("{name}_key_id"): {
                "description": "The key's id.",
                "value": format!("${{{key}.key_id}}"),
            },
            format!("{name}_alias_name"): {
                "description": "The key's alias.",
                "value": format!("${{aws_kms_alias.{name}.name}}"),
            },
        }
    });
    let mut out = serde_json::to_string_pretty(&module).unwrap_or_default();
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests;
