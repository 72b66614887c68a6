//! The CloudFormation template.

use crate::plan::{documents, plan, set_federated};
use crate::{IamError, IamInput, MAX_SESSION_DURATION, PolicyDocuments};
use serde_json::json;

const CFN_PROVIDER: &str = "SamlProvider";
const CFN_ROLE: &str = "Role";

/// A CloudFormation template (JSON) creating the SAML provider, and the role with its inline
/// policy. Deploy it in the destination's account with `CAPABILITY_NAMED_IAM` (the role keeps
/// the name in `role_arn`).
///
/// # Errors
///
/// As [`policy_documents`](crate::policy_documents).
pub fn cloudformation(input: &IamInput) -> Result<String, IamError> {
    let plan = plan(input)?;
    let PolicyDocuments {
        mut trust_policy,
        identity_policy,
    } = documents(&plan);
    // `Ref` of an AWS::IAM::SAMLProvider is its ARN.
    set_federated(&mut trust_policy, &json!({ "Ref": CFN_PROVIDER }));
    let d = plan.dest();
    let mut template = json!({
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
    if let Some(v) = &input.verified {
        template["Metadata"] = json!({ "nitrosync:VerifiedEnclave": v });
    }
    let mut out = serde_json::to_string_pretty(&template).unwrap_or_default();
    out.push('\n');
    Ok(out)
}
