//! The test host against its fixture component (tests/host/fixture): Spin's routing and
//! headers, variables, a fresh instance per request, PostgreSQL and SQLite, and refusals.

use std::path::PathBuf;

use serde_json::{json, Value};
use spin_test_host::{LogStream, PostgresFixture, TestApp, TestAppOptions};

fn fixture_manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixture/spin.toml")
}

async fn start(variables: &[(&str, &str)]) -> TestApp {
    try_start(variables).await.expect("the fixture app starts")
}

async fn try_start(variables: &[(&str, &str)]) -> anyhow::Result<TestApp> {
    let variables = variables.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    TestApp::start(TestAppOptions { manifest: fixture_manifest(), variables, ..Default::default() }).await
}

async fn call(app: &TestApp, method: &str, path: &str, body: &str) -> (u16, Vec<u8>) {
    let url = format!("{}{path}", app.base_url());
    let request = reqwest::Client::new().request(method.parse().unwrap(), url).body(body.to_string());
    let response = request.send().await.expect("the host answers");
    (response.status().as_u16(), response.bytes().await.unwrap().to_vec())
}

async fn json(app: &TestApp, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, bytes) = call(app, method, path, body).await;
    (
        status,
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("JSON from {path}: {}", String::from_utf8_lossy(&bytes))),
    )
}

