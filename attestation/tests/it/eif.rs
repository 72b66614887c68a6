//! Measuring Enclave Image Files: known answers, the hashing rule recomputed independently,
//! signed images, and hostile files (truncated, wrong magic, bad CRC, inconsistent tables).
//!
//! The EIFs are written here by [`Eif::build`], which follows the layout of
//! `aws-nitro-enclaves-image-format` 0.8.1 (`EifBuilder::write_to`): the 548-byte header, then
//! kernel, cmdline, metadata, ramdisks and signature, each behind a 12-byte section header, with
//! the CRC-32 of everything but the CRC field. The known-answer PCRs were computed with Python's
//! hashlib (`sha384(b"\0" * 48 + sha384(data).digest())`) from the same inputs.

use nitrosync_attestation::{
    AWS_NITRO_ROOT_G1_PEM, EifError, SectionKind, extend_from_zero, measure_eif,
};
use nitrosync_shared::measurements::ImageKind;
use proptest::prelude::*;
use ring::digest::{SHA256, SHA384, digest};

pub const KERNEL: u16 = 1;
pub const CMDLINE: u16 = 2;
pub const RAMDISK: u16 = 3;
pub const SIGNATURE: u16 = 4;
pub const METADATA: u16 = 5;

/// An EIF to write: its version, flags and sections in file order.
pub struct Eif {
    pub version: u16,
    pub flags: u16,
    pub sections: Vec<(u16, Vec<u8>)>,
}

impl Eif {
    /// The usual layout: kernel, cmdline, metadata, then the ramdisks.
    pub fn new(kernel: &[u8], cmdline: &[u8], ramdisks: &[&[u8]]) -> Self {
        let mut sections = vec![
            (KERNEL, kernel.to_vec()),
            (CMDLINE, cmdline.to_vec()),
            (METADATA, br#"{"ImageName":"test"}"#.to_vec()),
        ];
        sections.extend(ramdisks.iter().map(|r| (RAMDISK, r.to_vec())));
        Self {
            version: 4,
            flags: 0,
            sections,
        }
    }

    /// Appends a signature section naming `cert_pem` (serde's encoding: arrays of integers).
    pub fn signed(mut self, cert_pem: &[u8]) -> Self {
        self.sections.push((SIGNATURE, signature_section(cert_pem)));
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let mut header = Vec::with_capacity(548);
        header.extend_from_slice(b".eif");
        header.extend_from_slice(&self.version.to_be_bytes());
        header.extend_from_slice(&self.flags.to_be_bytes());
        header.extend_from_slice(&(1024u64 * 1024 * 1024).to_be_bytes());
        header.extend_from_slice(&2u64.to_be_bytes());
        header.extend_from_slice(&0u16.to_be_bytes());
        let count = u16::try_from(self.sections.len()).unwrap();
        header.extend_from_slice(&count.to_be_bytes());
        let mut offsets = [0u64; 32];
        let mut sizes = [0u64; 32];
        let mut at = 548u64;
        for (i, (_, data)) in self.sections.iter().enumerate() {
            let len = u64::try_from(data.len()).unwrap();
            offsets[i] = at;
            sizes[i] = len;
            at += 12 + len;
        }
        for v in offsets.iter().chain(sizes.iter()) {
            header.extend_from_slice(&v.to_be_bytes());
        }
        header.extend_from_slice(&0u32.to_be_bytes());
        let mut body = Vec::new();
        for (kind, data) in &self.sections {
            body.extend_from_slice(&kind.to_be_bytes());
            body.extend_from_slice(&0u16.to_be_bytes());
            body.extend_from_slice(&u64::try_from(data.len()).unwrap().to_be_bytes());
            body.extend_from_slice(data);
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header);
        crc.update(&body);
        header.extend_from_slice(&crc.finalize().to_be_bytes());
        assert_eq!(header.len(), 548);
        header.extend_from_slice(&body);
        header
    }
}

/// A signature section as `aws-nitro-enclaves-image-format` writes it: a CBOR array of one
/// `PcrSignature` map whose byte vectors are arrays of integers.
pub fn signature_section(cert_pem: &[u8]) -> Vec<u8> {
    use ciborium::Value;
    let ints = |b: &[u8]| Value::Array(b.iter().map(|x| Value::Integer((*x).into())).collect());
    let entry = Value::Map(vec![
        (Value::Text("signing_certificate".into()), ints(cert_pem)),
        (
            Value::Text("signature".into()),
            ints(&[0xd2, 0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0, 0x40, 0x40]),
        ),
    ]);
    let mut out = Vec::new();
    ciborium::ser::into_writer(&Value::Array(vec![entry]), &mut out).unwrap();
    out
}

/// Rewrites the CRC field after a test changed other bytes on purpose.
pub fn fix_crc(eif: &mut [u8]) {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&eif[..544]);
    crc.update(&eif[548..]);
    let value = crc.finalize().to_be_bytes();
    eif[544..548].copy_from_slice(&value);
}

