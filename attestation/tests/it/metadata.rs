//! The SAML metadata binding: metadata from the real SAML crate, documents from the simulated NSM.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::SystemTime;

use nitrosync_attestation::{
    MetadataError, Nsm, Policy, SimulatedNsm, VerifiedDocument, check_metadata_binding, verify,
};
use nitrosync_saml::SamlSigner;
use nitrosync_shared::binding::{ATTESTED_KEYS_FORMAT, AttestedKeys};

use crate::*;

const ENTITY_ID: &str = "https://saml.nitrosync.invalid/enclave";
const BINARY: &[u8] = b"\x7fELF pretend enclave binary";
const BUNDLE_KEY: [u8; 32] = [0x42; 32];

/// The enclave's signer, and another one whose key no document attests.
static SIGNERS: LazyLock<(SamlSigner, SamlSigner)> = LazyLock::new(|| {
    let now = SystemTime::now();
    (
        SamlSigner::generate(ENTITY_ID, now).unwrap(),
        SamlSigner::generate("https://other.example/idp", now).unwrap(),
    )
});

fn enclave() -> &'static SamlSigner {
    &SIGNERS.0
}

fn stranger() -> &'static SamlSigner {
    &SIGNERS.1
}

fn attested_keys(signer: &SamlSigner) -> Vec<u8> {
    AttestedKeys {
        format: ATTESTED_KEYS_FORMAT,
        saml_cert_sha256: signer.cert_sha256(),
        identity: None,
        next_saml_cert_sha256: None,
    }
    .to_user_data()
}

/// A simulated document with these fields, written to `dir` with the simulator root.
fn sim_document(dir: &Path, user_data: Option<&[u8]>, public_key: Option<&[u8]>) -> Vec<u8> {
    let nsm = SimulatedNsm::open_or_create(dir, BINARY).unwrap();
    nsm.attest(user_data, None, public_key).unwrap()
}

fn verified(user_data: Option<&[u8]>, public_key: Option<&[u8]>) -> VerifiedDocument {
    let dir = scratch_dir("meta-doc");
    let doc = sim_document(&dir, user_data, public_key);
    let root = SimulatedNsm::open_or_create(&dir, BINARY)
        .unwrap()
        .trust_root()
        .unwrap();
    verify(&doc, &root, &Policy::new(), SystemTime::now()).unwrap()
}

/// The enclave's document: its certificate's hash in `user_data`, the bundle key.
fn enclave_document() -> VerifiedDocument {
    verified(Some(&attested_keys(enclave())), Some(&BUNDLE_KEY))
}

#[test]
fn matching_metadata_is_bound() {
    let b = check_metadata_binding(&enclave().metadata_xml(), &enclave_document()).unwrap();
    assert_eq!(b.entity_id, ENTITY_ID);
    assert_eq!(b.cert_sha256, enclave().cert_sha256());
    assert_eq!(b.bundle_key, BUNDLE_KEY);
    assert_eq!(b.signing_certs, 1);
}

#[test]
fn another_signers_metadata_is_not_bound() {
    let err = check_metadata_binding(&stranger().metadata_xml(), &enclave_document()).unwrap_err();
    assert_eq!(
        err,
        MetadataError::CertificateNotBound {
            index: 1,
            sha256: hex::encode(stranger().cert_sha256()),
            expected: hex::encode(enclave().cert_sha256()),
        }
    );
    assert_eq!(err.code(), "certificate_not_bound");
}

#[test]
fn an_extra_unattested_key_is_named_and_refused() {
    let doc = enclave_document();
    let xml = enclave()
        .metadata_xml_with(&[stranger().cert_der()])
        .unwrap();
    assert_eq!(
        check_metadata_binding(&xml, &doc),
        Err(MetadataError::CertificateNotBound {
            index: 2,
            sha256: hex::encode(stranger().cert_sha256()),
            expected: hex::encode(enclave().cert_sha256()),
        })
    );
    // The other order too.
    let xml = stranger()
        .metadata_xml_with(&[enclave().cert_der()])
        .unwrap();
    assert!(matches!(
        check_metadata_binding(&xml, &doc),
        Err(MetadataError::CertificateNotBound { index: 1, .. })
    ));
    // Listing the bound certificate twice adds no key.
    let xml = enclave()
        .metadata_xml_with(&[enclave().cert_der()])
        .unwrap();
    assert_eq!(check_metadata_binding(&xml, &doc).unwrap().signing_certs, 2);
}

