//! Shared fixtures for the integration tests: one signer, request builders, and the external
//! verifiers (xmlsec1, signxml, python3-saml) used as oracles.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nitrosync_saml::{AssertionRequest, SamlSigner};

/// Environment variable naming the Python interpreter that has signxml and python3-saml.
pub const ENV_PYTHON: &str = "NITROSYNC_TEST_PYTHON";
/// Environment variable naming the xmlsec1 binary.
pub const ENV_XMLSEC1: &str = "NITROSYNC_TEST_XMLSEC1";

pub const ENTITY_ID: &str = "https://nitrosync.example/saml/idp";
pub const SUBJECT: &str = "ns1-abcdefghijklmnopqrstuvwxyz234567";
pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/nitrosync/SyncRole";
pub const PROVIDER_ARN: &str = "arn:aws:iam::123456789012:saml-provider/nitrosync";
pub const SESSION_NAME: &str = "nitrosync-dest-42";
pub const RECIPIENT: &str = "https://signin.aws.amazon.com/saml";
pub const RESPONSE_ID: &str = "_r5f1c0e7d9a8b4c3e2f1a0b9c8d7e6f50";
pub const ASSERTION_ID: &str = "_a5f1c0e7d9a8b4c3e2f1a0b9c8d7e6f50";

/// 2023-11-14T22:13:20Z.
pub fn fixed_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// One RSA-2048 signer for the whole test binary (key generation is the slow part).
pub fn signer() -> &'static SamlSigner {
    static SIGNER: OnceLock<SamlSigner> = OnceLock::new();
    SIGNER.get_or_init(|| SamlSigner::generate(ENTITY_ID, SystemTime::now()).expect("generate"))
}

/// A second, unrelated signer (to check that verifiers reject the wrong key).
pub fn other_signer() -> &'static SamlSigner {
    static SIGNER: OnceLock<SamlSigner> = OnceLock::new();
    SIGNER.get_or_init(|| SamlSigner::generate(ENTITY_ID, SystemTime::now()).expect("generate"))
}

pub fn request(now: SystemTime) -> AssertionRequest {
    AssertionRequest {
        subject: SUBJECT.to_owned(),
        role_arn: ROLE_ARN.to_owned(),
        provider_arn: PROVIDER_ARN.to_owned(),
        session_name: SESSION_NAME.to_owned(),
        session_duration: Some(3600),
        recipient: RECIPIENT.to_owned(),
        now,
        response_id: RESPONSE_ID.to_owned(),
        assertion_id: ASSERTION_ID.to_owned(),
    }
}

/// The signer's certificate as PEM (RFC 7468: base64 in lines of 64 characters).
pub fn cert_pem(signer: &SamlSigner) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(signer.cert_der());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem.into_bytes()
}

/// A temporary directory holding the files an oracle reads.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write scratch file");
        path
    }
}

fn oracle_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/oracles")
        .join(name)
}

/// The Python interpreter: `$NITROSYNC_TEST_PYTHON`, else the workspace's `.venv` (beside or
/// above this crate), else the development machine's `/work/main/.venv`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os(ENV_PYTHON) {
        return PathBuf::from(p);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        manifest.join(".venv/bin/python"),
        manifest.join("../.venv/bin/python"),
        PathBuf::from("/work/main/.venv/bin/python"),
    ];
    candidates
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("python3"))
}

pub fn xmlsec1() -> PathBuf {
    std::env::var_os(ENV_XMLSEC1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("xmlsec1"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run oracle {cmd:?}: {e}"))
}

/// The outcome of one oracle run; `ok` is the exit status, `log` is stdout + stderr.
#[derive(Debug)]
pub struct Verdict {
    pub ok: bool,
    pub stdout: String,
    pub log: String,
}

impl From<Output> for Verdict {
    fn from(out: Output) -> Self {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let log = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        Self {
            ok: out.status.success(),
            stdout,
            log,
        }
    }
}

/// `xmlsec1 --verify` against only the given certificate's key: `--enabled-key-data rsa` makes it
/// ignore the certificate embedded in `KeyInfo`, and only same-document references are allowed.
pub fn xmlsec1_verify(response_xml: &str, cert_pem: &[u8]) -> Verdict {
    let scratch = Scratch::new();
    let xml = scratch.write("response.xml", response_xml);
    let cert = scratch.write("cert.pem", cert_pem);
    run(Command::new(xmlsec1())
        .arg("--verify")
        .args(["--enabled-key-data", "rsa"])
        .args(["--enabled-reference-uris", "same-doc"])
        .arg("--pubkey-cert-pem")
        .arg(&cert)
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
        ])
        .arg(&xml))
    .into()
}

/// signxml's `XMLVerifier().verify(xml, x509_cert=cert)`, which must return the Assertion.
pub fn signxml_verify(response_xml: &str, cert_pem: &[u8], assertion_id: &str) -> Verdict {
    let scratch = Scratch::new();
    let xml = scratch.write("response.xml", response_xml);
    let cert = scratch.write("cert.pem", cert_pem);
    run(Command::new(python())
        .arg(oracle_script("verify_signxml.py"))
        .arg(&xml)
        .arg(&cert)
        .arg(assertion_id))
    .into()
}

/// python3-saml `OneLogin_Saml2_Response(settings, base64).is_valid(request_data)`, strict.
pub fn onelogin_verify(metadata_xml: &str, response_base64: &str, acs: &str) -> Verdict {
    let scratch = Scratch::new();
    let md = scratch.write("metadata.xml", metadata_xml);
    let b64 = scratch.write("response.b64", response_base64);
    run(Command::new(python())
        .arg(oracle_script("verify_onelogin.py"))
        .arg(&md)
        .arg(&b64)
        .arg(acs))
    .into()
}

/// python3-saml's metadata parser plus the SAML metadata XSD.
pub fn onelogin_parse_metadata(metadata_xml: &str) -> Verdict {
    let scratch = Scratch::new();
    let md = scratch.write("metadata.xml", metadata_xml);
    run(Command::new(python())
        .arg(oracle_script("parse_metadata.py"))
        .arg(&md))
    .into()
}

/// lxml's exclusive c14n of the document, NUL, and of the Assertion without its Signature.
pub fn lxml_c14n(response_xml: &str) -> Verdict {
    let scratch = Scratch::new();
    let xml = scratch.write("response.xml", response_xml);
    run(Command::new(python())
        .arg(oracle_script("c14n_lxml.py"))
        .arg(&xml))
    .into()
}

/// Replaces the only occurrence of `from` in `xml` with `to`, a change of the same length.
pub fn tamper(xml: &str, from: &str, to: &str) -> String {
    assert_eq!(
        xml.matches(from).count(),
        1,
        "tamper target must be unique: {from}"
    );
    xml.replacen(from, to, 1)
}
