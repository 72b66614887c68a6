//! Measuring an Enclave Image File (EIF): the PCRs the Nitro hypervisor records when it boots
//! the image, computed in one pass over the file.
//!
//! The specification is `aws-nitro-enclaves-image-format` 0.8.1, the crate behind
//! `nitro-cli build-enclave` and `eif_build` (it is not a dependency: it pulls OpenSSL and the
//! AWS SDK):
//!
//! - `src/defs/mod.rs`: the 548-byte big-endian `EifHeader` (magic `.eif`, version, flags,
//!   default memory and CPUs, section count, 32 section offsets, 32 section sizes, and a CRC-32
//!   (ISO-HDLC) of the whole file except the CRC field itself), and the 12-byte
//!   `EifSectionHeader` (type, flags, data size) in front of every section. Offsets point at
//!   section headers; sizes count the data after them.
//! - `src/utils/eif_reader.rs` (`EifReader::from_eif`) and `src/utils/mod.rs`
//!   (`EifBuilder::measure`, `get_pcrs`): PCR0 measures the kernel, the cmdline and every
//!   ramdisk; PCR1 the kernel, the cmdline and the first ramdisk; PCR2 the other ramdisks; PCR8
//!   the DER of a signed image's signing certificate. The metadata and signature sections are
//!   not measured.
//! - `src/defs/eif_hasher.rs` (`new_without_cache`, `tpm_extend_finalize_reset`): each PCR is a
//!   single extend of a zeroed register by the SHA-384 of its concatenated data,
//!   `PCR = SHA-384(0⁴⁸ ‖ SHA-384(data))`.
//!
//! Every byte of the file is treated as hostile: the magic, the version, the section table
//! (each section where the header says, with the size it says), the order of the measured
//! sections, the end of the file and the CRC are all checked, and nothing is allocated from a
//! length in the file except the signature section, which is bounded first.

use std::io::{ErrorKind, Read};
use std::ops::RangeInclusive;

use ciborium::Value;
use nitrosync_shared::measurements::{ImageKind, Measurements, PCR_LEN};
use ring::digest::{Context, SHA256, SHA384};

/// The first four bytes of every EIF: `.eif`.
pub const EIF_MAGIC: [u8; 4] = *b".eif";
/// Length of the EIF header.
pub const EIF_HEADER_LEN: usize = 548;
/// Length of the header in front of each section.
pub const EIF_SECTION_HEADER_LEN: usize = 12;
/// Most sections an EIF header can describe.
pub const EIF_MAX_SECTIONS: usize = 32;
/// The EIF versions this module reads: 2 added the CRC, 3 the signature section, 4 the metadata
/// section.
pub const EIF_VERSIONS: RangeInclusive<u16> = 2..=4;
/// Largest signature section accepted (a CBOR array holding a PEM certificate and a COSE_Sign1
/// over PCR0; real ones are about 2 KiB).
pub const MAX_SIGNATURE_SECTION_LEN: u64 = 64 * 1024;

/// Header flag bit set for an aarch64 image, clear for x86_64.
const FLAG_ARCH_ARM64: u16 = 0x1;
/// Offset of the CRC field, the header's last four bytes.
const CRC_OFFSET: usize = EIF_HEADER_LEN - 4;
/// Offsets of the section offset and size tables in the header.
const OFFSETS_AT: usize = 28;
const SIZES_AT: usize = OFFSETS_AT + 8 * EIF_MAX_SECTIONS;
/// Section data is hashed in chunks of this size.
const CHUNK: usize = 64 * 1024;

/// Why an EIF could not be measured. Every variant is fatal and, except [`EifError::Io`], the
/// file's fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EifError {
    /// Reading the input failed.
    #[error("cannot read the EIF")]
    Io {
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The file does not start with the EIF magic `.eif`.
    #[error("not an EIF: {}", describe_start(found))]
    NotEif {
        /// The first bytes of the file (at most four).
        found: Vec<u8>,
    },

    /// The file ends inside the header, a section header or a section.
    #[error(
        "the EIF is truncated: {what} at offset {offset} is {needed} bytes, but the file ends \
         after {available} of them"
    )]
    Truncated {
        /// What was being read.
        what: String,
        /// Where it starts in the file.
        offset: u64,
        /// Its length.
        needed: u64,
        /// How many of its bytes the file has.
        available: u64,
    },

    /// The header's version is not one of [`EIF_VERSIONS`].
    #[error(
        "unsupported EIF version {version} (versions {} to {} are read)",
        EIF_VERSIONS.start(), EIF_VERSIONS.end()
    )]
    UnsupportedVersion {
        /// The version in the header.
        version: u16,
    },

    /// The header or a section header is inconsistent, a section has an unknown type, the
    /// measured sections are missing or out of order, or bytes follow the last section.
    #[error("malformed EIF: {reason}")]
    Malformed {
        /// What is wrong, for humans.
        reason: String,
    },

    /// The CRC-32 in the header does not match the file's contents.
    #[error(
        "the EIF header's CRC-32 is {stored:08x} but the file's contents give {computed:08x}: \
         the file is corrupt or was altered"
    )]
    CrcMismatch {
        /// The CRC in the header.
        stored: u32,
        /// The CRC of the contents.
        computed: u32,
    },

    /// The signature section does not hold a readable signing certificate.
    #[error("malformed EIF signature section: {reason}")]
    Signature {
        /// What is wrong, for humans.
        reason: String,
    },
}

