//! A hostile parent cannot write to the tenant's terminal. The parent host is the adversary; the
//! admin API's answers are its words. Here a fake daemon on the admin socket, speaking the real
//! wire format (HTTP/1.1, the `nitrosync-api` JSON bodies, checked by decoding them into the
//! API's own types), answers every request with terminal control sequences in each string it
//! can: error codes and messages, history entries, status fields, destination names, the SAML
//! metadata. The real `nitrosync` binary must print none of them raw, in text or in JSON, on
//! standard output or standard error, and must show them as visible escapes.

use nitrosync_api::records::{DestinationKey, DestinationRecord, DestinationState, HistoryRecord};
use nitrosync_tests::{CliOutput, cli_as};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

/// What a hostile parent puts in its strings: an OSC window title, OSC 52 (write the clipboard),
/// clear screen, a cursor move up over the previous line, a carriage return to overwrite this
/// one, BEL, DEL, the 8-bit CSI (U+009B), and a right-to-left override and isolate.
const HOSTILE: &str = "ok\x1b]0;pwned\x07\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[2J\x1b[1A\renclave verified\x7f\u{9b}31m\u{202e}gnp.exe\u{2066}x\u{2069}";

/// Every raw byte or character that must not reach the terminal.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| {
            (c < ' ' && c != '\n')
                || ('\u{7f}'..='\u{9f}').contains(&c)
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)
        })
        .collect()
}

fn assert_clean(what: &str, out: &CliOutput) {
    for (stream, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let raw = raw_controls(text);
        assert!(
            raw.is_empty(),
            "{what}: raw control characters {raw:?} on {stream}: {text:?}"
        );
    }
}

/// The fake daemon's answer to `method path`: (HTTP status, JSON or text body).
fn answer(method: &str, path: &str, tenant: &str) -> (u16, String) {
    let hostile_error = |status: u16| {
        (
            status,
            json!({"error": {"code": format!("Unknown\x1b[2JDestination"), "message": HOSTILE}})
                .to_string(),
        )
    };
    let dest_path = format!("/v1/destinations/{tenant}/app");
    match (method, path) {
        ("GET", "/v1/status") => (200, status().to_string()),
        ("GET", "/v1/enclave/describe") => (200, describe().to_string()),
        ("GET", "/v1/destinations") => (200, json!([destination(tenant)]).to_string()),
        ("GET", p) if p == dest_path => (200, destination(tenant).to_string()),
        ("GET", p) if p.starts_with(&format!("{dest_path}/history")) => {
            (200, json!([history()]).to_string())
        }
        ("POST", p) if p.starts_with(&dest_path) => hostile_error(404),
        _ => hostile_error(500),
    }
}

fn status() -> Value {
    let v = json!({
        "parent": {"version": format!("0.1.0{HOSTILE}"), "uptime_ms": 1000},
        "control": {"endpoint": format!("unix:{HOSTILE}"), "connected": false, "connects": 1,
                    "last_error": HOSTILE},
        "enclave": {"uptime_ms": 5000, "requests_served": 1, "tunnels_opened": 0},
        "enclave_error": null,
        "relay": {"listen": HOSTILE, "regions": [HOSTILE], "stats": {
            "accepted": 1, "active": 0, "connected": 1, "bytes_to_upstream": 1,
            "bytes_to_enclave": 1, "refused": {HOSTILE: 3}}},
        "destinations": {HOSTILE: 1, "synced": 2},
        "store_error": null,
        "syncs": {"succeeded": 2, "failed": 1, HOSTILE: 1},
        "recent_errors": [{"destination": HOSTILE, "tenant": HOSTILE, "code": HOSTILE,
                           "message": HOSTILE, "at_ms": 1_700_000_000_000u64}],
    });
    serde_json::from_value::<nitrosync_api::Status>(v.clone())
        .expect("the fake's status is the API's Status");
    v
}

fn describe() -> Value {
    let v = json!({
        "protocol_version": 1,
        "enclave_version": HOSTILE,
        "mode": "Simulator",
        "tls_trust": {"SimulatorCa": {"sha256": HOSTILE}},
        "bundle_key": "ab".repeat(32),
        "saml_entity_id": HOSTILE,
        "saml_metadata": format!("<md>{HOSTILE}</md>\n"),
        "saml_cert_sha256": HOSTILE,
        "simulator_root_pem": null,
        "attestation": null,
        "attestation_error": HOSTILE,
    });
    serde_json::from_value::<nitrosync_api::EnclaveDescription>(v.clone())
        .expect("the fake's description is the API's EnclaveDescription");
    v
}

fn destination(tenant: &str) -> Value {
    let mut key = [0u8; 32];
    hex::decode_to_slice(tenant, &mut key).unwrap();
    let r = DestinationRecord {
        key: DestinationKey::new(key, "app"),
        config: nitrosync_shared::bundle::DestinationConfig {
            id: HOSTILE.into(),
            region: HOSTILE.into(),
            secret_name: HOSTILE.into(),
            role_arn: HOSTILE.into(),
            saml_provider_arn: HOSTILE.into(),
            kms_key_id: Some(HOSTILE.into()),
            tags: [(HOSTILE.to_owned(), HOSTILE.to_owned())].into(),
            delete_policy: nitrosync_shared::bundle::DeletePolicy::Retain,
        },
        saml_subject: HOSTILE.into(),
        enabled: true,
        state: DestinationState::FailedTerminal,
        version: 2,
        received_at_ms: 0,
        synced_version: Some(1),
        synced_at_ms: Some(1_700_000_000_000),
        next_attempt_at_ms: None,
        attempts: 1,
        last_error: Some(nitrosync_api::records::LastError {
            code: nitrosync_shared::ErrorCode::AccessDenied,
            message: HOSTILE.into(),
            at_ms: 1_700_000_000_000,
        }),
        created_at_ms: 0,
        updated_at_ms: 0,
    };
    serde_json::to_value(&r).unwrap()
}

