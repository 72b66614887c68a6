//! The store under `kill -9`: every acknowledged submit survives.

use super::tests::{header, key, ok, sealed};
use super::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Fixed time for the child's records (the store does not read the clock).
const T0: u64 = super::tests::T0;

/// Set for the child process of [`kill_9_keeps_every_acknowledged_submit`]: the database path.
const CRASH_CHILD_DB: &str = "NITROSYNC_STORE_CRASH_CHILD_DB";
const CRASH_DESTINATIONS: u8 = 8;

/// This module's test `name` as libtest knows it (the module path without the crate name), so
/// the test binary can run one of its own tests as a child process.
fn test_name(name: &str) -> String {
    let module = module_path!().split_once("::").map_or("", |(_, rest)| rest);
    format!("{module}::{name}")
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

fn crash_id(i: u8) -> String {
    format!("crash-{i}")
}

/// The child: submits new versions round-robin forever, syncing some, and prints `ack ID
/// VERSION` after each submit returns (after COMMIT). Does nothing unless run by the parent test.
#[test]
#[ignore = "child process of kill_9_keeps_every_acknowledged_submit"]
fn crash_child() {
    let Some(db) = std::env::var_os(CRASH_CHILD_DB) else {
        return;
    };
    let store = Store::open(db).unwrap();
    store.reset_pending_on_start().unwrap();
    let mut versions: Vec<u64> = (0..CRASH_DESTINATIONS)
        .map(|i| {
            store
                .get(&key(3, &crash_id(i)))
                .unwrap()
                .map_or(0, |r| r.version)
        })
        .collect();
    let mut out = std::io::stdout().lock();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n: usize = 0;
    while Instant::now() < deadline {
        let i = n % versions.len();
        versions[i] += 1;
        let h = header(3, &crash_id(u8::try_from(i).unwrap()), versions[i]);
        let outcome = store.submit(&sealed(&h, 9), &h, T0).unwrap();
        assert!(matches!(outcome, SubmitOutcome::Accepted { .. }));
        writeln!(out, "ack {i} {}", versions[i]).unwrap();
        out.flush().unwrap();
        if n.is_multiple_of(5) {
            for due in store.due(T0, 3).unwrap() {
                store
                    .record_result(&due.key, due.version, &ok(due.version), T0, T0, None)
                    .unwrap();
            }
        }
        n += 1;
    }
}

#[test]
fn kill_9_keeps_every_acknowledged_submit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    let exe = std::env::current_exe().unwrap();
    let mut acked = vec![0u64; usize::from(CRASH_DESTINATIONS)];
    let mut total = 0usize;
    for round in 0..8 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                &test_name("crash_child"),
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_CHILD_DB, &db)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ack ") {
                    let (i, v) = rest.split_once(' ').unwrap();
                    acks.push((i.parse::<usize>().unwrap(), v.parse::<u64>().unwrap()));
                    let _ = tx.send(());
                }
            }
            acks
        });
        // Wait for the first acknowledgement, then kill at a random moment.
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the child acknowledged nothing");
        let delay = Duration::from_millis(10 + random_u64() % 400);
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "round {round}: the child was killed");
        let acks = reader.join().unwrap();
        total += acks.len();
        eprintln!(
            "round {round}: killed after {delay:?}, {} acks, {status}",
            acks.len()
        );
        for (i, v) in acks {
            assert!(v > acked[i], "versions only grow");
            acked[i] = v;
        }

        let store = Store::open(&db).unwrap();
        assert_eq!(store.integrity_check().unwrap(), vec!["ok".to_owned()]);
        for (i, &want) in acked.iter().enumerate() {
            let id = crash_id(u8::try_from(i).unwrap());
            let stored = store.get(&key(3, &id)).unwrap().map_or(0, |r| r.version);
            assert!(
                stored >= want,
                "round {round}: {id} acknowledged v{want} but stored v{stored}"
            );
        }
    }
    assert!(total >= 6, "{total} acknowledgements");
}