fn describe_start(found: &[u8]) -> String {
    if found.is_empty() {
        "the file is empty".into()
    } else {
        format!(
            "it starts with {}, where an EIF starts with {} (\".eif\")",
            hex::encode(found),
            hex::encode(EIF_MAGIC)
        )
    }
}

fn malformed(reason: impl Into<String>) -> EifError {
    EifError::Malformed {
        reason: reason.into(),
    }
}

fn signature_err(reason: impl Into<String>) -> EifError {
    EifError::Signature {
        reason: reason.into(),
    }
}

/// The type of an EIF section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SectionKind {
    /// The kernel (bzImage or Image); measured in PCR0 and PCR1.
    Kernel,
    /// The kernel command line; measured in PCR0 and PCR1.
    Cmdline,
    /// A ramdisk (cpio archive); the first in PCR0 and PCR1, the others in PCR0 and PCR2.
    Ramdisk,
    /// The signature: the signing certificate (measured in PCR8) and a signature over PCR0.
    Signature,
    /// Build metadata (JSON); not measured.
    Metadata,
}

impl SectionKind {
    fn from_code(code: u16) -> Option<Self> {
        match code {
            1 => Some(Self::Kernel),
            2 => Some(Self::Cmdline),
            3 => Some(Self::Ramdisk),
            4 => Some(Self::Signature),
            5 => Some(Self::Metadata),
            _ => None,
        }
    }

    /// The type's code in a section header.
    pub fn code(self) -> u16 {
        match self {
            Self::Kernel => 1,
            Self::Cmdline => 2,
            Self::Ramdisk => 3,
            Self::Signature => 4,
            Self::Metadata => 5,
        }
    }

    /// A lowercase name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kernel => "kernel",
            Self::Cmdline => "cmdline",
            Self::Ramdisk => "ramdisk",
            Self::Signature => "signature",
            Self::Metadata => "metadata",
        }
    }
}

impl std::fmt::Display for SectionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One section of an EIF, as its header describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EifSection {
    /// Its type.
    pub kind: SectionKind,
    /// The flags of its section header.
    pub flags: u16,
    /// Offset of its section header in the file.
    pub offset: u64,
    /// Length of its data (after the section header).
    pub size: u64,
}

/// The CPU architecture an EIF is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EifArch {
    /// x86_64 (header flag bit 0 clear).
    X86_64,
    /// aarch64 (header flag bit 0 set).
    Aarch64,
}

impl EifArch {
    /// The architecture's usual name.
    pub fn name(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Aarch64 => "aarch64",
        }
    }
}

/// What [`measure_eif`] found: the PCRs, the layout, and facts about the file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EifMeasurement {
    /// The EIF version.
    pub version: u16,
    /// The architecture.
    pub arch: EifArch,
    /// The header's default enclave memory, in bytes.
    pub default_mem: u64,
    /// The header's default number of vCPUs.
    pub default_cpus: u64,
    /// The sections in file order.
    pub sections: Vec<EifSection>,
    /// PCR0: kernel, cmdline and every ramdisk.
    pub pcr0: [u8; PCR_LEN],
    /// PCR1: kernel, cmdline and the first ramdisk.
    pub pcr1: [u8; PCR_LEN],
    /// PCR2: the ramdisks after the first.
    pub pcr2: [u8; PCR_LEN],
    /// PCR8: the signing certificate, for a signed EIF.
    pub pcr8: Option<[u8; PCR_LEN]>,
    /// The signing certificate (DER) of a signed EIF. Its signature over PCR0 is not checked.
    pub signing_certificate: Option<Vec<u8>>,
    /// The CRC-32 of the file (equal to the header's).
    pub crc32: u32,
    /// SHA-256 of the whole file.
    pub sha256: [u8; 32],
    /// Length of the file in bytes.
    pub len: u64,
}

