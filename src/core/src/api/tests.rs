//! The HTTP behaviour of every route, natively, over the in-memory store. The same behaviour is
//! checked end to end under real Spin on PostgreSQL and SQLite (tests/e2e).

use serde_json::{json, Value};

use super::*;
use crate::body::BrokenBody;
use crate::config::tests::MapVariables;
use crate::config::{Storage, Variables};
use crate::handle_any;
use crate::store::cache::tests::MemoryKv;
use crate::store::cache::KeyValue;
use crate::store::memory::MemoryStore;
use crate::store::{Seeder, Store, StoredRow, StoredSettings};

const KEY_A: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const KEY_B: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

struct TestHost {
    variables: MapVariables,
    failure: Option<StoreError>,
    store: MemoryStore,
    kv: MemoryKv,
}

impl TestHost {
    fn new() -> Self {
        Self { variables: MapVariables::default(), failure: None, store: MemoryStore::empty(), kv: MemoryKv::default() }
    }

    fn with(mut self, name: &'static str, value: &str) -> Self {
        self.variables = self.variables.with(name, value);
        self
    }

    fn down(mut self) -> Self {
        self.failure = Some(StoreError::Unavailable("connection refused".into()));
        self
    }

    fn call(
        &self,
        endpoint: Endpoint,
        request: http::request::Builder,
        body: &str,
    ) -> (StatusCode, http::HeaderMap, Value) {
        self.send(endpoint, request.body(Body::from(body)).unwrap())
    }

    fn send(&self, endpoint: Endpoint, request: Request) -> (StatusCode, http::HeaderMap, Value) {
        let response = handle_any(endpoint, request, self);
        let body = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
        (response.status(), response.headers().clone(), body)
    }
}

impl Variables for TestHost {
    fn get(&self, name: &'static str) -> Result<String, &'static str> {
        self.variables.get(name)
    }
}

impl Host for TestHost {
    fn open_database<'a>(&self, _storage: &Storage, seeder: Seeder<'a>) -> Result<Box<dyn Store + 'a>, StoreError> {
        if let Some(error) = &self.failure {
            return Err(error.clone());
        }
        // As the real stores: a database that lacks a catalog row gets it, as this deployment
        // seals it.
        if self.store.lacks_a_seed() {
            self.store.seed(seeder()?);
        }
        Ok(Box::new(self.store.clone()))
    }

    fn key_value(&self) -> Result<Box<dyn KeyValue>, String> {
        Ok(Box::new(self.kv.clone()))
    }
}

fn item(method: &str, id: &str) -> http::request::Builder {
    http::Request::builder()
        .method(method)
        .uri(format!("/admin/integrations/{id}"))
        .header("content-type", "application/json")
}

fn history(method: &str, id: &str, rest: &str) -> http::request::Builder {
    http::Request::builder().method(method).uri(format!("/admin/integrations/{id}/history{rest}"))
}

fn list() -> http::request::Builder {
    http::Request::builder().uri("/admin/integrations/")
}

#[test]
fn the_list_shows_the_catalog_in_order() {
    let (status, headers, body) = TestHost::new().call(Endpoint::List, list(), "");
    assert_eq!(status, 200);
    let ids: Vec<_> = body.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, crate::catalog::CATALOG.iter().map(|entry| entry.id).collect::<Vec<_>>());
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-request-id"].len(), 32);
}

