//! The `nitrosync-attest` binary, run as a user would.

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine as _;
use nitrosync_attestation::inspect;

use crate::*;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nitrosync-attest"))
        .args(args)
        .output()
        .expect("run nitrosync-attest")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn at_of(name: &str) -> String {
    humantime::format_rfc3339_millis(own_time(&data(name))).to_string()
}

fn path(name: &str) -> String {
    data_path(name).display().to_string()
}

#[test]
fn verify_succeeds_inside_the_window_and_says_what_it_checked() {
    let claimed = inspect(&data(BASE)).unwrap();
    let pcr0 = format!("0={}", hex::encode(&claimed.pcrs[&0]));
    let out = run(&[
        "verify",
        &path(BASE),
        "--at",
        &at_of(BASE),
        "--pcr",
        &pcr0,
        "--max-age",
        "5m",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("OK: attestation document verified"),
        "{text}"
    );
    for needle in [
        "ES384",
        "641a0321a3e244ef",
        "PCR0 match",
        "maximum 5m",
        &claimed.module_id,
    ] {
        assert!(text.contains(needle), "missing {needle:?} in {text}");
    }
}

#[test]
fn verify_failure_prints_one_reason_line() {
    // Default time is now: every fixture has expired.
    let out = run(&["verify", &path(BASE)]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("REJECTED") && err.contains("not valid at"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());

    let out = run(&[
        "verify",
        &path(BASE),
        "--at",
        &at_of(BASE),
        "--pcr",
        &format!("0={}", "00".repeat(48)),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("PCR0 is 189038eccf28"),
        "{}",
        stderr(&out)
    );

    let out = run(&["verify", &path(AWS_DEBUG), "--at", &at_of(AWS_DEBUG)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("debug-mode enclave"));
    let out = run(&[
        "verify",
        &path(AWS_DEBUG),
        "--at",
        &at_of(AWS_DEBUG),
        "--allow-debug",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn verify_with_another_root_file() {
    let der = path("mock-root.der");
    let out = run(&["verify", &path(MOCK), "--at", &at_of(MOCK), "--root", &der]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["verify", &path(MOCK), "--at", &at_of(MOCK)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("trusted root"));
    // PEM works too.
    let pem = path("aws-nitro-root-g1.pem");
    let out = run(&["verify", &path(BASE), "--at", &at_of(BASE), "--root", &pem]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn unreadable_input_is_a_usage_error() {
    let out = run(&["verify", "/nonexistent/doc.cbor"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).lines().count(), 1);
    let out = run(&["verify", &path(BASE), "--pcr", "zero=00"]);
    assert_eq!(out.status.code(), Some(2));
}

fn write_text(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn inspect_reads_raw_hex_and_base64() {
    let doc = data(BASE);
    let dir = scratch_dir("cli-inspect");
    let hex_file = write_text(&dir, "doc.hex", &format!("{}\n", hex::encode(&doc)));
    let b64 = base64::engine::general_purpose::STANDARD.encode(&doc);
    // Wrapped at 76 columns, as `base64` prints it.
    let wrapped: Vec<String> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let b64_file = write_text(&dir, "doc.b64", &wrapped.join("\n"));
    let module_id = inspect(&doc).unwrap().module_id;
    let mut outputs = Vec::new();
    for file in [path(BASE), hex_file, b64_file] {
        let out = run(&["inspect", &file]);
        assert!(out.status.success(), "{file}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.starts_with("NOT VERIFIED"), "{text}");
        assert!(text.contains(&module_id));
        assert!(text.contains("cabundle[3]"));
        outputs.push(text);
    }
    assert!(outputs.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn json_output() {
    let out = run(&["inspect", "--json", &path("aws-2022-10-13-signed-eif.cbor")]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["verified"], false);
    assert_eq!(v["alg"], -35);
    assert_eq!(v["nonce"].as_str().unwrap().len(), 512);
    assert_eq!(v["cabundle"].as_array().unwrap().len(), 4);

    let out = run(&["verify", "--json", &path(BASE), "--at", &at_of(BASE)]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["digest"], "SHA384");
    assert_eq!(v["pcrs"]["0"].as_str().unwrap().len(), 96);

    let out = run(&["verify", "--json", &path(BASE)]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"], "certificate_expired");
}

#[cfg(feature = "sim")]
#[test]
fn verify_a_simulated_document_with_the_run_directory_root() {
    use nitrosync_attestation::{Nsm, SIM_ROOT_CERT_FILE, SimulatedNsm};
    let dir = scratch_dir("cli-sim");
    let nsm = SimulatedNsm::open_or_create(&dir, b"binary").unwrap();
    let doc = dir.join("doc.cbor");
    std::fs::write(&doc, nsm.attest(None, Some(&[0xaa, 0xbb]), None).unwrap()).unwrap();
    let doc = doc.display().to_string();
    let root = dir.join(SIM_ROOT_CERT_FILE).display().to_string();
    let out = run(&[
        "verify",
        &doc,
        "--root",
        &root,
        "--nonce",
        "aabb",
        "--max-age",
        "1m",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["verify", &doc]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("trusted root"));
}

#[test]
fn measure_prints_measurements_json() {
    use nitrosync_shared::measurements::{ImageKind, Measurements};
    let dir = scratch_dir("cli-measure");
    let eif_bytes = crate::eif::sample();
    let file = dir.join("image.eif");
    std::fs::write(&file, &eif_bytes).unwrap();
    let file = file.display().to_string();
    let expected = nitrosync_attestation::measure_eif(eif_bytes.as_slice())
        .unwrap()
        .measurements();

    for args in [
        vec!["measure", file.as_str()],
        vec!["measure", file.as_str(), "--output", "json"],
        vec!["measure", "--json", file.as_str()],
    ] {
        let out = run(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let m: Measurements = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(m, expected, "{args:?}");
        assert_eq!(m.kind, ImageKind::Eif);
        assert_eq!(m.eif_bytes, Some(u64::try_from(eif_bytes.len()).unwrap()));
    }

    let out = run(&["measure", &file, "--output", "text"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "EIF measurements of",
        "EIF version 4, x86_64",
        "matches",
        "ramdisk",
        "PCR0 PCR2",
        "signed      no",
        &format!("PCR0        {}", expected.pcr0),
        &format!("PCR2        {}", expected.pcr2),
    ] {
        assert!(text.contains(needle), "missing {needle:?} in {text}");
    }
}

#[test]
fn measure_refuses_a_truncated_or_foreign_file() {
    let dir = scratch_dir("cli-measure-bad");
    let eif = crate::eif::sample();
    let truncated = dir.join("truncated.eif");
    std::fs::write(&truncated, &eif[..eif.len() / 2]).unwrap();
    let out = run(&["measure", &truncated.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("truncated.eif") && err.contains("the EIF is truncated"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());

    let out = run(&["measure", &path(BASE)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not an EIF"), "{}", stderr(&out));

    let out = run(&["measure"]);
    assert_eq!(out.status.code(), Some(2), "an image is required");
    let out = run(&["measure", &path(BASE), "--simulator", &path(BASE)]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an EIF or --simulator, not both"
    );
}

#[cfg(feature = "sim")]
#[test]
fn measure_simulator_matches_the_simulated_nsm() {
    use nitrosync_attestation::{SIM_PCR1, SIM_PCR2, SimulatedNsm};
    use nitrosync_shared::measurements::{ImageKind, Measurements};
    let dir = scratch_dir("cli-measure-sim");
    let binary = dir.join("nitrosync-enclave");
    let bytes = b"\x7fELF pretend enclave binary".repeat(1000);
    std::fs::write(&binary, &bytes).unwrap();
    let binary = binary.display().to_string();
    let nsm = SimulatedNsm::open_or_create(&dir.join("nsm"), &bytes).unwrap();

    let out = run(&["measure", "--simulator", &binary]);
    assert!(out.status.success(), "{}", stderr(&out));
    let m: Measurements = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(m.kind, ImageKind::Simulator);
    assert_eq!(m.pcr0, hex::encode(&nsm.pcrs()[&0]));
    assert_eq!(m.pcr1, hex::encode(&nsm.pcrs()[&1]));
    assert_eq!(m.pcr2, hex::encode(&nsm.pcrs()[&2]));
    assert_eq!(
        (m.pcr1.as_str(), m.pcr2.as_str()),
        (
            hex::encode(SIM_PCR1).as_str(),
            hex::encode(SIM_PCR2).as_str()
        )
    );
    assert_eq!((m.pcr8, m.eif_sha256, m.eif_bytes), (None, None, None));

    let out = run(&["measure", "--simulator", &binary, "--output", "text"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Simulator measurements of"), "{text}");
    assert!(text.contains(&hex::encode(&nsm.pcrs()[&0])), "{text}");
}
