//! Spin's built-in SQLite (`fermyon:spin/sqlite@2.0.0`, the `default` database): the
//! zero-setup store for `spin up` on one machine.
//!
//! Spin gives every request a connection of its own (a new `rusqlite` connection per `open`,
//! Spin 3.6 and 4.x alike), and every statement is a call from the component into the host, run
//! on a blocking thread. Concurrent writers therefore meet only in SQLite's write lock, and wait
//! for it in SQLite's busy handler, which sleeps 1, 2, 5, 10 ... up to 100 ms between tries: under
//! contention the requests that waited longest try least often, and 16 concurrent PUTs waited up
//! to 1-2 s. Two things keep that lock short, so that it is rarely contended:
//! - **A write is one statement** (`INSERT INTO integration_writes ... RETURNING`, migration 5,
//!   through [`super::applies_to_any_row`] and [`super::decide`]): it holds the lock only while
//!   SQLite runs it. A transaction of several statements held it across every call between the
//!   component and the host, each one waiting its turn on a busy host (0.5-0.8 ms in all, at the
//!   median, under a benchmark's load).
//! - **`synchronous = NORMAL`** under write-ahead logging: a commit appends to the log without
//!   waiting for the disk (about 1 ms here, under the lock); the log is synced at checkpoints. A
//!   commit survives a crash of Spin, not a power loss of the machine, and the file is never
//!   corrupted. It is a per-connection setting, so every write sets it.
//!
//! The price is the trigger: every connection parses the schema, and the write's trigger and view
//! make that about 0.1 ms of CPU more (measured natively with the same SQLite), on every request
//! that reaches SQLite; the read cache spares most reads that.

use spin_sdk::sqlite::{Connection, Error as SqliteError, QueryResult, Value};

use super::migrations;
use super::{
    applies_to_any_row, decide, unexpected_shape, Columns, HistoryPage, KeyUsage, ResealItem, Seeder, Store,
    StoreError, StoredRow, StoredSettings, StoredVersion, Table, Verdict, Write, WriteOutcome,
};
use crate::config::Misconfigured;
use crate::domain::{IntegrationId, Timestamp};
use crate::redact::short_reason;

/// A live row's columns, named as PostgreSQL's statements name them.
const ROW: &str = "id, name, description, status, settings, settings_key, settings_keys, version, \
    created_at AS created_us, updated_at AS updated_us";
const VERSION: &str = "version, recorded_at AS recorded_us, action, restored_from, name, description, status, \
    settings, settings_key, request_id, client_addr, authenticated, actor";
/// The row a write left, as one JSON object in [`StoredRow`]'s shape: one subquery in a write's
/// `RETURNING`, where one per column cost SQLite a subprogram each to prepare, on every request
/// (Spin opens a connection per request, so nothing stays prepared).
const WRITTEN: &str = "(SELECT json_object('id', id, 'name', name, 'description', description,
    'status', json(iif(status, 'true', 'false')), 'settings', json_object('text', settings, 'key', settings_key),
    'settings_keys', json(settings_keys), 'version', version, 'created_at', created_at, 'updated_at', updated_at)
    FROM integrations AS i WHERE i.id = integration_writes.id)";
/// How often a conditional write reads the row again because another write changed it meanwhile.
const MOVED_RETRIES: usize = 100;
/// How long a request waits for another's migration before it gives up (503).
const MIGRATION_WAIT_US: i64 = 10_000_000;
/// The busy timeout Spin's connections start with (rusqlite's default): how long a statement
/// waits for another connection's lock.
const BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 5000";

/// The statements this store sends for a read and a write, public so that the benchmark's SQLite
/// floor sends the very same SQL.
pub mod statements {
    use spin_sdk::sqlite::Value;

    use super::{optional, ROW, WRITTEN};
    use crate::domain::Timestamp;
    use crate::store::{names_json, Write};

