//! The parent's durable store: destinations, the newest sealed bundle of each, and sync history,
//! in an embedded SQLite database.
//!
//! The parent never holds plaintext, and neither does the store: it keeps the sealed bundle's bytes
//! as submitted (CBOR of `SealedBundle`, whose variables are HPKE ciphertext) and metadata copied
//! from the signed header. It does not verify bundles (the caller has checked the header) and it
//! does not schedule: it answers the scheduler's questions ([`Store::due`]) and records its
//! answers ([`Store::record_result`]).
//!
//! Durability: the database runs in WAL mode with `synchronous=FULL`, so once a method that
//! writes returns `Ok`, its transaction is on disk and survives `kill -9` and power loss. Only
//! then may the caller acknowledge a submit. Every method runs in one transaction.
//!
//! The store is synchronous. The parent calls it from `spawn_blocking` or a dedicated thread;
//! [`Store`] is `Send + Sync` and serialises calls on one connection.
//!
//! States of a destination ([`DestinationState`]):
//!
//! ```text
//! submit ──▶ pending ──due──▶ syncing ──record_result──▶ synced
//!              ▲                 │                      failed_retryable ──(next_attempt_at)──▶ due
//!              │                 │                      failed_terminal  ──retry_now / submit──▶ pending
//!              └─ newer bundle ──┘ (a result for an older version leaves it pending)
//! ```

#[cfg(test)]
mod crash_tests;
mod group;
mod records;
mod schema;
#[cfg(test)]
pub(crate) mod tests;

pub use group::GroupCommit;
pub use records::{
    DISABLED, DestinationKey, DestinationRecord, DestinationState, DueSync, HistoryRecord,
    LastError, ListFilter, Submission, SubmitOutcome,
};

use crate::ParentError;
use nitrosync_shared::bundle::{BundleHeader, saml_subject};
use nitrosync_shared::control::{SyncError, SyncMode, SyncOutcome, SyncReport, SyncTimings};
use records::{
    corrupt, from_sql, mode_str, opt_from_sql, outcome_str, parse_code, parse_mode, parse_outcome,
    parse_state, to_sql,
};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Settings of a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How long a statement waits for another process's lock before failing.
    pub busy_timeout: Duration,
    /// History rows kept per destination; older ones are pruned as new ones are recorded.
    pub history_per_destination: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
            history_per_destination: 1000,
        }
    }
}

/// The durable store. See the [module documentation](self).
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
    options: StoreOptions,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

const DESTINATION_COLUMNS: &str = "d.tenant_key, d.id, d.config, d.saml_subject, d.enabled, \
     d.state, b.version, b.received_at, d.synced_version, d.synced_at, d.next_attempt_at, \
     d.attempts, d.last_error_code, d.last_error_msg, d.last_error_at, d.created_at, d.updated_at";

const DESTINATION_FROM: &str =
    "destinations d JOIN bundles b ON b.tenant_key = d.tenant_key AND b.id = d.id";

