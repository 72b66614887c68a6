//! Input checks. Each returns the precise [`SamlError`] variant for the rule that failed.

use crate::SamlError;

/// The longest entity id accepted (SAML metadata schema: entityID is at most 1024 characters).
pub(crate) const MAX_ENTITY_ID_LEN: usize = 1024;
/// The longest NameID value accepted (SAML core: persistent identifiers are at most 256 characters).
pub(crate) const MAX_SUBJECT_LEN: usize = 256;
/// The longest Response / Assertion id accepted.
pub(crate) const MAX_ID_LEN: usize = 256;
/// `SessionDuration` bounds, in seconds.
pub(crate) const SESSION_DURATION_RANGE: std::ops::RangeInclusive<u32> = 900..=43_200;

/// The entity id must be an absolute `https://` URL without credentials, query or fragment, made of
/// printable ASCII that needs no XML escaping.
pub(crate) fn entity_id(id: &str) -> Result<(), SamlError> {
    let err = |reason| Err(SamlError::InvalidEntityId { reason });
    if id.is_empty() {
        return err("empty");
    }
    if id.len() > MAX_ENTITY_ID_LEN {
        return err("longer than 1024 characters");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'&' | b'"' | b'\'' | b'\\'))
    {
        return err("must be printable ASCII without spaces, quotes, '<', '>', '&' or '\\'");
    }
    let Ok(url) = url::Url::parse(id) else {
        return err("not an absolute URL");
    };
    if url.scheme() != "https" || !id.starts_with("https://") {
        return err("scheme must be https");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return err("missing host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return err("must not carry credentials");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return err("must not have a query or fragment");
    }
    Ok(())
}

/// The NameID value: 1–256 characters, no control characters, no leading or trailing whitespace
/// (relying parties may trim it, which would change the subject the trust policy pins), and only
/// characters XML 1.0 can carry. `&`, `<`, `>` and quotes are fine: they are escaped.
pub(crate) fn subject(subject: &str) -> Result<(), SamlError> {
    let err = |reason| Err(SamlError::InvalidSubject { reason });
    if subject.is_empty() {
        return err("empty");
    }
    if subject.chars().count() > MAX_SUBJECT_LEN {
        return err("longer than 256 characters");
    }
    if subject.chars().any(char::is_control) {
        return err("contains a control character");
    }
    if subject
        .chars()
        .any(|c| matches!(c, '\u{FFFE}' | '\u{FFFF}'))
    {
        return err("contains U+FFFE or U+FFFF, which XML does not allow");
    }
    if subject.trim() != subject {
        return err("has leading or trailing whitespace");
    }
    Ok(())
}

/// An `xs:ID` (an NCName), restricted to ASCII: `[A-Za-z_][A-Za-z0-9_.-]*`, at most 256 characters.
pub(crate) fn xml_id(which: &'static str, id: &str) -> Result<(), SamlError> {
    let err = |reason| Err(SamlError::InvalidId { which, reason });
    let Some(first) = id.bytes().next() else {
        return err("empty");
    };
    if id.len() > MAX_ID_LEN {
        return err("longer than 256 characters");
    }
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return err("must start with an ASCII letter or '_'");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return err("may contain only ASCII letters, digits, '_', '.' and '-'");
    }
    Ok(())
}

/// `RoleSessionName`: 2–64 characters of `[A-Za-z0-9_+=,.@-]`.
pub(crate) fn session_name(name: &str) -> Result<(), SamlError> {
    let err = |reason| Err(SamlError::InvalidSessionName { reason });
    if name.len() < 2 {
        return err("shorter than 2 characters");
    }
    if name.len() > 64 {
        return err("longer than 64 characters");
    }
    if !name.bytes().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'=' | b',' | b'.' | b'@' | b'-')
    }) {
        return err("may contain only [A-Za-z0-9_+=,.@-]");
    }
    Ok(())
}

/// `SessionDuration`: 900–43200 seconds.
pub(crate) fn session_duration(seconds: u32) -> Result<(), SamlError> {
    if SESSION_DURATION_RANGE.contains(&seconds) {
        Ok(())
    } else {
        Err(SamlError::InvalidSessionDuration { seconds })
    }
}

/// The parts of an IAM ARN that the cross-checks need.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct IamArn<'a> {
    pub(crate) partition: &'a str,
    pub(crate) account: &'a str,
}

