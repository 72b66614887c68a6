//! The customer-side IAM for one destination, as code.
//!
//! The model's set-up guide (1Password's "Sync secrets to AWS Secrets Manager") has the customer
//! click through the console: create a SAML identity provider from the worker's metadata, write a
//! policy, create a role that trusts the provider. This module writes the same three resources
//! for one [`DestinationConfig`], in three forms built from the same two policy documents
//! ([`policy_documents`]):
//!
//! - [`cloudformation`]: a JSON CloudFormation template (`AWS::IAM::SAMLProvider`,
//!   `AWS::IAM::Role` with an inline policy);
//! - [`terraform`]: a Terraform root module (`aws_iam_saml_provider`, `aws_iam_role`,
//!   `aws_iam_role_policy`);
//! - [`json()`]: the documents `nitrosync iam apply` sends through the IAM API.
//!
//! # What the role may do
//!
//! Exactly what the enclave's sync engine calls, on this destination's secret only:
//!
//! | path | calls | resource |
//! |---|---|---|
//! | write | `DescribeSecret`; `CreateSecret` (+ the `TagResource` that tags on create implies), or `PutSecretValue` + `TagResource` | `secret:<name>-??????` |
//! | test connection | `CreateSecret` (+ `TagResource`), `DeleteSecret` with `ForceDeleteWithoutRecovery` | `secret:<name>-nitrosync-test-*` |
//! | delete (only when the destination's `delete_policy` is `Delete`) | `RemoveRegionsFromReplication`, `DeleteSecret` | `secret:<name>-??????` |
//! | customer managed KMS key (only when `kms_key_id` is set) | `kms:GenerateDataKey`, `kms:Decrypt` via Secrets Manager | the key |
//!
//! Writes, tag updates and deletes need the secret to carry `nitrosync:managed-by = nitrosync` and
//! `nitrosync:destination = <id>`; creates must set both tags; tag updates may not change them.
//! `UpdateSecret` and `kms:Encrypt` are not granted: the worker never calls `UpdateSecret`, and
//! Secrets Manager encrypts with `GenerateDataKey`, not `Encrypt`.
//!
//! The role's trust policy lets only the provider assume it, only for the destination's SAML
//! subject (`saml:sub`, DESIGN §3), persistent name ids and the AWS sign-in audience.
//!
//! # Choices
//!
//! - **Inline policy.** It lives and dies with the role, needs no ARN or version management (a
//!   managed policy keeps at most five versions, which `iam apply` would have to prune) and
//!   gets 10,240 characters against a managed policy's 6,144, which the longest secret names
//!   need.
//! - **Create-time tagging.** `CreateSecret` with tags is also authorised as `TagResource`,
//!   before the secret carries any tag, so a second `TagResource` statement allows requests
//!   that set `managed-by = nitrosync` and `destination = <id>`. The cost: the role could stamp
//!   those tags onto an unowned secret of exactly this name (the worker never does; it reports
//!   `SecretNameConflict`).
//! - **Lookup of a secret that does not exist yet.** `DescribeSecret` is also allowed on the
//!   name's ARN without the random suffix, the only ARN such a lookup can be authorised
//!   against.
//! - **Deleting the secret** is granted only when the destination's `delete_policy` is
//!   `Delete`: switching a destination to `Delete` needs the IAM regenerated, which keeps that
//!   decision with the account owner.
//! - **KMS.** A key ARN is used as is; a bare key id becomes
//!   `arn:<partition>:kms:<region>:<account>:key/<id>`. IAM authorises `GenerateDataKey` and
//!   `Decrypt` against the key's ARN, never an alias ARN, so an alias becomes `key/*` in its
//!   account and region narrowed with `kms:ResourceAliases`. Every KMS grant also requires
//!   `kms:ViaService = secretsmanager.<region>.amazonaws.com` and an encryption context
//!   (`SecretARN`) of this destination's secret or test placeholders.

#![warn(missing_docs)]

use nitrosync_shared::bundle::{ConfigError, DeletePolicy, DestinationConfig};
use nitrosync_shared::names;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

#[cfg(test)]
mod lint_tests;

/// The role's `MaxSessionDuration`, in seconds: the worker asks for the default hour.
pub const MAX_SESSION_DURATION: u32 = 3600;

/// Tag key naming the secret's manager; its value is [`MANAGED_BY`].
pub const TAG_MANAGED_BY: &str = "nitrosync:managed-by";

/// Tag key naming the destination that owns the secret.
pub const TAG_DESTINATION: &str = "nitrosync:destination";

/// The value of [`TAG_MANAGED_BY`] on every secret the worker creates.
pub const MANAGED_BY: &str = "nitrosync";

/// What the worker puts between the secret name and a random suffix when it names a test
/// connection's placeholder secret (DESIGN §8).
pub const TEST_SECRET_INFIX: &str = "-nitrosync-test-";

/// The largest SAML metadata document IAM accepts, in characters.
pub const MAX_METADATA_CHARS: usize = 10_000_000;

/// The smallest SAML metadata document IAM accepts, in characters.
pub const MIN_METADATA_CHARS: usize = 1000;

const POLICY_VERSION: &str = "2012-10-17";
const CFN_PROVIDER: &str = "SamlProvider";
const CFN_ROLE: &str = "Role";
const TF_NAME: &str = "nitrosync";

/// What the IAM for one destination is made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IamInput {
    /// The destination: its role ARN, SAML provider ARN, region, secret name and KMS key decide
    /// every name and resource below.
    pub destination: DestinationConfig,
    /// The destination's SAML subject (`ns1-` and 32 base32 characters), as
    /// `nitrosync_shared::bundle::saml_subject` derives it.
    pub subject: String,
    /// The worker's SAML IdP metadata XML (an `EntityDescriptor` with an `IDPSSODescriptor`).
    pub saml_metadata: String,
}

/// An input that cannot produce working IAM.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IamError {
    /// A field of the destination is invalid, or does not fit the others (region vs role ARN
    /// partition, KMS key region, names the worker or IAM would refuse).
    #[error("destination.{}: {}", .0.field, .0.reason)]
    Destination(ConfigError),
    /// The SAML subject is not of the form `ns1-` + 32 lowercase base32 characters.
    #[error("subject: {reason}")]
    Subject {
        /// What is wrong with it.
        reason: String,
    },
    /// The SAML metadata is empty, out of IAM's size limits or not IdP metadata.
    #[error("saml_metadata: {reason}")]
    Metadata {
        /// What is wrong with it.
        reason: String,
    },
}

impl IamError {
    /// The offending field as users write it: `destination.kms_key_id`, `subject`,
    /// `saml_metadata`, ...
    #[must_use]
    pub fn field(&self) -> String {
        match self {
            Self::Destination(e) => format!("destination.{}", e.field),
            Self::Subject { .. } => "subject".to_owned(),
            Self::Metadata { .. } => "saml_metadata".to_owned(),
        }
    }
}

fn dest_err(field: &str, reason: impl Into<String>) -> IamError {
    IamError::Destination(ConfigError {
        field: field.to_owned(),
        reason: reason.into(),
    })
}

/// The role's trust policy and its permissions policy, as IAM JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyDocuments {
    /// The trust (assume-role) policy; its `Principal.Federated` is the provider's ARN.
    pub trust_policy: Value,
    /// The identity policy attached inline to the role.
    pub identity_policy: Value,
}

