//! The sync engine: a sealed bundle in, a [`SyncReport`] out.
//!
//! `Write` opens the bundle, renders the environment as deterministic JSON, and makes the
//! destination's secret equal to it:
//! 1. the JSON must fit AWS's 65,536 bytes, checked before any AWS call;
//! 2. credentials come from the [`session::SessionCache`] or one `AssumeRoleWithSAML` (a role
//!    that refused the assertion is not asked again for [`session::REFUSAL_TTL`]);
//! 3. `DescribeSecret` (paced in its own group, [`pacing::ReadGroup`]) decides: absent →
//!    `CreateSecret` with the ownership tags, if the bundle is within its creation window
//!    ([`creation`]: an hour after sealing) and `CreationWindowClosed` otherwise; present but not
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
//!
//! `TestConnection` is budgeted per destination ([`budget`]) before any AWS call.

pub mod budget;
mod creation;
pub mod errors;
pub mod locks;
pub mod mac;
pub mod pacing;
pub mod record;
pub mod session;

use mac::MacMasterKey;
use record::{Plan, Recorded, decide};
pub use record::{client_request_token, token_version};

use crate::https::AwsHttpClient;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use aws_sdk_secretsmanager::types::Tag;
use errors::{Failure, HasStatus, Service, classify};
use nitrosync_bundle::{EnclaveBundleKey, OpenedBundle, open, render_json};
use nitrosync_saml::SamlSigner;
use nitrosync_shared::ErrorCode;
use nitrosync_shared::bundle::{DeletePolicy, DestinationConfig, Operation, SealedBundle};
use nitrosync_shared::control::{SyncError, SyncMode, SyncOutcome, SyncReport, SyncTimings};
use pacing::{ReadGroup, ReadPacer, WriteGroup, WritePacer};
use session::{AwsSettings, Session, SessionCache};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::info;
use zeroize::Zeroizing;

pub use nitrosync_shared::bundle::MAX_SECRET_BYTES;

pub use nitrosync_shared::tags::{
    MANAGED_BY, TAG_DESTINATION, TAG_MAC, TAG_MANAGED_BY, TAG_VERSION,
};

/// Everything a sync needs; shared by all syncs.
#[derive(Debug)]
pub struct SyncEngine {
    aws: AwsSettings,
    /// Swapped whole by a rotation step; a sync keeps the keys it started with.
    keys: std::sync::RwLock<Arc<EngineKeys>>,
    mac_master: MacMasterKey,
    sessions: SessionCache,
    locks: locks::DestinationLocks,
    pacer: WritePacer,
    reads: ReadPacer,
    test_budget: budget::TestBudget,
}

/// The keys a sync signs and opens with; a rotation replaces them as one.
pub struct EngineKeys {
    /// Signs SAML assertions.
    pub signer: SamlSigner,
    /// Opens bundles; its public half is attested.
    pub bundle_key: EnclaveBundleKey,
    /// The bundle key before the last rotation and the trusted-clock time (Unix ms) after
    /// which it opens nothing.
    pub previous_bundle: Option<(EnclaveBundleKey, u64)>,
}

impl std::fmt::Debug for EngineKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineKeys")
            .field("saml_cert_sha256", &hex::encode(self.signer.cert_sha256()))
            .field(
                "previous_bundle_until_ms",
                &self.previous_bundle.as_ref().map(|(_, t)| t),
            )
            .finish_non_exhaustive()
    }
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

fn random_suffix() -> String {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).unwrap_or_else(|e| panic!("no entropy: {e}"));
    hex::encode(b)
}

