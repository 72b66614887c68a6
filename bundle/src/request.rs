//! Tenant API request signatures (the signed bytes are `nitrosync_shared::request_auth`'s): the
//! tenant signs with its [`TenantKey`](crate::TenantKey), the parent verifies with the public key
//! alone.

use crate::BundleError;
use ed25519_dalek::{Signature, VerifyingKey};
use nitrosync_shared::request_auth::{RequestParts, signed_bytes};

/// Checks `signature` over the request `parts` against the tenant key in `parts.tenant`
/// (strict Ed25519: no malleable signatures, no small-order keys).
pub fn verify_request(parts: &RequestParts<'_>, signature: &[u8; 64]) -> Result<(), BundleError> {
    let tenant =
        VerifyingKey::from_bytes(parts.tenant).map_err(|_| BundleError::InvalidTenantKey)?;
    tenant
        .verify_strict(&signed_bytes(parts), &Signature::from_bytes(signature))
        .map_err(|_| BundleError::BadSignature)
}

#[cfg(feature = "seal")]
impl crate::TenantKey {
    /// Signs a tenant API request. `parts.tenant` must be this key's public key, or the parent
    /// refuses the signature.
    pub fn sign_request(&self, parts: &RequestParts<'_>) -> [u8; 64] {
        self.sign(&signed_bytes(parts))
    }
}

#[cfg(all(test, feature = "seal"))]
mod tests {
    use super::*;
    use nitrosync_shared::request_auth::body_digest;

    #[test]
    fn a_signed_request_verifies_and_a_changed_one_does_not() {
        let key = crate::TenantKey::from_seed(&[3; 32]);
        let public = key.public();
        let digest = body_digest(b"{}");
        let parts = RequestParts {
            method: "POST",
            path_and_query: "/v1/bundles",
            tenant: &public,
            timestamp_ms: 42,
            body_sha256: &digest,
        };
        let sig = key.sign_request(&parts);
        verify_request(&parts, &sig).unwrap();
        let other = body_digest(b"{ }");
        let tampered = RequestParts {
            body_sha256: &other,
            ..parts
        };
        assert!(matches!(
            verify_request(&tampered, &sig),
            Err(BundleError::BadSignature)
        ));
        let stranger = crate::TenantKey::from_seed(&[4; 32]).public();
        let impostor = RequestParts {
            tenant: &stranger,
            ..parts
        };
        assert!(verify_request(&impostor, &sig).is_err());
    }
}
