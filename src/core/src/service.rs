//! What the API does, between HTTP ([`crate::api`]) and storage ([`crate::store`]): rows are
//! opened with the keyring on the way out and sealed on the way in, writes carry who made them,
//! and history versions are compared to say what changed. No HTTP here, no SQL.

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;

use serde::Serialize;

use crate::catalog;
use crate::config::{Config, Misconfigured};
use crate::domain::history::VersionState;
use crate::domain::{
    Action, Actor, HistoryEntry, Integration, IntegrationId, IntegrationUpdate, Settings, Timestamp, Unreadable,
    Version, WriteConditions,
};
use crate::host::Host;
use crate::seal::{self, Keyring};
use crate::store::cache::CachedStore;
use crate::store::{
    HistoryPage, KeyUsage, Provenance, ResealItem, Seed, SettingsWrite, Store, StoreError, StoredRow, StoredSettings,
    StoredVersion, Write, WriteOutcome,
};

/// How a request uses the read-through cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    /// Reads may be answered from it, and writes invalidate it (the admin routes that read).
    ReadsAndWrites,
    /// Reads go to the database; writes still invalidate it.
    Writes,
    /// Not at all: probes and metrics report what the database holds, and never write.
    None,
}

/// Versions read per reseal request, so one request stays short.
pub const RESEAL_BATCH: u32 = 200;

/// The outcome of a write, as the API reports it.
#[derive(Debug)]
pub enum Written {
    Integration(Integration),
    NotFound,
    PreconditionFailed,
    /// Settings keys the catalog does not declare and the stored row does not hold.
    Undeclared(Vec<String>),
}

/// A restore that could not happen, and why.
#[derive(Debug)]
pub enum RestoreError {
    /// No integration with that id.
    NotFound,
    /// The version is not (or no longer) in the history.
    VersionNotFound,
    /// The version's settings cannot be opened with the keyring.
    Unreadable(String),
}

/// A page of history.
#[derive(Debug, Serialize)]
pub struct HistoryList {
    pub versions: Vec<HistoryEntry>,
    /// Pass as `before` for the next (older) page; `None` on the last page.
    pub next_before: Option<i64>,
}

/// Which keys seal how many rows.
#[derive(Debug, Serialize)]
pub struct KeyReport {
    /// The key writes seal with; `None` without a keyring (settings are stored plain).
    pub current: Option<String>,
    pub keys: Vec<String>,
    pub live: Vec<KeyCount>,
    pub history: Vec<KeyCount>,
    /// Rows (live and history) not stored as a write would store them now: sealed with another
    /// key, or plain while a keyring is set.
    pub on_old_keys: i64,
}

#[derive(Debug, Serialize)]
pub struct KeyCount {
    /// `None`: plain JSON.
    pub key: Option<String>,
    pub rows: i64,
}

#[derive(Debug, Serialize)]
pub struct ResealReport {
    pub resealed: u32,
    /// Rows that could not be opened (their key is not in the ring) and so stay as they are.
    pub unreadable: u32,
    /// Rows still not on the current key, unreadable ones included; `None` when the batch was cut
    /// short by the database (what was re-sealed stays re-sealed: call again).
    pub remaining: Option<i64>,
}

/// The service for one request. What it needs from the host is asked for when first needed: a
/// fresh cache entry of a plain row needs neither the database nor the keyring.
pub struct Service<'a> {
    store: Box<dyn Store + 'a>,
    keyring: Rc<Keys<'a>>,
}

/// The keyring, parsed from `settings_keyring` when first needed.
struct Keys<'a> {
    config: Config<'a>,
    parsed: OnceCell<Result<Option<Keyring>, Misconfigured>>,
}

impl Keys<'_> {
    fn get(&self) -> Result<Option<&Keyring>, StoreError> {
        let parsed = self.parsed.get_or_init(|| self.config.settings_keyring());
        Ok(parsed.as_ref().map_err(|misconfigured| *misconfigured)?.as_ref())
    }

    /// Opens stored settings: the settings, or why this row cannot be opened. A keyring that
    /// does not parse is an error of the whole request (only sealed rows need it).
    fn open(&self, id: &str, stored: &StoredSettings) -> Result<Result<Settings, Unreadable>, StoreError> {
        let keyring = if stored.key.is_some() { self.get()? } else { None };
        Ok(seal::open(keyring, id, stored))
    }
}