impl EifMeasurement {
    /// The measurements in the published `measurements.json` form (kind `eif`, no inputs).
    pub fn measurements(&self) -> Measurements {
        let mut m = Measurements::new(ImageKind::Eif, &self.pcr0, &self.pcr1, &self.pcr2);
        m.pcr8 = self.pcr8.map(hex::encode);
        m.eif_sha256 = Some(hex::encode(self.sha256));
        m.eif_bytes = Some(self.len);
        m
    }
}

/// A PCR after one extend of the zeroed register by `data_digest`:
/// `SHA-384(0⁴⁸ ‖ data_digest)`.
pub fn extend_from_zero(data_digest: &[u8]) -> [u8; PCR_LEN] {
    let mut ctx = Context::new(&SHA384);
    ctx.update(&[0u8; PCR_LEN]);
    ctx.update(data_digest);
    let mut pcr = [0u8; PCR_LEN];
    pcr.copy_from_slice(ctx.finish().as_ref());
    pcr
}

fn len64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

/// The input, read once: every byte read goes into the file's SHA-256 and length.
struct Input<R> {
    inner: R,
    pos: u64,
    sha256: Context,
    crc: crc32fast::Hasher,
    chunk: Vec<u8>,
}

impl<R: Read> Input<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            pos: 0,
            sha256: Context::new(&SHA256),
            crc: crc32fast::Hasher::new(),
            chunk: Vec::new(),
        }
    }

    /// Reads until `buf` is full or the input ends; returns how many bytes were read.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, EifError> {
        let mut n = 0;
        while n < buf.len() {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => return Err(EifError::Io { source }),
            }
        }
        self.sha256.update(&buf[..n]);
        self.pos = self.pos.saturating_add(len64(n));
        Ok(n)
    }

    /// Reads up to `size` bytes of section data in chunks, adding them to the CRC and handing
    /// them to `sink`; returns how many bytes there were (less than `size` if the input ended).
    fn section_data(&mut self, size: u64, mut sink: impl FnMut(&[u8])) -> Result<u64, EifError> {
        let mut chunk = std::mem::take(&mut self.chunk);
        chunk.resize(CHUNK, 0);
        let mut done = 0u64;
        while done < size {
            let want = usize::try_from((size - done).min(len64(CHUNK))).unwrap_or(CHUNK);
            let got = self.fill(&mut chunk[..want])?;
            self.crc.update(&chunk[..got]);
            sink(&chunk[..got]);
            done += len64(got);
            if got < want {
                break;
            }
        }
        self.chunk = chunk;
        Ok(done)
    }
}

/// Where the measured sections have got to: kernel, then cmdline, then ramdisks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    WantKernel,
    WantCmdline,
    Ramdisks(usize),
}

/// The PCR hashers: each accumulates the SHA-384 of its data.
struct Pcrs {
    pcr0: Context,
    pcr1: Context,
    pcr2: Context,
}

