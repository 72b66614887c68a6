//! Group commit: submits that arrive while a transaction is committing share the next one.
//!
//! With `synchronous=FULL` every commit waits for the disk, and that wait, not SQLite, bounds
//! submits per second. One committer task takes whatever submits are queued (up to a batch),
//! stores them with [`Store::submit_many`] in one transaction, and answers each. A lone submit
//! is committed at once, so it gains no latency; under load, batches form on their own. A submit
//! is answered only after its batch committed, so an acknowledgement still means durable.

use super::{Store, Submission, SubmitOutcome};
use crate::ParentError;
use nitrosync_shared::bundle::BundleHeader;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Submits per transaction at most.
pub const MAX_BATCH: usize = 256;

struct Job {
    bundle: Vec<u8>,
    header: BundleHeader,
    reply: oneshot::Sender<Result<SubmitOutcome, ParentError>>,
}

/// The handle of the committer task; cheap to clone. The task ends when every handle is gone.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("destination", &self.header.destination.id)
            .field("version", &self.header.version)
            .finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Starts the committer for `store` (inside a Tokio runtime). `now_ms` stamps each batch.
    pub fn start(store: Arc<Store>, now_ms: fn() -> u64) -> Self {
        let (jobs, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(committer(store, rx, now_ms));
        Self { jobs }
    }

    /// Stores a verified bundle; returns once it is committed (or refused as stale). The error
    /// is the store's, as text: the bundle was not stored.
    pub async fn submit(
        &self,
        bundle: Vec<u8>,
        header: BundleHeader,
    ) -> Result<SubmitOutcome, ParentError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                bundle,
                header,
                reply,
            })
            .await
            .map_err(|_| ParentError::CommitterStopped)?;
        answer.await.map_err(|_| ParentError::CommitterStopped)?
    }
}

async fn committer(store: Arc<Store>, mut rx: mpsc::Receiver<Job>, now_ms: fn() -> u64) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let batch = std::mem::take(&mut jobs);
        let store = store.clone();
        let done = tokio::task::spawn_blocking(move || {
            let outcomes = commit(&store, &batch, now_ms());
            (batch, outcomes)
        })
        .await;
        let Ok((batch, outcomes)) = done else {
            // The blocking task panicked: its jobs' senders are dropped, so each submit
            // reports that the committer stopped. Nothing was acknowledged.
            continue;
        };
        for (job, outcome) in batch.into_iter().zip(outcomes) {
            let _ = job.reply.send(outcome);
        }
    }
}

/// One transaction for the batch. If it fails and holds more than one submit, each is retried
/// alone, so one bad submit does not fail the others.
fn commit(store: &Store, batch: &[Job], now_ms: u64) -> Vec<Result<SubmitOutcome, ParentError>> {
    let subs: Vec<Submission<'_>> = batch
        .iter()
        .map(|j| Submission {
            bundle: &j.bundle,
            header: &j.header,
        })
        .collect();
    match store.submit_many(&subs, now_ms) {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(e) if subs.len() == 1 => vec![Err(e)],
        Err(_) => subs
            .iter()
            .map(|s| store.submit(s.bundle, s.header, now_ms))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DestinationKey;

    fn header(id: &str, version: u64) -> BundleHeader {
        crate::store::tests::header(1, id, version)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_submits_are_all_committed_and_answered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path().join("s.db")).unwrap());
        let gc = GroupCommit::start(store.clone(), || 1_000);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..300u64 {
            let gc = gc.clone();
            tasks.spawn(async move {
                let h = header(&format!("d{}", i % 100), 1 + i / 100);
                let bytes = crate::store::tests::sealed(&h, 1);
                gc.submit(bytes, h).await
            });
        }
        let mut accepted = 0;
        while let Some(r) = tasks.join_next().await {
            match r.unwrap().unwrap() {
                SubmitOutcome::Accepted { .. } => accepted += 1,
                SubmitOutcome::Stale { .. } => {}
            }
        }
        // Each destination got versions 1..=3 in some order: at least one accepted each.
        assert!(accepted >= 100, "{accepted}");
        for d in 0..100 {
            let rec = store
                .get(&DestinationKey::new([1; 32], format!("d{d}")))
                .unwrap()
                .unwrap();
            assert!((1..=3).contains(&rec.version));
        }
    }

    #[tokio::test]
    async fn a_bad_submit_does_not_fail_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path().join("s.db")).unwrap());
        let good = header("good", 1);
        let bad = header("bad", 1);
        let batch = [
            Job {
                bundle: crate::store::tests::sealed(&good, 1),
                header: good,
                reply: oneshot::channel().0,
            },
            Job {
                bundle: vec![0; nitrosync_shared::MAX_FRAME_LEN + 1],
                header: bad,
                reply: oneshot::channel().0,
            },
        ];
        let out = commit(&store, &batch, 1_000);
        assert!(
            matches!(out[0], Ok(SubmitOutcome::Accepted { .. })),
            "{out:?}"
        );
        assert!(out[1].is_err(), "{out:?}");
        assert!(
            store
                .get(&DestinationKey::new([1; 32], "good"))
                .unwrap()
                .is_some()
        );
    }
}
