//! AWS Nitro Enclaves attestation documents for nitrosync.
//!
//! This crate owns the attestation document: it *verifies* documents and it *makes* them.
//!
//! - Verifying is pure and sans-io: [`verify`] takes the document bytes, a [`TrustRoot`], a
//!   [`Policy`] and the time, and returns a [`VerifiedDocument`] or the one [`VerifyError`] that
//!   explains the refusal. It checks the COSE_Sign1 ES384 signature over the payload exactly as
//!   received, the X.509 chain from the root to the leaf at the given time, that the first
//!   `cabundle` entry is the trusted root byte for byte, the digest, the PCR policy (debug-mode
//!   enclaves only when allowed), the nonce and the document's age. QEMU's unsigned documents
//!   (alg -1) are always refused. [`verify_cached`] does the same with a [`ChainCache`] of
//!   verified intermediates; [`inspect`] parses a document without trusting it.
//! - Making documents goes through the [`Nsm`] trait: `SimulatedNsm` (feature `sim`, on by
//!   default) signs documents in AWS's exact format under a simulator root kept in a run
//!   directory; `HardwareNsm` (feature `nsm`) asks `/dev/nsm`.
//! - [`check_metadata_binding`] checks, as purely, that a SAML IdP metadata file lists only the
//!   signing certificate a [`VerifiedDocument`] attests (its `user_data` carries the
//!   certificate's SHA-256), and returns the attested X25519 bundle key: the check a customer
//!   runs before registering the enclave as a SAML provider in IAM.
//! - [`measure_eif`] reads an Enclave Image File once and computes its PCR0, PCR1, PCR2 (and
//!   PCR8 if signed) as the Nitro hypervisor does, checking every field of the file on the way;
//!   [`simulator_measurements`] gives the simulator's PCRs for an enclave binary. Both produce
//!   the published `measurements.json` form.
//!
//! It does not own transport or key management, and it never reads the clock or the file system
//! while verifying. The AWS Nitro Enclaves Root G1 is compiled in
//! ([`TrustRoot::aws_nitro_g1`]); the simulator root is never trusted unless handed in.
//!
//! ```no_run
//! use std::time::SystemTime;
//! use nitrosync_attestation::{Policy, TrustRoot, verify};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let doc = std::fs::read("attestation.cbor")?;
//! let policy = Policy::new().with_pcr(0, vec![0u8; 48]);
//! let verified = verify(&doc, &TrustRoot::aws_nitro_g1(), &policy, SystemTime::now())?;
//! println!("{}", verified.module_id);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod chain;
mod cose;
mod document;
mod eif;
mod error;
#[cfg(feature = "nsm")]
mod hardware;
mod measure;
mod metadata;
mod nsm;
#[cfg(feature = "sim")]
mod sim;
mod verify;

pub use chain::{AWS_NITRO_ROOT_G1_PEM, CertificateSummary, ChainCache, TrustRoot};
pub use cose::ALG_ES384;
pub use document::{
    AttestationDocument, MAX_CABUNDLE_LEN, MAX_CERTIFICATE_LEN, MAX_OPTIONAL_FIELD_LEN, MAX_PCRS,
    inspect,
};
pub use eif::{
    EIF_HEADER_LEN, EIF_MAGIC, EIF_MAX_SECTIONS, EIF_SECTION_HEADER_LEN, EIF_VERSIONS, EifArch,
    EifError, EifMeasurement, EifSection, MAX_SIGNATURE_SECTION_LEN, SectionKind, extend_from_zero,
    measure_eif,
};
pub use error::{NsmError, VerifyError};
#[cfg(feature = "nsm")]
pub use hardware::HardwareNsm;
pub use measure::{
    SIM_PCR1, SIM_PCR2, simulator_measurements, simulator_measurements_for_pcr0, simulator_pcr0,
    simulator_pcr0_from_reader,
};
pub use metadata::{
    BUNDLE_KEY_LEN, MAX_METADATA_LEN, MetadataBinding, MetadataError, check_metadata_binding,
};
pub use nsm::{
    Clock, NSM_MAX_NONCE_LEN, NSM_MAX_PUBLIC_KEY_LEN, NSM_MAX_USER_DATA_LEN, Nsm, SystemClock,
};
#[cfg(feature = "sim")]
pub use sim::{SIM_PCR_COUNT, SIM_ROOT_CERT_FILE, SIM_ROOT_KEY_FILE, SimulatedNsm};
pub use verify::{
    DEFAULT_MAX_CLOCK_SKEW, DIGEST_SHA384, Policy, VerifiedDocument, verify, verify_cached,
};

/// Longest input accepted as a document. The NSM's response buffer is 12 KiB; real documents
/// are about 4.5 KiB.
pub const MAX_DOCUMENT_LEN: usize = 16 * 1024;
