//! KMS's `CiphertextForRecipient` and the throwaway key it is encrypted to.
//!
//! When a request carries a `Recipient` (an attestation document with a public key), KMS does
//! not return the plaintext: it returns CMS `ContentInfo(EnvelopedData)` (RFC 5652) in BER with
//! indefinite lengths, with exactly one `KeyTransRecipientInfo`:
//!
//! - `rid`: `[0] SubjectKeyIdentifier`, the SHA-256 of the recipient's DER SubjectPublicKeyInfo;
//! - `keyEncryptionAlgorithm`: `id-RSAES-OAEP` with explicit SHA-256 and MGF1-SHA-256, no label;
//! - `encryptedKey`: a fresh AES-256 content key under RSAES-OAEP;
//! - `encryptedContentInfo`: `id-data`, `aes256-CBC` with the IV as parameter, the PKCS#7-padded
//!   plaintext in 1000-byte chunks of a constructed OCTET STRING.
//!
//! [`RecipientKey::open`] accepts that and nothing else. The AWS simulator writes the same bytes
//! (`tests/aws-sim/cms_recipient.py`); the test fixtures come from it and from a real KMS answer.

use super::IdentityError;
use aws_lc_rs::cipher::{AES_256, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, PrivateDecryptingKey,
};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{EnvelopedData, RecipientIdentifier, RecipientInfo};
use cms::spki::AlgorithmIdentifierOwned;
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode, Sequence, Tag, Tagged};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};
use zeroize::Zeroizing;

/// The longest `CiphertextForRecipient` [`RecipientKey::open`] parses. A 32-byte data key makes
/// about 500 bytes; KMS's largest plaintext (4096 bytes) about 4600.
pub const MAX_CIPHERTEXT_FOR_RECIPIENT: usize = 64 * 1024;

const ID_ENVELOPED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.3");
const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_RSAES_OAEP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.7");
const ID_MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_AES256_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.42");

/// RSA-2048: the wrapped content key is exactly this long.
const RSA_BYTES: usize = 256;
/// An AES-256 content key.
const CEK_LEN: usize = 32;
/// The AES block, and the CBC IV.
const AES_BLOCK: usize = 16;
/// The most of a foreign subject key identifier an error message shows.
const SKI_SHOWN: usize = 32;

/// `RSAES-OAEP-params` (RFC 4055 §4.1). Every field is DEFAULT (SHA-1), so KMS's SHA-256 must be
/// explicit.
#[derive(Sequence)]
struct OaepParams {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    hash: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    mask_gen: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    p_source: Option<AlgorithmIdentifierOwned>,
}

/// A throwaway RSA-2048 key for one KMS answer: its public half goes in the attestation
/// document's `public_key`, and KMS encrypts the data key to it.
///
/// It opens one `CiphertextForRecipient` ([`open`](Self::open)); any later call is refused, so
/// it cannot serve as a padding or OAEP oracle. Drop it right after: AWS-LC clears the key when
/// it frees it.
pub struct RecipientKey {
    key: OaepPrivateDecryptingKey,
    spki_der: Vec<u8>,
    ski: [u8; 32],
    used: AtomicBool,
}

