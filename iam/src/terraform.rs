//! The Terraform module, in Terraform's JSON syntax (`*.tf.json`).
//!
//! JSON syntax is plain JSON, so it is written with `serde_json` instead of a hand-made HCL
//! printer. One rule of that syntax matters here: a string value is a template, so a literal
//! `${` or `%{` (possible in SAML metadata, a description or a policy) is escaped as `$${` or
//! `%%{` by [`literal`].
//!
//! The generated files compose: they configure no provider and have no `terraform` block (a
//! second `required_providers` in one module is an error, and the root module already has one),
//! and every resource, data source and output is named from [`label`] of the destination id (or,
//! for the KMS key, its alias), so files for two destinations, and the customer's own
//! configuration, can share one directory.

use crate::plan::{documents, plan};
use crate::{IamError, IamInput, MAX_SESSION_DURATION, PolicyDocuments};
use serde_json::{Value, json};

/// What every generated Terraform file says about providers, in its `//` comment.
pub(crate) const PROVIDER_NOTE: &str = "It configures no provider and has no terraform block: it uses the root module's hashicorp/aws provider (>= 5.0), so it can sit beside other configuration or be called as a module.";

/// `s` as a Terraform JSON-syntax string whose value is exactly `s`.
pub(crate) fn literal(s: &str) -> String {
    s.replace("${", "$${").replace("%{", "%%{")
}

/// A Terraform identifier (the name of a resource, data source or output) made from `name`.
///
/// Terraform identifiers start with a letter or `_` and hold only letters, digits, `_` and `-`.
/// Every other character becomes `_`, and a name that does not start with a letter or `_` gets
/// one in front. When anything had to change, 8 hex digits of a hash of `name` are appended, so
/// that two names that differ only in the replaced characters (`a.b`, `a_b`) still get two
/// labels.
pub(crate) fn label(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.insert(0, '_');
    }
    if out != name {
        out.push_str(&format!("_{:08x}", fnv1a32(name.as_bytes())));
    }
    out
}

/// FNV-1a, 32 bits: a stable, dependency-free hash to tell sanitised labels apart (not a
/// security boundary: a clash only makes `terraform validate` fail).
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h: u32, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// The label of the destination `id`'s resources: [`label`] of `nitrosync_<id>`.
pub(crate) fn destination_label(id: &str) -> String {
    label(&format!("nitrosync_{id}"))
}

/// A policy document as the string value of a `*_policy` argument. `reference`, when given,
/// replaces every JSON string equal to its first element by the interpolation in its second.
pub(crate) fn policy_string(policy: &Value, reference: Option<(&str, &str)>) -> String {
    let text = literal(&serde_json::to_string_pretty(policy).unwrap_or_default());
    match reference {
        Some((value, expr)) => {
            let quoted = serde_json::to_string(&literal(value)).unwrap_or_default();
            text.replace(&quoted, &format!("\"${{{expr}}}\""))
        }
        None => text,
    }
}

/// A Terraform module in JSON syntax (save it as, say, `nitrosync-<id>.tf.json`) creating the
/// SAML provider, and the role with its inline policy. Everything is named
/// [`destination_label`] of the destination id: `aws_iam_role.nitrosync_<id>`, the outputs
/// `nitrosync_<id>_role_arn`, `…_saml_provider_arn` and `…_saml_subject`. There is no provider
/// block: a precondition on each resource refuses to plan in another account than the
/// destination's role ARN names.
///
/// # Errors
///
/// As [`policy_documents`](crate::policy_documents).
pub fn terraform(input: &IamInput) -> Result<String, IamError> {
    let plan = plan(input)?;
    let PolicyDocuments {
        trust_policy,
        identity_policy,
    } = documents(&plan);
    let d = plan.dest();
    let name = destination_label(&d.id);
    let provider_ref = format!("aws_iam_saml_provider.{name}.arn");
    // IAM is global: the account is the one thing a provider could get wrong here.
    let lifecycle = json!({
        "precondition": [{
            "condition": format!(
                "${{data.aws_caller_identity.{name}.account_id == \"{}\"}}",
                literal(&plan.account)
            ),
            "error_message": literal(&format!(
                "The IAM of nitrosync destination {} belongs in account {}.",
                d.id, plan.account
            )),
        }]
    });
    let module = json!({
        "//": literal(&format!(
            "nitrosync IAM for destination {} (account {}): the SAML provider, the role and its policy. Generated by nitrosync; regenerate rather than edit. {PROVIDER_NOTE}{}",
            d.id,
            plan.account,
            input
                .verified
                .as_ref()
                .map(|v| format!(" {}", v.summary()))
                .unwrap_or_default()
        )),
        "data": {
            "aws_caller_identity": { &name: {} }
        },
        "resource": {
            "aws_iam_saml_provider": {
                &name: {
                    "name": literal(&plan.provider_name),
                    "saml_metadata_document": literal(&input.saml_metadata),
                    "lifecycle": lifecycle.clone(),
                }
            },
            "aws_iam_role": {
                &name: {
                    "name": literal(&plan.role_name),
                    "path": literal(&plan.role_path),
                    "description": literal(&plan.description()),
                    "max_session_duration": MAX_SESSION_DURATION,
                    "assume_role_policy": policy_string(
                        &trust_policy,
                        Some((plan.provider_arn(), &provider_ref)),
                    ),
                    "lifecycle": lifecycle.clone(),
                }
            },
            "aws_iam_role_policy": {
                &name: {
                    "name": literal(&plan.policy_name()),
                    "role": format!("${{aws_iam_role.{name}.id}}"),
                    "policy": policy_string(&identity_policy, None),
                    "lifecycle": lifecycle,
                }
            }
        },
        "output": {
            format!("{name}_role_arn"): {
                "description": literal(&format!("The role_arn of nitrosync destination {}.", d.id)),
                "value": format!("${{aws_iam_role.{name}.arn}}"),
            },
            format!("{name}_saml_provider_arn"): {
                "description": literal(&format!("The saml_provider_arn of nitrosync destination {}.", d.id)),
                "value": format!("${{{provider_ref}}}"),
            },
            format!("{name}_saml_subject"): {
                "description": "The SAML subject the role's trust policy pins (saml:sub).",
                "value": literal(&input.subject),
            },
        }
    });
    let mut out = serde_json::to_string_pretty(&module).unwrap_or_default();
    out.push('\n');
    Ok(out)
}