#[test]
fn the_document_must_carry_the_binding() {
    let xml = enclave().metadata_xml();
    let no_user_data = verified(None, Some(&BUNDLE_KEY));
    assert_eq!(
        check_metadata_binding(&xml, &no_user_data),
        Err(MetadataError::NoUserData)
    );
    let garbage = verified(Some(b"not cbor at all"), Some(&BUNDLE_KEY));
    assert!(matches!(
        check_metadata_binding(&xml, &garbage),
        Err(MetadataError::BadUserData { .. })
    ));
    let wrong_format = AttestedKeys {
        format: 2,
        saml_cert_sha256: enclave().cert_sha256(),
        identity: None,
        next_saml_cert_sha256: None,
    };
    let wrong_format = verified(Some(&wrong_format.to_user_data()), Some(&BUNDLE_KEY));
    assert!(matches!(
        check_metadata_binding(&xml, &wrong_format),
        Err(MetadataError::BadUserData { .. })
    ));
    let keys = attested_keys(enclave());
    assert_eq!(
        check_metadata_binding(&xml, &verified(Some(&keys), None)),
        Err(MetadataError::NoBundleKey)
    );
    assert_eq!(
        check_metadata_binding(&xml, &verified(Some(&keys), Some(&[1; 65]))),
        Err(MetadataError::BadBundleKey { len: 65 })
    );
}

#[test]
fn malformed_metadata_is_refused() {
    let doc = enclave_document();
    let check = |xml: &str| check_metadata_binding(xml, &doc).unwrap_err();
    assert!(matches!(
        check("this is not XML"),
        MetadataError::NotXml { .. }
    ));
    assert!(matches!(check(""), MetadataError::NotXml { .. }));
    assert!(matches!(
        check("<EntityDescriptor><unclosed></EntityDescriptor>"),
        MetadataError::NotXml { .. }
    ));
    assert!(matches!(
        check("<html><body>metadata</body></html>"),
        MetadataError::NoEntityDescriptor { .. }
    ));
    // The right name in no namespace is not the metadata element.
    let unqualified = enclave().metadata_xml().replace(
        " xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\"",
        " xmlns:md=\"urn:x\"",
    );
    assert!(matches!(
        check(&unqualified),
        MetadataError::NoEntityDescriptor { .. }
    ));
    // An entity reference without a DTD is not well-formed.
    assert!(matches!(
        check(
            &enclave()
                .metadata_xml()
                .replace("<md:NameIDFormat>", "<md:NameIDFormat>&x;")
        ),
        MetadataError::NotXml { .. }
    ));
}

#[test]
fn an_entity_bomb_is_refused_without_expanding() {
    let mut bomb =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n");
    bomb.push_str(" <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n");
    for i in 2..=9 {
        let prev = i - 1;
        bomb.push_str(&format!(" <!ENTITY lol{i} \""));
        bomb.push_str(&format!("&lol{prev};").repeat(10));
        bomb.push_str("\">\n");
    }
    bomb.push_str("]>\n");
    // The bomb sits where the certificate would be read.
    let xml = enclave().metadata_xml();
    let body = xml.split_once('\n').unwrap().1;
    let start = body.find("<ds:X509Certificate>").unwrap() + "<ds:X509Certificate>".len();
    let end = body.find("</ds:X509Certificate>").unwrap();
    bomb.push_str(&format!("{}&lol9;{}", &body[..start], &body[end..]));

    let doc = enclave_document();
    assert_eq!(
        check_metadata_binding(&bomb, &doc),
        Err(MetadataError::DtdForbidden)
    );
    // Refused at the DOCTYPE, before any entity is referenced: the same document cut off in the
    // middle of `&lol9;`, which a parser that got that far would call malformed, gets the same
    // answer.
    let cut = bomb.find("&lol9;").unwrap() + "&lol".len();
    assert_eq!(
        check_metadata_binding(&bomb[..cut], &doc),
        Err(MetadataError::DtdForbidden)
    );
    // Even an empty DOCTYPE, which the parser itself would take.
    let empty = xml.replacen("\n", "\n<!DOCTYPE md:EntityDescriptor>\n", 1);
    assert_eq!(
        check_metadata_binding(&empty, &doc),
        Err(MetadataError::DtdForbidden)
    );
}

