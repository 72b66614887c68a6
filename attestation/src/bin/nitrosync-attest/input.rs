//! Reading a document given as raw CBOR, hex or base64, and a SAML metadata file.

use std::io::Read as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_PAD_INDIFFERENT, URL_SAFE_PAD_INDIFFERENT};

/// Longest input read: base64 or hex of the largest document, with room for whitespace.
const MAX_INPUT_LEN: usize = 4 * nitrosync_attestation::MAX_DOCUMENT_LEN;

/// Reads a document from a file (or standard input for `-`) and decodes hex or base64 text.
pub fn read_document(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let reader: Box<dyn std::io::Read> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )
    };
    reader
        .take(u64::try_from(MAX_INPUT_LEN + 1).unwrap_or(u64::MAX))
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() > MAX_INPUT_LEN {
        bail!("{} is larger than {MAX_INPUT_LEN} bytes", path.display());
    }
    decode(bytes)
}

/// Tells raw CBOR (a COSE_Sign1 array or tag 18) from hex and base64 text.
fn decode(bytes: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    if matches!(bytes.first(), Some(0x84 | 0xd2)) {
        return Ok(bytes);
    }
    let text: Vec<u8> = bytes
        .into_iter()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if text.is_empty() {
        bail!("the document is empty");
    }
    if text.len().is_multiple_of(2) && text.iter().all(u8::is_ascii_hexdigit) {
        return hex::decode(&text).context("invalid hex");
    }
    STANDARD_PAD_INDIFFERENT
        .decode(&text)
        .or_else(|_| URL_SAFE_PAD_INDIFFERENT.decode(&text))
        .context("the document is neither CBOR, hex nor base64")
}

/// Opens a file, or standard input for `-`, for reading once from start to end.
pub fn open(path: &Path) -> anyhow::Result<Box<dyn std::io::Read>> {
    if path == Path::new("-") {
        return Ok(Box::new(std::io::BufReader::new(std::io::stdin().lock())));
    }
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(Box::new(std::io::BufReader::new(file)))
}

/// Reads a SAML metadata file: UTF-8 text of at most [`nitrosync_attestation::MAX_METADATA_LEN`]
/// bytes.
pub fn read_metadata(path: &Path) -> anyhow::Result<String> {
    let max = nitrosync_attestation::MAX_METADATA_LEN;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(u64::try_from(max + 1).unwrap_or(u64::MAX))
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() > max {
        bail!("{} is larger than {max} bytes", path.display());
    }
    String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", path.display()))
}
