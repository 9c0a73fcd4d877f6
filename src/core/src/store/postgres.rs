//! PostgreSQL through Spin's `spin:postgres/postgres@4.0.0` interface.
//!
//! What shapes the SQL here:
//! - Spin checks a pooled connection out on `open` (with a clean-up round trip) and prepares
//!   every statement, so each statement costs two or three round trips: every request sends
//!   one statement (the migrations, and a restore's read, are the exceptions).
//! - Spin 4.0.x never returns from a `query` whose statement yields no row
//!   (spinframework/spin#3671), and the stuck request keeps its pooled connection. Every query
//!   here therefore yields at least one row: it starts from `(SELECT 1) AS one` and joins what it
//!   looks for, so "nothing found" is one row of NULLs. (`execute` does not have the bug.)
//! - `timestamptz` values cannot cross the interface; they are read as microseconds.
//! - Every query also returns the schema version and how many catalog rows the database holds,
//!   so a pending migration or seed is noticed without a round trip of its own.
//! - Rows are read by column name (the `AS` names of the statements below), never by position.
//! - Spin sets no timeout on a connection, so the address given to it carries network timeouts
//!   of its own ([`CONNECTION_DEFAULTS`]) unless `db_dsn` names them.

use spin_sdk::pg4::{Column, Connection, DbValue, Decode, ParameterValue, PgError, QueryError, RowSet};

use super::migrations::{self, LATEST};
use super::{
    condition_params, names_json, parse_names, unexpected_shape, Columns, HistoryPage, KeyUsage, ResealItem, Seeder,
    Store, StoreError, StoredRow, StoredSettings, Table, Write, WriteOutcome,
};
use crate::config::Misconfigured;
use crate::domain::IntegrationId;
use crate::redact::{short_reason, INVALID_CONNECTION_STRING, NOT_PERMITTED};

/// What the host's PostgreSQL client (tokio-postgres, which reads these from the URL; every value
/// in seconds) is given unless `db_dsn` names it. Spin sets no timeout of its own: a database cut
/// off by the network (a partition, an address gone in a failover) held each request until the
/// kernel gave up on the connection, a quarter of an hour and more. With these such a request
/// answers 503 in 5-11 s (`tests/e2e/tests/outage.rs`). None of them bounds a statement the server
/// is running, whose packets it acknowledges: that is `statement_timeout`'s (README, "A slow
/// database"), and nothing bounds a server whose process is frozen.
const CONNECTION_DEFAULTS: [(&str, &str); 4] = [
    // A server that never answers the connection.
    ("connect_timeout", "5"),
    // A statement whose packets are never acknowledged: the connection is dropped.
    ("tcp_user_timeout", "5"),
    // Idle pooled connections are probed every second, so that those a partition cut are dropped
    // (after tcp_user_timeout) before a request picks them: the host's pool tries its idle
    // connections one after another, and each dead one cost a request another 5 s (eight: 48 s).
    ("keepalives_idle", "1"),
    ("keepalives_interval", "1"),
];

const UNDEFINED_TABLE: &str = "42P01";
const UNDEFINED_COLUMN: &str = "42703";
const UNDEFINED_FUNCTION: &str = "42883";

/// The statements this store sends, public so that the benchmark's floors can send the very
/// same SQL.
pub mod statements {
    use spin_sdk::pg4::ParameterValue;

    use super::{condition_params, names_json, optional, LATEST};
    use crate::store::migrations::catalog_rows;
    use crate::store::Write;

    /// The schema version and the catalog rows held, the first columns of every query.
    fn schema() -> String {
        format!("(SELECT max(version) FROM integrations_schema_migrations) AS schema_version, {}", catalog_rows())
    }

    /// A live row's columns, from `i`.
    const ROW: &str = "i.id, i.name, i.description, i.status, i.settings, i.settings_key, i.settings_keys, i.version, \
        (extract(epoch FROM i.created_at) * 1000000)::int8 AS created_us, \
        (extract(epoch FROM i.updated_at) * 1000000)::int8 AS updated_us";

