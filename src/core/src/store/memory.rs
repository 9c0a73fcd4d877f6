//! An in-memory [`Store`] for the core's native unit tests of HTTP behaviour. The real
//! backends are exercised end to end through the test host, against real databases.

use std::cell::RefCell;
use std::rc::Rc;

use super::{allowed_versions, Backend, Store, StoreError, UpdateOutcome};
use crate::domain::{defaults, Integration, IntegrationId, IntegrationUpdate, Precondition, Timestamp, Version};

/// Clones share their rows, as connections share a database.
#[derive(Clone)]
pub struct MemoryStore {
    rows: Rc<RefCell<Vec<Integration>>>,
}

impl MemoryStore {
    pub fn seeded() -> Self {
        let rows = defaults()
            .iter()
            .map(|seed| Integration {
                id: seed.id.into(),
                name: seed.name.into(),
                description: seed.description.into(),
                status: seed.status,
                settings: serde_json::from_str(seed.settings).unwrap(),
                created_at: Timestamp(0),
                updated_at: Timestamp(0),
                version: Version(1),
            })
            .collect();
        Self { rows: Rc::new(RefCell::new(rows)) }
    }
}

impl Store for MemoryStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn list(&self) -> Result<Vec<Integration>, StoreError> {
        Ok(self.rows.borrow().clone())
    }

    fn get(&self, id: &IntegrationId) -> Result<Option<Integration>, StoreError> {
        Ok(self.rows.borrow().iter().find(|row| row.id == id.as_str()).cloned())
    }

    fn update(
        &self,
        id: &IntegrationId,
        update: &IntegrationUpdate,
        precondition: Option<&Precondition>,
    ) -> Result<UpdateOutcome, StoreError> {
        let mut rows = self.rows.borrow_mut();
        let Some(row) = rows.iter_mut().find(|row| row.id == id.as_str()) else {
            return Ok(UpdateOutcome::NotFound);
        };
        if allowed_versions(precondition).is_some_and(|versions| !versions.contains(&row.version.0)) {
            return Ok(UpdateOutcome::PreconditionFailed);
        }
        row.name = update.name.clone().unwrap_or(row.name.clone());
        row.description = update.description.clone().unwrap_or(row.description.clone());
        row.status = update.status.unwrap_or(row.status);
        row.settings = update.settings.clone().unwrap_or(row.settings.clone());
        row.version = Version(row.version.0 + 1);
        row.updated_at = Timestamp(row.updated_at.0 + 1);
        Ok(UpdateOutcome::Updated(row.clone()))
    }

    fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
