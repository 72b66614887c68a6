//! The KMS key policy check: the enclave trusts a key only if its policy provably releases data
//! keys to attested images alone.
//!
//! The parent chooses the key. If its policy let anyone obtain a data key without an attestation
//! document of a released image (`Decrypt` or `GenerateDataKey` without the image condition,
//! `ReEncrypt*`, `GenerateDataKeyWithoutPlaintext` and friends), forge one (`Encrypt`), widen the
//! policy later (`PutKeyPolicy`), or delegate (`CreateGrant`), the parent could read or forge
//! the sealed identity. [`check_key_policy`] is not an IAM evaluator: it is a conservative
//! syntactic allowlist that refuses anything it cannot prove safe.
//!
//! - `Deny` statements are ignored: they only take permissions away.
//! - An `Allow` statement names its actions explicitly (no wildcards, no `NotAction`, no
//!   `NotResource`), each either harmless to the key material ([`SAFE_ACTIONS`]: they can deny
//!   service, never reveal or forge a key) or one that releases a key to an attested
//!   `Recipient` ([`ATTESTED_ACTIONS`]).
//! - A statement with an attested action carries `StringEquals` or `StringEqualsIgnoreCase`
//!   (exactly: no `IfExists`, no set operator) on `kms:RecipientAttestation:ImageSha384`, with
//!   one or more 96-hex-digit PCR0s, none all zeros (a debug-mode enclave). Other conditions
//!   only narrow the statement.
//! - The released images are the union of those PCR0s; this image's PCR0 must be one.
//!
//! The JSON is read strictly: a member name that appears twice in one object is refused (IAM
//! and this check could read it differently), and so is an element this check does not know.

use super::IdentityError;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};

/// The longest key policy: KMS's limit (32 KiB).
pub const MAX_POLICY_LEN: usize = 32 * 1024;

/// Actions that cannot reveal or forge key material (compared case-insensitively). They can
/// disable or delete the key, which only denies service.
pub const SAFE_ACTIONS: [&str; 22] = [
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

/// Actions that release a data key; allowed only to an attested image.
pub const ATTESTED_ACTIONS: [&str; 2] = ["kms:Decrypt", "kms:GenerateDataKey"];

/// The condition key of PCR0 in a `Recipient` request.
const IMAGE_SHA384: &str = "kms:RecipientAttestation:ImageSha384";
/// The condition operators that pin it.
const PINNING_OPERATORS: [&str; 2] = ["StringEquals", "StringEqualsIgnoreCase"];
/// The elements of a policy document.
const POLICY_ELEMENTS: [&str; 3] = ["Version", "Id", "Statement"];
/// The elements of a statement.
const STATEMENT_ELEMENTS: [&str; 9] = [
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];
/// A SHA-384 PCR in hex.
const PCR_HEX: usize = 96;
/// The most of a policy string an error message shows.
const SHOWN: usize = 100;

/// What the policy check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFacts {
    /// The PCR0s (lowercase hex, sorted, without duplicates) the policy can release key
    /// material to.
    pub images: Vec<String>,
}

