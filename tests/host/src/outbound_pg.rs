//! `spin:postgres/postgres@4.0.0` as Spin implements it (crates/factor-outbound-pg): the
//! address is checked against `allowed_outbound_hosts`, each `open` checks a client out of a
//! deadpool pool kept per connection string (64 connections, recycled with a clean-up round
//! trip, TLS unless `sslmode=disable`), statements are prepared and run with tokio-postgres,
//! and values convert as Spin converts them, with Spin's error texts.

// The WIT error type is what the guest receives; boxing it would only add copies.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::Context as _;
use futures::TryStreamExt as _;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::types::{FromSql, ToSql, Type};
use tokio_postgres::Row;
use wasmtime::component::Resource;

use crate::bindings::postgres::{self as pg, Column, DbDataType, DbError, DbValue, ParameterValue, QueryError, RowSet};
use crate::state::InstanceState;

/// Spin's `CONNECTION_POOL_SIZE`: the most connections one pool (one address) holds.
pub const CONNECTION_POOL_SIZE: usize = 64;

/// One open connection of a component instance: a client checked out of the pool, returned
/// to it when the guest drops the resource (or the instance ends).
pub struct PgConnection(deadpool_postgres::Object);

/// The app's pools, one per connection string, as Spin keeps them for the process's lifetime.
#[derive(Default)]
pub struct PgPools {
    pools: Mutex<HashMap<String, deadpool_postgres::Pool>>,
}

impl PgPools {
    async fn client(&self, address: &str) -> anyhow::Result<deadpool_postgres::Object> {
        let pool = self.pool(address).context("establishing PostgreSQL connection pool")?;
        Ok(pool.get().await?)
    }

    fn pool(&self, address: &str) -> anyhow::Result<deadpool_postgres::Pool> {
        let mut pools = self.pools.lock().unwrap();
        if let Some(pool) = pools.get(address) {
            return Ok(pool.clone());
        }
        let pool = create_pool(address)?;
        pools.insert(address.to_string(), pool.clone());
        Ok(pool)
    }
}

fn create_pool(address: &str) -> anyhow::Result<deadpool_postgres::Pool> {
    let config = address.parse::<tokio_postgres::Config>().context("parsing Postgres connection string")?;
    let manager_config =
        deadpool_postgres::ManagerConfig { recycling_method: deadpool_postgres::RecyclingMethod::Clean };
    let manager = if config.get_ssl_mode() == SslMode::Disable {
        deadpool_postgres::Manager::from_config(config, tokio_postgres::NoTls, manager_config)
    } else {
        let connector = postgres_native_tls::MakeTlsConnector::new(native_tls::TlsConnector::new()?);
        deadpool_postgres::Manager::from_config(config, connector, manager_config)
    };
    deadpool_postgres::Pool::builder(manager)
        .max_size(CONNECTION_POOL_SIZE)
        .build()
        .context("building Postgres connection pool")
}

impl InstanceState {
    /// Spin's check: every TCP host of the connection string must be allowed.
    fn ensure_address_allowed(&self, address: &str) -> Result<(), pg::Error> {
        let config =
            address.parse::<tokio_postgres::Config>().map_err(|e| pg::Error::ConnectionFailed(e.to_string()))?;
        let ports = config.get_ports();
        for (index, host) in config.get_hosts().iter().enumerate() {
            match host {
                Host::Tcp(name) => {
                    let port = ports.get(index).or(if ports.len() == 1 { ports.first() } else { None });
                    if !self.component.check_outbound("postgres", name, port.copied()) {
                        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                        return Err(pg::Error::ConnectionFailed(format!(
                            "address postgres://{name}{port} is not permitted"
                        )));
                    }
                }
                Host::Unix(_) => {
                    return Err(pg::Error::ConnectionFailed("Unix sockets are not supported on WebAssembly".into()));
                }
            }
        }
        Ok(())
    }

