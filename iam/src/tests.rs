//! Unit tests of the plan and the three outputs.

use crate::plan::set_federated;
use crate::*;
use nitrosync_shared::bundle::{DeletePolicy, DestinationConfig};
use nitrosync_shared::bundle::{RESERVED_TAGS, saml_subject};
use nitrosync_shared::names;
use serde_json::{Value, json};
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
        verified: None,
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
    d.kms_key_id =
        Some("arn:aws:kms:us-east-1:210987654321:key/mrk-1234abcd12ab34cd56ef1234567890ab".into());
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

        let tf: Value = serde_json::from_str(&terraform(&i).unwrap()).unwrap();
        let res = &tf["resource"];
        let label = crate::terraform::destination_label(&i.destination.id);
        let role = &res["aws_iam_role"][&label];
        let trust_text = role["assume_role_policy"].as_str().unwrap();
        assert!(
            !trust_text.contains(&i.destination.saml_provider_arn),
            "{trust_text}"
        );
        // With the provider reference put back, the trust policy is the document itself.
        let trust_back: Value = serde_json::from_str(&trust_text.replace(
            &format!("${{aws_iam_saml_provider.{label}.arn}}"),
            &i.destination.saml_provider_arn,
        ))
        .unwrap();
        assert_eq!(trust_back, docs.trust_policy, "{name}");
        let identity_text = res["aws_iam_role_policy"][&label]["policy"]
            .as_str()
            .unwrap();
        let identity_back: Value =
            serde_json::from_str(&identity_text.replace("$${", "${").replace("%%{", "%{")).unwrap();
        assert_eq!(identity_back, docs.identity_policy, "{name}");
        assert_eq!(role["name"], api.role.name.as_str());
        assert_eq!(role["max_session_duration"], 3600);
        assert_eq!(
            res["aws_iam_saml_provider"][&label]["name"],
            api.saml_provider.name.as_str()
        );
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
fn terraform_strings_escape_templates() {
    assert_eq!(crate::terraform::literal("${x} %{y} $z"), "$${x} %%{y} $z");
    let mut i = input(destination());
    i.saml_metadata = i.saml_metadata.replace(
        "</md:EntityDescriptor>",
        "<!-- ${not.a.reference} %{if x} -->\nNITROSYNC_SAML_METADATA\n</md:EntityDescriptor>",
    );
    let tf: Value = serde_json::from_str(&terraform(&i).unwrap()).unwrap();
    let doc =
        tf["resource"]["aws_iam_saml_provider"]["nitrosync_prod-api"]["saml_metadata_document"]
            .as_str()
            .unwrap();
    assert!(doc.contains("$${not.a.reference} %%{if x}"), "{doc}");
}

#[test]
fn invalid_inputs_name_the_field() {
    let err = |i: IamInput| json(&i).unwrap_err().field().unwrap_or_default();
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
    d.kms_key_id =
        Some("arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab".into());
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
    assert!(cloudformation(&i).is_err() && terraform(&i).is_err() && policy_documents(&i).is_err());
    let e = json(&i).unwrap_err();
    assert!(e.to_string().starts_with("subject: "), "{e}");
}

/// A second destination of the same account, for the tests of modules that share a directory:
/// an id with a `.`, which a Terraform identifier cannot hold.
pub(crate) fn second_destination() -> IamInput {
    let mut d = destination();
    d.id = "staging.web".into();
    d.secret_name = "staging/web/env".into();
    d.role_arn = "arn:aws:iam::123456789012:role/nitrosync-staging".into();
    d.saml_provider_arn = "arn:aws:iam::123456789012:saml-provider/nitrosync-staging".into();
    input(d)
}

/// The addresses a Terraform JSON file declares: `type.name` of each resource, `data.type.name`
/// of each data source, `output.name` of each output.
pub(crate) fn terraform_addresses(tf: &Value) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for (block, prefix) in [("resource", ""), ("data", "data.")] {
        for (kind, names) in tf[block].as_object().into_iter().flatten() {
            for name in names.as_object().unwrap().keys() {
                out.insert(format!("{prefix}{kind}.{name}"));
            }
        }
    }
    for name in tf["output"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        out.insert(format!("output.{name}"));
    }
    out
}

/// Every `type.name` (or `data.type.name`) that an interpolation in `tf` refers to.
pub(crate) fn terraform_references(tf: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => {
                // `$${` is an escaped literal, not an interpolation.
                let unescaped = s.replace("$${", "");
                for part in unescaped.split("${").skip(1) {
                    let expr: String = part
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || "_-.".contains(*c))
                        .collect();
                    let parts: Vec<&str> = expr.split('.').collect();
                    let n = if parts.first() == Some(&"data") { 3 } else { 2 };
                    out.push(parts.iter().take(n).copied().collect::<Vec<_>>().join("."));
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            Value::Object(o) => o.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = vec![];
    walk(tf, &mut out);
    out
}

#[test]
fn terraform_labels_are_identifiers_and_tell_names_apart() {
    use crate::terraform::{destination_label, label};
    let identifier = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    // Names that are identifiers already are kept as they are.
    assert_eq!(label("nitrosync_prod-api"), "nitrosync_prod-api");
    assert_eq!(destination_label("prod-api"), "nitrosync_prod-api");
    assert_eq!(label("_x"), "_x");
    let names = [
        "a.b", "a_b", "a-b", "1abc", "_1abc", "-x", "", "alias/x", "alias_x", "é", "a b",
    ];
    let labels: std::collections::BTreeSet<String> = names.iter().map(|n| label(n)).collect();
    assert_eq!(labels.len(), names.len(), "{labels:?}");
    for (n, l) in names.iter().zip(names.iter().map(|n| label(n))) {
        assert!(identifier(&l), "{n:?} -> {l:?}");
        assert_eq!(l, label(n), "stable");
    }
    for (_, i) in variants() {
        assert!(identifier(&destination_label(&i.destination.id)));
    }
}

/// The two files for two destinations can share one directory (one root module): no provider
/// or `terraform` block, no address in common, and every reference stays inside its own file.
#[test]
fn terraform_modules_of_two_destinations_compose() {
    let first: Value = serde_json::from_str(&terraform(&input(destination())).unwrap()).unwrap();
    let second: Value = serde_json::from_str(&terraform(&second_destination()).unwrap()).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for (tf, label) in [
        (&first, "nitrosync_prod-api"),
        (
            &second,
            crate::terraform::label("nitrosync_staging.web").as_str(),
        ),
    ] {
        assert!(tf.get("provider").is_none(), "{tf:#}");
        assert!(tf.get("terraform").is_none(), "{tf:#}");
        let addresses = terraform_addresses(tf);
        assert_eq!(addresses.len(), 7, "{addresses:?}");
        for a in &addresses {
            assert!(a.contains(label), "{a} is not named after {label}");
            assert!(seen.insert(a.clone()), "{a} is declared twice");
        }
        let references = terraform_references(tf);
        assert!(references.len() >= 5, "{references:?}");
        for r in references {
            assert!(
                addresses.contains(&r),
                "{r} is not declared in its own file"
            );
        }
        // The account check that the provider's allowed_account_ids used to make.
        let pre = &tf["resource"]["aws_iam_role"][label]["lifecycle"]["precondition"][0];
        assert_eq!(
            pre["condition"],
            format!("${{data.aws_caller_identity.{label}.account_id == \"123456789012\"}}")
        );
    }
}
