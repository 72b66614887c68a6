//! The tenant trusts only what it pinned: enclave images (`nitrosync trust add`) and attestation
//! roots (`nitrosync trust add-root`). Each test plays a parent that offers something else (no
//! pins, another image, another simulator root, metadata of another key) and checks, from the
//! daemon's and the AWS simulator's state, that nothing was sealed, submitted or registered.

use crate::cli::Env;
use nitrosync_tests::{CliOutput, SimStack, cli_as, cli_env};
use serde_json::Value;
use std::path::Path;

/// The daemon holds no bundle for `id` and AWS saw no write to `secret`.
async fn nothing_submitted(e: &Env, id: &str, secret: &str) {
    let list = e.ok(&["destination", "list", "--json"]).await;
    let list: Value = serde_json::from_str(&list.stdout).unwrap();
    let held = list
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["key"]["id"] == id || d["config"]["id"] == id);
    assert!(!held, "the daemon holds a bundle for {id}: {list}");
    assert_eq!(e.puts(secret).await, 0, "AWS saw a write to {secret}");
}

fn refused(out: &CliOutput, needle: &str) {
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(needle),
        "{needle:?} not in {}",
        out.stderr
    );
}

async fn push(e: &Env, id: &str, file: &Path) -> CliOutput {
    e.run(&[
        "env",
        "push",
        "--destination",
        id,
        "--file",
        file.to_str().unwrap(),
    ])
    .await
}

