//! A read-through cache in Spin's key-value store, for the reads the bot runtime makes on every
//! message it handles (`GET /admin/integrations/{id}`) and for the list.
//!
//! It keeps the API's promises:
//! - **Writes always go to the database**, with the version check there, so ETags and `If-Match`
//!   stay exact; a cached entry only ever answers reads.
//! - **A writer reads its own write at once**: every write replaces a *generation* token in the
//!   store before it answers, and an entry is only used while the generation it was filled under
//!   is current. A reader fills an entry with the generation it read *before* it queried the
//!   database, so an entry filled from a read that raced a write carries the old generation and
//!   is never used after the write's token is in place.
//! - **Staleness is bounded**: an entry is used for at most `cache_ttl_ms`. Where the key-value
//!   store is shared by every replica (Redis, Valkey, Azure Cosmos DB, AWS DynamoDB in
//!   `runtime-config.toml`), every replica sees every write's generation at once, so the bound
//!   only covers changes made around the service (e.g. by hand in SQL). Where each replica has its
//!   own store (Spin's default, a SQLite file per pod), a write made through another replica is
//!   seen within `cache_ttl_ms`.
//! - **Sealed means sealed**: entries hold rows as stored, with settings still sealed.
//!
//! Any trouble with the key-value store makes the cache step aside: the request reads the
//! database as if there were no cache.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{HistoryPage, KeyUsage, ResealItem, Store, StoreError, StoredRow, StoredSettings, Write, WriteOutcome};
use crate::domain::{IntegrationId, Timestamp};

/// Replaced by every write; entries filled under another generation are not used.
const GENERATION: &str = "integrations/generation";
const LIST: &str = "integrations/list";

/// The key-value operations the cache needs: Spin's store on the host, a map in tests.
pub trait KeyValue {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), String>;
}

impl KeyValue for spin_sdk::key_value::Store {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        spin_sdk::key_value::Store::get(self, key).map_err(|error| error.to_string())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        spin_sdk::key_value::Store::set(self, key, value).map_err(|error| error.to_string())
    }
}

#[derive(Serialize, Deserialize)]
struct Entry<T> {
    generation: Option<String>,
    /// When it was filled, in milliseconds since the Unix epoch.
    filled_ms: i64,
    value: T,
}

/// A [`Store`] whose list and item reads are answered from the key-value store while fresh.
pub struct CachedStore<'a> {
    inner: Box<dyn Store + 'a>,
    kv: Box<dyn KeyValue>,
    ttl_ms: i64,
    /// Whether reads may be answered from the cache. Writes always invalidate it, whatever the
    /// request: a write made by a request that does not read the cache must still be seen.
    serve_reads: bool,
    /// Called with a short reason when the key-value store fails (the cache then steps aside).
    on_trouble: Box<dyn Fn(&str) + 'a>,
}

impl<'a> CachedStore<'a> {
    pub fn new(
        inner: Box<dyn Store + 'a>,
        kv: Box<dyn KeyValue>,
        ttl_ms: u32,
        serve_reads: bool,
        on_trouble: Box<dyn Fn(&str) + 'a>,
    ) -> Self {
        Self { inner, kv, ttl_ms: i64::from(ttl_ms), serve_reads, on_trouble }
    }

    fn read<T: Serialize + DeserializeOwned>(
        &self,
        key: &str,
        fill: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if !self.serve_reads {
            return fill();
        }
        let generation = match self.kv.get(GENERATION) {
            Ok(generation) => generation.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
            Err(reason) => {
                (self.on_trouble)(&reason);
                return fill();
            }
        };
        let now = now_ms();
        let cached = self.kv.get(key).ok().flatten().and_then(|bytes| serde_json::from_slice::<Entry<T>>(&bytes).ok());
        if let Some(entry) = cached {
            let age = now - entry.filled_ms;
            if entry.generation == generation && (0..self.ttl_ms).contains(&age) {
                return Ok(entry.value);
            }
        }
        let value = fill()?;
        let entry = Entry { generation, filled_ms: now, value };
        let bytes = serde_json::to_vec(&entry).expect("entries always serialize");
        if let Err(reason) = self.kv.set(key, &bytes) {
            (self.on_trouble)(&reason);
        }
        Ok(entry.value)
    }

    /// Makes every entry filled so far unusable. Runs after the database committed and before the
    /// response is sent.
    fn invalidate(&self) {
        let mut token = [0u8; 16];
        let token = match getrandom::fill(&mut token) {
            Ok(()) => token.iter().map(|byte| format!("{byte:02x}")).collect::<String>(),
            Err(_) => format!("{}", Timestamp::now().0),
        };
        if let Err(reason) = self.kv.set(GENERATION, token.as_bytes()) {
            (self.on_trouble)(&reason);
        }
    }
}

fn now_ms() -> i64 {
    Timestamp::now().0 / 1000
}

