//! Spin's built-in SQLite (`fermyon:spin/sqlite@2.0.0`, the `default` database): the
//! zero-setup store for `spin up` on one machine.
//!
//! SQLite is in-process, so a write is a short transaction of several statements (`BEGIN
//! IMMEDIATE` takes the write lock first) that applies the same rules as PostgreSQL's single
//! write statement, through [`super::decide`].

use spin_sdk::sqlite::{Connection, Error as SqliteError, QueryResult, Value};

use super::migrations::{self, LATEST};
use super::{
    apply, decide, names_json, parse_names, version_of, HistoryPage, KeyUsage, ResealItem, Store, StoreError,
    StoredRow, StoredSettings, StoredVersion, Table, Verdict, Write, WriteOutcome,
};
use crate::domain::{Action, Actor, IntegrationId, Timestamp};
use crate::redact::short_reason;

const ROW: &str =
    "id, name, description, status, settings, settings_key, settings_keys, version, created_at, updated_at";
const VERSION: &str = "version, recorded_at, action, restored_from, name, description, status, settings, \
    settings_key, request_id, client_addr, authenticated";
const SCHEMA: &str = "(SELECT max(version) FROM integrations_schema_migrations)";

pub struct SqliteStore {
    connection: Connection,
}

impl SqliteStore {
    pub fn open() -> Result<Self, StoreError> {
        let connection = Connection::open_default().map_err(classify)?;
        Ok(Self { connection })
    }

    fn execute(&self, statement: &str, params: &[Value]) -> Result<QueryResult, StoreError> {
        self.connection.execute(statement, params).map_err(classify)
    }

    /// Migrates the schema when it is missing or behind. SQLite is in-process, so this check is a
    /// statement of its own (a function call, not a round trip).
    fn ensure_schema(&self) -> Result<(), StoreError> {
        let applied = match self.connection.execute(&format!("SELECT {SCHEMA}"), &[]) {
            Err(SqliteError::Io(text)) if text.contains("no such table") => 0,
            result => {
                result.map_err(classify)?.rows.first().and_then(|row| row.values.first()).and_then(integer).unwrap_or(0)
            }
        };
        if applied < LATEST {
            self.migrate()?;
        }
        Ok(())
    }

