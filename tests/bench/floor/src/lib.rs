//! The benchmark's Spin floor: what a request costs under Spin when it does nothing but what
//! the app cannot avoid, i.e. check a connection out of Spin's pool (`pg4::Connection::open`)
//! and run the one statement the app's PostgreSQL store sends for that route. It answers 200
//! with the number of rows; no decoding, no JSON, no validation, no telemetry.

mod statement;

use spin_sdk::pg4::Connection;
use statement::statement;

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

fn answer(status: u16, body: String) -> Response {
    http::Response::builder().status(status).body(body.into_bytes()).expect("a valid response")
}
