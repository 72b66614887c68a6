//! One holder at a time per key: one sync per destination, and (in the write pacer) one waiter
//! per (account, region, group) in arrival order.
//!
//! The parent runs at most one sync per destination, but a parent that dies mid-sync leaves that
//! sync running here while its successor re-sends the same destination. Two syncs of one
//! destination would both `DescribeSecret` before either writes, and both would write. Holding
//! this lock across describe-and-write makes the second one see the first one's result.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// A destination: the tenant's Ed25519 key and the destination id (ids are unique per tenant).
pub type DestinationKey = ([u8; 32], String);

/// One sync at a time per destination.
pub type DestinationLocks = KeyedLocks<DestinationKey>;

/// A lock per key, created on first use and dropped when nobody holds or waits for it. Waiters
/// get it in the order they asked (Tokio's mutex is fair).
#[derive(Debug)]
pub struct KeyedLocks<K> {
    locks: Mutex<HashMap<K, Arc<AsyncMutex<()>>>>,
}

impl<K> Default for KeyedLocks<K> {
    fn default() -> Self {
        Self {
            locks: Mutex::new(HashMap::new()),
        }
    }
}

/// Held while a key is locked; releases on drop.
#[derive(Debug)]
pub struct KeyedGuard<'a, K: Eq + Hash + Clone> {
    owner: &'a KeyedLocks<K>,
    key: K,
    guard: Option<OwnedMutexGuard<()>>,
}

impl<K: Eq + Hash + Clone> KeyedLocks<K> {
    /// Waits until nobody else holds `key`, then holds it.
    pub async fn lock(&self, key: K) -> KeyedGuard<'_, K> {
        let lock = self.map().entry(key.clone()).or_default().clone();
        let guard = lock.lock_owned().await;
        KeyedGuard {
            owner: self,
            key,
            guard: Some(guard),
        }
    }

    /// Destinations locked or waited for now.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// True when no destination is locked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<K, Arc<AsyncMutex<()>>>> {
        self.locks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<K: Eq + Hash + Clone> Drop for KeyedGuard<'_, K> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.owner.map();
        // Only the map holds it: nobody runs or waits, so the entry can go.
        if map
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn key(id: &str) -> DestinationKey {
        ([1; 32], id.into())
    }

    #[tokio::test]
    async fn one_holder_per_destination_and_entries_are_dropped() {
        let locks = Arc::new(DestinationLocks::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (locks, inside, most) = (locks.clone(), inside.clone(), most.clone());
                tokio::spawn(async move {
                    let _g = locks.lock(key("a")).await;
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert!(locks.is_empty(), "no entry is left behind");
    }

    #[tokio::test]
    async fn other_destinations_do_not_wait() {
        let locks = DestinationLocks::default();
        let _a = locks.lock(key("a")).await;
        let b = tokio::time::timeout(Duration::from_secs(1), locks.lock(key("b"))).await;
        assert!(b.is_ok());
        assert_eq!(locks.len(), 2);
    }
}
