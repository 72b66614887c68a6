//! Call pacing per (account, region, quota group), right before each write call and each
//! `DescribeSecret`.
//!
//! AWS throttles writes per account and region: CreateSecret, PutSecretValue (with UpdateSecret
//! and the replication calls), TagResource/UntagResource and DeleteSecret each have their own
//! 50 calls a second (DESIGN §8). The parent paces syncs, but the STS and DescribeSecret calls
//! before a write take variable time, so syncs started evenly can reach the write in a burst,
//! and a throttled call that outlasts the retries surfaces as `LimitExceeded`. Pacing the write
//! calls themselves holds them to the rate whatever happened before. It also bounds what a
//! hostile parent can spend of a customer's quota.
//!
//! `DescribeSecret` has a group of its own ([`ReadGroup`]) with its own rate. AWS's quota for it
//! is high (40,000 a second per account and region since March 2025), so this is not about
//! throttling: every sync starts with one, whether or not it writes, and a parent replaying old
//! bundles or retrying in a loop would otherwise spend the customer's quota (shared with the
//! customer's own applications) as fast as the enclave can sign requests (DESIGN §3: the parent
//! must not spend a customer's quota beyond what the tenant's signed operations need).

use super::locks::KeyedLocks;
use nitrosync_shared::bundle::DestinationConfig;
use nitrosync_shared::ratelimit::TokenBuckets;
use std::sync::Mutex;
use tokio::time::Instant;

/// Default write calls a second per (account, region, group), under AWS's 50.
pub const DEFAULT_WRITES_PER_SECOND: u32 = 40;

/// Default `DescribeSecret` calls a second per (account, region): the parent paces syncs at 40
/// a second per account and each sync describes once, so an honest parent never waits here.
pub const DEFAULT_DESCRIBES_PER_SECOND: u32 = 40;

/// AWS's rate-quota groups of the write calls a sync makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteGroup {
    /// CreateSecret.
    Create,
    /// PutSecretValue, UpdateSecret, RemoveRegionsFromReplication.
    Update,
    /// TagResource, UntagResource.
    Tags,
    /// DeleteSecret.
    Delete,
}

/// The read calls a sync makes, paced apart from the writes and at their own rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadGroup {
    /// DescribeSecret.
    Describe,
}

type Key<G> = (String, String, G);

/// Paces the write calls ([`WriteGroup`]).
pub type WritePacer = Pacer<WriteGroup>;

/// Paces the read calls ([`ReadGroup`]).
pub type ReadPacer = Pacer<ReadGroup>;

/// Token buckets per (account, region, group), with waiters served in arrival order.
#[derive(Debug)]
pub struct Pacer<G> {
    buckets: Mutex<TokenBuckets<Key<G>>>,
    /// Waiters for one key queue here, first come first served. Without it every waiter
    /// re-tried when a token appeared and the same ones could lose for tens of seconds (three
    /// of 10,000 syncs outlasted the parent's 30 s request timeout that way).
    queues: KeyedLocks<Key<G>>,
}

impl<G: Copy + Eq + std::hash::Hash> Pacer<G> {
    /// `per_second` calls a second per (account, region, group), bursts of as many.
    pub fn new(per_second: u32) -> Self {
        Self {
            buckets: Mutex::new(TokenBuckets::new(per_second, per_second)),
            queues: KeyedLocks::default(),
        }
    }

