//! Unit tests of the key policy and its three forms. The policy is also evaluated here, the way
//! KMS evaluates a key policy (an explicit deny wins, then any allow), for the requests that
//! matter: the enclave of a released image, of another image, of a debug image, without
//! attestation, and the admin.

use super::*;
use std::collections::BTreeMap;

pub(crate) const ACCOUNT: &str = "123456789012";
pub(crate) const ADMIN: &str = "arn:aws:iam::123456789012:role/kms-admin";
pub(crate) const ENCLAVE: &str = "arn:aws:iam::123456789012:role/nitrosync-parent";

/// A PCR of repeated bytes.
pub(crate) fn pcr_of(b: u8) -> String {
    format!("{b:02x}").repeat(measurements::PCR_LEN)
}

pub(crate) fn measured(seed: u8) -> Measurements {
    let mut m = Measurements::new(
        ImageKind::Eif,
        &[seed; 48],
        &[seed.wrapping_add(1); 48],
        &[seed.wrapping_add(2); 48],
    );
    m.eif_sha256 = Some("ab".repeat(32));
    m.inputs = BTreeMap::from([("source_commit".into(), format!("c0ffee{seed:02x}"))]);
    m
}

pub(crate) fn input(images: Vec<ReleasedImage>) -> KmsKeyInput {
    KmsKeyInput {
        account: ACCOUNT.into(),
        key_admin_arn: ADMIN.into(),
        enclave_role_arn: ENCLAVE.into(),
        region: Some("us-east-1".into()),
        alias: DEFAULT_ALIAS.into(),
        images,
    }
}

pub(crate) fn image(seed: u8) -> ReleasedImage {
    ReleasedImage::from_measurements(&format!("v{seed}/measurements.json"), &measured(seed))
        .unwrap()
}

/// A spread of inputs for the linters: one image, an upgrade (two images, one signed) in
/// aws-cn without a region check, PCR0 only with a user as admin, the longest alias.
pub(crate) fn variants() -> Vec<(&'static str, KmsKeyInput)> {
    let mut out = vec![("one image", input(vec![image(0x11)]))];
    let mut signed = measured(0x21);
    signed.pcr8 = Some(pcr_of(0x88));
    let mut i = input(vec![
        image(0x11),
        ReleasedImage::from_measurements("v2/measurements.json", &signed).unwrap(),
    ]);
    i.key_admin_arn = "arn:aws-cn:iam::123456789012:role/ops/kms-admin".into();
    i.enclave_role_arn = "arn:aws-cn:iam::123456789012:role/ops/nitrosync-parent".into();
    i.region = None;
    out.push(("upgrade, aws-cn", i));
    let mut i = input(vec![
        ReleasedImage::from_pcr0("--pcr0", &pcr_of(0x31)).unwrap(),
    ]);
    i.key_admin_arn = "arn:aws:iam::123456789012:user/alice".into();
    out.push(("pcr0 only", i));
    let mut i = input(vec![image(0x41)]);
    i.alias = format!("alias/{}", "a".repeat(250));
    out.push(("longest alias", i));
    out
}

/// A request as the key policy sees it.
struct Request<'a> {
    principal: &'a str,
    action: &'a str,
    /// `(ImageSha384, PCR1, PCR2)` of the `Recipient` document, if any.
    attested: Option<(String, String, String)>,
}

fn context(r: &Request<'_>) -> BTreeMap<String, String> {
    let mut c = BTreeMap::new();
    if let Some((p0, p1, p2)) = &r.attested {
        c.insert(IMAGE_SHA384.to_owned(), p0.clone());
        c.insert("kms:RecipientAttestation:PCR1".to_owned(), p1.clone());
        c.insert("kms:RecipientAttestation:PCR2".to_owned(), p2.clone());
    }
    c
}

fn values(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().map(|s| s.as_str().unwrap().to_owned()).collect(),
        v => vec![v.as_str().unwrap().to_owned()],
    }
}

fn glob(pattern: &str, s: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => s.starts_with(prefix),
        None => pattern == s,
    }
}

