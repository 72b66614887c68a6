//! The plan: every name and resource derived from a valid [`IamInput`], and the two policy
//! documents built from it.

use crate::{
    IamDocuments, IamError, IamInput, MANAGED_BY, MAX_METADATA_CHARS, MAX_SESSION_DURATION,
    MIN_METADATA_CHARS, POLICY_VERSION, PolicyDocuments, PolicySpec, RoleSpec, SamlProviderSpec,
    TAG_DESTINATION, TAG_MANAGED_BY, TEST_SECRET_INFIX, dest_err,
};
use nitrosync_shared::bundle::{DeletePolicy, DestinationConfig};
use nitrosync_shared::names;
use serde_json::{Map, Value, json};

/// The KMS resource the role may use through Secrets Manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KmsScope {
    /// One key, by ARN.
    Key(String),
    /// The keys of one account and region that carry an alias (`alias/NAME`).
    Alias { keys: String, alias: String },
}

/// Everything derived from a valid input.
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    pub(crate) input: &'a IamInput,
    pub(crate) partition: String,
    pub(crate) account: String,
    pub(crate) role_name: String,
    pub(crate) role_path: String,
    pub(crate) provider_name: String,
    pub(crate) kms: Option<KmsScope>,
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

pub(crate) fn plan(input: &IamInput) -> Result<Plan<'_>, IamError> {
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
    pub(crate) fn dest(&self) -> &DestinationConfig {
        &self.input.destination
    }

    pub(crate) fn policy_name(&self) -> String {
        format!("nitrosync-{}", self.dest().id)
    }

    pub(crate) fn description(&self) -> String {
        format!(
            "nitrosync: assumed by the nitrosync enclave to sync destination {} into secret {} ({}).",
            self.dest().id,
            self.dest().secret_name,
            self.dest().region
        )
    }

    pub(crate) fn secret_arn_prefix(&self) -> String {
        format!(
            "arn:{}:secretsmanager:{}:{}:secret:{}",
            self.partition,
            self.dest().region,
            self.account,
            self.dest().secret_name
        )
    }

    /// The destination's secret: its name, `-`, and the six random characters AWS appends.
    pub(crate) fn secret_arn(&self) -> String {
        format!("{}-??????", self.secret_arn_prefix())
    }

    /// The test connection's placeholders, `<name>-nitrosync-test-<random>-??????`.
    pub(crate) fn test_secret_arns(&self) -> String {
        format!("{}{TEST_SECRET_INFIX}*", self.secret_arn_prefix())
    }

    /// The sign-in endpoints STS accepts as the assertion's `Recipient` (`saml:aud`): the global
    /// one, and for the `aws` partition the destination region's endpoint (DESIGN §7).
    pub(crate) fn saml_audiences(&self) -> Vec<String> {
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
    pub(crate) fn kms_via_services(&self) -> Vec<String> {
        let base = format!("secretsmanager.{}.amazonaws.com", self.dest().region);
        if self.partition == "aws-cn" {
            vec![base.clone(), format!("{base}.cn")]
        } else {
            vec![base]
        }
    }

    pub(crate) fn trust_policy(&self, principal: &Value) -> Value {
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

    pub(crate) fn identity_policy(&self) -> Value {
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

    pub(crate) fn provider_arn(&self) -> &str {
        &self.dest().saml_provider_arn
    }
}

/// Replaces `Principal.Federated` (the provider's ARN) in every statement of a trust policy.
pub(crate) fn set_federated(trust: &mut Value, principal: &Value) {
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

pub(crate) fn documents(plan: &Plan<'_>) -> PolicyDocuments {
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
        verified_enclave: input.verified.clone(),
    })
}
