//! Where integrations live: PostgreSQL through `spin:postgres`, or Spin's SQLite, optionally
//! behind a read-through cache in Spin's key-value store.
//!
//! Both databases keep the same contract:
//! - rows are stored exactly: settings as JSON text (every string and digit as sent), or as one
//!   sealed ciphertext with the id of the key that sealed it;
//! - every write is one atomic step that checks the preconditions, writes the row, records the
//!   version in the history, and prunes the history to its retention;
//! - the schema is brought up to date by versioned migrations (`migrations`) when a statement
//!   finds it missing or behind;
//! - every failure to reach the database is [`StoreError::Unavailable`] with a short reason that
//!   never carries a DSN, a password or a stored value.
//!
//! Nothing here knows HTTP; nothing here opens sealed settings (see `crate::seal`).

pub mod cache;
#[cfg(test)]
pub mod memory;
pub mod migrations;
mod postgres;
mod sqlite;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::Misconfigured;
use crate::domain::{Action, Actor, IntegrationId, Settings, WriteConditions};

pub use migrations::Seed;
pub use postgres::{statements as postgres_statements, PostgresStore};
pub use sqlite::{statements as sqlite_statements, SqliteStore};

/// Makes the catalog's rows as this deployment stores them (sealed when a keyring is set): asked
/// for only when a database lacks one of them, or its schema is behind.
pub type Seeder<'a> = Box<dyn Fn() -> Result<Vec<Seed>, StoreError> + 'a>;

/// Settings as stored: plain JSON text (`key: None`), or a ciphertext and the id of the key
/// that sealed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSettings {
    pub text: String,
    pub key: Option<String>,
}

impl StoredSettings {
    pub fn plain(settings: &Settings) -> Self {
        Self { text: serde_json::to_string(settings).expect("settings always serialize"), key: None }
    }
}

/// A row of `integrations`, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub status: bool,
    pub settings: StoredSettings,
    /// The top-level names in `settings`, kept in plain beside a sealed value so that a write
    /// can tell a key already stored from a new one without opening the row.
    pub settings_keys: Vec<String>,
    pub version: i64,
    /// Microseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
}

/// A row of the history: the integration as one write left it, and how that write was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    pub version: i64,
    pub recorded_at: i64,
    pub provenance: Provenance,
    pub name: String,
    pub description: String,
    pub status: bool,
    pub settings: StoredSettings,
}

/// What the history records of a write besides the integration: what made it, and who.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    pub action: Action,
    /// The version a restore wrote again.
    pub restored_from: Option<i64>,
    pub actor: Actor,
}

/// One write: the fields to change (`None` keeps the stored value), its preconditions, and
/// what the history records of it.
#[derive(Debug, Clone)]
pub struct Write {
    pub id: IntegrationId,
    pub name: Option<String>,
    pub description: Option<String>,
    pub status: Option<bool>,
    pub settings: Option<SettingsWrite>,
    pub conditions: WriteConditions,
    pub provenance: Provenance,
    /// Versions kept per integration in the history, this write's included.
    pub retention: u32,
}

/// New settings, ready to store.
#[derive(Debug, Clone)]
pub struct SettingsWrite {
    pub stored: StoredSettings,
    pub keys: Vec<String>,
    /// Names the catalog does not declare: the write happens only if the stored row holds them.
    pub undeclared: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    Written(StoredRow),
    NotFound,
    /// The row's version does not meet `If-Match` / `If-None-Match`.
    PreconditionFailed,
    /// These undeclared settings keys are not in the stored row.
    UndeclaredSettings(Vec<String>),
}

/// A page of history, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// Up to the limit asked for, newest first, and then, when there is one, the version before
    /// the last of them (for its changes; not part of the page).
    pub versions: Vec<StoredVersion>,
}

/// How many rows each key id sealed (`None`: plain), live and in the history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeyUsage {
    pub live: Vec<(Option<String>, i64)>,
    pub history: Vec<(Option<String>, i64)>,
}

/// A row whose settings are not sealed with the current key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResealItem {
    pub table: Table,
    pub id: String,
    pub version: i64,
    pub settings: StoredSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Live,
    History,
}

impl Table {
    /// The `tbl` column of the statements that read both tables.
    fn parse(name: &str) -> Result<Self, StoreError> {
        match name {
            "live" => Ok(Self::Live),
            "history" => Ok(Self::History),
            _ => Err(unexpected_shape("tbl")),
        }
    }
}