fn matches(statement: &Value, r: &Request<'_>) -> bool {
    let principal = values(&statement["Principal"]["AWS"]);
    if !principal.iter().any(|p| p == "*" || p == r.principal) {
        return false;
    }
    if !values(&statement["Action"])
        .iter()
        .any(|a| glob(a, r.action))
    {
        return false;
    }
    let ctx = context(r);
    let Some(conditions) = statement.get("Condition") else {
        return true;
    };
    conditions.as_object().unwrap().iter().all(|(op, keys)| {
        keys.as_object().unwrap().iter().all(|(key, v)| {
            let want = values(v);
            let got = ctx.get(key);
            match op.as_str() {
                "StringEqualsIgnoreCase" => {
                    got.is_some_and(|g| want.iter().any(|w| w.eq_ignore_ascii_case(g)))
                }
                // Negated operators match when the key is absent.
                "StringNotEqualsIgnoreCase" => {
                    got.is_none_or(|g| !want.iter().any(|w| w.eq_ignore_ascii_case(g)))
                }
                "Null" => (got.is_none()).to_string() == want[0],
                other => panic!("operator {other} not modelled"),
            }
        })
    })
}

/// KMS's answer: an explicit deny wins, then any allow; nothing else is allowed.
fn allowed(policy: &Value, r: &Request<'_>) -> bool {
    let statements = policy["Statement"].as_array().unwrap();
    let hits = |effect: &str| {
        statements
            .iter()
            .any(|s| s["Effect"] == effect && matches(s, r))
    };
    !hits("Deny") && hits("Allow")
}

fn attested(i: &ReleasedImage) -> Option<(String, String, String)> {
    Some((
        i.pcr0.to_uppercase(),
        i.pcr1.clone().unwrap(),
        i.pcr2.clone().unwrap(),
    ))
}

fn statement<'a>(policy: &'a Value, sid: &str) -> &'a Value {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == sid)
        .unwrap_or_else(|| panic!("no statement {sid}"))
}

#[test]
fn only_an_attested_enclave_of_a_released_image_gets_key_material() {
    let (a, b) = (image(0x11), image(0x21));
    let policy = key_policy(&input(vec![a.clone(), b.clone()])).unwrap();
    let req = |principal, action, attested| Request {
        principal,
        action,
        attested,
    };
    for action in ["kms:Decrypt", "kms:GenerateDataKey"] {
        for img in [&a, &b] {
            assert!(
                allowed(&policy, &req(ENCLAVE, action, attested(img))),
                "{action}"
            );
            // The admin has no use of the key, attested or not.
            assert!(!allowed(&policy, &req(ADMIN, action, attested(img))));
        }
        // Not attested: denied to everyone.
        assert!(!allowed(&policy, &req(ENCLAVE, action, None)));
        assert!(!allowed(&policy, &req(ADMIN, action, None)));
        // A debug-mode enclave attests zeros.
        let zeros = Some((ZERO_PCR.into(), ZERO_PCR.into(), ZERO_PCR.into()));
        assert!(!allowed(&policy, &req(ENCLAVE, action, zeros)));
        // Another image, or one image's PCR0 with the other's PCR1/PCR2.
        let other = image(0x51);
        assert!(!allowed(&policy, &req(ENCLAVE, action, attested(&other))));
        let mixed = Some((
            a.pcr0.clone(),
            b.pcr1.clone().unwrap(),
            b.pcr2.clone().unwrap(),
        ));
        assert!(!allowed(&policy, &req(ENCLAVE, action, mixed)));
    }
    // Never without attestation, and never by re-encryption or a grant.
    for action in [
        "kms:GenerateDataKeyWithoutPlaintext",
        "kms:GenerateDataKeyPair",
        "kms:ReEncryptFrom",
        "kms:CreateGrant",
    ] {
        for who in [ENCLAVE, ADMIN] {
            assert!(!allowed(&policy, &req(who, action, None)), "{action}");
            assert!(
                !allowed(&policy, &req(who, action, attested(&a))),
                "{action}"
            );
        }
    }
    // The policy is immutable: nobody may put it again.
    for who in [ENCLAVE, ADMIN, "arn:aws:iam::123456789012:root"] {
        assert!(
            !allowed(&policy, &req(who, "kms:PutKeyPolicy", None)),
            "{who}"
        );
        assert!(
            !allowed(&policy, &req(who, "kms:PutKeyPolicy", attested(&a))),
            "{who}"
        );
    }
    assert!(allowed(
        &policy,
        &req(ADMIN, "kms:ScheduleKeyDeletion", None)
    ));
    // The enclave inspects the key before it uses it; the admin may too.
    for action in ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:ListGrants"] {
        assert!(allowed(&policy, &req(ENCLAVE, action, None)), "{action}");
        assert!(allowed(&policy, &req(ADMIN, action, None)), "{action}");
    }
    // But manages nothing.
    for action in [
        "kms:ScheduleKeyDeletion",
        "kms:DisableKey",
        "kms:CreateAlias",
    ] {
        assert!(!allowed(&policy, &req(ENCLAVE, action, None)), "{action}");
    }
}

