//! Syntax rules for the names nitrosync and AWS accept: regions, destination ids, secret names,
//! ARNs, KMS key ids, tags and variable names. Each check says exactly what is wrong.

/// Why a name is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, NameError> {
    Err(NameError(msg.into()))
}

/// An AWS region name: `us-east-1`, `us-gov-west-1`, `cn-north-1`, `ap-southeast-4`, ...
pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let Some((number, words)) = parts.split_last() else {
        return false;
    };
    (3..=4).contains(&parts.len())
        && parts[0].len() == 2
        && words
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && !number.starts_with('0')
        && number.parse::<u8>().is_ok_and(|n| n > 0)
}

/// The AWS partition of a region.
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// AWS's regions by partition, as AWS listed them in late 2026 (the SDKs' `partitions.json`,
/// botocore 1.43): the commercial partition `aws`, China `aws-cn` and GovCloud `aws-us-gov`.
/// Isolated partitions (`aws-iso*`) and the European Sovereign Cloud (`aws-eusc`) are not
/// supported. A region AWS opens later needs a line here (and a new release) before nitrosync
/// accepts it from a user; [`is_region`] alone still checks only the syntax.
pub const KNOWN_REGIONS: [(&str, &[&str]); 3] = [
    (
        "aws",
        &[
            "af-south-1",
            "ap-east-1",
            "ap-east-2",
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-northeast-3",
            "ap-south-1",
            "ap-south-2",
            "ap-southeast-1",
            "ap-southeast-2",
            "ap-southeast-3",
            "ap-southeast-4",
            "ap-southeast-5",
            "ap-southeast-6",
            "ap-southeast-7",
            "ca-central-1",
            "ca-west-1",
            "eu-central-1",
            "eu-central-2",
            "eu-north-1",
            "eu-south-1",
            "eu-south-2",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "il-central-1",
            "me-central-1",
            "me-south-1",
            "mx-central-1",
            "sa-east-1",
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
        ],
    ),
    ("aws-cn", &["cn-north-1", "cn-northwest-1"]),
    ("aws-us-gov", &["us-gov-east-1", "us-gov-west-1"]),
];

/// The known regions of `partition` (`aws`, `aws-cn`, `aws-us-gov`); empty for another.
pub fn regions_of(partition: &str) -> &'static [&'static str] {
    KNOWN_REGIONS
        .iter()
        .find(|(p, _)| *p == partition)
        .map_or(&[], |(_, r)| *r)
}

/// A region AWS has: one of [`KNOWN_REGIONS`]. The error names the region and suggests the
/// closest known names (the same area with another number, or a name one or two typos away),
/// or else lists the regions of its partition.
pub fn known_region(s: &str) -> Result<(), NameError> {
    let partition = partition_of(s);
    let known = regions_of(partition);
    if known.contains(&s) {
        return Ok(());
    }
    let what = if is_region(s) {
        format!("{s:?} is not a known AWS region")
    } else {
        format!("{s:?} is not an AWS region name (like us-east-1)")
    };
    let close = closest_regions(s);
    if close.is_empty() {
        return err(format!(
            "{what}; the regions of partition {partition} are {}",
            known.join(", ")
        ));
    }
    err(format!("{what}; did you mean {}?", or_list(&close)))
}

/// Known regions near `s`, of its own partition first: those of the same area (`us-east-` for
/// `us-east-99`), else the nearest within an edit distance of 2 (at most three).
fn closest_regions(s: &str) -> Vec<&'static str> {
    let lower = s.to_ascii_lowercase();
    let all: Vec<&'static str> = KNOWN_REGIONS
        .iter()
        .flat_map(|(_, r)| r.iter().copied())
        .collect();
    if let Some(r) = all.iter().find(|r| **r == lower) {
        return vec![*r];
    }
    let own: Vec<&'static str> = regions_of(partition_of(&lower)).to_vec();
    for pool in [own, all] {
        if let Some((area, _)) = lower.rsplit_once('-') {
            let same: Vec<&str> = pool
                .iter()
                .copied()
                .filter(|r| r.rsplit_once('-').is_some_and(|(a, _)| a == area))
                .collect();
            if !same.is_empty() {
                return same;
            }
        }
        let near: Vec<(usize, &str)> = pool
            .iter()
            .map(|r| (edit_distance(&lower, r), *r))
            .filter(|(d, _)| *d <= 2)
            .collect();
        let best = near.iter().map(|(d, _)| *d).min().unwrap_or_default();
        let near: Vec<&str> = near
            .into_iter()
            .filter(|(d, _)| *d == best)
            .take(3)
            .map(|(_, r)| r)
            .collect();
        if !near.is_empty() {
            return near;
        }
    }
    Vec::new()
}