impl Store for CachedStore<'_> {
    fn list(&self) -> Result<Vec<StoredRow>, StoreError> {
        self.read(LIST, || self.inner.list())
    }

    fn get(&self, id: &IntegrationId) -> Result<Option<StoredRow>, StoreError> {
        self.read(&format!("integrations/item/{id}"), || self.inner.get(id))
    }

    fn write(&self, write: &Write) -> Result<WriteOutcome, StoreError> {
        let outcome = self.inner.write(write)?;
        if matches!(outcome, WriteOutcome::Written(_)) {
            self.invalidate();
        }
        Ok(outcome)
    }

    fn history(&self, id: &IntegrationId, before: Option<i64>, limit: u32) -> Result<Option<HistoryPage>, StoreError> {
        self.inner.history(id, before, limit)
    }

    fn key_usage(&self) -> Result<KeyUsage, StoreError> {
        self.inner.key_usage()
    }

    fn reseal_candidates(&self, current: &str, limit: u32) -> Result<Vec<ResealItem>, StoreError> {
        self.inner.reseal_candidates(current, limit)
    }

    fn replace_sealed(&self, item: &ResealItem, sealed: &StoredSettings) -> Result<bool, StoreError> {
        // Entries hold the old ciphertext, which may stop opening once its key leaves the ring.
        let replaced = self.inner.replace_sealed(item, sealed)?;
        if replaced {
            self.invalidate();
        }
        Ok(replaced)
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping()
    }
}

#[cfg(test)]
pub mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;

    use super::*;
    use crate::domain::{Action, Actor, WriteConditions};
    use crate::store::memory::MemoryStore;

    /// A key-value store in memory; clones share it.
    #[derive(Clone, Default)]
    pub struct MemoryKv(pub Rc<RefCell<HashMap<String, Vec<u8>>>>);

    impl KeyValue for MemoryKv {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
            Ok(self.0.borrow().get(key).cloned())
        }

        fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
            self.0.borrow_mut().insert(key.into(), value.into());
            Ok(())
        }
    }

    fn cached(db: &MemoryStore, kv: &MemoryKv, ttl_ms: u32) -> CachedStore<'static> {
        CachedStore::new(Box::new(db.clone()), Box::new(kv.clone()), ttl_ms, true, Box::new(|_| {}))
    }

    fn toggle(id: &str) -> Write {
        Write {
            id: IntegrationId::parse(id).unwrap(),
            name: None,
            description: None,
            status: Some(false),
            settings: None,
            conditions: WriteConditions::default(),
            action: Action::Update,
            restored_from: None,
            actor: Actor::default(),
            retention: 10,
        }
    }

    fn widget() -> IntegrationId {
        IntegrationId::parse("chat_widget").unwrap()
    }

    #[test]
    fn a_writer_reads_its_own_write_at_once() {
        let (db, kv) = (MemoryStore::seeded(), MemoryKv::default());
        let cache = cached(&db, &kv, 60_000);
        assert!(cache.get(&widget()).unwrap().unwrap().status);
        cache.write(&toggle("chat_widget")).unwrap();
        assert!(!cache.get(&widget()).unwrap().unwrap().status);
        assert!(!cache.list().unwrap()[1].status);
    }

    #[test]
    fn fresh_entries_answer_without_the_database() {
        let (db, kv) = (MemoryStore::seeded(), MemoryKv::default());
        let cache = cached(&db, &kv, 60_000);
        let first = cache.get(&widget()).unwrap();
        db.write(&toggle("chat_widget")).unwrap(); // around the cache, as by hand in SQL
        assert_eq!(cache.get(&widget()).unwrap(), first, "served from the cache within the TTL");
        let no_ttl = cached(&db, &kv, 0);
        assert_ne!(no_ttl.get(&widget()).unwrap(), first, "a zero TTL never serves an entry");
    }

    #[test]
    fn a_write_through_a_store_that_does_not_serve_reads_still_invalidates() {
        let (db, kv) = (MemoryStore::seeded(), MemoryKv::default());
        let reader = cached(&db, &kv, 60_000);
        assert!(reader.get(&widget()).unwrap().unwrap().status);
        let writer = CachedStore::new(Box::new(db.clone()), Box::new(kv.clone()), 60_000, false, Box::new(|_| {}));
        writer.write(&toggle("chat_widget")).unwrap();
        assert!(!reader.get(&widget()).unwrap().unwrap().status);
    }

    #[test]
    fn a_fill_that_raced_a_write_is_never_used_after_it() {
        let (db, kv) = (MemoryStore::seeded(), MemoryKv::default());
        let cache = cached(&db, &kv, 60_000);
        // A reader reads the generation, then the database; a write commits and replaces the
        // generation; then the reader's fill lands. Simulated: the fill carries the old one.
        let old_generation = kv.get(GENERATION).unwrap();
        cache.write(&toggle("chat_widget")).unwrap();
        let stale = Entry {
            generation: old_generation.map(|g| String::from_utf8(g).unwrap()),
            filled_ms: now_ms(),
            value: MemoryStore::seeded().get(&widget()).unwrap(),
        };
        kv.set("integrations/item/chat_widget", &serde_json::to_vec(&stale).unwrap()).unwrap();
        assert!(!cache.get(&widget()).unwrap().unwrap().status, "the stale fill is not used");
    }
}
