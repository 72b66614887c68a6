//! `docs/errors.md` lists every local error code of the CLI, and only those, each with the exit
//! code the CLI gives it: the rows of the "Local error codes" table against `LocalCode::ALL`.

use nitrosync_cli::LocalCode;
use std::collections::BTreeMap;

/// `(code, exit)` of each row of the table under `### Local error codes`.
fn documented() -> BTreeMap<String, u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/errors.md");
    let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let start = doc
        .find("\n### Local error codes\n")
        .expect("docs/errors.md has a \"Local error codes\" section");
    let section = &doc[start + 1..];
    let section = &section[..section[4..].find("\n#").map_or(section.len(), |i| i + 4)];
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|l| {
            let (code, rest) = l.split_once('`').expect("a code in backquotes");
            let exit = rest
                .trim_start_matches(" |")
                .split('|')
                .next()
                .unwrap()
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("{code}: exit column: {e}"));
            (code.to_owned(), exit)
        })
        .collect()
}

#[test]
fn the_catalogue_lists_every_local_code_with_its_exit() {
    let documented = documented();
    let actual: BTreeMap<String, u8> = LocalCode::ALL
        .iter()
        .map(|c| (c.as_str().to_owned(), c.exit()))
        .collect();
    assert_eq!(documented, actual, "docs/errors.md, \"Local error codes\"");
}