/// `a`, `a or b`, `a, b or c`.
fn or_list(names: &[&str]) -> String {
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// Levenshtein distance over bytes (region names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A destination id: `[A-Za-z0-9_.-]{1,64}`.
pub fn destination_id(s: &str) -> Result<(), NameError> {
    if s.is_empty() || s.len() > 64 {
        return err("must be 1 to 64 characters");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return err("may contain only letters, digits, '_', '.' and '-'");
    }
    Ok(())
}

/// A Secrets Manager secret name: 1 to 512 of `[A-Za-z0-9/_+=.@-]`, and not ending in a hyphen
/// followed by six characters (AWS would confuse it with the ARN's random suffix).
pub fn secret_name(s: &str) -> Result<(), NameError> {
    if s.is_empty() || s.len() > 512 {
        return err("must be 1 to 512 characters");
    }
    if let Some(b) = s
        .bytes()
        .find(|b| !(b.is_ascii_alphanumeric() || b"/_+=.@-".contains(b)))
    {
        return err(format!(
            "character {:?} is not allowed (letters, digits and /_+=.@- only)",
            char::from(b)
        ));
    }
    let bytes = s.as_bytes();
    if bytes.len() >= 7 && bytes[bytes.len() - 7] == b'-' {
        return err(
            "must not end with a hyphen followed by six characters (AWS reads that as an ARN suffix)",
        );
    }
    Ok(())
}

/// The parts of an IAM ARN that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamArn {
    /// `aws`, `aws-cn` or `aws-us-gov`.
    pub partition: String,
    /// The 12-digit account id.
    pub account: String,
    /// The resource after the type (`path/name`).
    pub resource: String,
}

fn iam_arn(s: &str, kind: &str) -> Result<IamArn, NameError> {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts.as_slice() else {
        return err(format!("must be arn:aws:iam::ACCOUNT:{kind}/NAME"));
    };
    if *arn != "arn" || !["aws", "aws-cn", "aws-us-gov"].contains(partition) {
        return err("must start with arn:aws: (or arn:aws-cn:, arn:aws-us-gov:)");
    }
    if *service != "iam" || !region.is_empty() {
        return err(format!(
            "must be an IAM ARN: arn:{partition}:iam::ACCOUNT:{kind}/NAME"
        ));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return err("account id must be 12 digits");
    }
    let Some(rest) = resource
        .strip_prefix(kind)
        .and_then(|r| r.strip_prefix('/'))
    else {
        return err(format!("resource must be {kind}/NAME"));
    };
    let name = rest.rsplit('/').next().unwrap_or_default();
    let max = if kind == "role" { 64 } else { 128 };
    if name.is_empty() || name.len() > max {
        return err(format!("{kind} name must be 1 to {max} characters"));
    }
    let ok = |b: u8| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b);
    if !rest.bytes().all(|b| ok(b) || b == b'/') {
        return err(format!(
            "{kind} name may contain only letters, digits and +=,.@_-"
        ));
    }
    Ok(IamArn {
        partition: (*partition).to_owned(),
        account: (*account).to_owned(),
        resource: (*resource).to_owned(),
    })
}

/// An IAM role ARN: `arn:aws:iam::123456789012:role/path/name`.
pub fn role_arn(s: &str) -> Result<IamArn, NameError> {
    iam_arn(s, "role")
}

/// An IAM SAML provider ARN: `arn:aws:iam::123456789012:saml-provider/name`.
pub fn saml_provider_arn(s: &str) -> Result<IamArn, NameError> {
    iam_arn(s, "saml-provider")
}

/// A KMS key reference: key id (UUID or `mrk-…`), key ARN, `alias/name` or alias ARN.
pub fn kms_key_id(s: &str) -> Result<(), NameError> {
    if s.is_empty() || s.len() > 2048 {
        return err("must be 1 to 2048 characters");
    }
    if let Some(alias) = s.strip_prefix("alias/") {
        if alias.is_empty() || alias.starts_with("aws/") {
            return err("alias must be alias/NAME and not an AWS managed alias");
        }
        return Ok(());
    }
    if s.starts_with("arn:") {
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        return match parts.as_slice() {
            ["arn", _, "kms", region, account, res]
                if is_region(region)
                    && account.len() == 12
                    && (res.starts_with("key/") || res.starts_with("alias/")) =>
            {
                Ok(())
            }
            _ => err("must be arn:aws:kms:REGION:ACCOUNT:key/ID or …:alias/NAME"),
        };
    }
    let ok = s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        && (s.len() == 36 || s.starts_with("mrk-"));
    if !ok && !s.starts_with("mrk-") {
        return err("must be a key id (UUID), key ARN, alias/NAME or alias ARN");
    }
    Ok(())
}

/// A secret tag chosen by the user: key 1 to 128, value at most 256 characters, neither
/// reserved prefix `aws:` nor `nitrosync:`.
pub fn tag(key: &str, value: &str) -> Result<(), NameError> {
    if key.is_empty() || key.chars().count() > 128 {
        return err("tag key must be 1 to 128 characters");
    }
    if value.chars().count() > 256 {
        return err("tag value must be at most 256 characters");
    }
    let lower = key.to_ascii_lowercase();
    if lower.starts_with("aws:") {
        return err("tag keys starting with aws: are reserved by AWS");
    }
    if lower.starts_with("nitrosync:") {
        return err("tag keys starting with nitrosync: are reserved by nitrosync");
    }
    let ok = |c: char| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c);
    if !key.chars().all(ok) || !value.chars().all(ok) {
        return err("tags may contain only letters, digits, spaces and _.:/=+-@");
    }
    Ok(())
}