impl Store {
    /// Opens (creating if needed) the store at `path` with default options, and migrates it to
    /// the current schema.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, ParentError> {
        Self::open_with(path, StoreOptions::default())
    }

    /// Opens the store at `path` with `options`.
    pub fn open_with(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store, ParentError> {
        let path = path.as_ref().to_owned();
        let open_err = |source| ParentError::Open {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(open_err)?;
        conn.busy_timeout(options.busy_timeout).map_err(open_err)?;
        schema::configure(&conn, &path)?;
        schema::migrate(&mut conn, &path)?;
        Ok(Store {
            conn: Mutex::new(conn),
            path,
            options,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version this build writes.
    pub fn schema_version() -> u32 {
        schema::current_version()
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic inside a method dropped its transaction, which rolled it back: the connection
        // is still consistent.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` in one write transaction and commits it.
    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, ParentError>,
    ) -> Result<T, ParentError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Stores a verified bundle, in one transaction: creates or updates the destination from
    /// the header, and replaces the stored bundle if this one is newer. A version not newer than
    /// the stored one changes nothing and returns [`SubmitOutcome::Stale`].
    ///
    /// When this returns `Accepted`, the bundle is durable and may be acknowledged.
    pub fn submit(
        &self,
        bundle: &[u8],
        header: &BundleHeader,
        now_ms: u64,
    ) -> Result<SubmitOutcome, ParentError> {
        self.write(|tx| submit_in(tx, bundle, header, now_ms))
    }

    /// Stores many bundles in one transaction (one disk sync for all), in order: a later
    /// bundle of the same destination in the batch sees the earlier one. Outcomes are in the
    /// order of `batch`. If it fails, nothing of the batch is stored.
    pub fn submit_many(
        &self,
        batch: &[Submission<'_>],
        now_ms: u64,
    ) -> Result<Vec<SubmitOutcome>, ParentError> {
        self.write(|tx| {
            batch
                .iter()
                .map(|s| submit_in(tx, s.bundle, s.header, now_ms))
                .collect()
        })
    }

    /// Enables or disables a destination. Disabled destinations are never [`due`](Self::due).
    /// Returns false when there is no such destination.
    pub fn set_enabled(
        &self,
        key: &DestinationKey,
        enabled: bool,
        now_ms: u64,
    ) -> Result<bool, ParentError> {
        let now = to_sql("now_ms", now_ms)?;
        self.write(|tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE destinations SET enabled = ?3, updated_at = ?4 \
                     WHERE tenant_key = ?1 AND id = ?2",
                )?
                .execute(params![&key.tenant_key[..], key.id, enabled, now])?;
            Ok(n > 0)
        })
    }

    /// Deletes a destination with its bundle and history. Returns false when there was none.
    /// (Applying the delete policy to the secret is a `Delete` sync, before this.)
    pub fn delete_destination(&self, key: &DestinationKey) -> Result<bool, ParentError> {
        self.write(|tx| {
            let n = tx
                .prepare_cached("DELETE FROM destinations WHERE tenant_key = ?1 AND id = ?2")?
                .execute(params![&key.tenant_key[..], key.id])?;
            Ok(n > 0)
        })
    }

    /// The enclave identity sealed under `key_arn`, if one is stored.
    pub fn sealed_identity(&self, key_arn: &str) -> Result<Option<Vec<u8>>, ParentError> {
        use rusqlite::OptionalExtension as _;
        let conn = self.lock();
        let mut stmt =
            conn.prepare_cached("SELECT bytes FROM sealed_identities WHERE key_arn = ?1")?;
        Ok(stmt
            .query_row(params![key_arn], |r| r.get::<_, Vec<u8>>(0))
            .optional()?)
    }

    /// Stores an identity sealed under `key_arn` and returns what is stored now. A first start's
    /// (generation 0) is kept only when none is stored: the first writer wins, and every later
    /// start (or a second parent on the same store) reads the same one. A rotation step's
    /// replaces the stored one only when its generation is higher.
    pub fn store_sealed_identity(
        &self,
        key_arn: &str,
        bytes: &[u8],
        generation: u64,
        now_ms: u64,
    ) -> Result<Vec<u8>, ParentError> {
        let now = to_sql("now_ms", now_ms)?;
        let generation = to_sql("generation", generation)?;
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO sealed_identities (key_arn, bytes, created_at, generation) \
                 VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (key_arn) DO UPDATE SET bytes = excluded.bytes, \
                 created_at = excluded.created_at, generation = excluded.generation \
                 WHERE excluded.generation > sealed_identities.generation",
            )?
            .execute(params![key_arn, bytes, now, generation])?;
            Ok(tx
                .prepare_cached("SELECT bytes FROM sealed_identities WHERE key_arn = ?1")?
                .query_row(params![key_arn], |r| r.get::<_, Vec<u8>>(0))?)
        })
    }

    /// The stored (newest) sealed bundle of a destination, as submitted.
    pub fn bundle(&self, key: &DestinationKey) -> Result<Option<Vec<u8>>, ParentError> {
        use rusqlite::OptionalExtension as _;
        let conn = self.lock();
        let mut stmt =
            conn.prepare_cached("SELECT bytes FROM bundles WHERE tenant_key = ?1 AND id = ?2")?;
        Ok(stmt
            .query_row(params![&key.tenant_key[..], key.id], |r| {
                r.get::<_, Vec<u8>>(0)
            })
            .optional()?)
    }

    /// One destination.
    pub fn get(&self, key: &DestinationKey) -> Result<Option<DestinationRecord>, ParentError> {
        let sql = format!(
            "SELECT {DESTINATION_COLUMNS} FROM {DESTINATION_FROM} \
             WHERE d.tenant_key = ?1 AND d.id = ?2"
        );
        let mut out = self.query_destinations(&sql, params![&key.tenant_key[..], key.id])?;
        Ok(out.pop())
    }

    /// Every tenant's destination with this id (ids are unique only per tenant).
    pub fn find(&self, id: &str) -> Result<Vec<DestinationRecord>, ParentError> {
        let sql = format!(
            "SELECT {DESTINATION_COLUMNS} FROM {DESTINATION_FROM} WHERE d.id = ?1 \
             ORDER BY d.tenant_key"
        );
        self.query_destinations(&sql, params![id])
    }

    /// Destinations matching `filter`, ordered by tenant and id.
    pub fn list(&self, filter: ListFilter) -> Result<Vec<DestinationRecord>, ParentError> {
        let order = "ORDER BY d.tenant_key, d.id";
        match filter {
            ListFilter::All => self.query_destinations(
                &format!("SELECT {DESTINATION_COLUMNS} FROM {DESTINATION_FROM} {order}"),
                [],
            ),
            ListFilter::Disabled => self.query_destinations(
                &format!(
                    "SELECT {DESTINATION_COLUMNS} FROM {DESTINATION_FROM} \
                     WHERE d.enabled = 0 {order}"
                ),
                [],
            ),
            ListFilter::State(state) => self.query_destinations(
                &format!(
                    "SELECT {DESTINATION_COLUMNS} FROM {DESTINATION_FROM} \
                     WHERE d.enabled = 1 AND d.state = ?1 {order}"
                ),
                params![state.as_str()],
            ),
        }
    }

    /// The `limit` destinations whose last sync failed most recently, newest first. Reads only
    /// those rows, so a status call stays cheap with 10,000 destinations.
    pub fn recent_errors(&self, limit: usize) -> Result<Vec<DestinationRecord>, ParentError> {
        let sql = format!(
            "SELECT {DESTINATION_COLUMNS} FROM {DESTINATION_FROM} \
             WHERE d.last_error_code IS NOT NULL \
             ORDER BY d.last_error_at DESC, d.tenant_key, d.id LIMIT ?1"
        );
        self.query_destinations(&sql, params![i64::try_from(limit).unwrap_or(i64::MAX)])
    }

    fn query_destinations(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<DestinationRecord>, ParentError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = stmt.query(params)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(destination_from_row(row)?);
        }
        Ok(out)
    }

    /// How many destinations are in each state, with disabled ones counted under
    /// [`DISABLED`] only. Every state appears, with zero if need be.
    pub fn counts_by_state(&self) -> Result<BTreeMap<String, u64>, ParentError> {
        let mut out: BTreeMap<String, u64> = DestinationState::ALL
            .iter()
            .map(|s| (s.as_str().to_owned(), 0))
            .chain([(DISABLED.to_owned(), 0)])
            .collect();
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT CASE WHEN enabled = 0 THEN 'disabled' ELSE state END AS s, count(*) \
             FROM destinations GROUP BY s",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let status: String = row.get(0)?;
            let n = from_sql("count", row.get(1)?)?;
            out.insert(status, n);
        }
        Ok(out)
    }

    /// Claims up to `limit` syncs that are due at `now_ms`: enabled destinations that are
    /// pending or failed-retryable with `next_attempt_at <= now_ms`, oldest first. Each is
    /// marked `syncing` until [`record_result`](Self::record_result) (or, after a crash,
    /// [`reset_pending_on_start`](Self::reset_pending_on_start)). A bundle submitted meanwhile
    /// does not make a syncing destination due again before its result is recorded, so one
    /// destination has at most one sync in flight and bursts coalesce into the newest version.
    pub fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<DueSync>, ParentError> {
        self.due_paced(now_ms, limit, &[], |_, _| true)
    }

    /// Like [`due`](Self::due), for a scheduler that paces each (account, region): syncs of the
    /// keys in `held_back` are not considered, and `take(account, region)` is asked for every
    /// other candidate, oldest first; only those it accepts are claimed. So one account with a
    /// long backlog at its rate does not hold up the others. At most `4 * limit` candidates are
    /// looked at per call.
    pub fn due_paced(
        &self,
        now_ms: u64,
        limit: usize,
        held_back: &[(String, String)],
        mut take: impl FnMut(&str, &str) -> bool,
    ) -> Result<Vec<DueSync>, ParentError> {
        use rusqlite::types::Value;
        let now = to_sql("now_ms", now_ms)?;
        let scan = i64::try_from(limit.saturating_mul(4)).unwrap_or(i64::MAX);
        let mut sql = String::from(
            "SELECT d.account, d.region, d.tenant_key, d.id, d.attempts, b.version, b.bytes \
             FROM destinations d \
             JOIN bundles b ON b.tenant_key = d.tenant_key AND b.id = d.id \
             WHERE d.enabled = 1 AND d.state IN ('pending', 'failed_retryable') \
               AND d.next_attempt_at <= ?1",
        );
        let mut params: Vec<Value> = vec![Value::Integer(now), Value::Integer(scan)];
        for (account, region) in held_back {
            let n = params.len();
            sql.push_str(&format!(
                " AND NOT (d.account = ?{} AND d.region = ?{})",
                n + 1,
                n + 2
            ));
            params.push(Value::Text(account.clone()));
            params.push(Value::Text(region.clone()));
        }
        sql.push_str(" ORDER BY d.next_attempt_at LIMIT ?2");
        self.write(|tx| {
            let mut out = Vec::new();
            {
                let mut stmt = tx.prepare_cached(&sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
                while out.len() < limit {
                    let Some(row) = rows.next()? else { break };
                    let account: String = row.get(0)?;
                    let region: String = row.get(1)?;
                    if !take(&account, &region) {
                        continue;
                    }
                    out.push(DueSync {
                        key: key_from_row(row, 2, 3)?,
                        region,
                        account,
                        attempts: from_sql("destinations.attempts", row.get(4)?)?,
                        version: from_sql("bundles.version", row.get(5)?)?,
                        bundle: row.get(6)?,
                        mode: SyncMode::Write,
                    });
                }
            }
            let mut claim = tx.prepare_cached(
                "UPDATE destinations SET state = 'syncing' WHERE tenant_key = ?1 AND id = ?2",
            )?;
            for due in &out {
                claim.execute(params![&due.key.tenant_key[..], due.key.id])?;
            }
            Ok(out)
        })
    }

    /// Records the result of a sync of `version`, in one transaction: appends a history row
    /// (pruning the oldest beyond the bound) and, for a `Write`, moves the destination to
    /// `synced`, `failed_retryable` (when `retry_at_ms` is given: the scheduler decides) or
    /// `failed_terminal`. If a newer bundle arrived meanwhile, the destination stays `pending`
    /// instead, due at once (or at `retry_at_ms` after a retryable failure).
    ///
    /// Other modes (`TestConnection`, `Delete`) only append history. Returns the destination's
    /// new state, or `None` when it was deleted meanwhile (then nothing is recorded).
    pub fn record_result(
        &self,
        key: &DestinationKey,
        version: u64,
        report: &SyncReport,
        started_ms: u64,
        finished_ms: u64,
        retry_at_ms: Option<u64>,
    ) -> Result<Option<DestinationState>, ParentError> {
        let keep = i64::from(self.options.history_per_destination);
        self.write(|tx| {
            let current: Option<(String, i64)> = tx
                .prepare_cached(
                    "SELECT d.state, b.version FROM destinations d \
                     JOIN bundles b ON b.tenant_key = d.tenant_key AND b.id = d.id \
                     WHERE d.tenant_key = ?1 AND d.id = ?2",
                )?
                .query_row(params![&key.tenant_key[..], key.id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            let Some((state, stored_version)) = current else {
                return Ok(None);
            };
            let state = parse_state(&state)?;
            let stored_version: u64 = from_sql("bundles.version", stored_version)?;
            insert_history(tx, key, version, report, started_ms, finished_ms, keep)?;
            if report.mode != SyncMode::Write {
                return Ok(Some(state));
            }
            let finished = to_sql("finished_ms", finished_ms)?;
            let failed = report.outcome == SyncOutcome::Failed;
            let newer_waiting = stored_version > version;
            let retry_at = match retry_at_ms {
                Some(at) if failed => Some(to_sql("retry_at_ms", at)?),
                _ => None,
            };
            let (new_state, next) = if newer_waiting {
                (
                    DestinationState::Pending,
                    Some(retry_at.unwrap_or(finished)),
                )
            } else if !failed {
                (DestinationState::Synced, None)
            } else if let Some(at) = retry_at {
                (DestinationState::FailedRetryable, Some(at))
            } else {
                (DestinationState::FailedTerminal, None)
            };
            if failed {
                let (code, message) = match &report.error {
                    Some(e) => (e.code, e.message.as_str()),
                    None => (
                        nitrosync_shared::ErrorCode::InternalServiceError,
                        "the enclave reported a failure without an error",
                    ),
                };
                tx.prepare_cached(
                    "UPDATE destinations SET state = ?3, next_attempt_at = ?4, \
                     attempts = attempts + 1, last_error_code = ?5, last_error_msg = ?6, \
                     last_error_at = ?7 WHERE tenant_key = ?1 AND id = ?2",
                )?
                .execute(params![
                    &key.tenant_key[..],
                    key.id,
                    new_state.as_str(),
                    next,
                    code.as_str(),
                    message,
                    finished
                ])?;
            } else {
                let v = to_sql("version", version)?;
                tx.prepare_cached(
                    "UPDATE destinations SET state = ?3, next_attempt_at = ?4, attempts = 0, \
                     last_error_code = NULL, last_error_msg = NULL, last_error_at = NULL, \
                     synced_version = max(coalesce(synced_version, 0), ?5), synced_at = ?6 \
                     WHERE tenant_key = ?1 AND id = ?2",
                )?
                .execute(params![
                    &key.tenant_key[..],
                    key.id,
                    new_state.as_str(),
                    next,
                    v,
                    finished
                ])?;
            }
            Ok(Some(new_state))
        })
    }

    /// After a restart, makes every `syncing` destination `pending` again (its result was
    /// lost with the old process), keeping its `next_attempt_at` so it is due at once.
    /// Returns how many there were. Call it once, before the scheduler starts.
    pub fn reset_pending_on_start(&self) -> Result<u64, ParentError> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE destinations SET state = 'pending' WHERE state = 'syncing'",
                [],
            )?;
            Ok(u64::try_from(n).unwrap_or(u64::MAX))
        })
    }

    /// A person's "retry now": a failed (or synced, or pending) destination becomes pending,
    /// due at `now_ms`, with its attempt count reset. Returns false when there is no such
    /// destination or it is `syncing` (its result is on the way).
    pub fn retry_now(&self, key: &DestinationKey, now_ms: u64) -> Result<bool, ParentError> {
        let now = to_sql("now_ms", now_ms)?;
        self.write(|tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE destinations SET state = 'pending', next_attempt_at = ?3, \
                     attempts = 0 WHERE tenant_key = ?1 AND id = ?2 AND state <> 'syncing'",
                )?
                .execute(params![&key.tenant_key[..], key.id, now])?;
            Ok(n > 0)
        })
    }

    /// The newest `limit` history records of a destination, newest first.
    pub fn history(
        &self,
        key: &DestinationKey,
        limit: usize,
    ) -> Result<Vec<HistoryRecord>, ParentError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT seq, version, mode, outcome, error_code, error_msg, error_retry, \
             aws_version_id, secret_arn, total_us, aws_us, aws_calls, signed, started_at, \
             finished_at FROM history WHERE tenant_key = ?1 AND id = ?2 \
             ORDER BY seq DESC LIMIT ?3",
        )?;
        let mut rows = stmt.query(params![&key.tenant_key[..], key.id, limit])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(history_from_row(row)?);
        }
        Ok(out)
    }

    /// Runs SQLite's `PRAGMA integrity_check`; returns its messages (`["ok"]` when intact).
    pub fn integrity_check(&self) -> Result<Vec<String>, ParentError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("PRAGMA integrity_check")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn submit_in(
    tx: &Transaction<'_>,
    bundle: &[u8],
    header: &BundleHeader,
    now_ms: u64,
) -> Result<SubmitOutcome, ParentError> {
    let max = nitrosync_shared::MAX_FRAME_LEN;
    if bundle.len() > max {
        return Err(ParentError::BundleTooLarge {
            len: bundle.len(),
            max,
        });
    }
    let dest = &header.destination;
    let tenant = &header.tenant_key[..];
    let version = to_sql("version", header.version)?;
    let now = to_sql("now_ms", now_ms)?;
    let stored: Option<i64> = tx
        .prepare_cached("SELECT version FROM bundles WHERE tenant_key = ?1 AND id = ?2")?
        .query_row(params![tenant, dest.id], |r| r.get(0))
        .optional()?;
    let previous_version = opt_from_sql("bundles.version", stored)?;
    if let Some(stored_version) = previous_version
        && stored_version >= header.version
    {
        return Ok(SubmitOutcome::Stale { stored_version });
    }
    let config = serde_json::to_string(dest).map_err(ParentError::ConfigJson)?;
    // A destination being synced stays `syncing`: its result finds the newer bundle and leaves
    // it pending, so there is never a second sync of one destination in flight.
    tx.prepare_cached(
        "INSERT INTO destinations (tenant_key, id, config, region, account, saml_subject, \
             enabled, state, next_attempt_at, attempts, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, 'pending', ?7, 0, ?7, ?7) \
         ON CONFLICT (tenant_key, id) DO UPDATE SET \
             config = excluded.config, region = excluded.region, account = excluded.account, \
             saml_subject = excluded.saml_subject, \
             state = CASE WHEN state = 'syncing' THEN 'syncing' ELSE 'pending' END, \
             next_attempt_at = excluded.next_attempt_at, attempts = 0, \
             updated_at = excluded.updated_at",
    )?
    .execute(params![
        tenant,
        dest.id,
        config,
        dest.region,
        dest.account().ok_or_else(|| ParentError::NoAccount {
            destination: dest.id.clone(),
            role_arn: dest.role_arn.clone(),
        })?,
        saml_subject(&header.tenant_key, &dest.id),
        now
    ])?;
    tx.prepare_cached(
        "INSERT INTO bundles (tenant_key, id, version, bytes, received_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (tenant_key, id) DO UPDATE SET \
             version = excluded.version, bytes = excluded.bytes, \
             received_at = excluded.received_at",
    )?
    .execute(params![tenant, dest.id, version, bundle, now])?;
    Ok(SubmitOutcome::Accepted { previous_version })
}

