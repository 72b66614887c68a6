//! The sync engine: a sealed bundle in, a [`SyncReport`] out.
//!
//! `Write` opens the bundle, renders the environment as deterministic JSON, and makes the
//! destination's secret equal to it:
//! 1. the JSON must fit AWS's 65,536 bytes, checked before any AWS call;
//! 2. credentials come from the [`session::SessionCache`] or one `AssumeRoleWithSAML`;
//! 3. `DescribeSecret` decides: absent → `CreateSecret` with the ownership tags; present but not
//!    owned by this destination, or pending deletion → `SecretNameConflict`; otherwise see
//!    [`decide`]: older than the floor, or the same version with other content → `StaleVersion`;
//!    the same content → no value write (and no write at all if the tags say this version);
//!    otherwise `PutSecretValue`, then `TagResource` with the new version and MAC.
//!
//! The value is written before the tags, so a failure in between (or a parent that cuts the
//! tunnel at `TagResource`) leaves a newer value under the old version tag. That opens no
//! rollback: the `ClientRequestToken`, which AWS makes the value's `VersionId`, carries the
//! bundle version ([`client_request_token`]), so the floor is the higher of the tag and the
//! version of `AWSCURRENT`'s id. The retry of the same bundle finds its own token current and
//! only re-tags. Tags are never ahead of the value.

pub mod errors;
pub mod locks;
pub mod pacing;
pub mod session;

use crate::https::AwsHttpClient;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::types::Tag;
use errors::{Failure, HasStatus, Service, classify};
use hmac::{Hmac, Mac};
use nitrosync_bundle::{EnclaveBundleKey, OpenedBundle, open, render_json};
use nitrosync_saml::SamlSigner;
use nitrosync_shared::ErrorCode;
use nitrosync_shared::bundle::{DeletePolicy, DestinationConfig, Operation, SealedBundle};
use nitrosync_shared::control::{SyncError, SyncMode, SyncOutcome, SyncReport, SyncTimings};
use pacing::{WriteGroup, WritePacer};
use session::{AwsSettings, Session, SessionCache};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tracing::info;
use zeroize::Zeroizing;

/// The largest secret value AWS accepts.
pub const MAX_SECRET_BYTES: usize = 65_536;

pub use nitrosync_shared::tags::{
    MANAGED_BY, TAG_DESTINATION, TAG_MAC, TAG_MANAGED_BY, TAG_VERSION,
};

/// Everything a sync needs; shared by all syncs.
#[derive(Debug)]
pub struct SyncEngine {
    aws: AwsSettings,
    signer: SamlSigner,
    bundle_key: EnclaveBundleKey,
    mac_key: Zeroizing<[u8; 32]>,
    sessions: SessionCache,
    locks: locks::DestinationLocks,
    pacer: WritePacer,
}

/// What one sync cost.
#[derive(Debug, Default)]
struct Costs {
    aws: Duration,
    calls: u32,
    signed: bool,
}

/// Time one AWS call.
async fn timed<T>(costs: &mut Costs, f: impl std::future::Future<Output = T>) -> T {
    let t = Instant::now();
    let r = f.await;
    costs.aws += t.elapsed();
    costs.calls += 1;
    r
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// The staging label of a secret's current value.
const AWSCURRENT: &str = "AWSCURRENT";

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
struct Recorded<'a> {
    /// The `nitrosync:version` tag (0 when absent or unreadable). It may lag behind the value:
    /// it is written by a second call, which the parent can cut.
    tag_version: u64,
    /// The `nitrosync:mac` tag, written with `tag_version`.
    tag_mac: Option<&'a str>,
    /// The `VersionId` staged `AWSCURRENT`, written in the same call as the value.
    current_id: Option<&'a str>,
}

impl<'a> Recorded<'a> {
    /// The newest version the secret is known to hold: the higher of the tag and the version in
    /// the `AWSCURRENT` id. Neither can be lowered by dropping a call.
    fn floor(&self) -> u64 {
        let current = self.current_id.and_then(token_version).unwrap_or(0);
        self.tag_version.max(current)
    }

