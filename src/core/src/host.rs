//! What a request needs from its host: variables, a database and the key-value store.
//! [`SpinHost`] is Spin; the core's unit tests use their own.

use std::cell::RefCell;

use crate::config::{Storage, Variables, NOT_GIVEN};
use crate::store::cache::KeyValue;
use crate::store::{PostgresStore, Seeder, SqliteStore, Store, StoreError};

pub trait Host: Variables {
    /// The database the configuration names, as a connection for this request; `seeder` makes
    /// the catalog's rows, should the database lack one.
    fn open_database<'a>(&self, storage: &Storage, seeder: Seeder<'a>) -> Result<Box<dyn Store + 'a>, StoreError>;
    /// The key-value store the cache lives in (Spin's `default`).
    fn key_value(&self) -> Result<Box<dyn KeyValue>, String>;
}

/// Spin: variables through `fermyon:spin/variables`, PostgreSQL through `spin:postgres`, SQLite
/// through `fermyon:spin/sqlite`, the cache through `fermyon:spin/key-value`.
#[derive(Default)]
pub struct SpinHost {
    /// Each variable is asked of the host at most once per request.
    variables: RefCell<Vec<(&'static str, Result<String, &'static str>)>>,
}

impl Variables for SpinHost {
    fn get(&self, name: &'static str) -> Result<String, &'static str> {
        if let Some((_, value)) = self.variables.borrow().iter().find(|(known, _)| *known == name) {
            return value.clone();
        }
        let value = spin_sdk::variables::get(name).map_err(|error| match error {
            // Spin saying spin.toml does not give this component the variable.
            spin_sdk::variables::Error::Undefined(_) => NOT_GIVEN,
            // A provider (e.g. Vault) that does not answer: never read as the default, which
            // for a token would open what it guards.
            _ => "its provider could not be read",
        });
        self.variables.borrow_mut().push((name, value.clone()));
        value
    }
}

impl Host for SpinHost {
    fn open_database<'a>(&self, storage: &Storage, seeder: Seeder<'a>) -> Result<Box<dyn Store + 'a>, StoreError> {
        Ok(match storage {
            Storage::Postgres { dsn } => Box::new(PostgresStore::open(dsn, seeder)?),
            Storage::Sqlite => Box::new(SqliteStore::open(seeder)?),
        })
    }

    fn key_value(&self) -> Result<Box<dyn KeyValue>, String> {
        let store = spin_sdk::key_value::Store::open_default().map_err(|error| error.to_string())?;
        Ok(Box::new(store))
    }
}