    pub fn list() -> String {
        format!("SELECT {ROW} FROM integrations ORDER BY seq")
    }

    /// One parameter: the id.
    pub fn get() -> String {
        format!("SELECT {ROW} FROM integrations WHERE id = ?1")
    }

    /// A write as one statement (migration 5's view and trigger), with [`write_params`]; its one
    /// row is the row as written, none when nothing was written.
    pub fn write() -> String {
        format!(
            "INSERT INTO integration_writes (id, read_version, name, description, status, settings, settings_key,
               settings_keys, now, action, restored_from, request_id, client_addr, authenticated, retention, actor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
             RETURNING {WRITTEN} AS written"
        )
    }

    /// [`write`]'s parameters: to the row as it is when the statement runs, or, with
    /// `read_version`, only if the row is still at that version.
    pub fn write_params(write: &Write, read_version: Option<i64>) -> Vec<Value> {
        let settings = write.settings.as_ref();
        let provenance = &write.provenance;
        vec![
            Value::Text(write.id.to_string()),
            read_version.map_or(Value::Null, Value::Integer),
            optional(write.name.clone()),
            optional(write.description.clone()),
            write.status.map_or(Value::Null, |status| Value::Integer(status.into())),
            optional(settings.map(|settings| settings.stored.text.clone())),
            optional(settings.and_then(|settings| settings.stored.key.clone())),
            optional(settings.map(|settings| names_json(&settings.keys))),
            Value::Integer(Timestamp::now().0),
            Value::Text(provenance.action.as_str().into()),
            provenance.restored_from.map_or(Value::Null, Value::Integer),
            optional(provenance.actor.request_id.clone()),
            optional(provenance.actor.client_addr.clone()),
            Value::Integer(provenance.actor.authenticated.into()),
            Value::Integer(i64::from(write.retention)),
            optional(provenance.actor.name.clone()),
        ]
    }
}

/// Why a statement failed: the lock was held by another connection, or anything else.
enum Busy {
    Locked(String),
    Other(StoreError),
}

pub struct SqliteStore<'a> {
    connection: Connection,
    seeder: Seeder<'a>,
}

impl<'a> SqliteStore<'a> {
    pub fn open(seeder: Seeder<'a>) -> Result<Self, StoreError> {
        let connection = Connection::open_default().map_err(classify)?;
        Ok(Self { connection, seeder })
    }

    fn execute(&self, statement: &str, params: &[Value]) -> Result<QueryResult, StoreError> {
        self.connection.execute(statement, params).map_err(classify)
    }

    /// Migrates the schema when it is missing or behind, or a catalog row is missing. SQLite is
    /// in-process, so this check is a statement of its own (a function call, not a round trip).
    fn ensure_schema(&self) -> Result<(), StoreError> {
        if self.behind()? {
            self.migrate()?;
        }
        Ok(())
    }

    /// Whether the schema is missing or behind, or a catalog row is missing.
    fn behind(&self) -> Result<bool, StoreError> {
        let check = format!(
            "SELECT (SELECT max(version) FROM integrations_schema_migrations) AS schema_version, {}",
            migrations::catalog_rows()
        );
        Ok(match self.connection.execute(&check, &[]) {
            Err(SqliteError::Io(text)) if text.contains("no such table") => true,
            result => {
                let result = result.map_err(classify)?;
                let row = named(&result).next().ok_or_else(|| unexpected_shape("schema_version"))?;
                let schema_version = row.integer("schema_version")?.unwrap_or(0);
                migrations::is_behind(schema_version, row.integer("catalog_rows")?.unwrap_or(0))
            }
        })
    }

