//! Cargo's dep-info files: `target/<profile>/<name>.d` lists the files a binary was built from,
//! as a Makefile rule (`target: dep1 dep2 ...`, a space in a path escaped as `\ `). The harness
//! reads it to refuse a binary that is older than one of its sources, so an end-to-end test never
//! runs yesterday's program.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The rules of a Makefile-style dep-info text, each as its words with escapes undone: `\ ` is a
/// space inside a word, a backslash at the end of a line continues the rule on the next, and
/// lines starting with `#` are comments (rustc writes `# env-dep:` lines).
fn rules(text: &str) -> Vec<Vec<String>> {
    let mut rules = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut chars = text.chars().peekable();
    let end_word = |word: &mut String, words: &mut Vec<String>| {
        if !word.is_empty() {
            words.push(std::mem::take(word));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '#' if word.is_empty() && words.is_empty() => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '\\' => match chars.peek() {
                Some(' ') => {
                    word.push(' ');
                    chars.next();
                }
                Some('\n') => {
                    chars.next();
                    end_word(&mut word, &mut words);
                }
                Some('\r') => {
                    chars.next();
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    end_word(&mut word, &mut words);
                }
                _ => word.push('\\'),
            },
            '\n' => {
                end_word(&mut word, &mut words);
                if !words.is_empty() {
                    rules.push(std::mem::take(&mut words));
                }
            }
            c if c.is_whitespace() => end_word(&mut word, &mut words),
            c => word.push(c),
        }
    }
    end_word(&mut word, &mut words);
    if !words.is_empty() {
        rules.push(words);
    }
    rules
}

/// Every dependency named in a dep-info text: the words after each rule's `target:`.
pub(crate) fn dependencies(text: &str) -> Vec<PathBuf> {
    let mut deps = Vec::new();
    for rule in rules(text) {
        let Some(colon) = rule.iter().position(|w| w.ends_with(':')) else {
            continue;
        };
        deps.extend(rule.iter().skip(colon + 1).map(PathBuf::from));
    }
    deps
}

/// Why a binary is older than its sources.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Stale {
    /// The source at fault.
    pub source: PathBuf,
    /// `true` if it no longer exists (moved or removed), else it is newer than the binary.
    pub missing: bool,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.missing {
            write!(f, "its source {} no longer exists", self.source.display())
        } else {
            write!(f, "its source {} is newer", self.source.display())
        }
    }
}

/// The dep-info file Cargo writes next to `binary`.
pub(crate) fn dep_info_path(binary: &Path) -> PathBuf {
    let mut name = binary.file_name().unwrap_or_default().to_owned();
    name.push(".d");
    binary.with_file_name(name)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The first source of `binary` that was changed after it was built, or has gone since, by its
/// dep-info file; relative paths in that file are taken from `base`. `None` when the binary is
/// up to date, and also when there is no dep-info file to tell (nothing can be said then).
///
/// This is Cargo's own rule: it rebuilds a unit when a file its dep-info lists is newer than the
/// last build, or missing.
pub(crate) fn stale_source(binary: &Path, base: &Path) -> Option<Stale> {
    let text = std::fs::read_to_string(dep_info_path(binary)).ok()?;
    let built = modified(binary)?;
    dependencies(&text).into_iter().find_map(|dep| {
        let source = base.join(dep);
        match modified(&source) {
            None => Some(Stale {
                source,
                missing: true,
            }),
            Some(changed) if changed > built => Some(Stale {
                source,
                missing: false,
            }),
            Some(_) => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn paths(v: &[&str]) -> Vec<PathBuf> {
        v.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn one_rule_as_cargo_writes_it() {
        let text = "/w/target/debug/nitrosync: /w/cli/src/lib.rs /w/shared/src/lib.rs\n";
        assert_eq!(
            dependencies(text),
            paths(&["/w/cli/src/lib.rs", "/w/shared/src/lib.rs"])
        );
    }

    #[test]
    fn escaped_spaces_stay_inside_a_path() {
        let text = "/my\\ work/target/debug/x: /my\\ work/src/main.rs /my\\ work/a\\ \\ b.rs /c.rs";
        assert_eq!(
            dependencies(text),
            paths(&["/my work/src/main.rs", "/my work/a  b.rs", "/c.rs"])
        );
    }

    #[test]
    fn several_rules_continuations_and_comments() {
        let text = "# env-dep:CARGO_PKG_VERSION=0.1.0\n\
                    /t/x: /s/a.rs \\\n  /s/b.rs\n\
                    \n\
                    /t/x.dwp: /s/c.rs\r\n\
                    /s/a.rs:\n\
                    /s/b.rs:\n";
        assert_eq!(
            dependencies(text),
            paths(&["/s/a.rs", "/s/b.rs", "/s/c.rs"])
        );
    }

    #[test]
    fn other_backslashes_and_texts_without_rules() {
        assert_eq!(dependencies("/t/x: /s/a\\b.rs"), paths(&["/s/a\\b.rs"]));
        assert!(dependencies("").is_empty());
        assert!(dependencies("no rule here\n").is_empty());
        assert!(dependencies("/t/x:\n").is_empty());
    }

    #[test]
    fn a_binary_older_than_a_source_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        let bin = base.join("my bin");
        let (old, new) = (base.join("old.rs"), base.join("new source.rs"));
        // Fixed times: the test does not depend on the clock.
        let epoch = SystemTime::UNIX_EPOCH;
        let set = |p: &Path, secs: u64| {
            let f = std::fs::File::create(p).unwrap();
            f.set_modified(epoch + Duration::from_secs(secs)).unwrap();
        };
        set(&old, 1_000);
        set(&bin, 2_000);
        set(&new, 2_000);
        assert_eq!(
            stale_source(&bin, base),
            None,
            "no dep-info file: no verdict"
        );

        std::fs::write(dep_info_path(&bin), "/t/my\\ bin: old.rs new\\ source.rs\n").unwrap();
        assert_eq!(stale_source(&bin, base), None, "same age is fresh");

        set(&new, 3_000);
        assert_eq!(
            stale_source(&bin, base),
            Some(Stale {
                source: new.clone(),
                missing: false
            })
        );

        set(&new, 1_500);
        std::fs::remove_file(&old).unwrap();
        assert_eq!(
            stale_source(&bin, base),
            Some(Stale {
                source: old,
                missing: true
            })
        );
    }
}
