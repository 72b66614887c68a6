//! The README's command table matches the CLI (issue 13): every command path clap knows is named
//! in the table, and every command the table names is one clap knows.
//!
//! Only command paths are compared, not descriptions or flags. A row's first cell holds one or
//! more code spans (`nitrosync trust add FILE` / `trust list`), each a path from the root
//! (`nitrosync ` optional), where `a\|b` names alternatives. A span's words are read as
//! subcommands while the command reached has subcommands; at a command without any, the rest
//! are its arguments (`enclave rotate begin\|finish`: `begin` and `finish` are values).

use clap::CommandFactory;
use std::collections::BTreeSet;

/// The README beside this crate's folder.
fn readme() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every subcommand path below `cmd` (`["destination", "list"]`…), `help` and hidden ones left
/// out.
fn clap_paths(cmd: &clap::Command, prefix: &[String], out: &mut BTreeSet<Vec<String>>) {
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" || sub.is_hide_set() {
            continue;
        }
        let mut path = prefix.to_vec();
        path.push(sub.get_name().to_owned());
        out.insert(path.clone());
        clap_paths(sub, &path, out);
    }
}

/// The rows of the table whose header is `| command | what it does |`.
fn table_rows(readme: &str) -> Vec<&str> {
    let mut lines = readme.lines();
    lines
        .by_ref()
        .find(|l| l.trim() == "| command | what it does |")
        .expect("the README has no `| command | what it does |` table");
    lines
        .skip(1) // |---|---|
        .take_while(|l| l.trim_start().starts_with('|'))
        .collect()
}

/// The code spans of a row's first cell (split on `|` that is not escaped as `\|`).
fn first_cell_spans(row: &str) -> Vec<String> {
    const PIPE: &str = "\u{0}";
    let row = row.replace("\\|", PIPE);
    let cell = row
        .split('|')
        .nth(1)
        .unwrap_or_else(|| panic!("no first cell in {row:?}"));
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(|span| span.replace(PIPE, "|"))
        .collect()
}

/// The command paths one span names, checked against clap: `Err` names a word that is not a
/// subcommand where one is expected.
fn span_paths(root: &clap::Command, span: &str) -> Result<Vec<Vec<String>>, String> {
    let words: Vec<&str> = span.split_whitespace().collect();
    let words = match words.first() {
        Some(&"nitrosync") => &words[1..],
        _ => &words[..],
    };
    // (path so far, the command it reaches).
    let mut current: Vec<(Vec<String>, &clap::Command)> = vec![(Vec::new(), root)];
    for word in words {
        let mut next = Vec::new();
        for (path, cmd) in &current {
            let has_subcommands = cmd
                .get_subcommands()
                .any(|s| s.get_name() != "help" && !s.is_hide_set());
            if !has_subcommands {
                // The rest are arguments.
                next.push((path.clone(), *cmd));
                continue;
            }
            for alt in word.split('|') {
                let sub = cmd
                    .find_subcommand(alt)
                    .filter(|s| s.get_name() != "help" && !s.is_hide_set())
                    .ok_or_else(|| {
                        let parent = std::iter::once("nitrosync")
                            .chain(path.iter().map(String::as_str))
                            .collect::<Vec<_>>()
                            .join(" ");
                        format!("`{span}`: `{alt}` is not a subcommand of `{parent}`")
                    })?;
                let mut p = path.clone();
                p.push(sub.get_name().to_owned());
                next.push((p, sub));
            }
        }
        current = next;
    }
    let paths: Vec<Vec<String>> = current.into_iter().map(|(p, _)| p).collect();
    if paths.iter().any(Vec::is_empty) {
        return Err(format!("`{span}` names no command"));
    }
    Ok(paths)
}

#[test]
fn the_readme_command_table_names_exactly_the_cli_commands() {
    let root = nitrosync_cli::Cli::command();
    let mut known = BTreeSet::new();
    clap_paths(&root, &[], &mut known);
    assert!(known.contains(&vec!["destination".to_owned(), "list".to_owned()]));

    let readme = readme();
    let rows = table_rows(&readme);
    assert!(rows.len() > 5, "the command table looks empty: {rows:?}");
    let mut named = BTreeSet::new();
    let mut unknown = Vec::new();
    for row in rows {
        let spans = first_cell_spans(row);
        assert!(!spans.is_empty(), "a row without a command: {row}");
        for span in spans {
            match span_paths(&root, &span) {
                Ok(paths) => {
                    for path in paths {
                        // A path names its parents too.
                        for n in 1..=path.len() {
                            named.insert(path[..n].to_vec());
                        }
                    }
                }
                Err(e) => unknown.push(e),
            }
        }
    }
    let missing: Vec<String> = known
        .difference(&named)
        .map(|p| format!("nitrosync {}", p.join(" ")))
        .collect();
    assert!(
        unknown.is_empty() && missing.is_empty(),
        "the README's command table and the CLI differ.\n\
         Named in the README but not a command: {unknown:#?}\n\
         Commands missing from the README: {missing:#?}"
    );
}

#[test]
fn the_parser_reads_alternatives_arguments_and_unknown_words() {
    let root = nitrosync_cli::Cli::command();
    let path = |s: &[&str]| s.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        span_paths(&root, "nitrosync destination list|show [--json]").unwrap(),
        vec![
            path(&["destination", "list"]),
            path(&["destination", "show"])
        ]
    );
    assert_eq!(
        span_paths(&root, "trust add FILE [--name N]").unwrap(),
        vec![path(&["trust", "add"])]
    );
    // `rotate` has no subcommands: `begin|finish` are its argument's values.
    assert_eq!(
        span_paths(&root, "nitrosync enclave rotate begin|finish").unwrap(),
        vec![path(&["enclave", "rotate"])]
    );
    assert!(span_paths(&root, "nitrosync destination frobnicate").is_err());
    assert!(span_paths(&root, "nitrosync nosuch").is_err());
    assert!(span_paths(&root, "nitrosync").is_err());
    assert_eq!(
        first_cell_spans("| `a b\\|c` / `d` | e `f` |"),
        vec!["a b|c".to_owned(), "d".to_owned()]
    );
}
