//! The benchmark's Spin floor: what a request costs under Spin when it does nothing but what
//! the app cannot avoid, i.e. check a connection out of Spin's pool (`pg4::Connection::open`)
//! and run the one statement the app's PostgreSQL store sends for that route. It answers 200
//! with the number of rows; no decoding, no JSON, no validation, no telemetry.
//!
//! With `db_dsn` empty, the same on Spin's SQLite `default` database: open it and send the
//! statement the app's SQLite store sends (for a PUT, after the `synchronous` setting every write
//! of the store makes), on a database the app has migrated.

mod statement;

use spin_sdk::pg4::Connection;
use spin_sdk::sqlite::{Connection as SqliteConnection, Value};
use statement::statement;

type Request = http::Request<Vec<u8>>;
type Response = http::Response<Vec<u8>>;

#[spin_sdk::http_component]
fn handle(request: Request) -> Response {
    // Spin sets this on `/admin/integrations/:id`, as the app reads it.
    let id = request.headers().get("spin-path-match-id").and_then(|value| value.to_str().ok());
    let rows = match spin_sdk::variables::get("db_dsn") {
        Ok(dsn) if dsn.is_empty() => on_sqlite(request.method(), id, request.body()),
        Ok(dsn) => {
            let Some((sql, params)) = statement(request.method(), id, request.body()) else {
                return answer(400, "not a route of the benchmark".into());
            };
            Connection::open(&dsn)
                .map_err(|error| error.to_string())
                .and_then(|connection| connection.query(&sql, &params).map_err(|error| error.to_string()))
                .map(|rows| rows.rows.len())
        }
        Err(error) => Err(error.to_string()),
    };
    match rows {
        Ok(rows) => answer(200, rows.to_string()),
        Err(error) => {
            eprintln!("floor: {error}");
            answer(500, "query failed".into())
        }
    }
}

/// The statement the app's SQLite store sends for the route; how many rows it returned.
fn on_sqlite(method: &http::Method, id: Option<&str>, body: &[u8]) -> Result<usize, String> {
    use integrations_core::store::sqlite_statements as statements;
    let (sql, params) = match (method, id) {
        (&http::Method::GET, None) => (statements::list(), vec![]),
        (&http::Method::GET, Some(id)) => (statements::get(), vec![Value::Text(id.into())]),
        (&http::Method::PUT, Some(id)) => {
            let write = statement::admin_ui_put(id, body).ok_or("not the admin UI's PUT")?;
            (statements::write(), statements::write_params(&write, None))
        }
        _ => return Err("not a route of the benchmark".into()),
    };
    let connection = SqliteConnection::open_default().map_err(|error| error.to_string())?;
    if method == http::Method::PUT {
        connection.execute("PRAGMA synchronous = NORMAL", &[]).map_err(|error| error.to_string())?;
    }
    connection.execute(&sql, &params).map(|rows| rows.rows.len()).map_err(|error| error.to_string())
}

fn answer(status: u16, body: String) -> Response {
    http::Response::builder().status(status).body(body.into_bytes()).expect("a valid response")
}