pub fn kernel() -> Vec<u8> {
    (0..70_000u32)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect()
}
pub const CMDLINE_TEXT: &[u8] = b"reboot=k panic=30 pci=off nomodules console=ttyS0";
pub const RAMDISKS: [&[u8]; 3] = [
    b"boot ramdisk: init and nsm",
    b"application ramdisk one",
    b"application ramdisk two",
];

/// The known answers for `kernel()`, `CMDLINE_TEXT` and `RAMDISKS`, from Python's hashlib.
const PCR0: &str = "2f5ea2b73bfd3e580557777184fa1874d0191e987c2b93c1095f90bbf48137728e1c23c6889479c17384ea29a290f17f";
const PCR1: &str = "80e16856bce4f62deaa5196a14904447461e1434bc487a10bdeb70a31bb94a60b262e99dd560865ba6fca4eac946342a";
const PCR2: &str = "a77a9e4e3d057f288e91cfc2549973e76aa5038c1bc7573f19ca848d2ce391a75e790b67ac437e2ff43572367271fb29";
/// PCR2 with no application ramdisk: the extend by the SHA-384 of nothing.
const PCR2_EMPTY: &str = "21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c10edb30948c90ba67310f7b964fc500a";
/// PCR8 for the AWS Nitro root certificate as signing certificate.
const PCR8_AWS_ROOT: &str = "df3a0511a411c6a5628d91a189a052d281dec8153ffecde6bdc1a059825c32e4bfb7fc95b367564a64812a8795af8f8a";

pub fn sample() -> Vec<u8> {
    Eif::new(&kernel(), CMDLINE_TEXT, &RAMDISKS).build()
}

/// `SHA-384(0⁴⁸ ‖ SHA-384(parts…))`, written out with ring alone.
fn independent_pcr(parts: &[&[u8]]) -> String {
    let data: Vec<u8> = parts.concat();
    let mut input = vec![0u8; 48];
    input.extend_from_slice(digest(&SHA384, &data).as_ref());
    hex::encode(digest(&SHA384, &input))
}

fn err_of(eif: &[u8]) -> EifError {
    measure_eif(eif).expect_err("the EIF must be refused")
}

/// Two EIFs written by the real `eif_build` 0.2.1 (aws-nitro-enclaves-image-format 0.3.0), and
/// the PCRs it printed for them (see tests/data/README.md).
#[test]
fn eifs_from_eif_build_measure_as_eif_build_printed() {
    const PCR0: &str = "ca8a2d8f16ed3e43ceaf2cc4f7186a8f3cd2bb4031f59c515731afc4834e7f62c77e4c4c4d29a03ac416a6879a18daef";
    const PCR1: &str = "3e5d809145e6f9c1aa28b48620339c823dacedbb99025478e564081b08400516616478d6eaf128b2a4910293a008463a";
    const PCR2: &str = "de9fd794811e3bc7fbc35cfc45d29349af2a511f6d3b82437931bfef89fbf74c4189822b256402b37c29f1fc8c6c39a8";
    const PCR8: &str = "0939b36f044ecc9344f5681e8e5a74f6b4ba04fc99eac798cb74e5a118ff78b7790c011873397b0d72916661a5111bdb";
    for (name, pcr8) in [
        ("eif_build-0.2.1-unsigned.eif", None),
        ("eif_build-0.2.1-signed.eif", Some(PCR8)),
    ] {
        let bytes = crate::data(name);
        let m = measure_eif(bytes.as_slice())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .measurements();
        assert_eq!(
            (m.pcr0.as_str(), m.pcr1.as_str(), m.pcr2.as_str()),
            (PCR0, PCR1, PCR2),
            "{name}"
        );
        assert_eq!(m.pcr8.as_deref(), pcr8, "{name}");
        assert_eq!(
            m.eif_sha256.as_deref(),
            Some(hex::encode(digest(&SHA256, &bytes)).as_str())
        );
    }
}

