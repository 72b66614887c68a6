//! Which program init starts, with which arguments and environment.
//!
//! The production command is built in ([`production_argv`]). An image may replace it with
//! [`ARGS_FILE`], which lives in the application ramdisk and is therefore measured in PCR2:
//! one argument per line, the program (an absolute path) first. Surrounding whitespace is
//! trimmed, and empty lines and lines starting with `#` are skipped. A file that exists but is
//! unreadable or invalid is an error, never a silent fall-back to the built-in command.

use std::io::Read as _;
use std::path::{Path, PathBuf};

/// The enclave program.
pub const ENCLAVE_PROGRAM: &str = "/bin/nitrosync-enclave";

/// The enclave program's production arguments: the control listener and the relay on vsock
/// (the defaults of `nitrosync-enclave`, spelled out so the image does not depend on them), and
/// its logs also on the console, which only a debug-mode enclave (all-zero PCRs) exposes.
/// Never `--simulator`.
pub const PRODUCTION_ARGS: [&str; 6] = [
    "--control",
    "vsock:any:5000",
    "--relay",
    "vsock:3:8000",
    "--log-stderr",
    "text",
];

/// The file that replaces the built-in command, if present.
pub const ARGS_FILE: &str = "/etc/nitrosync/enclave.args";

/// Largest argument file accepted.
pub const MAX_ARGS_FILE_LEN: usize = 64 * 1024;

/// The program's whole environment: the kernel hands init variables from its command line, and
/// none of them reaches the program.
pub const PROGRAM_ENV: [(&str, &str); 1] = [("PATH", "/bin:/usr/bin:/sbin:/usr/sbin")];

/// The built-in command line: [`ENCLAVE_PROGRAM`] and [`PRODUCTION_ARGS`].
pub fn production_argv() -> Vec<String> {
    std::iter::once(ENCLAVE_PROGRAM)
        .chain(PRODUCTION_ARGS)
        .map(str::to_owned)
        .collect()
}

/// Where the command came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// [`production_argv`].
    BuiltIn,
    /// The argument file at this path.
    File(PathBuf),
}

/// Why an argument file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArgsFileError {
    /// The file exists but could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_ARGS_FILE_LEN`].
    #[error("the file is larger than {MAX_ARGS_FILE_LEN} bytes")]
    TooLarge,
    /// The file is not UTF-8.
    #[error("the file is not UTF-8 text")]
    NotUtf8,
    /// A line holds a NUL byte, which no argument can.
    #[error("line {line} holds a NUL byte")]
    Nul {
        /// The line number, from 1.
        line: usize,
    },
    /// No argument is left after skipping blank lines and comments.
    #[error("the file names no program")]
    Empty,
    /// The first argument is not an absolute path.
    #[error("the program {program:?} is not an absolute path")]
    RelativeProgram {
        /// The first argument.
        program: String,
    },
}

/// Parses an argument file's contents: see the module documentation for the rules.
pub fn parse_args_file(bytes: &[u8]) -> Result<Vec<String>, ArgsFileError> {
    if bytes.len() > MAX_ARGS_FILE_LEN {
        return Err(ArgsFileError::TooLarge);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ArgsFileError::NotUtf8)?;
    let mut argv = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let arg = line.trim();
        if arg.is_empty() || arg.starts_with('#') {
            continue;
        }
        if arg.contains('\0') {
            return Err(ArgsFileError::Nul { line: i + 1 });
        }
        argv.push(arg.to_owned());
    }
    let program = argv.first().ok_or(ArgsFileError::Empty)?;
    if !program.starts_with('/') {
        return Err(ArgsFileError::RelativeProgram {
            program: program.clone(),
        });
    }
    Ok(argv)
}

/// The command to start: the argument file at `path` if it exists, else the built-in one.
pub fn load(path: &Path) -> Result<(Vec<String>, Source), ArgsFileError> {
    let read_err = |source| ArgsFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((production_argv(), Source::BuiltIn));
        }
        Err(e) => return Err(read_err(e)),
    };
    let mut bytes = Vec::new();
    file.take(u64::try_from(MAX_ARGS_FILE_LEN + 1).unwrap_or(u64::MAX))
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    Ok((parse_args_file(&bytes)?, Source::File(path.to_path_buf())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_command_is_the_vsock_production_one() {
        assert_eq!(
            production_argv().join(" "),
            "/bin/nitrosync-enclave --control vsock:any:5000 --relay vsock:3:8000 --log-stderr text"
        );
        assert!(!production_argv().iter().any(|a| a.contains("sim")));
    }

    #[test]
    fn one_argument_per_line_with_comments_and_blank_lines() {
        let file = b"# the enclave, with a slower write rate\n\
                     /bin/nitrosync-enclave\n\
                     \n\
                     --control\r\n\
                     \x20 vsock:any:5000 \t\n\
                     --writes-per-second\n\
                     10";
        assert_eq!(
            parse_args_file(file).unwrap(),
            [
                "/bin/nitrosync-enclave",
                "--control",
                "vsock:any:5000",
                "--writes-per-second",
                "10"
            ]
        );
        // Spaces inside a line stay: the line is one argument, not split like a shell would.
        assert_eq!(
            parse_args_file(b"/bin/x\n--name=a b\n").unwrap(),
            ["/bin/x", "--name=a b"]
        );
    }

    #[test]
    fn invalid_files_are_refused() {
        assert!(matches!(parse_args_file(b""), Err(ArgsFileError::Empty)));
        assert!(matches!(
            parse_args_file(b"# only a comment\n\n"),
            Err(ArgsFileError::Empty)
        ));
        assert!(matches!(
            parse_args_file(b"nitrosync-enclave\n--control\n"),
            Err(ArgsFileError::RelativeProgram { .. })
        ));
        assert!(matches!(
            parse_args_file(b"/bin/x\na\0b\n"),
            Err(ArgsFileError::Nul { line: 2 })
        ));
        assert!(matches!(
            parse_args_file(b"/bin/x\n\xff\n"),
            Err(ArgsFileError::NotUtf8)
        ));
        let big = vec![b'a'; MAX_ARGS_FILE_LEN + 1];
        assert!(matches!(
            parse_args_file(&big),
            Err(ArgsFileError::TooLarge)
        ));
    }

    #[test]
    fn load_falls_back_only_when_the_file_is_absent() {
        let dir = std::env::temp_dir().join(format!("nitrosync-init-argv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("enclave.args");
        let _ = std::fs::remove_file(&path);
        let (argv, source) = load(&path).unwrap();
        assert_eq!((argv, source), (production_argv(), Source::BuiltIn));

        std::fs::write(&path, "/bin/nitrosync-enclave\n--control\nvsock:any:6000\n").unwrap();
        let (argv, source) = load(&path).unwrap();
        assert_eq!(argv[2], "vsock:any:6000");
        assert_eq!(source, Source::File(path.clone()));

        std::fs::write(&path, "relative\n").unwrap();
        assert!(load(&path).is_err(), "an invalid file is not ignored");
        // A directory where the file should be cannot be read: an error, not the default.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(matches!(load(&path), Err(ArgsFileError::Read { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