    /// A history row's columns, from `h`.
    const VERSION: &str = "h.version, (extract(epoch FROM h.recorded_at) * 1000000)::int8 AS recorded_us, h.action, \
        h.restored_from, h.name, h.description, h.status, h.settings, h.settings_key, h.request_id, h.client_addr, \
        h.authenticated, h.actor";

    pub fn list() -> String {
        format!("SELECT {}, {ROW} FROM (SELECT 1) AS one LEFT JOIN integrations AS i ON true ORDER BY i.seq", schema())
    }

    /// `$1`: the id.
    pub fn get() -> String {
        format!("SELECT {}, {ROW} FROM (SELECT 1) AS one LEFT JOIN integrations AS i ON i.id = $1::text", schema())
    }

    /// One statement for a whole write: the `integrations_write_as` function (migrations 4 and 5), which
    /// locks the row first (`FOR UPDATE`), so the verdict and the update see the same version even
    /// when writers race; the update, the history record and the pruning happen only on `apply`,
    /// and nothing is written on a schema older than this code's. A function, so that PostgreSQL
    /// plans its statement once per pooled connection instead of on every request.
    ///
    /// `$1` id, `$2` name, `$3` description, `$4` status, `$5` settings text, `$6` its key id,
    /// `$7` settings keys (JSON array), `$8` undeclared keys (JSON array), `$9` versions If-Match
    /// allows, `$10` versions If-None-Match forbids, `$11` If-None-Match is `*`, `$12` action,
    /// `$13` restored from, `$14` request id, `$15` client address, `$16` authenticated,
    /// `$17` the schema version this code needs, `$18` versions to keep, `$19` the actor (the
    /// token's name). (Migration 3's `integrations_write`, without `$19`, is what release 0.2.0
    /// calls.)
    ///
    /// Yields one row, always (the function's own query starts from `(SELECT 1)`, so Spin 4.0's
    /// zero-row deadlock cannot happen): the verdict (NULL: no such row), the undeclared keys the
    /// row lacks, and the row as written. The call is the whole statement: wrapped in a join, as
    /// it was, PostgreSQL spent twice as long planning it on every request (52 against 25 us).
    pub fn write() -> String {
        "SELECT * FROM integrations_write_as($1::text, $2::text, $3::text, $4::boolean, $5::text, $6::text, \
         $7::text, $8::text, $9::int8[], $10::int8[], $11::boolean, $12::text, $13::int8, $14::text, $15::text, \
         $16::boolean, $17::int8, $18::int8, $19::text)"
            .into()
    }

    /// The parameters of [`write`] for `write`.
    pub fn write_params(write: &Write) -> Vec<ParameterValue> {
        let (allowed, forbidden, none_match_any) = condition_params(&write.conditions);
        let settings = write.settings.as_ref();
        let undeclared = settings.filter(|s| !s.undeclared.is_empty()).map(|s| names_json(&s.undeclared));
        vec![
            ParameterValue::Str(write.id.to_string()),
            optional(write.name.clone(), ParameterValue::Str),
            optional(write.description.clone(), ParameterValue::Str),
            optional(write.status, ParameterValue::Boolean),
            optional(settings.map(|s| s.stored.text.clone()), ParameterValue::Str),
            optional(settings.and_then(|s| s.stored.key.clone()), ParameterValue::Str),
            optional(settings.map(|s| names_json(&s.keys)), ParameterValue::Str),
            optional(undeclared, ParameterValue::Str),
            optional(allowed, |versions| ParameterValue::ArrayInt64(versions.into_iter().map(Some).collect())),
            ParameterValue::ArrayInt64(forbidden.into_iter().map(Some).collect()),
            ParameterValue::Boolean(none_match_any),
            ParameterValue::Str(write.provenance.action.as_str().into()),
            optional(write.provenance.restored_from, ParameterValue::Int64),
            optional(write.provenance.actor.request_id.clone(), ParameterValue::Str),
            optional(write.provenance.actor.client_addr.clone(), ParameterValue::Str),
            ParameterValue::Boolean(write.provenance.actor.authenticated),
            ParameterValue::Int64(LATEST),
            ParameterValue::Int64(i64::from(write.retention)),
            optional(write.provenance.actor.name.clone(), ParameterValue::Str),
        ]
    }