    /// Waits until a `group` call to the destination's account and region may go; true when it
    /// had to wait.
    pub async fn acquire(&self, dest: &DestinationConfig, group: G) -> bool {
        // The role ARN was validated when the bundle was opened. Were it not to parse, it would
        // get a bucket of its own (the whole ARN), never one shared with other unparsable ARNs.
        let account = dest.account().unwrap_or_else(|| dest.role_arn.clone());
        let key = (account, dest.region.clone(), group);
        let _turn = self.queues.lock(key.clone()).await;
        let mut waited = false;
        loop {
            let wait = self
                .buckets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .try_take(&key, Instant::now().into_std());
            match wait {
                Ok(()) => return waited,
                Err(wait) => {
                    waited = true;
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nitrosync_shared::bundle::DeletePolicy;
    use std::future::Future;
    use std::pin::{Pin, pin};
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    fn dest(account: &str, region: &str) -> DestinationConfig {
        DestinationConfig {
            id: "d".into(),
            region: region.into(),
            secret_name: "s".into(),
            role_arn: format!("arn:aws:iam::{account}:role/r"),
            saml_provider_arn: format!("arn:aws:iam::{account}:saml-provider/p"),
            kms_key_id: None,
            tags: Default::default(),
            delete_policy: DeletePolicy::Retain,
        }
    }

    // The clock is paused: it moves only when every task waits on it, straight to the next
    // deadline, so the times below are exact.
    #[tokio::test(start_paused = true)]
    async fn paces_per_account_region_and_group() {
        let p = WritePacer::new(2);
        let a = dest("111111111111", "us-east-1");
        let t = Instant::now();
        assert!(!p.acquire(&a, WriteGroup::Create).await);
        assert!(!p.acquire(&a, WriteGroup::Create).await);
        assert_eq!(t.elapsed(), Duration::ZERO, "the burst does not wait");
        // The burst is spent: the third waits for a token, half a second at 2 a second.
        assert!(p.acquire(&a, WriteGroup::Create).await);
        assert_eq!(t.elapsed(), Duration::from_millis(500));
        // Other groups, accounts and regions have their own buckets.
        let t = Instant::now();
        assert!(!p.acquire(&a, WriteGroup::Tags).await);
        let b = dest("222222222222", "us-east-1");
        assert!(!p.acquire(&b, WriteGroup::Create).await);
        let c = dest("111111111111", "eu-west-1");
        assert!(!p.acquire(&c, WriteGroup::Create).await);
        assert_eq!(t.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn describes_have_their_own_buckets_and_rate() {
        let writes = WritePacer::new(DEFAULT_WRITES_PER_SECOND);
        let reads = ReadPacer::new(2);
        let a = dest("111111111111", "us-east-1");
        let t = Instant::now();
        for _ in 0..DEFAULT_WRITES_PER_SECOND {
            assert!(!writes.acquire(&a, WriteGroup::Update).await);
        }
        // The writes' burst is spent; the describes' is not.
        assert!(!reads.acquire(&a, ReadGroup::Describe).await);
        assert!(!reads.acquire(&a, ReadGroup::Describe).await);
        assert_eq!(t.elapsed(), Duration::ZERO);
        // At 2 a second, the third describe waits half a second.
        assert!(reads.acquire(&a, ReadGroup::Describe).await);
        assert_eq!(t.elapsed(), Duration::from_millis(500));
        // Another account has its own describe bucket.
        let b = dest("222222222222", "us-east-1");
        assert!(!reads.acquire(&b, ReadGroup::Describe).await);
        assert_eq!(t.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn holds_the_rate_after_the_burst() {
        let p = WritePacer::new(DEFAULT_WRITES_PER_SECOND);
        let a = dest("111111111111", "us-east-1");
        let t = Instant::now();
        for _ in 0..DEFAULT_WRITES_PER_SECOND {
            assert!(!p.acquire(&a, WriteGroup::Update).await);
        }
        for _ in 0..DEFAULT_WRITES_PER_SECOND {
            assert!(p.acquire(&a, WriteGroup::Update).await);
        }
        // A second's worth of calls after the burst took at least a second.
        assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_are_served_in_arrival_order() {
        let p = Arc::new(WritePacer::new(20));
        let a = dest("111111111111", "us-east-1");
        for _ in 0..20 {
            assert!(!p.acquire(&a, WriteGroup::Update).await);
        }
        // The burst is spent; ten waiters arrive in order and must get tokens in that order.
        let t = Instant::now();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        let mut cx = Context::from_waker(Waker::noop());
        for i in 0..10 {
            let (p, a, order) = (p.clone(), a.clone(), order.clone());
            let mut waiter: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
                assert!(p.acquire(&a, WriteGroup::Update).await);
                order.lock().unwrap().push(i);
            });
            // Arrival: one poll puts the waiter in the queue (or, for the first, to sleep until
            // a token is due) before the next one exists. The task re-registers its waker
            // when it is first polled and keeps its place.
            assert_eq!(waiter.as_mut().poll(&mut cx), Poll::Pending);
            tasks.push(tokio::spawn(waiter));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
        // Ten tokens at 20 a second.
        assert!(
            t.elapsed() >= Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_newcomer_does_not_take_the_token_a_waiter_is_due() {
        let p = WritePacer::new(1);
        let a = dest("111111111111", "us-east-1");
        assert!(!p.acquire(&a, WriteGroup::Update).await);
        let mut cx = Context::from_waker(Waker::noop());
        let mut first = pin!(p.acquire(&a, WriteGroup::Update));
        assert_eq!(first.as_mut().poll(&mut cx), Poll::Pending);
        // The next token is due, and the first waiter has not run since.
        tokio::time::advance(Duration::from_secs(1)).await;
        let mut newcomer = pin!(p.acquire(&a, WriteGroup::Update));
        assert_eq!(
            newcomer.as_mut().poll(&mut cx),
            Poll::Pending,
            "a newcomer queues behind the waiter"
        );
        assert_eq!(first.as_mut().poll(&mut cx), Poll::Ready(true));
        let t = Instant::now();
        assert!(newcomer.await);
        assert_eq!(t.elapsed(), Duration::from_secs(1));
    }
}