/// The storage a request talks to.
pub trait Store {
    /// Every integration, in creation order.
    fn list(&self) -> Result<Vec<StoredRow>, StoreError>;
    fn get(&self, id: &IntegrationId) -> Result<Option<StoredRow>, StoreError>;
    /// Checks and writes in one atomic step.
    fn write(&self, write: &Write) -> Result<WriteOutcome, StoreError>;
    /// Up to `limit` versions older than `before` (all when `None`), plus the one before the last
    /// of them; `None` when the integration does not exist.
    fn history(&self, id: &IntegrationId, before: Option<i64>, limit: u32) -> Result<Option<HistoryPage>, StoreError>;
    fn key_usage(&self) -> Result<KeyUsage, StoreError>;
    /// Up to `limit` rows (live and history) not sealed with the key `current`: first those that
    /// are plain or sealed with a key id in `openable`, so that rows no key of the ring opens
    /// (left behind by a key removed too early) never fill every batch and keep the rest from
    /// being re-sealed.
    fn reseal_candidates(&self, current: &str, openable: &[&str], limit: u32) -> Result<Vec<ResealItem>, StoreError>;
    /// Replaces the settings of `item` with `sealed`, unless they changed since they were read;
    /// the version and the history stay as they are (the content is the same).
    fn replace_sealed(&self, item: &ResealItem, sealed: &StoredSettings) -> Result<bool, StoreError>;
    /// A round trip that also brings the schema up to date, for readiness.
    fn ping(&self) -> Result<(), StoreError>;
    /// Lets go of the database connection, if one is open; a later call opens another. The cache
    /// calls it before it talks to the key-value store (see `cache::CachedStore::write`).
    fn close(&self) {}
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

/// Why the store could not answer, tagged by who is to blame. The text is for operators' logs:
/// short, and free of secrets. Clients see "Database unavailable", "Internal Server Error" or
/// which variable is misconfigured, never the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The configuration cannot be used: a variable the store needs (the keyring, to seal the
    /// seeds), or what spin.toml gives the component.
    Misconfigured(Misconfigured),
    /// The database could not be reached or did not answer.
    Unavailable(String),
    /// The database answered with something this code did not expect.
    Unexpected(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Misconfigured(misconfigured) => write!(f, "misconfigured: {misconfigured}"),
            Self::Unavailable(why) => write!(f, "database unavailable: {why}"),
            Self::Unexpected(why) => write!(f, "unexpected database response: {why}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<Misconfigured> for StoreError {
    fn from(misconfigured: Misconfigured) -> Self {
        Self::Misconfigured(misconfigured)
    }
}

/// What a write does to `current`, by the rules PostgreSQL's write statement encodes in SQL;
/// SQLite applies them here to the row it read, and writes only if that row is still current (a
/// write that [`applies_to_any_row`] needs no read at all), as does the in-memory test store.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Apply,
    PreconditionFailed,
    Undeclared(Vec<String>),
}

fn decide(current: &StoredRow, write: &Write) -> Verdict {
    if !write.conditions.allow(crate::domain::Version(current.version)) {
        return Verdict::PreconditionFailed;
    }
    let missing: Vec<String> = write
        .settings
        .iter()
        .flat_map(|settings| &settings.undeclared)
        .filter(|name| !current.settings_keys.contains(name))
        .cloned()
        .collect();
    if missing.is_empty() {
        Verdict::Apply
    } else {
        Verdict::Undeclared(missing)
    }
}

/// Whether [`decide`] says `Apply` to `write` on any row: no precondition names a version
/// (`If-Match: *` only asks that the row exists) and no undeclared setting needs the stored
/// row's keys. Such a write can be applied to the row as it is when the write runs, unread.
fn applies_to_any_row(write: &Write) -> bool {
    matches!(write.conditions.if_match, None | Some(crate::domain::Precondition::Exists))
        && write.conditions.if_none_match.is_none()
        && write.settings.iter().all(|settings| settings.undeclared.is_empty())
}

/// `current` with `write` applied, as the new version. The databases do this in SQL (PostgreSQL's
/// write function, SQLite's write trigger); the in-memory test store here.
#[cfg(test)]
fn apply(current: &StoredRow, write: &Write, now: i64) -> StoredRow {
    let mut row = current.clone();
    if let Some(name) = &write.name {
        row.name = name.clone();
    }
    if let Some(description) = &write.description {
        row.description = description.clone();
    }
    if let Some(status) = write.status {
        row.status = status;
    }
    if let Some(settings) = &write.settings {
        row.settings = settings.stored.clone();
        row.settings_keys = settings.keys.clone();
    }
    row.version += 1;
    row.updated_at = now.max(current.updated_at);
    row
}

/// The history row a written version adds.
#[cfg(test)]
fn version_of(row: &StoredRow, write: &Write) -> StoredVersion {
    StoredVersion {
        version: row.version,
        recorded_at: row.updated_at,
        provenance: write.provenance.clone(),
        name: row.name.clone(),
        description: row.description.clone(),
        status: row.status,
        settings: row.settings.clone(),
    }
}

/// `If-Match` / `If-None-Match` as the arrays the SQL takes: the versions `If-Match` allows
/// (`None`: any), those `If-None-Match` forbids, and whether it was `*`.
fn condition_params(conditions: &WriteConditions) -> (Option<Vec<i64>>, Vec<i64>, bool) {
    use crate::domain::Precondition;
    let versions = |tags: &[crate::domain::Version]| tags.iter().map(|v| v.0).collect::<Vec<_>>();
    let allowed = match &conditions.if_match {
        None | Some(Precondition::Exists) => None,
        Some(Precondition::OneOf(tags)) => Some(versions(tags)),
    };
    let (forbidden, none_match_any) = match &conditions.if_none_match {
        None => (Vec::new(), false),
        Some(Precondition::Exists) => (Vec::new(), true),
        Some(Precondition::OneOf(tags)) => (versions(tags), false),
    };
    (allowed, forbidden, none_match_any)
}

/// A row of either backend's result, read by column name. Both stores' statements name their
/// columns alike (`created_us`, `settings_key`, ...), so one decoder reads each kind of row.
trait Columns {
    /// A text column; `None` for NULL.
    fn text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn integer(&self, column: &str) -> Result<Option<i64>, StoreError>;
    /// A boolean column (SQLite: an integer, 0 or not).
    fn flag(&self, column: &str) -> Result<Option<bool>, StoreError>;
}

/// A column that is never NULL where it is read.
fn present<T>(value: Option<T>, column: &str) -> Result<T, StoreError> {
    value.ok_or_else(|| unexpected_shape(column))
}

impl StoredSettings {
    fn decode(row: &dyn Columns) -> Result<Self, StoreError> {
        Ok(Self { text: present(row.text("settings")?, "settings")?, key: row.text("settings_key")? })
    }
}

impl StoredRow {
    /// A live row; `None` for the NULLs of "not found".
    fn decode(row: &dyn Columns) -> Result<Option<Self>, StoreError> {
        let Some(id) = row.text("id")? else { return Ok(None) };
        let integer = |column| present(row.integer(column)?, column);
        Ok(Some(Self {
            id,
            name: present(row.text("name")?, "name")?,
            description: present(row.text("description")?, "description")?,
            status: present(row.flag("status")?, "status")?,
            settings: StoredSettings::decode(row)?,
            settings_keys: parse_names(&present(row.text("settings_keys")?, "settings_keys")?)?,
            version: integer("version")?,
            created_at: integer("created_us")?,
            updated_at: integer("updated_us")?,
        }))
    }
}

impl StoredVersion {
    /// A history row; `None` for the NULLs of "no version".
    fn decode(row: &dyn Columns) -> Result<Option<Self>, StoreError> {
        let Some(version) = row.integer("version")? else { return Ok(None) };
        let action = present(row.text("action")?, "action")?;
        Ok(Some(Self {
            version,
            recorded_at: present(row.integer("recorded_us")?, "recorded_us")?,
            provenance: Provenance {
                action: Action::parse(&action).ok_or_else(|| unexpected_shape("action"))?,
                restored_from: row.integer("restored_from")?,
                actor: Actor {
                    name: row.text("actor")?,
                    authenticated: present(row.flag("authenticated")?, "authenticated")?,
                    request_id: row.text("request_id")?,
                    client_addr: row.text("client_addr")?,
                },
            },
            name: present(row.text("name")?, "name")?,
            description: present(row.text("description")?, "description")?,
            status: present(row.flag("status")?, "status")?,
            settings: StoredSettings::decode(row)?,
        }))
    }
}

impl ResealItem {
    /// A row of the reseal candidates; `None` for the NULLs of "none".
    fn decode(row: &dyn Columns) -> Result<Option<Self>, StoreError> {
        let Some(table) = row.text("tbl")? else { return Ok(None) };
        Ok(Some(Self {
            table: Table::parse(&table)?,
            id: present(row.text("id")?, "id")?,
            version: present(row.integer("version")?, "version")?,
            settings: StoredSettings::decode(row)?,
        }))
    }
}

fn unexpected_shape(column: &str) -> StoreError {
    StoreError::Unexpected(format!("column {column} has an unexpected type"))
}

/// Whether `id` is a catalog entry: a write that finds no such row may find it once the catalog
/// is seeded.
fn is_catalog_entry(id: &IntegrationId) -> bool {
    crate::catalog::find(id.as_str()).is_some()
}

/// A JSON array of names, as the `settings_keys` column holds them.
fn names_json(names: &[String]) -> String {
    serde_json::to_string(names).expect("names always serialize")
}

fn parse_names(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|_| StoreError::Unexpected("settings_keys is not a JSON array".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Precondition;

    fn row() -> StoredRow {
        StoredRow {
            id: "chat_widget".into(),
            name: "Chat Widget".into(),
            description: "d".into(),
            status: true,
            settings: StoredSettings { text: r#"{"color":"blue"}"#.into(), key: None },
            settings_keys: vec!["color".into()],
            version: 3,
            created_at: 1,
            updated_at: 2,
        }
    }

    fn write(undeclared: &[&str], if_match: Option<&str>) -> Write {
        Write {
            id: IntegrationId::parse("chat_widget").unwrap(),
            name: None,
            description: None,
            status: Some(false),
            settings: Some(SettingsWrite {
                stored: StoredSettings { text: "{}".into(), key: None },
                keys: undeclared.iter().map(|s| s.to_string()).collect(),
                undeclared: undeclared.iter().map(|s| s.to_string()).collect(),
            }),
            conditions: WriteConditions { if_match: if_match.map(Precondition::parse_if_match), if_none_match: None },
            provenance: Provenance { action: Action::Update, restored_from: None, actor: Actor::default() },
            retention: 10,
        }
    }

    #[test]
    fn undeclared_keys_pass_only_where_already_stored() {
        assert_eq!(decide(&row(), &write(&["color"], None)), Verdict::Apply);
        assert_eq!(decide(&row(), &write(&["color", "size"], None)), Verdict::Undeclared(vec!["size".into()]));
    }

    #[test]
    fn preconditions_come_first() {
        assert_eq!(decide(&row(), &write(&["size"], Some(r#""2""#))), Verdict::PreconditionFailed);
        assert_eq!(decide(&row(), &write(&[], Some(r#""3""#))), Verdict::Apply);
    }

    #[test]
    fn applying_bumps_the_version_and_keeps_what_the_write_leaves_out() {
        let written = apply(&row(), &write(&[], None), 10);
        assert_eq!((written.version, written.status, written.name.as_str()), (4, false, "Chat Widget"));
        assert_eq!((written.updated_at, written.created_at), (10, 1));
    }

    #[test]
    fn a_write_that_applies_to_any_row_is_applied_whatever_the_row() {
        let any = [row(), StoredRow { version: 17, settings_keys: vec![], ..row() }];
        let star = WriteConditions { if_match: Some(Precondition::parse_if_match("*")), if_none_match: None };
        for write in [write(&[], None), Write { conditions: star, ..write(&[], None) }] {
            assert!(applies_to_any_row(&write));
            assert!(any.iter().all(|current| decide(current, &write) == Verdict::Apply));
        }
        // Versions named by a precondition, or undeclared names, depend on the row.
        assert!(!applies_to_any_row(&write(&[], Some(r#""3""#))));
        assert!(!applies_to_any_row(&write(&["color"], None)));
        let none_match =
            WriteConditions { if_match: None, if_none_match: Some(Precondition::parse_if_none_match("*")) };
        assert!(!applies_to_any_row(&Write { conditions: none_match, ..write(&[], None) }));
    }

    #[test]
    fn conditions_become_sql_parameters() {
        let conditions = WriteConditions {
            if_match: Some(Precondition::parse_if_match(r#""1", "2""#)),
            if_none_match: Some(Precondition::parse_if_match("*")),
        };
        assert_eq!(condition_params(&conditions), (Some(vec![1, 2]), vec![], true));
        assert_eq!(condition_params(&WriteConditions::default()), (None, vec![], false));
    }
}
