//! The schema and its migrations.
//!
//! `PRAGMA user_version` holds the number of migrations applied. Each migration runs in its own
//! transaction together with the bump of `user_version`, so a crash leaves the database at one
//! version or the next, never between. Migrations are only ever appended to [`MIGRATIONS`].

use crate::ParentError;
use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;

/// `PRAGMA application_id` of a nitrosync store: "nsyn".
pub(super) const APPLICATION_ID: i32 = 0x6e73_796e;

/// The migrations, in order. Migration `i` (from 0) takes the database to version `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: destinations, newest bundle per destination, sync history.
    r#"
CREATE TABLE destinations (
    tenant_key      BLOB    NOT NULL CHECK (length(tenant_key) = 32),
    id              TEXT    NOT NULL,
    config          TEXT    NOT NULL,  -- DestinationConfig as JSON, from the newest header
    region          TEXT    NOT NULL,  -- copies of config fields, for the scheduler
    account         TEXT    NOT NULL,
    saml_subject    TEXT    NOT NULL,
    enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    state           TEXT    NOT NULL CHECK (state IN
                        ('pending', 'syncing', 'synced', 'failed_retryable', 'failed_terminal')),
    next_attempt_at INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error_code TEXT,
    last_error_msg  TEXT,
    last_error_at   INTEGER,
    synced_version  INTEGER,
    synced_at       INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant_key, id)
);
CREATE INDEX destinations_by_id ON destinations (id);
-- The scheduler's question, answered in next_attempt_at order without a sort.
CREATE INDEX destinations_due ON destinations (next_attempt_at)
    WHERE enabled = 1 AND state IN ('pending', 'failed_retryable');

CREATE TABLE bundles (
    tenant_key  BLOB    NOT NULL,
    id          TEXT    NOT NULL,
    version     INTEGER NOT NULL CHECK (version > 0),
    bytes       BLOB    NOT NULL,      -- CBOR of SealedBundle, as submitted
    received_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_key, id),
    FOREIGN KEY (tenant_key, id) REFERENCES destinations (tenant_key, id) ON DELETE CASCADE
);

CREATE TABLE history (
    seq            INTEGER PRIMARY KEY,
    tenant_key     BLOB    NOT NULL,
    id             TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    mode           TEXT    NOT NULL,
    outcome        TEXT    NOT NULL,
    error_code     TEXT,
    error_msg      TEXT,
    error_retry    INTEGER,
    aws_version_id TEXT,
    secret_arn     TEXT,
    total_us       INTEGER NOT NULL,
    aws_us         INTEGER NOT NULL,
    aws_calls      INTEGER NOT NULL,
    signed         INTEGER NOT NULL CHECK (signed IN (0, 1)),
    started_at     INTEGER NOT NULL,
    finished_at    INTEGER NOT NULL,
    FOREIGN KEY (tenant_key, id) REFERENCES destinations (tenant_key, id) ON DELETE CASCADE
);
CREATE INDEX history_by_destination ON history (tenant_key, id, seq);
"#,
    // 2: the enclave's identity sealed under a KMS key (not secret: KMS releases its data key
    // only to attested enclaves). One per key; written once, never replaced.
    r#"
CREATE TABLE sealed_identities (
    key_arn    TEXT    PRIMARY KEY,
    bytes      BLOB    NOT NULL,       -- CBOR of SealedIdentity, as the enclave made it
    created_at INTEGER NOT NULL
);
"#,
    // 3: key rotation re-seals the identity: each blob has a generation, and the highest is kept.
    r#"
ALTER TABLE sealed_identities ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
"#,
];

/// The schema version this build writes.
pub(super) fn current_version() -> u32 {
    // A handful of migrations: the count always fits.
    u32::try_from(MIGRATIONS.len()).unwrap_or(u32::MAX)
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Sets the connection's pragmas: WAL, `synchronous=FULL`, foreign keys.
pub(super) fn configure(conn: &Connection, path: &Path) -> Result<(), ParentError> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|source| ParentError::Open {
            path: path.to_owned(),
            source,
        })?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(ParentError::JournalMode {
            path: path.to_owned(),
            mode,
        });
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
        .map_err(|source| ParentError::Open {
            path: path.to_owned(),
            source,
        })
}

/// Brings the database up to [`current_version`], refusing one written by a newer build.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), ParentError> {
    let known = current_version();
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(|source| ParentError::Open {
            path: path.to_owned(),
            source,
        })?;
    if app_id != 0 && app_id != APPLICATION_ID {
        return Err(ParentError::NotAStore {
            path: path.to_owned(),
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let target = i64::try_from(index + 1).unwrap_or(i64::MAX);
        let fail = |source| ParentError::Migration {
            path: path.to_owned(),
            version: target,
            source,
        };
        // IMMEDIATE: another process opening the same file waits, then sees our version.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let found = user_version(&tx).map_err(fail)?;
        if found > i64::from(known) {
            return Err(ParentError::NewerSchema {
                path: path.to_owned(),
                found,
                known,
            });
        }
        if found >= target {
            continue;
        }
        tx.execute_batch(sql).map_err(fail)?;
        tx.execute_batch(&format!(
            "PRAGMA user_version = {target}; PRAGMA application_id = {APPLICATION_ID};"
        ))
        .map_err(fail)?;
        tx.commit().map_err(fail)?;
    }
    // Also covers a database that needed no migration.
    let found = user_version(conn).map_err(|source| ParentError::Open {
        path: path.to_owned(),
        source,
    })?;
    if found > i64::from(known) {
        return Err(ParentError::NewerSchema {
            path: path.to_owned(),
            found,
            known,
        });
    }
    Ok(())
}