impl<'a> Service<'a> {
    /// Opens what the request needs, lazily: the database is only reached when an answer needs
    /// it (a fresh cache entry does not). `on_cache_trouble` hears of key-value store failures.
    pub fn open(
        host: &'a dyn Host,
        cache: CacheUse,
        on_cache_trouble: Box<dyn Fn(&str) + 'a>,
    ) -> Result<Self, Misconfigured> {
        let config = Config(host);
        let keyring = Rc::new(Keys { config, parsed: OnceCell::new() });
        let seeding = Rc::clone(&keyring);
        let open = move || {
            let keyring = Rc::clone(&seeding);
            host.open_database(&config.storage()?, Box::new(move || seeds(keyring.get()?)))
        };
        let database: Box<dyn Store + 'a> = Box::new(Lazy { open: Box::new(open), store: RefCell::new(None) });
        let ttl_ms = if cache == CacheUse::None { 0 } else { config.cache_ttl_ms()? };
        let store: Box<dyn Store + 'a> = if ttl_ms == 0 {
            database
        } else {
            match host.key_value() {
                Ok(kv) => {
                    let serve_reads = cache == CacheUse::ReadsAndWrites;
                    Box::new(CachedStore::new(database, kv, ttl_ms, serve_reads, on_cache_trouble))
                }
                Err(reason) => {
                    on_cache_trouble(&reason);
                    database
                }
            }
        };
        Ok(Self { store, keyring })
    }

    pub fn list(&self) -> Result<Vec<Integration>, StoreError> {
        self.store.list()?.into_iter().map(|row| self.integration(row)).collect()
    }

    pub fn get(&self, id: &IntegrationId) -> Result<Option<Integration>, StoreError> {
        self.store.get(id)?.map(|row| self.integration(row)).transpose()
    }

    pub fn update(
        &self,
        id: &IntegrationId,
        update: IntegrationUpdate,
        conditions: WriteConditions,
        actor: Actor,
        retention: u32,
    ) -> Result<Written, StoreError> {
        let settings = match update.settings {
            Some(settings) => Some(SettingsWrite {
                stored: seal::store(self.keyring.get()?, id.as_str(), &settings.values)?,
                keys: settings.values.keys().cloned().collect(),
                undeclared: settings.undeclared,
            }),
            None => None,
        };
        let write = Write {
            id: id.clone(),
            name: update.name,
            description: update.description,
            status: update.status,
            settings,
            conditions,
            provenance: Provenance { action: Action::Update, restored_from: None, actor },
            retention,
        };
        self.write(&write)
    }

    fn write(&self, write: &Write) -> Result<Written, StoreError> {
        Ok(match self.store.write(write)? {
            WriteOutcome::Written(row) => Written::Integration(self.integration(row)?),
            WriteOutcome::NotFound => Written::NotFound,
            WriteOutcome::PreconditionFailed => Written::PreconditionFailed,
            WriteOutcome::UndeclaredSettings(names) => Written::Undeclared(names),
        })
    }

    /// Versions older than `before` (newest first), `limit` of them; `None` when the integration
    /// does not exist.
    pub fn history(
        &self,
        id: &IntegrationId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Option<HistoryList>, StoreError> {
        let Some(page) = self.store.history(id, before, limit)? else { return Ok(None) };
        let more = page.versions.len() > limit as usize;
        let versions = self.entries(id, &page, limit)?;
        let next_before = more.then(|| versions.last().map(|entry| entry.version)).flatten();
        Ok(Some(HistoryList { versions, next_before }))
    }

    /// One version; `Ok(None)` when the integration does not exist, `Ok(Some(None))` when the
    /// version is not kept.
    pub fn version(&self, id: &IntegrationId, version: i64) -> Result<Option<Option<HistoryEntry>>, StoreError> {
        let Some(page) = self.store.history(id, version.checked_add(1), 1)? else { return Ok(None) };
        Ok(Some(self.entries(id, &page, 1)?.into_iter().next().filter(|entry| entry.version == version)))
    }

    /// Writes version `version`'s fields as a new version, sealed with the current key.
    pub fn restore(
        &self,
        id: &IntegrationId,
        version: i64,
        conditions: WriteConditions,
        actor: Actor,
        retention: u32,
    ) -> Result<Result<Written, RestoreError>, StoreError> {
        let Some(page) = self.store.history(id, version.checked_add(1), 1)? else {
            return Ok(Err(RestoreError::NotFound));
        };
        let Some(stored) = page.versions.into_iter().next().filter(|stored| stored.version == version) else {
            return Ok(Err(RestoreError::VersionNotFound));
        };
        let settings = match self.keyring.open(id.as_str(), &stored.settings)? {
            Ok(settings) => settings,
            Err(Unreadable(why)) => return Ok(Err(RestoreError::Unreadable(why))),
        };
        let write = Write {
            id: id.clone(),
            name: Some(stored.name),
            description: Some(stored.description),
            status: Some(stored.status),
            settings: Some(SettingsWrite {
                stored: seal::store(self.keyring.get()?, id.as_str(), &settings)?,
                keys: settings.keys().cloned().collect(),
                // They were accepted when that version was written.
                undeclared: Vec::new(),
            }),
            conditions,
            provenance: Provenance { action: Action::Restore, restored_from: Some(version), actor },
            retention,
        };
        self.write(&write).map(Ok)
    }

    pub fn key_report(&self) -> Result<KeyReport, StoreError> {
        let usage = self.store.key_usage()?;
        Ok(report(self.keyring.get()?, &usage))
    }
    /// Moves up to [`RESEAL_BATCH`] rows onto the current key; `None` without a keyring.
    pub fn reseal(&self) -> Result<Option<ResealReport>, StoreError> {
        let Some(keyring) = self.keyring.get()? else { return Ok(None) };
        let (mut resealed, mut unreadable) = (0, 0);
        // Rows the ring may open come first: rows on a key no longer in the ring are counted as
        // unreadable, and must not fill every batch (a batch of them re-sealed nothing, batch after
        // batch, while readable rows on an old key waited behind them).
        let openable: Vec<&str> = keyring.ids().chain([seal::LEGACY_FIELDS]).collect();
        for item in self.store.reseal_candidates(keyring.current_id(), &openable, RESEAL_BATCH)? {
            let Ok(settings) = seal::open(Some(keyring), &item.id, &item.settings) else {
                unreadable += 1;
                continue;
            };
            let sealed = keyring.seal(&item.id, &settings)?;
            // A row written meanwhile is already on the current key. Each row is its own commit:
            // once one is in, trouble ends the batch with a report, never an error, so an error
            // answer always means nothing changed.
            match self.store.replace_sealed(&item, &sealed) {
                Ok(true) => resealed += 1,
                Ok(false) => {}
                Err(error) if resealed == 0 => return Err(error),
                Err(_) => return Ok(Some(ResealReport { resealed, unreadable, remaining: None })),
            }
        }
        let remaining = self.store.key_usage().ok().map(|usage| report(Some(keyring), &usage).on_old_keys);
        Ok(Some(ResealReport { resealed, unreadable, remaining }))
    }

    /// Whether the database answers (and its schema is up to date).
    pub fn ping(&self) -> Result<(), StoreError> {
        self.store.ping()
    }

    fn integration(&self, row: StoredRow) -> Result<Integration, StoreError> {
        let settings = self.keyring.open(&row.id, &row.settings)?;
        Ok(Integration {
            settings_error: settings.as_ref().err().map(|Unreadable(why)| why.clone()),
            settings,
            id: row.id,
            name: row.name,
            description: row.description,
            status: row.status,
            created_at: Timestamp(row.created_at),
            updated_at: Timestamp(row.updated_at),
            version: Version(row.version),
        })
    }

    fn state(&self, id: &IntegrationId, stored: &StoredVersion) -> Result<VersionState, StoreError> {
        Ok(VersionState {
            name: stored.name.clone(),
            description: stored.description.clone(),
            status: stored.status,
            settings: self.keyring.open(id.as_str(), &stored.settings)?,
        })
    }

    /// The first `limit` versions of the page as entries (the page holds one more, when there is
    /// one, for the last entry's changes).
    fn entries(&self, id: &IntegrationId, page: &HistoryPage, limit: u32) -> Result<Vec<HistoryEntry>, StoreError> {
        let states: Vec<VersionState> =
            page.versions.iter().map(|stored| self.state(id, stored)).collect::<Result<_, _>>()?;
        Ok(page
            .versions
            .iter()
            .zip(&states)
            .enumerate()
            .take(limit as usize)
            .map(|(index, (stored, state))| {
                let previous = page.versions.get(index + 1).filter(|previous| previous.version == stored.version - 1);
                HistoryEntry {
                    version: stored.version,
                    recorded_at: Timestamp(stored.recorded_at),
                    action: stored.provenance.action,
                    restored_from: stored.provenance.restored_from,
                    actor: stored.provenance.actor.clone(),
                    changes: previous.map(|_| state.changes_since(&states[index + 1], id.as_str())),
                    integration: state.snapshot(id.as_str()),
                }
            })
            .collect())
    }
}

