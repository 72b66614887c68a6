//! The content MAC written as the `nitrosync:mac` tag, keyed per destination.
//!
//! The tag lets the enclave see that a secret already holds a bundle's content without reading
//! the value, so unchanged content makes no write. Anyone who can read the secret's tags can
//! also test a guess at its content against the tag, if they can compute the MAC: so each
//! destination has its own key, derived from the enclave's master key with HKDF-SHA256
//! (RFC 5869, no salt) over the tenant's public key and the destination id ([`mac_info`]).
//! A tag of one destination says nothing about another destination's content, of the same
//! tenant or of another.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use zeroize::Zeroizing;

/// The domain and version of the derivation; the first bytes of [`mac_info`].
pub const MAC_INFO_DOMAIN: &[u8] = b"nitrosync mac v1";

/// The enclave's MAC master key. Prints `[REDACTED]`; zeroized on drop.
pub struct MacMasterKey(Zeroizing<[u8; 32]>);

impl MacMasterKey {
    /// A master key from its bytes (fresh randomness, or the unsealed identity).
    pub fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Self {
        Self(bytes)
    }

    /// The MAC key of one destination of one tenant.
    pub fn destination_key(
        &self,
        tenant_key: &[u8; 32],
        destination_id: &str,
    ) -> Result<DestinationMacKey, FieldTooLong> {
        let info = mac_info(tenant_key, destination_id)?;
        let mut key = Zeroizing::new([0u8; 32]);
        // `hkdf` 0.12 does not zeroize its pseudorandom key; it lives on this stack frame only.
        Hkdf::<Sha256>::new(None, self.0.as_slice())
            .expand(&info, key.as_mut_slice())
            .unwrap_or_else(|_| unreachable!("HKDF-SHA256 gives up to 8160 bytes; we ask for 32"));
        Ok(DestinationMacKey(key))
    }
}

impl fmt::Debug for MacMasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacMasterKey([REDACTED])")
    }
}

/// One destination's MAC key. Prints `[REDACTED]`; zeroized on drop.
pub struct DestinationMacKey(Zeroizing<[u8; 32]>);

impl DestinationMacKey {
    /// The hex HMAC-SHA256 of a content: the `nitrosync:mac` tag.
    pub fn mac(&self, content: &[u8]) -> String {
        let mut m = <Hmac<Sha256>>::new_from_slice(self.0.as_slice())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        m.update(content);
        hex::encode(m.finalize().into_bytes())
    }
}

impl fmt::Debug for DestinationMacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DestinationMacKey([REDACTED])")
    }
}

/// A field of the HKDF info does not fit its 32-bit length prefix. (Destination ids are at most
/// 64 bytes, so a verified bundle never gets here.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a MAC derivation field is {0} bytes long; the most is 4 GiB")]
pub struct FieldTooLong(pub usize);

/// The HKDF info of a destination's MAC key, one unambiguous encoding of the pair:
/// `"nitrosync mac v1" ‖ u32be(len(tenant_key)) ‖ tenant_key ‖ u32be(len(id)) ‖ id`.
pub fn mac_info(tenant_key: &[u8; 32], destination_id: &str) -> Result<Vec<u8>, FieldTooLong> {
    let id = destination_id.as_bytes();
    let mut info = Vec::with_capacity(MAC_INFO_DOMAIN.len() + 8 + tenant_key.len() + id.len());
    info.extend_from_slice(MAC_INFO_DOMAIN);
    for field in [tenant_key.as_slice(), id] {
        let len = u32::try_from(field.len()).map_err(|_| FieldTooLong(field.len()))?;
        info.extend_from_slice(&len.to_be_bytes());
        info.extend_from_slice(field);
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTENT: &[u8] = br#"{"API_KEY":"k-1111"}"#;

    fn master() -> MacMasterKey {
        // 00 01 02 .. 1f
        MacMasterKey::from_bytes(Zeroizing::new(std::array::from_fn(|i| {
            u8::try_from(i).unwrap()
        })))
    }

    fn mac(m: &MacMasterKey, tenant: [u8; 32], id: &str) -> String {
        m.destination_key(&tenant, id).unwrap().mac(CONTENT)
    }

    /// Computed independently with Python's standard library (`hmac`, `hashlib`, `struct`):
    /// ```python
    /// import hmac, hashlib, struct
    /// master, tenant, dest = bytes(range(32)), bytes([0x42] * 32), b"prod-api"
    /// info = (b"nitrosync mac v1" + struct.pack(">I", 32) + tenant
    ///         + struct.pack(">I", len(dest)) + dest)
    /// prk = hmac.new(b"\0" * 32, master, hashlib.sha256).digest()     # HKDF-Extract, no salt
    /// key = hmac.new(prk, info + b"\x01", hashlib.sha256).digest()     # HKDF-Expand, L = 32
    /// hmac.new(key, b'{"API_KEY":"k-1111"}', hashlib.sha256).hexdigest()
    /// ```
    #[test]
    fn known_answer() {
        assert_eq!(
            hex::encode(mac_info(&[0x42; 32], "prod-api").unwrap()),
            "6e6974726f73796e63206d616320763100000020\
             4242424242424242424242424242424242424242424242424242424242424242\
             0000000870726f642d617069"
        );
        let key = master().destination_key(&[0x42; 32], "prod-api").unwrap();
        assert_eq!(
            hex::encode(key.0.as_slice()),
            "a2c723c20efb6b2ea459f9d8fbe2bd03fba9f6e2df2b6ddc6c16bdcd6f46633a"
        );
        assert_eq!(
            key.mac(CONTENT),
            "311d66007adaae1db387b9fe600fcd8a25b1c18213263c5c146fb5c0f5fed431"
        );
    }

    #[test]
    fn destinations_of_one_tenant_differ() {
        let m = master();
        assert_ne!(mac(&m, [1; 32], "app"), mac(&m, [1; 32], "app2"));
    }

    #[test]
    fn one_id_under_two_tenants_differs() {
        let m = master();
        assert_ne!(mac(&m, [1; 32], "app"), mac(&m, [2; 32], "app"));
    }

    #[test]
    fn one_destination_is_stable() {
        assert_eq!(
            mac(&master(), [1; 32], "app"),
            mac(&master(), [1; 32], "app")
        );
        let other = MacMasterKey::from_bytes(Zeroizing::new([7; 32]));
        assert_ne!(mac(&master(), [1; 32], "app"), mac(&other, [1; 32], "app"));
    }

    #[test]
    fn the_encoding_has_no_concatenation_collisions() {
        // A tenant key ending like an id's prefix cannot shift bytes between the fields: each
        // length is explicit.
        let a = mac_info(&[0x61; 32], "b").unwrap();
        let b = mac_info(&[0x61; 32], "ab").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len() + 1, b.len());
        assert_ne!(
            a[..a.len() - 1],
            b[..a.len() - 1],
            "the id's length prefix differs"
        );
    }

    #[test]
    fn keys_print_redacted() {
        let m = master();
        let k = m.destination_key(&[1; 32], "app").unwrap();
        assert_eq!(format!("{m:?}"), "MacMasterKey([REDACTED])");
        assert_eq!(format!("{k:?}"), "DestinationMacKey([REDACTED])");
    }
}