/// The command-line tool.
#[cfg(feature = "cli")]
mod cli {
    use std::process::{Command, Output};

    use nitrosync_attestation::SIM_ROOT_CERT_FILE;

    use super::*;

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

    /// The files a customer has: the enclave's document, the simulator root and two metadata files.
    struct Files {
        doc: String,
        /// The simulated enclave's measurements (`measure --simulator` of BINARY).
        pins: String,
        root: String,
        metadata: String,
        foreign: String,
    }

    fn files(name: &str) -> Files {
        let dir = scratch_dir(name);
        let doc = sim_document(&dir, Some(&attested_keys(enclave())), Some(&BUNDLE_KEY));
        let write = |file: &str, bytes: &[u8]| -> String {
            let p: PathBuf = dir.join(file);
            std::fs::write(&p, bytes).unwrap();
            p.display().to_string()
        };
        let pins =
            serde_json::to_vec(&nitrosync_attestation::simulator_measurements(BINARY)).unwrap();
        Files {
            doc: write("attestation.cbor", &doc),
            pins: write("measurements.json", &pins),
            root: dir.join(SIM_ROOT_CERT_FILE).display().to_string(),
            metadata: write("metadata.xml", enclave().metadata_xml().as_bytes()),
            foreign: write(
                "foreign.xml",
                enclave()
                    .metadata_xml_with(&[stranger().cert_der()])
                    .unwrap()
                    .as_bytes(),
            ),
        }
    }

