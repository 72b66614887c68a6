//! What a secret records of the versions written to it, and what a write does about it.
//!
//! The value's `VersionId` is the [`client_request_token`] of the bundle version and content that
//! wrote it, so the secret's `AWSCURRENT` id proves which version its value is, in the same call
//! as the value. The version floor is the higher of that and the `nitrosync:version` tag, which a
//! parent can make lag by cutting the `TagResource` call, but never lower.

use super::{TAG_MAC, TAG_VERSION, tag_value};
use aws_sdk_secretsmanager::types::Tag;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The staging label of a secret's current value.
pub(crate) const AWSCURRENT: &str = "AWSCURRENT";

/// Digits of the version in a [`client_request_token`] (`u64::MAX` has 20).
const TOKEN_VERSION_DIGITS: usize = 20;

/// Hex characters of the hash in a [`client_request_token`]: 20 + 1 + 43 = 64.
const TOKEN_HASH_HEX: usize = 43;

/// The `ClientRequestToken` of a value write, which AWS makes the `VersionId` of the value:
/// `{version:020}-{43 hex of SHA-256(domain, destination, version, MAC)}`, 64 characters
/// (AWS allows 32–64).
///
/// It is stable for (destination, version, content), so a retried write never makes a second
/// version. Its version is in clear, so the `VersionId` staged `AWSCURRENT` records which bundle
/// version wrote the current value, in the same call that wrote it: that is the rollback floor
/// even when the `nitrosync:version` tag lags (see [`decide`]). The hash keeps two contents of
/// one version apart and lets the enclave check a content against the current `VersionId`.
pub fn client_request_token(destination: &str, version: u64, mac: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"nitrosync/client-request-token/v2\0");
    h.update(destination.as_bytes());
    h.update(b"\0");
    h.update(version.to_be_bytes());
    h.update(mac.as_bytes());
    let mut hash = hex::encode(h.finalize());
    hash.truncate(TOKEN_HASH_HEX);
    format!("{version:0width$}-{hash}", width = TOKEN_VERSION_DIGITS)
}

/// The bundle version in a `VersionId` made by [`client_request_token`]; `None` for any other
/// id (written by hand, by another tool, or by a nitrosync before tokens carried the version),
/// which proves nothing.
pub fn token_version(version_id: &str) -> Option<u64> {
    let (digits, rest) = version_id.split_at_checked(TOKEN_VERSION_DIGITS)?;
    let hash = rest.strip_prefix('-')?;
    let well_formed = digits.bytes().all(|b| b.is_ascii_digit())
        && hash.len() == TOKEN_HASH_HEX
        && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !well_formed {
        return None;
    }
    digits.parse().ok()
}

/// What `DescribeSecret` says about an existing secret's version.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Recorded<'a> {
    /// The `nitrosync:version` tag (0 when absent or unreadable). It may lag behind the value:
    /// it is written by a second call, which the parent can cut.
    pub(crate) tag_version: u64,
    /// The `nitrosync:mac` tag, written with `tag_version`.
    pub(crate) tag_mac: Option<&'a str>,
    /// The `VersionId` staged `AWSCURRENT`, written in the same call as the value.
    pub(crate) current_id: Option<&'a str>,
}

impl<'a> Recorded<'a> {
    /// The newest version the secret is known to hold: the higher of the tag and the version in
    /// the `AWSCURRENT` id. Neither can be lowered by dropping a call.
    pub(crate) fn floor(&self) -> u64 {
        let current = self.current_id.and_then(token_version).unwrap_or(0);
        self.tag_version.max(current)
    }

    pub(crate) fn of(tags: &'a [Tag], versions: Option<&'a HashMap<String, Vec<String>>>) -> Self {
        Recorded {
            tag_version: tag_value(tags, TAG_VERSION)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            tag_mac: tag_value(tags, TAG_MAC),
            current_id: versions.and_then(|m| {
                m.iter()
                    .find(|(_, stages)| stages.iter().any(|s| s == AWSCURRENT))
                    .map(|(id, _)| id.as_str())
            }),
        }
    }
}

/// What the write path does with a bundle, given the secret's [`Recorded`] state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Refused: older than the secret's floor, or the same version with other content.
    Stale { floor: u64, same_version: bool },
    /// The value is this content and the tags say this version and content: write nothing.
    Nothing,
    /// The value is already this content, proven by `AWSCURRENT`'s `VersionId`; only the tags
    /// move. `completes` when that value was written for this very version by an earlier sync
    /// whose `TagResource` did not land.
    Retag { completes: bool },
    /// `PutSecretValue`, then `TagResource`.
    Write,
}