fn insert_history(
    tx: &Transaction<'_>,
    key: &DestinationKey,
    version: u64,
    report: &SyncReport,
    started_ms: u64,
    finished_ms: u64,
    keep: i64,
) -> Result<(), ParentError> {
    let t = &report.timings;
    tx.prepare_cached(
        "INSERT INTO history (tenant_key, id, version, mode, outcome, error_code, error_msg, \
             error_retry, aws_version_id, secret_arn, total_us, aws_us, aws_calls, signed, \
             started_at, finished_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?
    .execute(params![
        &key.tenant_key[..],
        key.id,
        to_sql("version", version)?,
        mode_str(report.mode),
        outcome_str(report.outcome),
        report.error.as_ref().map(|e| e.code.as_str()),
        report.error.as_ref().map(|e| e.message.as_str()),
        report.error.as_ref().map(|e| e.retryable),
        report.aws_version_id,
        report.secret_arn,
        to_sql("timings.total_us", t.total_us)?,
        to_sql("timings.aws_us", t.aws_us)?,
        t.aws_calls,
        t.signed_assertion,
        to_sql("started_ms", started_ms)?,
        to_sql("finished_ms", finished_ms)?,
    ])?;
    tx.prepare_cached(
        "DELETE FROM history WHERE tenant_key = ?1 AND id = ?2 AND seq <= \
             (SELECT seq FROM history WHERE tenant_key = ?1 AND id = ?2 \
              ORDER BY seq DESC LIMIT 1 OFFSET ?3)",
    )?
    .execute(params![&key.tenant_key[..], key.id, keep])?;
    Ok(())
}

fn key_from_row(row: &Row<'_>, tenant: usize, id: usize) -> Result<DestinationKey, ParentError> {
    let bytes: Vec<u8> = row.get(tenant)?;
    let tenant_key = <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| corrupt("tenant_key", format!("of {} bytes", bytes.len())))?;
    Ok(DestinationKey {
        tenant_key,
        id: row.get(id)?,
    })
}