    /// `$1` id, `$2` versions below this, `$3` how many. Yields whether the integration exists,
    /// then its versions, newest first.
    pub fn history() -> String {
        format!(
            "SELECT {}, (SELECT count(*) FROM integrations WHERE id = $1::text) AS found, {VERSION}
             FROM (SELECT 1) AS one LEFT JOIN LATERAL (
               SELECT * FROM integration_history
               WHERE integration_id = $1::text AND version < $2::int8
               ORDER BY version DESC LIMIT $3::int8
             ) AS h ON true
             ORDER BY h.version DESC",
            schema()
        )
    }

    pub fn key_usage() -> String {
        format!(
            "SELECT {}, u.tbl, u.settings_key, u.rows FROM (SELECT 1) AS one LEFT JOIN (
               SELECT 'live' AS tbl, settings_key, count(*) AS rows FROM integrations GROUP BY settings_key
               UNION ALL
               SELECT 'history', settings_key, count(*) FROM integration_history GROUP BY settings_key
             ) AS u ON true",
            schema()
        )
    }

    /// `$1` the current key id, `$2` how many, `$3` the key ids the ring may open (a JSON array):
    /// their rows (and plain ones) first.
    pub fn reseal_candidates() -> String {
        format!(
            "SELECT {}, c.tbl, c.id, c.version, c.settings, c.settings_key FROM (SELECT 1) AS one LEFT JOIN (
               SELECT * FROM (
                 SELECT 'live' AS tbl, id, version, settings, settings_key FROM integrations
                 WHERE settings_key IS DISTINCT FROM $1::text
                 UNION ALL
                 SELECT 'history', integration_id, version, settings, settings_key FROM integration_history
                 WHERE settings_key IS DISTINCT FROM $1::text
               ) AS u
               ORDER BY (u.settings_key IS NULL OR $3::text::jsonb ? u.settings_key) DESC
               LIMIT $2::int8
             ) AS c ON true",
            schema()
        )
    }

    /// Compare-and-swap of a live row's settings (`execute`): `$1` id, `$2` new text, `$3` new
    /// key id, `$4` old text, `$5` old key id.
    pub const RESEAL_LIVE: &str = "UPDATE integrations SET settings = $2::text, settings_key = $3::text
        WHERE id = $1::text AND settings = $4::text AND settings_key IS NOT DISTINCT FROM $5::text";

    /// The same for a history row, `$6` its version.
    pub const RESEAL_HISTORY: &str = "UPDATE integration_history SET settings = $2::text, settings_key = $3::text
        WHERE integration_id = $1::text AND version = $6::int8 AND settings = $4::text
          AND settings_key IS NOT DISTINCT FROM $5::text";

    pub fn ping() -> String {
        format!("SELECT {}", schema())
    }
}

pub struct PostgresStore<'a> {
    connection: Connection,
    seeder: Seeder<'a>,
}

impl<'a> PostgresStore<'a> {
    /// Checks a connection out of the host's pool for `dsn`; `seeder` makes the catalog's rows
    /// if the database lacks one.
    pub fn open(dsn: &str, seeder: Seeder<'a>) -> Result<Self, StoreError> {
        let connection = Connection::open(&address(dsn)).map_err(classify)?;
        Ok(Self { connection, seeder })
    }