/// Reads an EIF once from `reader` and measures it: PCR0, PCR1, PCR2, PCR8 for a signed image,
/// the file's SHA-256 and length. See the module documentation for the format and the checks.
pub fn measure_eif<R: Read>(reader: R) -> Result<EifMeasurement, EifError> {
    let mut input = Input::new(reader);

    let mut header = [0u8; EIF_HEADER_LEN];
    let got = input.fill(&mut header)?;
    let start = &header[..got.min(EIF_MAGIC.len())];
    if got == 0 || !EIF_MAGIC.starts_with(start) {
        return Err(EifError::NotEif {
            found: start.to_vec(),
        });
    }
    if got < EIF_HEADER_LEN {
        return Err(EifError::Truncated {
            what: "the EIF header".into(),
            offset: 0,
            needed: len64(EIF_HEADER_LEN),
            available: len64(got),
        });
    }
    input.crc.update(&header[..CRC_OFFSET]);

    let version = be16(&header, 4);
    if !EIF_VERSIONS.contains(&version) {
        return Err(EifError::UnsupportedVersion { version });
    }
    let flags = be16(&header, 6);
    let arch = if flags & FLAG_ARCH_ARM64 == 0 {
        EifArch::X86_64
    } else {
        EifArch::Aarch64
    };
    let default_mem = be64(&header, 8);
    let default_cpus = be64(&header, 16);
    let count = usize::from(be16(&header, 26));
    if count == 0 || count > EIF_MAX_SECTIONS {
        return Err(malformed(format!(
            "the header declares {count} sections; an EIF has 3 to {EIF_MAX_SECTIONS}"
        )));
    }

    let mut pcrs = Pcrs {
        pcr0: Context::new(&SHA384),
        pcr1: Context::new(&SHA384),
        pcr2: Context::new(&SHA384),
    };
    let mut stage = Stage::WantKernel;
    let mut signature: Option<Vec<u8>> = None;
    let mut metadata_seen = false;
    let mut sections = Vec::with_capacity(count);

    for i in 0..count {
        let declared_offset = be64(&header, OFFSETS_AT + 8 * i);
        let declared_size = be64(&header, SIZES_AT + 8 * i);
        let offset = input.pos;
        if declared_offset != offset {
            return Err(malformed(format!(
                "the header puts section {i} at offset {declared_offset}, but it starts at \
                 offset {offset} (sections follow one another from the end of the header)"
            )));
        }
        let mut section_header = [0u8; EIF_SECTION_HEADER_LEN];
        let got = input.fill(&mut section_header)?;
        if got < EIF_SECTION_HEADER_LEN {
            return Err(EifError::Truncated {
                what: format!("the header of section {i}"),
                offset,
                needed: len64(EIF_SECTION_HEADER_LEN),
                available: len64(got),
            });
        }
        input.crc.update(&section_header);
        let code = be16(&section_header, 0);
        let kind = SectionKind::from_code(code).ok_or_else(|| {
            malformed(format!(
                "section {i} has type {code}, which is not an EIF section type (1 kernel, \
                 2 cmdline, 3 ramdisk, 4 signature, 5 metadata)"
            ))
        })?;
        let section_flags = be16(&section_header, 2);
        let size = be64(&section_header, 4);
        if size != declared_size {
            return Err(malformed(format!(
                "section {i} ({kind}) is {size} bytes by its own header but {declared_size} by \
                 the EIF header"
            )));
        }

        let data_offset = input.pos;
        let read = match kind {
            SectionKind::Kernel | SectionKind::Cmdline | SectionKind::Ramdisk => {
                let (next, to_pcr2) = match (kind, stage) {
                    (SectionKind::Kernel, Stage::WantKernel) => (Stage::WantCmdline, false),
                    (SectionKind::Cmdline, Stage::WantCmdline) => (Stage::Ramdisks(0), false),
                    (SectionKind::Ramdisk, Stage::Ramdisks(n)) => (Stage::Ramdisks(n + 1), n > 0),
                    _ => {
                        return Err(malformed(format!(
                            "section {i} is a {kind} out of place: the measured sections must \
                             be one kernel, then one cmdline, then the ramdisks"
                        )));
                    }
                };
                stage = next;
                input.section_data(size, |data| {
                    pcrs.pcr0.update(data);
                    if to_pcr2 {
                        pcrs.pcr2.update(data);
                    } else {
                        pcrs.pcr1.update(data);
                    }
                })?
            }
            SectionKind::Signature => {
                if signature.is_some() {
                    return Err(malformed(format!(
                        "section {i} is a second signature section"
                    )));
                }
                if size > MAX_SIGNATURE_SECTION_LEN {
                    return Err(malformed(format!(
                        "the signature section is {size} bytes, more than the \
                         {MAX_SIGNATURE_SECTION_LEN} accepted"
                    )));
                }
                let mut buf = Vec::new();
                let read = input.section_data(size, |data| buf.extend_from_slice(data))?;
                signature = Some(buf);
                read
            }
            SectionKind::Metadata => {
                if metadata_seen {
                    return Err(malformed(format!(
                        "section {i} is a second metadata section"
                    )));
                }
                metadata_seen = true;
                input.section_data(size, |_| {})?
            }
        };
        if read < size {
            return Err(EifError::Truncated {
                what: format!("section {i} ({kind})"),
                offset: data_offset,
                needed: size,
                available: read,
            });
        }
        sections.push(EifSection {
            kind,
            flags: section_flags,
            offset,
            size,
        });
    }

    match stage {
        Stage::WantKernel => return Err(malformed("the EIF has no kernel section")),
        Stage::WantCmdline => return Err(malformed("the EIF has no cmdline section")),
        Stage::Ramdisks(0) => return Err(malformed("the EIF has no ramdisk section")),
        Stage::Ramdisks(_) => {}
    }
    let end = input.pos;
    let mut probe = [0u8; 1];
    if input.fill(&mut probe)? != 0 {
        return Err(malformed(format!(
            "there are bytes after the last of the {count} sections the header declares, from \
             offset {end}"
        )));
    }
    let stored = be32(&header, CRC_OFFSET);
    let computed = input.crc.clone().finalize();
    if stored != computed {
        return Err(EifError::CrcMismatch { stored, computed });
    }

    let signing_certificate = signature.as_deref().map(signing_certificate).transpose()?;
    let pcr8 = signing_certificate.as_deref().map(|der| {
        let mut ctx = Context::new(&SHA384);
        ctx.update(der);
        extend_from_zero(ctx.finish().as_ref())
    });
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(input.sha256.clone().finish().as_ref());
    Ok(EifMeasurement {
        version,
        arch,
        default_mem,
        default_cpus,
        sections,
        pcr0: extend_from_zero(pcrs.pcr0.finish().as_ref()),
        pcr1: extend_from_zero(pcrs.pcr1.finish().as_ref()),
        pcr2: extend_from_zero(pcrs.pcr2.finish().as_ref()),
        pcr8,
        signing_certificate,
        crc32: computed,
        sha256,
        len: end,
    })
}

