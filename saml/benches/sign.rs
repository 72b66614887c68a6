//! Benchmarks (std::time, no harness): RSA-2048 key generation, `sign_response`, rebuilding a
//! signer from unsealed parts, and rendering rotation metadata.
//!
//! Run with `cargo bench --bench sign`. Budgets (DESIGN §11): one RSA signature per
//! (role, credential lifetime), so `sign_response` is off the per-sync path.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use nitrosync_saml::{AssertionRequest, SamlSigner};

fn per_op(label: &str, iterations: u32, mut op: impl FnMut(u32)) {
    // One warm-up call (page faults, lazy initialisation).
    op(0);
    let start = Instant::now();
    for i in 0..iterations {
        op(i);
    }
    let elapsed = start.elapsed();
    let per = elapsed.as_secs_f64() * 1_000.0 / f64::from(iterations);
    println!("{label:<40} {per:>9.3} ms/op  ({iterations} iterations, {elapsed:.2?})");
}

fn main() {
    let now = SystemTime::now();
    let entity = "https://nitrosync.example/saml/idp";

    per_op("SamlSigner::generate (RSA-2048 + cert)", 20, |_| {
        black_box(SamlSigner::generate(entity, now).expect("generate"));
    });

    let signer = SamlSigner::generate(entity, now).expect("generate");
    let mut req = AssertionRequest {
        subject: "ns1-abcdefghijklmnopqrstuvwxyz234567".into(),
        role_arn: "arn:aws:iam::123456789012:role/SyncRole".into(),
        provider_arn: "arn:aws:iam::123456789012:saml-provider/nitrosync".into(),
        session_name: "nitrosync-dest-1".into(),
        session_duration: Some(3600),
        recipient: "https://signin.aws.amazon.com/saml".into(),
        now,
        response_id: "_r0".into(),
        assertion_id: "_a0".into(),
    };
    let mut size = 0;
    per_op("SamlSigner::sign_response", 500, |i| {
        req.response_id = format!("_r{i}");
        req.assertion_id = format!("_a{i}");
        req.now = now + Duration::from_secs(u64::from(i));
        let signed = signer.sign_response(black_box(&req)).expect("sign");
        size = signed.base64.len();
    });
    println!("signed Response: {size} base64 characters");

    // What an enclave does with a sealed identity at every start: rebuild the signer from its
    // unsealed parts (parse and check the key against the certificate) and render the metadata.
    let pkcs8 = signer.private_key_pkcs8_der();
    let cert = signer.cert_der().to_vec();
    per_op("SamlSigner::from_parts (unsealed key)", 200, |_| {
        black_box(SamlSigner::from_parts(&pkcs8, &cert, entity).expect("from_parts"));
    });
    // During a key rotation the metadata is rendered with the next certificate too (the
    // single-certificate form is rendered once, when the signer is built).
    let next = SamlSigner::generate(entity, now).expect("generate");
    per_op("SamlSigner::metadata_xml_with (2 certs)", 2_000, |_| {
        black_box(
            signer
                .metadata_xml_with(&[next.cert_der()])
                .expect("metadata"),
        );
    });
}
