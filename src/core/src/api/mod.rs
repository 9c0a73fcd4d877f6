//! From request to response: method dispatch, CORS, auth, and the request's log line.

mod admin;
mod auth;
mod cors;
mod docs;
mod metrics;
mod probes;
mod response;

use std::time::Instant;

use http::header::HeaderValue;
use http::{Method, StatusCode};
use serde_json::json;

use crate::config::LogLevel;
use crate::host::Host;
use crate::store::StoreError;
use crate::telemetry::Telemetry;
use crate::{Endpoint, Request, Response};
use response::{allow_header, ApiError};

impl Endpoint {
    /// The component id in spin.toml, as log lines name it.
    pub fn component(self) -> &'static str {
        match self {
            Self::List => "integrations-list",
            Self::Item => "integrations-item",
            Self::Health => "health",
            Self::Readiness => "readiness",
            Self::Metrics => "metrics",
            Self::OpenApi => "openapi",
        }
    }

    fn methods(self) -> &'static [Method] {
        match self {
            Self::Item => &[Method::GET, Method::PUT, Method::OPTIONS],
            _ => &[Method::GET, Method::OPTIONS],
        }
    }
}

/// Serves one request for `endpoint` and writes its log line.
pub fn handle(endpoint: Endpoint, request: Request, host: &dyn Host) -> Response {
    let started = Instant::now();
    // Liveness is given no variables at all, so it does not ask for any.
    let level = if endpoint == Endpoint::Health { LogLevel::Info } else { LogLevel::from_variables(host) };
    let telemetry = Telemetry::start(endpoint.component(), level, &request);
    let mut response = dispatch(endpoint, &request, host, &telemetry);
    if let Ok(id) = HeaderValue::from_str(&telemetry.request_id) {
        response.headers_mut().insert("x-request-id", id);
    }
    telemetry.request_done(&request, response.status().as_u16(), started.elapsed());
    response
}

fn dispatch(endpoint: Endpoint, request: &Request, host: &dyn Host, telemetry: &Telemetry) -> Response {
    match endpoint {
        Endpoint::List | Endpoint::Item => admin::serve(endpoint, request, host, telemetry),
        Endpoint::OpenApi => docs::serve(request, host),
        _ if request.method() == Method::OPTIONS => options(endpoint),
        _ => {
            let result = check_method(endpoint, request).and_then(|()| match endpoint {
                Endpoint::Health => Ok(probes::health()),
                Endpoint::Readiness => Ok(probes::readiness(host, telemetry)),
                _ => metrics::serve(request, host),
            });
            result.unwrap_or_else(|error| error_response(error, telemetry))
        }
    }
}

/// Anything the endpoint does not serve is a 405 that lists what it does.
fn check_method(endpoint: Endpoint, request: &Request) -> Result<(), ApiError> {
    let methods = endpoint.methods();
    if methods.contains(request.method()) {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed(methods))
    }
}

/// The answer to a plain `OPTIONS` (not a CORS preflight).
fn options(endpoint: Endpoint) -> Response {
    let mut response = response::empty(StatusCode::NO_CONTENT);
    response.headers_mut().insert(http::header::ALLOW, allow_header(endpoint.methods()));
    response
}