/// The signing certificate (DER) of a signature section: a CBOR array of
/// `PcrSignature { signing_certificate: PEM bytes, signature: COSE_Sign1 bytes }`, whose first
/// entry's certificate is the one measured in PCR8 (`EifReader::from_eif`). Byte strings are
/// accepted as CBOR byte strings or, as serde writes `Vec<u8>`, as arrays of integers.
fn signing_certificate(section: &[u8]) -> Result<Vec<u8>, EifError> {
    let mut rest = section;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut rest, 16)
        .map_err(|e| signature_err(format!("not CBOR: {e}")))?;
    if !rest.is_empty() {
        return Err(signature_err(format!(
            "{} bytes follow the CBOR value",
            rest.len()
        )));
    }
    let Value::Array(entries) = value else {
        return Err(signature_err("not a CBOR array"));
    };
    let Some(Value::Map(first)) = entries.first() else {
        return Err(signature_err(
            "the array's first entry is missing or not a map",
        ));
    };
    let pem_bytes = first
        .iter()
        .find(|(k, _)| k.as_text() == Some("signing_certificate"))
        .map(|(_, v)| bytes_of(v))
        .ok_or_else(|| signature_err("no signing_certificate"))?
        .ok_or_else(|| signature_err("signing_certificate is not a byte string"))?;
    let block = pem::parse(&pem_bytes)
        .map_err(|e| signature_err(format!("signing_certificate is not PEM: {e}")))?;
    if block.tag() != "CERTIFICATE" {
        return Err(signature_err(format!(
            "signing_certificate is a PEM {:?}, not a CERTIFICATE",
            block.tag()
        )));
    }
    let der = block.contents().to_vec();
    crate::CertificateSummary::parse(&der)
        .map_err(|e| signature_err(format!("signing_certificate: {e}")))?;
    Ok(der)
}

/// A CBOR byte string, or an array of integers 0 to 255 (serde's encoding of `Vec<u8>`).
fn bytes_of(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Bytes(b) => Some(b.clone()),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_integer()
                    .and_then(|i| u8::try_from(i128::from(i)).ok())
            })
            .collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_adds_up() {
        assert_eq!(SIZES_AT + 8 * EIF_MAX_SECTIONS + 4, CRC_OFFSET);
        assert_eq!(CRC_OFFSET + 4, EIF_HEADER_LEN);
    }

    #[test]
    fn extend_from_zero_is_sha384_of_zeros_and_digest() {
        let d = ring::digest::digest(&SHA384, b"abc");
        let mut both = vec![0u8; PCR_LEN];
        both.extend_from_slice(d.as_ref());
        assert_eq!(
            extend_from_zero(d.as_ref()).as_slice(),
            ring::digest::digest(&SHA384, &both).as_ref()
        );
    }

    #[test]
    fn short_inputs_are_not_eif_or_truncated() {
        for (input, not_eif) in [
            (&b""[..], true),
            (b".e", false),
            (b".eif", false),
            (b"\x7fELF", true),
            (b"x", true),
        ] {
            let err = measure_eif(input).unwrap_err();
            assert_eq!(
                matches!(err, EifError::NotEif { .. }),
                not_eif,
                "{input:?}: {err}"
            );
            if !not_eif {
                assert!(matches!(err, EifError::Truncated { .. }), "{err}");
            }
        }
    }

    #[test]
    fn byte_strings_in_both_encodings() {
        assert_eq!(bytes_of(&Value::Bytes(vec![1, 2])), Some(vec![1, 2]));
        let ints = Value::Array(vec![Value::Integer(1.into()), Value::Integer(255.into())]);
        assert_eq!(bytes_of(&ints), Some(vec![1, 255]));
        let bad = Value::Array(vec![Value::Integer(256.into())]);
        assert_eq!(bytes_of(&bad), None);
        assert_eq!(bytes_of(&Value::Text("x".into())), None);
    }
}
