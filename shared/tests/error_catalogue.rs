//! `docs/errors.md` documents every sync error code, and only those: each `ErrorCode` has a
//! `### `CODE`` section in "Sync error codes" and a row in its table, the section states the
//! code's remedy word for word and whether it is retried, and no heading or row names a code
//! that no longer exists. The list comes from `ErrorCode::ALL`, and `ALL` itself is checked
//! against the enum's declaration, so a new variant cannot be left out of either.

use nitrosync_shared::ErrorCode;
use std::collections::BTreeSet;
use std::path::Path;

const SECTION: &str = "## Sync error codes";

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The text of the "Sync error codes" section, up to the next `## ` heading.
fn section(doc: &str) -> &str {
    let start = doc
        .find(&format!("\n{SECTION}\n"))
        .unwrap_or_else(|| panic!("docs/errors.md has no {SECTION:?} section"));
    let body = &doc[start + SECTION.len() + 2..];
    body.find("\n## ").map_or(body, |end| &body[..end])
}

/// `### `CODE`` subsections: (code, text up to the next `### `).
fn subsections(section: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    for part in section.split("\n### ").skip(1) {
        let (heading, text) = part.split_once('\n').unwrap_or((part, ""));
        let code = heading.trim().trim_matches('`').to_owned();
        out.push((code, text.to_owned()));
    }
    out
}

/// The codes in the first column of the section's table (before the first subsection).
fn table_codes(section: &str) -> Vec<String> {
    let table = section.split("\n### ").next().unwrap_or_default();
    table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`'))
        .map(|(code, _)| code.to_owned())
        .collect()
}

/// The variants as declared in `src/error_code.rs`.
fn declared_variants() -> BTreeSet<String> {
    let src = read("src/error_code.rs");
    let start = src
        .find("pub enum ErrorCode {")
        .expect("pub enum ErrorCode in src/error_code.rs");
    let body = &src[start..];
    let body = &body[body.find('{').unwrap() + 1..body.find("\n}").unwrap()];
    body.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("//") && !l.starts_with("#[") && !l.is_empty())
        .map(|l| l.trim_end_matches(',').to_owned())
        .collect()
}

#[test]
fn all_lists_every_declared_variant() {
    let all: BTreeSet<String> = ErrorCode::ALL
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    assert_eq!(
        all.len(),
        ErrorCode::ALL.len(),
        "ErrorCode::ALL repeats a code"
    );
    assert_eq!(
        all,
        declared_variants(),
        "ErrorCode::ALL differs from the variants of enum ErrorCode"
    );
}

#[test]
fn the_catalogue_documents_exactly_the_error_codes() {
    let doc = read("../docs/errors.md");
    let section = section(&doc);
    let codes: BTreeSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();

    let subs = subsections(section);
    let headings: Vec<&str> = subs.iter().map(|(c, _)| c.as_str()).collect();
    for h in &headings {
        assert!(
            codes.contains(h),
            "docs/errors.md documents {h:?}, which is not an ErrorCode (any more)"
        );
    }
    for code in &codes {
        let n = headings.iter().filter(|h| *h == code).count();
        assert_eq!(
            n, 1,
            "docs/errors.md has {n} `### `{code}`` sections; want 1"
        );
    }

    let rows = table_codes(section);
    for r in &rows {
        assert!(
            codes.contains(r.as_str()),
            "the table in docs/errors.md names {r:?}, which is not an ErrorCode (any more)"
        );
    }
    for code in &codes {
        let n = rows.iter().filter(|r| r == code).count();
        assert_eq!(
            n, 1,
            "the table in docs/errors.md has {n} rows for {code}; want 1"
        );
    }
}

#[test]
fn each_entry_states_the_codes_remedy_and_retry_rule() {
    let doc = read("../docs/errors.md");
    let subs = subsections(section(&doc));
    for code in ErrorCode::ALL {
        let (_, text) = subs
            .iter()
            .find(|(c, _)| c == code.as_str())
            .unwrap_or_else(|| panic!("no section for {code}"));
        // Markdown may wrap a line: compare with whitespace collapsed.
        let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat(text).contains(&flat(code.remedy())),
            "the section of {code} does not quote its remedy() word for word: {:?}",
            code.remedy()
        );
        let retried = if code.is_retryable() { "yes" } else { "no" };
        assert!(
            text.contains(&format!("- **Retried:** {retried}")),
            "the section of {code} should say `- **Retried:** {retried}`"
        );
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{code}` |")))
            .unwrap();
        assert!(
            row.split('|').nth(3).map(str::trim) == Some(retried),
            "the table row of {code} should say {retried} in its retried column: {row}"
        );
    }
}