    /// Applies the pending migrations and seeds in one transaction, under SQLite's write lock, so
    /// that racing first requests apply each exactly once.
    ///
    /// Those racing requests must not queue for the lock with SQLite's busy handler: it lets a
    /// waiter sleep up to 100 ms between tries, so 64 first requests took up to 2-3 s to get through
    /// one after the other, though all but the first find nothing left to do. And switching to
    /// write-ahead logging upgrades a read lock to a write lock, which SQLite refuses at once,
    /// without its busy handler, while another connection holds the write lock ("database is
    /// locked"): racing first requests got a 503 from it. So a migrating request tries the lock
    /// without waiting, and while someone else holds it, watches for the schema to be up to date
    /// (a read, which never waits for a writer under write-ahead logging), trying again every
    /// few milliseconds.
    fn migrate(&self) -> Result<(), StoreError> {
        let seeds = (self.seeder)()?;
        let started = Timestamp::now().0;
        self.execute("PRAGMA busy_timeout = 0", &[])?;
        loop {
            // Write-ahead logging (kept in the file once set): a commit appends to the log instead
            // of rewriting pages through a rollback journal, and readers never wait for a writer.
            // It cannot change inside a transaction.
            let locked =
                self.try_execute("PRAGMA journal_mode = WAL").and_then(|()| self.try_execute("BEGIN IMMEDIATE"));
            match locked {
                Ok(()) => break,
                Err(Busy::Locked(reason)) => {
                    if self.behind().is_ok_and(|behind| !behind) {
                        return self.execute(BUSY_TIMEOUT, &[]).map(drop);
                    }
                    if Timestamp::now().0 - started > MIGRATION_WAIT_US {
                        return Err(StoreError::Unavailable(short_reason(&reason)));
                    }
                    pause();
                }
                Err(Busy::Other(error)) => return Err(error),
            }
        }
        let migrated = self.execute(BUSY_TIMEOUT, &[]).and_then(|_| {
            self.execute(migrations::SQLITE_MIGRATIONS_TABLE, &[])?;
            let applied =
                self.execute("SELECT coalesce(max(version), 0) AS applied FROM integrations_schema_migrations", &[])?;
            let applied = named(&applied).next().map(|row| row.integer("applied")).transpose()?.flatten().unwrap_or(0);
            for statement in migrations::sqlite_statements(applied, &seeds) {
                self.execute(&statement, &[])?;
            }
            Ok(())
        });
        let end = if migrated.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = self.execute(end, &[]);
        migrated?;
        ended.map(drop)
    }

    /// `statement`, telling "another connection holds the lock" apart from other failures.
    fn try_execute(&self, statement: &str) -> Result<(), Busy> {
        match self.connection.execute(statement, &[]) {
            Ok(_) => Ok(()),
            Err(SqliteError::Io(text)) if is_locked(&text) => Err(Busy::Locked(text)),
            Err(error) => Err(Busy::Other(classify(error))),
        }
    }

    /// Writes `write` in one statement (`integration_writes`, migration 5): to the row as it is
    /// when the statement runs, or, with `read_version`, only if the row is still at that version.
    /// The row as written, or `None` when nothing was written (no such row, or it moved on).
    fn write_statement(&self, write: &Write, read_version: Option<i64>) -> Result<Option<StoredRow>, StoreError> {
        let written = self.execute(&statements::write(), &statements::write_params(write, read_version))?;
        let Some(row) = named(&written).next() else { return Ok(None) };
        let json = row.text("written")?.ok_or_else(|| unexpected_shape("written"))?;
        serde_json::from_slice(json.as_bytes()).map(Some).map_err(|_| unexpected_shape("written"))
    }
}

