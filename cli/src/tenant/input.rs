//! The environment that `env push` and `bundle seal` seal: read once, from a file, a pipe or
//! standard input (`--file -`), and checked from that one copy before anything is sealed.
//!
//! A second read of a pipe (`/dev/stdin`, `<(…)`) is empty, so nothing here ever opens the input
//! twice. Two inputs are refused because of what they would do to the secret: one with no
//! variable (the secret would become `{}`), unless the tenant passes `--allow-empty`; and one
//! whose JSON, rendered as the enclave renders it, passes Secrets Manager's limit, which the
//! enclave would refuse only after the bundle had been sealed and submitted. This module owns the
//! reading and the checks, not the parsing ([`super::dotenv`]) nor the sealing.

use super::dotenv::{self, DotenvError};
use crate::{CliError, LocalCode, fail};
use nitrosync_bundle::{SecretValue, Variables};
use nitrosync_shared::bundle::MAX_SECRET_BYTES;
use std::io::{IsTerminal as _, Read};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The `--file` value that names standard input.
pub const STDIN_ARG: &str = "-";

/// The most bytes read from an input. Comments and blank lines do not reach the secret, so a
/// file may be larger than [`MAX_SECRET_BYTES`]; past this it is not a dotenv file (`/dev/zero`,
/// a log piped by mistake) and reading on would only fill memory.
pub const MAX_INPUT_BYTES: usize = 1 << 20;

/// Where the environment comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSource {
    /// `--file -`.
    Stdin,
    /// `--file PATH`: a regular file, or a pipe by name (`/dev/stdin`, `<(…)`).
    File(PathBuf),
}

impl EnvSource {
    /// The source a `--file` value names.
    pub fn from_arg(path: &Path) -> Self {
        if path == Path::new(STDIN_ARG) {
            Self::Stdin
        } else {
            Self::File(path.to_owned())
        }
    }
}

impl std::fmt::Display for EnvSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stdin => f.write_str("standard input (--file -)"),
            Self::File(p) => write!(f, "--file {}", p.display()),
        }
    }
}

/// Why an environment was not sealed. Every variant names the input; none quotes a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvInputError {
    /// The input could not be opened or read (a wrong path, a permission, a directory).
    #[error("cannot read {input}")]
    Read {
        /// The input.
        input: EnvSource,
        /// What the system said.
        #[source]
        cause: std::io::Error,
    },
    /// The input is longer than [`MAX_INPUT_BYTES`]; reading stopped there.
    #[error("{input} is longer than {limit} bytes: not a dotenv file, nothing was sealed")]
    TooLong {
        /// The input.
        input: EnvSource,
        /// [`MAX_INPUT_BYTES`].
        limit: usize,
    },
    /// The input is not UTF-8 text.
    #[error("{input} is not UTF-8 text (byte {offset})")]
    NotText {
        /// The input.
        input: EnvSource,
        /// Where the first invalid byte is.
        offset: usize,
    },
    /// A line is not dotenv.
    #[error("{input}")]
    Parse {
        /// The input.
        input: EnvSource,
        /// The line and what is wrong with it.
        #[source]
        cause: DotenvError,
    },
    /// No variable, and `--allow-empty` was not given: sealing it would empty the secret.
    #[error(
        "{input} holds no variable: the secret would become {{}} and lose every variable it has; pass --allow-empty if that is what you want"
    )]
    Empty {
        /// The input.
        input: EnvSource,
    },
    /// The variables' JSON is larger than Secrets Manager accepts.
    #[error(
        "{input}: the secret would be {size} bytes of JSON, more than the {limit} Secrets Manager accepts (MaximumSecretSizeExceeded); nothing was sealed"
    )]
    SecretTooLarge {
        /// The input.
        input: EnvSource,
        /// The JSON's length in bytes, as the enclave would write it.
        size: usize,
        /// [`MAX_SECRET_BYTES`].
        limit: usize,
    },
}

impl EnvInputError {
    /// The error's code: a missing `--allow-empty` is a usage error (exit 2); the rest are the
    /// input's (exit 1).
    pub fn code(&self) -> LocalCode {
        match self {
            Self::Empty { .. } => LocalCode::EmptyEnvironment,
            Self::Read { .. } => LocalCode::InputRead,
            Self::SecretTooLarge { .. } => LocalCode::MaximumSecretSizeExceeded,
            _ => LocalCode::InputInvalid,
        }
    }

