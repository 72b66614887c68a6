//! Value parsers for flags whose values have rules beyond their type: clap runs them while it
//! parses, so a bad value is clap's usage error (exit 2), `error: invalid value 'X' for
//! '--flag <FLAG>': reason`, before anything is read, written or asked of the daemon.

use nitrosync_shared::names;
use std::path::PathBuf;

/// A destination id: `[A-Za-z0-9_.-]{1,64}`.
pub(crate) fn destination_id(s: &str) -> Result<String, String> {
    names::destination_id(s).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

/// A Secrets Manager secret name.
pub(crate) fn secret_name(s: &str) -> Result<String, String> {
    names::secret_name(s).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

/// An IAM role ARN.
pub(crate) fn role_arn(s: &str) -> Result<String, String> {
    names::role_arn(s).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

/// An IAM SAML provider ARN.
pub(crate) fn saml_provider_arn(s: &str) -> Result<String, String> {
    names::saml_provider_arn(s).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

/// A KMS key id, key ARN, `alias/NAME` or alias ARN.
pub(crate) fn kms_key_id(s: &str) -> Result<String, String> {
    names::kms_key_id(s).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

/// A secret tag, `KEY=VALUE`, by AWS's and nitrosync's tag rules.
pub(crate) fn tag(s: &str) -> Result<String, String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| "expected KEY=VALUE".to_owned())?;
    names::tag(k, v).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

/// A nonce in hex: an even number of hex digits, 1 to 512 bytes (what the daemon accepts).
pub(crate) fn nonce_hex(s: &str) -> Result<String, String> {
    let bytes = hex::decode(s).map_err(|e| format!("not hex: {e}"))?;
    if bytes.is_empty() || bytes.len() > 512 {
        return Err(format!("must be 1 to 512 bytes, not {}", bytes.len()));
    }
    Ok(s.to_owned())
}

/// A file that must exist (it is read later; one that cannot be read then is a file error).
pub(crate) fn existing_file(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    match std::fs::metadata(&p) {
        Ok(m) if m.is_dir() => Err("is a directory, not a file".to_owned()),
        Ok(_) => Ok(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("no such file".to_owned()),
        // Permission denied on a parent and the like: reported when it is read, with the path.
        Err(_) => Ok(p),
    }
}

/// An input file that must exist, or `-` for standard input.
pub(crate) fn input_file(s: &str) -> Result<PathBuf, String> {
    if s == "-" {
        return Ok(PathBuf::from(s));
    }
    existing_file(s)
}

/// An HTTP(S) URL: `http://` or `https://` and a host.
pub(crate) fn url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| "must start with https:// (or http://)".to_owned())?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err("must name a host: https://HOST[:PORT]".to_owned());
    }
    if let Some((_, port)) = host.rsplit_once(':')
        && !host.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err(format!("port {port:?} is not a number from 0 to 65535"));
    }
    Ok(s.to_owned())
}

/// The most history entries the daemon returns at once.
pub(crate) const MAX_HISTORY: u32 = 1000;

/// `history --limit`: 1 to [`MAX_HISTORY`] entries (0 would ask for nothing).
pub(crate) fn history_limit(s: &str) -> Result<u32, String> {
    let n: u32 = s
        .parse()
        .map_err(|_| format!("not a whole number from 1 to {MAX_HISTORY}"))?;
    if n == 0 || n > MAX_HISTORY {
        return Err(format!("must be 1 to {MAX_HISTORY}, not {n}"));
    }
    Ok(n)
}

/// `status --interval`: seconds (a decimal such as `0.5`, or a duration such as `2s`), 0.5 s
/// to an hour.
pub(crate) fn interval(s: &str) -> Result<std::time::Duration, String> {
    let d = match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => std::time::Duration::from_secs_f64(secs),
        Ok(_) => return Err("must be a positive number of seconds".to_owned()),
        Err(_) => humantime::parse_duration(s).map_err(|e| format!("not seconds: {e}"))?,
    };
    let (min, max) = (
        std::time::Duration::from_millis(500),
        std::time::Duration::from_secs(3600),
    );
    if d < min || d > max {
        return Err("must be 0.5 to 3600 seconds".to_owned());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_values_pass_and_bad_ones_say_why() {
        assert_eq!(destination_id("a.b-c_1").unwrap(), "a.b-c_1");
        assert!(destination_id("../x").unwrap_err().contains("letters"));
        assert!(tag("env=prod").is_ok());
        assert_eq!(tag("noequals").unwrap_err(), "expected KEY=VALUE");
        assert!(tag("aws:x=1").unwrap_err().contains("reserved"));
        assert!(nonce_hex("abcd").is_ok());
        assert!(nonce_hex("xyz").unwrap_err().starts_with("not hex"));
        assert!(nonce_hex("").is_err());
        assert!(nonce_hex(&"ab".repeat(513)).is_err());
        assert!(input_file("-").is_ok());
        assert_eq!(
            input_file("/nonexistent/x.env").unwrap_err(),
            "no such file"
        );
        assert!(existing_file("/").unwrap_err().contains("directory"));
        assert!(url("https://127.0.0.1:4566").is_ok());
        assert!(url("https://[::1]:4566/x").is_ok());
        assert!(url("127.0.0.1:4566").is_err());
        assert!(url("https://h:port").unwrap_err().contains("port"));
        assert!(url("https://").is_err());
        assert_eq!(history_limit("1"), Ok(1));
        assert_eq!(history_limit("1000"), Ok(1000));
        assert!(history_limit("0").unwrap_err().contains("1 to 1000"));
        assert!(history_limit("1001").is_err());
        assert!(history_limit("-1").is_err());
        assert_eq!(interval("2"), Ok(std::time::Duration::from_secs(2)));
        assert_eq!(interval("0.5"), Ok(std::time::Duration::from_millis(500)));
        assert_eq!(interval("3s"), Ok(std::time::Duration::from_secs(3)));
        assert!(interval("0").is_err());
        assert!(interval("NaN").is_err());
        assert!(interval("2h").is_err());
    }
}