fn history() -> Value {
    let r = HistoryRecord {
        seq: 1,
        version: 2,
        mode: nitrosync_shared::control::SyncMode::Write,
        outcome: nitrosync_shared::control::SyncOutcome::Failed,
        error: Some(nitrosync_shared::control::SyncError {
            code: nitrosync_shared::ErrorCode::AccessDenied,
            message: HOSTILE.into(),
            retryable: false,
        }),
        aws_version_id: Some(HOSTILE.into()),
        secret_arn: Some(HOSTILE.into()),
        timings: Default::default(),
        started_at_ms: 1_700_000_000_000,
        finished_at_ms: 1_700_000_000_059,
    };
    serde_json::to_value(&r).unwrap()
}

/// Serves HTTP/1.1 on `socket`: one request per connection, answered by [`answer`].
async fn hostile_daemon(socket: PathBuf, tenant: String) {
    let listener = UnixListener::bind(&socket).unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let tenant = tenant.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // The head, then as much body as Content-Length says.
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    assert!(buf.len() < 1 << 20, "request head too long");
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let mut words = head.split_whitespace();
                let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let (status, body) = answer(method, path, &tenant);
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
}

fn public_key(tenant_dir: &Path) -> String {
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(tenant_dir.join("tenant.key")).unwrap())
            .unwrap();
    file["public"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_hostile_daemon_cannot_write_control_sequences_to_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("admin.sock");
    let tenant = dir.path().join("tenant");
    let run = |args: &'static [&'static str]| {
        let (socket, tenant) = (socket.clone(), tenant.clone());
        async move { cli_as(&socket, Some(&tenant), args).await.unwrap() }
    };
    let init = run(&["tenant", "init"]).await;
    assert_eq!(init.code, 0, "{init:?}");
    // A destination file, so the CLI adds its own hint to the daemon's error.
    let create = run(&[
        "destination",
        "create",
        "--id",
        "app",
        "--region",
        "us-east-1",
        "--secret-name",
        "app/env",
        "--role-arn",
        "arn:aws:iam::123456789012:role/r",
        "--saml-provider-arn",
        "arn:aws:iam::123456789012:saml-provider/p",
    ])
    .await;
    assert_eq!(create.code, 0, "{create:?}");
    hostile_daemon(socket.clone(), public_key(&tenant)).await;

    // Text: each command shows the hostile strings escaped, and prints no raw control.
    for (args, code, shown) in [
        (
            &["status"][..],
            0,
            &["\\x1b]0;pwned\\x07", "\\u{202e}", "\\r"][..],
        ),
        (&["destination", "history", "app"], 0, &["\\x1b[2J"]),
        (
            &["destination", "list", "--all-tenants"],
            0,
            &["AccessDenied"],
        ),
        (&["destination", "show", "app"], 0, &["\\x1b]52;c;"]),
        (&["saml-metadata"], 0, &["<md>ok\\x1b]0;pwned"]),
        (&["enclave", "describe"], 0, &["\\x1b]52;c;"]),
        (
            &["destination", "enable", "app"],
            1,
            &["Unknown\\x1b[2JDestination: ok\\x1b]0;pwned"],
        ),
        (&["destination", "retry", "app"], 1, &["\\u{9b}31m"]),
        (
            &["status", "--watch", "--interval", "0.5", "--count", "2"],
            0,
            &["newest errors:", "\\x1b[1A"],
        ),
    ] {
        let out = run(args).await;
        assert_eq!(out.code, code, "{args:?}: {out:?}");
        assert_clean(&format!("{args:?}"), &out);
        let text = format!("{}{}", out.stdout, out.stderr);
        for want in shown {
            assert!(text.contains(want), "{args:?}: no {want:?} in {text}");
        }
    }

    // JSON: the same value, with every control written as a \u escape.
    for (args, code) in [
        (&["status", "--json"][..], 0),
        (&["destination", "history", "app", "--output", "json"], 0),
        (&["saml-metadata", "--json"], 0),
        (&["destination", "disable", "app", "--json"], 1),
    ] {
        let out = run(args).await;
        assert_eq!(out.code, code, "{args:?}: {out:?}");
        assert_clean(&format!("{args:?}"), &out);
    }
    let status: Value = serde_json::from_str(&run(&["status", "--json"]).await.stdout).unwrap();
    assert_eq!(status["recent_errors"][0]["message"], HOSTILE);
    let refused = run(&["destination", "disable", "app", "--json"]).await;
    let error: Value = serde_json::from_str(refused.stderr.trim()).unwrap();
    assert_eq!(error["error"]["code"], "Unknown\x1b[2JDestination");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with(HOSTILE),
        "{error}"
    );
    assert_eq!(error["error"]["exit"], 1);
}