    /// Runs `statement`; if the schema is missing or behind, or a catalog row is missing, migrates
    /// once and runs the statement again.
    fn query(&self, statement: &str, params: &[ParameterValue]) -> Result<RowSet, StoreError> {
        let result = self.connection.query(statement, params);
        let behind = match &result {
            Err(error) => is_schema_missing(error),
            Ok(rows) => is_behind(rows)?,
        };
        if !behind {
            return result.map_err(classify);
        }
        self.migrate()?;
        self.connection.query(statement, params).map_err(classify)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let script = migrations::postgres_script(&(self.seeder)()?);
        self.connection.execute(&script, &[]).map(drop).map_err(classify)
    }

    fn write_once(&self, write: &Write) -> Result<Option<WriteOutcome>, StoreError> {
        let rows = match self.connection.query(&statements::write(), &statements::write_params(write)) {
            Err(error) if is_schema_missing(&error) => return Ok(None),
            result => result.map_err(classify)?,
        };
        let row = named(&rows).next().ok_or_else(|| unexpected_shape("write result"))?;
        let verdict: Option<String> = row.get("verdict")?;
        Ok(match verdict.as_deref() {
            None => Some(WriteOutcome::NotFound),
            Some("apply") => {
                Some(WriteOutcome::Written(StoredRow::decode(&row)?.ok_or_else(|| unexpected_shape("id"))?))
            }
            Some("precondition_failed") => Some(WriteOutcome::PreconditionFailed),
            Some("undeclared") => {
                Some(WriteOutcome::UndeclaredSettings(parse_names(&row.required::<String>("missing")?)?))
            }
            Some("schema_behind") => None,
            Some(other) => return Err(StoreError::Unexpected(format!("write verdict {other:?}"))),
        })
    }
}

impl Store for PostgresStore<'_> {
    fn list(&self) -> Result<Vec<StoredRow>, StoreError> {
        let rows = self.query(&statements::list(), &[])?;
        // An empty table is one row of NULLs.
        named(&rows).filter_map(|row| StoredRow::decode(&row).transpose()).collect()
    }

    fn get(&self, id: &IntegrationId) -> Result<Option<StoredRow>, StoreError> {
        let rows = self.query(&statements::get(), &[ParameterValue::Str(id.to_string())])?;
        let row = named(&rows).next();
        row.map_or(Ok(None), |row| StoredRow::decode(&row))
    }

    fn write(&self, write: &Write) -> Result<WriteOutcome, StoreError> {
        // A schema behind this code's, or a catalog row not seeded yet: migrate, then once more.
        match self.write_once(write)? {
            Some(WriteOutcome::NotFound) if super::is_catalog_entry(&write.id) => self.migrate()?,
            Some(outcome) => return Ok(outcome),
            None => self.migrate()?,
        }
        self.write_once(write)?
            .ok_or_else(|| StoreError::Unexpected("the schema is still behind after migrating".into()))
    }

    fn history(&self, id: &IntegrationId, before: Option<i64>, limit: u32) -> Result<Option<HistoryPage>, StoreError> {
        let params = [
            ParameterValue::Str(id.to_string()),
            ParameterValue::Int64(before.unwrap_or(i64::MAX)),
            ParameterValue::Int64(i64::from(limit) + 1),
        ];
        let rows = self.query(&statements::history(), &params)?;
        let first = named(&rows).next().ok_or_else(|| unexpected_shape("history result"))?;
        if first.required::<i64>("found")? == 0 {
            return Ok(None);
        }
        let versions = named(&rows).map(|row| super::StoredVersion::decode(&row)).filter_map(Result::transpose);
        Ok(Some(HistoryPage { versions: versions.collect::<Result<_, _>>()? }))
    }

    fn key_usage(&self) -> Result<KeyUsage, StoreError> {
        let rows = self.query(&statements::key_usage(), &[])?;
        let mut usage = KeyUsage::default();
        for row in named(&rows) {
            let Some(table) = row.get::<String>("tbl")? else { continue };
            let entry = (row.get("settings_key")?, row.required("rows")?);
            match Table::parse(&table)? {
                Table::Live => usage.live.push(entry),
                Table::History => usage.history.push(entry),
            }
        }
        Ok(usage)
    }

    fn reseal_candidates(&self, current: &str, openable: &[&str], limit: u32) -> Result<Vec<ResealItem>, StoreError> {
        let params = [
            ParameterValue::Str(current.into()),
            ParameterValue::Int64(i64::from(limit)),
            ParameterValue::Str(serde_json::to_string(openable).expect("ids serialize")),
        ];
        let rows = self.query(&statements::reseal_candidates(), &params)?;
        named(&rows).filter_map(|row| ResealItem::decode(&row).transpose()).collect()
    }

    fn replace_sealed(&self, item: &ResealItem, sealed: &StoredSettings) -> Result<bool, StoreError> {
        let mut params = vec![
            ParameterValue::Str(item.id.clone()),
            ParameterValue::Str(sealed.text.clone()),
            optional(sealed.key.clone(), ParameterValue::Str),
            ParameterValue::Str(item.settings.text.clone()),
            optional(item.settings.key.clone(), ParameterValue::Str),
        ];
        let statement = match item.table {
            Table::Live => statements::RESEAL_LIVE,
            Table::History => {
                params.push(ParameterValue::Int64(item.version));
                statements::RESEAL_HISTORY
            }
        };
        Ok(self.connection.execute(statement, &params).map_err(classify)? == 1)
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.query(&statements::ping(), &[]).map(drop)
    }
}