/// Turns an error into its response; database trouble is logged with its reason here,
/// the one place that sees it, and never shown to the client.
fn error_response(error: ApiError, telemetry: &Telemetry) -> Response {
    if let ApiError::Store(store_error) = &error {
        let (level, msg) = match store_error {
            StoreError::Unexpected(_) => (LogLevel::Error, "unexpected database error"),
            StoreError::Misconfigured(_) => (LogLevel::Error, "storage misconfigured"),
            StoreError::Unavailable(_) => (LogLevel::Warn, "database unavailable"),
        };
        telemetry.log(level, msg, json!({ "reason": store_error.to_string() }));
    }
    error.into_response()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::config::tests::MapVariables;
    use crate::config::{Storage, Variables};
    use crate::store::memory::MemoryStore;
    use crate::store::Store;

    struct TestHost {
        variables: MapVariables,
        failure: Option<StoreError>,
        store: MemoryStore,
    }

    impl TestHost {
        fn new() -> Self {
            let variables = MapVariables::default().with("cors_allowed_origins", "*");
            Self { variables, failure: None, store: MemoryStore::seeded() }
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
            let response = handle(endpoint, request.body(body.as_bytes().to_vec()).unwrap(), self);
            let body = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
            (response.status(), response.headers().clone(), body)
        }
    }

    impl Variables for TestHost {
        fn get(&self, name: &str) -> Option<String> {
            self.variables.get(name)
        }
    }

    impl Host for TestHost {
        fn open_store(&self, _storage: &Storage) -> Result<Box<dyn Store>, StoreError> {
            if let Some(error) = &self.failure {
                return Err(error.clone());
            }
            Ok(Box::new(self.store.clone()))
        }
    }

    fn item(method: &str, id: &str) -> http::request::Builder {
        http::Request::builder()
            .method(method)
            .uri(format!("/admin/integrations/{id}"))
            .header("spin-path-match-id", id)
            .header("content-type", "application/json")
    }

    fn list() -> http::request::Builder {
        http::Request::builder().uri("/admin/integrations/")
    }

    #[test]
    fn the_list_shows_the_seeded_integrations_in_order() {
        let (status, headers, body) = TestHost::new().call(Endpoint::List, list(), "");
        assert_eq!(status, 200);
        let ids: Vec<_> = body.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["facebook", "chat_widget"]);
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
    fn if_none_match_on_the_current_etag_is_not_modified() {
        let host = TestHost::new();
        let (_, headers, _) = host.call(Endpoint::Item, item("GET", "facebook"), "");
        let etag = headers["etag"].to_str().unwrap().to_owned();
        let (status, _, _) = host.call(Endpoint::Item, item("GET", "facebook").header("if-none-match", etag), "");
        assert_eq!(status, 304);
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
        ];
        for (request, body, expected) in cases {
            assert_eq!(host.call(Endpoint::Item, request, body).0, expected, "{body}");
        }
        let (_, _, facebook) = host.call(Endpoint::Item, item("GET", "facebook"), "");
        assert_eq!(facebook["name"], "Facebook Messenger");
    }

    #[test]
    fn method_not_allowed_says_what_is() {
        let (status, headers, body) = TestHost::new().call(Endpoint::List, list().method("POST"), "{}");
        assert_eq!(status, 405);
        assert_eq!(headers["allow"], "GET, OPTIONS");
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
        assert_eq!(host.call(Endpoint::Health, http::Request::builder(), "").0, 200);
    }

    #[test]
    fn a_database_outage_is_a_503_with_retry_after_and_readiness_fails() {
        let host = TestHost::new().down();
        let (status, headers, body) = host.call(Endpoint::List, list(), "");
        assert_eq!((status, body["detail"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("Database unavailable")));
        assert_eq!(headers["retry-after"], "5");
        let (status, _, body) = host.call(Endpoint::Readiness, http::Request::builder(), "");
        assert_eq!(status, 503);
        assert_eq!(body["backend"], "sqlite");
        assert_eq!(host.call(Endpoint::Health, http::Request::builder(), "").0, 200);
    }

    #[test]
    fn metrics_are_off_unless_enabled_and_honour_their_token() {
        let scrape = || http::Request::builder().uri("/metrics");
        assert_eq!(TestHost::new().call(Endpoint::Metrics, scrape(), "").0, 404);
        let host = TestHost::new().with("metrics_enabled", "true").with("metrics_token", "m");
        assert_eq!(host.call(Endpoint::Metrics, scrape(), "").0, 401);
        assert_eq!(host.call(Endpoint::Metrics, scrape().header("authorization", "Bearer m"), "").0, 200);
    }

    #[test]
    fn a_scrape_reports_the_integrations_and_still_answers_while_the_database_is_down() {
        let scrape = |host: &TestHost| {
            let request = http::Request::builder().uri("/metrics").body(Vec::new()).unwrap();
            let response = handle(Endpoint::Metrics, request, host);
            assert_eq!(response.status(), 200);
            assert_eq!(response.headers()["content-type"], crate::metrics::CONTENT_TYPE);
            String::from_utf8(response.into_body()).unwrap()
        };
        let healthy = scrape(&TestHost::new().with("metrics_enabled", "true"));
        for line in ["integrations_database_up 1", "integrations_stored 2", r#"integration_enabled{id="facebook"} 0"#] {
            assert!(healthy.lines().any(|l| l == line), "{line} missing from\n{healthy}");
        }
        let down = scrape(&TestHost::new().with("metrics_enabled", "true").down());
        assert!(down.lines().any(|l| l == "integrations_database_up 0"), "{down}");
        assert!(!down.contains("integrations_stored"), "{down}");
    }

    #[test]
    fn openapi_and_docs_are_served_from_one_component() {
        let host = TestHost::new();
        let (status, headers, spec) = host.call(Endpoint::OpenApi, http::Request::builder().uri("/openapi.json"), "");
        assert_eq!((status, headers["content-type"].to_str().unwrap()), (StatusCode::OK, "application/json"));
        assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
        let response = handle(Endpoint::OpenApi, http::Request::builder().uri("/docs").body(vec![]).unwrap(), &host);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    }
}