#[test]
fn the_policy_names_each_image_and_its_pcrs() {
    let mut signed = measured(0x21);
    signed.pcr8 = Some(pcr_of(0x88));
    let b = ReleasedImage::from_measurements("b.json", &signed).unwrap();
    let policy = key_policy(&input(vec![image(0x11), b])).unwrap();
    assert_eq!(
        statement(&policy, "EnclaveImage1")["Condition"],
        json!({ "StringEqualsIgnoreCase": {
            "kms:RecipientAttestation:ImageSha384": pcr_of(0x11),
            "kms:RecipientAttestation:PCR1": pcr_of(0x12),
            "kms:RecipientAttestation:PCR2": pcr_of(0x13),
        }})
    );
    assert_eq!(
        statement(&policy, "EnclaveImage2")["Condition"]["StringEqualsIgnoreCase"]["kms:RecipientAttestation:PCR8"],
        pcr_of(0x88)
    );
    assert_eq!(
        statement(&policy, "EnclaveImage2")["Action"],
        json!(["kms:Decrypt", "kms:GenerateDataKey"])
    );
    assert_eq!(
        statement(&policy, "DenyWithoutAttestation")["Condition"],
        json!({ "Null": { "kms:RecipientAttestation:ImageSha384": "true" } })
    );
    assert_eq!(
        statement(&policy, "DenyDebugImage")["Condition"]["StringEqualsIgnoreCase"]["kms:RecipientAttestation:ImageSha384"],
        "0".repeat(96)
    );
    assert_eq!(
        statement(&policy, "DenyOtherImages")["Condition"]["StringNotEqualsIgnoreCase"]["kms:RecipientAttestation:ImageSha384"],
        json!([pcr_of(0x11), pcr_of(0x21)])
    );
    let admin = values(&statement(&policy, "KeyAdministration")["Action"]);
    for forbidden in [
        "Decrypt",
        "GenerateDataKey",
        "ReEncrypt",
        "CreateGrant",
        "Encrypt",
        "*",
    ] {
        assert!(
            !admin.iter().any(|a| a.contains(forbidden)),
            "admin may not {forbidden}: {admin:?}"
        );
    }
    assert!(
        !admin.iter().any(|a| a.contains("PutKeyPolicy")),
        "{admin:?}"
    );
    assert_eq!(
        statement(&policy, "EnclaveInspectKey")["Action"],
        json!(["kms:DescribeKey", "kms:GetKeyPolicy", "kms:ListGrants"])
    );
    assert!(
        statement(&policy, "EnclaveInspectKey")
            .get("Condition")
            .is_none()
    );
    assert_eq!(
        statement(&policy, "DenyPolicyChange")["Action"],
        "kms:PutKeyPolicy"
    );
}

/// What the enclave accepts in an `Allow` of the key policy without a condition: nothing that
/// releases key material, changes the policy or adds a grant.
const ENCLAVE_SAFE: [&str; 22] = [
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:UpdateAlias",
    "kms:DisableKey",
    "kms:EnableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKeyRotation",
    "kms:RotateKeyOnDemand",
    "kms:RevokeGrant",
    "kms:RetireGrant",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateKeyDescription",
];

/// What the enclave accepts only under an attestation condition on `ImageSha384`.
const ENCLAVE_ATTESTED: [&str; 2] = ["kms:Decrypt", "kms:GenerateDataKey"];

