//! What a request needs from its host: variables and a database. [`SpinHost`] is the
//! real one; the core's unit tests use their own.

use crate::config::{Storage, Variables};
use crate::store::{PostgresStore, SqliteStore, Store, StoreError};

pub trait Host: Variables {
    fn open_store(&self, storage: &Storage) -> Result<Box<dyn Store>, StoreError>;
}

/// Spin: variables through `fermyon:spin/variables`, PostgreSQL through
/// `spin:postgres`, SQLite through `fermyon:spin/sqlite`.
pub struct SpinHost;

impl Variables for SpinHost {
    fn get(&self, name: &str) -> Option<String> {
        spin_sdk::variables::get(name).ok().filter(|value| !value.trim().is_empty())
    }
}

impl Host for SpinHost {
    fn open_store(&self, storage: &Storage) -> Result<Box<dyn Store>, StoreError> {
        match storage {
            Storage::Postgres { dsn } => Ok(Box::new(PostgresStore::open(dsn)?)),
            Storage::Sqlite => Ok(Box::new(SqliteStore::open()?)),
            Storage::Misconfigured { why, .. } => Err(StoreError::Misconfigured(why)),
        }
    }
}
