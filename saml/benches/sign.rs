//! Benchmarks (std::time, no harness): RSA-2048 key generation and `sign_response`.
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

    per_op("SamlSigner::metadata_xml", 10_000, |_| {
        black_box(signer.metadata_xml());
    });
}