/// The enclave's rule for one `Allow` statement, checked syntactically: only `Action` (no
/// `NotAction`, no `NotResource`), no wildcard, every action safe or attested, and an attested
/// one only with `StringEquals`/`StringEqualsIgnoreCase` on `ImageSha384` (no wildcard in it).
fn enclave_accepts(s: &Value) -> Result<(), String> {
    for forbidden in ["NotAction", "NotResource", "NotPrincipal"] {
        if s.get(forbidden).is_some() {
            return Err(format!("{forbidden} in an Allow"));
        }
    }
    let actions = values(&s["Action"]);
    let mut attested = false;
    for a in &actions {
        if a.contains(['*', '?']) {
            return Err(format!("wildcard action {a}"));
        }
        if ENCLAVE_ATTESTED.contains(&a.as_str()) {
            attested = true;
        } else if !ENCLAVE_SAFE.contains(&a.as_str()) {
            return Err(format!("{a} is neither safe nor attested"));
        }
    }
    if attested {
        let pinned = ["StringEqualsIgnoreCase", "StringEquals"].iter().any(|op| {
            s["Condition"][op][IMAGE_SHA384]
                .as_str()
                .is_some_and(|v| v.len() == 96 && !v.contains(['*', '?']) && v != ZERO_PCR)
        });
        if !pinned {
            return Err(format!("{actions:?} without an ImageSha384 condition"));
        }
    }
    Ok(())
}

#[test]
fn every_allow_passes_the_enclaves_key_check() {
    let mut inputs = variants();
    inputs.push(("three images", input(vec![image(1), image(2), image(3)])));
    for (name, i) in inputs {
        let policy = key_policy(&i).unwrap();
        let statements = policy["Statement"].as_array().unwrap();
        let mut sids = vec![];
        for s in statements {
            match s["Effect"].as_str() {
                Some("Allow") => {
                    enclave_accepts(s).unwrap_or_else(|e| panic!("{name}: {} {e}", s["Sid"]));
                    sids.push(s["Sid"].as_str().unwrap().to_owned());
                }
                Some("Deny") => {}
                other => panic!("{name}: effect {other:?}"),
            }
        }
        assert_eq!(sids.len(), 2 + i.images.len(), "{name}: {sids:?}");
        // Nothing allows the policy to change, and nothing names the account root.
        assert!(!policy.to_string().contains(":root"), "{name}");
        let put = Request {
            principal: ADMIN,
            action: "kms:PutKeyPolicy",
            attested: None,
        };
        assert!(!allowed(&policy, &put), "{name}");
    }
    // The checker itself refuses what it must.
    for bad in [
        json!({ "Effect": "Allow", "Action": "kms:PutKeyPolicy" }),
        json!({ "Effect": "Allow", "Action": "kms:*" }),
        json!({ "Effect": "Allow", "Action": "kms:Describe*" }),
        json!({ "Effect": "Allow", "NotAction": "kms:Decrypt" }),
        json!({ "Effect": "Allow", "Action": "kms:Decrypt" }),
        json!({ "Effect": "Allow", "Action": "kms:CreateGrant" }),
        json!({ "Effect": "Allow", "Action": "kms:Decrypt",
                "Condition": { "StringLike": { IMAGE_SHA384: "*" } } }),
        json!({ "Effect": "Allow", "Action": "kms:Decrypt",
                "Condition": { "StringEqualsIgnoreCase": { IMAGE_SHA384: ZERO_PCR } } }),
    ] {
        assert!(enclave_accepts(&bad).is_err(), "{bad}");
    }
}

#[test]
fn pcr0_only_conditions_image_sha384_and_says_so() {
    let img = ReleasedImage::from_pcr0("--pcr0", &pcr_of(0x31).to_uppercase()).unwrap();
    assert_eq!(img.pcr0, pcr_of(0x31), "lowercased");
    let i = input(vec![img]);
    let j = kms_json(&i).unwrap();
    assert_eq!(
        statement(&j.key_policy, "EnclaveImage1")["Condition"],
        json!({ "StringEqualsIgnoreCase": { IMAGE_SHA384: pcr_of(0x31) } })
    );
    assert_eq!(j.warnings.len(), 1);
    assert!(j.warnings[0].contains("only PCR0"), "{:?}", j.warnings);
    let cfn: Value = serde_json::from_str(&kms_cloudformation(&i).unwrap()).unwrap();
    assert!(
        cfn["Metadata"]["nitrosync:Warnings"][0]
            .as_str()
            .unwrap()
            .contains("only PCR0")
    );
    let tf: Value = serde_json::from_str(&kms_terraform(&i).unwrap()).unwrap();
    assert!(
        tf["//"]
            .as_str()
            .unwrap()
            .contains("WARNING: --pcr0: only PCR0")
    );
    assert!(
        kms_json(&input(vec![image(1)]))
            .unwrap()
            .warnings
            .is_empty()
    );
}