    #[test]
    fn cli_accepts_bound_metadata_and_says_what_it_checked() {
        let f = files("meta-cli-ok");
        let out = run(&[
            "verify-metadata",
            "--measurements",
            &f.pins,
            "--metadata",
            &f.metadata,
            "--doc",
            &f.doc,
            "--root",
            &f.root,
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
            "maximum 5m",
            &format!("SAML metadata: entity id {ENTITY_ID}"),
            &hex::encode(enclave().cert_sha256()),
            "is bound by the document",
            &format!("bundle key {}", hex::encode(BUNDLE_KEY)),
        ] {
            assert!(text.contains(needle), "missing {needle:?} in {text}");
        }
    }

    #[test]
    fn cli_rejects_a_foreign_key_with_one_reason_line() {
        let f = files("meta-cli-foreign");
        let out = run(&[
            "verify-metadata",
            "--measurements",
            &f.pins,
            "--metadata",
            &f.foreign,
            "--doc",
            &f.doc,
            "--root",
            &f.root,
        ]);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("REJECTED"), "{err}");
        assert!(
            err.contains(&hex::encode(stranger().cert_sha256())) && err.contains("not bound"),
            "{err}"
        );
        assert!(stdout(&out).is_empty());

        // The document is verified first: without the simulator root it fails there.
        let out = run(&[
            "verify-metadata",
            "--measurements",
            &f.pins,
            "--metadata",
            &f.metadata,
            "--doc",
            &f.doc,
        ]);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("trusted root"), "{err}");
    }

    #[test]
    fn cli_json() {
        let f = files("meta-cli-json");
        let base = [
            "verify-metadata",
            "--measurements",
            &f.pins,
            "--json",
            "--doc",
            &f.doc,
            "--root",
            &f.root,
        ];
        let out = run(&[&base[..], &["--metadata", &f.metadata]].concat());
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(v["ok"], true);
        assert_eq!(v["digest"], "SHA384");
        assert_eq!(v["saml_metadata"]["entity_id"], ENTITY_ID);
        assert_eq!(
            v["saml_metadata"]["cert_sha256"],
            hex::encode(enclave().cert_sha256())
        );
        assert_eq!(v["saml_metadata"]["signing_certificates"], 1);
        assert_eq!(v["bundle_key"], hex::encode(BUNDLE_KEY));

        let out = run(&[&base[..], &["--metadata", &f.foreign]].concat());
        assert_eq!(out.status.code(), Some(1));
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(v["stage"], "metadata");
        assert_eq!(v["error"], "certificate_not_bound");

        let out = run(&[
            "verify-metadata",
            "--measurements",
            &f.pins,
            "--json",
            "--doc",
            &f.doc,
            "--metadata",
            &f.metadata,
        ]);
        assert_eq!(out.status.code(), Some(1));
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(v["stage"], "document");
        assert_eq!(v["error"], "root_mismatch");
    }

    #[test]
    fn cli_unreadable_inputs_exit_2() {
        let f = files("meta-cli-unreadable");
        let out = run(&[
            "verify-metadata",
            "--measurements",
            &f.pins,
            "--metadata",
            "/nonexistent/metadata.xml",
            "--doc",
            &f.doc,
        ]);
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
        let out = run(&[
            "verify-metadata",
            "--measurements",
            &f.pins,
            "--metadata",
            &f.metadata,
            "--doc",
            "/nonexistent",
        ]);
        assert_eq!(out.status.code(), Some(2));
        // Not UTF-8.
        let latin1 = format!("{}.latin1", f.metadata);
        std::fs::write(&latin1, b"<md:EntityDescriptor entityID=\"caf\xe9\"/>").unwrap();
        let out = run(&[
            "verify-metadata",
            "--measurements",
            &f.pins,
            "--metadata",
            &latin1,
            "--doc",
            &f.doc,
        ]);
        assert_eq!(out.status.code(), Some(2));
        // Without pins nothing is checked at all: any enclave on any Nitro host would pass.
        for pins in [&[][..], &["--pcr", &format!("0={}", "ab".repeat(48))][..]] {
            let out = run(&[
                &[
                    "verify-metadata",
                    "--metadata",
                    &f.metadata,
                    "--doc",
                    &f.doc,
                    "--root",
                    &f.root,
                ][..],
                pins,
            ]
            .concat());
            assert_eq!(out.status.code(), Some(2));
            let err = stderr(&out);
            assert!(
                err.contains("not pinned") && err.contains("--measurements"),
                "{err}"
            );
            assert!(stdout(&out).is_empty());
        }
        // The help says what the command is for.
        let out = run(&["verify-metadata", "--help"]);
        assert!(
            stdout(&out).contains("before registering"),
            "{}",
            stdout(&out)
        );
    }
}

/// Writes a simulator document, its root and metadata files for the README's examples:
/// `NITROSYNC_README_DIR=/tmp/x cargo test -p nitrosync-attestation --test it -- --ignored
/// write_readme_example`.
#[test]
#[ignore = "writes example files for the README"]
fn write_readme_example() {
    let dir = PathBuf::from(std::env::var("NITROSYNC_README_DIR").expect("NITROSYNC_README_DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    let doc = sim_document(&dir, Some(&attested_keys(enclave())), Some(&BUNDLE_KEY));
    std::fs::write(dir.join("attestation.cbor"), doc).unwrap();
    std::fs::write(dir.join("metadata.xml"), enclave().metadata_xml()).unwrap();
    std::fs::write(
        dir.join("measurements.json"),
        serde_json::to_vec_pretty(&nitrosync_attestation::simulator_measurements(BINARY)).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("foreign.xml"),
        enclave()
            .metadata_xml_with(&[stranger().cert_der()])
            .unwrap(),
    )
    .unwrap();
}