fn header<'a>(echo: &'a Value, name: &str) -> Option<&'a str> {
    echo["headers"].as_array().unwrap().iter().find(|pair| pair[0] == name).and_then(|pair| pair[1].as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_and_headers_are_spins() {
    let app = start(&[("secret_word", "sesame")]).await;
    for path in ["/exact", "/exact/"] {
        let (status, echo) = json(&app, "GET", path, "").await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&echo, "spin-path-info"), Some(""), "{path}");
        assert_eq!(header(&echo, "spin-matched-route"), Some("/exact"));
    }
    let (_, echo) = json(&app, "GET", "/item/fa%20b?x=1", "").await;
    assert_eq!(header(&echo, "spin-path-match-item-id"), Some("fa%20b"), "not percent-decoded");
    assert_eq!(header(&echo, "spin-full-url"), Some(&*format!("{}/item/fa%20b?x=1", app.base_url())));
    assert_eq!(header(&echo, "spin-raw-component-route"), Some("/item/:item_id"));
    assert_eq!(header(&echo, "spin-base-path"), Some("/"));
    assert!(header(&echo, "spin-client-addr").unwrap().starts_with("127.0.0.1:"));
    assert_eq!(echo["uri"], format!("{}/item/fa%20b?x=1", app.base_url()));

    let (_, echo) = json(&app, "POST", "/open/a/b/", "").await;
    assert_eq!((echo["method"].as_str(), header(&echo, "spin-path-info")), (Some("POST"), Some("/a/b/")));
    assert_eq!(header(&echo, "spin-component-route"), Some("/open"));

    assert_eq!(call(&app, "GET", "/item/a/b", "").await, (404, Vec::new()), "Spin's 404 for an unrouted path");
    assert_eq!(call(&app, "GET", "/.well-known/spin/health", "").await, (200, b"OK".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_gets_a_fresh_instance() {
    let app = start(&[("secret_word", "sesame")]).await;
    for _ in 0..3 {
        assert_eq!(json(&app, "GET", "/open/count", "").await, (200, json!(1)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_resolve_per_component_like_spin() {
    let app = start(&[("secret_word", "sesame"), ("greeting", "hi")]).await;
    assert_eq!(json(&app, "GET", "/open/var/greeting", "").await, (200, json!("hi, sesame!")));
    let (status, error) = json(&app, "GET", "/locked/var/greeting", "").await;
    assert_eq!(status, 500);
    assert!(error["error"].as_str().unwrap().starts_with("Error::Undefined("), "{error}");
    let (_, error) = json(&app, "GET", "/open/var/Greeting", "").await;
    assert!(error["error"].as_str().unwrap().starts_with("Error::InvalidName("), "{error}");

    let missing = try_start(&[]).await.err().expect("a required variable without a value fails the load");
    assert!(format!("{missing:#}").contains("secret_word"), "{missing:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_values_convert_as_spin_converts_them() {
    let postgres = PostgresFixture::shared().await.unwrap();
    let app = start(&[("secret_word", "s"), ("pg_dsn", &postgres.dsn()), ("pg_host", &postgres.host_port())]).await;
    let sql = r#"SELECT 7::int4 AS i4, 8::int8 AS i8, true AS b, 'x'::text AS t, '{"a": [1]}'::jsonb AS j,
        '2024-01-02 03:04:05.5'::timestamp AS ts, NULL::text AS n, 1.5::float8 AS f"#;
    let (status, rows) = json(&app, "POST", "/open/pg", sql).await;
    assert_eq!(status, 200, "{rows}");
    assert_eq!(
        rows["rows"][0],
        json!(["DbValue::Int32(7)", "DbValue::Int64(8)", "DbValue::Boolean(true)", "DbValue::Str(\"x\")",
               {"Jsonb": "{\"a\":[1]}"}, "DbValue::Datetime((2024, 1, 2, 3, 4, 5, 500000000))", "DbValue::DbNull",
               "DbValue::Floating64(1.5)"])
    );
    assert_eq!(rows["columns"][4], json!(["j", "DbDataType::Jsonb"]));

    let (status, error) = json(&app, "POST", "/open/pg", "SELECT now()").await;
    assert_eq!(status, 500);
    assert!(error["error"].as_str().unwrap().contains("timestamptz"), "Spin cannot read timestamptz: {error}");
    let (_, error) = json(&app, "POST", "/open/pg", "SELECT nope").await;
    assert!(error["error"].as_str().unwrap().contains("code: \"42703\""), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outside_allowed_outbound_hosts_is_refused() {
    let postgres = PostgresFixture::shared().await.unwrap();
    let app = start(&[("secret_word", "s"), ("pg_dsn", &postgres.dsn())]).await;
    let (status, error) = json(&app, "POST", "/locked/pg", "SELECT 1").await;
    assert_eq!(status, 500);
    let expected = format!("Error::ConnectionFailed(\"address postgres://{} is not permitted\")", postgres.host_port());
    assert_eq!(error["error"], expected);
    // The allowed host is localhost:5432 by default; 127.0.0.1:<port> is not it.
    let (_, error) = json(&app, "POST", "/open/pg", "SELECT 1").await;
    assert!(error["error"].as_str().unwrap().contains("is not permitted"), "{error}");
    let warned =
        app.logs().iter().any(|line| line.stream == LogStream::Host && line.line.contains("allowed_outbound_hosts"));
    assert!(warned, "the host names the missing allowed_outbound_hosts entry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_fails_open_at_once() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dsn = format!("postgres://postgres@127.0.0.1:{closed_port}/postgres");
    let app = start(&[("secret_word", "s"), ("pg_dsn", &dsn), ("pg_host", &format!("127.0.0.1:{closed_port}"))]).await;
    let (status, error) = json(&app, "POST", "/open/pg", "SELECT 1").await;
    assert_eq!(status, 500);
    let error = error["error"].as_str().unwrap();
    assert!(
        error.starts_with(
            "Error::ConnectionFailed(\"Error occurred while creating a new object: error connecting to server"
        ),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_default_database_persists_in_the_state_dir() {
    let state = tempfile::tempdir().unwrap();
    let options = TestAppOptions {
        manifest: fixture_manifest(),
        variables: vec![("secret_word".into(), "s".into())],
        state_dir: Some(state.path().to_owned()),
        ..Default::default()
    };
    let app = TestApp::start(options).await.unwrap();
    for sql in ["CREATE TABLE t (a INTEGER, b TEXT, c REAL, d BLOB)", "INSERT INTO t VALUES (1, 'x', 2.5, NULL)"] {
        assert_eq!(json(&app, "POST", "/open/sqlite", sql).await.0, 200, "{sql}");
    }
    let (_, result) = json(&app, "POST", "/open/sqlite", "SELECT * FROM t").await;
    assert_eq!(result, json!({"columns": ["a", "b", "c", "d"], "rows": [[1, "x", 2.5, null]]}));
    assert!(state.path().join("sqlite_db.db").exists());
    assert_eq!(json(&app, "POST", "/locked/sqlite", "SELECT 1").await, (500, json!({"error": "Error::AccessDenied"})));
    let (_, error) = json(&app, "POST", "/open/sqlite", "SELEC").await;
    assert!(error["error"].as_str().unwrap().starts_with("Error::Io("), "{error}");
}