fn destination_from_row(row: &Row<'_>) -> Result<DestinationRecord, ParentError> {
    let config: String = row.get(2)?;
    let last_error = match row.get::<_, Option<String>>(12)? {
        Some(code) => Some(LastError {
            code: parse_code("destinations.last_error_code", &code)?,
            message: row.get::<_, Option<String>>(13)?.unwrap_or_default(),
            at_ms: from_sql("destinations.last_error_at", row.get(14)?)?,
        }),
        None => None,
    };
    Ok(DestinationRecord {
        key: key_from_row(row, 0, 1)?,
        config: serde_json::from_str(&config).map_err(ParentError::ConfigJson)?,
        saml_subject: row.get(3)?,
        enabled: row.get(4)?,
        state: parse_state(&row.get::<_, String>(5)?)?,
        version: from_sql("bundles.version", row.get(6)?)?,
        received_at_ms: from_sql("bundles.received_at", row.get(7)?)?,
        synced_version: opt_from_sql("destinations.synced_version", row.get(8)?)?,
        synced_at_ms: opt_from_sql("destinations.synced_at", row.get(9)?)?,
        next_attempt_at_ms: opt_from_sql("destinations.next_attempt_at", row.get(10)?)?,
        attempts: from_sql("destinations.attempts", row.get(11)?)?,
        last_error,
        created_at_ms: from_sql("destinations.created_at", row.get(15)?)?,
        updated_at_ms: from_sql("destinations.updated_at", row.get(16)?)?,
    })
}