/// The three resources in the form the IAM API takes them (`CreateSAMLProvider`, `CreateRole`,
/// `PutRolePolicy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IamDocuments {
    /// The AWS account all three live in (from `role_arn`): check the caller's account against
    /// it before applying.
    pub account: String,
    /// The SAML identity provider.
    pub saml_provider: SamlProviderSpec,
    /// The role the worker assumes.
    pub role: RoleSpec,
    /// The role's inline permissions policy.
    pub policy: PolicySpec,
}

/// A SAML identity provider to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamlProviderSpec {
    /// `Name`: the last part of the destination's `saml_provider_arn`.
    pub name: String,
    /// `SAMLMetadataDocument`.
    pub metadata: String,
}

/// A role to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleSpec {
    /// `RoleName`: the last part of the destination's `role_arn`.
    pub name: String,
    /// `Path`: `/` or the `/…/` between `role` and the name in `role_arn`.
    pub path: String,
    /// `Description`.
    pub description: String,
    /// `AssumeRolePolicyDocument`.
    pub trust_policy: Value,
    /// `MaxSessionDuration`, seconds.
    pub max_session_duration: u32,
}

/// An inline role policy to put.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicySpec {
    /// `PolicyName`: `nitrosync-<destination id>`.
    pub name: String,
    /// `PolicyDocument`.
    pub document: Value,
}

/// The KMS resource the role may use through Secrets Manager.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KmsScope {
    /// One key, by ARN.
    Key(String),
    /// The keys of one account and region that carry an alias (`alias/NAME`).
    Alias { keys: String, alias: String },
}

/// Everything derived from a valid input.
#[derive(Debug)]
struct Plan<'a> {
    input: &'a IamInput,
    partition: String,
    account: String,
    role_name: String,
    role_path: String,
    provider_name: String,
    kms: Option<KmsScope>,
}

fn check_subject(subject: &str) -> Result<(), IamError> {
    let bad = |reason: &str| {
        Err(IamError::Subject {
            reason: format!("{subject:?} {reason}"),
        })
    };
    let Some(rest) = subject.strip_prefix("ns1-") else {
        return bad("must start with ns1- (the destination's SAML subject, DESIGN §3)");
    };
    if rest.len() != 32 {
        return bad("must be ns1- followed by 32 base32 characters");
    }
    if !rest
        .bytes()
        .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
    {
        return bad("must be ns1- followed by lowercase base32 (a-z, 2-7)");
    }
    Ok(())
}

fn check_metadata(metadata: &str) -> Result<(), IamError> {
    let bad = |reason: String| Err(IamError::Metadata { reason });
    if metadata.trim().is_empty() {
        return bad("is empty: pass the worker's SAML IdP metadata XML".to_owned());
    }
    let chars = metadata.chars().count();
    if chars < MIN_METADATA_CHARS {
        return bad(format!(
            "is {chars} characters; IAM takes {MIN_METADATA_CHARS} to {MAX_METADATA_CHARS} (is it the whole document?)"
        ));
    }
    if chars > MAX_METADATA_CHARS {
        return bad(format!(
            "is {chars} characters; IAM takes at most {MAX_METADATA_CHARS}"
        ));
    }
    if !metadata.contains("EntityDescriptor") || !metadata.contains("IDPSSODescriptor") {
        return bad(
            "is not SAML IdP metadata (no EntityDescriptor with an IDPSSODescriptor)".into(),
        );
    }
    if metadata
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return bad("contains control characters".into());
    }
    Ok(())
}

/// `(path, name)` of a role ARN's `role/path/name` resource, with the worker's and IAM's rules.
fn role_path_and_name(role_arn: &str, resource: &str) -> Result<(String, String), IamError> {
    let rest = resource
        .strip_prefix("role/")
        .ok_or_else(|| dest_err("role_arn", "resource must be role/NAME"))?;
    if role_arn.contains(',') {
        return Err(dest_err(
            "role_arn",
            "must not contain ',' (the SAML Role attribute joins the role and provider ARNs with ',')",
        ));
    }
    let (path, name) = match rest.rsplit_once('/') {
        Some((path, name)) => (format!("/{path}/"), name),
        None => ("/".to_owned(), rest),
    };
    if path.contains("//") {
        return Err(dest_err(
            "role_arn",
            "role path has an empty segment ('//')",
        ));
    }
    if path.len() > 512 {
        return Err(dest_err(
            "role_arn",
            "role path is longer than 512 characters",
        ));
    }
    Ok((path, name.to_owned()))
}

