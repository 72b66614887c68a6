//! Text and JSON renderings of verified, rejected and inspected documents.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

use nitrosync_attestation::{
    AttestationDocument, CertificateSummary, EifMeasurement, MetadataBinding, Policy, SectionKind,
    TrustRoot, VerifiedDocument, VerifyError,
};
use nitrosync_shared::measurements::Measurements;
use serde_json::{Value, json};

/// What the verification was run against, to say what was checked.
pub struct Checks<'a> {
    pub root: &'a TrustRoot,
    pub root_label: &'a str,
    pub policy: &'a Policy,
    pub now: SystemTime,
}

fn time(t: SystemTime) -> String {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) if d.as_secs() < 253_402_300_800 => humantime::format_rfc3339_millis(t).to_string(),
        _ => "(out of range)".into(),
    }
}

fn opt_hex(v: Option<&Vec<u8>>) -> Value {
    v.map_or(Value::Null, |b| Value::String(hex::encode(b)))
}

fn pcrs_json(pcrs: &BTreeMap<u16, Vec<u8>>) -> Value {
    pcrs.iter()
        .map(|(i, v)| (i.to_string(), Value::String(hex::encode(v))))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn age(c: &Checks<'_>, timestamp: SystemTime) -> String {
    let age = c.now.duration_since(timestamp).unwrap_or_default();
    let age = humantime::format_duration(std::time::Duration::from_secs(age.as_secs()));
    match c.policy.max_age {
        Some(max) => format!("{age} (maximum {})", humantime::format_duration(max)),
        None => format!("{age} (no maximum set)"),
    }
}

pub fn verified_text(v: &VerifiedDocument, c: &Checks<'_>) -> String {
    let mut out = String::from("OK: attestation document verified\n");
    let mut line = |k: &str, v: String| {
        let _ = writeln!(out, "  {k:<11} {v}");
    };
    line(
        "signature",
        "COSE_Sign1 ES384 over the payload, by the leaf certificate's P-384 key".into(),
    );
    line(
        "root",
        format!(
            "{} (sha256 {})",
            c.root_label,
            hex::encode(c.root.sha256_fingerprint())
        ),
    );
    line(
        "chain",
        format!(
            "valid at {}; leaf valid until {}",
            time(c.now),
            time(v.not_after)
        ),
    );
    line("digest", v.digest.clone());
    let pcrs = if c.policy.pcrs.is_empty() {
        "no expected values given".to_string()
    } else {
        let idx: Vec<String> = c.policy.pcrs.keys().map(|i| format!("PCR{i}")).collect();
        format!("{} match", idx.join(", "))
    };
    line("pcrs", pcrs);
    line(
        "debug",
        if v.debug {
            "debug-mode enclave (allowed by --allow-debug)"
        } else {
            "no"
        }
        .into(),
    );
    line(
        "nonce",
        if c.policy.nonce.is_some() {
            "matches"
        } else {
            "not required"
        }
        .into(),
    );
    line("age", age(c, v.timestamp));
    let _ = writeln!(out, "module_id   {}", v.module_id);
    let _ = writeln!(out, "timestamp   {}", time(v.timestamp));
    for (i, pcr) in &v.pcrs {
        let _ = writeln!(out, "PCR{i:<8} {}", hex::encode(pcr));
    }
    for (k, val) in [
        ("public_key", &v.public_key),
        ("user_data", &v.user_data),
        ("nonce", &v.nonce),
    ] {
        let shown = val.as_ref().map_or_else(|| "(none)".into(), hex::encode);
        let _ = writeln!(out, "{k:<11} {shown}");
    }
    out
}

pub fn verified_json(v: &VerifiedDocument, c: &Checks<'_>) -> Value {
    json!({
        "ok": true,
        "root_sha256": hex::encode(c.root.sha256_fingerprint()),
        "verified_at": time(c.now),
        "module_id": v.module_id,
        "timestamp": time(v.timestamp),
        "digest": v.digest,
        "pcrs": pcrs_json(&v.pcrs),
        "checked_pcrs": c.policy.pcrs.keys().collect::<Vec<_>>(),
        "debug": v.debug,
        "nonce_checked": c.policy.nonce.is_some(),
        "max_age_seconds": c.policy.max_age.map(|d| d.as_secs()),
        "leaf_not_after": time(v.not_after),
        "certificate": hex::encode(&v.certificate),
        "public_key": opt_hex(v.public_key.as_ref()),
        "user_data": opt_hex(v.user_data.as_ref()),
        "nonce": opt_hex(v.nonce.as_ref()),
    })
}

pub fn rejected_json(e: &VerifyError) -> Value {
    json!({ "ok": false, "error": e.code(), "reason": e.to_string() })
}

/// `verify-metadata`'s rejection, saying which input was refused (`document` or `metadata`).
pub fn stage_rejected_json(stage: &str, code: &str, reason: &str) -> Value {
    json!({ "ok": false, "stage": stage, "error": code, "reason": reason })
}

/// The document's checks as `verify` prints them, then the metadata binding.
pub fn metadata_text(
    v: &VerifiedDocument,
    c: &Checks<'_>,
    b: &MetadataBinding,
    path: &Path,
) -> String {
    let mut out = verified_text(v, c);
    let certs = if b.signing_certs == 1 {
        "signing certificate".to_string()
    } else {
        format!("{} signing certificates, all with", b.signing_certs)
    };
    let _ = writeln!(
        out,
        "SAML metadata: entity id {}, {certs} sha256 {} is bound by the document; bundle key {}",
        b.entity_id,
        hex::encode(b.cert_sha256),
        hex::encode(b.bundle_key)
    );
    let _ = writeln!(out, "  {:<11} {}", "metadata", path.display());
    let _ = writeln!(
        out,
        "  {:<11} every signing certificate's sha256 equals the one in the document's user_data",
        "signing"
    );
    let _ = writeln!(
        out,
        "  {:<11} the document's public_key, the enclave's X25519 key for sealing bundles",
        "bundle key"
    );
    out
}

pub fn metadata_json(
    v: &VerifiedDocument,
    c: &Checks<'_>,
    b: &MetadataBinding,
    path: &Path,
) -> Value {
    let mut out = verified_json(v, c);
    out["saml_metadata"] = json!({
        "file": path.display().to_string(),
        "entity_id": b.entity_id,
        "cert_sha256": hex::encode(b.cert_sha256),
        "signing_certificates": b.signing_certs,
        "bound": true,
    });
    out["bundle_key"] = Value::String(hex::encode(b.bundle_key));
    out
}

fn cert_line(der: &[u8]) -> String {
    match CertificateSummary::parse(der) {
        Ok(s) => format!(
            "{} (issuer {}; {} .. {})",
            s.subject,
            s.issuer,
            time(s.not_before),
            time(s.not_after)
        ),
        Err(e) => format!("unparseable: {e}"),
    }
}

pub fn inspected_text(d: &AttestationDocument) -> String {
    let mut out = String::from("NOT VERIFIED: contents as the document claims them\n");
    let _ = writeln!(out, "alg         {}", d.alg);
    let _ = writeln!(out, "module_id   {}", d.module_id);
    let _ = writeln!(out, "digest      {}", d.digest);
    let _ = writeln!(
        out,
        "timestamp   {} ({} ms)",
        time(d.timestamp()),
        d.timestamp_ms
    );
    for (i, pcr) in &d.pcrs {
        let _ = writeln!(out, "PCR{i:<8} {}", hex::encode(pcr));
    }
    let _ = writeln!(out, "certificate {}", cert_line(&d.certificate));
    for (i, c) in d.cabundle.iter().enumerate() {
        let _ = writeln!(out, "cabundle[{i}] {}", cert_line(c));
    }
    for (k, val) in [
        ("public_key", &d.public_key),
        ("user_data", &d.user_data),
        ("nonce", &d.nonce),
    ] {
        let shown = val.as_ref().map_or_else(|| "(none)".into(), hex::encode);
        let _ = writeln!(out, "{k:<11} {shown}");
    }
    let _ = writeln!(out, "signature   {} bytes", d.signature.len());
    out
}

pub fn inspected_json(d: &AttestationDocument) -> Value {
    json!({
        "verified": false,
        "alg": d.alg,
        "module_id": d.module_id,
        "digest": d.digest,
        "timestamp_ms": d.timestamp_ms,
        "timestamp": time(d.timestamp()),
        "pcrs": pcrs_json(&d.pcrs),
        "certificate": hex::encode(&d.certificate),
        "cabundle": d.cabundle.iter().map(hex::encode).collect::<Vec<_>>(),
        "public_key": opt_hex(d.public_key.as_ref()),
        "user_data": opt_hex(d.user_data.as_ref()),
        "nonce": opt_hex(d.nonce.as_ref()),
        "signature": hex::encode(&d.signature),
    })
}

/// `measurements.json`: the object, pretty-printed.
pub fn measurements_json(m: &Measurements) -> serde_json::Result<String> {
    serde_json::to_string_pretty(m)
}

fn pcr_lines(out: &mut String, m: &Measurements) {
    let _ = writeln!(out, "PCR0        {}", m.pcr0);
    let _ = writeln!(out, "PCR1        {}", m.pcr1);
    let _ = writeln!(out, "PCR2        {}", m.pcr2);
    if let Some(pcr8) = &m.pcr8 {
        let _ = writeln!(out, "PCR8        {pcr8}");
    }
}

/// An EIF's measurements, layout and file facts.
pub fn eif_text(e: &EifMeasurement, path: &Path) -> String {
    let m = e.measurements();
    let mut out = format!("EIF measurements of {}\n", path.display());
    let _ = writeln!(
        out,
        "  {:<11} {} bytes, sha256 {}",
        "file",
        e.len,
        hex::encode(e.sha256)
    );
    let _ = writeln!(
        out,
        "  {:<11} EIF version {}, {}, CRC-32 {:08x} matches",
        "format",
        e.version,
        e.arch.name(),
        e.crc32
    );
    let _ = writeln!(
        out,
        "  {:<11} {} MiB, {} vCPUs (the image's defaults)",
        "defaults",
        e.default_mem / (1024 * 1024),
        e.default_cpus
    );
    let _ = writeln!(
        out,
        "  {:<11} {:<3} {:<10} {:>11} {:>11}  measured in",
        "sections", "#", "type", "offset", "size"
    );
    let mut ramdisks = 0usize;
    for (i, s) in e.sections.iter().enumerate() {
        let pcrs = match s.kind {
            SectionKind::Kernel | SectionKind::Cmdline => "PCR0 PCR1",
            SectionKind::Ramdisk => {
                ramdisks += 1;
                if ramdisks == 1 {
                    "PCR0 PCR1"
                } else {
                    "PCR0 PCR2"
                }
            }
            SectionKind::Signature => "PCR8 (its certificate)",
            _ => "not measured",
        };
        let _ = writeln!(
            out,
            "  {:<11} {i:<3} {:<10} {:>11} {:>11}  {pcrs}",
            "",
            s.kind.name(),
            s.offset,
            s.size
        );
    }
    match &e.signing_certificate {
        Some(der) => {
            let _ = writeln!(
                out,
                "  {:<11} {} (the signature over PCR0 is not checked)",
                "signed by",
                cert_line(der)
            );
        }
        None => {
            let _ = writeln!(out, "  {:<11} no (no PCR8)", "signed");
        }
    }
    pcr_lines(&mut out, &m);
    out
}

/// The simulator's measurements of an enclave binary.
pub fn simulator_text(m: &Measurements, binary: &Path) -> String {
    let mut out = format!("Simulator measurements of {}\n", binary.display());
    let _ = writeln!(out, "  {:<11} SHA-384 of the enclave binary", "PCR0");
    let _ = writeln!(
        out,
        "  {:<11} the simulator's fixed values (no kernel or ramdisk)",
        "PCR1, PCR2"
    );
    pcr_lines(&mut out, m);
    out
}