#[test]
fn debug_and_malformed_pcrs_are_refused() {
    let zero = pcr_of(0);
    for (n, m) in [
        (
            0,
            Measurements::new(ImageKind::Eif, &[0; 48], &[1; 48], &[2; 48]),
        ),
        (
            1,
            Measurements::new(ImageKind::Eif, &[1; 48], &[0; 48], &[2; 48]),
        ),
        (
            2,
            Measurements::new(ImageKind::Eif, &[1; 48], &[2; 48], &[0; 48]),
        ),
    ] {
        let e = ReleasedImage::from_measurements("m.json", &m).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("m.json PCR{n}: is all zeros")),
            "{e}"
        );
        assert_eq!(
            e.field().as_deref(),
            Some(format!("m.json PCR{n}").as_str())
        );
    }
    assert!(ReleasedImage::from_pcr0("--pcr0", &zero).is_err());
    for bad in [
        "ab".repeat(47),
        "ab".repeat(49),
        format!("0x{}", "ab".repeat(47)),
        format!("{}zz", "ab".repeat(47)),
    ] {
        let e = ReleasedImage::from_pcr0("--pcr0", &bad).unwrap_err();
        assert!(e.to_string().contains("must be 96 hex characters"), "{e}");
    }
    let mut m = measured(1);
    m.format = "other/1".into();
    assert!(
        ReleasedImage::from_measurements("m.json", &m)
            .unwrap_err()
            .to_string()
            .contains("format")
    );
    let mut m = measured(1);
    m.hash_algorithm = "Sha256".into();
    assert!(ReleasedImage::from_measurements("m.json", &m).is_err());
    // The pub fields are checked again when the policy is made.
    let mut i = input(vec![image(1)]);
    i.images[0].pcr2 = Some(zero);
    assert!(key_policy(&i).is_err());
    i.images[0].pcr2 = None;
    assert!(
        key_policy(&i)
            .unwrap_err()
            .to_string()
            .contains("come together")
    );
}

/// A change that makes an input invalid.
type Change = fn(&mut KmsKeyInput);

#[test]
fn bad_accounts_arns_regions_and_aliases_are_refused() {
    let cases: Vec<(&str, Change)> = vec![
        ("account", |i| i.account = "12345678901".into()),
        ("account", |i| i.account = "12345678901x".into()),
        ("key_admin_arn", |i| i.key_admin_arn = "kms-admin".into()),
        ("key_admin_arn", |i| {
            i.key_admin_arn = "arn:aws:iam::210987654321:role/admin".into()
        }),
        ("key_admin_arn", |i| {
            i.key_admin_arn = "arn:aws:iam::123456789012:group/admins".into()
        }),
        ("key_admin_arn", |i| i.key_admin_arn = ENCLAVE.into()),
        ("key_admin_arn", |i| {
            i.key_admin_arn = "arn:aws-cn:iam::123456789012:role/a".into()
        }),
        ("enclave_role_arn", |i| {
            i.enclave_role_arn = "arn:aws:iam::123456789012:user/bob".into()
        }),
        ("enclave_role_arn", |i| {
            i.enclave_role_arn = "arn:aws:sts::123456789012:assumed-role/r/s".into()
        }),
        ("region", |i| i.region = Some("us-east".into())),
        ("region", |i| i.region = Some("cn-north-1".into())),
        ("alias", |i| i.alias = "nitrosync".into()),
        ("alias", |i| i.alias = "alias/aws/secretsmanager".into()),
        ("alias", |i| i.alias = "alias/a b".into()),
        ("alias", |i| i.alias = format!("alias/{}", "a".repeat(251))),
        ("measurements", |i| i.images.clear()),
    ];
    for (field, change) in cases {
        let mut i = input(vec![image(1)]);
        change(&mut i);
        let e = kms_json(&i).unwrap_err();
        assert_eq!(e.field().as_deref(), Some(field), "{i:?}: {e}");
        assert!(!e.to_string().contains('\n'), "one line: {e}");
        assert!(kms_cloudformation(&i).is_err() && kms_terraform(&i).is_err());
    }
    // An IAM user may administer the key.
    let mut i = input(vec![image(1)]);
    i.key_admin_arn = "arn:aws:iam::123456789012:user/ops/alice".into();
    assert!(kms_json(&i).is_ok());
    i.key_admin_arn = "arn:aws:iam::123456789012:user/".into();
    assert!(kms_json(&i).unwrap_err().to_string().contains("user name"));
}