    /// Applies the pending migrations in one transaction. Spin opens a connection per `open`,
    /// so the transaction is ours alone; `IMMEDIATE` makes racing first requests wait.
    fn migrate(&self) -> Result<(), StoreError> {
        // Write-ahead logging (kept in the file once set): a commit appends to the log instead of
        // rewriting pages through a rollback journal, so concurrent writers hold the lock for less
        // time, and readers never wait for a writer. It cannot change inside a transaction.
        self.execute("PRAGMA journal_mode = WAL", &[])?;
        self.transaction(|| {
            self.execute(migrations::SQLITE_MIGRATIONS_TABLE, &[])?;
            let applied = self.execute("SELECT coalesce(max(version), 0) FROM integrations_schema_migrations", &[])?;
            let applied = applied.rows.first().and_then(|row| row.values.first()).and_then(integer).unwrap_or(0);
            for statement in migrations::sqlite_statements(applied) {
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
        let Some(current) = current.rows.first().map(|row| decode_row(&row.values)).transpose()? else {
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
            &format!("INSERT INTO integration_history (integration_id, {VERSION}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
            &[
                Value::Text(row.id.clone()),
                Value::Integer(version.version),
                Value::Integer(version.recorded_at),
                Value::Text(version.action.as_str().into()),
                version.restored_from.map_or(Value::Null, Value::Integer),
                Value::Text(version.name),
                Value::Text(version.description),
                Value::Integer(version.status.into()),
                Value::Text(version.settings.text),
                optional(version.settings.key),
                optional(version.actor.request_id),
                optional(version.actor.client_addr),
                Value::Integer(version.actor.authenticated.into()),
            ],
        )?;
        self.execute(
            "DELETE FROM integration_history WHERE integration_id = ?1 AND version <= ?2",
            &[Value::Text(row.id.clone()), Value::Integer(row.version - i64::from(write.retention))],
        )?;
        Ok(WriteOutcome::Written(row))
    }
}

impl Store for SqliteStore {
    fn list(&self) -> Result<Vec<StoredRow>, StoreError> {
        self.ensure_schema()?;
        let result = self.execute(&format!("SELECT {ROW} FROM integrations ORDER BY seq"), &[])?;
        result.rows.iter().map(|row| decode_row(&row.values)).collect()
    }

    fn get(&self, id: &IntegrationId) -> Result<Option<StoredRow>, StoreError> {
        self.ensure_schema()?;
        let result =
            self.execute(&format!("SELECT {ROW} FROM integrations WHERE id = ?1"), &[Value::Text(id.to_string())])?;
        result.rows.first().map(|row| decode_row(&row.values)).transpose()
    }

    fn write(&self, write: &Write) -> Result<WriteOutcome, StoreError> {
        self.ensure_schema()?;
        self.transaction(|| self.write_once(write))
    }

    fn history(&self, id: &IntegrationId, before: Option<i64>, limit: u32) -> Result<Option<HistoryPage>, StoreError> {
        self.ensure_schema()?;
        let found = self.execute("SELECT count(*) FROM integrations WHERE id = ?1", &[Value::Text(id.to_string())])?;
        if found.rows.first().and_then(|row| row.values.first()).and_then(integer).unwrap_or(0) == 0 {
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
        let versions = result.rows.iter().map(|row| decode_version(&row.values)).collect::<Result<_, _>>()?;
        Ok(Some(HistoryPage { versions }))
    }

    fn key_usage(&self) -> Result<KeyUsage, StoreError> {
        self.ensure_schema()?;
        let count = |table: &str| -> Result<Vec<(Option<String>, i64)>, StoreError> {
            let result =
                self.execute(&format!("SELECT settings_key, count(*) FROM {table} GROUP BY settings_key"), &[])?;
            result
                .rows
                .iter()
                .map(|row| Ok((optional_text(&row.values[0], "settings_key")?, integer(&row.values[1]).unwrap_or(0))))
                .collect()
        };
        Ok(KeyUsage { live: count("integrations")?, history: count("integration_history")? })
    }

    fn reseal_candidates(&self, current: &str, limit: u32) -> Result<Vec<ResealItem>, StoreError> {
        self.ensure_schema()?;
        let result = self.execute(
            "SELECT 'live', id, version, settings, settings_key FROM integrations WHERE settings_key IS NOT ?1
             UNION ALL
             SELECT 'history', integration_id, version, settings, settings_key FROM integration_history
             WHERE settings_key IS NOT ?1
             LIMIT ?2",
            &[Value::Text(current.into()), Value::Integer(i64::from(limit))],
        )?;
        result
            .rows
            .iter()
            .map(|row| {
                let values = &row.values;
                Ok(ResealItem {
                    table: if text(&values[0], "table")? == "live" { Table::Live } else { Table::History },
                    id: text(&values[1], "id")?,
                    version: integer(&values[2]).ok_or_else(|| unexpected_shape("version"))?,
                    settings: StoredSettings {
                        text: text(&values[3], "settings")?,
                        key: optional_text(&values[4], "settings_key")?,
                    },
                })
            })
            .collect()
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

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(value) => Some(*value),
        _ => None,
    }
}

fn text(value: &Value, column: &str) -> Result<String, StoreError> {
    match value {
        Value::Text(text) => Ok(text.clone()),
        _ => Err(unexpected_shape(column)),
    }
}

fn optional_text(value: &Value, column: &str) -> Result<Option<String>, StoreError> {
    match value {
        Value::Null => Ok(None),
        other => text(other, column).map(Some),
    }
}

fn decode_row(row: &[Value]) -> Result<StoredRow, StoreError> {
    let int = |index: usize, column| integer(&row[index]).ok_or_else(|| unexpected_shape(column));
    Ok(StoredRow {
        id: text(&row[0], "id")?,
        name: text(&row[1], "name")?,
        description: text(&row[2], "description")?,
        status: int(3, "status")? != 0,
        settings: StoredSettings { text: text(&row[4], "settings")?, key: optional_text(&row[5], "settings_key")? },
        settings_keys: parse_names(&text(&row[6], "settings_keys")?)?,
        version: int(7, "version")?,
        created_at: int(8, "created_at")?,
        updated_at: int(9, "updated_at")?,
    })
}

fn decode_version(row: &[Value]) -> Result<StoredVersion, StoreError> {
    let int = |index: usize, column| integer(&row[index]).ok_or_else(|| unexpected_shape(column));
    Ok(StoredVersion {
        version: int(0, "version")?,
        recorded_at: int(1, "recorded_at")?,
        action: Action::parse(&text(&row[2], "action")?).ok_or_else(|| unexpected_shape("action"))?,
        restored_from: integer(&row[3]),
        name: text(&row[4], "name")?,
        description: text(&row[5], "description")?,
        status: int(6, "status")? != 0,
        settings: StoredSettings { text: text(&row[7], "settings")?, key: optional_text(&row[8], "settings_key")? },
        actor: Actor {
            request_id: optional_text(&row[9], "request_id")?,
            client_addr: optional_text(&row[10], "client_addr")?,
            authenticated: int(11, "authenticated")? != 0,
        },
    })
}

fn unexpected_shape(column: &str) -> StoreError {
    StoreError::Unexpected(format!("column {column} has an unexpected type"))
}

fn classify(error: SqliteError) -> StoreError {
    match error {
        SqliteError::NoSuchDatabase => StoreError::Misconfigured("no SQLite database named \"default\""),
        SqliteError::AccessDenied => {
            StoreError::Misconfigured("component lacks sqlite_databases = [\"default\"] in spin.toml")
        }
        SqliteError::InvalidConnection => StoreError::Unavailable("invalid SQLite connection".into()),
        SqliteError::DatabaseFull => StoreError::Unavailable("SQLite database full".into()),
        SqliteError::Io(text) if text.contains("locked") || text.contains("busy") => {
            StoreError::Unavailable(short_reason(&text))
        }
        SqliteError::Io(text) => StoreError::Unexpected(short_reason(&text)),
    }
}