/// A variable name: `[A-Za-z_][A-Za-z0-9_]*`, at most 256 characters.
pub fn variable_name(s: &str) -> Result<(), NameError> {
    let mut bytes = s.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') || s.len() > 256 {
        return err(format!(
            "variable name {:?} must match [A-Za-z_][A-Za-z0-9_]* (at most 256 characters)",
            s.chars().take(64).collect::<String>()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "cn-north-1",
            "ap-southeast-4",
        ] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in [
            "",
            "us-east",
            "US-EAST-1",
            "us-east-01",
            "u-east-1",
            "us--1",
            "us-east-1x",
            "a-b-c-d-1",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
        assert_eq!(partition_of("us-gov-west-1"), "aws-us-gov");
    }

    #[test]
    fn known_regions() {
        for ok in [
            "us-east-1",
            "us-west-2",
            "eu-central-2",
            "ap-southeast-7",
            "mx-central-1",
            "cn-northwest-1",
            "us-gov-east-1",
        ] {
            known_region(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        // Every known name is a region name, in the partition it is listed under, once.
        let mut seen = std::collections::HashSet::new();
        for (partition, regions) in KNOWN_REGIONS {
            assert!(!regions.is_empty());
            for r in regions {
                assert!(is_region(r), "{r}");
                assert_eq!(partition_of(r), partition, "{r}");
                assert!(seen.insert(*r), "{r} twice");
            }
        }
        assert!(regions_of("aws-iso").is_empty());

        let e = known_region("us-east-99").unwrap_err().0;
        assert!(
            e.contains("\"us-east-99\" is not a known AWS region"),
            "{e}"
        );
        assert!(e.ends_with("did you mean us-east-1 or us-east-2?"), "{e}");
        let e = known_region("eu-centrl-1").unwrap_err().0;
        assert!(e.ends_with("did you mean eu-central-1?"), "{e}");
        let e = known_region("US-EAST-1").unwrap_err().0;
        assert!(e.ends_with("did you mean us-east-1?"), "{e}");
        let e = known_region("cn-south-1").unwrap_err().0;
        assert!(e.contains("cn-north-1"), "{e}");
        let e = known_region("us-gov-north-1").unwrap_err().0;
        assert!(e.contains("us-gov-west-1"), "{e}");
        // Nothing close: the partition's list.
        let e = known_region("moon-1").unwrap_err().0;
        assert!(e.starts_with("\"moon-1\" is not an AWS region name"), "{e}");
        assert!(
            e.contains("the regions of partition aws are af-south-1, "),
            "{e}"
        );
        let e = known_region("xx-nowhere-1").unwrap_err().0;
        assert!(e.contains("partition aws are"), "{e}");
        assert!(!e.contains("cn-north-1"), "{e}");
        assert!(known_region("").is_err());
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(or_list(&["a", "b", "c"]), "a, b or c");
    }

    #[test]
    fn secret_names() {
        for ok in [
            "prod/api/env",
            "a",
            "x@y.z+=_-/",
            &"a".repeat(512),
            "name-abcde",
            "name-abcdefg",
        ] {
            secret_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            "has space",
            "semi;colon",
            &"a".repeat(513),
            "prod/api-abcdef",
            "x-123456",
        ] {
            assert!(secret_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arns() {
        let a = role_arn("arn:aws:iam::123456789012:role/team/nitrosync-prod").unwrap();
        assert_eq!(a.account, "123456789012");
        saml_provider_arn("arn:aws:iam::123456789012:saml-provider/nitrosync").unwrap();
        for bad in [
            "arn:aws:iam::12345678901:role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:sts::123456789012:role/x",
            "arn:aws:iam:us-east-1:123456789012:role/x",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/bad name",
            "role/x",
        ] {
            assert!(role_arn(bad).is_err(), "{bad}");
        }
        assert!(saml_provider_arn("arn:aws:iam::123456789012:role/x").is_err());
    }

    #[test]
    fn kms_ids() {
        for ok in [
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "mrk-1234abcd12ab34cd56ef1234567890ab",
            "alias/my-key",
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-east-1:123456789012:alias/my-key",
        ] {
            kms_key_id(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            "alias/",
            "alias/aws/secretsmanager",
            "not a key",
            "arn:aws:s3:::bucket",
        ] {
            assert!(kms_key_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn variables_and_tags() {
        for ok in ["A", "_x", "DATABASE_URL", "a1_"] {
            variable_name(ok).unwrap();
        }
        for bad in ["", "1A", "A-B", "A B", "É"] {
            assert!(variable_name(bad).is_err(), "{bad}");
        }
        tag("team", "payments").unwrap();
        assert!(tag("aws:x", "y").is_err());
        assert!(tag("NitroSync:x", "y").is_err());
        assert!(tag("", "y").is_err());
        assert!(tag("k", &"v".repeat(257)).is_err());
    }
}
