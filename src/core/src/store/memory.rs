//! An in-memory [`Store`] for the core's native unit tests of HTTP behaviour, applying the same
//! write rules as SQLite. The real backends are exercised end to end under real Spin.

use std::cell::RefCell;
use std::rc::Rc;

use super::{
    apply, decide, version_of, HistoryPage, KeyUsage, Provenance, ResealItem, Seed, Store, StoreError, StoredRow,
    StoredSettings, StoredVersion, Table, Verdict, Write, WriteOutcome,
};
use crate::catalog::{IntegrationType, CATALOG};
use crate::domain::{Action, Actor, IntegrationId};

#[derive(Default)]
struct Tables {
    rows: Vec<StoredRow>,
    history: Vec<(String, StoredVersion)>,
}

/// Clones share their tables, as connections share a database.
#[derive(Clone)]
pub struct MemoryStore {
    tables: Rc<RefCell<Tables>>,
}

impl MemoryStore {
    /// A database no request has reached yet: no row at all.
    pub fn empty() -> Self {
        Self { tables: Rc::new(RefCell::new(Tables::default())) }
    }

    /// The catalog's integrations in plain, each with its seed version in the history.
    pub fn seeded() -> Self {
        let store = Self::empty();
        let plain = |entry: &'static IntegrationType| Seed {
            entry,
            settings: StoredSettings::plain(&entry.default_settings()),
        };
        store.seed(CATALOG.iter().map(plain).collect());
        store
    }

    /// Whether a catalog row is missing, as the real stores' statements tell.
    pub fn lacks_a_seed(&self) -> bool {
        let tables = self.tables.borrow();
        CATALOG.iter().any(|entry| !tables.rows.iter().any(|row| row.id == entry.id))
    }

    /// Inserts the seeds whose row is missing, as the real stores' seeding does.
    pub fn seed(&self, seeds: Vec<Seed>) {
        let mut tables = self.tables.borrow_mut();
        for Seed { entry, settings } in seeds {
            if tables.rows.iter().any(|row| row.id == entry.id) {
                continue;
            }
            let row = StoredRow {
                id: entry.id.into(),
                name: entry.name.into(),
                description: entry.description.into(),
                status: entry.default_status,
                settings,
                settings_keys: entry.default_settings().keys().cloned().collect(),
                version: 1,
                created_at: 0,
                updated_at: 0,
            };
            let seed = StoredVersion {
                version: 1,
                recorded_at: 0,
                provenance: Provenance { action: Action::Seed, restored_from: None, actor: Actor::default() },
                name: row.name.clone(),
                description: row.description.clone(),
                status: row.status,
                settings: row.settings.clone(),
            };
            tables.history.push((row.id.clone(), seed));
            tables.rows.push(row);
        }
    }

    /// Replaces a row as stored, for tests that need a particular state at rest.
    pub fn put_row(&self, row: StoredRow) {
        let mut tables = self.tables.borrow_mut();
        match tables.rows.iter_mut().find(|stored| stored.id == row.id) {
            Some(stored) => *stored = row,
            None => tables.rows.push(row),
        }
    }
}

impl Store for MemoryStore {
    fn list(&self) -> Result<Vec<StoredRow>, StoreError> {
        Ok(self.tables.borrow().rows.clone())
    }

    fn get(&self, id: &IntegrationId) -> Result<Option<StoredRow>, StoreError> {
        Ok(self.tables.borrow().rows.iter().find(|row| row.id == id.as_str()).cloned())
    }

    fn write(&self, write: &Write) -> Result<WriteOutcome, StoreError> {
        let mut tables = self.tables.borrow_mut();
        let Some(index) = tables.rows.iter().position(|row| row.id == write.id.as_str()) else {
            return Ok(WriteOutcome::NotFound);
        };
        match decide(&tables.rows[index], write) {
            Verdict::PreconditionFailed => return Ok(WriteOutcome::PreconditionFailed),
            Verdict::Undeclared(names) => return Ok(WriteOutcome::UndeclaredSettings(names)),
            Verdict::Apply => {}
        }
        let now = tables.rows[index].updated_at + 1;
        let row = apply(&tables.rows[index], write, now);
        tables.rows[index] = row.clone();
        tables.history.push((row.id.clone(), version_of(&row, write)));
        let oldest_kept = row.version - i64::from(write.retention);
        tables.history.retain(|(id, version)| id != &row.id || version.version > oldest_kept);
        Ok(WriteOutcome::Written(row))
    }

    fn history(&self, id: &IntegrationId, before: Option<i64>, limit: u32) -> Result<Option<HistoryPage>, StoreError> {
        let tables = self.tables.borrow();
        if !tables.rows.iter().any(|row| row.id == id.as_str()) {
            return Ok(None);
        }
        let mut versions: Vec<StoredVersion> = tables
            .history
            .iter()
            .filter(|(of, version)| of == id.as_str() && version.version < before.unwrap_or(i64::MAX))
            .map(|(_, version)| version.clone())
            .collect();
        versions.sort_by_key(|version| std::cmp::Reverse(version.version));
        versions.truncate(limit as usize + 1);
        Ok(Some(HistoryPage { versions }))
    }

    fn key_usage(&self) -> Result<KeyUsage, StoreError> {
        let tables = self.tables.borrow();
        let count = |keys: Vec<Option<String>>| {
            let mut counts: Vec<(Option<String>, i64)> = Vec::new();
            for key in keys {
                match counts.iter_mut().find(|(known, _)| *known == key) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((key, 1)),
                }
            }
            counts
        };
        Ok(KeyUsage {
            live: count(tables.rows.iter().map(|row| row.settings.key.clone()).collect()),
            history: count(tables.history.iter().map(|(_, version)| version.settings.key.clone()).collect()),
        })
    }

    fn reseal_candidates(&self, current: &str, openable: &[&str], limit: u32) -> Result<Vec<ResealItem>, StoreError> {
        let tables = self.tables.borrow();
        let live = tables.rows.iter().map(|row| ResealItem {
            table: Table::Live,
            id: row.id.clone(),
            version: row.version,
            settings: row.settings.clone(),
        });
        let history = tables.history.iter().map(|(id, version)| ResealItem {
            table: Table::History,
            id: id.clone(),
            version: version.version,
            settings: version.settings.clone(),
        });
        let mut candidates: Vec<ResealItem> =
            live.chain(history).filter(|item| item.settings.key.as_deref() != Some(current)).collect();
        // A stable sort: the rows the ring may open first, each group in table order.
        candidates.sort_by_key(|item| item.settings.key.as_deref().is_some_and(|key| !openable.contains(&key)));
        candidates.truncate(limit as usize);
        Ok(candidates)
    }

    fn replace_sealed(&self, item: &ResealItem, sealed: &StoredSettings) -> Result<bool, StoreError> {
        let mut tables = self.tables.borrow_mut();
        let slot = match item.table {
            Table::Live => tables.rows.iter_mut().find(|row| row.id == item.id).map(|row| &mut row.settings),
            Table::History => tables
                .history
                .iter_mut()
                .find(|(id, version)| *id == item.id && version.version == item.version)
                .map(|(_, version)| &mut version.settings),
        };
        Ok(match slot {
            Some(settings) if *settings == item.settings => {
                *settings = sealed.clone();
                true
            }
            _ => false,
        })
    }

    fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
