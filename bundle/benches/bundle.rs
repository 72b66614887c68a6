//! Time per `seal` and per `open` for a small and a near-limit bundle.
//!
//! `cargo bench --bench bundle` (plain `std::time`, no harness). Numbers are per call on one
//! core; the enclave's budget is < 1 ms of CPU per write (DESIGN §11), which includes `open`.

use nitrosync_bundle::{
    EnclaveBundleKey, SecretValue, TenantKey, Variables, open, render_json, seal,
};
use nitrosync_shared::bundle::{DeletePolicy, DestinationConfig, Terms};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

fn destination() -> DestinationConfig {
    DestinationConfig {
        id: "prod-api".into(),
        region: "us-east-1".into(),
        secret_name: "prod/api/env".into(),
        role_arn: "arn:aws:iam::123456789012:role/nitrosync-prod".into(),
        saml_provider_arn: "arn:aws:iam::123456789012:saml-provider/nitrosync".into(),
        kms_key_id: None,
        tags: BTreeMap::from([("team".into(), "payments".into())]),
        delete_policy: DeletePolicy::Retain,
    }
}

fn per_call(total: Duration, iterations: u32) -> f64 {
    total.as_secs_f64() * 1e6 / f64::from(iterations)
}

fn run(label: &str, variables: &Variables, iterations: u32) {
    let mut rng = StdRng::seed_from_u64(1);
    let tenant = TenantKey::generate(&mut rng);
    let enclave = EnclaveBundleKey::generate(&mut rng);
    let enclave_pub = enclave.public();
    let seal_once = |rng: &mut StdRng| {
        seal(
            &tenant,
            &enclave_pub,
            destination(),
            Terms::write(1, 0),
            variables,
            rng,
        )
        .expect("seal")
    };
    // Warm up.
    let bundle = seal_once(&mut rng);
    open(&bundle, &enclave).expect("open");

    let start = Instant::now();
    for _ in 0..iterations {
        black_box(seal_once(&mut rng));
    }
    let seal_us = per_call(start.elapsed(), iterations);

    let start = Instant::now();
    for _ in 0..iterations {
        black_box(open(black_box(&bundle), &enclave).expect("open"));
    }
    let open_us = per_call(start.elapsed(), iterations);

    let json = render_json(variables).len();
    println!(
        "{label:<22} json {json:>6} B  ciphertext {:>6} B  seal {seal_us:>8.1} µs  open {open_us:>8.1} µs  ({iterations} iterations)",
        bundle.ciphertext.len()
    );
}

fn main() {
    let small: Variables = [
        ("API_KEY", "sk_live_0123456789abcdef"),
        ("DATABASE_URL", "postgres://app:pw@db.internal:5432/app"),
        ("LOG_LEVEL", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), SecretValue::from(v)))
    .collect();
    // 60 KiB of JSON: 60 variables of 1,012-byte values.
    let large: Variables = (0..60)
        .map(|i| (format!("VAR_{i:02}"), SecretValue::new("x".repeat(1012))))
        .collect();
    run("3 variables", &small, 2000);
    run("60 KiB (60 variables)", &large, 300);
}
