//! The simulated NSM: AWS's format, its own root, PCR0 from the binary.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ciborium::Value;
use nitrosync_attestation::{
    Nsm, NsmError, Policy, SIM_PCR1, SIM_PCR2, SIM_ROOT_CERT_FILE, SIM_ROOT_KEY_FILE, SimulatedNsm,
    TrustRoot, VerifyError, inspect, verify,
};
use ring::digest::{SHA384, digest};

use crate::*;

const BINARY: &[u8] = b"\x7fELF pretend enclave binary";

fn sim_policy() -> Policy {
    Policy::new()
        .with_pcr(0, digest(&SHA384, BINARY).as_ref().to_vec())
        .with_pcr(1, SIM_PCR1.to_vec())
        .with_pcr(2, SIM_PCR2.to_vec())
}

#[test]
fn simulated_document_verifies_against_its_root_only() {
    let dir = scratch_dir("sim-verify");
    let nsm = SimulatedNsm::open_or_create(&dir, BINARY).unwrap();
    let doc = nsm
        .attest(Some(b"user"), Some(b"nonce-1"), Some(b"key"))
        .unwrap();
    let root = TrustRoot::from_pem(&std::fs::read(dir.join(SIM_ROOT_CERT_FILE)).unwrap()).unwrap();
    let now = SystemTime::now();
    let v = verify(
        &doc,
        &root,
        &sim_policy().with_nonce(b"nonce-1".to_vec()),
        now,
    )
    .unwrap();
    assert_eq!(v.user_data.as_deref(), Some(&b"user"[..]));
    assert_eq!(v.public_key.as_deref(), Some(&b"key"[..]));
    assert_eq!(v.module_id, nsm.module_id());
    assert!(!v.debug);
    assert_eq!(
        verify(&doc, &aws_root(), &Policy::new(), now).map(|_| ()),
        Err(VerifyError::RootMismatch)
    );
}

#[test]
fn pcr0_is_the_sha384_of_the_binary() {
    let nsm = SimulatedNsm::open_or_create(&scratch_dir("sim-pcr"), BINARY).unwrap();
    let expected = digest(&SHA384, BINARY).as_ref().to_vec();
    assert_eq!(nsm.describe_pcr(0).unwrap(), expected);
    let doc = inspect(&nsm.attest(None, None, None).unwrap()).unwrap();
    assert_eq!(doc.pcrs[&0], expected);
    assert_eq!(doc.pcrs[&1], SIM_PCR1.to_vec());
    assert_eq!(doc.pcrs[&2], SIM_PCR2.to_vec());
    assert_eq!(doc.pcrs.len(), 16);
    assert!((3..16).all(|i| doc.pcrs[&i] == vec![0; 48]));
    assert!(matches!(
        nsm.describe_pcr(16),
        Err(NsmError::NoSuchPcr { index: 16 })
    ));
}

#[test]
fn document_has_the_exact_aws_shape() {
    let nsm = SimulatedNsm::open_or_create(&scratch_dir("sim-shape"), BINARY).unwrap();
    let doc = nsm.attest(None, None, None).unwrap();
    assert_eq!(doc[0], 0x84, "untagged 4-element array");
    let Value::Array(parts) = ciborium::from_reader::<Value, _>(doc.as_slice()).unwrap() else {
        panic!()
    };
    assert_eq!(
        parts[0],
        Value::Bytes(vec![0xa1, 0x01, 0x38, 0x22]),
        "protected {{1: -35}}"
    );
    assert_eq!(parts[1], Value::Map(vec![]));
    assert_eq!(parts[3].as_bytes().map(Vec::len), Some(96));
    let payload = parts[2].as_bytes().unwrap();
    let Value::Map(map) = ciborium::from_reader::<Value, _>(payload.as_slice()).unwrap() else {
        panic!()
    };
    let keys: Vec<&str> = map.iter().map(|(k, _)| k.as_text().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "module_id",
            "digest",
            "timestamp",
            "pcrs",
            "certificate",
            "cabundle",
            "public_key",
            "user_data",
            "nonce"
        ]
    );
    assert!(
        map[6..].iter().all(|(_, v)| v.is_null()),
        "absent inputs are null"
    );
    let parsed = inspect(&doc).unwrap();
    assert_eq!(parsed.cabundle.len(), 2, "root and one intermediate");
    assert_eq!(parsed.cabundle[0], nsm.root_der());
}