    /// The exit code ([`LocalCode::exit`]).
    pub fn exit_code(&self) -> u8 {
        self.code().exit()
    }
}

impl From<EnvInputError> for CliError {
    fn from(e: EnvInputError) -> Self {
        fail(e.code(), crate::error_chain(&e))
    }
}

/// Reads `source` once and checks it: see [`check`].
pub fn read_environment(source: &EnvSource, allow_empty: bool) -> Result<Variables, EnvInputError> {
    let bytes = match source {
        EnvSource::Stdin => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                note!("reading the environment from standard input; end it with Ctrl-D");
            }
            read_bounded(stdin.lock(), source)?
        }
        EnvSource::File(path) => {
            let file = std::fs::File::open(path).map_err(|cause| EnvInputError::Read {
                input: source.clone(),
                cause,
            })?;
            read_bounded(file, source)?
        }
    };
    check(source, &bytes, allow_empty)
}

/// Reads `r` to its end, at most [`MAX_INPUT_BYTES`], into one buffer allocated up front, so no
/// reallocation leaves a copy of a value behind; the buffer is zeroized when dropped.
fn read_bounded(r: impl Read, input: &EnvSource) -> Result<Zeroizing<Vec<u8>>, EnvInputError> {
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_INPUT_BYTES + 1));
    let limit = u64::try_from(MAX_INPUT_BYTES + 1).unwrap_or(u64::MAX);
    r.take(limit)
        .read_to_end(&mut buf)
        .map_err(|cause| EnvInputError::Read {
            input: input.clone(),
            cause,
        })?;
    if buf.len() > MAX_INPUT_BYTES {
        return Err(EnvInputError::TooLong {
            input: input.clone(),
            limit: MAX_INPUT_BYTES,
        });
    }
    Ok(buf)
}

