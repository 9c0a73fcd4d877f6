//! The benchmark's Spin floor: what a request costs under Spin when it does nothing but what
//! the app cannot avoid, i.e. check a connection out of Spin's pool (`pg4::Connection::open`)
//! and run the one statement the app's PostgreSQL store sends for that route. It answers 200
//! with the number of rows; no decoding, no JSON, no validation, no telemetry.

use integrations_core::store::postgres_statements;
use serde::Deserialize;
use spin_sdk::pg4::{Connection, ParameterValue};

type Request = http::Request<Vec<u8>>;
type Response = http::Response<Vec<u8>>;

#[spin_sdk::http_component]
fn handle(request: Request) -> Response {
    // Spin sets this on `/admin/integrations/:id`, as the app reads it.
    let id = request.headers().get("spin-path-match-id").and_then(|value| value.to_str().ok());
    let Some((sql, params)) = statement(request.method(), id, request.body()) else {
        return answer(400, "not a route of the benchmark".into());
    };
    let rows = spin_sdk::variables::get("db_dsn")
        .map_err(|error| error.to_string())
        .and_then(|dsn| Connection::open(&dsn).map_err(|error| error.to_string()))
        .and_then(|connection| connection.query(&sql, &params).map_err(|error| error.to_string()));
    match rows {
        Ok(rows) => answer(200, rows.rows.len().to_string()),
        Err(error) => {
            eprintln!("floor: {error}");
            answer(500, "query failed".into())
        }
    }
}

/// The admin UI's PUT body (its whole integration object; `id` is the path's).
#[derive(Deserialize)]
struct Put {
    name: String,
    description: String,
    status: bool,
    settings: serde_json::Value,
}

/// For each route of the benchmark, the statement the app's store sends and the parameters it
/// binds for the same request: adapt this when `postgres_statements` changes.
///
/// Each of these returns at least one row for the benchmark's requests (the seeded table, the
/// `facebook` row): Spin 4.0.x and 4.1.0-pre0 never return from a query with zero rows
/// (spinframework/spin#3671), so a floor that asked for a missing row would hang, not measure.
fn statement(method: &http::Method, id: Option<&str>, body: &[u8]) -> Option<(String, Vec<ParameterValue>)> {
    use ParameterValue::{Boolean, DbNull, Str};
    match (method, id) {
        (&http::Method::GET, None) => Some((postgres_statements::list(), vec![])),
        (&http::Method::GET, Some(id)) => Some((postgres_statements::get(), vec![Str(id.into())])),
        (&http::Method::PUT, Some(id)) => {
            let put: Put = serde_json::from_slice(body).ok()?;
            // As the store binds an update without If-Match: settings as JSON text, no versions.
            let params = vec![
                Str(id.into()),
                Str(put.name),
                Str(put.description),
                Boolean(put.status),
                Str(put.settings.to_string()),
                DbNull,
            ];
            Some((postgres_statements::update(), params))
        }
        _ => None,
    }
}

fn answer(status: u16, body: String) -> Response {
    http::Response::builder().status(status).body(body.into_bytes()).expect("a valid response")
}