    fn pg_client(&self, connection: &Resource<PgConnection>) -> Result<&deadpool_postgres::Object, pg::Error> {
        self.table
            .get(connection)
            .map(|connection| &connection.0)
            .map_err(|_| pg::Error::ConnectionFailed("no connection found".into()))
    }
}

impl pg::Host for InstanceState {}

impl pg::HostConnection for InstanceState {
    async fn open(&mut self, address: String) -> wasmtime::Result<Result<Resource<PgConnection>, pg::Error>> {
        if let Err(error) = self.ensure_address_allowed(&address) {
            return Ok(Err(error));
        }
        let client = match self.component.app.pg_pools.client(&address).await {
            Ok(client) => client,
            Err(error) => return Ok(Err(pg::Error::ConnectionFailed(format!("{error:?}")))),
        };
        Ok(Ok(self.table.push(PgConnection(client))?))
    }

    async fn query(
        &mut self,
        connection: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<RowSet, pg::Error>> {
        let client = match self.pg_client(&connection) {
            Ok(client) => client,
            Err(error) => return Ok(Err(error)),
        };
        Ok(query(client, &statement, &params).await)
    }

    async fn execute(
        &mut self,
        connection: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<u64, pg::Error>> {
        let client = match self.pg_client(&connection) {
            Ok(client) => client,
            Err(error) => return Ok(Err(error)),
        };
        let params = match to_sql_parameters(&params) {
            Ok(params) => params,
            Err(error) => return Ok(Err(pg::Error::ValueConversionFailed(format!("{error:?}")))),
        };
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        Ok(client.execute(statement.as_str(), &refs).await.map_err(query_failed))
    }

    async fn drop(&mut self, connection: Resource<PgConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

async fn query(
    client: &deadpool_postgres::Object,
    statement: &str,
    params: &[ParameterValue],
) -> Result<RowSet, pg::Error> {
    let params = to_sql_parameters(params).map_err(|e| pg::Error::BadParameter(format!("{e:?}")))?;
    let stream = client.query_raw(statement, params).await.map_err(query_failed)?;
    let rows: Vec<Row> = stream.try_collect().await.map_err(query_failed)?;
    // Spin takes the column list from the first row, so an empty result has no columns.
    let columns = rows.first().map(columns_of).unwrap_or_default();
    let rows = rows
        .iter()
        .map(convert_row)
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(|e| pg::Error::QueryFailed(QueryError::Text(format!("{e:?}"))))?;
    Ok(RowSet { columns, rows })
}

fn query_failed(error: tokio_postgres::Error) -> pg::Error {
    let as_text = format!("{error:?}");
    pg::Error::QueryFailed(match error.as_db_error() {
        None => QueryError::Text(as_text),
        Some(db) => QueryError::DbError(DbError {
            as_text,
            severity: db.severity().to_owned(),
            code: db.code().code().to_owned(),
            message: db.message().to_owned(),
            detail: db.detail().map(str::to_owned),
            extras: db_error_extras(db),
        }),
    })
}

fn db_error_extras(db: &tokio_postgres::error::DbError) -> Vec<(String, String)> {
    let fields = [
        ("column", db.column()),
        ("constraint", db.constraint()),
        ("routine", db.routine()),
        ("hint", db.hint()),
        ("table", db.table()),
        ("datatype", db.datatype()),
        ("schema", db.schema()),
        ("file", db.file()),
        ("where_", db.where_()),
    ];
    let mut extras: Vec<_> =
        fields.into_iter().filter_map(|(name, value)| Some((name.to_owned(), value?.to_owned()))).collect();
    if let Some(line) = db.line() {
        extras.insert(
            extras.iter().position(|(n, _)| n == "where_").unwrap_or(extras.len()),
            ("line".into(), line.to_string()),
        );
    }
    extras
}

fn columns_of(row: &Row) -> Vec<Column> {
    row.columns()
        .iter()
        .map(|column| Column { name: column.name().to_owned(), data_type: data_type(column.type_()) })
        .collect()
}

fn data_type(pg_type: &Type) -> DbDataType {
    match *pg_type {
        Type::BOOL => DbDataType::Boolean,
        Type::BYTEA => DbDataType::Binary,
        Type::FLOAT4 => DbDataType::Floating32,
        Type::FLOAT8 => DbDataType::Floating64,
        Type::INT2 => DbDataType::Int16,
        Type::INT4 => DbDataType::Int32,
        Type::INT8 => DbDataType::Int64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => DbDataType::Str,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => DbDataType::Datetime,
        Type::DATE => DbDataType::Date,
        Type::TIME => DbDataType::Time,
        Type::UUID => DbDataType::Uuid,
        Type::JSONB => DbDataType::Jsonb,
        Type::NUMERIC => DbDataType::Decimal,
        Type::INT4_ARRAY => DbDataType::ArrayInt32,
        Type::INT8_ARRAY => DbDataType::ArrayInt64,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => DbDataType::ArrayStr,
        _ => DbDataType::Other(pg_type.name().to_owned()),
    }
}

fn convert_row(row: &Row) -> anyhow::Result<Vec<DbValue>> {
    (0..row.len()).map(|index| convert_value(row, index)).collect()
}

fn value<'a, T: FromSql<'a>>(row: &'a Row, index: usize, wrap: impl Fn(T) -> DbValue) -> anyhow::Result<DbValue> {
    Ok(row.try_get::<_, Option<T>>(index)?.map_or(DbValue::DbNull, wrap))
}

/// Spin's `convert_entry`. `timestamptz` is read as a `NaiveDateTime`, which tokio-postgres
/// refuses: Spin cannot read such a column either, and the components must cast it.
fn convert_value(row: &Row, index: usize) -> anyhow::Result<DbValue> {
    match *row.columns()[index].type_() {
        Type::BOOL => value(row, index, DbValue::Boolean),
        Type::BYTEA => value(row, index, DbValue::Binary),
        Type::FLOAT4 => value(row, index, DbValue::Floating32),
        Type::FLOAT8 => value(row, index, DbValue::Floating64),
        Type::INT2 => value(row, index, DbValue::Int16),
        Type::INT4 => value(row, index, DbValue::Int32),
        Type::INT8 => value(row, index, DbValue::Int64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => value(row, index, DbValue::Str),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            value(row, index, |v: chrono::NaiveDateTime| DbValue::Datetime(datetime_to_wit(v)))
        }
        Type::DATE => value(row, index, |v: chrono::NaiveDate| DbValue::Date(date_to_wit(v))),
        Type::TIME => value(row, index, |v: chrono::NaiveTime| DbValue::Time(time_to_wit(v))),
        Type::UUID => value(row, index, |v: uuid::Uuid| DbValue::Uuid(v.to_string())),
        Type::JSONB => match row.try_get::<_, Option<serde_json::Value>>(index)? {
            Some(json) => Ok(DbValue::Jsonb(serde_json::to_vec(&json).context("invalid JSON from database")?)),
            None => Ok(DbValue::DbNull),
        },
        Type::NUMERIC => value(row, index, |v: rust_decimal::Decimal| DbValue::Decimal(v.to_string())),
        Type::INT4_ARRAY => value(row, index, DbValue::ArrayInt32),
        Type::INT8_ARRAY => value(row, index, DbValue::ArrayInt64),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => value(row, index, DbValue::ArrayStr),
        _ => value(row, index, |v: RawBytes| DbValue::Unsupported(v.0)),
    }
}

fn datetime_to_wit(v: chrono::NaiveDateTime) -> (i32, u8, u8, u8, u8, u8, u32) {
    let ((year, month, day), (hour, minute, second, nanos)) = (date_to_wit(v.date()), time_to_wit(v.time()));
    (year, month, day, hour, minute, second, nanos)
}

fn date_to_wit(v: chrono::NaiveDate) -> (i32, u8, u8) {
    use chrono::Datelike;
    (v.year(), v.month() as u8, v.day() as u8)
}

fn time_to_wit(v: chrono::NaiveTime) -> (u8, u8, u8, u32) {
    use chrono::Timelike;
    (v.hour() as u8, v.minute() as u8, v.second() as u8, v.nanosecond())
}

/// Any column, as its binary wire form (Spin's `Other`).
struct RawBytes(Vec<u8>);

impl<'a> FromSql<'a> for RawBytes {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(raw.to_vec()))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

type SqlParameter = Box<dyn ToSql + Send + Sync>;

fn to_sql_parameters(params: &[ParameterValue]) -> anyhow::Result<Vec<SqlParameter>> {
    params.iter().map(to_sql_parameter).collect()
}

/// Spin's `to_sql_parameter`; the range, decimal-array and interval kinds, which no component
/// of this project sends, are refused rather than approximated.
fn to_sql_parameter(value: &ParameterValue) -> anyhow::Result<SqlParameter> {
    Ok(match value {
        ParameterValue::Boolean(v) => Box::new(*v),
        ParameterValue::Int8(v) => Box::new(*v),
        ParameterValue::Int16(v) => Box::new(*v),
        ParameterValue::Int32(v) => Box::new(*v),
        ParameterValue::Int64(v) => Box::new(*v),
        ParameterValue::Floating32(v) => Box::new(*v),
        ParameterValue::Floating64(v) => Box::new(*v),
        ParameterValue::Str(v) => Box::new(v.clone()),
        ParameterValue::Binary(v) => Box::new(v.clone()),
        ParameterValue::Date((y, m, d)) => {
            Box::new(chrono::NaiveDate::from_ymd_opt(*y, (*m).into(), (*d).into()).context("invalid date value")?)
        }
        ParameterValue::Time(time) => Box::new(naive_time(time)?),
        ParameterValue::Datetime((y, mo, d, h, mi, s, ns)) => Box::new(chrono::NaiveDateTime::new(
            chrono::NaiveDate::from_ymd_opt(*y, (*mo).into(), (*d).into()).context("invalid date value")?,
            naive_time(&(*h, *mi, *s, *ns))?,
        )),
        ParameterValue::Timestamp(seconds) => {
            Box::new(chrono::DateTime::<chrono::Utc>::from_timestamp(*seconds, 0).context("invalid epoch timestamp")?)
        }
        ParameterValue::Uuid(v) => Box::new(uuid::Uuid::parse_str(v).context("invalid UUID")?),
        ParameterValue::Jsonb(v) => Box::new(serde_json::from_slice::<serde_json::Value>(v).context("invalid JSON")?),
        ParameterValue::Decimal(v) => Box::new(rust_decimal::Decimal::from_str_exact(v).context("invalid decimal")?),
        ParameterValue::ArrayInt32(v) => Box::new(v.clone()),
        ParameterValue::ArrayInt64(v) => Box::new(v.clone()),
        ParameterValue::ArrayStr(v) => Box::new(v.clone()),
        ParameterValue::DbNull => Box::new(PgNull),
        ParameterValue::RangeInt32(_)
        | ParameterValue::RangeInt64(_)
        | ParameterValue::RangeDecimal(_)
        | ParameterValue::ArrayDecimal(_)
        | ParameterValue::Interval(_) => anyhow::bail!("this parameter kind is not supported by the test host"),
    })
}

fn naive_time((h, m, s, ns): &(u8, u8, u8, u32)) -> anyhow::Result<chrono::NaiveTime> {
    chrono::NaiveTime::from_hms_nano_opt((*h).into(), (*m).into(), (*s).into(), *ns).context("invalid time value")
}

/// NULL for a placeholder of any type, as Spin sends `db-null`.
#[derive(Debug)]
struct PgNull;

impl ToSql for PgNull {
    fn to_sql(
        &self,
        _: &Type,
        _: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(tokio_postgres::types::IsNull::Yes)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}