    fn of(tags: &'a [Tag], versions: Option<&'a HashMap<String, Vec<String>>>) -> Self {
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
enum Plan {
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
fn decide(destination: &str, version: u64, mac: &str, rec: &Recorded<'_>) -> Plan {
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

fn random_suffix() -> String {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).unwrap_or_else(|e| panic!("no entropy: {e}"));
    hex::encode(b)
}

impl SyncEngine {
    /// An engine with fresh keys. (Persistence across restarts is sealed by KMS in production;
    /// until then a restart means new keys, new SAML metadata and one rewrite per destination.)
    pub fn new(
        http: AwsHttpClient,
        signer: SamlSigner,
        bundle_key: EnclaveBundleKey,
        mac_key: Zeroizing<[u8; 32]>,
        retry: aws_smithy_types::retry::RetryConfig,
        writes_per_second: u32,
    ) -> Self {
        let timeouts = aws_smithy_types::timeout::TimeoutConfig::builder()
            .operation_attempt_timeout(Duration::from_secs(15))
            .operation_timeout(Duration::from_secs(60))
            .build();
        Self {
            aws: AwsSettings {
                http,
                retry,
                timeouts,
            },
            signer,
            bundle_key,
            mac_key,
            sessions: SessionCache::default(),
            locks: locks::DestinationLocks::default(),
            pacer: WritePacer::new(writes_per_second),
        }
    }

    /// The SAML signer (for metadata).
    pub fn signer(&self) -> &SamlSigner {
        &self.signer
    }

    /// The bundle key's public half.
    pub fn bundle_public_key(&self) -> [u8; 32] {
        self.bundle_key.public()
    }

    /// Sessions cached now.
    pub fn cached_sessions(&self) -> usize {
        self.sessions.len()
    }

    fn mac(&self, json: &[u8]) -> String {
        // HMAC accepts any key length.
        let mut m = <Hmac<Sha256>>::new_from_slice(&*self.mac_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        m.update(json);
        hex::encode(m.finalize().into_bytes())
    }

    /// Refuses a bundle whose signed lifetime is over by the trusted clock. The clock is
    /// corrected by authenticated AWS `Date` headers; before the first one, the host's clock is
    /// what there is, so an operation that reaches AWS is checked again once it has one
    /// ([`Self::session`] refreshes the correction).
    fn check_live(&self, opened: &OpenedBundle) -> Result<(), Failure> {
        let now = nitrosync_shared::unix_ms(self.aws.http.clock().now());
        if opened.header.is_live_at(now) {
            return Ok(());
        }
        Err(Failure::new(
            ErrorCode::InvalidBundle,
            format!(
                "the bundle expired at {} ms (now {now} ms by the enclave's clock): the tenant must seal a new one.",
                opened.header.not_after_ms
            ),
        ))
    }

    /// Runs one sync and reports it. Never panics on hostile input; never puts a value in the
    /// report. `bundle` is the CBOR of a `SealedBundle` as the tenant submitted it, from the parent:
    /// hostile until it decodes and its signature verifies. What is done is the bundle's signed
    /// operation, and only while the bundle is live by the trusted clock; the parent chooses
    /// neither.
    pub async fn sync(&self, bundle: &[u8]) -> SyncReport {
        let started = Instant::now();
        let mut costs = Costs::default();
        let mut report = SyncReport {
            destination: String::new(),
            version: 0,
            mode: SyncMode::Write,
            outcome: SyncOutcome::Failed,
            error: None,
            secret_arn: None,
            aws_version_id: None,
            timings: SyncTimings::default(),
        };
        let decoded = nitrosync_shared::frame::decode_payload::<SealedBundle>(bundle);
        let result = match decoded
            .map_err(|e| e.to_string())
            .and_then(|b| open(&b, &self.bundle_key).map_err(|e| e.to_string()))
        {
            Err(e) => Err(Failure::new(
                ErrorCode::InvalidBundle,
                format!("the bundle was rejected: {e}."),
            )),
            Ok(opened) => {
                report.destination = opened.header.destination.id.clone();
                report.version = opened.header.version;
                report.mode = opened.header.operation.into();
                let _one_at_a_time = self
                    .locks
                    .lock((opened.header.tenant_key, report.destination.clone()))
                    .await;
                match self.check_live(&opened) {
                    Err(f) => Err(f),
                    Ok(()) => match opened.header.operation {
                        Operation::Write => self.write(&opened, &mut costs, &mut report).await,
                        Operation::TestConnection => {
                            self.test_connection(&opened, &mut costs).await
                        }
                        Operation::Delete => self.delete(&opened, &mut costs, &mut report).await,
                    },
                }
            }
        };
        match result {
            Ok(outcome) => report.outcome = outcome,
            Err(f) => {
                report.outcome = SyncOutcome::Failed;
                report.error = Some(f.into_sync_error());
            }
        }
        report.timings = SyncTimings {
            total_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            aws_us: u64::try_from(costs.aws.as_micros()).unwrap_or(u64::MAX),
            aws_calls: costs.calls,
            signed_assertion: costs.signed,
        };
        let code = report
            .error
            .as_ref()
            .map(|e: &SyncError| e.code.as_str())
            .unwrap_or("-");
        info!(
            destination = %report.destination,
            version = report.version,
            mode = ?report.mode,
            outcome = ?report.outcome,
            code,
            aws_calls = costs.calls,
            signed = costs.signed,
            total_us = report.timings.total_us,
            "sync done"
        );
        report
    }

    /// Every Secrets Manager write goes through here: paced for its quota group (DESIGN §8, see
    /// [`pacing`]), timed, and its error classified. The call's future is lazy, so nothing is
    /// sent before the pacer allows it.
    async fn write_call<T, E, R>(
        &self,
        dest: &DestinationConfig,
        group: WriteGroup,
        costs: &mut Costs,
        operation: &str,
        call: impl std::future::Future<Output = Result<T, SdkError<E, R>>>,
    ) -> Result<T, Failure>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: HasStatus + std::fmt::Debug + 'static,
    {
        self.pacer.acquire(dest, group).await;
        timed(costs, call)
            .await
            .map_err(|e| classify(Service::SecretsManager, operation, &e))
    }

    async fn session(&self, opened: &OpenedBundle, costs: &mut Costs) -> Result<Session, Failure> {
        let t = Instant::now();
        let (s, signed) = self
            .sessions
            .get(
                &self.aws,
                &self.signer,
                &opened.header.destination,
                &opened.subject,
            )
            .await?;
        if signed {
            costs.signed = true;
            costs.calls += 1;
            costs.aws += t.elapsed();
        }
        Ok(s)
    }

    async fn write(
        &self,
        opened: &OpenedBundle,
        costs: &mut Costs,
        report: &mut SyncReport,
    ) -> Result<SyncOutcome, Failure> {
        let dest = &opened.header.destination;
        let version = opened.header.version;
        let json = render_json(&opened.variables);
        if json.len() > MAX_SECRET_BYTES {
            return Err(Failure::new(
                ErrorCode::MaximumSecretSizeExceeded,
                format!(
                    "the environment renders to {} bytes of JSON; Secrets Manager takes at most {MAX_SECRET_BYTES}.",
                    json.len()
                ),
            ));
        }
        let mac = self.mac(&json);
        let token = client_request_token(&dest.id, version, &mac);
        // The SDK takes an owned String; it is dropped (not zeroized) inside the SDK.
        let value = Zeroizing::new(String::from_utf8_lossy(&json).into_owned());
        let session = self.session(opened, costs).await?;
        // STS has answered over TLS: the clock is corrected now, whatever the host said.
        self.check_live(opened)?;
        let sm = &session.client;

        let described = timed(
            costs,
            sm.describe_secret().secret_id(&dest.secret_name).send(),
        )
        .await;
        let described = match described {
            Ok(d) => Some(d),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                None
            }
            Err(e) => {
                return Err(classify(
                    Service::SecretsManager,
                    "secretsmanager:DescribeSecret",
                    &e,
                ));
            }
        };
        let Some(d) = described else {
            let mut tags: Vec<Tag> = dest.tags.iter().map(|(k, v)| tag(k, v)).collect();
            tags.extend(managed_tags(dest, version, &mac));
            let created = self
                .write_call(
                    dest,
                    WriteGroup::Create,
                    costs,
                    "secretsmanager:CreateSecret",
                    sm.create_secret()
                        .name(&dest.secret_name)
                        .secret_string(value.as_str())
                        .set_kms_key_id(dest.kms_key_id.clone())
                        .set_tags(Some(tags))
                        .client_request_token(&token)
                        .description(format!(
                            "Managed by nitrosync (destination {}). Do not edit by hand.",
                            dest.id
                        ))
                        .send(),
                )
                .await?;
            report.secret_arn = created.arn().map(str::to_owned);
            report.aws_version_id = created.version_id().map(str::to_owned);
            return Ok(SyncOutcome::Created);
        };
        let arn = d.arn().unwrap_or(&dest.secret_name).to_owned();
        report.secret_arn = Some(arn.clone());
        check_owner(dest, d.tags(), d.deleted_date().is_some())?;
        let recorded = Recorded::of(d.tags(), d.version_ids_to_stages());
        let outcome = match decide(&dest.id, version, &mac, &recorded) {
            Plan::Stale {
                floor,
                same_version: false,
            } => {
                return Err(Failure::new(
                    ErrorCode::StaleVersion,
                    format!(
                        "bundle version {version} is older than version {floor}, which the secret already holds."
                    ),
                ));
            }
            Plan::Stale {
                same_version: true, ..
            } => {
                return Err(Failure::new(
                    ErrorCode::StaleVersion,
                    format!(
                        "the secret already holds version {version} with other content; a change needs a newer version."
                    ),
                ));
            }
            Plan::Nothing => return Ok(SyncOutcome::Unchanged),
            Plan::Retag { completes: true } => {
                // An earlier sync of this bundle wrote the value; its TagResource did not land.
                report.aws_version_id = recorded.current_id.map(str::to_owned);
                SyncOutcome::Updated
            }
            Plan::Retag { completes: false } => SyncOutcome::Unchanged,
            Plan::Write => {
                let put = self
                    .write_call(
                        dest,
                        WriteGroup::Update,
                        costs,
                        "secretsmanager:PutSecretValue",
                        sm.put_secret_value()
                            .secret_id(&arn)
                            .secret_string(value.as_str())
                            .client_request_token(&token)
                            .send(),
                    )
                    .await?;
                report.aws_version_id = put.version_id().map(str::to_owned);
                SyncOutcome::Updated
            }
        };
        // The version tag moves forward even when the content is unchanged, so that it is the
        // floor for the next bundle. (Dropping this call no longer opens a rollback: the value's
        // VersionId carries its version.)
        let tags: Vec<Tag> = dest
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .chain([(TAG_VERSION, version.to_string()), (TAG_MAC, mac.clone())])
            .filter(|(k, v)| tag_value(d.tags(), k) != Some(v.as_str()))
            .map(|(k, v)| tag(k, &v))
            .collect();
        if !tags.is_empty() {
            self.write_call(
                dest,
                WriteGroup::Tags,
                costs,
                "secretsmanager:TagResource",
                sm.tag_resource()
                    .secret_id(&arn)
                    .set_tags(Some(tags))
                    .send(),
            )
            .await?;
        }
        Ok(outcome)
    }

    async fn test_connection(
        &self,
        opened: &OpenedBundle,
        costs: &mut Costs,
    ) -> Result<SyncOutcome, Failure> {
        let dest = &opened.header.destination;
        let session = self.session(opened, costs).await?;
        // STS has answered over TLS: the clock is corrected now, whatever the host said.
        self.check_live(opened)?;
        let sm = &session.client;
        let name = nitrosync_shared::tags::test_secret_name(&dest.secret_name, &random_suffix());
        let mut tags = vec![
            tag(TAG_MANAGED_BY, MANAGED_BY),
            tag(TAG_DESTINATION, &dest.id),
        ];
        tags.extend(dest.tags.iter().map(|(k, v)| tag(k, v)));
        let created = self
            .write_call(
                dest,
                WriteGroup::Create,
                costs,
                "secretsmanager:CreateSecret (test placeholder)",
                sm.create_secret()
                    .name(&name)
                    .secret_string("nitrosync connection test placeholder")
                    .set_kms_key_id(dest.kms_key_id.clone())
                    .set_tags(Some(tags))
                    .send(),
            )
            .await?;
        let arn = created.arn().unwrap_or(&name).to_owned();
        self.write_call(
            dest,
            WriteGroup::Delete,
            costs,
            "secretsmanager:DeleteSecret (test placeholder)",
            sm.delete_secret()
                .secret_id(&arn)
                .force_delete_without_recovery(true)
                .send(),
        )
        .await?;

        // The trust-policy probe: a subject that was never issued must be refused.
        let mut probe_subject = String::from("ns1-probe");
        probe_subject.push_str(&random_suffix());
        probe_subject.push_str(&random_suffix());
        costs.signed = true;
        let t = Instant::now();
        let probe = session::assume_role(
            &self.aws,
            &self.signer,
            dest,
            &probe_subject,
            self.aws.http.clock().now(),
        )
        .await;
        costs.aws += t.elapsed();
        costs.calls += 1;
        match probe {
            Ok(_) => Err(Failure::new(
                ErrorCode::MissingSamlSubject,
                format!(
                    "the role accepted a SAML subject that was never issued ({probe_subject}): its trust policy does not pin saml:sub, so any tenant of this worker could assume it. Pin saml:sub to {}.",
                    opened.subject
                ),
            )),
            Err(f) if f.code == ErrorCode::AssumeRoleError => Ok(SyncOutcome::Tested),
            Err(f) => Err(f),
        }
    }

    async fn delete(
        &self,
        opened: &OpenedBundle,
        costs: &mut Costs,
        report: &mut SyncReport,
    ) -> Result<SyncOutcome, Failure> {
        let dest = &opened.header.destination;
        let DeletePolicy::Delete { recovery_days } = dest.delete_policy else {
            return Ok(SyncOutcome::Retained);
        };
        let session = self.session(opened, costs).await?;
        // STS has answered over TLS: the clock is corrected now, whatever the host said.
        self.check_live(opened)?;
        let sm = &session.client;
        let d = match timed(
            costs,
            sm.describe_secret().secret_id(&dest.secret_name).send(),
        )
        .await
        {
            Ok(d) => d,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(SyncOutcome::Deleted);
            }
            Err(e) => {
                return Err(classify(
                    Service::SecretsManager,
                    "secretsmanager:DescribeSecret",
                    &e,
                ));
            }
        };
        check_owner(dest, d.tags(), false)?;
        if d.deleted_date().is_some() {
            return Ok(SyncOutcome::Deleted);
        }
        // The same floor as a write: a tag left behind by a dropped call does not lower it.
        let current = Recorded::of(d.tags(), d.version_ids_to_stages()).floor();
        if opened.header.version < current {
            return Err(Failure::new(
                ErrorCode::StaleVersion,
                format!(
                    "delete bundle version {} is older than version {current} in the secret.",
                    opened.header.version
                ),
            ));
        }
        let arn = d.arn().unwrap_or(&dest.secret_name).to_owned();
        report.secret_arn = Some(arn.clone());
        let replicas: Vec<String> = d
            .replication_status()
            .iter()
            .filter_map(|r| r.region().map(str::to_owned))
            .collect();
        if !replicas.is_empty() {
            self.write_call(
                dest,
                WriteGroup::Update,
                costs,
                "secretsmanager:RemoveRegionsFromReplication",
                sm.remove_regions_from_replication()
                    .secret_id(&arn)
                    .set_remove_replica_regions(Some(replicas))
                    .send(),
            )
            .await?;
        }
        // The tombstone's version becomes the secret's version floor before the secret goes:
        // a deleted secret keeps its tags through its recovery window (and a restore), so no
        // older bundle can bring the old content back while the name is held.
        self.write_call(
            dest,
            WriteGroup::Tags,
            costs,
            "secretsmanager:TagResource (tombstone)",
            sm.tag_resource()
                .secret_id(&arn)
                .tags(tag(TAG_VERSION, &opened.header.version.to_string()))
                .send(),
        )
        .await?;
        let req = sm.delete_secret().secret_id(&arn);
        let req = match recovery_days {
            Some(days) => req.recovery_window_in_days(i64::from(days)),
            None => req.force_delete_without_recovery(true),
        };
        self.write_call(
            dest,
            WriteGroup::Delete,
            costs,
            "secretsmanager:DeleteSecret",
            req.send(),
        )
        .await?;
        Ok(SyncOutcome::Deleted)
    }
}

fn managed_tags(dest: &DestinationConfig, version: u64, mac: &str) -> [Tag; 4] {
    [
        tag(TAG_MANAGED_BY, MANAGED_BY),
        tag(TAG_DESTINATION, &dest.id),
        tag(TAG_VERSION, &version.to_string()),
        tag(TAG_MAC, mac),
    ]
}

fn check_owner(
    dest: &DestinationConfig,
    tags: &[Tag],
    pending_deletion: bool,
) -> Result<(), Failure> {
    let owned = tag_value(tags, TAG_MANAGED_BY) == Some(MANAGED_BY)
        && tag_value(tags, TAG_DESTINATION) == Some(dest.id.as_str());
    if !owned {
        return Err(Failure::new(
            ErrorCode::SecretNameConflict,
            format!(
                "a secret named {:?} exists and is not managed by this destination; nitrosync never overwrites it.",
                dest.secret_name
            ),
        ));
    }
    if pending_deletion {
        return Err(Failure::new(
            ErrorCode::SecretNameConflict,
            format!(
                "the secret {:?} is scheduled for deletion; restore it or choose another name.",
                dest.secret_name
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
