//! A dotenv parser for `nitrosync env push --file vars.env`.
//!
//! Accepted, one per line: `KEY=value`, `export KEY=value`, blank lines and `#` comments.
//! Values may be bare (trailing spaces and a ` #` comment are dropped), single-quoted (taken
//! literally) or double-quoted (with `\n`, `\r`, `\t`, `\"`, `\\` escapes, and may span lines).
//! Errors name the line and what is wrong, and never quote a value: the file holds secrets.

use std::collections::BTreeMap;

/// A line that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct DotenvError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong (never the value).
    pub reason: String,
}

fn err(line: usize, reason: impl Into<String>) -> DotenvError {
    DotenvError {
        line,
        reason: reason.into(),
    }
}

/// Parses a dotenv file into an ordered map. Duplicate keys are errors.
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, DotenvError> {
    let mut out = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let n = i + 1;
        let raw = lines[i];
        i += 1;
        let line = raw.trim_start_matches('\u{feff}').trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let Some((key, rest)) = line.split_once('=') else {
            return Err(err(n, "expected KEY=value"));
        };
        let key = key.trim();
        nitrosync_shared::names::variable_name(key).map_err(|e| err(n, e.to_string()))?;
        let rest = rest.trim_start();
        let value = if let Some(body) = rest.strip_prefix('\'') {
            let Some(end) = body.find('\'') else {
                return Err(err(n, format!("{key}: unterminated single quote")));
            };
            check_trailer(&body[end + 1..], key, n)?;
            body[..end].to_owned()
        } else if let Some(body) = rest.strip_prefix('"') {
            // A double-quoted value may continue on the following lines.
            let mut acc = body.to_owned();
            loop {
                if let Some((value, trailer)) = take_double_quoted(&acc) {
                    check_trailer(trailer, key, n)?;
                    break value;
                }
                if i >= lines.len() {
                    return Err(err(n, format!("{key}: unterminated double quote")));
                }
                acc.push('\n');
                acc.push_str(lines[i]);
                i += 1;
            }
        } else {
            let bare = match rest.find(" #") {
                Some(p) => &rest[..p],
                None => rest,
            };
            let bare = bare.trim_end();
            if bare.contains('"') || bare.contains('\'') {
                return Err(err(
                    n,
                    format!("{key}: quotes inside an unquoted value; quote the whole value"),
                ));
            }
            bare.to_owned()
        };
        if out.insert(key.to_owned(), value).is_some() {
            return Err(err(n, format!("{key} is set twice")));
        }
    }
    Ok(out)
}

fn check_trailer(trailer: &str, key: &str, n: usize) -> Result<(), DotenvError> {
    let t = trailer.trim();
    if t.is_empty() || t.starts_with('#') {
        Ok(())
    } else {
        Err(err(
            n,
            format!("{key}: unexpected text after the closing quote"),
        ))
    }
}

/// Finds the closing quote of a double-quoted value, unescaping on the way. Returns the value
/// and what follows the quote, or `None` if the quote is not closed yet.
fn take_double_quoted(s: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, 'r')) => value.push('\r'),
                Some((_, 't')) => value.push('\t'),
                Some((_, '"')) => value.push('"'),
                Some((_, '\\')) => value.push('\\'),
                Some((_, other)) => {
                    value.push('\\');
                    value.push(other);
                }
                None => return None,
            },
            other => value.push(other),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_common_forms() {
        let text = "# comment\n\nA=1\nexport B = two words  # note\nC='lit $x \\n'\nD=\"esc\\n\\\"q\\\"\"\nE=\"multi\nline\"\nF=\nG=a#b\n";
        let m = parse(text).unwrap();
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "two words");
        assert_eq!(m["C"], "lit $x \\n");
        assert_eq!(m["D"], "esc\n\"q\"");
        assert_eq!(m["E"], "multi\nline");
        assert_eq!(m["F"], "");
        assert_eq!(m["G"], "a#b");
        assert_eq!(m.len(), 7);
    }

    #[test]
    fn bad_lines_are_named_without_their_values() {
        for (text, line, want) in [
            ("A=1\nnot a line\n", 2, "expected KEY=value"),
            ("1A=x\n", 1, "must match"),
            ("A-B=x\n", 1, "must match"),
            ("A='secret-value\n", 1, "unterminated single quote"),
            ("A=\"secret-value\n", 1, "unterminated double quote"),
            ("A='secret-value' tail\n", 1, "after the closing quote"),
            ("A=1\nA=2\n", 2, "set twice"),
            ("A=sec\"ret\n", 1, "quotes inside"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.reason.contains(want), "{text:?}: {e}");
            assert!(!e.to_string().contains("secret"), "{e}");
        }
    }
}
