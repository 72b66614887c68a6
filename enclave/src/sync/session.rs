//! STS `AssumeRoleWithSAML` and the credential cache.
//!
//! Credentials are cached per (role ARN, SAML subject) until five minutes before they expire,
//! so a sync of a destination whose role was assumed recently signs nothing and calls STS not at
//! all (DESIGN §7 and §11: one RSA signature per role per credential lifetime). Concurrent syncs
//! for the same key wait for one refresh instead of each signing.
//!
//! A refusal is cached too, for [`REFUSAL_TTL`]: a role whose trust policy refused the assertion
//! (`AssumeRoleError`) answers every sync of that role and subject from the cache meanwhile,
//! without another RSA signature and STS call. A parent resending such bundles in a loop
//! costs the enclave and the customer's STS quota one call per key per TTL.

use super::errors::{Failure, Service, classify};
use crate::clock::TrustedClock;
use crate::https::AwsHttpClient;
use aws_credential_types::Credentials;
use aws_sdk_sts::config::{BehaviorVersion, Region};
use nitrosync_saml::{AssertionRequest, SamlSigner};
use nitrosync_shared::ErrorCode;
use nitrosync_shared::bundle::DestinationConfig;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;

/// Credentials are refreshed this long before they expire.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Session duration asked of STS.
pub const SESSION_SECONDS: i32 = 3600;

/// How long a refused `AssumeRoleWithSAML` is remembered. Long enough that a loop of syncs
/// costs one STS call per key every half minute; short enough that a customer who fixes the
/// trust policy sees the next sync succeed without waiting long (IAM changes take seconds to
/// propagate anyway).
pub const REFUSAL_TTL: Duration = Duration::from_secs(30);

/// A refused assertion: the failure to answer with, for the provider it named, until when.
#[derive(Debug, Clone)]
struct Refusal {
    failure: Failure,
    provider_arn: String,
    until: tokio::time::Instant,
}

/// A Secrets Manager client holding one role's temporary credentials.
#[derive(Debug, Clone)]
pub struct Session {
    /// The client.
    pub client: aws_sdk_secretsmanager::Client,
    /// When the credentials expire.
    pub expires: SystemTime,
}

/// What the cache keeps per key: the credentials (about 1 KiB), and a client built from them
/// while the key is among the [`CLIENTS_KEPT`] most recently given one. A client costs about
/// 15 KiB, so keeping one for each of 10,000 destinations took 150 MiB; building one for every
/// sync costs about 0.4 ms of CPU.
#[derive(Debug, Clone)]
struct Cached {
    creds: Credentials,
    expires: SystemTime,
    client: Option<aws_sdk_secretsmanager::Client>,
}

type Slot = Arc<Mutex<Option<Cached>>>;
type Key = (String, String, String);

/// Clients kept at most (the credentials of every key are kept regardless).
pub const CLIENTS_KEPT: usize = 256;

/// Cached credentials by (region, role ARN, subject). Expired entries are swept whenever the
/// map has doubled since the last sweep, so it holds about the destinations synced within one
/// credential lifetime.
#[derive(Debug, Default)]
pub struct SessionCache {
    slots: std::sync::Mutex<Slots>,
    /// Refused keys, until [`REFUSAL_TTL`] after the refusal. Swept of expired entries whenever
    /// it has doubled since the last sweep.
    refusals: std::sync::Mutex<Refusals>,
    /// Slots holding a client, oldest first.
    clients: std::sync::Mutex<VecDeque<Slot>>,
}

#[derive(Debug, Default)]
struct Slots {
    map: HashMap<Key, Slot>,
    sweep_at: usize,
}

#[derive(Debug, Default)]
struct Refusals {
    map: HashMap<Key, Refusal>,
    sweep_at: usize,
}

/// The map is never swept below this size.
const SWEEP_MIN: usize = 1024;

