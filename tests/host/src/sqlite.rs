//! `fermyon:spin/sqlite@2.0.0` as Spin's in-process SQLite implements it (crates/factor-sqlite,
//! crates/sqlite-inproc): only the databases listed in the component's `sqlite_databases`, only
//! `default` without runtime configuration (a file in the state directory), a new rusqlite
//! connection per `open`, statements run on a blocking thread, errors as `io(text)`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use wasmtime::component::Resource;

use crate::bindings::sqlite::{self, QueryResult, RowResult, Value};
use crate::state::InstanceState;

/// An open database of one instance. Like Spin, the file is opened on first use.
pub struct SqliteConnection {
    path: PathBuf,
    connection: Option<Arc<Mutex<rusqlite::Connection>>>,
}

impl SqliteConnection {
    fn connection(&mut self) -> Result<Arc<Mutex<rusqlite::Connection>>, sqlite::Error> {
        if let Some(connection) = &self.connection {
            return Ok(connection.clone());
        }
        let connection = open(&self.path)?;
        self.connection = Some(connection.clone());
        Ok(connection)
    }
}

fn open(path: &PathBuf) -> Result<Arc<Mutex<rusqlite::Connection>>, sqlite::Error> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| sqlite::Error::Io(e.to_string()))?;
    }
    let connection = rusqlite::Connection::open(path).map_err(io_error)?;
    // Spin refuses ATTACH of other files.
    connection.authorizer(Some(|context: rusqlite::hooks::AuthContext<'_>| {
        use rusqlite::hooks::{AuthAction, Authorization};
        match context.action {
            AuthAction::Attach { filename } if !matches!(filename, "" | ":memory:") => Authorization::Deny,
            _ => Authorization::Allow,
        }
    }));
    Ok(Arc::new(Mutex::new(connection)))
}

fn io_error(error: rusqlite::Error) -> sqlite::Error {
    sqlite::Error::Io(error.to_string())
}

impl sqlite::Host for InstanceState {}

impl sqlite::HostConnection for InstanceState {
    async fn open(&mut self, database: String) -> wasmtime::Result<Result<Resource<SqliteConnection>, sqlite::Error>> {
        if !self.component.sqlite_databases.contains(&database) {
            return Ok(Err(sqlite::Error::AccessDenied));
        }
        if database != "default" {
            return Ok(Err(sqlite::Error::NoSuchDatabase));
        }
        let path = self.component.app.sqlite_default_path();
        Ok(Ok(self.table.push(SqliteConnection { path, connection: None })?))
    }

    async fn execute(
        &mut self,
        connection: Resource<SqliteConnection>,
        statement: String,
        parameters: Vec<Value>,
    ) -> wasmtime::Result<Result<QueryResult, sqlite::Error>> {
        let connection = match self.table.get_mut(&connection) {
            Ok(connection) => connection.connection(),
            Err(_) => Err(sqlite::Error::InvalidConnection),
        };
        let connection = match connection {
            Ok(connection) => connection,
            Err(error) => return Ok(Err(error)),
        };
        let result = tokio::task::spawn_blocking(move || execute(&connection, &statement, parameters))
            .await
            .unwrap_or_else(|e| Err(sqlite::Error::Io(e.to_string())));
        Ok(result)
    }

    async fn drop(&mut self, connection: Resource<SqliteConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

fn execute(
    connection: &Mutex<rusqlite::Connection>,
    statement: &str,
    parameters: Vec<Value>,
) -> Result<QueryResult, sqlite::Error> {
    let connection = connection.lock().unwrap();
    let mut statement = connection.prepare_cached(statement).map_err(io_error)?;
    let columns = statement.column_names().into_iter().map(str::to_owned).collect();
    let parameters = parameters.into_iter().map(|value| match value {
        Value::Null => rusqlite::types::Value::Null,
        Value::Integer(i) => rusqlite::types::Value::Integer(i),
        Value::Real(r) => rusqlite::types::Value::Real(r),
        Value::Text(t) => rusqlite::types::Value::Text(t),
        Value::Blob(b) => rusqlite::types::Value::Blob(b),
    });
    let rows = statement
        .query_map(rusqlite::params_from_iter(parameters), convert_row)
        .map_err(io_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_error)?;
    Ok(QueryResult { columns, rows })
}

fn convert_row(row: &rusqlite::Row) -> rusqlite::Result<RowResult> {
    let mut values = Vec::new();
    for index in 0..row.as_ref().column_count() {
        values.push(match row.get_ref(index)? {
            rusqlite::types::ValueRef::Null => Value::Null,
            rusqlite::types::ValueRef::Integer(i) => Value::Integer(i),
            rusqlite::types::ValueRef::Real(r) => Value::Real(r),
            rusqlite::types::ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
            rusqlite::types::ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        });
    }
    Ok(RowResult { values })
}
