//! A read-through cache in Spin's key-value store, for the reads the bot runtime makes on every
//! message it handles (`GET /admin/integrations/{id}`) and for the list.
//!
//! It keeps the API's promises:
//! - **Writes always go to the database**, with the version check there, so ETags and `If-Match`
//!   stay exact; a cached entry only ever answers reads.
//! - **A writer reads its own write at once**: an entry is only used while the *generation* token
//!   it was filled under is current, and a write replaces the token, if it must, before it
//!   answers. A reader fills an entry with the generation it saw *before* it queried the
//!   database, so an entry filled from a read that raced a write carries a token the write has
//!   replaced, and is never used after it. Tokens are random and never come back.
//! - **A write costs a key-value write only if a read was cached since the last one**: a token is
//!   *idle* (named `idle-...`) until a reader fills an entry under it; a reader that finds an idle
//!   token (or none) replaces it with a *used* one before it queries the database, and a write
//!   replaces a used token with an idle one. A write that finds the token idle has nothing to
//!   invalidate: every entry was filled under a token replaced since, and a reader that is filling
//!   one now set its used token after this read of it, so read the database after the write's
//!   commit. A burst of writes with no read between them (an import, a re-seal, the benchmark's
//!   PUTs) then reads one key per write and writes none. That matters with Spin's default store
//!   (no runtime config): a SQLite file that flushes every write to disk under a lock which every
//!   cache read also takes, where replacing the token on every write halved PUT throughput.
//! - **The previous release beside this one** (a rolling upgrade on a shared store): release
//!   0.3.0 keeps the same token by the same rules and its entries in the same format, so a write
//!   through either makes both releases' entries unusable. (0.3.0 also replaced the token on a
//!   PostgreSQL write while its own previous release, 0.2.0, whose readers fill under idle tokens
//!   too, had filled an entry lately: two more key-value reads per write, contracted in 0.4.0. A
//!   fleet of 0.2.0 upgrades through 0.3.0.)
//! - **Staleness is bounded**: an entry is used for at most `cache_ttl_ms`. Where the key-value
//!   store is shared by every replica (Redis, Valkey, Azure Cosmos DB, AWS DynamoDB in
//!   `runtime-config.toml`), every replica sees every write's generation at once, so the bound
//!   only covers changes made around the service (e.g. by hand in SQL). Where each replica has its
//!   own store (Spin's default, a SQLite file per pod), a write made through another replica is
//!   seen within `cache_ttl_ms`.
//! - **Sealed means sealed**: entries hold rows as stored, with settings still sealed.
//!
//! An entry is refreshed a little before it expires, by one reader picked at random (the
//! "probabilistic early expiration" of Vattani, Chierichetti and Lowenstein, *Optimal
//! Probabilistic Cache Stampede Prevention*, VLDB 2015): the closer to expiry and the slower the
//! read that filled it, the likelier a reader is to refresh it. Without it, every reader that
//! arrives in the moment an entry expires queries the database at once; at 64 connections that
//! stampede, once per `cache_ttl_ms`, was the p99 of the cached read (167-220 ms against 62-67 ms
//! with entries that never expire, under Spin 4.1 on PostgreSQL).
//!
//! Any trouble with the key-value store makes the cache step aside: the request reads the
//! database as if there were no cache.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{HistoryPage, KeyUsage, ResealItem, Store, StoreError, StoredRow, StoredSettings, Write, WriteOutcome};
use crate::domain::{IntegrationId, Timestamp};

/// The generation token: entries filled under another are not used. Every release reads and
/// replaces this same key, so that a write through any release's replica makes every release's
/// entries unusable during a rolling update. An idle token is told by [`IDLE`].
const GENERATION: &str = "integrations/generation";
/// The prefix of a token no entry was filled under yet.
const IDLE: &str = "idle-";
/// The format of the entries ([`Entry`] and the value it holds, as JSON), named in their keys:
/// releases sharing one store (a rolling update on a shared Redis) then never read each other's
/// entries, whatever either changed. Format 1 is release 0.2.0's (`integrations/list`,
/// `integrations/item/{id}`). Change it with the entries' bytes: a unit test pins them.
const ENTRY_FORMAT: u32 = 2;