#[test]
fn a_partial_put_changes_only_what_it_names_and_bumps_the_etag() {
    let host = TestHost::new();
    let (_, before, _) = host.call(Endpoint::Item, item("GET", "facebook"), "");
    let (status, after, body) = host.call(Endpoint::Item, item("PUT", "facebook"), r#"{"status": true}"#);
    assert_eq!(status, 200);
    assert_eq!(body["status"], true);
    assert_eq!(body["settings"]["verify"], "ai-chatbot-framework");
    assert_ne!(before["etag"], after["etag"]);
}

#[test]
fn a_stale_if_match_gets_412_and_changes_nothing() {
    let host = TestHost::new();
    let (_, headers, _) = host.call(Endpoint::Item, item("GET", "chat_widget"), "");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let put = |body| host.call(Endpoint::Item, item("PUT", "chat_widget").header("if-match", &etag), body);
    assert_eq!(put(r#"{"status": false}"#).0, 200);
    assert_eq!(put(r#"{"status": true}"#).0, 412);
    let (_, _, body) = host.call(Endpoint::Item, item("GET", "chat_widget"), "");
    assert_eq!(body["status"], false);
}

#[test]
fn if_none_match_is_304_on_get_and_412_on_put() {
    let host = TestHost::new();
    let (_, headers, _) = host.call(Endpoint::Item, item("GET", "facebook"), "");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(host.call(Endpoint::Item, item("GET", "facebook").header("if-none-match", &etag), "").0, 304);
    let star = host.call(Endpoint::Item, item("PUT", "facebook").header("if-none-match", "*"), r#"{"status": true}"#);
    assert_eq!(star.0, 412, "If-None-Match: * on an existing row");
    assert_eq!(host.call(Endpoint::Item, item("GET", "facebook"), "").2["status"], false);
}

/// A client or a proxy may send a list header as several field lines (RFC 9110 5.3): every line
/// counts, so a condition on the second line is neither ignored (a write that should fail) nor
/// turned into a refusal (a write that should pass).
#[test]
fn preconditions_split_over_several_lines_count_as_one_list() {
    let host = TestHost::new();
    let (_, headers, _) = host.call(Endpoint::Item, item("GET", "facebook"), "");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let put = |name: &str| {
        let request = item("PUT", "facebook").header(name, r#""999""#).header(name, &etag);
        host.call(Endpoint::Item, request, r#"{"status": true}"#).0
    };
    assert_eq!(put("if-none-match"), 412, "the current version is on the second line");
    assert_eq!(host.call(Endpoint::Item, item("GET", "facebook"), "").2["status"], false, "nothing written");
    assert_eq!(put("if-match"), 200, "the current version is on the second line");
    let (_, headers, _) = host.call(Endpoint::Item, item("GET", "facebook"), "");
    let etag = headers["etag"].to_str().unwrap();
    let get = item("GET", "facebook").header("if-none-match", r#""999""#).header("if-none-match", etag);
    assert_eq!(host.call(Endpoint::Item, get, "").0, 304);
}

#[test]
fn bad_requests_get_the_documented_4xx() {
    let host = TestHost::new();
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(64 * 1024));
    let cases = [
        (item("GET", "nope"), "", 404),
        (item("GET", "fa%20b"), "", 404),
        (item("DELETE", "facebook"), "", 405),
        (item("PUT", "facebook"), big.as_str(), 413),
        (item("PUT", "facebook"), r#"{"id": "renamed"}"#, 422),
        (item("PUT", "facebook"), "{", 422),
        (item("PUT", "missing"), r#"{"status": true}"#, 404),
        (item("PUT", "facebook").header("content-length", "70000"), "{}", 413),
    ];
    for (request, body, expected) in cases {
        assert_eq!(host.call(Endpoint::Item, request, body).0, expected, "{body}");
    }
    let (_, _, facebook) = host.call(Endpoint::Item, item("GET", "facebook"), "");
    assert_eq!(facebook["name"], "Facebook Messenger");
}

#[test]
fn a_broken_body_is_a_400_not_a_500() {
    let request = item("PUT", "facebook").body(Body::new(BrokenBody)).unwrap();
    let (status, _, body) = TestHost::new().send(Endpoint::Item, request);
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::BAD_REQUEST, Some("There was an error parsing the body"))
    );
}

#[test]
fn the_token_is_checked_before_the_body_is_read() {
    let host = TestHost::new().with("admin_token", "s3cret");
    // A body that cannot be read: were it read, the answer would be 400.
    let request = item("PUT", "facebook").body(Body::new(BrokenBody)).unwrap();
    assert_eq!(host.send(Endpoint::Item, request).0, 401);
}

#[test]
fn the_path_id_is_percent_decoded() {
    let (status, _, body) = TestHost::new().call(Endpoint::Item, item("GET", "%66acebook"), "");
    assert_eq!((status, body["id"].as_str()), (StatusCode::OK, Some("facebook")));
}

#[test]
fn head_is_get_without_a_body() {
    let host = TestHost::new();
    let response = handle_any(Endpoint::Item, item("HEAD", "facebook").body(Body::empty()).unwrap(), &host);
    assert_eq!(response.status(), 200);
    assert!(response.body().is_empty());
    assert!(response.headers().contains_key("etag"));
}

#[test]
fn method_not_allowed_says_what_is() {
    let (status, headers, body) = TestHost::new().call(Endpoint::List, list().method("POST"), "{}");
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "GET, HEAD, OPTIONS");
    assert_eq!(body["detail"], "Method Not Allowed");
}

#[test]
fn an_admin_token_guards_admin_routes_but_not_preflight_or_health() {
    let host = TestHost::new().with("admin_token", "s3cret");
    assert_eq!(host.call(Endpoint::List, list(), "").0, 401);
    assert_eq!(host.call(Endpoint::List, list().header("authorization", "Bearer s3cret"), "").0, 200);
    let preflight = list()
        .method("OPTIONS")
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "GET");
    assert_eq!(host.call(Endpoint::List, preflight, "").0, 204);
    assert_eq!(host.call(Endpoint::Health, http::Request::builder().uri("/health"), "").0, 200);
    assert_eq!(host.call(Endpoint::Keys, http::Request::builder().uri("/admin/keys"), "").0, 401);
}

const TOKENS: &str = "ui:admin:ui-s3cret,bot:read:bot-s3cret";

/// A request for `method` on `def`'s path (with `facebook` and version 1), carrying `token`.
fn on_route(def: &RouteDef, method: &http::Method, token: Option<&str>) -> http::request::Builder {
    let path = def.path().replace("{id}", "facebook").replace("{version}", "1");
    let mut request = http::Request::builder().method(method.clone()).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.header("content-type", "application/json")
}

/// Every operation of the route table that needs a token, as (route, method, scope needed).
fn guarded_operations() -> Vec<(&'static RouteDef, http::Method, routes::Scope)> {
    let mut all = Vec::new();
    for def in routes::ROUTES {
        for method in def.methods() {
            if let Some(Operation { auth: Auth::AdminToken(needed), .. }) = def.operation(&method) {
                all.push((def, method, needed));
            }
        }
    }
    all
}

use routes::Operation;

#[test]
fn a_read_token_reads_and_is_refused_everything_else_with_403() {
    let host = TestHost::new().with("api_tokens", TOKENS).with("settings_keyring", &format!("a:{KEY_A}"));
    let operations = guarded_operations();
    assert!(operations.len() >= 10, "{operations:?}");
    for (def, method, needed) in &operations {
        let body = if *method == http::Method::PUT { r#"{"status": true}"# } else { "" };
        let (status, headers, answer) = host.call(def.endpoint, on_route(def, method, Some("bot-s3cret")), body);
        match needed {
            routes::Scope::Read => assert_eq!(status, 200, "{method} {}", def.path()),
            routes::Scope::Admin => {
                assert_eq!(status, 403, "{method} {}", def.path());
                assert_eq!(headers["www-authenticate"], r#"Bearer error="insufficient_scope", scope="admin""#);
                if *method != http::Method::HEAD {
                    assert_eq!(answer, json!({"detail": "Not enough permissions"}));
                }
            }
        }
        let (status, _, _) = host.call(def.endpoint, on_route(def, method, Some("ui-s3cret")), body);
        assert_eq!(status, 200, "admin: {method} {}", def.path());
        for anonymous in [None, Some("nope"), Some("sha256:nope")] {
            let (status, headers, _) = host.call(def.endpoint, on_route(def, method, anonymous), body);
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{anonymous:?}: {method} {}", def.path());
            assert_eq!(headers["www-authenticate"], "Bearer");
        }
    }
    // Only the admin token's writes happened.
    let (_, _, page) =
        host.call(Endpoint::History, history("GET", "facebook", "").header("authorization", "Bearer ui-s3cret"), "");
    let actors: Vec<&str> = page["versions"].as_array().unwrap().iter().filter_map(|v| v["actor"].as_str()).collect();
    assert!(!actors.is_empty() && actors.iter().all(|actor| *actor == "ui"), "{page}");
}

#[test]
fn a_read_tokens_write_is_refused_before_the_body_is_read() {
    let host = TestHost::new().with("api_tokens", TOKENS);
    let request = item("PUT", "facebook").header("authorization", "Bearer bot-s3cret").body(Body::new(BrokenBody));
    assert_eq!(host.send(Endpoint::Item, request.unwrap()).0, 403);
}

#[test]
fn the_history_names_the_token_of_each_write_and_no_token_is_null() {
    let host = TestHost::new().with("api_tokens", TOKENS).with("admin_token", "legacy-s3cret");
    let put = |token: &str, body: &str| {
        let request = item("PUT", "chat_widget").header("authorization", format!("Bearer {token}"));
        assert_eq!(host.call(Endpoint::Item, request, body).0, 200);
    };
    put("ui-s3cret", r#"{"status": true}"#);
    put("legacy-s3cret", r#"{"status": false}"#);
    let restore = history("POST", "chat_widget", "/2/restore").header("authorization", "Bearer ui-s3cret");
    assert_eq!(host.call(Endpoint::History, restore, "").0, 200);
    let (_, _, page) =
        host.call(Endpoint::History, history("GET", "chat_widget", "").header("authorization", "Bearer ui-s3cret"), "");
    let who: Vec<(Value, Value)> =
        page["versions"].as_array().unwrap().iter().map(|v| (v["actor"].clone(), v["authenticated"].clone())).collect();
    assert_eq!(
        who,
        [
            (json!("ui"), json!(true)),
            (json!("admin_token"), json!(true)),
            (json!("ui"), json!(true)),
            (Value::Null, json!(false)),
        ],
        "{page}"
    );
    assert!(!page.to_string().contains("s3cret"), "{page}");

    let open = TestHost::new();
    assert_eq!(open.call(Endpoint::Item, item("PUT", "chat_widget"), r#"{"status": true}"#).0, 200);
    let (_, _, page) = open.call(Endpoint::History, history("GET", "chat_widget", "/2"), "");
    assert_eq!((&page["actor"], &page["authenticated"]), (&Value::Null, &json!(false)), "{page}");
}

#[test]
fn bad_tokens_are_a_500_naming_api_tokens_and_readiness_fails_never_an_open_api() {
    for bad in [
        "ui:owner:x",
        "ui:admin:a,ui:read:b",
        "ui:admin:",
        ":admin:x",
        "ui:admin:sha256:abc",
        "ui-admin-x",
        "a:admin:x,",
    ] {
        let host = TestHost::new().with("api_tokens", bad);
        for (endpoint, request) in [(Endpoint::List, list()), (Endpoint::Item, item("GET", "facebook"))] {
            let (status, _, body) = host.call(endpoint, request, "");
            assert_eq!(
                (status, body["detail"].as_str()),
                (StatusCode::INTERNAL_SERVER_ERROR, Some("Service misconfigured: api_tokens")),
                "{bad}"
            );
        }
        let (status, _, body) = host.call(Endpoint::Readiness, http::Request::builder().uri("/readiness"), "");
        assert_eq!(
            (status, body["detail"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("Service misconfigured: api_tokens")),
            "{bad}"
        );
        // Not a token's business: the probes and the description still answer.
        assert_eq!(host.call(Endpoint::Health, http::Request::builder().uri("/health"), "").0, 200);
        assert_eq!(host.call(Endpoint::OpenApi, http::Request::builder().uri("/openapi.json"), "").0, 200);
    }
}

#[test]
fn a_database_outage_is_a_503_with_retry_after_and_readiness_fails() {
    let host = TestHost::new().down().with("cache_ttl_ms", "0");
    let (status, headers, body) = host.call(Endpoint::List, list(), "");
    assert_eq!((status, body["detail"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("Database unavailable")));
    assert_eq!(headers["retry-after"], "5");
    let (status, _, body) = host.call(Endpoint::Readiness, http::Request::builder().uri("/readiness"), "");
    assert_eq!(status, 503);
    assert_eq!(body["backend"], "sqlite");
    assert_eq!(host.call(Endpoint::Health, http::Request::builder().uri("/health"), "").0, 200);
}

#[test]
fn undeclared_settings_are_refused_unless_already_stored() {
    let host = TestHost::new();
    let (status, _, body) = host.call(Endpoint::Item, item("PUT", "facebook"), r#"{"settings": {"color": "blue"}}"#);
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "settings", "color"]));
    assert_eq!(body["detail"][0]["type"], "extra_forbidden");
    // A key kept from before the catalog: the admin UI sends it back, and that keeps working.
    let mut row = host.store.get(&IntegrationId::parse("facebook").unwrap()).unwrap().unwrap();
    row.settings = StoredSettings { text: r#"{"color":"blue"}"#.into(), key: None };
    row.settings_keys = vec!["color".into()];
    host.store.put_row(row);
    let ui_body = r#"{"id": "facebook", "name": "Facebook Messenger", "description": "d", "status": false, "settings": {"color": "blue"}}"#;
    assert_eq!(host.call(Endpoint::Item, item("PUT", "facebook"), ui_body).0, 200);
}

#[test]
fn the_chat_widget_stores_any_object_exactly_and_the_history_withholds_it() {
    let host = TestHost::new();
    let settings = r##"{"theme":{"color":"#123456"},"greeting":"hi","n":123456789012345678901234567890}"##;
    let (status, _, body) =
        host.call(Endpoint::Item, item("PUT", "chat_widget"), &format!(r#"{{"settings": {settings}}}"#));
    assert_eq!((status, body["settings"].to_string()), (StatusCode::OK, settings.to_owned()));
    let (_, _, page) = host.call(Endpoint::History, history("GET", "chat_widget", ""), "");
    let latest = &page["versions"][0];
    assert_eq!(latest["integration"]["secret_settings"], json!(["theme", "greeting", "n"]), "{latest}");
    assert!(!page.to_string().contains("123456789012345678901234567890"), "{page}");
}

#[test]
fn history_lists_every_write_newest_first_without_secret_values() {
    let host = TestHost::new();
    for body in [
        r#"{"settings": {"verify": "v1", "secret": "s3cr3t-one", "page_access_token": ""}}"#,
        r#"{"settings": {"verify": "v1", "secret": "s3cr3t-two", "page_access_token": ""}}"#,
        r#"{"status": true}"#,
    ] {
        assert_eq!(host.call(Endpoint::Item, item("PUT", "facebook"), body).0, 200);
    }
    let (status, _, page) = host.call(Endpoint::History, history("GET", "facebook", "?limit=2"), "");
    assert_eq!(status, 200);
    let versions: Vec<i64> =
        page["versions"].as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
    assert_eq!(versions, [4, 3]);
    assert_eq!(page["next_before"], 3);
    assert_eq!(page["versions"][0]["changes"], json!([{"field": "status", "secret": false}]));
    assert_eq!(page["versions"][1]["changes"], json!([{"field": "settings.secret", "secret": true}]));
    assert!(!page.to_string().contains("s3cr3t"), "{page}");
    let (_, _, older) = host.call(Endpoint::History, history("GET", "facebook", "?before=3"), "");
    let versions: Vec<i64> =
        older["versions"].as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
    assert_eq!(versions, [2, 1]);
    assert_eq!(older["versions"][1]["action"], "seed");
    assert_eq!(older["next_before"], Value::Null);
}

/// The query is read as FastAPI reads it: escapes decoded in names and values, `+` a space,
/// spaces around an integer allowed; what is still no integer is a 422.
#[test]
fn history_query_parameters_are_form_decoded() {
    let host = TestHost::new();
    for status in [true, false, true] {
        host.call(Endpoint::Item, item("PUT", "facebook"), &json!({ "status": status }).to_string());
    }
    let count = |query: &str| {
        let (status, _, page) = host.call(Endpoint::History, history("GET", "facebook", query), "");
        assert_eq!(status, 200, "{query}: {page}");
        page["versions"].as_array().unwrap().len()
    };
    assert_eq!(count("?limit=%31"), 1);
    assert_eq!(count("?l%69mit=2"), 2);
    assert_eq!(count("?limit=+3+"), 3);
    assert_eq!(count("?before=%34&limit=1&&"), 1);
    for query in ["?limit=%zz", "?limit", "?limit=%2B%2B1"] {
        let (status, _, body) = host.call(Endpoint::History, history("GET", "facebook", query), "");
        assert_eq!(
            (status, &body["detail"][0]["type"]),
            (StatusCode::UNPROCESSABLE_ENTITY, &json!("int_parsing")),
            "{query}"
        );
    }
}

#[test]
fn a_restore_is_a_new_version_with_etag_semantics() {
    let host = TestHost::new();
    host.call(Endpoint::Item, item("PUT", "chat_widget"), r#"{"name": "Renamed"}"#);
    let (_, headers, _) = host.call(Endpoint::Item, item("GET", "chat_widget"), "");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let stale = history("POST", "chat_widget", "/1/restore").header("if-match", r#""1""#);
    assert_eq!(host.call(Endpoint::History, stale, "").0, 412);
    let restore = history("POST", "chat_widget", "/1/restore").header("if-match", &etag);
    let (status, headers, body) = host.call(Endpoint::History, restore, "");
    assert_eq!((status, body["name"].as_str()), (StatusCode::OK, Some("Chat Widget")));
    assert_eq!(headers["etag"], r#""3""#);
    let (_, _, entry) = host.call(Endpoint::History, history("GET", "chat_widget", "/3"), "");
    assert_eq!((entry["action"].as_str(), entry["restored_from"].as_i64()), (Some("restore"), Some(1)));
    assert_eq!(host.call(Endpoint::History, history("POST", "chat_widget", "/99/restore"), "").0, 404);
    assert_eq!(host.call(Endpoint::History, history("GET", "chat_widget", "/restore"), "").0, 404);
    let (status, headers, _) = host.call(Endpoint::History, history("POST", "chat_widget", "/abc/restore"), "");
    assert_eq!((status, headers["cache-control"].to_str().unwrap()), (StatusCode::NOT_FOUND, "no-store"));
    assert_eq!(host.call(Endpoint::History, history("PUT", "chat_widget", ""), "").0, 405);
}

#[test]
fn with_a_keyring_settings_are_sealed_and_rotate() {
    let host = TestHost::new().with("settings_keyring", &format!("a:{KEY_A}"));
    let body = r#"{"settings": {"verify": "enc:v1:AAAA", "secret": "s3cr3t", "page_access_token": ""}}"#;
    let (status, _, written) = host.call(Endpoint::Item, item("PUT", "facebook"), body);
    assert_eq!((status, written["settings"]["verify"].as_str()), (StatusCode::OK, Some("enc:v1:AAAA")));
    let at_rest = host.store.get(&IntegrationId::parse("facebook").unwrap()).unwrap().unwrap();
    assert_eq!(at_rest.settings.key.as_deref(), Some("a"));
    assert!(!at_rest.settings.text.contains("s3cr3t") && !at_rest.settings.text.contains("verify"));

    let rotated = TestHost {
        variables: MapVariables::default().with("settings_keyring", &format!("b:{KEY_B},a:{KEY_A}")),
        ..host
    };
    let (_, _, report) = rotated.call(Endpoint::Keys, http::Request::builder().uri("/admin/keys"), "");
    assert_eq!(report["current"], "b");
    assert!(report["on_old_keys"].as_i64().unwrap() > 0);
    let reseal = http::Request::builder().method("POST").uri("/admin/keys/reseal");
    let (status, _, resealed) = rotated.call(Endpoint::Keys, reseal, "");
    assert_eq!((status, resealed["remaining"].as_i64()), (StatusCode::OK, Some(0)), "{resealed}");
    let only_b =
        TestHost { variables: MapVariables::default().with("settings_keyring", &format!("b:{KEY_B}")), ..rotated };
    let (_, _, facebook) = only_b.call(Endpoint::Item, item("GET", "facebook"), "");
    assert_eq!(facebook["settings"]["secret"], "s3cr3t");
}

#[test]
fn an_unreadable_row_is_its_own_error_not_a_500_for_the_list() {
    let host = TestHost::new().with("settings_keyring", &format!("a:{KEY_A}")).with("cache_ttl_ms", "0");
    assert_eq!(host.call(Endpoint::List, list(), "").0, 200, "the first request seeds the catalog");
    let mut row: StoredRow = host.store.get(&IntegrationId::parse("facebook").unwrap()).unwrap().unwrap();
    row.settings = StoredSettings { text: "AAAA".into(), key: Some("gone".into()) };
    host.store.put_row(row);
    let (status, _, list) = host.call(Endpoint::List, list(), "");
    assert_eq!(status, 200);
    assert_eq!(list[0]["settings"], Value::Null);
    assert!(list[0]["settings_error"].as_str().unwrap().contains("\"gone\""));
    assert_eq!(list[1]["settings"], json!({}), "sealed with a, and opened");
    // Sending settings replaces what could not be opened.
    let body = r#"{"settings": {"verify": "v", "secret": "", "page_access_token": ""}}"#;
    let (status, _, fixed) = host.call(Endpoint::Item, item("PUT", "facebook"), body);
    assert_eq!((status, fixed["settings"]["verify"].as_str()), (StatusCode::OK, Some("v")));
}

#[test]
fn metrics_are_on_by_default_and_honour_their_token() {
    let scrape = || http::Request::builder().uri("/metrics");
    assert_eq!(TestHost::new().call(Endpoint::Metrics, scrape(), "").0, 200);
    assert_eq!(TestHost::new().with("metrics_enabled", "false").call(Endpoint::Metrics, scrape(), "").0, 404);
    let host = TestHost::new().with("metrics_token", "m");
    assert_eq!(host.call(Endpoint::Metrics, scrape(), "").0, 401);
    assert_eq!(host.call(Endpoint::Metrics, scrape().header("authorization", "Bearer m"), "").0, 200);
}

#[test]
fn a_scrape_reports_the_integrations_and_still_answers_while_the_database_is_down() {
    let scrape = |host: &TestHost| {
        let response =
            handle_any(Endpoint::Metrics, http::Request::builder().uri("/metrics").body(Body::empty()).unwrap(), host);
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], crate::metrics::CONTENT_TYPE);
        String::from_utf8(response.into_body()).unwrap()
    };
    let healthy = scrape(&TestHost::new());
    let stored = format!("integrations_stored {}", crate::catalog::CATALOG.len());
    for line in ["integrations_database_up 1", &stored, r#"integration_enabled{id="facebook"} 0"#] {
        assert!(healthy.lines().any(|l| l == line), "{line} missing from\n{healthy}");
    }
    let down = scrape(&TestHost::new().down());
    assert!(down.lines().any(|l| l == "integrations_database_up 0"), "{down}");
    assert!(!down.contains("integrations_stored"), "{down}");
}

#[test]
fn openapi_and_docs_are_served_from_one_component() {
    let host = TestHost::new();
    let (status, headers, spec) = host.call(Endpoint::OpenApi, http::Request::builder().uri("/openapi.json"), "");
    assert_eq!((status, headers["content-type"].to_str().unwrap()), (StatusCode::OK, "application/json"));
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let response =
        handle_any(Endpoint::OpenApi, http::Request::builder().uri("/docs").body(Body::empty()).unwrap(), &host);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
}

/// Spin sends every path no route names to [`ELSEWHERE`]'s component: it answers FastAPI's 404
/// to any method, with a request id, and leaves the body out of a HEAD.
#[test]
fn a_path_no_route_names_is_fastapis_404() {
    let host = TestHost::new().down();
    let fallback = crate::api::routes::ELSEWHERE.endpoint;
    for (method, path) in
        [("GET", "/"), ("GET", "/admin/integrations/a/b"), ("POST", "/nothing"), ("DELETE", "/docs/x")]
    {
        let (status, headers, body) = host.call(fallback, http::Request::builder().method(method).uri(path), "");
        assert_eq!((status, &body), (StatusCode::NOT_FOUND, &json!({"detail": "Not Found"})), "{method} {path}");
        assert_eq!(headers["content-type"], "application/json");
        assert!(headers.contains_key("x-request-id"));
    }
    let head = handle_any(
        fallback,
        http::Request::builder().method("HEAD").uri("/nothing").body(Body::empty()).unwrap(),
        &host,
    );
    assert_eq!((head.status(), head.body().len()), (StatusCode::NOT_FOUND, 0));
}

/// Every answer of every component, found or not, allowed or not, forbids content sniffing.
#[test]
fn every_answer_forbids_content_sniffing() {
    for host in [TestHost::new(), TestHost::new().down()] {
        for endpoint in Endpoint::ALL {
            let paths = endpoint.routes().map(|def| def.path().replace("{id}", "facebook").replace("{version}", "1"));
            for path in paths.chain(["/nothing".to_owned()]) {
                for method in [http::Method::GET, http::Method::HEAD, http::Method::PUT, http::Method::OPTIONS] {
                    let request = http::Request::builder().method(method.clone()).uri(&path);
                    let (status, headers, _) = host.call(*endpoint, request, "{}");
                    assert_eq!(
                        headers.get("x-content-type-options").map(|v| v.to_str().unwrap()),
                        Some("nosniff"),
                        "{endpoint:?} {method} {path}: {status}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_misconfigured_variable_is_a_500_naming_it_never_database_unavailable() {
    // A keyring that does not parse: every request that needs it says so.
    let host = TestHost::new().with("settings_keyring", "k1:c2hvcnQ=");
    let settings = r#"{"settings": {"verify": "v", "secret": "s", "page_access_token": ""}}"#;
    let (status, headers, body) = host.call(Endpoint::Item, item("PUT", "facebook"), settings);
    assert_eq!(
        (status, &body),
        (StatusCode::INTERNAL_SERVER_ERROR, &json!({"detail": "Service misconfigured: settings_keyring"}))
    );
    assert!(!headers.contains_key("retry-after"));
    let (status, _, body) = host.call(Endpoint::Keys, http::Request::builder().uri("/admin/keys"), "");
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("Service misconfigured: settings_keyring"))
    );
    // A value that does not parse is never read as the default.
    let host = TestHost::new().with("cache_ttl_ms", "soon");
    let (status, _, body) = host.call(Endpoint::List, list(), "");
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("Service misconfigured: cache_ttl_ms"))
    );
    // Nor is a variable spin.toml does not give the component.
    let host = TestHost { variables: MapVariables::default().without("admin_token"), ..TestHost::new() };
    assert_eq!(host.call(Endpoint::List, list(), "").0, StatusCode::INTERNAL_SERVER_ERROR);
}

#[test]
fn readiness_answers_a_misconfiguration_with_503_and_the_variable() {
    let ready = |host: &TestHost| host.call(Endpoint::Readiness, http::Request::builder().uri("/readiness"), "");
    let (status, headers, body) = ready(&TestHost::new().with("db_backend", "postgres"));
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        json!({"status": "unavailable", "detail": "Service misconfigured: db_dsn", "backend": "postgres"})
    );
    assert_eq!(headers["retry-after"], "5");
    let (status, _, body) = ready(&TestHost::new().with("db_backend", "mongo"));
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("Service misconfigured: db_backend"))
    );
    assert!(body.get("backend").is_none(), "{body}");
    let (status, _, body) = ready(&TestHost::new().with("log_level", "loud"));
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("Service misconfigured: log_level"))
    );
    // Everything else answers a bad log level with a 500; liveness reads no variable.
    let host = TestHost::new().with("log_level", "loud");
    assert_eq!(host.call(Endpoint::List, list(), "").0, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(host.call(Endpoint::Health, http::Request::builder().uri("/health"), "").0, StatusCode::OK);
}

/// Every variable a component reads is given to it in spin.toml, and it is given no other: each
/// component serves every method of each of its routes (and one it does not serve), from a
/// browser and not, on a fresh database, with no token and with every token and a keyring set.
#[test]
fn every_component_is_given_exactly_the_variables_it_reads() {
    let manifest = app_manifest::Manifest::of_the_app();
    for endpoint in Endpoint::ALL {
        let mut read = std::collections::BTreeSet::new();
        let configs: [&[(&'static str, &str)]; 2] = [
            &[],
            &[
                ("admin_token", "t"),
                ("api_tokens", "bot:read:r"),
                ("metrics_token", "t"),
                ("settings_keyring", &format!("a:{KEY_A}")),
            ],
        ];
        for config in configs {
            let host = config.iter().fold(TestHost::new(), |host, (name, value)| host.with(name, value));
            for def in endpoint.routes() {
                let path = def.path().replace("{id}", "facebook").replace("{version}", "1");
                for method in def.methods().into_iter().chain([http::Method::DELETE]) {
                    for origin in [None, Some("http://ui.example")] {
                        let mut request = http::Request::builder()
                            .method(method.clone())
                            .uri(&path)
                            .header("authorization", "Bearer t");
                        if let Some(origin) = origin {
                            request = request.header("origin", origin).header("access-control-request-method", "GET");
                        }
                        let body = if method == http::Method::PUT { r#"{"settings": {"verify": "v"}}"# } else { "" };
                        host.call(*endpoint, request, body);
                    }
                }
            }
            read.extend(host.variables.asked.borrow().iter().copied());
        }
        let given: std::collections::BTreeSet<&str> =
            manifest.component[endpoint.component()].variables.keys().map(String::as_str).collect();
        assert_eq!(read, given, "{}: the variables it reads, and those spin.toml gives it", endpoint.component());
    }
}