#[test]
fn known_answer_pcrs_of_an_unsigned_eif() {
    let eif = sample();
    let m = measure_eif(eif.as_slice()).unwrap();
    assert_eq!(hex::encode(m.pcr0), PCR0);
    assert_eq!(hex::encode(m.pcr1), PCR1);
    assert_eq!(hex::encode(m.pcr2), PCR2);
    assert_eq!(m.pcr8, None);
    let k = kernel();
    let [r0, r1, r2] = RAMDISKS;
    assert_eq!(PCR0, independent_pcr(&[&k, CMDLINE_TEXT, r0, r1, r2]));
    assert_eq!(PCR1, independent_pcr(&[&k, CMDLINE_TEXT, r0]));
    assert_eq!(PCR2, independent_pcr(&[r1, r2]));

    assert_eq!(m.version, 4);
    assert_eq!(m.len, u64::try_from(eif.len()).unwrap());
    assert_eq!(m.sha256.as_slice(), digest(&SHA256, &eif).as_ref());
    let kinds: Vec<SectionKind> = m.sections.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            SectionKind::Kernel,
            SectionKind::Cmdline,
            SectionKind::Metadata,
            SectionKind::Ramdisk,
            SectionKind::Ramdisk,
            SectionKind::Ramdisk
        ]
    );
    assert_eq!(m.sections[0].offset, 548);

    let published = m.measurements();
    assert_eq!(published.kind, ImageKind::Eif);
    assert_eq!(
        (published.pcr0.as_str(), published.pcr1.as_str()),
        (PCR0, PCR1)
    );
    assert_eq!(published.pcr2, PCR2);
    assert_eq!(published.pcr8, None);
    assert_eq!(
        published.eif_sha256.as_deref(),
        Some(hex::encode(digest(&SHA256, &eif)).as_str())
    );
    assert_eq!(published.eif_bytes, Some(m.len));
    assert!(published.inputs.is_empty());
}

#[test]
fn the_metadata_section_is_not_measured_and_may_be_absent() {
    let with = measure_eif(sample().as_slice()).unwrap();
    let mut eif = Eif::new(&kernel(), CMDLINE_TEXT, &RAMDISKS);
    eif.sections.retain(|(kind, _)| *kind != METADATA);
    eif.version = 2;
    let without = measure_eif(eif.build().as_slice()).unwrap();
    assert_eq!(
        (with.pcr0, with.pcr1, with.pcr2),
        (without.pcr0, without.pcr1, without.pcr2)
    );
}

#[test]
fn one_ramdisk_leaves_pcr2_the_extend_of_nothing() {
    let eif = Eif::new(b"k", b"c", &[b"only"]).build();
    let m = measure_eif(eif.as_slice()).unwrap();
    assert_eq!(hex::encode(m.pcr2), PCR2_EMPTY);
    assert_eq!(
        hex::encode(m.pcr1),
        hex::encode(extend_from_zero(digest(&SHA384, b"kconly").as_ref()))
    );
    assert_eq!(m.pcr0, m.pcr1);
}

#[test]
fn a_signed_eif_has_pcr8_of_its_certificate() {
    let eif = Eif::new(&kernel(), CMDLINE_TEXT, &RAMDISKS)
        .signed(AWS_NITRO_ROOT_G1_PEM.as_bytes())
        .build();
    let m = measure_eif(eif.as_slice()).unwrap();
    assert_eq!(m.pcr8.map(hex::encode).as_deref(), Some(PCR8_AWS_ROOT));
    assert_eq!(hex::encode(m.pcr0), PCR0, "the signature is not measured");
    let der = m.signing_certificate.as_deref().unwrap();
    assert_eq!(
        hex::encode(digest(&SHA256, der)),
        "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
    );
    assert_eq!(m.measurements().pcr8.as_deref(), Some(PCR8_AWS_ROOT));
}

#[test]
fn a_signature_section_with_cbor_byte_strings_reads_the_same() {
    use ciborium::Value;
    let entry = Value::Map(vec![
        (
            Value::Text("signing_certificate".into()),
            Value::Bytes(AWS_NITRO_ROOT_G1_PEM.as_bytes().to_vec()),
        ),
        (Value::Text("signature".into()), Value::Bytes(vec![1, 2])),
    ]);
    let mut section = Vec::new();
    ciborium::ser::into_writer(&Value::Array(vec![entry]), &mut section).unwrap();
    let mut eif = Eif::new(b"k", b"c", &[b"r"]);
    eif.sections.push((SIGNATURE, section));
    let m = measure_eif(eif.build().as_slice()).unwrap();
    assert_eq!(m.pcr8.map(hex::encode).as_deref(), Some(PCR8_AWS_ROOT));
}