impl Store for SqliteStore<'_> {
    fn list(&self) -> Result<Vec<StoredRow>, StoreError> {
        self.ensure_schema()?;
        let result = self.execute(&statements::list(), &[])?;
        named(&result).filter_map(|row| StoredRow::decode(&row).transpose()).collect()
    }

    fn get(&self, id: &IntegrationId) -> Result<Option<StoredRow>, StoreError> {
        self.ensure_schema()?;
        let result = self.execute(&statements::get(), &[Value::Text(id.to_string())])?;
        let row = named(&result).next();
        row.map_or(Ok(None), |row| StoredRow::decode(&row))
    }

    fn write(&self, write: &Write) -> Result<WriteOutcome, StoreError> {
        self.ensure_schema()?;
        self.execute("PRAGMA synchronous = NORMAL", &[])?;
        if applies_to_any_row(write) {
            return Ok(self.write_statement(write, None)?.map_or(WriteOutcome::NotFound, WriteOutcome::Written));
        }
        // The rules depend on the row: check them against the row as read, and write only if it
        // is still that row (else read it again). Only a write with preconditions or undeclared
        // settings gets here, and only concurrent writes of the same row make it read again.
        for _ in 0..MOVED_RETRIES {
            let id = Value::Text(write.id.to_string());
            let current = self.execute(&statements::get(), &[id])?;
            let Some(current) = named(&current).next().map(|row| StoredRow::decode(&row)).transpose()?.flatten() else {
                return Ok(WriteOutcome::NotFound);
            };
            match decide(&current, write) {
                Verdict::PreconditionFailed => return Ok(WriteOutcome::PreconditionFailed),
                Verdict::Undeclared(names) => return Ok(WriteOutcome::UndeclaredSettings(names)),
                Verdict::Apply => {}
            }
            if let Some(row) = self.write_statement(write, Some(current.version))? {
                return Ok(WriteOutcome::Written(row));
            }
        }
        Err(StoreError::Unavailable("the row kept changing under a conditional write".into()))
    }

    fn history(&self, id: &IntegrationId, before: Option<i64>, limit: u32) -> Result<Option<HistoryPage>, StoreError> {
        self.ensure_schema()?;
        let found =
            self.execute("SELECT count(*) AS found FROM integrations WHERE id = ?1", &[Value::Text(id.to_string())])?;
        if named(&found).next().map(|row| row.integer("found")).transpose()?.flatten().unwrap_or(0) == 0 {
            return Ok(None);
        }
        let result = self.execute(
            &format!(
                "SELECT {VERSION} FROM integration_history WHERE integration_id = ?1 AND version < ?2
                 ORDER BY version DESC LIMIT ?3"
            ),
            &[
                Value::Text(id.to_string()),
                Value::Integer(before.unwrap_or(i64::MAX)),
                Value::Integer(i64::from(limit) + 1),
            ],
        )?;
        let versions = named(&result).filter_map(|row| StoredVersion::decode(&row).transpose());
        Ok(Some(HistoryPage { versions: versions.collect::<Result<_, _>>()? }))
    }

    fn key_usage(&self) -> Result<KeyUsage, StoreError> {
        self.ensure_schema()?;
        let count = |table: &str| -> Result<Vec<(Option<String>, i64)>, StoreError> {
            let result = self
                .execute(&format!("SELECT settings_key, count(*) AS rows FROM {table} GROUP BY settings_key"), &[])?;
            named(&result).map(|row| Ok((row.text("settings_key")?, row.integer("rows")?.unwrap_or(0)))).collect()
        };
        Ok(KeyUsage { live: count("integrations")?, history: count("integration_history")? })
    }

    fn reseal_candidates(&self, current: &str, openable: &[&str], limit: u32) -> Result<Vec<ResealItem>, StoreError> {
        self.ensure_schema()?;
        let result = self.execute(
            "SELECT * FROM (
               SELECT 'live' AS tbl, id, version, settings, settings_key FROM integrations WHERE settings_key IS NOT ?1
               UNION ALL
               SELECT 'history', integration_id, version, settings, settings_key FROM integration_history
               WHERE settings_key IS NOT ?1
             )
             ORDER BY (settings_key IS NULL OR settings_key IN (SELECT value FROM json_each(?3))) DESC
             LIMIT ?2",
            &[
                Value::Text(current.into()),
                Value::Integer(i64::from(limit)),
                Value::Text(serde_json::to_string(openable).expect("ids serialize")),
            ],
        )?;
        named(&result).filter_map(|row| ResealItem::decode(&row).transpose()).collect()
    }

    fn replace_sealed(&self, item: &ResealItem, sealed: &StoredSettings) -> Result<bool, StoreError> {
        let (table, id_column, version_check) = match item.table {
            Table::Live => ("integrations", "id", ""),
            Table::History => ("integration_history", "integration_id", " AND version = ?6"),
        };
        let result = self.execute(
            &format!(
                "UPDATE {table} SET settings = ?2, settings_key = ?3
                 WHERE {id_column} = ?1 AND settings = ?4 AND settings_key IS ?5{version_check}
                 RETURNING 1"
            ),
            &[
                Value::Text(item.id.clone()),
                Value::Text(sealed.text.clone()),
                optional(sealed.key.clone()),
                Value::Text(item.settings.text.clone()),
                optional(item.settings.key.clone()),
                Value::Integer(item.version),
            ][..if version_check.is_empty() { 5 } else { 6 }],
        )?;
        Ok(!result.rows.is_empty())
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.ensure_schema()
    }
}

