//! PostgreSQL through Spin's `spin:postgres/postgres@4.0.0` interface.
//!
//! Spin checks a pooled connection out on `open` and prepares every statement, so each
//! extra statement costs a round trip or two: reads and writes are one statement each,
//! and the schema is only touched when a statement finds it missing.

use spin_sdk::pg4::{Connection, DbValue, ParameterValue, PgError, QueryError, RowSet};

use super::{allowed_versions, schema, settings_json, Backend, Store, StoreError, UpdateOutcome};
use crate::domain::{Integration, IntegrationId, IntegrationUpdate, Precondition, Timestamp, Version};
use crate::redact::short_reason;

const COLUMNS: &str = "id, name, description, status, settings, version, \
    (extract(epoch FROM created_at) * 1000000)::int8 AS created_us, \
    (extract(epoch FROM updated_at) * 1000000)::int8 AS updated_us";

const UNDEFINED_TABLE: &str = "42P01";

/// The statements this store sends, public so that the benchmark can drive the very same SQL
/// straight at PostgreSQL as its floor.
pub mod statements {
    use super::COLUMNS;

    pub fn list() -> String {
        format!("SELECT {COLUMNS} FROM integrations ORDER BY seq")
    }

    /// `$1`: the id.
    pub fn get() -> String {
        format!("SELECT {COLUMNS} FROM integrations WHERE id = $1")
    }

    /// One statement: the row as written (`applied`), else the row as it stands when the
    /// version did not match, else nothing when there is no such row. `$1` id, `$2` name,
    /// `$3` description, `$4` status, `$5` settings JSON, `$6` the versions If-Match allows.
    pub fn update() -> String {
        format!(
            "WITH written AS (
               UPDATE integrations SET
                 name = COALESCE($2::text, name),
                 description = COALESCE($3::text, description),
                 status = COALESCE($4::boolean, status),
                 settings = COALESCE($5::text::jsonb, settings),
                 version = version + 1,
                 updated_at = now()
               WHERE id = $1::text AND ($6::int8[] IS NULL OR version = ANY($6::int8[]))
               RETURNING *
             )
             SELECT {COLUMNS}, true AS applied FROM written
             UNION ALL
             SELECT {COLUMNS}, false AS applied FROM integrations
             WHERE id = $1::text AND NOT EXISTS (SELECT 1 FROM written)"
        )
    }
}

pub struct PostgresStore {
    connection: Connection,
}

impl PostgresStore {
    /// Checks a connection out of the host's pool for `dsn`.
    pub fn open(dsn: &str) -> Result<Self, StoreError> {
        let connection = Connection::open(dsn).map_err(classify)?;
        Ok(Self { connection })
    }

    /// Runs `statement`; if the schema is missing, creates it once and runs it again.
    fn query(&self, statement: &str, params: &[ParameterValue]) -> Result<RowSet, StoreError> {
        match self.connection.query(statement, params) {
            Err(error) if sqlstate(&error) == Some(UNDEFINED_TABLE) => {
                self.connection.execute(&schema::postgres_bootstrap(), &[]).map_err(classify)?;
                self.connection.query(statement, params).map_err(classify)
            }
            result => result.map_err(classify),
        }
    }
}

impl Store for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn list(&self) -> Result<Vec<Integration>, StoreError> {
        let rows = self.query(&statements::list(), &[])?;
        rows.rows.iter().map(|row| decode(row)).collect()
    }

    fn get(&self, id: &IntegrationId) -> Result<Option<Integration>, StoreError> {
        let rows = self.query(&statements::get(), &[ParameterValue::Str(id.to_string())])?;
        rows.rows.first().map(|row| decode(row)).transpose()
    }

    fn update(
        &self,
        id: &IntegrationId,
        update: &IntegrationUpdate,
        precondition: Option<&Precondition>,
    ) -> Result<UpdateOutcome, StoreError> {
        let statement = statements::update();
        let params = [
            ParameterValue::Str(id.to_string()),
            optional(update.name.clone(), ParameterValue::Str),
            optional(update.description.clone(), ParameterValue::Str),
            optional(update.status, ParameterValue::Boolean),
            optional(settings_json(update), ParameterValue::Str),
            optional(allowed_versions(precondition), |versions| {
                ParameterValue::ArrayInt64(versions.into_iter().map(Some).collect())
            }),
        ];
        let rows = self.query(&statement, &params)?;
        let Some(row) = rows.rows.first() else {
            return Ok(UpdateOutcome::NotFound);
        };
        match row.last() {
            Some(DbValue::Boolean(true)) => Ok(UpdateOutcome::Updated(decode(row)?)),
            Some(DbValue::Boolean(false)) => Ok(UpdateOutcome::PreconditionFailed),
            _ => Err(unexpected_shape("applied")),
        }
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.connection.query("SELECT 1", &[]).map_err(classify)?;
        Ok(())
    }
}