fn provider_name(resource: &str) -> Result<String, IamError> {
    let name = resource
        .strip_prefix("saml-provider/")
        .ok_or_else(|| dest_err("saml_provider_arn", "resource must be saml-provider/NAME"))?;
    if name.contains('/') {
        return Err(dest_err(
            "saml_provider_arn",
            "SAML providers have no path: use arn:…:saml-provider/NAME",
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(dest_err(
            "saml_provider_arn",
            "provider name may contain only letters, digits, '_', '.' and '-'",
        ));
    }
    Ok(name.to_owned())
}

/// Resolves the destination's KMS key reference to what the policy can name.
///
/// A key ARN is used as is and a bare key id becomes the key's ARN in the destination's account
/// and region. IAM authorises cryptographic calls against the *key* ARN, never the alias ARN, so
/// an alias (bare or ARN) becomes `key/*` in the alias's account and region narrowed by
/// `kms:ResourceAliases` to keys that carry that alias.
fn kms_scope(
    d: &DestinationConfig,
    partition: &str,
    account: &str,
) -> Result<Option<KmsScope>, IamError> {
    let Some(key) = d.kms_key_id.as_deref() else {
        return Ok(None);
    };
    let keys_in =
        |region: &str, account: &str| format!("arn:{partition}:kms:{region}:{account}:key/*");
    if key.starts_with("arn:") {
        let parts: Vec<&str> = key.splitn(6, ':').collect();
        let [_, key_partition, _, region, key_account, resource] = parts.as_slice() else {
            return Err(dest_err(
                "kms_key_id",
                "must be arn:PARTITION:kms:REGION:ACCOUNT:key/ID",
            ));
        };
        if key_partition != &partition {
            return Err(dest_err(
                "kms_key_id",
                format!("key is in partition {key_partition}, the role in {partition}"),
            ));
        }
        if region != &d.region {
            return Err(dest_err(
                "kms_key_id",
                format!(
                    "key is in {region}; Secrets Manager only uses keys in the secret's region ({})",
                    d.region
                ),
            ));
        }
        if resource.starts_with("key/") {
            return Ok(Some(KmsScope::Key(key.to_owned())));
        }
        if resource.starts_with("alias/aws/") {
            return Err(dest_err(
                "kms_key_id",
                "AWS managed aliases need no IAM permission: leave kms_key_id unset",
            ));
        }
        return Ok(Some(KmsScope::Alias {
            keys: keys_in(region, key_account),
            alias: (*resource).to_owned(),
        }));
    }
    if key.starts_with("alias/") {
        return Ok(Some(KmsScope::Alias {
            keys: keys_in(&d.region, account),
            alias: key.to_owned(),
        }));
    }
    Ok(Some(KmsScope::Key(format!(
        "arn:{partition}:kms:{}:{account}:key/{key}",
        d.region
    ))))
}

fn plan(input: &IamInput) -> Result<Plan<'_>, IamError> {
    let d = &input.destination;
    d.validate().map_err(IamError::Destination)?;
    check_subject(&input.subject)?;
    check_metadata(&input.saml_metadata)?;
    let role = names::role_arn(&d.role_arn).map_err(|e| dest_err("role_arn", e.0))?;
    let provider = names::saml_provider_arn(&d.saml_provider_arn)
        .map_err(|e| dest_err("saml_provider_arn", e.0))?;
    let region_partition = names::partition_of(&d.region);
    if region_partition != role.partition {
        return Err(dest_err(
            "region",
            format!(
                "{} is in partition {region_partition}, but role_arn is in {}",
                d.region, role.partition
            ),
        ));
    }
    let (role_path, role_name) = role_path_and_name(&d.role_arn, &role.resource)?;
    let provider_name = provider_name(&provider.resource)?;
    let kms = kms_scope(d, &role.partition, &role.account)?;
    Ok(Plan {
        input,
        partition: role.partition,
        account: role.account,
        role_name,
        role_path,
        provider_name,
        kms,
    })
}

/// `x` alone when there is one value, an array otherwise.
fn one_or_many(mut values: Vec<String>) -> Value {
    if values.len() == 1 {
        Value::String(values.remove(0))
    } else {
        Value::from(values)
    }
}

fn statement(
    sid: &str,
    actions: &[&str],
    resources: Vec<String>,
    condition: Option<Value>,
) -> Value {
    let mut s = Map::new();
    s.insert("Sid".into(), sid.into());
    s.insert("Effect".into(), "Allow".into());
    let actions: Vec<String> = actions.iter().map(|a| (*a).to_owned()).collect();
    s.insert("Action".into(), one_or_many(actions));
    s.insert("Resource".into(), one_or_many(resources));
    if let Some(c) = condition {
        s.insert("Condition".into(), c);
    }
    Value::Object(s)
}

impl Plan<'_> {
    fn dest(&self) -> &DestinationConfig {
        &self.input.destination
    }

    fn policy_name(&self) -> String {
        format!("nitrosync-{}", self.dest().id)
    }

    fn description(&self) -> String {
        format!(
            "nitrosync: assumed by the nitrosync enclave to sync destination {} into secret {} ({}).",
            self.dest().id,
            self.dest().secret_name,
            self.dest().region
        )
    }

    fn secret_arn_prefix(&self) -> String {
        format!(
            "arn:{}:secretsmanager:{}:{}:secret:{}",
            self.partition,
            self.dest().region,
            self.account,
            self.dest().secret_name
        )
    }

    /// The destination's secret: its name, `-`, and the six random characters AWS appends.
    fn secret_arn(&self) -> String {
        format!("{}-??????", self.secret_arn_prefix())
    }

    /// The test connection's placeholders, `<name>-nitrosync-test-<random>-??????`.
    fn test_secret_arns(&self) -> String {
        format!("{}{TEST_SECRET_INFIX}*", self.secret_arn_prefix())
    }

    /// The sign-in endpoints STS accepts as the assertion's `Recipient` (`saml:aud`): the global
    /// one, and for the `aws` partition the destination region's endpoint (DESIGN §7).
    fn saml_audiences(&self) -> Vec<String> {
        match self.partition.as_str() {
            "aws-cn" => vec!["https://signin.amazonaws.cn/saml".to_owned()],
            "aws-us-gov" => vec!["https://signin.amazonaws-us-gov.com/saml".to_owned()],
            _ => vec![
                "https://signin.aws.amazon.com/saml".to_owned(),
                format!("https://{}.signin.aws.amazon.com/saml", self.dest().region),
            ],
        }
    }

    /// `kms:ViaService` values for Secrets Manager in the destination's region. China's service
    /// hostnames end in `.amazonaws.com.cn`; both spellings are listed there.
    fn kms_via_services(&self) -> Vec<String> {
        let base = format!("secretsmanager.{}.amazonaws.com", self.dest().region);
        if self.partition == "aws-cn" {
            vec![base.clone(), format!("{base}.cn")]
        } else {
            vec![base]
        }
    }

    fn trust_policy(&self, principal: &Value) -> Value {
        json!({
            "Version": POLICY_VERSION,
            "Statement": [{
                "Sid": "NitrosyncSamlSubject",
                "Effect": "Allow",
                "Principal": { "Federated": principal },
                "Action": "sts:AssumeRoleWithSAML",
                "Condition": {
                    "StringEquals": {
                        "saml:sub": self.input.subject,
                        "saml:sub_type": "persistent",
                        "saml:aud": one_or_many(self.saml_audiences()),
                    }
                }
            }]
        })
    }

    fn identity_policy(&self) -> Value {
        let id = self.dest().id.as_str();
        let owned = || {
            json!({
                "StringEquals": {
                    format!("secretsmanager:ResourceTag/{TAG_MANAGED_BY}"): MANAGED_BY,
                    format!("secretsmanager:ResourceTag/{TAG_DESTINATION}"): id,
                }
            })
        };
        let creating_owned = || {
            json!({
                "StringEquals": {
                    format!("aws:RequestTag/{TAG_MANAGED_BY}"): MANAGED_BY,
                    format!("aws:RequestTag/{TAG_DESTINATION}"): id,
                }
            })
        };
        let secret = self.secret_arn();
        let tests = self.test_secret_arns();
        let mut statements = vec![
            // Ownership and version checks. The ARN without the suffix covers the lookup of a
            // secret that does not exist yet, which has no suffix to match.
            statement(
                "ReadSecretMetadata",
                &["secretsmanager:DescribeSecret"],
                vec![secret.clone(), self.secret_arn_prefix()],
                None,
            ),
            statement(
                "CreateOwnedSecret",
                &["secretsmanager:CreateSecret"],
                vec![secret.clone(), tests.clone()],
                Some(creating_owned()),
            ),
            // CreateSecret with tags also needs TagResource, checked against the request's tags
            // (the new secret has none yet).
            statement(
                "TagOnCreate",
                &["secretsmanager:TagResource"],
                vec![secret.clone(), tests.clone()],
                Some(creating_owned()),
            ),
            statement(
                "WriteOwnedSecret",
                &["secretsmanager:PutSecretValue"],
                vec![secret.clone()],
                Some(owned()),
            ),
        ];
        // Version, MAC and user tags move; the ownership tags may not.
        let mut retag = owned();
        retag["ForAllValues:StringNotEquals"] =
            json!({ "aws:TagKeys": [TAG_MANAGED_BY, TAG_DESTINATION] });
        statements.push(statement(
            "RetagOwnedSecret",
            &["secretsmanager:TagResource"],
            vec![secret.clone()],
            Some(retag),
        ));
        let mut force = owned();
        force["Bool"] = json!({ "secretsmanager:ForceDeleteWithoutRecovery": "true" });
        statements.push(statement(
            "DeleteTestSecret",
            &["secretsmanager:DeleteSecret"],
            vec![tests.clone()],
            Some(force),
        ));
        if matches!(self.dest().delete_policy, DeletePolicy::Delete { .. }) {
            statements.push(statement(
                "DeleteOwnedSecret",
                &[
                    "secretsmanager:DeleteSecret",
                    "secretsmanager:RemoveRegionsFromReplication",
                ],
                vec![secret.clone()],
                Some(owned()),
            ));
        }
        if let Some(kms) = &self.kms {
            let mut condition = json!({
                "StringEquals": { "kms:ViaService": one_or_many(self.kms_via_services()) },
                "StringLike": { "kms:EncryptionContext:SecretARN": [secret, tests] },
            });
            let resource = match kms {
                KmsScope::Key(arn) => arn.clone(),
                KmsScope::Alias { keys, alias } => {
                    condition["ForAnyValue:StringEquals"] = json!({ "kms:ResourceAliases": alias });
                    keys.clone()
                }
            };
            statements.push(statement(
                "UseKmsKeyThroughSecretsManager",
                &["kms:GenerateDataKey", "kms:Decrypt"],
                vec![resource],
                Some(condition),
            ));
        }
        json!({ "Version": POLICY_VERSION, "Statement": statements })
    }

    fn provider_arn(&self) -> &str {
        &self.dest().saml_provider_arn
    }
}