/// Splits `arn:<partition>:iam::<account>:<resource>` and checks the common parts.
fn iam_arn(arn: &str) -> Result<(IamArn<'_>, &str), &'static str> {
    if arn.len() > 2048 {
        return Err("longer than 2048 characters");
    }
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err("not of the form arn:<partition>:iam::<account>:<resource>");
    };
    if !(partition == "aws" || partition.starts_with("aws-"))
        || !partition
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-')
    {
        return Err("unknown partition");
    }
    if service != "iam" {
        return Err("service must be iam");
    }
    if !region.is_empty() {
        return Err("IAM ARNs have an empty region");
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err("account must be 12 digits");
    }
    Ok((IamArn { partition, account }, resource))
}

/// `arn:<partition>:iam::<account>:role/<path/>name`. Commas are refused anywhere, because the
/// `Role` attribute joins the role and provider ARNs with a comma.
pub(crate) fn role_arn(arn: &str) -> Result<IamArn<'_>, SamlError> {
    let err = |reason| SamlError::InvalidRoleArn { reason };
    let (parsed, resource) = iam_arn(arn).map_err(err)?;
    let Some(path_and_name) = resource.strip_prefix("role/") else {
        return Err(err("resource must start with role/"));
    };
    if arn.contains(',') {
        return Err(err(
            "contains ',' which separates role and provider in the Role attribute",
        ));
    }
    let (path, name) = match path_and_name.rsplit_once('/') {
        Some((path, name)) => (path, name),
        None => ("", path_and_name),
    };
    if path.len() > 510 || !path.bytes().all(|b| (0x21..=0x7e).contains(&b)) || path.contains("//")
    {
        return Err(err(
            "role path must be printable ASCII, at most 512 characters",
        ));
    }
    if name.is_empty() || name.len() > 64 {
        return Err(err("role name must be 1-64 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'=' | b'.' | b'@' | b'-'))
    {
        return Err(err("role name may contain only [A-Za-z0-9_+=.@-]"));
    }
    Ok(parsed)
}

/// `arn:<partition>:iam::<account>:saml-provider/<name>`, name 1–128 of `[A-Za-z0-9_.-]`.
pub(crate) fn provider_arn(arn: &str) -> Result<IamArn<'_>, SamlError> {
    let err = |reason| SamlError::InvalidProviderArn { reason };
    let (parsed, resource) = iam_arn(arn).map_err(err)?;
    let Some(name) = resource.strip_prefix("saml-provider/") else {
        return Err(err("resource must start with saml-provider/"));
    };
    if name.is_empty() || name.len() > 128 {
        return Err(err("provider name must be 1-128 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(err("provider name may contain only [A-Za-z0-9_.-]"));
    }
    Ok(parsed)
}

/// The AWS sign-in SAML endpoint: `https://signin.aws.amazon.com/saml`, the regional
/// `https://<region>.signin.aws.amazon.com/saml`, or the China / GovCloud endpoints, in the same
/// partition as the role.
pub(crate) fn recipient(recipient: &str, partition: &str) -> Result<(), SamlError> {
    let err = |reason| Err(SamlError::InvalidRecipient { reason });
    let implied = match recipient {
        "https://signin.aws.amazon.com/saml" => "aws",
        "https://signin.amazonaws.cn/saml" => "aws-cn",
        "https://signin.amazonaws-us-gov.com/saml" => "aws-us-gov",
        other => {
            let region = other
                .strip_prefix("https://")
                .and_then(|rest| rest.strip_suffix(".signin.aws.amazon.com/saml"));
            match region {
                Some(region) if is_region(region) => "aws",
                _ => {
                    return err("must be https://signin.aws.amazon.com/saml or \
                         https://<region>.signin.aws.amazon.com/saml");
                }
            }
        }
    };
    if implied != partition {
        return err("the sign-in endpoint is not in the role's partition");
    }
    Ok(())
}

/// `us-east-1`, `ap-southeast-2`, `us-gov-west-1`: lowercase words joined by `-`, ending in a number.
fn is_region(region: &str) -> bool {
    let mut words: Vec<&str> = region.split('-').collect();
    let Some(number) = words.pop() else {
        return false;
    };
    words.len() >= 2
        && !number.is_empty()
        && number.len() <= 2
        && number.bytes().all(|b| b.is_ascii_digit())
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(xml_id("response", "_abc-1.2").is_ok());
        assert!(xml_id("response", "a").is_ok());
        assert!(xml_id("response", "").is_err());
        assert!(xml_id("response", "1abc").is_err());
        assert!(xml_id("response", "-abc").is_err());
        assert!(xml_id("response", "a:b").is_err());
        assert!(xml_id("response", "a b").is_err());
        assert!(xml_id("response", &"a".repeat(257)).is_err());
    }

    #[test]
    fn regions() {
        for ok in [
            "us-east-1",
            "ap-southeast-2",
            "us-gov-west-1",
            "eu-central-2",
        ] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in [
            "",
            "us",
            "us-east",
            "US-east-1",
            "us--1",
            "us-east-123",
            "evil.com/x-y-1",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }

    #[test]
    fn recipients() {
        assert!(recipient("https://signin.aws.amazon.com/saml", "aws").is_ok());
        assert!(recipient("https://eu-west-1.signin.aws.amazon.com/saml", "aws").is_ok());
        assert!(recipient("https://signin.amazonaws.cn/saml", "aws-cn").is_ok());
        assert!(recipient("https://signin.amazonaws.cn/saml", "aws").is_err());
        assert!(recipient("https://evil.example/saml", "aws").is_err());
        assert!(recipient("https://x.evil.example/.signin.aws.amazon.com/saml", "aws").is_err());
        assert!(recipient("http://signin.aws.amazon.com/saml", "aws").is_err());
    }

    #[test]
    fn role_arns() {
        assert!(role_arn("arn:aws:iam::123456789012:role/SyncRole").is_ok());
        assert!(role_arn("arn:aws:iam::123456789012:role/team/a/SyncRole").is_ok());
        assert!(role_arn("arn:aws-cn:iam::123456789012:role/x").is_ok());
        for bad in [
            "",
            "arn:aws:iam::123456789012:user/Bob",
            "arn:aws:sts::123456789012:role/x",
            "arn:aws:iam:us-east-1:123456789012:role/x",
            "arn:aws:iam::12345678901:role/x",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a,b",
            "arn:aws:iam::123456789012:role/a b",
            "arn:evil:iam::123456789012:role/x",
        ] {
            assert!(
                matches!(role_arn(bad), Err(SamlError::InvalidRoleArn { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn provider_arns() {
        assert!(provider_arn("arn:aws:iam::123456789012:saml-provider/nitrosync").is_ok());
        for bad in [
            "arn:aws:iam::123456789012:saml-provider/",
            "arn:aws:iam::123456789012:oidc-provider/x",
            "arn:aws:iam::123456789012:saml-provider/a/b",
            "arn:aws:iam::123456789012:saml-provider/a,b",
        ] {
            assert!(
                matches!(provider_arn(bad), Err(SamlError::InvalidProviderArn { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn entity_ids() {
        assert!(entity_id("https://nitrosync.example/saml/idp").is_ok());
        for bad in [
            "",
            "http://nitrosync.example/",
            "urn:nitrosync:idp",
            "https://user:pw@nitrosync.example/",
            "https://nitrosync.example/?q",
            "https://nitrosync.example/#f",
            "https://nitrosync.example/<x>",
            "https://nitrosync.example/ x",
            "HTTPS://nitrosync.example/",
        ] {
            assert!(entity_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subjects() {
        assert!(subject("ns1-abcdefghijklmnopqrstuvwxyz234567").is_ok());
        assert!(subject("a&b<c").is_ok());
        assert!(subject("").is_err());
        assert!(subject(" a").is_err());
        assert!(subject("a\nb").is_err());
        assert!(subject("a\u{FFFE}").is_err());
        assert!(subject("a\u{FFFF}").is_err());
        assert!(subject("a\u{FFFD}").is_ok());
        assert!(subject(&"a".repeat(257)).is_err());
        assert!(subject(&"a".repeat(256)).is_ok());
    }

    #[test]
    fn session_names_and_durations() {
        assert!(session_name("ab").is_ok());
        assert!(session_name("nitrosync-dest_1@x=y,z.").is_ok());
        assert!(session_name("a").is_err());
        assert!(session_name(&"a".repeat(65)).is_err());
        assert!(session_name("a b").is_err());
        assert!(session_name("a/b").is_err());
        assert!(session_duration(900).is_ok());
        assert!(session_duration(43_200).is_ok());
        assert!(session_duration(899).is_err());
        assert!(session_duration(43_201).is_err());
    }
}