/// The catalog's rows as this deployment stores them: their default settings, sealed with the
/// current key when there is a keyring, so that a keyed deployment has no plain row from its
/// first request on.
fn seeds(keyring: Option<&Keyring>) -> Result<Vec<Seed>, StoreError> {
    let seed = |entry: &'static catalog::IntegrationType| {
        Ok(Seed { entry, settings: seal::store(keyring, entry.id, &entry.default_settings())? })
    };
    catalog::CATALOG.iter().map(seed).collect()
}

/// Which keys seal how many rows, for the keyring `keyring`.
fn report(keyring: Option<&Keyring>, usage: &KeyUsage) -> KeyReport {
    let current = keyring.map(|ring| ring.current_id().to_owned());
    let counts = |entries: &[(Option<String>, i64)]| {
        entries.iter().map(|(key, rows)| KeyCount { key: key.clone(), rows: *rows }).collect::<Vec<_>>()
    };
    let on_old_keys =
        usage.live.iter().chain(&usage.history).filter(|(key, _)| *key != current).map(|(_, rows)| rows).sum();
    KeyReport {
        keys: keyring.iter().flat_map(|ring| ring.ids().map(str::to_owned)).collect(),
        current,
        live: counts(&usage.live),
        history: counts(&usage.history),
        on_old_keys,
    }
}