/// Replaces `Principal.Federated` (the provider's ARN) in every statement of a trust policy.
fn set_federated(trust: &mut Value, principal: &Value) {
    if let Some(statements) = trust["Statement"].as_array_mut() {
        for s in statements {
            if let Some(p) = s.get_mut("Principal").and_then(Value::as_object_mut) {
                p.insert("Federated".into(), principal.clone());
            }
        }
    }
}

/// The role's trust policy and identity policy: the single source of all three output forms.
///
/// # Errors
///
/// [`IamError`] naming the field when the input cannot produce working IAM.
pub fn policy_documents(input: &IamInput) -> Result<PolicyDocuments, IamError> {
    let plan = plan(input)?;
    Ok(documents(&plan))
}

fn documents(plan: &Plan<'_>) -> PolicyDocuments {
    PolicyDocuments {
        trust_policy: plan.trust_policy(&Value::String(plan.provider_arn().to_owned())),
        identity_policy: plan.identity_policy(),
    }
}

/// The three resources as IAM API requests take them: what `nitrosync iam apply` sends.
///
/// # Errors
///
/// As [`policy_documents`].
pub fn json(input: &IamInput) -> Result<IamDocuments, IamError> {
    let plan = plan(input)?;
    let docs = documents(&plan);
    Ok(IamDocuments {
        account: plan.account.clone(),
        saml_provider: SamlProviderSpec {
            name: plan.provider_name.clone(),
            metadata: input.saml_metadata.clone(),
        },
        role: RoleSpec {
            name: plan.role_name.clone(),
            path: plan.role_path.clone(),
            description: plan.description(),
            trust_policy: docs.trust_policy,
            max_session_duration: MAX_SESSION_DURATION,
        },
        policy: PolicySpec {
            name: plan.policy_name(),
            document: docs.identity_policy,
        },
    })
}

/// A CloudFormation template (JSON) creating the SAML provider, and the role with its inline
/// policy. Deploy it in the destination's account with `CAPABILITY_NAMED_IAM` (the role keeps
/// the name in `role_arn`).
///
/// # Errors
///
/// As [`policy_documents`].
pub fn cloudformation(input: &IamInput) -> Result<String, IamError> {
    let plan = plan(input)?;
    let PolicyDocuments {
        mut trust_policy,
        identity_policy,
    } = documents(&plan);
    // `Ref` of an AWS::IAM::SAMLProvider is its ARN.
    set_federated(&mut trust_policy, &json!({ "Ref": CFN_PROVIDER }));
    let d = plan.dest();
    let template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!(
            "nitrosync IAM for destination {} (account {}): SAML provider {}, role {}{}.",
            d.id, plan.account, plan.provider_name, plan.role_path, plan.role_name
        ),
        "Resources": {
            CFN_PROVIDER: {
                "Type": "AWS::IAM::SAMLProvider",
                "Properties": {
                    "Name": plan.provider_name,
                    "SamlMetadataDocument": input.saml_metadata,
                }
            },
            CFN_ROLE: {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": plan.role_name,
                    "Path": plan.role_path,
                    "Description": plan.description(),
                    "MaxSessionDuration": MAX_SESSION_DURATION,
                    "AssumeRolePolicyDocument": trust_policy,
                    "Policies": [{
                        "PolicyName": plan.policy_name(),
                        "PolicyDocument": identity_policy,
                    }],
                }
            }
        },
        "Outputs": {
            "RoleArn": {
                "Description": "The destination's role_arn.",
                "Value": { "Fn::GetAtt": [CFN_ROLE, "Arn"] },
            },
            "SamlProviderArn": {
                "Description": "The destination's saml_provider_arn.",
                "Value": { "Ref": CFN_PROVIDER },
            },
            "SamlSubject": {
                "Description": "The SAML subject the role's trust policy pins (saml:sub).",
                "Value": input.subject,
            },
        }
    });
    let mut out = serde_json::to_string_pretty(&template).unwrap_or_default();
    out.push('\n');
    Ok(out)
}

/// A Terraform root module (HCL) creating the SAML provider, and the role with its inline
/// policy. `terraform fmt` leaves it unchanged; the AWS provider is pinned to the destination's
/// region and account.
///
/// # Errors
///
/// As [`policy_documents`].
pub fn terraform(input: &IamInput) -> Result<String, IamError> {
    let plan = plan(input)?;
    let PolicyDocuments {
        trust_policy,
        identity_policy,
    } = documents(&plan);
    let d = plan.dest();
    let provider_ref = format!("aws_iam_saml_provider.{TF_NAME}.arn");
    let trust = hcl::from_json(&trust_policy, &|s| {
        (s == plan.provider_arn()).then(|| provider_ref.clone())
    });
    let identity = hcl::from_json(&identity_policy, &|_| None);
    let mut body = vec![
        hcl::Item::Block(
            "terraform".into(),
            vec![],
            vec![hcl::Item::Block(
                "required_providers".into(),
                vec![],
                vec![hcl::Item::Attr(
                    "aws".into(),
                    hcl::Hcl::Obj(vec![
                        ("source".into(), hcl::Hcl::Str("hashicorp/aws".into())),
                        ("version".into(), hcl::Hcl::Str(">= 5.0".into())),
                    ]),
                )],
            )],
        ),
        hcl::Item::Blank,
        hcl::Item::Block(
            "provider".into(),
            vec!["aws".into()],
            vec![
                hcl::Item::Attr("region".into(), hcl::Hcl::Str(d.region.clone())),
                hcl::Item::Attr(
                    "allowed_account_ids".into(),
                    hcl::Hcl::List(vec![hcl::Hcl::Str(plan.account.clone())]),
                ),
            ],
        ),
        hcl::Item::Blank,
        hcl::Item::Block(
            "resource".into(),
            vec!["aws_iam_saml_provider".into(), TF_NAME.into()],
            vec![
                hcl::Item::Attr("name".into(), hcl::Hcl::Str(plan.provider_name.clone())),
                hcl::Item::Attr(
                    "saml_metadata_document".into(),
                    hcl::Hcl::Heredoc(input.saml_metadata.clone()),
                ),
            ],
        ),
        hcl::Item::Blank,
        hcl::Item::Block(
            "resource".into(),
            vec!["aws_iam_role".into(), TF_NAME.into()],
            vec![
                hcl::Item::Attr("name".into(), hcl::Hcl::Str(plan.role_name.clone())),
                hcl::Item::Attr("path".into(), hcl::Hcl::Str(plan.role_path.clone())),
                hcl::Item::Attr("description".into(), hcl::Hcl::Str(plan.description())),
                hcl::Item::Attr(
                    "max_session_duration".into(),
                    hcl::Hcl::Expr(MAX_SESSION_DURATION.to_string()),
                ),
                hcl::Item::Attr(
                    "assume_role_policy".into(),
                    hcl::Hcl::Call("jsonencode".into(), Box::new(trust)),
                ),
            ],
        ),
        hcl::Item::Blank,
        hcl::Item::Block(
            "resource".into(),
            vec!["aws_iam_role_policy".into(), TF_NAME.into()],
            vec![
                hcl::Item::Attr("name".into(), hcl::Hcl::Str(plan.policy_name())),
                hcl::Item::Attr(
                    "role".into(),
                    hcl::Hcl::Expr(format!("aws_iam_role.{TF_NAME}.id")),
                ),
                hcl::Item::Attr(
                    "policy".into(),
                    hcl::Hcl::Call("jsonencode".into(), Box::new(identity)),
                ),
            ],
        ),
    ];
    for (name, description, value) in [
        (
            "role_arn",
            "The destination's role_arn.",
            hcl::Hcl::Expr(format!("aws_iam_role.{TF_NAME}.arn")),
        ),
        (
            "saml_provider_arn",
            "The destination's saml_provider_arn.",
            hcl::Hcl::Expr(provider_ref.clone()),
        ),
        (
            "saml_subject",
            "The SAML subject the role's trust policy pins (saml:sub).",
            hcl::Hcl::Str(input.subject.clone()),
        ),
    ] {
        body.push(hcl::Item::Blank);
        body.push(hcl::Item::Block(
            "output".into(),
            vec![name.into()],
            vec![
                hcl::Item::Attr("description".into(), hcl::Hcl::Str(description.into())),
                hcl::Item::Attr("value".into(), value),
            ],
        ));
    }
    let header = format!(
        "# nitrosync IAM for destination {} (account {}): the SAML provider, the role and its policy.\n\
         # Generated by nitrosync; regenerate rather than edit.\n\n",
        hcl::comment_safe(&d.id),
        plan.account
    );
    Ok(header + &hcl::render_body(&body))
}