/// Parses the dotenv `bytes` of `input` and checks the result: an environment with no variable
/// is refused unless `allow_empty`, and one whose JSON (rendered as the enclave renders it)
/// passes [`MAX_SECRET_BYTES`] is refused.
pub fn check(
    input: &EnvSource,
    bytes: &[u8],
    allow_empty: bool,
) -> Result<Variables, EnvInputError> {
    let text = std::str::from_utf8(bytes).map_err(|e| EnvInputError::NotText {
        input: input.clone(),
        offset: e.valid_up_to(),
    })?;
    let map = dotenv::parse(text).map_err(|cause| EnvInputError::Parse {
        input: input.clone(),
        cause,
    })?;
    if map.is_empty() && !allow_empty {
        return Err(EnvInputError::Empty {
            input: input.clone(),
        });
    }
    let vars = Variables::from_map(
        map.into_iter()
            .map(|(k, v)| (k, SecretValue::new(v)))
            .collect(),
    );
    let size = nitrosync_bundle::render_json(&vars).len();
    if size > MAX_SECRET_BYTES {
        return Err(EnvInputError::SecretTooLarge {
            input: input.clone(),
            size,
            limit: MAX_SECRET_BYTES,
        });
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> EnvSource {
        EnvSource::File(PathBuf::from("app.env"))
    }

    /// `{"A":"…"}` is 8 bytes around the value.
    fn one_variable_of_json_size(size: usize) -> String {
        format!("A={}\n", "x".repeat(size - 8))
    }

    #[test]
    fn dash_is_standard_input_and_anything_else_a_path() {
        assert_eq!(EnvSource::from_arg(Path::new("-")), EnvSource::Stdin);
        assert_eq!(
            EnvSource::from_arg(Path::new("/dev/stdin")),
            EnvSource::File(PathBuf::from("/dev/stdin"))
        );
        assert_eq!(
            EnvSource::from_arg(Path::new("./-")),
            EnvSource::File(PathBuf::from("./-"))
        );
    }

    #[test]
    fn an_empty_environment_is_a_usage_error_naming_the_input_and_the_flag() {
        for body in ["", "\n\n", "# only a comment\n", "\u{feff}\n  \n# x=1\n"] {
            let e = check(&file(), body.as_bytes(), false).unwrap_err();
            assert!(matches!(e, EnvInputError::Empty { .. }), "{body:?}: {e}");
            assert_eq!(e.exit_code(), crate::EXIT_USAGE);
            let text = e.to_string();
            assert!(text.contains("--file app.env"), "{text}");
            assert!(text.contains("--allow-empty"), "{text}");
        }
        let e = check(&EnvSource::Stdin, b"", false).unwrap_err();
        assert!(e.to_string().contains("standard input"), "{e}");
    }

    #[test]
    fn allow_empty_lets_an_empty_environment_through() {
        let vars = check(&file(), b"# nothing\n", true).unwrap();
        assert!(vars.is_empty());
        assert_eq!(&*nitrosync_bundle::render_json(&vars), b"{}");
    }

    #[test]
    fn the_limit_is_the_enclaves_rendered_json_inclusive() {
        let fits = one_variable_of_json_size(MAX_SECRET_BYTES);
        let vars = check(&file(), fits.as_bytes(), false).unwrap();
        assert_eq!(nitrosync_bundle::render_json(&vars).len(), MAX_SECRET_BYTES);

        let over = one_variable_of_json_size(MAX_SECRET_BYTES + 1);
        let e = check(&file(), over.as_bytes(), false).unwrap_err();
        let EnvInputError::SecretTooLarge { size, limit, .. } = e else {
            panic!("{e}");
        };
        assert_eq!((size, limit), (MAX_SECRET_BYTES + 1, MAX_SECRET_BYTES));
        let text = e.to_string();
        assert!(text.contains("65537") && text.contains("65536"), "{text}");
        assert_eq!(e.exit_code(), crate::EXIT_FAILED);
    }

    #[test]
    fn escaping_counts_towards_the_limit() {
        // Each `"` of a single-quoted value renders as `\"`: the file is half the limit, the
        // JSON passes it.
        let body = format!("Q='{}'\n", "\"".repeat(MAX_SECRET_BYTES / 2));
        assert!(body.len() < MAX_SECRET_BYTES / 2 + 8);
        let e = check(&file(), body.as_bytes(), false).unwrap_err();
        assert!(
            matches!(e, EnvInputError::SecretTooLarge { size, .. } if size > MAX_SECRET_BYTES),
            "{e}"
        );
    }

    #[test]
    fn errors_never_quote_a_value() {
        let e = check(&file(), b"GOOD=hunter2\nnot a line hunter2\n", false).unwrap_err();
        let text = crate::error_chain(&e);
        assert!(text.contains("line 2"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let e = check(&file(), b"A=\xff\xfe\n", false).unwrap_err();
        assert!(matches!(e, EnvInputError::NotText { offset: 2, .. }), "{e}");
    }

    #[test]
    fn the_input_is_read_to_its_end_and_no_further_than_the_cap() {
        let body = b"A=1\nB=2\n";
        let bytes = read_bounded(&body[..], &file()).unwrap();
        assert_eq!(&bytes[..], body);
        let endless = std::io::repeat(b'#');
        let e = read_bounded(endless, &file()).unwrap_err();
        assert!(matches!(e, EnvInputError::TooLong { .. }), "{e}");
        let at_cap = vec![b'#'; MAX_INPUT_BYTES];
        assert_eq!(
            read_bounded(&at_cap[..], &file()).unwrap().len(),
            MAX_INPUT_BYTES
        );
    }

    #[test]
    fn a_missing_file_names_it_and_the_cause() {
        let missing = EnvSource::File(PathBuf::from("/nonexistent/dir/app.env"));
        let e = read_environment(&missing, false).unwrap_err();
        let cli = CliError::from(e);
        assert_eq!(cli.exit, crate::EXIT_FAILED);
        assert_eq!(cli.code, "InputRead");
        assert!(
            cli.message
                .starts_with("cannot read --file /nonexistent/dir/app.env: "),
            "{}",
            cli.message
        );
    }

    #[test]
    fn a_file_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.env");
        std::fs::write(&path, "A=1\nexport B='two'\n").unwrap();
        let vars = read_environment(&EnvSource::File(path), false).unwrap();
        assert_eq!(
            &*nitrosync_bundle::render_json(&vars),
            br#"{"A":"1","B":"two"}"#
        );
    }
}