/// What building a Secrets Manager client needs.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// The HTTPS client over the relay.
    pub http: AwsHttpClient,
    /// Retries (full-jitter exponential backoff, attempts, budget).
    pub retry: aws_smithy_types::retry::RetryConfig,
    /// Timeouts per attempt and per operation.
    pub timeouts: aws_smithy_types::timeout::TimeoutConfig,
}

/// The recipient URL AWS expects for a region.
pub fn recipient(_region: &str) -> String {
    // The global endpoint is accepted for every commercial region; regional sign-in endpoints
    // are an option for later (DESIGN §7).
    "https://signin.aws.amazon.com/saml".to_owned()
}

fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    // getrandom failing means the enclave has no entropy: nothing sensible can continue.
    getrandom::fill(&mut bytes).unwrap_or_else(|e| panic!("no entropy: {e}"));
    format!("{prefix}{}", hex::encode(bytes))
}

/// A role session name AWS accepts: 2–64 of `[A-Za-z0-9_+=,.@-]`.
pub fn session_name(destination_id: &str) -> String {
    let cleaned: String = destination_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut name = format!("nitrosync-{cleaned}");
    name.truncate(64);
    name
}

/// Signs an assertion for `subject` and exchanges it for credentials.
pub async fn assume_role(
    aws: &AwsSettings,
    signer: &SamlSigner,
    dest: &DestinationConfig,
    subject: &str,
    now: SystemTime,
) -> Result<Credentials, Failure> {
    let signed = signer
        .sign_response(&AssertionRequest {
            subject: subject.to_owned(),
            role_arn: dest.role_arn.clone(),
            provider_arn: dest.saml_provider_arn.clone(),
            session_name: session_name(&dest.id),
            session_duration: None,
            recipient: recipient(&dest.region),
            now,
            response_id: random_id("_r"),
            assertion_id: random_id("_a"),
        })
        .map_err(|e| {
            Failure::new(
                ErrorCode::InvalidConfig,
                format!("cannot sign the SAML assertion: {e}."),
            )
        })?;
    let conf = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(dest.region.clone()))
        .http_client(aws.http.clone())
        .retry_config(aws.retry.clone())
        .timeout_config(aws.timeouts.clone())
        .stalled_stream_protection(aws_sdk_sts::config::StalledStreamProtectionConfig::disabled())
        .time_source(aws.http.clock().clone())
        .build();
    let out = aws_sdk_sts::Client::from_conf(conf)
        .assume_role_with_saml()
        .role_arn(&dest.role_arn)
        .principal_arn(&dest.saml_provider_arn)
        .saml_assertion(signed.base64)
        .duration_seconds(SESSION_SECONDS)
        .send()
        .await
        .map_err(|e| classify(Service::Sts, "sts:AssumeRoleWithSAML", &e))?;
    let c = out.credentials().ok_or_else(|| {
        Failure::new(
            ErrorCode::AssumeRoleError,
            "STS answered without credentials.",
        )
    })?;
    let expires = SystemTime::try_from(*c.expiration()).unwrap_or(now);
    Ok(Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        Some(expires),
        "nitrosync-assume-role-with-saml",
    ))
}

/// A Secrets Manager client for these credentials.
pub fn secrets_client(
    aws: &AwsSettings,
    region: &str,
    creds: Credentials,
) -> aws_sdk_secretsmanager::Client {
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .region(aws_sdk_secretsmanager::config::Region::new(
            region.to_owned(),
        ))
        .http_client(aws.http.clone())
        .credentials_provider(creds)
        .retry_config(aws.retry.clone())
        .timeout_config(aws.timeouts.clone())
        // Bodies here are a few KiB; the per-attempt timeout bounds a stalled call, and the
        // throughput monitor's periodic wake-ups cost CPU for nothing.
        .stalled_stream_protection(
            aws_sdk_secretsmanager::config::StalledStreamProtectionConfig::disabled(),
        )
        .time_source(aws.http.clock().clone())
        .build();
    aws_sdk_secretsmanager::Client::from_conf(conf)
}