impl SyncEngine {
    /// An engine with these keys. `mac_master` keys the `nitrosync:mac` tags, one derived key
    /// per destination ([`mac`]). The keys persist across restarts when the identity is sealed
    /// under KMS (`crate::identity`); a rotation replaces them ([`Self::set_keys`]).
    pub fn new(
        http: AwsHttpClient,
        keys: EngineKeys,
        mac_master: MacMasterKey,
        retry: aws_smithy_types::retry::RetryConfig,
        writes_per_second: u32,
        describes_per_second: u32,
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
            keys: std::sync::RwLock::new(Arc::new(keys)),
            mac_master,
            sessions: SessionCache::default(),
            locks: locks::DestinationLocks::default(),
            pacer: WritePacer::new(writes_per_second),
            reads: ReadPacer::new(describes_per_second),
            test_budget: budget::TestBudget::default(),
        }
    }

    /// The keys now.
    pub fn keys(&self) -> Arc<EngineKeys> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the keys (a rotation step). Syncs in flight finish with the keys they started
    /// with; cached STS sessions stay valid.
    pub fn set_keys(&self, keys: EngineKeys) {
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
    }

    /// The bundle key's public half.
    pub fn bundle_public_key(&self) -> [u8; 32] {
        self.keys().bundle_key.public()
    }

    /// Opens a bundle with the current bundle key, or with the previous one until its cut-off
    /// by the trusted clock.
    fn open_with(&self, keys: &EngineKeys, b: &SealedBundle) -> Result<OpenedBundle, String> {
        match open(b, &keys.bundle_key) {
            Ok(o) => Ok(o),
            Err(e) => {
                let now = nitrosync_shared::unix_ms(self.aws.http.clock().now());
                match &keys.previous_bundle {
                    Some((old, until)) if now <= *until => open(b, old).map_err(|_| e.to_string()),
                    Some((_, until)) => Err(format!(
                        "{e} (the previous bundle key was retired at {until} ms; the tenant must seal to the enclave's current key)"
                    )),
                    None => Err(e.to_string()),
                }
            }
        }
    }

    /// Sessions cached now.
    pub fn cached_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The `nitrosync:mac` tag of a content, keyed for this bundle's (tenant, destination).
    fn mac(&self, opened: &OpenedBundle, json: &[u8]) -> Result<String, Failure> {
        let key = self
            .mac_master
            .destination_key(&opened.header.tenant_key, &opened.header.destination.id)
            .map_err(|e| Failure::new(ErrorCode::InvalidBundle, e.to_string()))?;
        Ok(key.mac(json))
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
        let keys = self.keys();
        let decoded = nitrosync_shared::frame::decode_payload::<SealedBundle>(bundle);
        let result = match decoded
            .map_err(|e| e.to_string())
            .and_then(|b| self.open_with(&keys, &b))
        {
            Err(e) => Err(Failure::new(
                ErrorCode::InvalidBundle,
                format!("the bundle was rejected: {e}."),
            )),
            Ok(opened) => {
                report.destination = opened.header.destination.id.clone();
                report.version = opened.header.version;
                report.mode = opened.header.operation.into();
                let key = (opened.header.tenant_key, report.destination.clone());
                let _one_at_a_time = self.locks.lock(key.clone()).await;
                match self.check_live(&opened) {
                    Err(f) => Err(f),
                    Ok(()) => match opened.header.operation {
                        Operation::Write => self.write(&opened, &mut costs, &mut report).await,
                        Operation::TestConnection => match self.spend_test(&key) {
                            Err(f) => Err(f),
                            Ok(()) => self.test_connection(&opened, &mut costs).await,
                        },
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

    /// `DescribeSecret`, paced in its own group ([`ReadGroup::Describe`]) and timed; `None`
    /// when there is no secret of that name.
    async fn describe(
        &self,
        dest: &DestinationConfig,
        sm: &aws_sdk_secretsmanager::Client,
        costs: &mut Costs,
    ) -> Result<Option<DescribeSecretOutput>, Failure> {
        self.reads.acquire(dest, ReadGroup::Describe).await;
        match timed(
            costs,
            sm.describe_secret().secret_id(&dest.secret_name).send(),
        )
        .await
        {
            Ok(d) => Ok(Some(d)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(classify(
                Service::SecretsManager,
                "secretsmanager:DescribeSecret",
                &e,
            )),
        }
    }

    /// Spends one of the destination's connection tests ([`budget`]), or refuses the test.
    fn spend_test(&self, key: &locks::DestinationKey) -> Result<(), Failure> {
        self.test_budget
            .try_spend(key, tokio::time::Instant::now())
            .map_err(|wait| {
                Failure::new(
                    ErrorCode::LimitExceeded,
                    format!(
                        "destination {:?} has had {} connection tests in the last hour, the most the enclave runs; nothing was sent to AWS. The next test is allowed in {} s.",
                        key.1,
                        budget::TESTS_PER_HOUR,
                        wait.as_secs().max(1)
                    ),
                )
            })
    }

    async fn session(&self, opened: &OpenedBundle, costs: &mut Costs) -> Result<Session, Failure> {
        let t = Instant::now();
        let keys = self.keys();
        let (s, signed) = self
            .sessions
            .get(
                &self.aws,
                &keys.signer,
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
        let mac = self.mac(opened, &json)?;
        let token = client_request_token(&dest.id, version, &mac);
        // The SDK takes an owned String; it is dropped (not zeroized) inside the SDK.
        let value = Zeroizing::new(String::from_utf8_lossy(&json).into_owned());
        let session = self.session(opened, costs).await?;
        // STS has answered over TLS: the clock is corrected now, whatever the host said.
        self.check_live(opened)?;
        let sm = &session.client;

        let described = self.describe(dest, sm, costs).await?;
        let Some(d) = described else {
            // An absent secret holds no version floor (a tombstone or an expired recovery
            // window took it away): only a freshly sealed bundle may create it. The clock has
            // just been corrected by DescribeSecret's answer.
            creation::may_create(
                &opened.header,
                nitrosync_shared::unix_ms(self.aws.http.clock().now()),
            )?;
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
        let keys = self.keys();
        let probe = session::assume_role(
            &self.aws,
            &keys.signer,
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
        let Some(d) = self.describe(dest, sm, costs).await? else {
            return Ok(SyncOutcome::Deleted);
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