fn optional<T>(value: Option<T>, to_param: impl FnOnce(T) -> ParameterValue) -> ParameterValue {
    value.map_or(ParameterValue::DbNull, to_param)
}

/// A row of a result, read by column name with the SDK's `Decode`.
struct Row<'r> {
    columns: &'r [Column],
    values: &'r [DbValue],
}

/// The rows of `set`, each read by column name.
fn named(set: &RowSet) -> impl Iterator<Item = Row<'_>> {
    set.rows.iter().map(|values| Row { columns: &set.columns, values })
}

impl Row<'_> {
    /// The column's value; `None` for NULL.
    fn get<T: Decode>(&self, column: &str) -> Result<Option<T>, StoreError> {
        let index = self.columns.iter().position(|c| c.name == column).ok_or_else(|| missing_column(column))?;
        Option::<T>::decode(&self.values[index]).map_err(|_| unexpected_shape(column))
    }

    /// The column's value, which is never NULL.
    fn required<T: Decode>(&self, column: &str) -> Result<T, StoreError> {
        self.get(column)?.ok_or_else(|| unexpected_shape(column))
    }
}

impl Columns for Row<'_> {
    fn text(&self, column: &str) -> Result<Option<String>, StoreError> {
        self.get(column)
    }

    fn integer(&self, column: &str) -> Result<Option<i64>, StoreError> {
        self.get(column)
    }

    fn flag(&self, column: &str) -> Result<Option<bool>, StoreError> {
        self.get(column)
    }
}

/// Whether the first row says the schema is behind this code's, or a catalog row is missing.
fn is_behind(rows: &RowSet) -> Result<bool, StoreError> {
    let first = named(rows).next().ok_or_else(|| unexpected_shape("schema_version"))?;
    let schema_version = first.get::<i64>("schema_version")?.unwrap_or(0);
    Ok(migrations::is_behind(schema_version, first.required("catalog_rows")?))
}

fn missing_column(column: &str) -> StoreError {
    StoreError::Unexpected(format!("column {column} is missing"))
}

/// A table, column or function this code uses is not there yet: migrations are pending.
fn is_schema_missing(error: &PgError) -> bool {
    matches!(sqlstate(error), Some(UNDEFINED_TABLE | UNDEFINED_COLUMN | UNDEFINED_FUNCTION))
}

fn sqlstate(error: &PgError) -> Option<&str> {
    match error {
        PgError::QueryFailed(QueryError::DbError(db)) => Some(&db.code),
        _ => None,
    }
}

