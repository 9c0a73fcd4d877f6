//! Spin's built-in SQLite (`fermyon:spin/sqlite@2.0.0`, the `default` database): the
//! zero-setup store for `spin up` on one machine.
//!
//! SQLite is in-process, so a write is a short transaction of several statements (`BEGIN
//! IMMEDIATE` takes the write lock first) that applies the same rules as PostgreSQL's single
//! write statement, through [`super::decide`].

use spin_sdk::sqlite::{Connection, Error as SqliteError, QueryResult, Value};

use super::migrations;
use super::{
    apply, decide, names_json, unexpected_shape, version_of, Columns, HistoryPage, KeyUsage, ResealItem, Seeder, Store,
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
/// The columns of a history row, in the order of an `INSERT` (`?2` ... `?14`, `?1` the id).
const VERSION_COLUMNS: &str = "version, recorded_at, action, restored_from, name, description, status, settings, \
    settings_key, request_id, client_addr, authenticated, actor";

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
        let check = format!(
            "SELECT (SELECT max(version) FROM integrations_schema_migrations) AS schema_version, {}",
            migrations::catalog_rows()
        );
        let behind = match self.connection.execute(&check, &[]) {
            Err(SqliteError::Io(text)) if text.contains("no such table") => true,
            result => {
                let result = result.map_err(classify)?;
                let row = named(&result).next().ok_or_else(|| unexpected_shape("schema_version"))?;
                let schema_version = row.integer("schema_version")?.unwrap_or(0);
                migrations::is_behind(schema_version, row.integer("catalog_rows")?.unwrap_or(0))
            }
        };
        if behind {
            self.migrate()?;
        }
        Ok(())
    }

    /// Applies the pending migrations and seeds in one transaction. Spin opens a connection per
    /// `open`, so the transaction is ours alone; `IMMEDIATE` makes racing first requests wait.
    fn migrate(&self) -> Result<(), StoreError> {
        let seeds = (self.seeder)()?;
        // Write-ahead logging (kept in the file once set): a commit appends to the log instead of
        // rewriting pages through a rollback journal, so concurrent writers hold the lock for less
        // time, and readers never wait for a writer. It cannot change inside a transaction.
        self.execute("PRAGMA journal_mode = WAL", &[])?;
        self.transaction(|| {
            self.execute(migrations::SQLITE_MIGRATIONS_TABLE, &[])?;
            let applied =
                self.execute("SELECT coalesce(max(version), 0) AS applied FROM integrations_schema_migrations", &[])?;
            let applied = named(&applied).next().map(|row| row.integer("applied")).transpose()?.flatten().unwrap_or(0);
            for statement in migrations::sqlite_statements(applied, &seeds) {
                self.execute(&statement, &[])?;
            }
            Ok(())
        })
    }
    fn transaction<T>(&self, body: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.execute("BEGIN IMMEDIATE", &[])?;
        let result = body();
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = self.execute(end, &[]);
        let value = result?;
        ended?;
        Ok(value)
    }

    fn write_once(&self, write: &Write) -> Result<WriteOutcome, StoreError> {
        let id = Value::Text(write.id.to_string());
        let current = self.execute(&format!("SELECT {ROW} FROM integrations WHERE id = ?1"), &[id])?;
        let Some(current) = named(&current).next().map(|row| StoredRow::decode(&row)).transpose()?.flatten() else {
            return Ok(WriteOutcome::NotFound);
        };
        match decide(&current, write) {
            Verdict::PreconditionFailed => return Ok(WriteOutcome::PreconditionFailed),
            Verdict::Undeclared(names) => return Ok(WriteOutcome::UndeclaredSettings(names)),
            Verdict::Apply => {}
        }
        let row = apply(&current, write, Timestamp::now().0);
        self.execute(
            "UPDATE integrations SET name = ?2, description = ?3, status = ?4, settings = ?5, settings_key = ?6,
               settings_keys = ?7, version = ?8, updated_at = ?9
             WHERE id = ?1",
            &[
                Value::Text(row.id.clone()),
                Value::Text(row.name.clone()),
                Value::Text(row.description.clone()),
                Value::Integer(row.status.into()),
                Value::Text(row.settings.text.clone()),
                optional(row.settings.key.clone()),
                Value::Text(names_json(&row.settings_keys)),
                Value::Integer(row.version),
                Value::Integer(row.updated_at),
            ],
        )?;
        let version = version_of(&row, write);
        self.execute(
            &format!("INSERT INTO integration_history (integration_id, {VERSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
            &[
                Value::Text(row.id.clone()),
                Value::Integer(version.version),
                Value::Integer(version.recorded_at),
                Value::Text(version.provenance.action.as_str().into()),
                version.provenance.restored_from.map_or(Value::Null, Value::Integer),
                Value::Text(version.name),
                Value::Text(version.description),
                Value::Integer(version.status.into()),
                Value::Text(version.settings.text),
                optional(version.settings.key),
                optional(version.provenance.actor.request_id),
                optional(version.provenance.actor.client_addr),
                Value::Integer(version.provenance.actor.authenticated.into()),
                optional(version.provenance.actor.name),
            ],
        )?;
        self.execute(
            "DELETE FROM integration_history WHERE integration_id = ?1 AND version <= ?2",
            &[Value::Text(row.id.clone()), Value::Integer(row.version - i64::from(write.retention))],
        )?;
        Ok(WriteOutcome::Written(row))
    }
}

impl Store for SqliteStore<'_> {
    fn list(&self) -> Result<Vec<StoredRow>, StoreError> {
        self.ensure_schema()?;
        let result = self.execute(&format!("SELECT {ROW} FROM integrations ORDER BY seq"), &[])?;
        named(&result).filter_map(|row| StoredRow::decode(&row).transpose()).collect()
    }

    fn get(&self, id: &IntegrationId) -> Result<Option<StoredRow>, StoreError> {
        self.ensure_schema()?;
        let result =
            self.execute(&format!("SELECT {ROW} FROM integrations WHERE id = ?1"), &[Value::Text(id.to_string())])?;
        let row = named(&result).next();
        row.map_or(Ok(None), |row| StoredRow::decode(&row))
    }

    fn write(&self, write: &Write) -> Result<WriteOutcome, StoreError> {
        self.ensure_schema()?;
        self.transaction(|| self.write_once(write))
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

    fn reseal_candidates(&self, current: &str, limit: u32) -> Result<Vec<ResealItem>, StoreError> {
        self.ensure_schema()?;
        let result = self.execute(
            "SELECT 'live' AS tbl, id, version, settings, settings_key FROM integrations WHERE settings_key IS NOT ?1
             UNION ALL
             SELECT 'history', integration_id, version, settings, settings_key FROM integration_history
             WHERE settings_key IS NOT ?1
             LIMIT ?2",
            &[Value::Text(current.into()), Value::Integer(i64::from(limit))],
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
        SqliteError::Io(text) if text.contains("locked") || text.contains("busy") => {
            StoreError::Unavailable(short_reason(&text))
        }
        SqliteError::Io(text) => StoreError::Unexpected(short_reason(&text)),
    }
}
