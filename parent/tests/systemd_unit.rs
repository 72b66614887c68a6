//! The shipped systemd files, checked by systemd's own tools (issue 13):
//!
//! - `systemd-analyze security --offline=true` scores `dist/nitrosync-parent.service` at most
//!   2.0 (the `--threshold=20` exit code and the printed score must both agree);
//! - `systemd-analyze verify` finds no unknown key or bad value in it (on a copy whose
//!   `ExecStart=` names the binary cargo built, since verify checks that the program exists);
//! - `systemd-sysusers` makes the `nitrosync` user and group of `dist/nitrosync.sysusers.conf`
//!   in a scratch root, and they are the `User=` and `Group=` of the unit.
//!
//! Each test is skipped, with a note on stderr, where its tool is not installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The highest exposure the unit may have (`systemd-analyze security` prints one decimal).
const MAX_EXPOSURE: f64 = 2.0;

fn dist(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../dist")
        .join(file)
}

/// The tool's path, or `None` after printing that the check is skipped.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!("{name} is not installed; this check of the systemd unit was SKIPPED");
    }
    found
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The value of the unit's last `key=` line (the last one wins, as in systemd).
fn service_setting(unit: &str, key: &str) -> Option<String> {
    let prefix = format!("{key}=");
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(&prefix))
        .next_back()
        .map(|v| v.trim().to_owned())
}

#[test]
fn unit_scores_at_most_2_0() {
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    let unit = dist("nitrosync-parent.service");
    let out = run(Command::new(&analyze)
        .args(["security", "--offline=true", "--threshold=20", "--no-pager"])
        .arg(&unit));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // "→ Overall exposure level for nitrosync-parent.service: 1.3 OK 🙂"
    let score: f64 = stdout
        .lines()
        .find_map(|l| l.split("Overall exposure level for ").nth(1))
        .and_then(|rest| rest.split(": ").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure in the output:\n{}", text(&out)));
    let remaining: Vec<&str> = stdout.lines().filter(|l| l.starts_with('✗')).collect();
    eprintln!(
        "systemd-analyze security: {score} for {}; exposures left:\n{}",
        unit.display(),
        remaining.join("\n")
    );
    assert!(
        score <= MAX_EXPOSURE,
        "the unit scores {score}, above {MAX_EXPOSURE}:\n{}",
        remaining.join("\n")
    );
    assert!(
        out.status.success(),
        "--threshold=20 failed though the score is {score}:\n{}",
        text(&out)
    );
}

#[test]
fn unit_verifies() {
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    let unit = std::fs::read_to_string(dist("nitrosync-parent.service")).unwrap();
    let shipped = "ExecStart=/usr/local/bin/nitrosync-parent ";
    assert!(
        unit.contains(shipped),
        "ExecStart changed; update this test"
    );
    let built = format!("ExecStart={} ", env!("CARGO_BIN_EXE_nitrosync-parent"));
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("nitrosync-parent.service");
    std::fs::write(&copy, unit.replace(shipped, &built)).unwrap();
    let out = run(Command::new(&analyze)
        .args(["verify", "--no-pager"])
        .arg(&copy)
        .env("SYSTEMD_LOG_COLOR", "0"));
    // verify exits 0 on an unknown key or an unparsable value and only prints
    // "<file>:<line>: …" for it, so any line about the file is a failure.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("nitrosync-parent.service"))
        .collect();
    assert!(
        out.status.success() && about_unit.is_empty(),
        "systemd-analyze verify:\n{}",
        text(&out)
    );
}

#[test]
fn sysusers_makes_the_units_user() {
    let unit = std::fs::read_to_string(dist("nitrosync-parent.service")).unwrap();
    assert_eq!(service_setting(&unit, "User").as_deref(), Some("nitrosync"));
    assert_eq!(
        service_setting(&unit, "Group").as_deref(),
        Some("nitrosync")
    );
    // The install comment names the file, so an operator finds it.
    assert!(unit.contains("nitrosync.sysusers.conf"));
    let Some(sysusers) = tool("systemd-sysusers") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("etc")).unwrap();
    let out = run(Command::new(&sysusers)
        .arg(format!("--root={}", root.path().display()))
        .arg(dist("nitrosync.sysusers.conf")));
    assert!(out.status.success(), "systemd-sysusers:\n{}", text(&out));
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    let group = std::fs::read_to_string(root.path().join("etc/group")).unwrap();
    let user: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("nitrosync:"))
        .unwrap_or_else(|| panic!("no nitrosync user:\n{passwd}"))
        .split(':')
        .collect();
    let gid = group
        .lines()
        .find(|l| l.starts_with("nitrosync:"))
        .unwrap_or_else(|| panic!("no nitrosync group:\n{group}"))
        .split(':')
        .nth(2)
        .unwrap();
    assert_eq!(user[3], gid, "the user's primary group is nitrosync");
    let uid: u32 = user[2].parse().unwrap();
    assert!((1..1000).contains(&uid), "a system user's uid, not {uid}");
    assert!(user[6].ends_with("nologin"), "no login shell: {}", user[6]);
}
