//! The names nitrosync writes into the customer's account. The enclave writes them, the customer's
//! IAM grants on them, and the simulator checks them: one definition for all three (DESIGN §8).

/// Tag key naming the secret's manager; its value is [`MANAGED_BY`].
pub const TAG_MANAGED_BY: &str = "nitrosync:managed-by";

/// Tag key naming the destination that owns the secret.
pub const TAG_DESTINATION: &str = "nitrosync:destination";

/// Tag key carrying the newest version written (rollback protection).
pub const TAG_VERSION: &str = "nitrosync:version";

/// Tag key carrying the HMAC of the secret's content (compare before write).
pub const TAG_MAC: &str = "nitrosync:mac";

/// The value of [`TAG_MANAGED_BY`] on every secret the worker creates.
pub const MANAGED_BY: &str = "nitrosync";

/// Tags nitrosync writes on every secret it owns. They count against AWS's 50-tag limit.
pub const RESERVED_TAGS: [&str; 4] = [TAG_MANAGED_BY, TAG_DESTINATION, TAG_VERSION, TAG_MAC];

/// What the worker puts between the secret name and a random suffix when it names a test
/// connection's placeholder secret: `<secret_name>-nitrosync-test-<random>`.
pub const TEST_SECRET_INFIX: &str = "-nitrosync-test-";

/// The name of a test connection's placeholder secret.
pub fn test_secret_name(secret_name: &str, random_suffix: &str) -> String {
    format!("{secret_name}{TEST_SECRET_INFIX}{random_suffix}")
}
