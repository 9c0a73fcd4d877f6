//! `/admin/integrations` and `/admin/integrations/{id}`: what the admin UI and the bot runtime
//! call.

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH};
use http::StatusCode;
use serde_json::json;

use super::response::{empty, json, ApiError};
use super::Call;
use crate::config::LogLevel;
use crate::domain::{FieldError, Integration, IntegrationUpdate, Precondition, WriteConditions};
use crate::service::{CacheUse, Written};
use crate::Response;

pub const NOT_FOUND: ApiError = ApiError::NotFound("Integration not found");

pub fn list(call: &mut Call) -> Result<Response, ApiError> {
    let integrations = call.service(reads(call))?.list()?;
    integrations.iter().for_each(|integration| report_unreadable(call, integration));
    Ok(json(StatusCode::OK, &integrations))
}

pub fn get(call: &mut Call) -> Result<Response, ApiError> {
    let id = call.path_id()?;
    let integration = call.service(reads(call))?.get(&id)?.ok_or(NOT_FOUND)?;
    report_unreadable(call, &integration);
    let if_none_match = call.header_list(IF_NONE_MATCH.as_str()).map(|tags| Precondition::parse_if_none_match(&tags));
    if if_none_match.is_some_and(|tags| tags.is_met_by(integration.version)) {
        let mut response = empty(StatusCode::NOT_MODIFIED);
        response.headers_mut().insert(ETAG, etag(&integration));
        return Ok(response);
    }
    Ok(with_etag(&integration))
}

pub fn put(call: &mut Call) -> Result<Response, ApiError> {
    let id = call.path_id()?;
    let body = call.body()?;
    let content_type = call.header(CONTENT_TYPE.as_str());
    let update = IntegrationUpdate::parse(&id, content_type, &body).map_err(ApiError::Validation)?;
    let conditions = write_conditions(call);
    let retention = call.retention()?;
    let written = call.service(CacheUse::Writes)?.update(&id, update, conditions, call.actor(), retention)?;
    written_response(call, written)
}

/// Reads come from the cache while it is fresh, unless the client asks for the database's answer
/// with `Cache-Control: no-cache` (or `no-store`, or `max-age=0`), as RFC 9111 lets a client ask
/// any cache on the way.
fn reads(call: &Call) -> CacheUse {
    let directives = call.header_list(CACHE_CONTROL.as_str()).unwrap_or_default().to_ascii_lowercase();
    let fresh = directives.split(',').map(str::trim).any(|d| matches!(d, "no-cache" | "no-store" | "max-age=0"));
    if fresh {
        CacheUse::Writes
    } else {
        CacheUse::ReadsAndWrites
    }
}

/// The response to a write: the integration as stored, with its new ETag, or why not.
pub fn written_response(call: &Call, written: Written) -> Result<Response, ApiError> {
    match written {
        Written::Integration(integration) => {
            report_unreadable(call, &integration);
            Ok(with_etag(&integration))
        }
        Written::NotFound => Err(NOT_FOUND),
        Written::PreconditionFailed => Err(ApiError::PreconditionFailed),
        Written::Undeclared(names) => {
            Err(ApiError::Validation(names.iter().map(|name| FieldError::undeclared_setting(name)).collect()))
        }
    }
}

/// `If-Match` and `If-None-Match` of a write, each from all its field lines.
pub fn write_conditions(call: &Call) -> WriteConditions {
    // A header that is not text names no version: an `If-Match` then fails, an
    // `If-None-Match` passes.
    WriteConditions {
        if_match: call.header_list(IF_MATCH.as_str()).map(|tags| Precondition::parse_if_match(&tags)),
        if_none_match: call.header_list(IF_NONE_MATCH.as_str()).map(|tags| Precondition::parse_if_none_match(&tags)),
    }
}

/// Settings that cannot be opened are the operator's to fix: the row is still served (with
/// `settings: null` and `settings_error`), and the reason is logged.
fn report_unreadable(call: &Call, integration: &Integration) {
    if let Some(why) = &integration.settings_error {
        call.telemetry.log(
            LogLevel::Error,
            "settings unreadable",
            json!({ "integration": integration.id, "reason": why }),
        );
    }
}

pub fn with_etag(integration: &Integration) -> Response {
    let mut response = json(StatusCode::OK, integration);
    response.headers_mut().insert(ETAG, etag(integration));
    response
}

fn etag(integration: &Integration) -> HeaderValue {
    HeaderValue::from_str(&integration.version.etag()).expect("an etag is a quoted number")
}
