//! What a request needs from its host: variables and a database. [`SpinHost`] is the
//! real one; the core's unit tests use their own.

use crate::config::{Storage, Variables};
use crate::store::{PostgresStore, SealedSettings, SettingsKey, SqliteStore, Store, StoreError};

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
        // Parsed before connecting: a bad key is a configuration error, not an outage.
        let key = self.get("settings_encryption_key").map(|key| SettingsKey::parse(&key)).transpose()?;
        let store: Box<dyn Store> = match storage {
            Storage::Postgres { dsn } => Box::new(PostgresStore::open(dsn)?),
            Storage::Sqlite => Box::new(SqliteStore::open()?),
            Storage::Misconfigured { why, .. } => return Err(StoreError::Misconfigured(why)),
        };
        Ok(match key {
            Some(key) => Box::new(SealedSettings::new(store, key)),
            None => store,
        })
    }
}
