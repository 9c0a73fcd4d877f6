//! Probes: `/health` says the component runs; `/readiness` says the database answers.

use http::header::{HeaderValue, RETRY_AFTER};
use http::StatusCode;
use serde_json::json;

use super::response::json;
use super::Call;
use crate::config::{LogLevel, Storage};
use crate::service::CacheUse;
use crate::Response;

/// Liveness: answers without variables or a database, so a database outage never gets
/// a pod restarted.
pub fn health() -> Response {
    json(StatusCode::OK, &json!({ "status": "ok" }))
}

/// Readiness: the configured backend answers, with its schema up to date (a fresh pod runs
/// pending migrations on its first probe, before it takes traffic).
pub fn readiness(call: &Call) -> Response {
    let backend = Storage::from_variables(call.host).backend().as_str();
    match call.service(CacheUse::None).ping() {
        Ok(()) => json(StatusCode::OK, &json!({ "status": "ok", "backend": backend })),
        Err(error) => {
            call.telemetry.log(LogLevel::Warn, "not ready", json!({ "reason": error.to_string() }));
            let body = json!({ "status": "unavailable", "backend": backend, "detail": "Database unavailable" });
            let mut response = json(StatusCode::SERVICE_UNAVAILABLE, &body);
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("5"));
            response
        }
    }
}