fn optional<T>(value: Option<T>, to_param: impl FnOnce(T) -> ParameterValue) -> ParameterValue {
    value.map_or(ParameterValue::DbNull, to_param)
}

fn decode(row: &[DbValue]) -> Result<Integration, StoreError> {
    let text = |index: usize, column| match row.get(index) {
        Some(DbValue::Str(text)) => Ok(text.clone()),
        _ => Err(unexpected_shape(column)),
    };
    let int = |index: usize, column| match row.get(index) {
        Some(DbValue::Int64(value)) => Ok(*value),
        _ => Err(unexpected_shape(column)),
    };
    let status = match row.get(3) {
        Some(DbValue::Boolean(status)) => *status,
        _ => return Err(unexpected_shape("status")),
    };
    let settings = match row.get(4) {
        Some(DbValue::Jsonb(bytes)) => serde_json::from_slice(bytes).map_err(|_| unexpected_shape("settings"))?,
        _ => return Err(unexpected_shape("settings")),
    };
    Ok(Integration {
        id: text(0, "id")?,
        name: text(1, "name")?,
        description: text(2, "description")?,
        status,
        settings,
        version: Version(int(5, "version")?),
        created_at: Timestamp(int(6, "created_at")?),
        updated_at: Timestamp(int(7, "updated_at")?),
    })
}

fn unexpected_shape(column: &str) -> StoreError {
    StoreError::Unexpected(format!("column {column} has an unexpected type"))
}

fn sqlstate(error: &PgError) -> Option<&str> {
    match error {
        PgError::QueryFailed(QueryError::DbError(db)) => Some(&db.code),
        _ => None,
    }
}

/// Sorts a host error into "the database is not there" and "something is wrong",
/// keeping only a short, secret-free reason.
fn classify(error: PgError) -> StoreError {
    match &error {
        PgError::ConnectionFailed(text) => StoreError::Unavailable(short_reason(text)),
        PgError::QueryFailed(QueryError::DbError(db)) if is_unavailability(&db.code) => {
            StoreError::Unavailable(format!("SQLSTATE {}", db.code))
        }
        PgError::QueryFailed(QueryError::DbError(db)) => {
            StoreError::Unexpected(format!("SQLSTATE {}: {}", db.code, short_reason(&db.message)))
        }
        // Without a SQLSTATE the server never answered: the connection broke.
        PgError::QueryFailed(QueryError::Text(text)) => StoreError::Unavailable(short_reason(text)),
        PgError::BadParameter(text) | PgError::ValueConversionFailed(text) | PgError::Other(text) => {
            StoreError::Unexpected(short_reason(text))
        }
    }
}

/// SQLSTATE classes that mean "try again later": connection exceptions, insufficient
/// resources, operator intervention (shutdown, recovery).
fn is_unavailability(code: &str) -> bool {
    ["08", "53", "57P"].iter().any(|class| code.starts_with(class))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_exceptions_and_shutdowns_are_unavailability() {
        for code in ["08006", "08001", "53300", "57P01", "57P03"] {
            assert!(is_unavailability(code), "{code}");
        }
        for code in ["42P01", "23505", "22P02", "42501"] {
            assert!(!is_unavailability(code), "{code}");
        }
    }

    #[test]
    fn a_refused_connection_is_reported_without_its_address() {
        let error = PgError::ConnectionFailed(
            "Error occurred while creating a new object: error connecting to server: \
             Connection refused (os error 111) postgres://app:hunter2@db.internal:5432/app"
                .into(),
        );
        let StoreError::Unavailable(reason) = classify(error) else { panic!("not unavailable") };
        assert!(!reason.contains("hunter2") && !reason.contains("db.internal"), "{reason}");
        assert!(reason.contains("refused"), "{reason}");
    }
}
