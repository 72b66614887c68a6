//! Verification throughput on one core (a plain single-threaded loop), the cost of the chain
//! check with and without cached intermediates, and P-384 ECDSA verification in aws-lc-rs (what
//! the crate verifies with) against ring and RustCrypto's `p384`.
//!
//! Run with `cargo bench --bench verify`. Each figure is the best of three rounds of about
//! 0.4 s, to damp noise from other processes on the machine.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use nitrosync_attestation::{
    ChainCache, Nsm, Policy, SimulatedNsm, TrustRoot, inspect, verify, verify_cached,
};
use p384::ecdsa::signature::Verifier as _;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P384_SHA384_FIXED, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};

const ROUND: Duration = Duration::from_millis(400);

/// Runs `f` repeatedly and returns the best per-call time over three rounds.
fn measure(mut f: impl FnMut()) -> Duration {
    for _ in 0..3 {
        f();
    }
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let mut n = 0u32;
        while start.elapsed() < ROUND {
            f();
            n += 1;
        }
        best = best.min(start.elapsed() / n);
    }
    best
}

fn report(name: &str, per_call: Duration) {
    let per_sec = 1.0 / per_call.as_secs_f64();
    println!(
        "{name:<52} {:>9.1} µs/op {per_sec:>9.0} op/s",
        per_call.as_secs_f64() * 1e6
    );
}

fn main() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let doc = std::fs::read(data.join("aws-2024-12-13-ap-south-1.cbor")).expect("fixture");
    let parsed = inspect(&doc).expect("fixture parses");
    let at = parsed.timestamp();
    let root = TrustRoot::aws_nitro_g1();
    let policy = Policy::new().with_pcr(0, parsed.pcrs[&0].clone());
    verify(&doc, &root, &policy, at).expect("fixture verifies");
    println!(
        "AWS document (ap-south-1, {} bytes, chain of {} certificates + leaf), single thread",
        doc.len(),
        parsed.cabundle.len()
    );

    let uncached = measure(|| {
        black_box(verify(black_box(&doc), &root, &policy, at).unwrap());
    });
    report("verify, intermediates not cached", uncached);
    let cache = ChainCache::new();
    let cached = measure(|| {
        black_box(verify_cached(black_box(&doc), &root, &policy, at, &cache).unwrap());
    });
    report("verify, intermediates cached", cached);
    report(
        "inspect only (COSE + payload parse)",
        measure(|| {
            black_box(inspect(black_box(&doc)).unwrap());
        }),
    );
    let chain_uncached = measure(|| {
        black_box(parsed.verify_chain(&root, at, None).unwrap());
    });
    report(
        "chain check, not cached (3 intermediates + leaf)",
        chain_uncached,
    );
    let chain_cached = measure(|| {
        black_box(parsed.verify_chain(&root, at, Some(&cache)).unwrap());
    });
    report("chain check, cached (leaf only)", chain_cached);

    // Raw P-384 ECDSA: ring, aws-lc-rs and RustCrypto p384, same key, message and signature.
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let message = vec![0x5a; 4500];
    let sig = key.sign(&rng, &message).unwrap();
    let point = key.public_key().as_ref().to_vec();
    let ring_key = UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, point.clone());
    let ring_verify = measure(|| {
        ring_key.verify(black_box(&message), sig.as_ref()).unwrap();
    });
    report("P-384 ECDSA verify, ring 0.17", ring_verify);
    let lc_key = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED,
        point.clone(),
    );
    let lc_verify = measure(|| {
        lc_key.verify(black_box(&message), sig.as_ref()).unwrap();
    });
    report("P-384 ECDSA verify, aws-lc-rs 1.19", lc_verify);
    let rc_key = p384::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
    let rc_sig = p384::ecdsa::Signature::from_slice(sig.as_ref()).unwrap();
    let rc_verify = measure(|| {
        rc_key.verify(black_box(&message), &rc_sig).unwrap();
    });
    report("P-384 ECDSA verify, p384 0.14 (RustCrypto)", rc_verify);

    // Making documents with the simulated NSM.
    let dir = std::env::temp_dir().join(format!("nitrosync-bench-{}", std::process::id()));
    let nsm = SimulatedNsm::open_or_create(&dir, b"bench binary").unwrap();
    let sim_root = nsm.trust_root().unwrap();
    report(
        "simulated NSM attest",
        measure(|| {
            black_box(nsm.attest(None, Some(b"nonce"), None).unwrap());
        }),
    );
    let sim_doc = nsm.attest(None, None, None).unwrap();
    let now = SystemTime::now();
    report(
        "verify simulated document (1 intermediate), not cached",
        measure(|| {
            black_box(verify(&sim_doc, &sim_root, &Policy::new(), now).unwrap());
        }),
    );
    let _ = std::fs::remove_dir_all(&dir);

    println!();
    println!(
        "chain check: cached saves {:.1} µs per document ({:.1}x cheaper); \
         verify goes from {:.0} to {:.0} documents/s",
        (chain_uncached.saturating_sub(chain_cached)).as_secs_f64() * 1e6,
        chain_uncached.as_secs_f64() / chain_cached.as_secs_f64(),
        1.0 / uncached.as_secs_f64(),
        1.0 / cached.as_secs_f64(),
    );
    println!(
        "P-384 verify, time against aws-lc-rs (what the crate uses): ring {:.2}x, p384 {:.2}x",
        ring_verify.as_secs_f64() / lc_verify.as_secs_f64(),
        rc_verify.as_secs_f64() / lc_verify.as_secs_f64()
    );
    println!(
        "BENCH attest.cold_docs_per_s {:.0}",
        1.0 / uncached.as_secs_f64()
    );
    println!(
        "BENCH attest.cached_docs_per_s {:.0}",
        1.0 / cached.as_secs_f64()
    );
}
