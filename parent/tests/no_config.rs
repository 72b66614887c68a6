//! `nitrosync-parent` run by hand with no config file (issue 13): it exits 2 with one line that
//! says what it needs, and creates no directory: not in its working directory or `$HOME`, not
//! where a flag points, and not its production state and runtime directories.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The production directories a config file's defaults name. Those that already exist (a host
/// with the daemon installed) are left out of the check.
const SYSTEM_DIRS: [&str; 2] = ["/var/lib/nitrosync", "/run/nitrosync"];

/// Runs the built daemon in `dir` (also its `$HOME`), with an environment that holds no
/// `NITROSYNC_*` variable, and a backtrace asked for (it must still print one line).
fn parent(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nitrosync-parent"));
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir)
        .env("PATH", "/usr/bin:/bin")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null());
    cmd.output().unwrap()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn no_flags_exits_2_and_creates_nothing() {
    let absent: Vec<&str> = SYSTEM_DIRS
        .into_iter()
        .filter(|d| {
            let exists = Path::new(d).exists();
            if exists {
                eprintln!("{d} exists already; not checking that the daemon leaves it alone");
            }
            !exists
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();

    let out = parent(dir.path(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line:\n{stderr}");
    for want in [
        "nitrosync-parent: not configured",
        "--config",
        "NITROSYNC_CONFIG",
        "/etc/nitrosync/parent.toml",
        "--store",
        "NITROSYNC_STORE",
        "--admin-socket",
        "NITROSYNC_ADMIN_SOCKET",
    ] {
        assert!(stderr.contains(want), "{want:?} not in: {stderr}");
    }
    assert!(out.stdout.is_empty());
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
    for d in &absent {
        assert!(!Path::new(d).exists(), "the daemon created {d}");
    }

    // A store but no admin socket: the same, naming only what is missing, and the store's
    // directory is not made either.
    let out = parent(dir.path(), &["--store", "state/parent.db"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--admin-socket PATH (NITROSYNC_ADMIN_SOCKET)")
            && !stderr.contains("--store PATH"),
        "{stderr}"
    );
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
    for d in &absent {
        assert!(!Path::new(d).exists(), "the daemon created {d}");
    }
}