#[test]
fn bad_signature_sections_are_refused() {
    let not_pem = signature_section(b"not a certificate");
    let key_pem =
        signature_section(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    let not_der =
        signature_section(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    let mut trailing = signature_section(AWS_NITRO_ROOT_G1_PEM.as_bytes());
    trailing.push(0);
    for (name, section) in [
        ("not PEM", not_pem),
        ("a key", key_pem),
        ("not DER", not_der),
        ("trailing", trailing),
        ("not CBOR", vec![0xff]),
        ("empty array", vec![0x80]),
    ] {
        let mut eif = Eif::new(b"k", b"c", &[b"r"]);
        eif.sections.push((SIGNATURE, section));
        let err = err_of(&eif.build());
        assert!(matches!(err, EifError::Signature { .. }), "{name}: {err}");
    }
}

#[test]
fn wrong_magic_is_not_an_eif() {
    let mut eif = sample();
    eif[..4].copy_from_slice(b"\x7fELF");
    let err = err_of(&eif);
    assert!(matches!(err, EifError::NotEif { .. }), "{err}");
    assert!(err.to_string().contains("7f454c46"), "{err}");
    let err = err_of(b"");
    assert_eq!(err.to_string(), "not an EIF: the file is empty");
    let err = err_of(b"PK\x03\x04 a zip archive, long enough to hold a whole EIF header...");
    assert!(matches!(err, EifError::NotEif { .. }), "{err}");
}

#[test]
fn every_truncation_is_refused_and_says_where() {
    let eif = Eif::new(&kernel(), CMDLINE_TEXT, &RAMDISKS).build();
    for cut in (1..eif.len())
        .step_by(97)
        .chain([547, 548, 559, 560, eif.len() - 1])
    {
        let err = err_of(&eif[..cut]);
        assert!(
            matches!(err, EifError::Truncated { .. }),
            "cut at {cut}: {err}"
        );
    }
    let err = err_of(&eif[..300]);
    assert!(err.to_string().contains("the EIF header"), "{err}");
    let err = err_of(&eif[..eif.len() - 1]);
    assert!(
        err.to_string().contains("section 5 (ramdisk)") && err.to_string().contains("22 of them"),
        "{err}"
    );
    let err = err_of(&eif[..548 + 5]);
    assert!(err.to_string().contains("the header of section 0"), "{err}");
}

#[test]
fn a_changed_byte_breaks_the_crc() {
    let eif = sample();
    for at in [10, 100, 544, 548 + 12 + 1000, eif.len() - 1] {
        let mut bad = eif.clone();
        bad[at] ^= 0x01;
        let err = err_of(&bad);
        assert!(
            matches!(err, EifError::CrcMismatch { .. }),
            "byte {at}: {err}"
        );
    }
}

#[test]
fn unsupported_versions_are_refused() {
    for version in [0u16, 1, 5, 0xffff] {
        let mut eif = Eif::new(b"k", b"c", &[b"r"]);
        eif.version = version;
        let err = err_of(&eif.build());
        assert!(
            matches!(err, EifError::UnsupportedVersion { version: v } if v == version),
            "{err}"
        );
    }
}

#[test]
fn inconsistent_section_tables_are_malformed() {
    let malformed = |eif: &[u8], needle: &str| {
        let err = err_of(eif);
        assert!(
            matches!(err, EifError::Malformed { .. }) && err.to_string().contains(needle),
            "expected {needle:?}: {err}"
        );
    };
    let good = Eif::new(b"kernel", b"cmdline", &[b"ramdisk"]).build();

    // The header's offset for section 1 is off by one.
    let mut eif = good.clone();
    let at = 28 + 8;
    let v = u64::from_be_bytes(eif[at..at + 8].try_into().unwrap()) + 1;
    eif[at..at + 8].copy_from_slice(&v.to_be_bytes());
    fix_crc(&mut eif);
    malformed(&eif, "puts section 1 at offset");

    // The header's size for section 0 disagrees with the section header.
    let mut eif = good.clone();
    let at = 28 + 8 * 32;
    eif[at..at + 8].copy_from_slice(&5u64.to_be_bytes());
    fix_crc(&mut eif);
    malformed(&eif, "by the EIF header");

    // A section type that does not exist, and the invalid type 0.
    for code in [0u16, 6, 0x0100] {
        let mut eif = good.clone();
        eif[548..550].copy_from_slice(&code.to_be_bytes());
        fix_crc(&mut eif);
        malformed(&eif, "not an EIF section type");
    }

    // Section counts out of range.
    for count in [0u16, 33, 0xffff] {
        let mut eif = good.clone();
        eif[26..28].copy_from_slice(&count.to_be_bytes());
        fix_crc(&mut eif);
        malformed(&eif, "sections; an EIF has");
    }

    // Bytes after the last section.
    let mut eif = good.clone();
    eif.extend_from_slice(b"extra");
    fix_crc(&mut eif);
    malformed(&eif, "bytes after the last");
}

/// Sections as (type, data), for tables of cases.
type Sections<'a> = Vec<(u16, &'a [u8])>;

#[test]
fn measured_sections_must_be_kernel_cmdline_ramdisks() {
    let cases: [(&str, Sections<'_>); 6] = [
        ("no kernel", vec![(METADATA, b"{}")]),
        (
            "out of place",
            vec![(CMDLINE, b"c"), (KERNEL, b"k"), (RAMDISK, b"r")],
        ),
        (
            "out of place",
            vec![(KERNEL, b"k"), (RAMDISK, b"r"), (CMDLINE, b"c")],
        ),
        (
            "out of place",
            vec![
                (KERNEL, b"k"),
                (KERNEL, b"k"),
                (CMDLINE, b"c"),
                (RAMDISK, b"r"),
            ],
        ),
        (
            "no ramdisk",
            vec![(KERNEL, b"k"), (CMDLINE, b"c"), (METADATA, b"{}")],
        ),
        (
            "second metadata",
            vec![
                (KERNEL, b"k"),
                (CMDLINE, b"c"),
                (METADATA, b"{}"),
                (RAMDISK, b"r"),
                (METADATA, b"{}"),
            ],
        ),
    ];
    for (needle, sections) in cases {
        let eif = Eif {
            version: 4,
            flags: 0,
            sections: sections.into_iter().map(|(k, d)| (k, d.to_vec())).collect(),
        };
        let err = err_of(&eif.build());
        assert!(
            matches!(err, EifError::Malformed { .. }) && err.to_string().contains(needle),
            "expected {needle:?}: {err}"
        );
    }
}

#[test]
fn a_huge_signature_section_is_refused_before_it_is_read() {
    // The section claims 1 GiB; the file has 3 bytes of it. No allocation follows the claim.
    let mut eif = Eif::new(b"k", b"c", &[b"r"]);
    eif.sections.push((SIGNATURE, b"sig".to_vec()));
    let mut bytes = eif.build();
    let sig_header = bytes.len() - 3 - 12;
    let huge = 1u64 << 30;
    bytes[sig_header + 4..sig_header + 12].copy_from_slice(&huge.to_be_bytes());
    let at = 28 + 8 * 32 + 8 * 4;
    bytes[at..at + 8].copy_from_slice(&huge.to_be_bytes());
    let err = err_of(&bytes);
    assert!(
        matches!(err, EifError::Malformed { .. }) && err.to_string().contains("signature section"),
        "{err}"
    );
}

#[test]
fn an_aarch64_eif_says_so() {
    let mut eif = Eif::new(b"k", b"c", &[b"r"]);
    eif.flags = 1;
    let m = measure_eif(eif.build().as_slice()).unwrap();
    assert_eq!(m.arch.name(), "aarch64");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any single changed byte is caught (the CRC covers every byte but itself, and changing
    /// the CRC breaks the match), and no input makes the parser panic.
    #[test]
    fn any_changed_byte_is_refused(at in 0usize..4096, xor in 1u8..=255) {
        let eif = Eif::new(b"kernel bytes", b"console=ttyS0", &[b"boot", b"app"])
            .signed(AWS_NITRO_ROOT_G1_PEM.as_bytes())
            .build();
        let mut bad = eif.clone();
        let at = at % bad.len();
        bad[at] ^= xor;
        prop_assert!(measure_eif(bad.as_slice()).is_err());
    }

    #[test]
    fn arbitrary_bytes_after_the_magic_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut bytes = b".eif".to_vec();
        bytes.extend_from_slice(&tail);
        let _ = measure_eif(bytes.as_slice());
    }
}
