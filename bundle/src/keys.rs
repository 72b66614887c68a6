//! The two long-lived keys: the tenant's Ed25519 signing key and the enclave's X25519 HPKE key.

use ed25519_dalek::{Signature, Signer, SigningKey};
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, Serializable};
use rand_core::CryptoRng;
use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

type HpkePrivateKey = <X25519HkdfSha256 as Kem>::PrivateKey;
pub(crate) type HpkePublicKey = <X25519HkdfSha256 as Kem>::PublicKey;

/// Lower-case hex of a public key, for `Debug`.
struct Hex<'a>(&'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A tenant's Ed25519 signing key: it authorises bundles and, with the destination id, fixes
/// the SAML subject. Zeroized on drop; `Debug` shows only the public key.
pub struct TenantKey(SigningKey);

impl TenantKey {
    /// A fresh key from a cryptographic random number generator.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        Self(SigningKey::generate(rng))
    }

    /// The key with this 32-byte Ed25519 seed (RFC 8032 private key). The seed is borrowed so
    /// that no copy is left behind here; the caller keeps and zeroizes its own.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed, for the CLI to store.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(self.0.as_bytes());
        out
    }

    /// The Ed25519 public key: `header.tenant_key`.
    pub fn public(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        let signature: Signature = self.0.sign(message);
        signature.to_bytes()
    }
}

impl fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantKey")
            .field("public", &Hex(&self.public()))
            .finish_non_exhaustive()
    }
}

// `SigningKey` zeroizes itself on drop.
impl ZeroizeOnDrop for TenantKey {}

/// The enclave's static X25519 key for HPKE: bundles are sealed to its public half, which the
/// enclave publishes in its attestation document. Zeroized on drop; `Debug` shows only the
/// public key.
pub struct EnclaveBundleKey {
    secret: HpkePrivateKey,
    public: [u8; 32],
}

impl EnclaveBundleKey {
    /// A fresh key from a cryptographic random number generator.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let (secret, _) = X25519HkdfSha256::gen_keypair_with_rng(rng);
        Self::from_private(secret)
    }

    /// The key with these secret bytes (as from [`secret_bytes`](Self::secret_bytes)). Any 32
    /// bytes are a valid X25519 key: they are clamped (RFC 7748), so the key's
    /// [`secret_bytes`](Self::secret_bytes) can differ from unclamped input in five bits.
    pub fn from_secret_bytes(bytes: &[u8; 32]) -> Self {
        match HpkePrivateKey::from_bytes(bytes) {
            Ok(secret) => Self::from_private(secret),
            // Only a length mismatch can fail, and the length is fixed by the type.
            Err(_) => unreachable!("an X25519 private key is 32 bytes"),
        }
    }

    fn from_private(secret: HpkePrivateKey) -> Self {
        let mut public = [0u8; 32];
        X25519HkdfSha256::sk_to_pk(&secret).write_exact(&mut public);
        Self { secret, public }
    }

    /// The (clamped) secret bytes, for sealed persistence.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        self.secret.write_exact(out.as_mut_slice());
        out
    }

    /// The X25519 public key: what tenants seal to, and `header.enclave_key`.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    pub(crate) fn hpke_secret(&self) -> &HpkePrivateKey {
        &self.secret
    }
}

impl fmt::Debug for EnclaveBundleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnclaveBundleKey")
            .field("public", &Hex(&self.public))
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

impl Drop for EnclaveBundleKey {
    fn drop(&mut self) {
        // The HPKE private key wraps an `x25519_dalek::StaticSecret`, which zeroizes itself on
        // drop; the public half is not secret but is cleared too, for tidiness.
        self.public.zeroize();
    }
}

impl ZeroizeOnDrop for EnclaveBundleKey {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_key_round_trips_its_seed_and_debug_hides_it() {
        let seed = [0x42u8; 32];
        let k = TenantKey::from_seed(&seed);
        assert_eq!(*k.seed(), seed);
        assert_eq!(TenantKey::from_seed(&k.seed()).public(), k.public());
        let dbg = format!("{k:?}");
        assert!(dbg.contains(&format!("{:?}", Hex(&k.public()))), "{dbg}");
        assert!(!dbg.contains("4242"), "{dbg}");
    }

    #[test]
    fn enclave_key_round_trips_and_debug_hides_the_secret() {
        // Already clamped: the low three bits clear, bit 255 clear, bit 254 set.
        let mut bytes = [0x11u8; 32];
        bytes[0] &= 248;
        bytes[31] = (bytes[31] & 127) | 64;
        let k = EnclaveBundleKey::from_secret_bytes(&bytes);
        assert_eq!(*k.secret_bytes(), bytes);
        assert_eq!(
            EnclaveBundleKey::from_secret_bytes(&k.secret_bytes()).public(),
            k.public()
        );
        let dbg = format!("{k:?}");
        let secret_hex = format!("{:?}", Hex(&bytes));
        assert!(!dbg.contains(&secret_hex) && !dbg.contains("1111"), "{dbg}");
        assert!(dbg.contains("[REDACTED]") && dbg.contains(&format!("{:?}", Hex(&k.public()))));
    }

    #[test]
    fn unclamped_secret_bytes_are_clamped() {
        let k = EnclaveBundleKey::from_secret_bytes(&[0xff; 32]);
        let s = k.secret_bytes();
        assert_eq!((s[0] & 7, s[31] & 0xc0), (0, 0x40));
    }
}