/// SQLITE_BUSY ("database is locked") or SQLITE_LOCKED ("database table is locked").
fn is_locked(text: &str) -> bool {
    text.contains("locked") || text.contains("busy")
}

/// A few milliseconds, drawn at random so that waiters do not retry in step.
fn pause() {
    let jitter = getrandom::u32().unwrap_or(0) % 2000;
    std::thread::sleep(std::time::Duration::from_micros(1000 + u64::from(jitter)));
}

fn optional(text: Option<String>) -> Value {
    text.map_or(Value::Null, Value::Text)
}

/// A row of a result, read by column name.
struct SqliteRow<'r> {
    columns: &'r [String],
    values: &'r [Value],
}

/// The rows of `result`, each read by column name.
fn named(result: &QueryResult) -> impl Iterator<Item = SqliteRow<'_>> {
    result.rows.iter().map(|row| SqliteRow { columns: &result.columns, values: &row.values })
}

impl SqliteRow<'_> {
    fn value(&self, column: &str) -> Result<&Value, StoreError> {
        let index = self.columns.iter().position(|name| name == column);
        index
            .map(|index| &self.values[index])
            .ok_or_else(|| StoreError::Unexpected(format!("column {column} is missing")))
    }
}

impl Columns for SqliteRow<'_> {
    fn text(&self, column: &str) -> Result<Option<String>, StoreError> {
        match self.value(column)? {
            Value::Null => Ok(None),
            Value::Text(text) => Ok(Some(text.clone())),
            _ => Err(unexpected_shape(column)),
        }
    }

    fn integer(&self, column: &str) -> Result<Option<i64>, StoreError> {
        match self.value(column)? {
            Value::Null => Ok(None),
            Value::Integer(value) => Ok(Some(*value)),
            _ => Err(unexpected_shape(column)),
        }
    }

    fn flag(&self, column: &str) -> Result<Option<bool>, StoreError> {
        Ok(self.integer(column)?.map(|value| value != 0))
    }
}

fn classify(error: SqliteError) -> StoreError {
    match error {
        SqliteError::NoSuchDatabase => StoreError::Misconfigured(Misconfigured {
            what: "sqlite_databases",
            why: "no SQLite database named default",
        }),
        SqliteError::AccessDenied => StoreError::Misconfigured(Misconfigured {
            what: "sqlite_databases",
            why: "the component lacks sqlite_databases = [\"default\"] in spin.toml",
        }),
        SqliteError::InvalidConnection => StoreError::Unavailable("invalid SQLite connection".into()),
        SqliteError::DatabaseFull => StoreError::Unavailable("SQLite database full".into()),
        SqliteError::Io(text) if is_locked(&text) => StoreError::Unavailable(short_reason(&text)),
        SqliteError::Io(text) => StoreError::Unexpected(short_reason(&text)),
    }
}
