//! The real `nitrosync-init` binary as PID 1, in new user, PID, mount and network namespaces
//! (`unshare`), so that it can mount, bring up `lo`, reap, and "reboot" without touching the
//! machine: `reboot(2)` in a PID namespace only kills that namespace's init.
//!
//! The command comes from an argument file bind-mounted at `/etc/nitrosync/enclave.args`
//! inside the namespace: a shell that leaves an orphan, waits until init has reaped it, asks
//! init (PID 1) for SIGTERM, and exits 7 from its trap once init has passed the signal on.
//! Skipped, with a note, where unprivileged user namespaces are not available.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn unshare() -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--user",
        "--map-root-user",
        "--pid",
        "--fork",
        "--mount",
        "--mount-proc",
        "--net",
    ]);
    cmd
}

fn namespaces_available() -> bool {
    unshare()
        .args(["true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("etc/nitrosync")).unwrap();
    dir
}

#[test]
fn as_pid1_it_runs_the_command_reaps_forwards_and_stops() {
    if !namespaces_available() {
        eprintln!("skipped: unprivileged user namespaces (unshare --user) are not available");
        return;
    }
    let dir = scratch("pid1");
    let etc = dir.join("etc");
    // The dynamic loader of /bin/sh reads /etc/ld.so.cache, which the bind mount hides.
    if std::path::Path::new("/etc/ld.so.cache").exists() {
        std::fs::copy("/etc/ld.so.cache", etc.join("ld.so.cache")).unwrap();
    }
    // The program writes to standard error, like init, so that one pipe keeps the order.
    let script = "trap 'echo program got TERM >&2; exit 7' TERM; \
                  (sleep 0.1 & echo $! > /tmp/orphan); \
                  while kill -0 $(cat /tmp/orphan) 2>/dev/null; do sleep 0.02; done; \
                  echo program saw the orphan reaped >&2; \
                  kill -TERM 1; \
                  while :; do sleep 0.02; done";
    std::fs::write(
        etc.join("nitrosync/enclave.args"),
        format!("# test command\n/bin/sh\n-c\n{script}\n"),
    )
    .unwrap();

    let mut child = unshare()
        .args([
            "sh",
            "-c",
            "mount --bind \"$0\" /etc && exec \"$1\" from-the-kernel-cmdline",
        ])
        .arg(&etc)
        .arg(env!("CARGO_BIN_EXE_nitrosync-init"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("nitrosync-init did not stop within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let log = format!("{out}{err}");

    let starting = format!(
        "nitrosync-init: nitrosync-init {} starting",
        env!("CARGO_PKG_VERSION")
    );
    let expect_in_order = [
        starting.as_str(),
        "nitrosync-init: mounted tmpfs on /tmp (mode=1777,size=16m)",
        "nitrosync-init: loopback interface lo is up",
        "heartbeat",
        "nitrosync-init: ignoring 1 argument(s) from the kernel command line",
        "nitrosync-init: command (/etc/nitrosync/enclave.args): /bin/sh -c trap",
        "nitrosync-init: started /bin/sh as process",
        "nitrosync-init: reaped orphan process",
        "program saw the orphan reaped",
        "nitrosync-init: passed SIGTERM on to the program",
        "program got TERM",
        "nitrosync-init: /bin/sh exited with status 7; stopping the enclave",
    ];
    let mut from = 0;
    for needle in expect_in_order {
        match log[from..].find(needle) {
            Some(at) => from += at + needle.len(),
            None => panic!("missing {needle:?} (in this order) in:\n{log}"),
        }
    }
    assert!(
        !log.contains("cannot stop the machine"),
        "reboot(2) must end the namespace:\n{log}"
    );
    // reboot(2) in a PID namespace kills its init and reports SIGHUP (restart) or SIGINT
    // (power-off) to the parent; unshare passes that on.
    use std::os::unix::process::ExitStatusExt as _;
    assert!(
        matches!(status.signal(), Some(1 | 2)) || matches!(status.code(), Some(129 | 130)),
        "{status:?}\n{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
