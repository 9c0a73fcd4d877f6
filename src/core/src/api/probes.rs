//! Probes: `/health` says the component runs; `/readiness` says the database answers.

use http::header::{HeaderValue, RETRY_AFTER};
use http::StatusCode;
use serde_json::json;

use super::response::json;
use crate::config::{LogLevel, Storage};
use crate::host::Host;
use crate::telemetry::Telemetry;
use crate::Response;

/// Liveness: answers without variables or a database, so a database outage never gets
/// a pod restarted.
pub fn health() -> Response {
    json(StatusCode::OK, &json!({ "status": "ok" }))
}

/// Readiness: one trivial query on the configured backend, which it names.
pub fn readiness(host: &dyn Host, telemetry: &Telemetry) -> Response {
    let storage = Storage::from_variables(host);
    let backend = storage.backend().as_str();
    match host.open_store(&storage).and_then(|store| store.ping()) {
        Ok(()) => json(StatusCode::OK, &json!({ "status": "ok", "backend": backend })),
        Err(error) => {
            telemetry.log(LogLevel::Warn, "not ready", json!({ "reason": error.to_string() }));
            let body = json!({ "status": "unavailable", "backend": backend, "detail": "Database unavailable" });
            let mut response = json(StatusCode::SERVICE_UNAVAILABLE, &body);
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("5"));
            response
        }
    }
}
