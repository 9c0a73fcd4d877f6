//! Where integrations live: PostgreSQL through `spin:postgres`, or Spin's SQLite.
//!
//! Both backends keep the same contract: one statement per read or write on the hot
//! path, the schema created and the defaults seeded on first use, and every failure to
//! reach the database reported as [`StoreError::Unavailable`] with a short reason that
//! never carries a DSN, a password or a stored value.

#[cfg(test)]
pub mod memory;
mod postgres;
mod schema;
mod sealed;
mod sqlite;

use std::fmt;

use crate::domain::{Integration, IntegrationId, IntegrationUpdate, Precondition};

pub use postgres::{statements as postgres_statements, PostgresStore};
pub use sealed::{SealedSettings, SettingsKey};
pub use sqlite::SqliteStore;

/// The storage a request talks to.
pub trait Store {
    fn backend(&self) -> Backend;
    /// Every integration, in creation order.
    fn list(&self) -> Result<Vec<Integration>, StoreError>;
    fn get(&self, id: &IntegrationId) -> Result<Option<Integration>, StoreError>;
    /// Writes the fields `update` holds, if the row exists and meets `precondition`.
    fn update(
        &self,
        id: &IntegrationId,
        update: &IntegrationUpdate,
        precondition: Option<&Precondition>,
    ) -> Result<UpdateOutcome, StoreError>;
    /// A trivial round trip, for readiness.
    fn ping(&self) -> Result<(), StoreError>;
}

#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOutcome {
    Updated(Integration),
    NotFound,
    /// The row exists, but its version is not one the `If-Match` named.
    PreconditionFailed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

/// Why the store could not answer. The text is for operators' logs: short, and free of
/// secrets. Clients only ever see "Database unavailable".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The configuration does not name a usable database (e.g. `db_backend = postgres`
    /// without a `db_dsn`).
    Misconfigured(&'static str),
    /// The database could not be reached or did not answer.
    Unavailable(String),
    /// The database answered with something this code did not expect.
    Unexpected(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Misconfigured(why) => write!(f, "storage misconfigured: {why}"),
            Self::Unavailable(why) => write!(f, "database unavailable: {why}"),
            Self::Unexpected(why) => write!(f, "unexpected database response: {why}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// `If-Match` as the versions a write may overwrite; `None` when any version will do.
fn allowed_versions(precondition: Option<&Precondition>) -> Option<Vec<i64>> {
    match precondition? {
        Precondition::Exists => None,
        Precondition::OneOf(versions) => Some(versions.iter().map(|v| v.0).collect()),
    }
}

/// The settings object as JSON text, as both backends store it.
fn settings_json(update: &IntegrationUpdate) -> Option<String> {
    let to_json = |settings| serde_json::to_string(settings).expect("a JSON object always serializes");
    update.settings.as_ref().map(to_json)
}