/// Sorts a host error into "the database is not there" and "something is wrong",
/// keeping only a short, secret-free reason.
fn classify(error: PgError) -> StoreError {
    let host_text = match &error {
        PgError::ConnectionFailed(text) | PgError::Other(text) | PgError::QueryFailed(QueryError::Text(text)) => {
            Some(text)
        }
        PgError::QueryFailed(QueryError::DbError(_)) | PgError::BadParameter(_) | PgError::ValueConversionFailed(_) => {
            None
        }
    };
    if let Some(misconfigured) = host_text.and_then(|text| misconfiguration(text)) {
        return misconfigured.into();
    }
    match &error {
        PgError::ConnectionFailed(text) => StoreError::Unavailable(short_reason(text)),
        PgError::QueryFailed(QueryError::DbError(db)) if is_unavailability(&db.code) => {
            StoreError::Unavailable(format!("SQLSTATE {}", db.code))
        }
        PgError::QueryFailed(QueryError::DbError(db)) => {
            StoreError::Unexpected(format!("SQLSTATE {}: {}", db.code, short_reason(&db.message)))
        }
        // Without a SQLSTATE the server never answered: the connection broke.
        PgError::QueryFailed(QueryError::Text(text)) => StoreError::Unavailable(short_reason(text)),
        PgError::BadParameter(text) | PgError::ValueConversionFailed(text) | PgError::Other(text) => {
            StoreError::Unexpected(short_reason(text))
        }
    }
}

/// `dsn` with each of [`CONNECTION_DEFAULTS`] it does not name. The host keeps a pool per address,
/// so the same `dsn` must always give the same address.
fn address(dsn: &str) -> String {
    // As tokio-postgres reads a URL: the credentials end at the first `@`, and the parameters
    // start at the first `?` after them.
    let after_credentials = dsn.find('@').map_or(0, |at| at + 1);
    let query = dsn[after_credentials..].find('?').map(|mark| &dsn[after_credentials + mark + 1..]);
    let named: Vec<&str> =
        query.into_iter().flat_map(|query| query.split('&')).map(|pair| pair.split('=').next().unwrap_or("")).collect();
    let mut address = dsn.to_owned();
    let mut separator = match query {
        None => "?",
        Some(query) if query.is_empty() || query.ends_with('&') => "",
        Some(_) => "&",
    };
    for (name, value) in CONNECTION_DEFAULTS.iter().filter(|(name, _)| !named.contains(name)) {
        address.push_str(separator);
        address.push_str(name);
        address.push('=');
        address.push_str(value);
        separator = "&";
    }
    address
}

/// What the host says before it ever reaches the database when the variables are wrong: no
/// waiting fixes these, so they are the operator's to fix (500 `Service misconfigured`, readiness
/// 503 naming the variable), not an outage to wait out (503 `Database unavailable`).
fn misconfiguration(text: &str) -> Option<Misconfigured> {
    let text = text.to_ascii_lowercase();
    if text.contains(NOT_PERMITTED) {
        Some(Misconfigured {
            what: "db_host",
            why: "the database's address is not in allowed_outbound_hosts: db_host must be db_dsn's host:port",
        })
    } else if text.contains(INVALID_CONNECTION_STRING) {
        Some(Misconfigured { what: "db_dsn", why: "not a valid connection string" })
    } else {
        None
    }
}