#[test]
fn one_image_twice_is_one_statement_but_conflicting_pcrs_are_refused() {
    let mut again = image(1);
    again.source = "copy.json".into();
    let j = kms_json(&input(vec![image(1), again, image(2)])).unwrap();
    assert_eq!(j.measurements.len(), 2);
    let mut clash = image(1);
    clash.source = "clash.json".into();
    clash.pcr2 = Some(pcr_of(0x77));
    let e = kms_json(&input(vec![image(1), clash])).unwrap_err();
    assert_eq!(e.field().as_deref(), Some("clash.json"));
    assert!(e.to_string().contains("v1/measurements.json"), "{e}");
}

#[test]
fn simulator_measurements_are_flagged() {
    let mut m = measured(3);
    m.kind = ImageKind::Simulator;
    let i = input(vec![
        ReleasedImage::from_measurements("sim.json", &m).unwrap(),
    ]);
    let j = kms_json(&i).unwrap();
    assert!(
        j.warnings.iter().any(|w| w.contains("simulator")),
        "{:?}",
        j.warnings
    );
}

#[test]
fn cloudformation_makes_a_retained_rotating_key_and_records_the_images() {
    let i = input(vec![image(0x11), image(0x21)]);
    let t: Value = serde_json::from_str(&kms_cloudformation(&i).unwrap()).unwrap();
    let key = &t["Resources"]["EnclaveIdentityKey"];
    assert_eq!(key["Type"], "AWS::KMS::Key");
    assert_eq!(key["DeletionPolicy"], "Retain");
    assert_eq!(key["Properties"]["EnableKeyRotation"], true);
    assert_eq!(key["Properties"]["BypassPolicyLockoutSafetyCheck"], true);
    assert_eq!(key["Properties"]["KeyPolicy"], key_policy(&i).unwrap());
    assert_eq!(t["Metadata"]["nitrosync:KeyPolicy"], IMMUTABLE_POLICY_NOTE);
    let alias = &t["Resources"]["EnclaveIdentityKeyAlias"];
    assert_eq!(alias["Properties"]["AliasName"], DEFAULT_ALIAS);
    assert_eq!(
        alias["Properties"]["TargetKeyId"],
        json!({ "Ref": "EnclaveIdentityKey" })
    );
    let images = &t["Metadata"]["nitrosync:ReleasedImages"];
    assert_eq!(images[0]["PCR0"], pcr_of(0x11));
    assert_eq!(images[1]["PCR2"], pcr_of(0x23));
    assert_eq!(images[1]["source"], "v33/measurements.json");
    assert_eq!(images[1]["source_commit"], "c0ffee21");
    assert!(t["Metadata"].get("nitrosync:Warnings").is_none());
    assert_eq!(
        t["Rules"]["KeyAccount"]["Assertions"][0]["Assert"]["Fn::Equals"][1],
        ACCOUNT
    );
    assert_eq!(
        t["Rules"]["KeyRegion"]["Assertions"][0]["Assert"]["Fn::Equals"][1],
        "us-east-1"
    );
}