async fn seal(e: &Env, id: &str, file: &Path) -> (CliOutput, std::path::PathBuf) {
    let doc = e.dir.path().join("doc.cbor");
    e.ok(&["enclave", "attest", "--out", doc.to_str().unwrap()])
        .await;
    let out = e.dir.path().join("sealed.cbor");
    let o = e
        .run(&[
            "bundle",
            "seal",
            "--destination",
            id,
            "--file",
            file.to_str().unwrap(),
            "--attestation",
            doc.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .await;
    (o, out)
}

#[tokio::test]
async fn without_pins_nothing_is_sealed_submitted_or_registered_and_the_error_says_how_to_pin() {
    let e = Env::start().await;
    e.destination("nopin", "nopin/env", &[]).await;
    e.ok(&["trust", "remove", "sim-enclave"]).await;
    let listed = e.ok(&["trust", "list"]).await;
    assert!(
        listed.stdout.contains("no enclave image is trusted"),
        "{}",
        listed.stdout
    );

    let f = e.env_file("nopin.env", "TOKEN=do-not-seal-me\n");
    let pushed = push(&e, "nopin", &f).await;
    refused(&pushed, "no enclave image is pinned");
    assert!(
        pushed.stderr.contains("nitrosync trust add"),
        "{}",
        pushed.stderr
    );
    let (sealed, out) = seal(&e, "nopin", &f).await;
    refused(&sealed, "nitrosync trust add");
    assert!(!out.exists(), "a bundle was written without pins");
    let iam = e
        .run(&[
            "iam",
            "template",
            "--destination",
            "nopin",
            "--format",
            "json",
        ])
        .await;
    refused(&iam, "no enclave image is pinned");
    assert!(iam.stdout.is_empty(), "{}", iam.stdout);
    // A destination test and a delete are signed operations: refused the same way.
    refused(
        &e.run(&["destination", "test", "nopin"]).await,
        "no enclave image is pinned",
    );
    nothing_submitted(&e, "nopin", "nopin/env").await;
    e.stack.stop().await.unwrap();
}

#[tokio::test]
async fn an_enclave_running_another_image_than_the_pinned_one_gets_nothing() {
    let e = Env::start().await;
    e.destination("other", "other/env", &[]).await;
    // The tenant pinned an image whose PCR0 is not the running enclave's: the measurements of
    // another binary, as `nitrosync-attest measure --simulator` gives them.
    let other = e.dir.path().join("other-measurements.json");
    nitrosync_tests::measure_simulator(&nitrosync_tests::bin("nitrosync-parent"), &other)
        .await
        .unwrap();
    e.ok(&["trust", "remove", "sim-enclave"]).await;
    e.ok(&[
        "trust",
        "add",
        other.to_str().unwrap(),
        "--name",
        "release-2",
    ])
    .await;

    let f = e.env_file("other.env", "TOKEN=do-not-seal-me\n");
    let pushed = push(&e, "other", &f).await;
    refused(&pushed, "an image you do not trust");
    assert!(pushed.stderr.contains("release-2"), "{}", pushed.stderr);
    let (sealed, bundle) = seal(&e, "other", &f).await;
    refused(&sealed, "an image you do not trust");
    assert!(!bundle.exists());
    refused(
        &e.run(&["iam", "template", "--destination", "other"]).await,
        "an image you do not trust",
    );
    nothing_submitted(&e, "other", "other/env").await;

    // Trusting both (an upgrade) lets the running one through.
    e.ok(&[
        "trust",
        "add",
        e.dir
            .path()
            .join("enclave-measurements.json")
            .to_str()
            .unwrap(),
    ])
    .await;
    let ok = e
        .ok(&[
            "env",
            "push",
            "--destination",
            "other",
            "--file",
            f.to_str().unwrap(),
            "--wait",
        ])
        .await;
    assert!(ok.stdout.contains("Write Created"), "{}", ok.stdout);
    e.stack.stop().await.unwrap();
}

#[tokio::test]
async fn a_parent_offering_another_simulator_root_is_refused_whatever_it_puts_beside_its_socket() {
    // The tenant pinned stack A's simulator root and the enclave binary. The operator points
    // it at stack B: the same binary (same PCRs), but a simulator root of the operator's
    // making, published as sim-root.pem beside B's admin socket, and a Describe saying
    // "simulator". Nothing read from there may count.
    let e = Env::start().await;
    e.destination("swap", "swap/env", &[]).await;
    let b_dir = tempfile::tempdir().unwrap();
    let b = SimStack::start(b_dir.path(), "us-east-1").await.unwrap();
    assert!(b_dir.path().join(nitrosync_tests::SIM_ROOT_FILE).exists());
    let f = e.env_file("swap.env", "TOKEN=do-not-seal-me\n");
    let pushed = cli_as(
        &b.sockets.admin,
        Some(&e.tenant),
        &[
            "env",
            "push",
            "--destination",
            "swap",
            "--file",
            f.to_str().unwrap(),
        ],
    )
    .await
    .unwrap();
    refused(&pushed, "none of the trusted roots");
    let iam = cli_as(
        &b.sockets.admin,
        Some(&e.tenant),
        &["iam", "template", "--destination", "swap"],
    )
    .await
    .unwrap();
    refused(&iam, "none of the trusted roots");
    let list = cli_as(&b.sockets.admin, None, &["destination", "list", "--json"])
        .await
        .unwrap();
    assert_eq!(
        list.stdout.trim(),
        "[]",
        "B holds a bundle: {}",
        list.stdout
    );
    let writes = nitrosync_tests::simctl(b_dir.path(), &["sim", "GET", "requests"])
        .await
        .unwrap();
    assert!(
        writes["writes"].get("swap/env").is_none(),
        "B's AWS saw a write: {writes}"
    );
    b.stop().await.unwrap();
    e.stack.stop().await.unwrap();
}

/// A hostile admin socket: a request whose line starts with `request` (lower case, e.g.
/// `get /v1/enclave/describe`) is answered with `canned`; every other request goes to `target`.
/// One request per connection.
async fn lying_parent(listen: &Path, target: &Path, request: &'static str, canned: Vec<u8>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::UnixListener::bind(listen).unwrap();
    let target = target.to_owned();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (target, describe) = (target.clone(), canned.clone());
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 8192];
                let head_end = loop {
                    let Ok(n) = client.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    req.extend_from_slice(&buf[..n]);
                    if let Some(i) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&req[..head_end]).to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while req.len() < head_end + len {
                    let Ok(n) = client.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    req.extend_from_slice(&buf[..n]);
                }
                if head.starts_with(request) {
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        describe.len()
                    );
                    let _ = client.write_all(reply.as_bytes()).await;
                    let _ = client.write_all(&describe).await;
                    let _ = client.shutdown().await;
                    return;
                }
                // Forward with "connection: close" so the reply ends at EOF.
                let Ok(mut up) = tokio::net::UnixStream::connect(&target).await else {
                    return;
                };
                let mut fwd = req[..head_end - 2].to_vec();
                fwd.extend_from_slice(b"connection: close\r\n\r\n");
                fwd.extend_from_slice(&req[head_end..]);
                if up.write_all(&fwd).await.is_err() {
                    return;
                }
                let mut reply = Vec::new();
                let _ = up.read_to_end(&mut reply).await;
                let _ = client.write_all(&reply).await;
                let _ = client.shutdown().await;
            });
        }
    });
}