fn list_key() -> String {
    format!("integrations/cache-format-{ENTRY_FORMAT}/list")
}

fn item_key(id: &str) -> String {
    format!("integrations/cache-format-{ENTRY_FORMAT}/item/{id}")
}

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
    /// How long the read that filled it took, in microseconds (absent in entries of older releases).
    #[serde(default)]
    cost_us: i64,
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
        let generation = match self.generation() {
            Ok(generation) => generation,
            Err(reason) => {
                (self.on_trouble)(&reason);
                return fill();
            }
        };
        let started_us = Timestamp::now().0;
        let now = started_us / 1000;
        if let Some(generation) = generation.as_deref().filter(|token| !is_idle(token)) {
            let cached =
                self.kv.get(key).ok().flatten().and_then(|bytes| serde_json::from_slice::<Entry<T>>(&bytes).ok());
            if let Some(entry) = cached {
                let age_ms = now - entry.filled_ms;
                if entry.generation.as_deref() == Some(generation)
                    && (0..self.ttl_ms).contains(&age_ms)
                    && !refresh_early(age_ms, entry.cost_us, self.ttl_ms, uniform)
                {
                    return Ok(entry.value);
                }
            }
        }
        // A fill: under a used token, set before the database is read if there is none yet.
        let generation = match generation {
            Some(token) if !is_idle(&token) => token,
            Some(_) | None => {
                let token = new_token("");
                if let Err(reason) = self.kv.set(GENERATION, token.as_bytes()) {
                    (self.on_trouble)(&reason);
                    return fill();
                }
                token
            }
        };
        let value = fill()?;
        self.inner.close(); // before the entry is stored, as after a write
        let cost_us = Timestamp::now().0 - started_us;
        let entry = Entry { generation: Some(generation), filled_ms: now, cost_us, value };
        let bytes = serde_json::to_vec(&entry).expect("entries always serialize");
        if let Err(reason) = self.kv.set(key, &bytes) {
            (self.on_trouble)(&reason);
        }
        Ok(entry.value)
    }

    fn generation(&self) -> Result<Option<String>, String> {
        Ok(self.kv.get(GENERATION)?.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Makes every entry filled so far unusable, after a write. Runs after the database committed
    /// and before the response is sent.
    fn invalidate(&self) {
        if self.must_replace() {
            self.replace();
        }
    }

    /// Whether an entry may be in use, or being filled, under the current token: it is used, or
    /// the store failed to say.
    fn must_replace(&self) -> bool {
        match self.generation() {
            Ok(Some(token)) => !is_idle(&token),
            Ok(None) => false,
            Err(reason) => {
                (self.on_trouble)(&reason);
                true
            }
        }
    }

    /// Replaces the token by an idle one.
    fn replace(&self) {
        if let Err(reason) = self.kv.set(GENERATION, new_token(IDLE).as_bytes()) {
            (self.on_trouble)(&reason);
        }
    }
}

fn is_idle(token: &str) -> bool {
    token.starts_with(IDLE)
}

/// A fresh random token (128 bits, in hex) after `prefix`.
fn new_token(prefix: &str) -> String {
    let mut token = [0u8; 16];
    let random = match getrandom::fill(&mut token) {
        Ok(()) => token.iter().map(|byte| format!("{byte:02x}")).collect::<String>(),
        Err(_) => format!("{}", Timestamp::now().0),
    };
    format!("{prefix}{random}")
}

/// Whether a reader should refresh an entry of `age_ms` that took `cost_us` to fill, given `u`
/// drawn uniformly from (0, 1]: the XFetch rule `age - cost * ln(u) >= ttl`. `-ln(u)` is
/// exponentially distributed with mean 1, so a reader refreshes early about when the entry has
/// less than its own fill time left, rarely much sooner; an entry that filled instantly is only
/// refreshed when it expires. `u` is only drawn where it can matter: [`uniform`] never gives
/// less than 2^-53, so the head start is at most `cost * 53 ln 2`, and most hits draw nothing.
fn refresh_early(age_ms: i64, cost_us: i64, ttl_ms: i64, u: impl FnOnce() -> f64) -> bool {
    const MAX_LOG_FACTOR: f64 = 53.0 * std::f64::consts::LN_2;
    let cost_ms = cost_us.max(0) as f64 / 1000.0;
    let (age_ms, ttl_ms) = (age_ms as f64, ttl_ms as f64);
    age_ms + cost_ms * MAX_LOG_FACTOR >= ttl_ms && age_ms + cost_ms * -u().ln() >= ttl_ms
}

/// A number drawn uniformly from (0, 1]. Without randomness (never on Spin) it is 1: no early
/// refresh, which is the plain TTL.
fn uniform() -> f64 {
    let Ok(bits) = getrandom::u64() else { return 1.0 };
    // The top 53 bits, as many as an f64 holds exactly, shifted off zero.
    ((bits >> 11) + 1) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
fn now_ms() -> i64 {
    Timestamp::now().0 / 1000
}

impl Store for CachedStore<'_> {
    fn list(&self) -> Result<Vec<StoredRow>, StoreError> {
        self.read(&list_key(), || self.inner.list())
    }

    fn get(&self, id: &IntegrationId) -> Result<Option<StoredRow>, StoreError> {
        self.read(&item_key(id.as_str()), || self.inner.get(id))
    }

    fn write(&self, write: &Write) -> Result<WriteOutcome, StoreError> {
        // The request is done with the database: let go of its connection before the key-value
        // calls. A SQLite connection held open across them tripled the p99 of a PUT at 64
        // concurrent writers on the SQLite default (145-171 ms closed first, 300-450 ms held; wrk,
        // Spin 3.6.3): Spin runs each key-value call in `block_in_place`, and the writers waiting
        // for SQLite's lock wait on a connection that is still open. On PostgreSQL it goes back to
        // Spin's pool sooner.
        let outcome = self.inner.write(write);
        self.inner.close();
        match &outcome {
            Ok(WriteOutcome::Written(_)) => self.invalidate(),
            // The database may have committed the write and then failed to say so (the connection
            // cut after the commit, a written row that did not decode): the client is told the
            // write failed, but it may be there, and an entry from before it must not hide it.
            // Only failed writes pay this.
            Err(StoreError::Unavailable(_) | StoreError::Unexpected(_)) => self.invalidate(),
            Ok(WriteOutcome::NotFound | WriteOutcome::PreconditionFailed | WriteOutcome::UndeclaredSettings(_))
            | Err(StoreError::Misconfigured(_)) => {}
        }
        outcome
    }

    fn history(&self, id: &IntegrationId, before: Option<i64>, limit: u32) -> Result<Option<HistoryPage>, StoreError> {
        self.inner.history(id, before, limit)
    }

    fn key_usage(&self) -> Result<KeyUsage, StoreError> {
        self.inner.key_usage()
    }

    fn reseal_candidates(&self, current: &str, openable: &[&str], limit: u32) -> Result<Vec<ResealItem>, StoreError> {
        self.inner.reseal_candidates(current, openable, limit)
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
    use crate::store::Provenance;

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
            provenance: Provenance { action: Action::Update, restored_from: None, actor: Actor::default() },
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

    /// A key-value store that runs `hook(step)` before each of its operations, counting them.
    struct HookedKv {
        kv: MemoryKv,
        step: Rc<std::cell::Cell<usize>>,
        hook: Rc<dyn Fn(usize)>,
    }

    impl HookedKv {
        fn tick(&self) {
            let step = self.step.get();
            self.step.set(step + 1);
            (self.hook)(step);
        }
    }

    impl KeyValue for HookedKv {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
            self.tick();
            self.kv.get(key)
        }

        fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
            self.tick();
            self.kv.set(key, value)
        }
    }

    #[test]
    fn a_fill_that_raced_a_write_is_never_used_after_it_whatever_the_interleaving() {
        // One reader fills an entry, step by step: the token, the entry or a new token, the
        // database, the entry stored (4 steps, 5 places a step of the writer can go). The writer
        // commits, reads the token, and replaces it if it must: 3 steps, each in any place, in
        // order. Once both are done, a read must see the write. The reader starts from each state
        // a token can be in: none, idle (a write since the last fill), used (filled since).
        for start in ["none", "idle", "used"] {
            let mut places = 0;
            for commit in 0..5 {
                for check in commit..5 {
                    for replace in check..5 {
                        let (db, kv) = (MemoryStore::seeded(), MemoryKv::default());
                        let plain = cached(&db, &kv, 60_000);
                        match start {
                            "none" => {}
                            "idle" => {
                                plain.get(&widget()).unwrap();
                                plain.replace();
                            }
                            _ => drop(plain.get(&widget()).unwrap()),
                        }
                        let must = Rc::new(std::cell::Cell::new(false));
                        let writer = {
                            let (db, kv, must) = (db.clone(), kv.clone(), must.clone());
                            move |step: usize| {
                                let writer = cached(&db, &kv, 60_000);
                                if step == commit {
                                    db.write(&toggle("chat_widget")).unwrap();
                                }
                                if step == check {
                                    must.set(writer.must_replace());
                                }
                                if step == replace && must.get() {
                                    writer.replace();
                                }
                            }
                        };
                        let writer: Rc<dyn Fn(usize)> = Rc::new(writer);
                        let step = Rc::new(std::cell::Cell::new(0));
                        let hooked = HookedKv { kv: kv.clone(), step: step.clone(), hook: writer.clone() };
                        let reader =
                            CachedStore::new(Box::new(db.clone()), Box::new(hooked), 60_000, true, Box::new(|_| {}));
                        reader
                            .read(&item_key("chat_widget"), || {
                                // The database read is a step too.
                                let now = step.get();
                                step.set(now + 1);
                                writer(now);
                                db.get(&widget())
                            })
                            .unwrap();
                        for rest in step.get()..5 {
                            writer(rest);
                        }
                        let after = plain.get(&widget()).unwrap().unwrap();
                        assert!(!after.status, "from {start}: commit {commit}, check {check}, replace {replace}");
                        places += 1;
                    }
                }
            }
            assert_eq!(places, 35);
        }
    }

    /// A store that logs its calls, in order, into the log a [`LoggedKv`] shares. With
    /// `fails_after_commit`, a write is committed and then answered with an error, as when the
    /// connection is cut between the commit and the result.
    struct LoggedStore(MemoryStore, Rc<RefCell<Vec<&'static str>>>, bool);

    impl Store for LoggedStore {
        fn list(&self) -> Result<Vec<StoredRow>, StoreError> {
            self.1.borrow_mut().push("database");
            self.0.list()
        }
        fn get(&self, id: &IntegrationId) -> Result<Option<StoredRow>, StoreError> {
            self.1.borrow_mut().push("database");
            self.0.get(id)
        }
        fn write(&self, write: &Write) -> Result<WriteOutcome, StoreError> {
            self.1.borrow_mut().push("database");
            let outcome = self.0.write(write)?;
            match self.2 {
                true => Err(StoreError::Unavailable("connection closed".into())),
                false => Ok(outcome),
            }
        }
        fn history(
            &self,
            id: &IntegrationId,
            before: Option<i64>,
            limit: u32,
        ) -> Result<Option<HistoryPage>, StoreError> {
            self.0.history(id, before, limit)
        }
        fn key_usage(&self) -> Result<KeyUsage, StoreError> {
            self.0.key_usage()
        }
        fn reseal_candidates(
            &self,
            current: &str,
            openable: &[&str],
            limit: u32,
        ) -> Result<Vec<ResealItem>, StoreError> {
            self.0.reseal_candidates(current, openable, limit)
        }
        fn replace_sealed(&self, item: &ResealItem, sealed: &StoredSettings) -> Result<bool, StoreError> {
            self.0.replace_sealed(item, sealed)
        }
        fn ping(&self) -> Result<(), StoreError> {
            self.0.ping()
        }
        fn close(&self) {
            self.1.borrow_mut().push("close");
        }
    }

    struct LoggedKv(MemoryKv, Rc<RefCell<Vec<&'static str>>>);

    impl KeyValue for LoggedKv {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
            self.1.borrow_mut().push("kv");
            self.0.get(key)
        }
        fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
            self.1.borrow_mut().push("kv");
            self.0.set(key, value)
        }
    }

    #[test]
    fn the_database_connection_is_let_go_before_the_key_value_calls_that_follow_it() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let (db, kv) = (MemoryStore::seeded(), MemoryKv::default());
        let logged = || {
            let store = LoggedStore(db.clone(), log.clone(), false);
            CachedStore::new(
                Box::new(store),
                Box::new(LoggedKv(kv.clone(), log.clone())),
                60_000,
                true,
                Box::new(|_| {}),
            )
        };
        logged().get(&widget()).unwrap(); // a fill: the token, then a used token, the database, the entry
        logged().write(&toggle("chat_widget")).unwrap();
        let log = log.borrow();
        assert_eq!(log[..5], ["kv", "kv", "database", "close", "kv"], "{log:?}");
        assert_eq!(log[5..8], ["database", "close", "kv"], "{log:?}");
    }

    #[test]
    fn a_write_that_may_have_committed_before_it_failed_is_not_hidden_by_the_cache() {
        let (db, kv) = (MemoryStore::seeded(), MemoryKv::default());
        let cache = cached(&db, &kv, 60_000);
        assert!(cache.get(&widget()).unwrap().unwrap().status, "an entry filled under a used token");
        let failing = CachedStore::new(
            Box::new(LoggedStore(db.clone(), Rc::default(), true)),
            Box::new(kv.clone()),
            60_000,
            true,
            Box::new(|_| {}),
        );
        assert!(matches!(failing.write(&toggle("chat_widget")), Err(StoreError::Unavailable(_))));
        assert!(!cache.get(&widget()).unwrap().unwrap().status, "the committed write, not the entry from before it");
    }

    #[test]
    fn writes_with_no_cached_read_since_the_last_write_leave_the_store_alone() {
        let (db, kv) = (MemoryStore::seeded(), MemoryKv::default());
        let cache = cached(&db, &kv, 60_000);
        let token = || String::from_utf8(kv.get(GENERATION).unwrap().unwrap()).unwrap();
        cache.write(&toggle("chat_widget")).unwrap();
        assert_eq!(kv.get(GENERATION).unwrap(), None, "nothing was ever cached: nothing to do");
        cache.get(&widget()).unwrap();
        let used = token();
        assert!(!is_idle(&used));
        cache.write(&toggle("chat_widget")).unwrap();
        let idle = token();
        assert!(is_idle(&idle) && idle != used, "{idle}");
        for _ in 0..3 {
            cache.write(&toggle("chat_widget")).unwrap();
        }
        assert_eq!(token(), idle, "no read since: the token stays");
        cache.list().unwrap();
        assert!(!is_idle(&token()));
        cache.write(&toggle("chat_widget")).unwrap();
        assert!(is_idle(&token()) && token() != idle);
    }

    #[test]
    fn readers_refresh_early_only_near_expiry_and_in_proportion_to_the_fill_cost() {
        // An entry that filled in 10 ms, 1 s TTL: a typical draw (u = 1/e, -ln u = 1) refreshes
        // once 10 ms or less remain; an unlucky one (u = e^-5) from 50 ms before expiry.
        let typical = (-1.0f64).exp();
        assert!(!refresh_early(980, 10_000, 1_000, || typical));
        assert!(refresh_early(990, 10_000, 1_000, || typical));
        assert!(!refresh_early(940, 10_000, 1_000, || (-5.0f64).exp()));
        assert!(refresh_early(950, 10_000, 1_000, || (-5.0f64).exp()));
        // u = 1 never refreshes before expiry; neither does an instant fill or an old entry
        // without a recorded cost (cost 0).
        assert!(!refresh_early(999, 10_000, 1_000, || 1.0));
        assert!(!refresh_early(999, 0, 1_000, || f64::MIN_POSITIVE));
        // Out of 10,000 readers of an entry 800 ms old (200 ms left, 10 ms fill), about e^-20 of
        // them refresh: none. At 995 ms (5 ms left), about e^-0.5 = 61 %.
        let draws: Vec<f64> = (0..10_000).map(|_| uniform()).collect();
        assert!(draws.iter().all(|u| *u > 0.0 && *u <= 1.0));
        let share = |age| draws.iter().filter(|u| refresh_early(age, 10_000, 1_000, || **u)).count() as f64 / 1e4;
        assert_eq!(share(800), 0.0);
        assert!((0.55..0.67).contains(&share(995)), "{}", share(995));
    }

    #[test]
    fn an_entry_near_expiry_is_refreshed_by_a_reader_with_the_fill_cost_recorded() {
        let (db, kv) = (MemoryStore::seeded(), MemoryKv::default());
        let cache = cached(&db, &kv, 60_000);
        cache.get(&widget()).unwrap();
        let key = &item_key(widget().as_str());
        let mut entry: Entry<Option<StoredRow>> = serde_json::from_slice(&kv.get(key).unwrap().unwrap()).unwrap();
        assert!(entry.cost_us >= 0);
        // Filled 59.9 s ago by a read that took an hour: any reader now refreshes it.
        entry.filled_ms = now_ms() - 59_900;
        entry.cost_us = 3_600_000_000;
        kv.set(key, &serde_json::to_vec(&entry).unwrap()).unwrap();
        db.write(&toggle("chat_widget")).unwrap(); // around the cache
        assert!(!cache.get(&widget()).unwrap().unwrap().status, "refreshed from the database");
        let refilled: Entry<Option<StoredRow>> = serde_json::from_slice(&kv.get(key).unwrap().unwrap()).unwrap();
        assert!(now_ms() - refilled.filled_ms < 59_900);
    }

    #[test]
    fn entries_of_the_previous_release_without_a_cost_are_still_used() {
        let (db, kv) = (MemoryStore::seeded(), MemoryKv::default());
        let cache = cached(&db, &kv, 60_000);
        cache.list().unwrap(); // a used token
        let generation = kv.get(GENERATION).unwrap().map(|g| String::from_utf8(g).unwrap());
        let old = serde_json::json!({
            "generation": generation,
            "filled_ms": now_ms(),
            "value": MemoryStore::seeded().get(&widget()).unwrap(),
        });
        kv.set(&item_key(widget().as_str()), &serde_json::to_vec(&old).unwrap()).unwrap();
        db.write(&toggle("chat_widget")).unwrap(); // around the cache
        assert!(cache.get(&widget()).unwrap().unwrap().status, "served from the old entry");
    }

    #[test]
    fn entries_are_stored_in_the_format_their_keys_name() {
        // Fails when what an entry is stored as changes: then bump ENTRY_FORMAT (a release still
        // running beside this one would misread the new bytes, or this one its old ones) and pin
        // the new bytes here.
        let row = StoredRow {
            id: "chat_widget".into(),
            name: "Chat".into(),
            description: "d".into(),
            status: true,
            settings: StoredSettings { text: "{}".into(), key: None },
            settings_keys: vec!["greeting".into()],
            version: 3,
            created_at: 1,
            updated_at: 2,
        };
        let entry = Entry { generation: Some("g".into()), filled_ms: 4, cost_us: 5, value: Some(row) };
        assert_eq!(
            (ENTRY_FORMAT, serde_json::to_string(&entry).unwrap()),
            (
                2,
                r#"{"generation":"g","filled_ms":4,"cost_us":5,"value":{"id":"chat_widget","name":"Chat","description":"d","status":true,"settings":{"text":"{}","key":null},"settings_keys":["greeting"],"version":3,"created_at":1,"updated_at":2}}"#
                    .to_owned()
            )
        );
        assert_eq!(item_key(widget().as_str()), "integrations/cache-format-2/item/chat_widget");
        assert_eq!(list_key(), "integrations/cache-format-2/list");
    }
}