#[test]
fn terraform_has_no_provider_and_the_policy_reads_back() {
    let i = input(vec![image(0x11)]);
    let tf: Value = serde_json::from_str(&kms_terraform(&i).unwrap()).unwrap();
    assert!(tf.get("provider").is_none());
    assert!(tf.get("terraform").is_none());
    let key = &tf["resource"]["aws_kms_key"]["nitrosync-enclave-identity"];
    assert_eq!(key["enable_key_rotation"], true);
    assert_eq!(key["bypass_policy_lockout_safety_check"], true);
    assert_eq!(key["lifecycle"]["prevent_destroy"], true);
    let policy: Value = serde_json::from_str(key["policy"].as_str().unwrap()).unwrap();
    assert_eq!(policy, key_policy(&i).unwrap());
    assert_eq!(
        tf["resource"]["aws_kms_alias"]["nitrosync-enclave-identity"]["target_key_id"],
        "${aws_kms_key.nitrosync-enclave-identity.key_id}"
    );
    let comment = tf["//"].as_str().unwrap();
    assert!(comment.contains(&pcr_of(0x11)) && comment.contains(&pcr_of(0x13)));
    assert!(comment.contains("c0ffee11"));
    assert!(comment.contains("immutable") && comment.contains("new key"));
    let pre = key["lifecycle"]["precondition"].as_array().unwrap();
    assert_eq!(pre.len(), 2);
    let mut j = i.clone();
    j.region = None;
    let tf: Value = serde_json::from_str(&kms_terraform(&j).unwrap()).unwrap();
    assert!(tf["data"].get("aws_region").is_none());
}

/// Two keys with two aliases, beside the IAM of a destination, in one directory: no provider or
/// `terraform` block, no address in common, every reference inside its own file.
#[test]
fn terraform_keys_compose_with_each_other_and_the_iam() {
    use crate::tests::{terraform_addresses, terraform_references};
    let mut staging = input(vec![image(0x41)]);
    staging.alias = "alias/team/nitrosync-staging".into();
    let files = [
        kms_terraform(&input(vec![image(0x11)])).unwrap(),
        kms_terraform(&staging).unwrap(),
        crate::terraform(&crate::tests::input(crate::tests::destination())).unwrap(),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for file in &files {
        let tf: Value = serde_json::from_str(file).unwrap();
        assert!(tf.get("provider").is_none() && tf.get("terraform").is_none());
        let addresses = terraform_addresses(&tf);
        for a in &addresses {
            assert!(seen.insert(a.clone()), "{a} is declared twice");
        }
        for r in terraform_references(&tf) {
            assert!(
                addresses.contains(&r),
                "{r} is not declared in its own file"
            );
        }
    }
    assert!(
        seen.contains("aws_kms_key.nitrosync-enclave-identity"),
        "{seen:?}"
    );
    assert!(
        seen.contains("output.nitrosync-enclave-identity_key_arn"),
        "{seen:?}"
    );
    let staging = terraform_label("alias/team/nitrosync-staging");
    assert!(staging.starts_with("team_nitrosync-staging_"), "{staging}");
    assert!(
        seen.contains(&format!("data.aws_region.{staging}")),
        "{seen:?}"
    );
}

#[test]
fn json_records_inputs_and_measurements() {
    let j = kms_json(&input(vec![image(0x11)])).unwrap();
    let v = serde_json::to_value(&j).unwrap();
    assert_eq!(v["format"], KMS_FORMAT);
    assert_eq!(v["account"], ACCOUNT);
    assert_eq!(v["measurements"][0]["PCR1"], pcr_of(0x12));
    assert_eq!(v["measurements"][0]["kind"], "eif");
    assert!(v.get("warnings").is_none());
    // The CreateKey request: the policy verbatim, and the lockout check bypassed.
    let create = &v["create_key"];
    assert_eq!(create["BypassPolicyLockoutSafetyCheck"], true);
    assert_eq!(create["KeySpec"], "SYMMETRIC_DEFAULT");
    assert_eq!(create["KeyUsage"], "ENCRYPT_DECRYPT");
    let policy: Value = serde_json::from_str(create["Policy"].as_str().unwrap()).unwrap();
    assert_eq!(policy, j.key_policy);
    assert!(
        v["note"]
            .as_str()
            .unwrap()
            .contains("BypassPolicyLockoutSafetyCheck=true")
    );
    let back: KmsKeyPolicy = serde_json::from_value(v).unwrap();
    assert_eq!(back, j);
}
