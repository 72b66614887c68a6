//! What leaves the enclave as logs (issue 12): its own crates at the level `RUST_LOG` sets, and
//! from every other crate (the AWS SDK, hyper, rustls, …) WARN and above only, whatever
//! `RUST_LOG` says; and never a value. The enclave's console (`--log-stderr text`) gets what
//! the parent gets, so its log file is what left.

use crate::fleet::{Fleet, create_roles, destination, rng};
use nitrosync_bundle::{SecretValue, Variables, seal};
use nitrosync_shared::bundle::{SealedBundle, Terms};
use nitrosync_shared::control::{RequestBody, ResponseBody, SyncOutcome, SyncReport};
use nitrosync_tests::{EnclaveControl, StackOptions};

async fn sync(ctl: &mut EnclaveControl, bundle: &SealedBundle) -> SyncReport {
    let req = RequestBody::Sync {
        bundle: nitrosync_shared::frame::encode_payload(bundle).unwrap(),
    };
    match ctl.request(req).await.unwrap() {
        ResponseBody::Sync(r) => r,
        other => panic!("unexpected answer: {other:?}"),
    }
}

/// One event of `tracing_subscriber`'s text format: `<RFC 3339 time> <LEVEL> <target>: …`.
/// `None` for a continuation line of a multi-line message.
fn level_and_target(line: &str) -> Option<(&str, &str)> {
    let mut words = line.split_whitespace();
    let time = words.next()?;
    let is_time = time.len() >= 20
        && time.starts_with(|c: char| c.is_ascii_digit())
        && time.contains('T')
        && time.ends_with('Z');
    if !is_time {
        return None;
    }
    let level = words.next()?;
    let target = words.next()?.strip_suffix(':')?;
    Some((level, target))
}

#[test]
fn log_lines_are_parsed() {
    assert_eq!(
        level_and_target(
            "2026-01-02T03:04:05.678901Z DEBUG nitrosync_enclave::control: control request id=3"
        ),
        Some(("DEBUG", "nitrosync_enclave::control"))
    );
    assert_eq!(
        level_and_target("2026-01-02T03:04:05.678901Z  WARN rustls::conn: an alert"),
        Some(("WARN", "rustls::conn"))
    );
    assert_eq!(level_and_target("    caused by: a reason"), None);
}

#[tokio::test]
async fn a_trace_log_level_lets_out_no_dependency_chatter_and_no_value() {
    let Fleet {
        dir,
        stack,
        desc,
        tenant,
        ..
    } = Fleet::start(StackOptions {
        // Everything, for every crate: the allowlist must hold the dependencies to WARN.
        enclave_rust_log: Some("trace".into()),
        ..Default::default()
    })
    .await;
    let d = destination("logged", 0);
    create_roles(
        dir.path(),
        &desc.saml_metadata,
        &tenant,
        std::slice::from_ref(&d),
    )
    .await;
    let mut canary = [0u8; 16];
    getrandom::fill(&mut canary).unwrap();
    let canary = format!("canary-{}", hex::encode(canary));
    let now = nitrosync_shared::unix_ms(std::time::SystemTime::now());
    let sealed = |version: u64, value: &str| {
        let vars = Variables::from_map(
            [("API_KEY".to_owned(), SecretValue::new(value.to_owned()))]
                .into_iter()
                .collect(),
        );
        seal(
            &tenant,
            &desc.bundle_key,
            d.clone(),
            Terms::write(version, now),
            &vars,
            &mut rng(),
        )
        .unwrap()
    };
    let mut ctl = EnclaveControl::connect(&stack.sockets.control)
        .await
        .unwrap();
    // A full sync with the canary: STS, DescribeSecret, CreateSecret over TLS; an update; and
    // a replay refused after DescribeSecret.
    let v1 = sealed(1, &canary);
    let r = sync(&mut ctl, &v1).await;
    assert_eq!(r.outcome, SyncOutcome::Created, "{r:?}");
    let r = sync(&mut ctl, &sealed(2, &format!("{canary}-2"))).await;
    assert_eq!(r.outcome, SyncOutcome::Updated, "{r:?}");
    let r = sync(&mut ctl, &v1).await;
    assert!(r.error.is_some(), "{r:?}");
    let (enclave_log, parent_log) = (stack.enclave.log.clone(), stack.parent.log.clone());
    // Stopped, so every line is written.
    stack.stop().await.unwrap();

    let enclave = std::fs::read_to_string(&enclave_log).unwrap();
    let events: Vec<(&str, &str)> = enclave.lines().filter_map(level_and_target).collect();
    let ours_verbose = events
        .iter()
        .filter(|(level, target)| {
            ["TRACE", "DEBUG"].contains(level) && target.starts_with("nitrosync_")
        })
        .count();
    assert!(
        ours_verbose > 0,
        "RUST_LOG=trace reached the enclave: its own debug lines are there"
    );
    let chatter: Vec<&str> = enclave
        .lines()
        .filter(|l| {
            level_and_target(l).is_some_and(|(level, target)| {
                !["WARN", "ERROR"].contains(&level) && !target.starts_with("nitrosync_")
            })
        })
        .collect();
    assert!(
        chatter.is_empty(),
        "{} lines below WARN from other crates left the enclave, e.g. {:?}",
        chatter.len(),
        &chatter[..chatter.len().min(5)]
    );
    for (name, text) in [
        ("enclave", enclave.as_str()),
        ("parent", &std::fs::read_to_string(&parent_log).unwrap()),
    ] {
        assert!(!text.contains(&canary), "the value is in the {name}'s log");
    }
}