/// Just enough HCL to write the Terraform module in the layout `terraform fmt` produces:
/// consecutive one-line attributes have their `=` aligned, multi-line values break the run.
mod hcl {
    use serde_json::Value;

    /// An expression.
    #[derive(Debug, Clone)]
    pub(super) enum Hcl {
        /// A quoted string literal.
        Str(String),
        /// A literal expression written as is (a number, a reference).
        Expr(String),
        /// A tuple.
        List(Vec<Hcl>),
        /// An object; keys are written as given (identifiers or quoted strings).
        Obj(Vec<(String, Hcl)>),
        /// A function call with one argument.
        Call(String, Box<Hcl>),
        /// A heredoc string.
        Heredoc(String),
    }

    /// A body item.
    #[derive(Debug, Clone)]
    pub(super) enum Item {
        /// `name = value`.
        Attr(String, Hcl),
        /// `type "label" … { body }`.
        Block(String, Vec<String>, Vec<Item>),
        /// An empty line.
        Blank,
    }

    /// `"…"` with HCL's escapes, including the template sequences `${` and `%{`.
    pub(super) fn quote(s: &str) -> String {
        let mut out = String::with_capacity(s.len() + 2);
        out.push('"');
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '$' | '%' if chars.peek() == Some(&'{') => {
                    out.push(c);
                    out.push(c);
                }
                c if c.is_control() => {
                    out.push_str(&format!("\\u{:04x}", u32::from(c)));
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    /// A value for a `#` comment: one line.
    pub(super) fn comment_safe(s: &str) -> String {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    }

    /// JSON as an HCL expression for `jsonencode`; `expr` may turn a string into an expression.
    pub(super) fn from_json(v: &Value, expr: &dyn Fn(&str) -> Option<String>) -> Hcl {
        match v {
            Value::String(s) => expr(s).map_or_else(|| Hcl::Str(s.clone()), Hcl::Expr),
            Value::Array(items) => Hcl::List(items.iter().map(|i| from_json(i, expr)).collect()),
            Value::Object(map) => Hcl::Obj(
                map.iter()
                    .map(|(k, v)| (quote(k), from_json(v, expr)))
                    .collect(),
            ),
            Value::Null => Hcl::Expr("null".into()),
            Value::Bool(b) => Hcl::Expr(b.to_string()),
            Value::Number(n) => Hcl::Expr(n.to_string()),
        }
    }

    /// Whether `fmt` treats the attribute as one line (its brackets close on the line it opens
    /// them). A heredoc's opening line counts as one line.
    fn one_line(v: &Hcl) -> bool {
        match v {
            Hcl::Str(_) | Hcl::Expr(_) | Hcl::Heredoc(_) => true,
            Hcl::List(items) => items
                .iter()
                .all(|i| matches!(i, Hcl::Str(_) | Hcl::Expr(_))),
            Hcl::Obj(entries) => entries.is_empty(),
            Hcl::Call(_, arg) => one_line(arg) && !matches!(**arg, Hcl::Heredoc(_)),
        }
    }

    fn indent(level: usize) -> String {
        "  ".repeat(level)
    }

    /// A heredoc marker that no line of `content` equals.
    fn heredoc_marker(content: &str) -> String {
        let mut marker = "NITROSYNC_SAML_METADATA".to_owned();
        while content.lines().any(|l| l.trim() == marker) {
            marker.push('X');
        }
        marker
    }

    fn render_value(v: &Hcl, level: usize) -> String {
        match v {
            Hcl::Str(s) => quote(s),
            Hcl::Expr(e) => e.clone(),
            Hcl::Call(f, arg) => format!("{f}({})", render_value(arg, level)),
            Hcl::Heredoc(content) => {
                // Heredocs interpolate like quoted strings but take no backslash escapes.
                let content = content
                    .replace("\r\n", "\n")
                    .replace("${", "$${")
                    .replace("%{", "%%{");
                let marker = heredoc_marker(&content);
                let newline = if content.ends_with('\n') { "" } else { "\n" };
                format!("<<{marker}\n{content}{newline}{marker}")
            }
            Hcl::List(items) if one_line(v) => {
                let items: Vec<String> = items.iter().map(|i| render_value(i, level)).collect();
                format!("[{}]", items.join(", "))
            }
            Hcl::List(items) => {
                let mut out = "[\n".to_owned();
                for i in items {
                    out.push_str(&indent(level + 1));
                    out.push_str(&render_value(i, level + 1));
                    out.push_str(",\n");
                }
                out.push_str(&indent(level));
                out.push(']');
                out
            }
            Hcl::Obj(entries) if entries.is_empty() => "{}".to_owned(),
            Hcl::Obj(entries) => {
                let items: Vec<Item> = entries
                    .iter()
                    .map(|(k, v)| Item::Attr(k.clone(), v.clone()))
                    .collect();
                format!("{{\n{}{}}}", render_items(&items, level + 1), indent(level))
            }
        }
    }

    /// Items at `level`, each line ending in a newline.
    fn render_items(items: &[Item], level: usize) -> String {
        let mut out = String::new();
        let mut i = 0;
        while i < items.len() {
            match &items[i] {
                Item::Blank => {
                    out.push('\n');
                    i += 1;
                }
                Item::Block(kind, labels, body) => {
                    out.push_str(&indent(level));
                    out.push_str(kind);
                    for l in labels {
                        out.push(' ');
                        out.push_str(&quote(l));
                    }
                    out.push_str(" {\n");
                    out.push_str(&render_items(body, level + 1));
                    out.push_str(&indent(level));
                    out.push_str("}\n");
                    i += 1;
                }
                Item::Attr(..) => {
                    // A run of one-line attributes shares the column of its `=`; a multi-line
                    // attribute stands alone. A heredoc ends the run after itself.
                    let mut end = i;
                    while let Some(Item::Attr(_, v)) = items.get(end) {
                        if !one_line(v) {
                            break;
                        }
                        end += 1;
                        if matches!(v, Hcl::Heredoc(_)) {
                            break;
                        }
                    }
                    let run = if end == i { i..i + 1 } else { i..end };
                    let width = items[run.clone()]
                        .iter()
                        .map(|it| match it {
                            Item::Attr(k, _) => k.chars().count(),
                            _ => 0,
                        })
                        .max()
                        .unwrap_or(0);
                    for it in &items[run.clone()] {
                        if let Item::Attr(k, v) = it {
                            let pad = if end == i {
                                0
                            } else {
                                width - k.chars().count()
                            };
                            out.push_str(&indent(level));
                            out.push_str(k);
                            out.push_str(&" ".repeat(pad));
                            out.push_str(" = ");
                            out.push_str(&render_value(v, level));
                            out.push('\n');
                        }
                    }
                    i = run.end;
                }
            }
        }
        out
    }

    /// A whole file body.
    pub(super) fn render_body(items: &[Item]) -> String {
        render_items(items, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nitrosync_shared::bundle::{RESERVED_TAGS, saml_subject};
    use std::collections::BTreeMap;

    /// IdP metadata of a realistic size (IAM wants at least 1,000 characters).
    pub(crate) fn metadata() -> String {
        let cert: String = "MIIDdzCCAl+gAwIBAgIUQk9vZ3VzLWNlcnQtZm9yLXRlc3RzLW9ubHk"
            .chars()
            .cycle()
            .take(1200)
            .collect();
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://nitrosync.example/saml/idp">
  <md:IDPSSODescriptor WantAuthnRequestsSigned="false" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
        <ds:X509Data>
          <ds:X509Certificate>{cert}</ds:X509Certificate>
        </ds:X509Data>
      </ds:KeyInfo>
    </md:KeyDescriptor>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://nitrosync.example/saml/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
"#
        )
    }

    pub(crate) fn destination() -> DestinationConfig {
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

    pub(crate) fn input(d: DestinationConfig) -> IamInput {
        IamInput {
            subject: saml_subject(&[7; 32], &d.id),
            destination: d,
            saml_metadata: metadata(),
        }
    }

    /// Every name at its longest, with an alias and a delete policy: the largest documents.
    pub(crate) fn longest() -> IamInput {
        let mut d = destination();
        d.id = "d".repeat(64);
        d.secret_name = "s".repeat(512);
        d.role_arn = format!(
            "arn:aws:iam::123456789012:role/{}/{}",
            "p".repeat(400),
            "r".repeat(64)
        );
        d.saml_provider_arn = format!(
            "arn:aws:iam::123456789012:saml-provider/{}",
            "n".repeat(128)
        );
        d.kms_key_id = Some("alias/nitrosync".into());
        d.delete_policy = DeletePolicy::Delete {
            recovery_days: None,
        };
        input(d)
    }

    /// A spread of inputs: paths, KMS forms, partitions, delete policies, longest names.
    pub(crate) fn variants() -> Vec<(&'static str, IamInput)> {
        let mut out = vec![("plain", input(destination()))];
        let mut d = destination();
        d.role_arn = "arn:aws:iam::123456789012:role/team/sync/nitrosync-prod".into();
        d.kms_key_id = Some("1234abcd-12ab-34cd-56ef-1234567890ab".into());
        d.delete_policy = DeletePolicy::Delete {
            recovery_days: Some(7),
        };
        out.push(("path+key-id+delete", input(d)));
        let mut d = destination();
        d.kms_key_id = Some("alias/nitrosync".into());
        out.push(("alias", input(d)));
        let mut d = destination();
        d.kms_key_id = Some(
            "arn:aws:kms:us-east-1:210987654321:key/mrk-1234abcd12ab34cd56ef1234567890ab".into(),
        );
        out.push(("cross-account key arn", input(d)));
        let mut d = destination();
        d.region = "cn-north-1".into();
        d.role_arn = "arn:aws-cn:iam::123456789012:role/nitrosync-prod".into();
        d.saml_provider_arn = "arn:aws-cn:iam::123456789012:saml-provider/nitrosync".into();
        d.kms_key_id = Some("arn:aws-cn:kms:cn-north-1:123456789012:alias/secrets".into());
        d.delete_policy = DeletePolicy::Delete {
            recovery_days: None,
        };
        out.push(("aws-cn", input(d)));
        let mut d = destination();
        d.region = "us-gov-west-1".into();
        d.role_arn = "arn:aws-us-gov:iam::123456789012:role/nitrosync-prod".into();
        d.saml_provider_arn = "arn:aws-us-gov:iam::123456789012:saml-provider/nitrosync".into();
        d.kms_key_id = Some("mrk-1234abcd12ab34cd56ef1234567890ab".into());
        out.push(("aws-us-gov", input(d)));
        out.push(("longest names", longest()));
        out
    }

    fn statement<'a>(policy: &'a Value, sid: &str) -> Option<&'a Value> {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == sid)
    }

    fn list(v: &Value) -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_owned()).collect(),
            other => panic!("not a string or list: {other}"),
        }
    }

    /// Every (action, resource) pair the policy allows, conditions aside.
    fn grants(policy: &Value) -> Vec<(String, String)> {
        let mut out = vec![];
        for s in policy["Statement"].as_array().unwrap() {
            assert_eq!(s["Effect"], "Allow");
            for a in list(&s["Action"]) {
                for r in list(&s["Resource"]) {
                    out.push((a.clone(), r));
                }
            }
        }
        out.sort();
        out
    }

    const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/api/env-??????";
    const TESTS: &str =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/api/env-nitrosync-test-*";
    const BARE: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/api/env";

    #[test]
    fn tag_keys_are_the_reserved_ones() {
        assert!(RESERVED_TAGS.contains(&TAG_MANAGED_BY));
        assert!(RESERVED_TAGS.contains(&TAG_DESTINATION));
    }

    #[test]
    fn identity_policy_grants_exactly_what_the_worker_calls() {
        let p = policy_documents(&input(destination()))
            .unwrap()
            .identity_policy;
        assert_eq!(p["Version"], "2012-10-17");
        let pair = |a: &str, r: &str| (format!("secretsmanager:{a}"), r.to_owned());
        let mut want = vec![
            pair("DescribeSecret", SECRET),
            pair("DescribeSecret", BARE),
            pair("CreateSecret", SECRET),
            pair("CreateSecret", TESTS),
            pair("TagResource", SECRET),
            pair("TagResource", TESTS),
            pair("PutSecretValue", SECRET),
            pair("TagResource", SECRET),
            pair("DeleteSecret", TESTS),
        ];
        want.sort();
        assert_eq!(grants(&p), want);
        let text = p.to_string();
        for never in [
            "UpdateSecret",
            "GetSecretValue",
            "kms:",
            "\"*\"",
            "Deny",
            "Untag",
        ] {
            assert!(!text.contains(never), "{never} in {text}");
        }
    }

    #[test]
    fn conditions_pin_ownership_tags() {
        let p = policy_documents(&input(destination()))
            .unwrap()
            .identity_policy;
        let owned = json!({
            "secretsmanager:ResourceTag/nitrosync:managed-by": "nitrosync",
            "secretsmanager:ResourceTag/nitrosync:destination": "prod-api",
        });
        let create = json!({
            "aws:RequestTag/nitrosync:managed-by": "nitrosync",
            "aws:RequestTag/nitrosync:destination": "prod-api",
        });
        assert!(
            statement(&p, "ReadSecretMetadata")
                .unwrap()
                .get("Condition")
                .is_none()
        );
        for sid in ["CreateOwnedSecret", "TagOnCreate"] {
            let c = &statement(&p, sid).unwrap()["Condition"];
            assert_eq!(c, &json!({ "StringEquals": create }), "{sid}");
        }
        let c = &statement(&p, "WriteOwnedSecret").unwrap()["Condition"];
        assert_eq!(c, &json!({ "StringEquals": owned }));
        let c = &statement(&p, "RetagOwnedSecret").unwrap()["Condition"];
        assert_eq!(c["StringEquals"], owned);
        assert_eq!(
            c["ForAllValues:StringNotEquals"]["aws:TagKeys"],
            json!(["nitrosync:managed-by", "nitrosync:destination"])
        );
        let c = &statement(&p, "DeleteTestSecret").unwrap()["Condition"];
        assert_eq!(c["StringEquals"], owned);
        assert_eq!(
            c["Bool"]["secretsmanager:ForceDeleteWithoutRecovery"],
            "true"
        );
    }

    #[test]
    fn delete_permissions_follow_the_delete_policy() {
        let mut d = destination();
        let p = policy_documents(&input(d.clone())).unwrap().identity_policy;
        assert!(statement(&p, "DeleteOwnedSecret").is_none());
        assert!(!p.to_string().contains("RemoveRegionsFromReplication"));
        d.delete_policy = DeletePolicy::Delete {
            recovery_days: None,
        };
        let p = policy_documents(&input(d)).unwrap().identity_policy;
        let s = statement(&p, "DeleteOwnedSecret").unwrap();
        assert_eq!(
            list(&s["Action"]),
            [
                "secretsmanager:DeleteSecret",
                "secretsmanager:RemoveRegionsFromReplication"
            ]
        );
        assert_eq!(s["Resource"], SECRET);
        assert!(
            s["Condition"]["StringEquals"]["secretsmanager:ResourceTag/nitrosync:destination"]
                == "prod-api"
        );
    }

    #[test]
    fn trust_policy_pins_provider_subject_type_and_audience() {
        let i = input(destination());
        let t = policy_documents(&i).unwrap().trust_policy;
        let statements = t["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 1);
        let s = &statements[0];
        assert_eq!(s["Effect"], "Allow");
        assert_eq!(s["Action"], "sts:AssumeRoleWithSAML");
        assert_eq!(
            s["Principal"],
            json!({ "Federated": "arn:aws:iam::123456789012:saml-provider/nitrosync" })
        );
        let c = s["Condition"].as_object().unwrap();
        assert_eq!(c.len(), 1, "only StringEquals: {c:?}");
        let eq = c["StringEquals"].as_object().unwrap();
        assert_eq!(eq.len(), 3);
        assert_eq!(eq["saml:sub"], i.subject.as_str());
        assert!(i.subject.starts_with("ns1-"));
        assert_eq!(eq["saml:sub_type"], "persistent");
        assert_eq!(
            eq["saml:aud"],
            json!([
                "https://signin.aws.amazon.com/saml",
                "https://us-east-1.signin.aws.amazon.com/saml"
            ])
        );
    }

    #[test]
    fn kms_statement_only_with_a_key() {
        let p = policy_documents(&input(destination()))
            .unwrap()
            .identity_policy;
        assert!(statement(&p, "UseKmsKeyThroughSecretsManager").is_none());

        let kms = |key: &str| {
            let mut d = destination();
            d.kms_key_id = Some(key.into());
            let p = policy_documents(&input(d)).unwrap().identity_policy;
            statement(&p, "UseKmsKeyThroughSecretsManager")
                .unwrap()
                .clone()
        };
        let key_arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        for key in ["1234abcd-12ab-34cd-56ef-1234567890ab", key_arn] {
            let s = kms(key);
            assert_eq!(s["Action"], json!(["kms:GenerateDataKey", "kms:Decrypt"]));
            assert_eq!(s["Resource"], key_arn, "{key}");
            let c = &s["Condition"];
            assert_eq!(
                c["StringEquals"]["kms:ViaService"],
                "secretsmanager.us-east-1.amazonaws.com"
            );
            assert_eq!(
                c["StringLike"]["kms:EncryptionContext:SecretARN"],
                json!([SECRET, TESTS])
            );
            assert!(c.get("ForAnyValue:StringEquals").is_none());
        }
        for (key, keys) in [
            (
                "alias/nitrosync",
                "arn:aws:kms:us-east-1:123456789012:key/*",
            ),
            (
                "arn:aws:kms:us-east-1:210987654321:alias/nitrosync",
                "arn:aws:kms:us-east-1:210987654321:key/*",
            ),
        ] {
            let s = kms(key);
            assert_eq!(s["Resource"], keys);
            let c = &s["Condition"];
            assert_eq!(
                c["ForAnyValue:StringEquals"]["kms:ResourceAliases"],
                "alias/nitrosync"
            );
            assert_eq!(
                c["StringEquals"]["kms:ViaService"],
                "secretsmanager.us-east-1.amazonaws.com"
            );
            assert_eq!(
                c["StringLike"]["kms:EncryptionContext:SecretARN"],
                json!([SECRET, TESTS])
            );
        }
    }

    #[test]
    fn partitions_flow_into_every_arn() {
        for (name, i) in variants() {
            let partition = names::partition_of(&i.destination.region);
            let docs = policy_documents(&i).unwrap();
            let p = &docs.identity_policy;
            for (action, resource) in grants(p) {
                assert!(
                    resource.starts_with(&format!("arn:{partition}:")),
                    "{name}: {action} on {resource}"
                );
                assert!(
                    resource.contains(&format!(":{}:", i.destination.region)),
                    "{name}: {resource}"
                );
            }
            let aud = &docs.trust_policy["Statement"][0]["Condition"]["StringEquals"]["saml:aud"];
            match partition {
                "aws-cn" => {
                    assert_eq!(aud, "https://signin.amazonaws.cn/saml");
                    let s = statement(p, "UseKmsKeyThroughSecretsManager").unwrap();
                    assert_eq!(
                        s["Resource"],
                        "arn:aws-cn:kms:cn-north-1:123456789012:key/*"
                    );
                    assert_eq!(
                        s["Condition"]["StringEquals"]["kms:ViaService"],
                        json!([
                            "secretsmanager.cn-north-1.amazonaws.com",
                            "secretsmanager.cn-north-1.amazonaws.com.cn"
                        ])
                    );
                }
                "aws-us-gov" => {
                    assert_eq!(aud, "https://signin.amazonaws-us-gov.com/saml");
                    let s = statement(p, "UseKmsKeyThroughSecretsManager").unwrap();
                    assert_eq!(
                        s["Resource"],
                        "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab"
                    );
                }
                _ => assert_eq!(aud[0], "https://signin.aws.amazon.com/saml"),
            }
        }
    }

    #[test]
    fn names_come_from_the_arns() {
        let mut d = destination();
        d.role_arn = "arn:aws:iam::123456789012:role/team/sync/nitrosync-prod".into();
        let docs = json(&input(d)).unwrap();
        assert_eq!(docs.role.name, "nitrosync-prod");
        assert_eq!(docs.role.path, "/team/sync/");
        assert_eq!(docs.role.max_session_duration, 3600);
        assert_eq!(docs.saml_provider.name, "nitrosync");
        assert_eq!(docs.saml_provider.metadata, metadata());
        assert_eq!(docs.policy.name, "nitrosync-prod-api");
        assert_eq!(docs.account, "123456789012");
        let docs = json(&input(destination())).unwrap();
        assert_eq!(docs.role.path, "/");
        // The IAM API form serialises with the field names `iam apply` reads.
        let v = serde_json::to_value(&docs).unwrap();
        for k in ["saml_provider", "role", "policy"] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert!(v["role"]["trust_policy"]["Statement"].is_array());
        assert!(v["policy"]["document"]["Statement"].is_array());
    }

    #[test]
    fn all_forms_carry_the_same_documents() {
        for (name, i) in variants() {
            let docs = policy_documents(&i).unwrap();
            let api = json(&i).unwrap();
            assert_eq!(api.role.trust_policy, docs.trust_policy, "{name}");
            assert_eq!(api.policy.document, docs.identity_policy, "{name}");
            let cfn: Value = serde_json::from_str(&cloudformation(&i).unwrap()).unwrap();
            let role = &cfn["Resources"]["Role"]["Properties"];
            assert_eq!(
                role["Policies"][0]["PolicyDocument"], docs.identity_policy,
                "{name}"
            );
            let mut trust = docs.trust_policy.clone();
            set_federated(&mut trust, &json!({ "Ref": "SamlProvider" }));
            assert_eq!(role["AssumeRolePolicyDocument"], trust, "{name}");
            assert_eq!(role["RoleName"], api.role.name.as_str());
            assert_eq!(role["Path"], api.role.path.as_str());
            assert_eq!(role["MaxSessionDuration"], 3600);
            let provider = &cfn["Resources"]["SamlProvider"];
            assert_eq!(provider["Type"], "AWS::IAM::SAMLProvider");
            assert_eq!(
                provider["Properties"]["Name"],
                api.saml_provider.name.as_str()
            );
            assert_eq!(
                provider["Properties"]["SamlMetadataDocument"],
                i.saml_metadata.as_str()
            );
            assert_eq!(
                cfn["Outputs"]["SamlProviderArn"]["Value"],
                json!({ "Ref": "SamlProvider" })
            );
            assert_eq!(
                cfn["Outputs"]["RoleArn"]["Value"],
                json!({ "Fn::GetAtt": ["Role", "Arn"] })
            );
            assert!(
                cfn["Description"]
                    .as_str()
                    .unwrap()
                    .contains(&i.destination.id)
            );

            let tf = terraform(&i).unwrap();
            assert!(
                tf.contains("Federated\" = aws_iam_saml_provider.nitrosync.arn"),
                "{tf}"
            );
            assert!(!tf.contains(&format!("\"{}\"", i.destination.saml_provider_arn)));
            for s in docs.identity_policy["Statement"].as_array().unwrap() {
                let sid = s["Sid"].as_str().unwrap();
                assert!(tf.contains(&format!("= \"{sid}\"\n")), "{name}: {sid}");
            }
        }
    }

    #[test]
    fn documents_fit_iam_size_quotas_at_the_longest_names() {
        let i = longest();
        let docs = policy_documents(&i).unwrap();
        // IAM counts policy size without whitespace: inline role policies share 10,240
        // characters, a trust policy gets 2,048 by default.
        let identity = serde_json::to_string(&docs.identity_policy).unwrap();
        assert!(identity.len() < 10_240, "{}", identity.len());
        let trust = serde_json::to_string(&docs.trust_policy).unwrap();
        assert!(trust.len() < 2_048, "{}", trust.len());
        let cfn: Value = serde_json::from_str(&cloudformation(&i).unwrap()).unwrap();
        assert!(cfn["Description"].as_str().unwrap().len() <= 1024);
        assert!(
            cfn["Resources"]["Role"]["Properties"]["Description"]
                .as_str()
                .unwrap()
                .len()
                <= 1000
        );
    }

    #[test]
    fn hcl_quoting_escapes_templates() {
        assert_eq!(hcl::quote("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(hcl::quote("${x} %{y} $z"), r#""$${x} %%{y} $z""#);
        let mut i = input(destination());
        i.saml_metadata = i.saml_metadata.replace(
            "</md:EntityDescriptor>",
            "<!-- ${not.a.reference} %{if x} -->\nNITROSYNC_SAML_METADATA\n</md:EntityDescriptor>",
        );
        let tf = terraform(&i).unwrap();
        assert!(tf.contains("$${not.a.reference} %%{if x}"));
        assert!(tf.contains("<<NITROSYNC_SAML_METADATAX\n"));
    }

    #[test]
    fn invalid_inputs_name_the_field() {
        let err = |i: IamInput| json(&i).unwrap_err().field();
        let mut d = destination();
        d.secret_name = "bad name".into();
        assert_eq!(err(input(d)), "destination.secret_name");

        let mut i = input(destination());
        i.subject = "alice".into();
        assert_eq!(err(i.clone()), "subject");
        i.subject = "ns1-".to_owned() + &"A".repeat(32);
        assert_eq!(err(i.clone()), "subject");
        i.subject = "ns1-abc".into();
        assert_eq!(err(i), "subject");

        let mut i = input(destination());
        i.saml_metadata = "  \n".into();
        assert_eq!(err(i.clone()), "saml_metadata");
        i.saml_metadata = "<md:EntityDescriptor/>".into();
        assert_eq!(err(i.clone()), "saml_metadata");
        i.saml_metadata = format!("<html>{}</html>", "x".repeat(2000));
        assert_eq!(err(i), "saml_metadata");

        let mut d = destination();
        d.region = "cn-north-1".into();
        assert_eq!(err(input(d)), "destination.region");

        let mut d = destination();
        d.kms_key_id = Some(
            "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab".into(),
        );
        assert_eq!(err(input(d)), "destination.kms_key_id");
        let mut d = destination();
        d.kms_key_id = Some(
            "arn:aws-cn:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab".into(),
        );
        assert_eq!(err(input(d)), "destination.kms_key_id");
        let mut d = destination();
        d.kms_key_id = Some("arn:aws:kms:us-east-1:123456789012:alias/aws/secretsmanager".into());
        assert_eq!(err(input(d)), "destination.kms_key_id");

        for role in [
            "arn:aws:iam::123456789012:role/a,b",
            "arn:aws:iam::123456789012:role/team//x",
        ] {
            let mut d = destination();
            d.role_arn = role.into();
            assert_eq!(err(input(d)), "destination.role_arn", "{role}");
        }
        for provider in [
            "arn:aws:iam::123456789012:saml-provider/team/x",
            "arn:aws:iam::123456789012:saml-provider/a+b",
        ] {
            let mut d = destination();
            d.saml_provider_arn = provider.into();
            assert_eq!(err(input(d)), "destination.saml_provider_arn", "{provider}");
        }
        // The same checks guard every output form.
        let mut i = input(destination());
        i.subject = "x".into();
        assert!(
            cloudformation(&i).is_err() && terraform(&i).is_err() && policy_documents(&i).is_err()
        );
        let e = json(&i).unwrap_err();
        assert!(e.to_string().starts_with("subject: "), "{e}");
    }
}