impl SessionCache {
    /// A session for the destination's role and `subject`: cached, or a fresh `AssumeRoleWithSAML`.
    /// The boolean is true when an assertion was signed.
    ///
    /// If STS refuses the assertion and its answer has just corrected the enclave's clock (the
    /// host clock was off by more than the assertion's window), the assertion is signed once
    /// more with the corrected time.
    pub async fn get(
        &self,
        aws: &AwsSettings,
        signer: &SamlSigner,
        dest: &DestinationConfig,
        subject: &str,
    ) -> Result<(Session, bool), Failure> {
        self.get_with(
            aws.http.clock(),
            dest,
            subject,
            |creds| secrets_client(aws, &dest.region, creds),
            |now| assume_role(aws, signer, dest, subject, now),
        )
        .await
    }

    /// [`Self::get`] with the client builder and the STS exchange passed in (tests pass fakes).
    async fn get_with<C, A, F>(
        &self,
        clock: &TrustedClock,
        dest: &DestinationConfig,
        subject: &str,
        client_for: C,
        assume: A,
    ) -> Result<(Session, bool), Failure>
    where
        C: Fn(Credentials) -> aws_sdk_secretsmanager::Client,
        A: Fn(SystemTime) -> F,
        F: Future<Output = Result<Credentials, Failure>>,
    {
        let key = (
            dest.region.clone(),
            dest.role_arn.clone(),
            subject.to_owned(),
        );
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let slot = slots.map.entry(key.clone()).or_default().clone();
            if slots.map.len() >= slots.sweep_at.max(SWEEP_MIN) {
                slots.sweep(clock.now());
            }
            slot
        };
        let mut guard = slot.lock().await;
        let now = clock.now();
        let had_client = guard.as_ref().is_some_and(|c| c.client.is_some());
        if let Some(c) = guard.as_mut()
            && c.expires
                .duration_since(now)
                .is_ok_and(|left| left > REFRESH_MARGIN)
        {
            let client = c
                .client
                .get_or_insert_with(|| client_for(c.creds.clone()))
                .clone();
            let expires = c.expires;
            if !had_client {
                self.keep_client(&slot);
            }
            return Ok((Session { client, expires }, false));
        }
        // Checked under the slot's lock: syncs that waited for the one that was refused are
        // answered from here.
        if let Some(refused) = self.refused(&key, &dest.saml_provider_arn) {
            return Err(refused);
        }
        let offset = clock.offset_ms();
        let assumed = match assume(now).await {
            Err(f) if f.code == ErrorCode::AssumeRoleError && clock.offset_ms() != offset => {
                assume(clock.now()).await
            }
            other => other,
        };
        let creds = match assumed {
            Ok(creds) => creds,
            Err(f) => {
                if f.code == ErrorCode::AssumeRoleError {
                    self.remember_refusal(key, &dest.saml_provider_arn, &f);
                }
                return Err(f);
            }
        };
        let expires = creds.expiry().unwrap_or(now);
        let client = client_for(creds.clone());
        *guard = Some(Cached {
            creds,
            expires,
            client: Some(client.clone()),
        });
        if !had_client {
            self.keep_client(&slot);
        }
        Ok((Session { client, expires }, true))
    }

    /// The cached refusal of `key` for this provider, while it lasts, as the failure to report.
    fn refused(&self, key: &Key, provider_arn: &str) -> Option<Failure> {
        let refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        let r = refusals.map.get(key)?;
        let left = r
            .until
            .checked_duration_since(tokio::time::Instant::now())
            .filter(|left| !left.is_zero())?;
        if r.provider_arn != provider_arn {
            return None;
        }
        Some(Failure::new(
            r.failure.code,
            format!(
                "{} (STS refused this role and subject moments ago; not asked again for {} s.)",
                r.failure.message,
                left.as_secs().max(1)
            ),
        ))
    }

    fn remember_refusal(&self, key: Key, provider_arn: &str, failure: &Failure) {
        let now = tokio::time::Instant::now();
        let mut refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        if refusals.map.len() >= refusals.sweep_at.max(SWEEP_MIN) {
            refusals.map.retain(|_, r| r.until > now);
            refusals.sweep_at = refusals.map.len().saturating_mul(2);
        }
        refusals.map.insert(
            key,
            Refusal {
                failure: failure.clone(),
                provider_arn: provider_arn.to_owned(),
                until: now + REFUSAL_TTL,
            },
        );
    }

    /// Refusals remembered now (expired ones included until the next sweep).
    pub fn refusals(&self) -> usize {
        self.refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }

    /// Notes that `slot` (whose lock the caller holds) now has a client, and drops the clients
    /// of the oldest others beyond [`CLIENTS_KEPT`]. Never waits: a slot in use is skipped.
    fn keep_client(&self, slot: &Slot) {
        let mut queue = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        queue.push_back(slot.clone());
        while queue.len() > CLIENTS_KEPT {
            let Some(oldest) = queue.pop_front() else {
                break;
            };
            let busy = match oldest.try_lock() {
                Ok(mut cached) => {
                    if let Some(c) = cached.as_mut() {
                        c.client = None;
                    }
                    false
                }
                Err(_) => true,
            };
            if busy {
                queue.push_back(oldest);
                break;
            }
        }
    }

    /// Clients kept now.
    pub fn clients_kept(&self) -> usize {
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Forgets a cached session (after AWS said its credentials expired).
    pub fn forget(&self, dest: &DestinationConfig, subject: &str) {
        let key = (
            dest.region.clone(),
            dest.role_arn.clone(),
            subject.to_owned(),
        );
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .remove(&key);
    }

    /// Sessions cached now.
    pub fn len(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Slots {
    /// Drops entries whose credentials have expired (or were never obtained), except those a
    /// sync holds right now.
    fn sweep(&mut self, now: SystemTime) {
        self.map.retain(|_, slot| match slot.try_lock() {
            Ok(cached) => cached.as_ref().is_some_and(|c| c.expires > now),
            Err(_) => true,
        });
        self.sweep_at = self.map.len().saturating_mul(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(expires: SystemTime) -> Slot {
        Arc::new(Mutex::new(Some(Cached {
            creds: Credentials::new("AKID", "secret", None, Some(expires), "test"),
            expires,
            client: None,
        })))
    }

    #[tokio::test]
    async fn only_the_most_recent_clients_are_kept() {
        let client = aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::Config::builder()
                .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
                .build(),
        );
        let cache = SessionCache::default();
        let later = SystemTime::now() + Duration::from_secs(3600);
        let slots: Vec<Slot> = (0..CLIENTS_KEPT + 10)
            .map(|_| {
                let slot = cached(later);
                if let Ok(mut g) = slot.try_lock()
                    && let Some(c) = g.as_mut()
                {
                    c.client = Some(client.clone());
                }
                slot
            })
            .collect();
        // The 3rd is in use when the others arrive: it is skipped, not waited for.
        let held = slots[2].clone();
        let guard = held.lock().await;
        for slot in &slots {
            cache.keep_client(slot);
        }
        drop(guard);
        let with_client = |i: usize| {
            slots[i]
                .try_lock()
                .unwrap()
                .as_ref()
                .unwrap()
                .client
                .is_some()
        };
        assert!(
            !with_client(0) && !with_client(1),
            "the oldest lost their clients"
        );
        assert!(with_client(2), "the one in use kept its client");
        assert!(with_client(CLIENTS_KEPT + 9), "the newest kept theirs");
        // Eviction stopped at the slot in use; the queue is bounded by the slots in use.
        assert!(cache.clients_kept() <= CLIENTS_KEPT + 10);
        // Credentials are kept whatever happens to the client.
        assert!(slots[0].try_lock().unwrap().is_some());
    }

    #[tokio::test]
    async fn sweeping_drops_expired_and_empty_entries_but_not_held_ones() {
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        let key = |i: usize| (String::from("us-east-1"), format!("role{i}"), String::new());
        let mut slots = Slots::default();
        slots.map.insert(key(0), cached(now + hour));
        slots.map.insert(key(1), cached(now - hour));
        slots.map.insert(key(2), Slot::default());
        let held = Slot::default();
        let _guard = held.lock().await;
        slots.map.insert(key(3), held.clone());
        slots.sweep(now);
        let mut left: Vec<_> = slots.map.keys().map(|k| k.1.clone()).collect();
        left.sort();
        assert_eq!(left, ["role0", "role3"]);
        assert_eq!(slots.sweep_at, 4);
    }

    fn destination(provider: &str) -> DestinationConfig {
        DestinationConfig {
            id: "d".into(),
            region: "us-east-1".into(),
            secret_name: "s".into(),
            role_arn: "arn:aws:iam::111111111111:role/r".into(),
            saml_provider_arn: format!("arn:aws:iam::111111111111:saml-provider/{provider}"),
            kms_key_id: None,
            tags: Default::default(),
            delete_policy: nitrosync_shared::bundle::DeletePolicy::Retain,
        }
    }

    fn client(_: Credentials) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::Config::builder()
                .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
                .build(),
        )
    }

    fn creds() -> Credentials {
        let expires = SystemTime::now() + Duration::from_secs(3600);
        Credentials::new("AKID", "secret", None, Some(expires), "test")
    }

    fn refusal() -> Failure {
        Failure::new(
            ErrorCode::AssumeRoleError,
            "sts:AssumeRoleWithSAML failed: AccessDenied: Not authorized to perform sts:AssumeRoleWithSAML.",
        )
    }

    /// An STS stand-in that counts its calls and answers from `answers`, in order.
    struct Sts {
        calls: std::sync::atomic::AtomicUsize,
        answers: std::sync::Mutex<VecDeque<Result<Credentials, Failure>>>,
    }

    impl Sts {
        fn new(answers: impl IntoIterator<Item = Result<Credentials, Failure>>) -> Self {
            Self {
                calls: Default::default(),
                answers: std::sync::Mutex::new(answers.into_iter().collect()),
            }
        }

        async fn assume(&self, _now: SystemTime) -> Result<Credentials, Failure> {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // A real call waits for the network: let the other syncs run meanwhile.
            tokio::task::yield_now().await;
            let next = self.answers.lock().unwrap().pop_front();
            next.expect("an STS call the test did not expect")
        }

        fn calls(&self) -> usize {
            self.calls.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_is_answered_from_the_cache_until_it_expires() {
        let cache = SessionCache::default();
        let clock = TrustedClock::new();
        let sts = Sts::new([Err(refusal()), Err(refusal()), Err(refusal()), Ok(creds())]);
        let get = |provider: &'static str, subject: &'static str| {
            let (cache, clock, sts) = (&cache, &clock, &sts);
            async move {
                cache
                    .get_with(clock, &destination(provider), subject, client, |now| {
                        sts.assume(now)
                    })
                    .await
            }
        };
        let first = get("p", "ns1-a").await.unwrap_err();
        assert_eq!(first, refusal());
        assert_eq!(sts.calls(), 1);
        // The same role, subject and provider: answered from the cache, no signature, no call.
        tokio::time::advance(REFUSAL_TTL - Duration::from_secs(1)).await;
        let cached = get("p", "ns1-a").await.unwrap_err();
        assert_eq!(cached.code, ErrorCode::AssumeRoleError);
        assert!(cached.message.starts_with(&refusal().message), "{cached}");
        assert!(
            cached.message.contains("not asked again for 1 s"),
            "{cached}"
        );
        assert_eq!(sts.calls(), 1);
        // Another subject, or a bundle naming another provider, is asked.
        get("p", "ns1-b").await.unwrap_err();
        assert_eq!(sts.calls(), 2);
        get("q", "ns1-a").await.unwrap_err();
        assert_eq!(sts.calls(), 3);
        // Once the refusal has expired, STS is asked again (the customer fixed the policy).
        tokio::time::advance(Duration::from_secs(1)).await;
        let (_, signed) = get("p", "ns1-a").await.unwrap();
        assert!(signed);
        assert_eq!(sts.calls(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn syncs_waiting_for_a_refused_key_do_not_each_ask() {
        let cache = SessionCache::default();
        let clock = TrustedClock::new();
        let sts = Sts::new([Err(refusal())]);
        let d = destination("p");
        let get = || cache.get_with(&clock, &d, "ns1-a", client, |now| sts.assume(now));
        let (a, b, c) = tokio::join!(get(), get(), get());
        assert!(a.is_err() && b.is_err() && c.is_err());
        assert_eq!(sts.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn only_refusals_are_cached() {
        let cache = SessionCache::default();
        let clock = TrustedClock::new();
        let unreachable = Failure::new(
            ErrorCode::InternalServiceError,
            "sts:AssumeRoleWithSAML failed: dispatch failure",
        );
        let throttled = Failure::new(ErrorCode::LimitExceeded, "Throttling");
        let sts = Sts::new([Err(unreachable), Err(throttled), Ok(creds())]);
        let d = destination("p");
        let get = || cache.get_with(&clock, &d, "ns1-a", client, |now| sts.assume(now));
        assert_eq!(
            get().await.unwrap_err().code,
            ErrorCode::InternalServiceError
        );
        assert_eq!(get().await.unwrap_err().code, ErrorCode::LimitExceeded);
        assert!(get().await.unwrap().1);
        assert_eq!(sts.calls(), 3);
        assert_eq!(cache.refusals(), 0);
    }

    /// STS whose first answer carries a `Date` ten minutes ahead of the host clock, as when
    /// the host's clock is off: the enclave's clock is corrected by it.
    fn skewing<'a>(
        clock: &'a TrustedClock,
        sts: &'a Sts,
    ) -> impl Fn(SystemTime) -> std::pin::Pin<Box<dyn Future<Output = Result<Credentials, Failure>> + 'a>>
    {
        move |now| {
            Box::pin(async move {
                let answer = sts.assume(now).await;
                clock.observe_header(&httpdate::fmt_http_date(
                    SystemTime::now() + Duration::from_secs(600),
                ));
                answer
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_that_corrected_the_clock_is_retried_once_before_it_is_cached() {
        let d = destination("p");
        // Refused with a skewed clock, accepted once the assertion is signed again with the
        // corrected time.
        let (clock, cache) = (TrustedClock::new(), SessionCache::default());
        let sts = Sts::new([Err(refusal()), Ok(creds())]);
        let (_, signed) = cache
            .get_with(&clock, &d, "ns1-a", client, skewing(&clock, &sts))
            .await
            .unwrap();
        assert!(signed);
        assert_eq!(sts.calls(), 2, "one retry after the correction");
        assert_eq!(cache.refusals(), 0);

        // Refused again after the correction: that refusal is cached, and no third call made.
        let (clock, cache) = (TrustedClock::new(), SessionCache::default());
        let sts = Sts::new([Err(refusal()), Err(refusal())]);
        let assume = skewing(&clock, &sts);
        let get = || cache.get_with(&clock, &d, "ns1-a", client, &assume);
        assert_eq!(get().await.unwrap_err(), refusal());
        assert_eq!(sts.calls(), 2);
        assert_eq!(get().await.unwrap_err().code, ErrorCode::AssumeRoleError);
        assert_eq!(sts.calls(), 2, "the refusal after the retry is cached");
    }

    #[test]
    fn session_names_are_valid() {
        assert_eq!(session_name("prod-api"), "nitrosync-prod-api");
        let long = session_name(&"x".repeat(100));
        assert_eq!(long.len(), 64);
        assert!(
            session_name("a/b c")
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
        );
    }
}