fn history_from_row(row: &Row<'_>) -> Result<HistoryRecord, ParentError> {
    let error = match row.get::<_, Option<String>>(4)? {
        Some(code) => Some(SyncError {
            code: parse_code("history.error_code", &code)?,
            message: row.get::<_, Option<String>>(5)?.unwrap_or_default(),
            retryable: row.get::<_, Option<bool>>(6)?.unwrap_or(false),
        }),
        None => None,
    };
    Ok(HistoryRecord {
        seq: from_sql("history.seq", row.get(0)?)?,
        version: from_sql("history.version", row.get(1)?)?,
        mode: parse_mode(&row.get::<_, String>(2)?)?,
        outcome: parse_outcome(&row.get::<_, String>(3)?)?,
        error,
        aws_version_id: row.get(7)?,
        secret_arn: row.get(8)?,
        timings: SyncTimings {
            total_us: from_sql("history.total_us", row.get(9)?)?,
            aws_us: from_sql("history.aws_us", row.get(10)?)?,
            aws_calls: from_sql("history.aws_calls", row.get(11)?)?,
            signed_assertion: row.get(12)?,
        },
        started_at_ms: from_sql("history.started_at", row.get(13)?)?,
        finished_at_ms: from_sql("history.finished_at", row.get(14)?)?,
    })
}