impl std::fmt::Debug for RecipientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecipientKey")
            .field("subject_key_identifier", &hex::encode(self.ski))
            .field("used", &self.used.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn refused(reason: impl Into<String>) -> IdentityError {
    IdentityError::EnvelopeRefused(reason.into())
}

fn decode_error(part: &'static str) -> impl FnOnce(der::Error) -> IdentityError {
    move |source| IdentityError::EnvelopeDecode { part, source }
}

impl RecipientKey {
    /// A new RSA-2048 key from AWS-LC's generator.
    ///
    /// # Errors
    ///
    /// [`IdentityError::RecipientKeyGeneration`] when AWS-LC fails.
    pub fn generate() -> Result<Self, IdentityError> {
        let key = PrivateDecryptingKey::generate(KeySize::Rsa2048)
            .map_err(|_| IdentityError::RecipientKeyGeneration)?;
        Self::from_private(key)
    }

    /// A fixed RSA-2048 key, so that tests can open envelopes written ahead of time.
    #[cfg(test)]
    pub(crate) fn from_pkcs8_for_tests(pkcs8: &[u8]) -> Result<Self, IdentityError> {
        Self::from_pkcs8_for_fuzzing(pkcs8)
    }

    /// A fixed RSA-2048 key from PKCS#8 DER, for the fuzz targets (`fuzz-enclave/`): they open
    /// envelopes written ahead of time, with a fresh key per input (a key opens one answer).
    /// Never for the enclave itself, whose recipient keys are [`generate`](Self::generate)d.
    ///
    /// # Errors
    ///
    /// [`IdentityError::RecipientKeyGeneration`] when `pkcs8` is not an RSA-2048 key.
    #[doc(hidden)]
    pub fn from_pkcs8_for_fuzzing(pkcs8: &[u8]) -> Result<Self, IdentityError> {
        let key = PrivateDecryptingKey::from_pkcs8(pkcs8)
            .map_err(|_| IdentityError::RecipientKeyGeneration)?;
        if key.key_size_bytes() != RSA_BYTES {
            return Err(IdentityError::RecipientKeyGeneration);
        }
        Self::from_private(key)
    }

    fn from_private(key: PrivateDecryptingKey) -> Result<Self, IdentityError> {
        let spki_der = key
            .public_key()
            .as_der()
            .map_err(|_| IdentityError::RecipientKeyGeneration)?
            .as_ref()
            .to_vec();
        let ski = Sha256::digest(&spki_der).into();
        let key = OaepPrivateDecryptingKey::new(key)
            .map_err(|_| IdentityError::RecipientKeyGeneration)?;
        Ok(Self {
            key,
            spki_der,
            ski,
            used: AtomicBool::new(false),
        })
    }

    /// DER SubjectPublicKeyInfo (what goes in the attestation document's `public_key`).
    pub fn public_key_spki_der(&self) -> Vec<u8> {
        self.spki_der.clone()
    }

    /// The subject key identifier KMS addresses this key by: SHA-256 of
    /// [`public_key_spki_der`](Self::public_key_spki_der).
    pub fn subject_key_identifier(&self) -> [u8; 32] {
        self.ski
    }

    /// Opens KMS's `CiphertextForRecipient`; returns the plaintext (a 32-byte data key in our
    /// use), zeroized on drop.
    ///
    /// The first call uses the key up, whatever its outcome.
    ///
    /// # Errors
    ///
    /// [`IdentityError::RecipientKeyUsed`] on a second call; otherwise the first check that
    /// fails: [`EnvelopeTooLarge`](IdentityError::EnvelopeTooLarge),
    /// [`EnvelopeDecode`](IdentityError::EnvelopeDecode),
    /// [`EnvelopeRefused`](IdentityError::EnvelopeRefused) (another content type or algorithm,
    /// not exactly one recipient, a content key that is not 32 bytes),
    /// [`WrongRecipient`](IdentityError::WrongRecipient),
    /// [`KeyUnwrap`](IdentityError::KeyUnwrap),
    /// [`ContentDecryption`](IdentityError::ContentDecryption).
    pub fn open(
        &self,
        ciphertext_for_recipient: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, IdentityError> {
        if self.used.swap(true, Ordering::SeqCst) {
            return Err(IdentityError::RecipientKeyUsed);
        }
        let len = ciphertext_for_recipient.len();
        if len > MAX_CIPHERTEXT_FOR_RECIPIENT {
            return Err(IdentityError::EnvelopeTooLarge {
                len,
                max: MAX_CIPHERTEXT_FOR_RECIPIENT,
            });
        }
        let ci =
            ContentInfo::from_ber(ciphertext_for_recipient).map_err(decode_error("ContentInfo"))?;
        if ci.content_type != ID_ENVELOPED_DATA {
            return Err(refused(format!(
                "its content type is {}, not id-envelopedData",
                ci.content_type
            )));
        }
        let enveloped = ci.content.to_der().map_err(decode_error("EnvelopedData"))?;
        let env = EnvelopedData::from_ber(&enveloped).map_err(decode_error("EnvelopedData"))?;
        // RFC 5652 §6.1: version 2 for one KeyTransRecipientInfo by subject key identifier,
        // without originatorInfo.
        if env.version != CmsVersion::V2 {
            return Err(refused(format!(
                "its EnvelopedData version is {:?}, not 2",
                env.version
            )));
        }
        if env.originator_info.is_some() {
            return Err(refused("it has originatorInfo (KMS sends none)"));
        }

        let mut recipients = env.recip_infos.0.iter();
        let (Some(recipient), None) = (recipients.next(), recipients.next()) else {
            return Err(refused(format!(
                "it has {} recipients, not one",
                env.recip_infos.0.len()
            )));
        };
        let RecipientInfo::Ktri(ktri) = recipient else {
            return Err(refused(
                "its recipient is not a key transport recipient (KeyTransRecipientInfo)",
            ));
        };
        let RecipientIdentifier::SubjectKeyIdentifier(ski) = &ktri.rid else {
            return Err(refused(
                "its recipient is named by issuer and serial number, not by subject key identifier",
            ));
        };
        if ktri.version != CmsVersion::V2 {
            return Err(refused(format!(
                "its KeyTransRecipientInfo version is {:?}, not 2",
                ktri.version
            )));
        }
        let ski = ski.0.as_bytes();
        if ski != self.ski {
            let shown = &ski[..ski.len().min(SKI_SHOWN)];
            let mut found = hex::encode(shown);
            if ski.len() > SKI_SHOWN {
                found.push_str(&format!("… ({} bytes)", ski.len()));
            }
            return Err(IdentityError::WrongRecipient {
                found,
                ours: hex::encode(self.ski),
            });
        }
        check_oaep(&ktri.key_enc_alg)?;
        let wrapped = ktri.enc_key.as_bytes();
        if wrapped.len() != RSA_BYTES {
            return Err(refused(format!(
                "its wrapped content key is {} bytes, not {RSA_BYTES} (RSA-2048)",
                wrapped.len()
            )));
        }

        let eci = &env.encrypted_content;
        if eci.content_type != ID_DATA {
            return Err(refused(format!(
                "its encrypted content type is {}, not id-data",
                eci.content_type
            )));
        }
        let iv = aes256_cbc_iv(&eci.content_enc_alg)?;
        let ciphertext = eci
            .encrypted_content
            .as_ref()
            .ok_or_else(|| refused("it has no encrypted content"))?
            .as_bytes();
        if ciphertext.is_empty() || ciphertext.len() % AES_BLOCK != 0 {
            return Err(refused(format!(
                "its encrypted content is {} bytes, not a positive multiple of {AES_BLOCK}",
                ciphertext.len()
            )));
        }

        let mut cek_buf = Zeroizing::new([0u8; RSA_BYTES]);
        let cek = self
            .key
            .decrypt(&OAEP_SHA256_MGF1SHA256, wrapped, &mut cek_buf[..], None)
            .map_err(|_| IdentityError::KeyUnwrap)?;
        if cek.len() != CEK_LEN {
            return Err(refused(format!(
                "its content key is {} bytes, not {CEK_LEN} (AES-256)",
                cek.len()
            )));
        }
        let content_key = UnboundCipherKey::new(&AES_256, cek)
            .and_then(PaddedBlockDecryptingKey::cbc_pkcs7)
            .map_err(|_| IdentityError::ContentDecryption)?;
        let mut content = Zeroizing::new(ciphertext.to_vec());
        let plain = content_key
            .decrypt(
                &mut content[..],
                DecryptionContext::Iv128(FixedLength::from(iv)),
            )
            .map_err(|_| IdentityError::ContentDecryption)?;
        Ok(Zeroizing::new(plain.to_vec()))
    }
}

/// `id-RSAES-OAEP` with SHA-256, MGF1-SHA-256 and no label, or why not.
fn check_oaep(alg: &AlgorithmIdentifierOwned) -> Result<(), IdentityError> {
    if alg.oid != ID_RSAES_OAEP {
        return Err(refused(format!(
            "its key encryption algorithm is {}, not id-RSAES-OAEP",
            alg.oid
        )));
    }
    let params = alg
        .parameters
        .as_ref()
        .ok_or_else(|| refused("its RSAES-OAEP has no parameters (SHA-1), not SHA-256"))?;
    let params: OaepParams = params
        .decode_as()
        .map_err(decode_error("RSAES-OAEP parameters"))?;
    sha256(params.hash.as_ref(), "the RSAES-OAEP hash")?;
    let mgf = params
        .mask_gen
        .as_ref()
        .ok_or_else(|| refused("its RSAES-OAEP mask generation is the default MGF1-SHA-1"))?;
    if mgf.oid != ID_MGF1 {
        return Err(refused(format!(
            "its RSAES-OAEP mask generation is {}, not MGF1",
            mgf.oid
        )));
    }
    let mgf_hash: AlgorithmIdentifierOwned = mgf
        .parameters
        .as_ref()
        .ok_or_else(|| refused("its MGF1 has no hash"))?
        .decode_as()
        .map_err(decode_error("MGF1 parameters"))?;
    sha256(Some(&mgf_hash), "the MGF1 hash")?;
    if params.p_source.is_some() {
        return Err(refused(
            "its RSAES-OAEP has a label source (KMS uses the empty label)",
        ));
    }
    Ok(())
}

/// SHA-256, with absent or NULL parameters.
fn sha256(alg: Option<&AlgorithmIdentifierOwned>, what: &str) -> Result<(), IdentityError> {
    let alg = alg.ok_or_else(|| refused(format!("{what} is the default SHA-1, not SHA-256")))?;
    if alg.oid != ID_SHA256 {
        return Err(refused(format!("{what} is {}, not SHA-256", alg.oid)));
    }
    match &alg.parameters {
        None => Ok(()),
        Some(p) if p.tag() == Tag::Null && p.value().is_empty() => Ok(()),
        Some(_) => Err(refused(format!("{what} has parameters other than NULL"))),
    }
}

/// The IV of `aes256-CBC`, or why the algorithm is refused.
fn aes256_cbc_iv(alg: &AlgorithmIdentifierOwned) -> Result<[u8; AES_BLOCK], IdentityError> {
    if alg.oid != ID_AES256_CBC {
        return Err(refused(format!(
            "its content encryption algorithm is {}, not aes256-CBC",
            alg.oid
        )));
    }
    let iv: OctetString = alg
        .parameters
        .as_ref()
        .ok_or_else(|| refused("its aes256-CBC has no IV"))?
        .decode_as()
        .map_err(decode_error("aes256-CBC IV"))?;
    iv.as_bytes().try_into().map_err(|_| {
        refused(format!(
            "its aes256-CBC IV is {} bytes, not {AES_BLOCK}",
            iv.as_bytes().len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixtures of `enclave/tests/data/identity/` (see its README and
    /// `make-cms-fixture.py`).
    const KEY: &[u8] = include_bytes!("../../tests/data/identity/recipient-key.pk8.der");
    const OPEN: [(usize, &[u8]); 5] = [
        (1, include_bytes!("../../tests/data/identity/open-1.ber")),
        (15, include_bytes!("../../tests/data/identity/open-15.ber")),
        (16, include_bytes!("../../tests/data/identity/open-16.ber")),
        (32, include_bytes!("../../tests/data/identity/open-32.ber")),
        (
            4096,
            include_bytes!("../../tests/data/identity/open-4096.ber"),
        ),
    ];
    const OPEN_32: &[u8] = include_bytes!("../../tests/data/identity/open-32.ber");
    const TWO_RECIPIENTS: &[u8] = include_bytes!("../../tests/data/identity/two-recipients.ber");
    const CEK_16: &[u8] = include_bytes!("../../tests/data/identity/cek-16.ber");
    const BAD_PADDING: &[u8] = include_bytes!("../../tests/data/identity/bad-padding.ber");
    const NO_CONTENT: &[u8] = include_bytes!("../../tests/data/identity/no-content.ber");
    const REAL_KMS: &[u8] =
        include_bytes!("../../tests/data/identity/aws-kms-ciphertext-for-recipient.ber");

    /// What `make-cms-fixture.py` encrypts: byte i of n is (7 i + n) mod 256.
    fn known_plaintext(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| u8::try_from((7 * i + n) % 256).unwrap())
            .collect()
    }

    fn key() -> RecipientKey {
        RecipientKey::from_pkcs8_for_tests(KEY).unwrap()
    }

    /// Opens with a fresh copy of the fixture key (a key opens one answer).
    fn open(blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, IdentityError> {
        key().open(blob)
    }

    /// `blob` with every occurrence of `from` replaced by `to` (same length); panics when
    /// there is none, so a test cannot pass by changing nothing.
    fn replaced(blob: &[u8], from: &[u8], to: &[u8], nth: usize) -> Vec<u8> {
        assert_eq!(from.len(), to.len());
        let at: Vec<usize> = blob
            .windows(from.len())
            .enumerate()
            .filter(|(_, w)| *w == from)
            .map(|(i, _)| i)
            .collect();
        let i = at[nth];
        let mut out = blob.to_vec();
        out[i..i + to.len()].copy_from_slice(to);
        out
    }

    const SHA256_OID: [u8; 11] = [
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
    ];
    const SHA384_OID: [u8; 11] = [
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02,
    ];

    fn refused_with(e: IdentityError, words: &str) {
        match &e {
            IdentityError::EnvelopeRefused(m) if m.contains(words) => {}
            other => panic!("expected a refusal naming {words:?}, got {other:?}"),
        }
    }

    #[test]
    fn generated_key_is_rsa_2048_and_its_ski_is_the_sha256_of_its_spki() {
        let k = RecipientKey::generate().unwrap();
        let spki = k.public_key_spki_der();
        let parsed = aws_lc_rs::rsa::PublicEncryptingKey::from_der(&spki).unwrap();
        assert_eq!(parsed.key_size_bits(), 2048);
        assert_eq!(
            k.subject_key_identifier(),
            <[u8; 32]>::from(Sha256::digest(&spki))
        );
        assert_ne!(
            RecipientKey::generate().unwrap().public_key_spki_der(),
            spki,
            "each key is new"
        );
        assert!(!format!("{k:?}").contains("PrivateDecryptingKey"));
    }

    #[test]
    fn opens_what_the_simulator_writes_at_several_lengths() {
        for (n, blob) in OPEN {
            let plain = open(blob).unwrap_or_else(|e| panic!("{n} bytes: {e}"));
            assert_eq!(*plain, known_plaintext(n), "{n} bytes");
        }
    }

    #[test]
    fn a_key_opens_one_answer() {
        let k = key();
        assert_eq!(*k.open(OPEN_32).unwrap(), known_plaintext(32));
        assert!(matches!(
            k.open(OPEN_32),
            Err(IdentityError::RecipientKeyUsed)
        ));
        let k = key();
        assert!(k.open(&OPEN_32[..100]).is_err());
        assert!(
            matches!(k.open(OPEN_32), Err(IdentityError::RecipientKeyUsed)),
            "a failed attempt uses the key up too"
        );
    }

    #[test]
    fn another_key_is_told_it_is_not_the_recipient() {
        let other = RecipientKey::generate().unwrap();
        match other.open(OPEN_32) {
            Err(IdentityError::WrongRecipient { found, ours }) => {
                assert_eq!(found, hex::encode(key().subject_key_identifier()));
                assert_eq!(ours, hex::encode(other.subject_key_identifier()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_real_kms_answer_parses_and_is_addressed_to_its_own_key() {
        // Its recipient key is not ours: everything up to the recipient check passes on real
        // KMS bytes, and the error names its subject key identifier.
        match open(REAL_KMS) {
            Err(IdentityError::WrongRecipient { found, .. }) => assert_eq!(found.len(), 64),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_flipped_ski_byte_is_another_recipient() {
        let ski = key().subject_key_identifier();
        let mut other = ski;
        other[31] ^= 1;
        let blob = replaced(OPEN_32, &ski, &other, 0);
        assert!(matches!(
            open(&blob),
            Err(IdentityError::WrongRecipient { .. })
        ));
    }

    #[test]
    fn other_algorithms_are_refused() {
        // SHA-384 in the OAEP hash, then in MGF1.
        refused_with(
            open(&replaced(OPEN_32, &SHA256_OID, &SHA384_OID, 0)).unwrap_err(),
            "the RSAES-OAEP hash is 2.16.840.1.101.3.4.2.2",
        );
        refused_with(
            open(&replaced(OPEN_32, &SHA256_OID, &SHA384_OID, 1)).unwrap_err(),
            "the MGF1 hash is 2.16.840.1.101.3.4.2.2",
        );
        // id-RSAES-OAEP -> rsaEncryption (PKCS#1 v1.5).
        let oaep = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07];
        let mut v15 = oaep;
        v15[8] = 0x01;
        refused_with(
            open(&replaced(OPEN_32, &oaep, &v15, 0)).unwrap_err(),
            "not id-RSAES-OAEP",
        );
        // MGF1 -> another OID.
        let mgf1 = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
        let mut not_mgf1 = mgf1;
        not_mgf1[8] = 0x09;
        refused_with(
            open(&replaced(OPEN_32, &mgf1, &not_mgf1, 0)).unwrap_err(),
            "not MGF1",
        );
        // aes256-CBC -> aes128-CBC.
        let aes256 = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
        let mut aes128 = aes256;
        aes128[8] = 0x02;
        refused_with(
            open(&replaced(OPEN_32, &aes256, &aes128, 0)).unwrap_err(),
            "not aes256-CBC",
        );
        // id-data -> id-signedData in the encrypted content.
        let data = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
        let mut signed = data;
        signed[8] = 0x02;
        refused_with(
            open(&replaced(OPEN_32, &data, &signed, 0)).unwrap_err(),
            "not id-data",
        );
        // id-envelopedData -> id-signedData in the ContentInfo.
        let enveloped = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
        refused_with(
            open(&replaced(OPEN_32, &enveloped, &signed, 0)).unwrap_err(),
            "not id-envelopedData",
        );
    }

    #[test]
    fn the_content_key_must_be_aes_256() {
        refused_with(open(CEK_16).unwrap_err(), "content key is 16 bytes");
    }

    #[test]
    fn two_recipients_are_refused() {
        refused_with(open(TWO_RECIPIENTS).unwrap_err(), "2 recipients, not one");
    }

    #[test]
    fn bad_padding_and_missing_content_are_refused() {
        assert!(matches!(
            open(BAD_PADDING),
            Err(IdentityError::ContentDecryption)
        ));
        refused_with(open(NO_CONTENT).unwrap_err(), "no encrypted content");
    }

    #[test]
    fn an_altered_wrapped_key_does_not_unwrap() {
        // The wrapped key is the 256 bytes after `04 82 01 00`.
        let at = OPEN_32
            .windows(4)
            .position(|w| w == [0x04, 0x82, 0x01, 0x00])
            .unwrap()
            + 4;
        let mut blob = OPEN_32.to_vec();
        blob[at + 100] ^= 0x40;
        assert!(matches!(open(&blob), Err(IdentityError::KeyUnwrap)));
    }

    #[test]
    fn altered_content_fails_or_gives_other_bytes_never_the_plaintext() {
        // CBC is not authenticated: a flipped bit in the last block breaks the padding, one
        // elsewhere garbles a block. The caller's AES-GCM unseal catches the latter.
        let n = OPEN_32.len();
        for back in [7, 20, 40] {
            let mut blob = OPEN_32.to_vec();
            blob[n - back] ^= 0x01;
            if let Ok(p) = open(&blob) {
                assert_ne!(*p, known_plaintext(32), "byte -{back}");
            }
        }
    }

    #[test]
    fn every_truncation_and_every_bit_flip_is_an_error_or_other_bytes_never_a_panic() {
        for cut in 0..OPEN_32.len() {
            assert!(open(&OPEN_32[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..OPEN_32.len() {
            for bit in [0x01, 0x80] {
                let mut blob = OPEN_32.to_vec();
                blob[i] ^= bit;
                if let Ok(p) = open(&blob) {
                    assert_ne!(*p, known_plaintext(32), "byte {i} bit {bit:#x}");
                }
            }
        }
        let mut long = OPEN_32.to_vec();
        long.push(0);
        assert!(open(&long).is_err(), "trailing bytes");
        assert!(matches!(
            open(&vec![0x30; MAX_CIPHERTEXT_FOR_RECIPIENT + 1]),
            Err(IdentityError::EnvelopeTooLarge { .. })
        ));
    }

    #[test]
    fn errors_do_not_show_the_plaintext() {
        let secret = hex::encode(known_plaintext(32));
        let mut blob = OPEN_32.to_vec();
        let n = blob.len();
        blob[n - 7] ^= 1;
        for b in [&blob[..], &OPEN_32[..50], CEK_16, BAD_PADDING] {
            if let Err(e) = open(b) {
                let shown = format!("{e} {e:?}");
                assert!(!shown.contains(&secret[..16]), "{shown}");
            }
        }
    }
}