/// JSON, with objects kept as lists so that a duplicate member name is seen and refused.
#[derive(Debug)]
enum Json {
    Null,
    Bool,
    Number,
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Json, E> {
                Ok(Json::Bool)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Json, E> {
                Ok(Json::Number)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Json, E> {
                Ok(Json::Number)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Json, E> {
                Ok(Json::Number)
            }
            fn visit_str<E>(self, v: &str) -> Result<Json, E> {
                Ok(Json::String(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Json, E> {
                Ok(Json::String(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut out = vec![];
                while let Some(v) = seq.next_element()? {
                    out.push(v);
                }
                Ok(Json::Array(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut out: Vec<(String, Json)> = vec![];
                while let Some((k, v)) = map.next_entry::<String, Json>()? {
                    if out.iter().any(|(seen, _)| *seen == k) {
                        return Err(serde::de::Error::custom(format!(
                            "duplicate member {}",
                            shown(&k)
                        )));
                    }
                    out.push((k, v));
                }
                Ok(Json::Object(out))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl Json {
    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool => "a boolean",
            Json::Number => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }

    fn get(&self, name: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A string from the policy as an error shows it: quoted, escaped, cut short.
fn shown(s: &str) -> String {
    let cut: String = s.chars().take(SHOWN).collect();
    if cut.len() < s.len() {
        format!("{:?}…", cut)
    } else {
        format!("{cut:?}")
    }
}

fn malformed(reason: impl Into<String>) -> IdentityError {
    IdentityError::PolicyMalformed(reason.into())
}

/// Checks that `policy_json`, a KMS key policy, releases data keys only to attested images and
/// cannot be changed to release them to anyone else, and that `own_pcr0` (this image's PCR0,
/// 48 bytes) is among those images.
///
/// # Errors
///
/// [`IdentityError::PolicyTooLarge`], [`IdentityError::PolicyJson`] or
/// [`IdentityError::PolicyMalformed`] for what is not a policy;
/// [`IdentityError::PolicyRefused`] naming the statement and the action or condition that is
/// not provably safe; [`IdentityError::ImageNotReleased`] when the policy is safe but not for
/// this image.
pub fn check_key_policy(policy_json: &str, own_pcr0: &[u8]) -> Result<PolicyFacts, IdentityError> {
    if own_pcr0.len() * 2 != PCR_HEX {
        return Err(IdentityError::Pcr0Length {
            len: own_pcr0.len(),
        });
    }
    if policy_json.len() > MAX_POLICY_LEN {
        return Err(IdentityError::PolicyTooLarge {
            len: policy_json.len(),
            max: MAX_POLICY_LEN,
        });
    }
    let doc: Json = serde_json::from_str(policy_json).map_err(IdentityError::PolicyJson)?;
    let Json::Object(members) = &doc else {
        return Err(malformed(format!("it is {}, not an object", doc.kind())));
    };
    if let Some((k, _)) = members
        .iter()
        .find(|(k, _)| !POLICY_ELEMENTS.contains(&k.as_str()))
    {
        return Err(malformed(format!("unknown element {}", shown(k))));
    }
    let statements: Vec<&Json> = match doc.get("Statement") {
        None => return Err(malformed("it has no Statement")),
        Some(Json::Array(list)) => list.iter().collect(),
        Some(one @ Json::Object(_)) => vec![one],
        Some(other) => {
            return Err(malformed(format!(
                "Statement is {}, not an object or an array",
                other.kind()
            )));
        }
    };

    let mut images: Vec<String> = vec![];
    for (n, statement) in statements.iter().enumerate() {
        images.extend(check_statement(n, statement)?);
    }
    images.sort();
    images.dedup();

    let own = hex::encode(own_pcr0);
    if !images.contains(&own) {
        return Err(IdentityError::ImageNotReleased {
            pcr0: own,
            released: if images.is_empty() {
                "none".to_owned()
            } else {
                images.join(", ")
            },
        });
    }
    Ok(PolicyFacts { images })
}

/// The images one statement releases to (none for a `Deny` or a statement of safe actions
/// only), or why it is refused.
fn check_statement(n: usize, statement: &Json) -> Result<Vec<String>, IdentityError> {
    let name = match statement.get("Sid") {
        Some(Json::String(sid)) => format!("statement Sid {}", shown(sid)),
        _ => format!("statement #{}", n + 1),
    };
    let refuse = |reason: String| IdentityError::PolicyRefused {
        statement: name.clone(),
        reason,
    };
    let Json::Object(members) = statement else {
        return Err(malformed(format!(
            "{name} is {}, not an object",
            statement.kind()
        )));
    };
    if let Some((k, _)) = members
        .iter()
        .find(|(k, _)| !STATEMENT_ELEMENTS.contains(&k.as_str()))
    {
        return Err(malformed(format!(
            "{name} has unknown element {}",
            shown(k)
        )));
    }
    match statement.get("Effect") {
        Some(Json::String(e)) if e == "Deny" => return Ok(vec![]),
        Some(Json::String(e)) if e == "Allow" => {}
        Some(Json::String(e)) => {
            return Err(malformed(format!(
                "{name} has Effect {}, not Allow or Deny",
                shown(e)
            )));
        }
        Some(other) => {
            return Err(malformed(format!(
                "{name} has an Effect that is {}",
                other.kind()
            )));
        }
        None => return Err(malformed(format!("{name} has no Effect"))),
    }
    for not in ["NotAction", "NotResource"] {
        if statement.get(not).is_some() {
            return Err(refuse(format!(
                "an Allow with {not} grants what it does not name"
            )));
        }
    }

    let actions = strings(statement.get("Action"))
        .ok_or_else(|| malformed(format!("{name} has no Action, or it is not strings")))?;
    let mut attested = false;
    for action in actions {
        if action.contains(['*', '?']) {
            return Err(refuse(format!(
                "it allows {}: wildcards are refused in an Allow",
                shown(action)
            )));
        }
        if ATTESTED_ACTIONS
            .iter()
            .any(|a| a.eq_ignore_ascii_case(action))
        {
            attested = true;
        } else if !SAFE_ACTIONS.iter().any(|a| a.eq_ignore_ascii_case(action)) {
            let why = if action.eq_ignore_ascii_case("kms:PutKeyPolicy") {
                "whoever may put the policy can widen it later; create the key with its final policy and BypassPolicyLockoutSafetyCheck"
            } else {
                "it could reveal, forge or delegate key material"
            };
            return Err(refuse(format!("it allows {} ({why})", shown(action))));
        }
    }
    if !attested {
        return Ok(vec![]);
    }
    released_images(statement.get("Condition")).map_err(refuse)
}

/// A string or a non-empty list of strings.
fn strings(v: Option<&Json>) -> Option<Vec<&str>> {
    match v? {
        Json::String(s) => Some(vec![s.as_str()]),
        Json::Array(list) if !list.is_empty() => list
            .iter()
            .map(|v| match v {
                Json::String(s) => Some(s.as_str()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// The PCR0s an attested statement's condition pins, or why it does not pin them.
fn released_images(condition: Option<&Json>) -> Result<Vec<String>, String> {
    let unpinned = format!(
        "it allows kms:Decrypt or kms:GenerateDataKey without a {} or {} condition on {IMAGE_SHA384}",
        PINNING_OPERATORS[0], PINNING_OPERATORS[1]
    );
    let Some(Json::Object(operators)) = condition else {
        return Err(unpinned);
    };
    let mut pinned: Option<&Json> = None;
    for (operator, block) in operators {
        if !PINNING_OPERATORS.contains(&operator.as_str()) {
            // Any other operator is ANDed with the pinning one: it can only narrow.
            continue;
        }
        let Json::Object(keys) = block else {
            return Err(format!("its {operator} condition is {}", block.kind()));
        };
        for (key, values) in keys {
            if key.eq_ignore_ascii_case(IMAGE_SHA384) {
                if pinned.is_some() {
                    return Err(format!("it names {IMAGE_SHA384} more than once"));
                }
                pinned = Some(values);
            }
        }
    }
    let values = pinned.ok_or(unpinned)?;
    let values = strings(Some(values)).ok_or_else(|| {
        format!("its {IMAGE_SHA384} is not a string or a non-empty list of strings")
    })?;
    values
        .into_iter()
        .map(|v| {
            if v.len() != PCR_HEX || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "its {IMAGE_SHA384} value {} is not {PCR_HEX} hex digits",
                    shown(v)
                ));
            }
            if v.bytes().all(|b| b == b'0') {
                return Err(format!(
                    "it releases to an all-zero {IMAGE_SHA384}: a debug-mode enclave, whose memory the parent can read"
                ));
            }
            Ok(v.to_ascii_lowercase())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const IMAGE_A: &str = "aa01aa01aa01aa01aa01aa01aa01aa01aa01aa01aa01aa01aa01aa01aa01aa01aa01aa01aa01aa01aa01aa01aa01aa01";
    const IMAGE_B: &str = "BB02BB02BB02BB02BB02BB02BB02BB02BB02BB02BB02BB02BB02BB02BB02BB02BB02BB02BB02BB02BB02BB02BB02BB02";
    const ZERO: &str = "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
    const ADMIN: &str = "arn:aws:iam::111122223333:role/nitrosync-key-admin";
    const ENCLAVE: &str = "arn:aws:iam::111122223333:role/nitrosync-parent";

    fn pcr(hex_str: &str) -> Vec<u8> {
        hex::decode(hex_str).unwrap()
    }

    /// The key admin's actions in `iam/src/kms.rs` (`ADMIN_ACTIONS`), as
    /// `nitrosync kms template --format json` writes them today: with `kms:PutKeyPolicy`.
    const TEMPLATE_ADMIN_ACTIONS: [&str; 22] = [
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
        "kms:PutKeyPolicy",
        "kms:RevokeGrant",
        "kms:RotateKeyOnDemand",
        "kms:ScheduleKeyDeletion",
        "kms:TagResource",
        "kms:UntagResource",
        "kms:UpdateAlias",
        "kms:UpdateKeyDescription",
    ];

    /// The policy `iam/src/kms.rs` (`Plan::policy`) writes for two images, the first pinned by
    /// its measurements, the second by PCR0 only; `admin_actions` as given.
    fn template_policy(admin_actions: &[&str]) -> Value {
        let pcr1 = "11".repeat(48);
        let pcr2 = "22".repeat(48);
        json!({
            "Version": "2012-10-17",
            "Id": "nitrosync-enclave-identity",
            "Statement": [
                {
                    "Sid": "KeyAdministration",
                    "Effect": "Allow",
                    "Principal": { "AWS": ADMIN },
                    "Action": admin_actions,
                    "Resource": "*",
                },
                {
                    "Sid": "EnclaveImage1",
                    "Effect": "Allow",
                    "Principal": { "AWS": ENCLAVE },
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": "*",
                    "Condition": { "StringEqualsIgnoreCase": {
                        IMAGE_SHA384: IMAGE_A,
                        "kms:RecipientAttestation:PCR1": pcr1,
                        "kms:RecipientAttestation:PCR2": pcr2,
                    }},
                },
                {
                    "Sid": "EnclaveImage2",
                    "Effect": "Allow",
                    "Principal": { "AWS": ENCLAVE },
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": "*",
                    "Condition": { "StringEqualsIgnoreCase": { IMAGE_SHA384: IMAGE_B.to_ascii_lowercase() } },
                },
                {
                    "Sid": "DenyWithoutAttestation",
                    "Effect": "Deny",
                    "Principal": { "AWS": "*" },
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"],
                    "Resource": "*",
                    "Condition": { "Null": { IMAGE_SHA384: "true" } },
                },
                {
                    "Sid": "DenyDebugImage",
                    "Effect": "Deny",
                    "Principal": { "AWS": "*" },
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyPair"],
                    "Resource": "*",
                    "Condition": { "StringEqualsIgnoreCase": { IMAGE_SHA384: ZERO } },
                },
                {
                    "Sid": "DenyOtherImages",
                    "Effect": "Deny",
                    "Principal": { "AWS": "*" },
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyPair"],
                    "Resource": "*",
                    "Condition": { "StringNotEqualsIgnoreCase": { IMAGE_SHA384: [IMAGE_A, IMAGE_B.to_ascii_lowercase()] } },
                },
                {
                    "Sid": "DenyGrants",
                    "Effect": "Deny",
                    "Principal": { "AWS": "*" },
                    "Action": "kms:CreateGrant",
                    "Resource": "*",
                },
            ],
        })
    }

    fn without_put_key_policy() -> Value {
        let actions: Vec<&str> = TEMPLATE_ADMIN_ACTIONS
            .into_iter()
            .filter(|a| *a != "kms:PutKeyPolicy")
            .collect();
        template_policy(&actions)
    }

    fn check(policy: &Value, own: &str) -> Result<PolicyFacts, IdentityError> {
        check_key_policy(&policy.to_string(), &pcr(own))
    }

    /// A one-statement policy around `statement`, plus an Allow that releases to IMAGE_A, so
    /// that the own-image check passes and only `statement` decides.
    fn with_statement(statement: Value) -> Value {
        json!({
            "Version": "2012-10-17",
            "Statement": [
                statement,
                {
                    "Sid": "Enclave",
                    "Effect": "Allow",
                    "Principal": { "AWS": ENCLAVE },
                    "Action": "kms:Decrypt",
                    "Resource": "*",
                    "Condition": { "StringEquals": { IMAGE_SHA384: IMAGE_A } },
                },
            ],
        })
    }

    fn refused(policy: &Value, sid: &str, words: &str) {
        match check(policy, IMAGE_A) {
            Err(IdentityError::PolicyRefused { statement, reason }) => {
                assert!(statement.contains(sid), "{statement} / {reason}");
                assert!(reason.contains(words), "{statement} / {reason}");
            }
            other => panic!("expected {sid} refused for {words:?}, got {other:?}"),
        }
    }

    #[test]
    fn todays_template_is_refused_for_put_key_policy() {
        refused(
            &template_policy(&TEMPLATE_ADMIN_ACTIONS),
            "KeyAdministration",
            "\"kms:PutKeyPolicy\"",
        );
    }

    #[test]
    fn the_template_without_put_key_policy_passes() {
        let facts = check(&without_put_key_policy(), IMAGE_A).unwrap();
        assert_eq!(
            facts.images,
            [IMAGE_A.to_owned(), IMAGE_B.to_ascii_lowercase()]
        );
        // Either image may ask; uppercase hex of the own PCR0 does not matter (bytes).
        check(&without_put_key_policy(), IMAGE_B).unwrap();
    }

    /// The template as it is being changed in `iam/src/kms.rs`: no `PutKeyPolicy` for the
    /// admin, the enclave role may inspect the key, and `PutKeyPolicy` is denied to all.
    #[test]
    fn the_template_with_the_enclaves_read_statement_passes() {
        let mut policy = without_put_key_policy();
        let statements = policy["Statement"].as_array_mut().unwrap();
        statements.insert(
            1,
            json!({
                "Sid": "EnclaveInspectKey",
                "Effect": "Allow",
                "Principal": { "AWS": ENCLAVE },
                "Action": ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:ListGrants"],
                "Resource": "*",
            }),
        );
        statements.push(json!({
            "Sid": "DenyPolicyChange",
            "Effect": "Deny",
            "Principal": { "AWS": "*" },
            "Action": "kms:PutKeyPolicy",
            "Resource": "*",
        }));
        assert_eq!(check(&policy, IMAGE_A).unwrap().images.len(), 2);
    }

    #[test]
    fn own_image_must_be_released() {
        let other = "cc".repeat(48);
        match check(&without_put_key_policy(), &other) {
            Err(e @ IdentityError::ImageNotReleased { .. }) => {
                let m = e.to_string();
                assert!(m.contains(&other), "{m}");
                assert!(m.contains("is not one the key policy releases to"), "{m}");
                assert!(m.contains(IMAGE_A), "{m}");
            }
            other => panic!("{other:?}"),
        }
        let only_admin = json!({ "Statement": {
            "Effect": "Allow", "Principal": { "AWS": ADMIN }, "Action": "kms:DescribeKey", "Resource": "*",
        }});
        match check(&only_admin, IMAGE_A) {
            Err(IdentityError::ImageNotReleased { released, .. }) => assert_eq!(released, "none"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kms_star_to_root_is_refused() {
        refused(
            &with_statement(json!({
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": { "AWS": "arn:aws:iam::111122223333:root" },
                "Action": "kms:*",
                "Resource": "*",
            })),
            "Enable IAM User Permissions",
            "wildcards",
        );
        for action in ["*", "kms:Decrypt*", "kms:GenerateDataKe?", "kms:Get*"] {
            refused(
                &with_statement(json!({
                    "Sid": "Wild", "Effect": "Allow", "Principal": "*", "Action": [action], "Resource": "*",
                    "Condition": { "StringEquals": { IMAGE_SHA384: IMAGE_A } },
                })),
                "Wild",
                "wildcards",
            );
        }
    }

    #[test]
    fn decrypt_without_the_image_condition_is_refused() {
        refused(
            &with_statement(json!({
                "Sid": "Open", "Effect": "Allow", "Principal": { "AWS": ENCLAVE },
                "Action": ["kms:Decrypt"], "Resource": "*",
            })),
            "Open",
            "without a StringEquals",
        );
        // Conditions that do not pin the image.
        for condition in [
            json!({ "StringEqualsIfExists": { IMAGE_SHA384: IMAGE_A } }),
            json!({ "ForAnyValue:StringEquals": { IMAGE_SHA384: IMAGE_A } }),
            json!({ "StringLike": { IMAGE_SHA384: IMAGE_A } }),
            json!({ "StringEquals": { "kms:RecipientAttestation:PCR1": IMAGE_A } }),
            json!({ "StringEquals": { "kms:CallerAccount": "111122223333" } }),
            json!({ "Null": { IMAGE_SHA384: "false" } }),
            json!({}),
        ] {
            refused(
                &with_statement(json!({
                    "Sid": "Loose", "Effect": "Allow", "Principal": { "AWS": ENCLAVE },
                    "Action": "kms:GenerateDataKey", "Resource": "*", "Condition": condition,
                })),
                "Loose",
                "without a StringEquals",
            );
        }
    }

    #[test]
    fn the_image_values_are_checked() {
        for (value, words) in [
            (json!(ZERO), "all-zero"),
            (json!([IMAGE_A, ZERO]), "all-zero"),
            (json!(&IMAGE_A[..95]), "not 96 hex digits"),
            (json!(format!("{}zz", &IMAGE_A[..94])), "not 96 hex digits"),
            (json!("*"), "not 96 hex digits"),
            (json!([]), "not a string or a non-empty list"),
            (json!([1]), "not a string or a non-empty list"),
            (json!({ "a": IMAGE_A }), "not a string or a non-empty list"),
        ] {
            refused(
                &with_statement(json!({
                    "Sid": "Pinned", "Effect": "Allow", "Principal": { "AWS": ENCLAVE },
                    "Action": "kms:Decrypt", "Resource": "*",
                    "Condition": { "StringEqualsIgnoreCase": { IMAGE_SHA384: value } },
                })),
                "Pinned",
                words,
            );
        }
        // Named twice (another case counts as the same key).
        refused(
            &with_statement(json!({
                "Sid": "Twice", "Effect": "Allow", "Principal": { "AWS": ENCLAVE },
                "Action": "kms:Decrypt", "Resource": "*",
                "Condition": {
                    "StringEquals": { IMAGE_SHA384: IMAGE_A },
                    "StringEqualsIgnoreCase": { "KMS:RecipientAttestation:IMAGESHA384": IMAGE_B },
                },
            })),
            "Twice",
            "more than once",
        );
    }

    #[test]
    fn narrowing_conditions_and_case_are_fine() {
        let policy = with_statement(json!({
            "Sid": "Narrow", "Effect": "Allow", "Principal": { "AWS": ENCLAVE },
            "Action": ["KMS:DECRYPT", "kms:generatedatakey", "kms:DescribeKey"], "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:recipientattestation:imagesha384": [IMAGE_B, IMAGE_A],
                    "kms:EncryptionContext:nitrosync:purpose": "enclave-identity",
                },
                "StringEqualsIfExists": { "kms:RecipientAttestation:PCR8": IMAGE_A },
                "Bool": { "aws:SecureTransport": "true" },
            },
        }));
        let facts = check(&policy, IMAGE_A).unwrap();
        assert_eq!(
            facts.images,
            [IMAGE_A.to_owned(), IMAGE_B.to_ascii_lowercase()]
        );
    }

    #[test]
    fn actions_that_reveal_forge_or_delegate_are_refused() {
        for action in [
            "kms:Encrypt",
            "kms:PutKeyPolicy",
            "kms:ReEncryptFrom",
            "kms:ReEncryptTo",
            "kms:GenerateDataKeyWithoutPlaintext",
            "kms:GenerateDataKeyPair",
            "kms:GenerateDataKeyPairWithoutPlaintext",
            "kms:CreateGrant",
            "kms:ImportKeyMaterial",
            "kms:DeleteImportedKeyMaterial",
            "kms:GenerateMac",
            "kms:Sign",
            "kms:ReplicateKey",
            "kms:UpdatePrimaryRegion",
            "kms:Decrypt ",
            "s3:GetObject",
        ] {
            refused(
                &with_statement(json!({
                    "Sid": "Admin", "Effect": "Allow", "Principal": { "AWS": ADMIN },
                    "Action": ["kms:DescribeKey", action], "Resource": "*",
                    "Condition": { "StringEquals": { IMAGE_SHA384: IMAGE_A } },
                })),
                "Admin",
                &format!("{action:?}"),
            );
        }
    }

    #[test]
    fn not_action_and_not_resource_are_refused() {
        for (element, value) in [
            ("NotAction", json!("kms:Decrypt")),
            (
                "NotResource",
                json!("arn:aws:kms:eu-west-1:111122223333:key/other"),
            ),
        ] {
            let mut statement = json!({
                "Sid": "Inverse", "Effect": "Allow", "Principal": { "AWS": ADMIN },
                "Action": "kms:DescribeKey", "Resource": "*",
            });
            statement[element] = value;
            if element == "NotAction" {
                statement.as_object_mut().unwrap().remove("Action");
            } else {
                statement.as_object_mut().unwrap().remove("Resource");
            }
            refused(&with_statement(statement), "Inverse", element);
        }
    }

    #[test]
    fn deny_statements_are_ignored_whatever_they_say() {
        let policy = with_statement(json!({
            "Effect": "Deny", "NotPrincipal": { "AWS": ENCLAVE }, "NotAction": "kms:*",
            "NotResource": "*", "Condition": { "StringNotLikeIfExists": { "*": "?" } },
        }));
        assert_eq!(check(&policy, IMAGE_A).unwrap().images, [IMAGE_A]);
        let policy = with_statement(json!({
            "Sid": "DenyAll", "Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*",
        }));
        check(&policy, IMAGE_A).unwrap();
    }

    #[test]
    fn a_statement_object_is_accepted() {
        let policy = json!({ "Statement": {
            "Effect": "Allow", "Principal": { "AWS": ENCLAVE }, "Action": "kms:Decrypt", "Resource": "*",
            "Condition": { "StringEqualsIgnoreCase": { IMAGE_SHA384: IMAGE_A } },
        }});
        assert_eq!(check(&policy, IMAGE_A).unwrap().images, [IMAGE_A]);
        // A statement without Sid is named by its position.
        let policy = json!({ "Statement": [
            { "Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*" },
        ]});
        refused(&policy, "statement #1", "without a StringEquals");
    }

    #[test]
    fn malformed_policies_are_errors() {
        let own = pcr(IMAGE_A);
        let too_long = format!(
            "{{\"Statement\":[],\"Id\":\"{}\"}}",
            "x".repeat(MAX_POLICY_LEN)
        );
        assert!(matches!(
            check_key_policy(&too_long, &own),
            Err(IdentityError::PolicyTooLarge { .. })
        ));
        for bad in ["", "{", "not json", "{\"Statement\": [}", "{} {}"] {
            assert!(
                matches!(
                    check_key_policy(bad, &own),
                    Err(IdentityError::PolicyJson(_))
                ),
                "{bad:?}"
            );
        }
        // Duplicate members: IAM and this check could read them differently.
        let dup = format!(
            r#"{{"Statement": [{{"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
                "Condition": {{"StringEquals": {{"{IMAGE_SHA384}": "{IMAGE_A}"}}}}}}],
               "Statement": [{{"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}}]}}"#
        );
        assert!(matches!(
            check_key_policy(&dup, &own),
            Err(IdentityError::PolicyJson(_))
        ));
        for (policy, words) in [
            (json!([]), "not an object"),
            (json!({}), "no Statement"),
            (json!({ "Version": "2012-10-17" }), "no Statement"),
            (json!({ "Statement": "Allow" }), "not an object or an array"),
            (json!({ "Statement": [], "Extra": 1 }), "unknown element"),
            (json!({ "statement": [] }), "unknown element"),
            (json!({ "Statement": [1] }), "not an object"),
            (
                json!({ "Statement": [{ "Action": "kms:Decrypt" }] }),
                "no Effect",
            ),
            (
                json!({ "Statement": [{ "Effect": "allow", "Action": "kms:Decrypt" }] }),
                "not Allow or Deny",
            ),
            (
                json!({ "Statement": [{ "Effect": true }] }),
                "Effect that is a boolean",
            ),
            (
                json!({ "Statement": [{ "Effect": "Allow", "Resource": "*" }] }),
                "no Action",
            ),
            (
                json!({ "Statement": [{ "Effect": "Allow", "Action": [] }] }),
                "no Action",
            ),
            (
                json!({ "Statement": [{ "Effect": "Allow", "Action": [1] }] }),
                "no Action",
            ),
            (
                json!({ "Statement": [{ "Effect": "Allow", "Action": "kms:DescribeKey", "Actions": "x" }] }),
                "unknown element",
            ),
        ] {
            match check(&policy, IMAGE_A) {
                Err(IdentityError::PolicyMalformed(m)) => assert!(m.contains(words), "{m}"),
                other => panic!("{policy}: {other:?}"),
            }
        }
        assert!(matches!(
            check_key_policy("{\"Statement\": []}", &own[..47]),
            Err(IdentityError::Pcr0Length { len: 47 })
        ));
    }

    #[test]
    fn long_or_hostile_strings_are_cut_in_errors() {
        let sid = format!("evil\n{}", "A".repeat(10_000));
        let policy = with_statement(json!({
            "Sid": sid, "Effect": "Allow", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*",
        }));
        let e = check(&policy, IMAGE_A).unwrap_err().to_string();
        assert!(e.len() < 400, "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
