//! Hostile input: random bytes and random mutations of real documents never panic, and a
//! mutated document never verifies.

use nitrosync_attestation::{ChainCache, Policy, inspect, verify, verify_cached};
use proptest::prelude::*;

use crate::*;

/// One random edit of a document.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Set { at: usize, byte: u8 },
    Truncate { len: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Remove { at: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Mutation::Remove { at, len }),
    ]
}

fn apply(doc: &[u8], m: &Mutation) -> Vec<u8> {
    let mut out = doc.to_vec();
    let n = out.len();
    match m {
        Mutation::Flip { at, bit } => out[at % n] ^= 1 << bit,
        Mutation::Set { at, byte } => out[at % n] = *byte,
        Mutation::Truncate { len } => out.truncate(len % n),
        Mutation::Insert { at, bytes } => {
            let at = at % (n + 1);
            out.splice(at..at, bytes.iter().copied());
        }
        Mutation::Remove { at, len } => {
            let at = at % n;
            out.drain(at..(at + len).min(n));
        }
    }
    out
}

const FIXTURES: [&str; 7] = [
    "aws-2024-12-13-ap-south-1.cbor",
    "aws-2025-04-29-pcr16.cbor",
    "aws-2024-08-07.cbor",
    "aws-2022-10-13-signed-eif.cbor",
    "aws-2022-10-12-debug.cbor",
    "aws-2026-02-02-indefinite-map.cbor",
    "mock-root-signed.cbor",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = inspect(&bytes);
        prop_assert!(verify(&bytes, &aws_root(), &Policy::new(), expired_time()).is_err());
    }

    #[test]
    fn random_cbor_like_prefixes_never_panic(
        head in prop_oneof![Just(vec![0x84u8]), Just(vec![0xd2u8, 0x84]), Just(vec![0x84u8, 0x44, 0xa1, 0x01, 0x38, 0x22])],
        tail in proptest::collection::vec(any::<u8>(), 0..1024),
    ) {
        let bytes = [head, tail].concat();
        let _ = inspect(&bytes);
        prop_assert!(verify(&bytes, &aws_root(), &Policy::new(), expired_time()).is_err());
    }

    #[test]
    fn mutated_fixtures_never_panic_and_never_verify(
        which in 0usize..FIXTURES.len(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let original = data(FIXTURES[which]);
        let at = own_time(&original);
        let root = if FIXTURES[which] == MOCK { mock_root() } else { aws_root() };
        let policy = Policy::new().with_allow_debug(true);
        let mut doc = original.clone();
        for m in &mutations {
            if doc.is_empty() { break; }
            doc = apply(&doc, m);
        }
        let _ = inspect(&doc);
        let plain = verify(&doc, &root, &policy, at);
        let cached = verify_cached(&doc, &root, &policy, at, &ChainCache::new());
        prop_assert_eq!(&plain, &cached);
        if doc != original {
            prop_assert!(plain.is_err(), "a mutated document verified: {:?}", mutations);
        }
    }
}