#[test]
fn the_root_is_made_once_per_run_directory() {
    let dir = scratch_dir("sim-root");
    let first = SimulatedNsm::open_or_create(&dir, BINARY).unwrap();
    let again = SimulatedNsm::open_or_create(&dir, b"another binary").unwrap();
    assert_eq!(first.root_der(), again.root_der());
    assert_eq!(first.module_id(), again.module_id());
    let other = SimulatedNsm::open_or_create(&scratch_dir("sim-root-other"), BINARY).unwrap();
    assert_ne!(first.root_der(), other.root_der());
    // A document from the second instance verifies under the first one's root.
    let doc = again.attest(None, None, None).unwrap();
    verify(
        &doc,
        &first.trust_root().unwrap(),
        &Policy::new(),
        SystemTime::now(),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(SIM_ROOT_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[cfg(unix)]
#[test]
fn a_key_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch_dir("sim-perm");
    SimulatedNsm::open_or_create(&dir, BINARY).unwrap();
    let key = dir.join(SIM_ROOT_KEY_FILE);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        SimulatedNsm::open_or_create(&dir, BINARY),
        Err(NsmError::BadSimulatorRoot { .. })
    ));
}

#[test]
fn a_corrupt_root_is_refused() {
    let dir = scratch_dir("sim-corrupt");
    SimulatedNsm::open_or_create(&dir, BINARY).unwrap();
    std::fs::write(dir.join(SIM_ROOT_CERT_FILE), b"garbage").unwrap();
    assert!(matches!(
        SimulatedNsm::open_or_create(&dir, BINARY),
        Err(NsmError::BadSimulatorRoot { .. })
    ));
}

#[test]
fn oversized_inputs_are_refused() {
    let nsm = SimulatedNsm::open_or_create(&scratch_dir("sim-limits"), BINARY).unwrap();
    assert!(matches!(
        nsm.attest(Some(&[0; 513]), None, None),
        Err(NsmError::InputTooLarge {
            field: "user_data",
            ..
        })
    ));
    nsm.attest(Some(&[0; 512]), Some(&[0; 512]), Some(&[0; 1024]))
        .unwrap();
}

#[test]
fn the_leaf_is_reissued_as_the_clock_moves_on() {
    let start = humantime::parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
    let now = Arc::new(Mutex::new(start));
    let clock = {
        let now = Arc::clone(&now);
        Arc::new(move || *now.lock().unwrap())
    };
    let nsm =
        SimulatedNsm::open_or_create_with_clock(&scratch_dir("sim-clock"), BINARY, clock).unwrap();
    let root = nsm.trust_root().unwrap();
    let first = nsm.attest(None, None, None).unwrap();
    let v = verify(&first, &root, &sim_policy(), start).unwrap();
    assert_eq!(v.timestamp, start);
    assert!(v.not_after <= start + Duration::from_secs(3 * 3600));

    let later = start + Duration::from_secs(4 * 3600);
    *now.lock().unwrap() = later;
    let second = nsm.attest(None, None, None).unwrap();
    verify(&second, &root, &sim_policy(), later).unwrap();
    assert!(matches!(
        verify(&first, &root, &sim_policy(), later),
        Err(VerifyError::CertificateExpired { index: 2, .. })
    ));
    assert_ne!(
        inspect(&first).unwrap().certificate,
        inspect(&second).unwrap().certificate
    );

    let next_month = start + Duration::from_secs(40 * 24 * 3600);
    *now.lock().unwrap() = next_month;
    let third = nsm.attest(None, None, None).unwrap();
    verify(&third, &root, &sim_policy(), next_month).unwrap();
    assert_ne!(
        inspect(&second).unwrap().cabundle[1],
        inspect(&third).unwrap().cabundle[1]
    );
}

#[test]
fn the_nsm_trait_is_object_safe() {
    let nsm: Box<dyn Nsm> =
        Box::new(SimulatedNsm::open_or_create(&scratch_dir("sim-dyn"), BINARY).unwrap());
    assert!(!nsm.attest(None, None, None).unwrap().is_empty());
}