/// The write path's decision (DESIGN §3 rollback protection, §8 compare before write).
///
/// The floor is the higher of the version tag and the version in `AWSCURRENT`'s `VersionId`:
/// the tag can lag behind the value (the parent can drop `TagResource`), the `VersionId` cannot
/// (it is written with the value). Only ids in our token format count. The tags alone never
/// prove that the value is already this content: only `AWSCURRENT`'s id does, when it equals
/// the token of its own version with this bundle's MAC (its version is then at most this one:
/// an earlier version with the same content, whose tags were moved forward without a write).
pub(crate) fn decide(destination: &str, version: u64, mac: &str, rec: &Recorded<'_>) -> Plan {
    let current_version = rec.current_id.and_then(token_version);
    let floor = rec.floor();
    if version < floor {
        return Plan::Stale {
            floor,
            same_version: false,
        };
    }
    let tags_say_this = rec.tag_version == version && rec.tag_mac == Some(mac);
    if let (Some(id), Some(v)) = (rec.current_id, current_version)
        && id == client_request_token(destination, v, mac)
    {
        return if tags_say_this {
            Plan::Nothing
        } else {
            Plan::Retag {
                completes: v == version,
            }
        };
    }
    // The value is not this content, or nothing proves that it is. The same version with other
    // content is refused: a version names one content (a second one could only come from the
    // tenant signing two, and the first to land wins).
    let same_version_other_content = current_version == Some(version)
        || (rec.tag_version == version && rec.tag_mac != Some(mac));
    if same_version_other_content {
        return Plan::Stale {
            floor,
            same_version: true,
        };
    }
    // Newer than everything recorded; or the tags say this version and content but the
    // current value's id does not prove it (an id from before tokens carried the version, or
    // a value edited by hand): writing this bundle's content again is what it signed.
    Plan::Write
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::tag;

    #[test]
    fn request_tokens_are_stable_and_distinct() {
        let a = client_request_token("d", 1, "m");
        assert_eq!(a, client_request_token("d", 1, "m"));
        assert_ne!(a, client_request_token("d", 2, "m"));
        assert_ne!(a, client_request_token("d", 1, "n"));
        assert_ne!(a, client_request_token("e", 1, "m"));
    }

    #[test]
    fn request_tokens_carry_their_version_in_a_fixed_form() {
        for version in [0, 1, 42, 1_795_307_810_162, u64::MAX] {
            let t = client_request_token("dest", version, &"ab".repeat(32));
            // AWS takes 32–64 characters; ours are always 64.
            assert_eq!(t.len(), 64, "{t}");
            assert_eq!(&t[..20], format!("{version:020}"));
            assert_eq!(&t[20..21], "-");
            assert!(
                t[21..]
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            );
            assert_eq!(token_version(&t), Some(version));
        }
        assert_eq!(
            client_request_token("d", 7, "m"),
            "00000000000000000007-2c85067cf190e2d7e9ebca231daad931f1feb57abf2",
            "the token is part of the record in AWS: changing it changes every secret's floor"
        );
    }

    #[test]
    fn only_our_token_format_names_a_version() {
        let ours = client_request_token("d", 5, "m");
        let not_ours = [
            // The v1 token: 64 hex characters.
            hex::encode([7u8; 32]),
            // What AWS or moto make without a token.
            "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111".to_owned(),
            String::new(),
            ours[..63].to_owned(),
            format!("{ours}0"),
            ours.replacen('-', "_", 1),
            ours.to_uppercase(),
            format!("+{}", &ours[1..]),
            // 20 digits over u64::MAX.
            format!("99999999999999999999{}", &ours[20..]),
        ];
        for id in &not_ours {
            assert_eq!(token_version(id), None, "{id:?}");
        }
    }

    const D: &str = "dest";

    fn mac(n: u8) -> String {
        hex::encode([n; 32])
    }

    fn rec<'a>(tag_version: u64, tag_mac: &'a str, current_id: Option<&'a str>) -> Recorded<'a> {
        Recorded {
            tag_version,
            tag_mac: Some(tag_mac),
            current_id,
        }
    }

    #[test]
    fn a_dropped_tag_resource_opens_no_rollback() {
        let (m1, m2, m3) = (mac(1), mac(2), mac(3));
        // v1 fully written, then v3's value landed but its tags did not.
        let t3 = client_request_token(D, 3, &m3);
        let lagging = rec(1, &m1, Some(&t3));
        assert_eq!(
            decide(D, 2, &m2, &lagging),
            Plan::Stale {
                floor: 3,
                same_version: false
            },
            "the older, validly signed v2 is refused"
        );
        assert_eq!(
            decide(D, 1, &m1, &lagging),
            Plan::Stale {
                floor: 3,
                same_version: false
            }
        );
        // v3 again: its value is current, only the tags are written.
        assert_eq!(decide(D, 3, &m3, &lagging), Plan::Retag { completes: true });
        // v3 with other content (the tenant signed two v3s): refused, not written.
        assert_eq!(
            decide(D, 3, &m2, &lagging),
            Plan::Stale {
                floor: 3,
                same_version: true
            }
        );
        // A newer version is written.
        assert_eq!(decide(D, 4, &m1, &lagging), Plan::Write);
        // Once healed, v3 writes nothing.
        assert_eq!(decide(D, 3, &m3, &rec(3, &m3, Some(&t3))), Plan::Nothing);
    }

    #[test]
    fn unchanged_content_moves_only_the_tags() {
        let m = mac(9);
        let t2 = client_request_token(D, 2, &m);
        // v3 has v2's content: no value write, the tags move to 3.
        assert_eq!(
            decide(D, 3, &m, &rec(2, &m, Some(&t2))),
            Plan::Retag { completes: false }
        );
        // v3 again, tags at 3 and the value still v2's id: nothing at all.
        assert_eq!(decide(D, 3, &m, &rec(3, &m, Some(&t2))), Plan::Nothing);
        // The tags at 3 are the floor.
        assert_eq!(
            decide(D, 2, &m, &rec(3, &m, Some(&t2))),
            Plan::Stale {
                floor: 3,
                same_version: false
            }
        );
        // Other content at the tagged version is refused.
        assert_eq!(
            decide(D, 3, &mac(8), &rec(3, &m, Some(&t2))),
            Plan::Stale {
                floor: 3,
                same_version: true
            }
        );
        // A current id of another destination proves nothing about this one.
        let other = client_request_token("other", 2, &m);
        assert_eq!(decide(D, 3, &m, &rec(3, &m, Some(&other))), Plan::Write);
    }

    #[test]
    fn ids_not_in_our_format_leave_the_tag_as_the_floor() {
        let m = mac(4);
        let legacy = hex::encode([1u8; 32]);
        for current in [Some(legacy.as_str()), Some("manual-edit-uuid"), None] {
            let r = rec(5, &m, current);
            assert_eq!(
                decide(D, 4, &mac(3), &r),
                Plan::Stale {
                    floor: 5,
                    same_version: false
                },
                "{current:?}"
            );
            assert_eq!(
                decide(D, 5, &mac(3), &r),
                Plan::Stale {
                    floor: 5,
                    same_version: true
                },
                "{current:?}"
            );
            // The tags say this bundle but nothing proves the value: write it again (once;
            // then the id proves it).
            assert_eq!(decide(D, 5, &m, &r), Plan::Write, "{current:?}");
            assert_eq!(decide(D, 6, &m, &r), Plan::Write, "{current:?}");
        }
        // No tags at all on an owned secret: version 0 is the floor, as before.
        let bare = Recorded::default();
        assert_eq!(decide(D, 1, &m, &bare), Plan::Write);
    }

    #[test]
    fn the_current_version_id_is_the_one_staged_awscurrent() {
        let m = mac(1);
        let (t4, t5) = (
            client_request_token(D, 4, &m),
            client_request_token(D, 5, &m),
        );
        let versions = HashMap::from([
            (t5.clone(), vec!["AWSPENDING".to_owned()]),
            (
                t4.clone(),
                vec!["AWSCURRENT".to_owned(), "custom".to_owned()],
            ),
            ("old".to_owned(), vec!["AWSPREVIOUS".to_owned()]),
        ]);
        let tags = [tag(TAG_VERSION, "3"), tag(TAG_MAC, &m)];
        let r = Recorded::of(&tags, Some(&versions));
        assert_eq!(r.current_id, Some(t4.as_str()));
        assert_eq!(r.tag_version, 3);
        assert_eq!(r.tag_mac, Some(m.as_str()));
        assert_eq!(Recorded::of(&tags, None).current_id, None);
        let bad = [tag(TAG_VERSION, "three")];
        assert_eq!(Recorded::of(&bad, None).tag_version, 0);
    }
}
