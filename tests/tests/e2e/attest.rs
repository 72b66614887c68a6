//! Attestation end to end: the CLI fetches a document with a fresh nonce from the enclave's
//! (simulated) NSM, `nitrosync-attest` verifies it against the simulator root the parent wrote,
//! and checks that the SAML metadata from the enclave is the key the document binds.

use nitrosync_tests::{SimStack, bin, cli, wait_for};
use sha2::{Digest, Sha384};
use std::time::Duration;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn attest_tool(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(bin("nitrosync-attest"))
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_enclaves_metadata_is_bound_by_a_fresh_verified_document() {
    let dir = tempfile::tempdir().unwrap();
    let stack = SimStack::start(dir.path(), "us-east-1").await.unwrap();
    let admin = stack.sockets.admin.clone();
    let root = dir.path().join("sim-root.pem");
    wait_for(
        "the parent to publish the simulator root",
        Duration::from_secs(10),
        || {
            let root = root.clone();
            async move { root.exists().then_some(()) }
        },
    )
    .await
    .unwrap();

    let nonce = "6e6f6e63652d66726f6d2d7468652d637573746f6d6572";
    let doc = dir.path().join("doc.cbor");
    let out = cli(
        &admin,
        &[
            "enclave",
            "attest",
            "--nonce",
            nonce,
            "--out",
            doc.to_str().unwrap(),
        ],
    )
    .await
    .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let md = cli(&admin, &["saml-metadata"]).await.unwrap();
    assert_eq!(md.code, 0, "{}", md.stderr);
    assert!(md.stdout.contains("EntityDescriptor"));
    let metadata = dir.path().join("saml-metadata.xml");
    std::fs::write(&metadata, &md.stdout).unwrap();

    // PCR0 is the SHA-384 of the enclave binary that is running.
    let pcr0 = hex(&Sha384::digest(
        std::fs::read(bin("nitrosync-enclave")).unwrap(),
    ));
    let root_s = root.to_str().unwrap();
    let doc_s = doc.to_str().unwrap();
    let pcr = format!("0={pcr0}");
    let (code, stdout, stderr) = attest_tool(&[
        "verify",
        doc_s,
        "--root",
        root_s,
        "--nonce",
        nonce,
        "--pcr",
        &pcr,
        "--max-age",
        "5m",
        "--json",
    ])
    .await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(v.to_string().contains(&pcr0), "{v}");

    // The metadata the customer would register is bound by the document.
    let md_s = metadata.to_str().unwrap();
    // verify-metadata needs the whole image pinned: PCR0 alone is refused (exit 2), the
    // measurements of the running binary pass.
    let (code, _, stderr) = attest_tool(&[
        "verify-metadata",
        "--metadata",
        md_s,
        "--doc",
        doc_s,
        "--root",
        root_s,
        "--pcr",
        &pcr,
    ])
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not pinned"), "{stderr}");
    let measurements = dir.path().join("measurements.json");
    std::fs::write(
        &measurements,
        serde_json::to_vec(&nitrosync_attestation::simulator_measurements(
            &std::fs::read(bin("nitrosync-enclave")).unwrap(),
        ))
        .unwrap(),
    )
    .unwrap();
    let (code, stdout, stderr) = attest_tool(&[
        "verify-metadata",
        "--metadata",
        md_s,
        "--doc",
        doc_s,
        "--root",
        root_s,
        "--nonce",
        nonce,
        "--measurements",
        measurements.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{stdout}{stderr}");

    // Against the AWS root, the simulator's document is refused.
    let (code, _, stderr) = attest_tool(&["verify", doc_s, "--nonce", nonce]).await;
    assert_eq!(code, 1, "{stderr}");
    // A wrong nonce or PCR is refused.
    let (code, _, stderr) =
        attest_tool(&["verify", doc_s, "--root", root_s, "--nonce", "00"]).await;
    assert_eq!(code, 1, "{stderr}");
    let wrong_pcr = format!("0={}", "00".repeat(48));
    let (code, _, stderr) =
        attest_tool(&["verify", doc_s, "--root", root_s, "--pcr", &wrong_pcr]).await;
    assert_eq!(code, 1, "{stderr}");

    // Metadata naming another key fails the binding check.
    let other = nitrosync_saml::SamlSigner::generate(
        "https://saml.nitrosync.invalid/enclave",
        std::time::SystemTime::now(),
    )
    .unwrap();
    let foreign = dir.path().join("foreign.xml");
    std::fs::write(&foreign, other.metadata_xml()).unwrap();
    let (code, _, stderr) = attest_tool(&[
        "verify-metadata",
        "--metadata",
        foreign.to_str().unwrap(),
        "--doc",
        doc_s,
        "--root",
        root_s,
        "--measurements",
        measurements.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not bound"), "{stderr}");
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one reason line: {stderr}"
    );
    stack.stop().await.unwrap();
}