/// SQLSTATEs that mean "try again later": connection exceptions (08), insufficient resources
/// (53), operator intervention (57P: shutdown, recovery), a statement the server gave up on
/// (57014: `statement_timeout` or a cancel; 55P03: `lock_timeout`), a transaction to run again
/// (40: serialization failure, deadlock), and a server that cannot write at the moment (25006:
/// a standby, e.g. the old primary during a failover). The timeouts are how an operator bounds
/// a slow database (the host sets none): they must answer 503, as the database being down does.
fn is_unavailability(code: &str) -> bool {
    ["08", "53", "57P", "57014", "55P03", "40", "25006"].iter().any(|prefix| code.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What no waiting fixes is the operator's: a `db_host` that does not let the components reach
    /// `db_dsn`'s address, or a `db_dsn` that does not parse (both used to answer as an outage).
    #[test]
    fn a_wrong_db_host_or_db_dsn_is_misconfigured_not_an_outage() {
        let what = |error| match classify(error) {
            StoreError::Misconfigured(misconfigured) => Some(misconfigured.what),
            StoreError::Unavailable(_) | StoreError::Unexpected(_) => None,
        };
        let not_permitted = "address postgres://10.0.0.5:5432 is not permitted";
        assert_eq!(what(PgError::ConnectionFailed(not_permitted.into())), Some("db_host"));
        assert_eq!(what(PgError::Other(not_permitted.into())), Some("db_host"));
        let unparsable = "invalid connection string: invalid port";
        assert_eq!(what(PgError::ConnectionFailed(unparsable.into())), Some("db_dsn"));
        assert_eq!(what(PgError::QueryFailed(QueryError::Text(unparsable.into()))), Some("db_dsn"));
        let refused = "error connecting to server: Connection refused (os error 111)";
        assert!(matches!(classify(PgError::ConnectionFailed(refused.into())), StoreError::Unavailable(_)));
    }

    #[test]
    fn the_address_carries_the_network_timeouts_the_dsn_does_not_name() {
        let defaults = "connect_timeout=5&tcp_user_timeout=5&keepalives_idle=1&keepalives_interval=1";
        assert_eq!(address("postgres://app:pw@db:5432/app"), format!("postgres://app:pw@db:5432/app?{defaults}"));
        assert_eq!(
            address("postgres://app:pw@db:5432/app?sslmode=require"),
            format!("postgres://app:pw@db:5432/app?sslmode=require&{defaults}")
        );
        assert_eq!(address("postgres://db/app?"), format!("postgres://db/app?{defaults}"));
        // The operator's own value wins, even 0 (none); a `?` in the password is not the query.
        assert_eq!(
            address("postgres://app:p?w@db/app?tcp_user_timeout=0&connect_timeout=30&"),
            "postgres://app:p?w@db/app?tcp_user_timeout=0&connect_timeout=30&keepalives_idle=1&keepalives_interval=1"
        );
        let every = format!("postgres://db/app?{defaults}");
        assert_eq!(address(&every), every);
    }

    /// The host's client (tokio-postgres: Spin parses the address with it) reads each default as
    /// meant; a name it did not know would make every request answer "Service misconfigured".
    #[test]
    fn the_hosts_client_reads_the_defaults() {
        use std::time::Duration;
        let config: tokio_postgres::Config = address("postgres://app:pw@db:5432/app?sslmode=disable").parse().unwrap();
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(5)));
        assert_eq!(config.get_tcp_user_timeout(), Some(&Duration::from_secs(5)));
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(1));
        assert_eq!(config.get_keepalives_interval(), Some(Duration::from_secs(1)));
        assert_eq!(config.get_ssl_mode(), tokio_postgres::config::SslMode::Disable);
        let own: tokio_postgres::Config = address("postgres://db/app?connect_timeout=30").parse().unwrap();
        assert_eq!(own.get_connect_timeout(), Some(&Duration::from_secs(30)));
    }

    #[test]
    fn connection_exceptions_and_shutdowns_are_unavailability() {
        for code in ["08006", "08001", "53300", "57P01", "57P03"] {
            assert!(is_unavailability(code), "{code}");
        }
        // statement_timeout, lock_timeout, serialization failure, deadlock, a read-only standby.
        for code in ["57014", "55P03", "40001", "40P01", "25006"] {
            assert!(is_unavailability(code), "{code}");
        }
        for code in ["42P01", "23505", "22P02", "42501", "55000", "57000", "25001"] {
            assert!(!is_unavailability(code), "{code}");
        }
    }

    #[test]
    fn a_refused_connection_is_reported_without_its_address() {
        let error = PgError::ConnectionFailed(
            "Error occurred while creating a new object: error connecting to server: \
             Connection refused (os error 111) postgres://app:hunter2@db.internal:5432/app"
                .into(),
        );
        let StoreError::Unavailable(reason) = classify(error) else { panic!("not unavailable") };
        assert!(!reason.contains("hunter2") && !reason.contains("db.internal"), "{reason}");
        assert!(reason.contains("refused"), "{reason}");
    }

    /// `statement` with every parenthesised part taken out: what decides how many rows it yields.
    fn top_level(statement: &str) -> String {
        let mut depth = 0usize;
        let mut top = String::new();
        for c in statement.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ if depth == 0 => top.push(c),
                _ => {}
            }
        }
        top.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// Whether `statement` yields at least one row whatever the tables hold: it reads from the one
    /// row of `(SELECT 1)` (or from nothing, `SELECT <expressions>`), joins only with `LEFT JOIN`,
    /// and nothing at its top level filters or cuts rows.
    fn yields_a_row(statement: &str) -> bool {
        let top = top_level(statement);
        let words: Vec<&str> = top.split(' ').collect();
        let froms = words.iter().filter(|word| word.eq_ignore_ascii_case("FROM")).count();
        let from_one = top.contains("FROM AS one") && froms == 1;
        let joins_left = words.windows(2).all(|pair| !pair[1].eq_ignore_ascii_case("JOIN") || pair[0] == "LEFT");
        let cuts = ["WHERE", "HAVING", "LIMIT", "OFFSET", "FETCH", "INTERSECT", "EXCEPT"];
        let cut = words.iter().any(|word| cuts.iter().any(|cut| word.eq_ignore_ascii_case(cut)));
        // A comma in the FROM clause is a cross join, which an empty table empties.
        let from = top.split_once("FROM ").map_or("", |(_, from)| from);
        let cross = from.split(" ORDER BY ").next().unwrap_or_default().contains(',');
        (from_one || froms == 0) && joins_left && !cut && !cross
    }

    #[test]
    fn the_one_row_check_refuses_what_can_yield_no_row() {
        let one = "SELECT a FROM (SELECT 1) AS one LEFT JOIN t ON t.id = $1 ORDER BY a";
        assert!(yields_a_row(one));
        assert!(yields_a_row("SELECT (SELECT max(v) FROM t WHERE x = 1) AS v"));
        assert!(yields_a_row(
            "SELECT a FROM (SELECT 1) AS one LEFT JOIN (SELECT * FROM t WHERE x LIMIT 3) AS u ON true"
        ));
        for none in [
            "SELECT a FROM t WHERE id = $1",
            "SELECT a FROM (SELECT 1) AS one LEFT JOIN t ON true WHERE t.id = $1",
            "SELECT a FROM (SELECT 1) AS one JOIN t ON t.id = $1",
            "SELECT a FROM (SELECT 1) AS one LEFT JOIN t ON true LIMIT $1",
            "SELECT a FROM (SELECT 1) AS one, t",
        ] {
            assert!(!yields_a_row(none), "{none}");
        }
    }

    #[test]
    fn every_query_starts_from_one_row() {
        // Spin 4.0's zero-row deadlock: a query that can match nothing must still yield a row.
        for statement in [
            statements::list(),
            statements::get(),
            statements::history(),
            statements::key_usage(),
            statements::reseal_candidates(),
            statements::ping(),
        ] {
            assert!(yields_a_row(&statement), "{statement}");
        }
        // The write calls a function whose last migrated body does so itself.
        assert!(statements::write().starts_with("SELECT * FROM integrations_write_as("));
        let function = migrations::postgres_script(&[]);
        let latest = &function[function.rfind("FUNCTION integrations_write_as(").expect("the write function")..];
        let body = &latest[latest.find("RETURN QUERY").expect("its query") + "RETURN QUERY".len()..];
        let query = &body[..body.find(';').expect("the end of its query")];
        // Its CTEs are the parenthesised part: the final SELECT decides.
        assert!(yields_a_row(query), "{query}");
        assert!(query.contains("FROM (SELECT 1) AS one LEFT JOIN verdict"), "{query}");
    }
}
