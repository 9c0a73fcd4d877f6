//! Spin's built-in SQLite (`fermyon:spin/sqlite@2.0.0`, the `default` database): the
//! zero-setup store for `spin up` on one machine.

use spin_sdk::sqlite::{Connection, Error as SqliteError, QueryResult, Value};

use super::{allowed_versions, schema, settings_json, Backend, Store, StoreError, UpdateOutcome};
use crate::domain::{Integration, IntegrationId, IntegrationUpdate, Precondition, Timestamp, Version};
use crate::redact::short_reason;

const COLUMNS: &str = "id, name, description, status, settings, version, created_at, updated_at";

pub struct SqliteStore {
    connection: Connection,
}

impl SqliteStore {
    pub fn open() -> Result<Self, StoreError> {
        let connection = Connection::open_default().map_err(classify)?;
        Ok(Self { connection })
    }

    fn execute(&self, statement: &str, params: &[Value]) -> Result<QueryResult, StoreError> {
        match self.connection.execute(statement, params) {
            Err(SqliteError::Io(text)) if text.contains("no such table") => {
                self.bootstrap()?;
                self.connection.execute(statement, params).map_err(classify)
            }
            result => result.map_err(classify),
        }
    }

    /// Creates the schema and seeds the defaults. Spin opens a connection per `open`,
    /// so this transaction is ours alone; `IMMEDIATE` makes racing first requests wait.
    fn bootstrap(&self) -> Result<(), StoreError> {
        self.connection.execute("BEGIN IMMEDIATE", &[]).map_err(classify)?;
        let created = schema::sqlite_bootstrap()
            .iter()
            .try_for_each(|statement| self.connection.execute(statement, &[]).map(drop));
        let end = if created.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = self.connection.execute(end, &[]);
        created.and(ended.map(drop)).map_err(classify)
    }
}

impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn list(&self) -> Result<Vec<Integration>, StoreError> {
        let result = self.execute(&format!("SELECT {COLUMNS} FROM integrations ORDER BY seq"), &[])?;
        result.rows.iter().map(|row| decode(&row.values)).collect()
    }

    fn get(&self, id: &IntegrationId) -> Result<Option<Integration>, StoreError> {
        let result =
            self.execute(&format!("SELECT {COLUMNS} FROM integrations WHERE id = ?1"), &[Value::Text(id.to_string())])?;
        result.rows.first().map(|row| decode(&row.values)).transpose()
    }

    fn update(
        &self,
        id: &IntegrationId,
        update: &IntegrationUpdate,
        precondition: Option<&Precondition>,
    ) -> Result<UpdateOutcome, StoreError> {
        let versions = allowed_versions(precondition);
        let params = [
            Value::Text(id.to_string()),
            optional(update.name.clone(), Value::Text),
            optional(update.description.clone(), Value::Text),
            optional(update.status, |status| Value::Integer(status.into())),
            optional(settings_json(update), Value::Text),
            optional(versions.as_ref(), |versions| Value::Text(serde_json::json!(versions).to_string())),
            Value::Integer(Timestamp::now().0),
        ];
        let written = self.execute(
            &format!(
                "UPDATE integrations SET
                   name = COALESCE(?2, name),
                   description = COALESCE(?3, description),
                   status = COALESCE(?4, status),
                   settings = COALESCE(?5, settings),
                   version = version + 1,
                   updated_at = ?7
                 WHERE id = ?1 AND (?6 IS NULL OR version IN (SELECT value FROM json_each(?6)))
                 RETURNING {COLUMNS}"
            ),
            &params,
        )?;
        if let Some(row) = written.rows.first() {
            return Ok(UpdateOutcome::Updated(decode(&row.values)?));
        }
        if versions.is_none() {
            return Ok(UpdateOutcome::NotFound);
        }
        let exists = self.execute("SELECT 1 FROM integrations WHERE id = ?1", &params[..1])?;
        Ok(if exists.rows.is_empty() { UpdateOutcome::NotFound } else { UpdateOutcome::PreconditionFailed })
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.connection.execute("SELECT 1", &[]).map_err(classify)?;
        Ok(())
    }
}

fn optional<T>(value: Option<T>, to_value: impl FnOnce(T) -> Value) -> Value {
    value.map_or(Value::Null, to_value)
}

fn decode(row: &[Value]) -> Result<Integration, StoreError> {
    let text = |index: usize, column| match row.get(index) {
        Some(Value::Text(text)) => Ok(text.clone()),
        _ => Err(unexpected_shape(column)),
    };
    let int = |index: usize, column| match row.get(index) {
        Some(Value::Integer(value)) => Ok(*value),
        _ => Err(unexpected_shape(column)),
    };
    let settings = serde_json::from_str(&text(4, "settings")?).map_err(|_| unexpected_shape("settings"))?;
    Ok(Integration {
        id: text(0, "id")?,
        name: text(1, "name")?,
        description: text(2, "description")?,
        status: int(3, "status")? != 0,
        settings,
        version: Version(int(5, "version")?),
        created_at: Timestamp(int(6, "created_at")?),
        updated_at: Timestamp(int(7, "updated_at")?),
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