#[tokio::test]
async fn iam_refuses_metadata_that_is_not_the_attested_enclaves() {
    // The attestation is the genuine enclave A's; the metadata the parent serves is enclave B's
    // (another SAML key, which the operator could hold). Registering it would make B's key the
    // customer's identity provider.
    let e = Env::start().await;
    e.ok(&[
        "destination",
        "create",
        "--id",
        "meta",
        "--region",
        "us-east-1",
        "--secret-name",
        "meta/env",
        "--role-arn",
        "arn:aws:iam::123456789012:role/nitrosync-meta",
        "--saml-provider-arn",
        "arn:aws:iam::123456789012:saml-provider/nitrosync-meta",
    ])
    .await;
    let b_dir = tempfile::tempdir().unwrap();
    let b = SimStack::start(b_dir.path(), "us-east-1").await.unwrap();
    let describe: Value = nitrosync_api::AdminClient::new(b.sockets.admin.clone())
        .call(
            http::Method::GET,
            nitrosync_api::paths::ENCLAVE_DESCRIBE,
            None,
        )
        .await
        .unwrap();
    let describe = serde_json::to_vec(&describe).unwrap();
    let liar = e.dir.path().join("liar.sock");
    lying_parent(
        &liar,
        &e.stack.sockets.admin,
        "get /v1/enclave/describe",
        describe,
    )
    .await;

    let template = cli_as(
        &liar,
        Some(&e.tenant),
        &[
            "iam",
            "template",
            "--destination",
            "meta",
            "--format",
            "json",
        ],
    )
    .await
    .unwrap();
    refused(&template, "not bound to the attested enclave");
    assert!(template.stdout.is_empty(), "{}", template.stdout);

    let endpoint = format!("https://127.0.0.1:{}", e.stack.aws.port);
    let home = e.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let env = [
        ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        ("HOME", home.to_str().unwrap()),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let apply = cli_env(
        &liar,
        Some(&e.tenant),
        &env,
        &[
            "iam",
            "apply",
            "--destination",
            "meta",
            "--endpoint-url",
            &endpoint,
            "--ca-bundle",
            e.stack.aws.ca.to_str().unwrap(),
        ],
    )
    .await
    .unwrap();
    refused(&apply, "not bound to the attested enclave");

    // Through the honest socket the same commands pass, and the template records what was
    // checked.
    let honest = e
        .ok(&[
            "iam",
            "template",
            "--destination",
            "meta",
            "--format",
            "cloudformation",
        ])
        .await;
    let t: Value = serde_json::from_str(&honest.stdout).unwrap();
    let v = &t["Metadata"]["nitrosync:VerifiedEnclave"];
    assert_eq!(v["image"], "sim-enclave", "{t}");
    assert_eq!(v["root"], "simulator", "{t}");
    assert_eq!(v["pcr0"].as_str().map(str::len), Some(96), "{t}");
    b.stop().await.unwrap();
    e.stack.stop().await.unwrap();
}

#[tokio::test]
async fn a_replayed_attestation_of_the_trusted_enclave_is_refused() {
    // The parent keeps a genuine, fresh document of the trusted enclave (another caller's
    // nonce) and answers every attest request with it. Its key is the real enclave's, but a
    // parent that can replay documents could equally replay one from before a key change, so
    // the tenant's own nonce must be in it.
    let e = Env::start().await;
    e.destination("replay", "replay/env", &[]).await;
    let old: Value = nitrosync_api::AdminClient::new(e.stack.sockets.admin.clone())
        .call(
            http::Method::POST,
            nitrosync_api::paths::ENCLAVE_ATTEST,
            Some(format!(r#"{{"nonce":"{}"}}"#, "ab".repeat(32)).into_bytes()),
        )
        .await
        .unwrap();
    let liar = e.dir.path().join("replay.sock");
    lying_parent(
        &liar,
        &e.stack.sockets.admin,
        "post /v1/enclave/attest",
        serde_json::to_vec(&old).unwrap(),
    )
    .await;
    let f = e.env_file("replay.env", "TOKEN=do-not-seal-me\n");
    let pushed = cli_as(
        &liar,
        Some(&e.tenant),
        &[
            "env",
            "push",
            "--destination",
            "replay",
            "--file",
            f.to_str().unwrap(),
        ],
    )
    .await
    .unwrap();
    refused(&pushed, "nonce");
    refused(
        &cli_as(
            &liar,
            Some(&e.tenant),
            &["iam", "template", "--destination", "replay"],
        )
        .await
        .unwrap(),
        "nonce",
    );
    nothing_submitted(&e, "replay", "replay/env").await;
    e.stack.stop().await.unwrap();
}