/// The database, opened on first use.
struct Lazy<'a> {
    open: Box<dyn Fn() -> Result<Box<dyn Store + 'a>, StoreError> + 'a>,
    store: RefCell<Option<Rc<dyn Store + 'a>>>,
}

impl<'a> Lazy<'a> {
    fn store(&self) -> Result<Rc<dyn Store + 'a>, StoreError> {
        if let Some(store) = self.store.borrow().as_ref() {
            return Ok(Rc::clone(store));
        }
        let store: Rc<dyn Store + 'a> = Rc::from((self.open)()?);
        *self.store.borrow_mut() = Some(Rc::clone(&store));
        Ok(store)
    }
}

impl Store for Lazy<'_> {
    fn list(&self) -> Result<Vec<StoredRow>, StoreError> {
        self.store()?.list()
    }

    fn get(&self, id: &IntegrationId) -> Result<Option<StoredRow>, StoreError> {
        self.store()?.get(id)
    }

    fn write(&self, write: &Write) -> Result<WriteOutcome, StoreError> {
        self.store()?.write(write)
    }

    fn history(&self, id: &IntegrationId, before: Option<i64>, limit: u32) -> Result<Option<HistoryPage>, StoreError> {
        self.store()?.history(id, before, limit)
    }

    fn key_usage(&self) -> Result<KeyUsage, StoreError> {
        self.store()?.key_usage()
    }

    fn reseal_candidates(&self, current: &str, openable: &[&str], limit: u32) -> Result<Vec<ResealItem>, StoreError> {
        self.store()?.reseal_candidates(current, openable, limit)
    }

    fn replace_sealed(&self, item: &ResealItem, sealed: &StoredSettings) -> Result<bool, StoreError> {
        self.store()?.replace_sealed(item, sealed)
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.store()?.ping()
    }

    fn close(&self) {
        self.store.borrow_mut().take();
    }
}
