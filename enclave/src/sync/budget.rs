//! The connection-test budget: at most [`TESTS_PER_HOUR`] connection tests per destination in
//! any hour, counted here per (tenant key, destination id).
//!
//! A test creates and deletes a placeholder secret and signs two assertions (DESIGN §8). The
//! tenant signs each test bundle, but the parent holds every bundle it was ever given and can
//! send one as often as it likes while it is live: without a budget, one signed test would be a
//! licence to spend the customer's CreateSecret, DeleteSecret and STS quota, and the enclave's
//! RSA signatures, without end. The budget is checked before any AWS call; a test over it is
//! refused with `LimitExceeded` and costs nothing.
//!
//! Sans-io: the caller passes the time (`tokio::time::Instant`, so tests pause it).

use super::locks::DestinationKey;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Connection tests allowed per destination in any [`TEST_WINDOW`]. A person testing a new
/// role and fixing its policy needs a few tries; six an hour is one every ten minutes on
/// average, with room for a burst while setting up.
pub const TESTS_PER_HOUR: usize = 6;

/// The sliding window the budget counts over.
pub const TEST_WINDOW: Duration = Duration::from_secs(3600);

/// The map is never swept below this many destinations.
const SWEEP_MIN: usize = 1024;

/// When each destination's recent tests started, oldest first.
#[derive(Debug, Default)]
pub struct TestBudget {
    inner: Mutex<Spent>,
}

#[derive(Debug, Default)]
struct Spent {
    tests: HashMap<DestinationKey, VecDeque<Instant>>,
    sweep_at: usize,
}

impl TestBudget {
    /// Spends one test of `key` at `now`, or says how long until one is allowed again (nothing
    /// is spent then).
    pub fn try_spend(&self, key: &DestinationKey, now: Instant) -> Result<(), Duration> {
        let mut spent = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if spent.tests.len() >= spent.sweep_at.max(SWEEP_MIN) && !spent.tests.contains_key(key) {
            spent.sweep(now);
        }
        let times = spent.tests.entry(key.clone()).or_default();
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= TEST_WINDOW)
        {
            times.pop_front();
        }
        if times.len() >= TESTS_PER_HOUR {
            let oldest = times.front().copied().unwrap_or(now);
            return Err(TEST_WINDOW.saturating_sub(now.saturating_duration_since(oldest)));
        }
        times.push_back(now);
        Ok(())
    }

    /// Destinations tracked now.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .tests
            .len()
    }

    /// True when no destination is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Spent {
    /// Drops destinations with no test in the window: they are the same as new ones.
    fn sweep(&mut self, now: Instant) {
        self.tests.retain(|_, times| {
            times
                .back()
                .is_some_and(|t| now.saturating_duration_since(*t) < TEST_WINDOW)
        });
        self.sweep_at = self.tests.len().saturating_mul(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tenant: u8, id: &str) -> DestinationKey {
        ([tenant; 32], id.into())
    }

    #[tokio::test(start_paused = true)]
    async fn six_an_hour_per_destination_over_a_sliding_window() {
        let budget = TestBudget::default();
        let a = key(1, "a");
        let start = Instant::now();
        for _ in 0..TESTS_PER_HOUR {
            assert_eq!(budget.try_spend(&a, Instant::now()), Ok(()));
            tokio::time::advance(Duration::from_secs(60)).await;
        }
        // Six tests in the first six minutes: the seventh waits until the first leaves the
        // window, an hour after it started.
        let refused = budget.try_spend(&a, Instant::now()).unwrap_err();
        assert_eq!(refused, TEST_WINDOW - Duration::from_secs(6 * 60));
        // A refusal spends nothing: just before the hour it is still refused, at the hour one
        // test is allowed, and then the next waits for the second to leave.
        tokio::time::advance(refused - Duration::from_secs(1)).await;
        assert_eq!(
            budget.try_spend(&a, Instant::now()),
            Err(Duration::from_secs(1))
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(start.elapsed(), TEST_WINDOW);
        assert_eq!(budget.try_spend(&a, Instant::now()), Ok(()));
        assert_eq!(
            budget.try_spend(&a, Instant::now()),
            Err(Duration::from_secs(60))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn destinations_and_tenants_have_their_own_budgets() {
        let budget = TestBudget::default();
        let now = Instant::now();
        for _ in 0..TESTS_PER_HOUR {
            budget.try_spend(&key(1, "a"), now).unwrap();
        }
        assert!(budget.try_spend(&key(1, "a"), now).is_err());
        // The same id under another tenant, and another id of the same tenant.
        assert_eq!(budget.try_spend(&key(2, "a"), now), Ok(()));
        assert_eq!(budget.try_spend(&key(1, "b"), now), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn destinations_idle_for_an_hour_are_swept() {
        let budget = TestBudget::default();
        for i in 0..SWEEP_MIN {
            budget
                .try_spend(&key(1, &i.to_string()), Instant::now())
                .unwrap();
        }
        assert_eq!(budget.len(), SWEEP_MIN);
        tokio::time::advance(TEST_WINDOW).await;
        budget.try_spend(&key(2, "new"), Instant::now()).unwrap();
        assert_eq!(budget.len(), 1, "only the new destination is left");
    }
}
