//! Probes: `/health` says the component runs; `/readiness` says the database answers.

use http::header::{HeaderValue, RETRY_AFTER};
use http::StatusCode;
use serde_json::json;

use super::response::{json, ApiError, RETRY_AFTER_SECONDS};
use super::Call;
use crate::config::LogLevel;
use crate::service::CacheUse;
use crate::Response;

/// Liveness: answers without variables or a database, so a database outage never gets
/// a pod restarted.
pub fn health(_call: &mut Call) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &json!({ "status": "ok" })))
}

/// Readiness: the configured backend answers, with its schema up to date (a fresh pod runs
/// pending migrations on its first probe, before it takes traffic). A misconfiguration is not
/// ready either, and says which variable.
pub fn readiness(call: &mut Call) -> Result<Response, ApiError> {
    // Every variable any component reads must be usable, the log level and the admin API's tokens
    // included: a pod with a setting some request would refuse never becomes ready, and bad
    // tokens never open the API.
    let config = call.config();
    let backend = config.backend();
    let ready = match config.check() {
        Ok(()) => call.service(CacheUse::None).and_then(|service| Ok(service.ping()?)),
        Err(misconfigured) => Err(misconfigured.into()),
    };
    let (status, mut body) = match ready {
        Ok(()) => (StatusCode::OK, json!({ "status": "ok" })),
        Err(error) => {
            call.telemetry.log(LogLevel::Warn, "not ready", json!({ "reason": error.reason() }));
            (StatusCode::SERVICE_UNAVAILABLE, json!({ "status": "unavailable", "detail": error.detail() }))
        }
    };
    if let Ok(backend) = backend {
        body["backend"] = json!(backend.as_str());
    }
    let mut response = json(status, &body);
    if status != StatusCode::OK {
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
    }
    Ok(response)
}
