//! `/admin/integrations/{id}/history[/{version}[/restore]]`: every version an integration's
//! writes made, newest first, and restoring one of them as a new version.

use http::StatusCode;

use super::admin::{write_conditions, written_response, NOT_FOUND};
use super::response::{json, ApiError};
use super::Call;
use crate::domain::FieldError;
use crate::service::{CacheUse, RestoreError};
use crate::Response;

/// Versions per page unless `limit` says otherwise, and the most it may say.
pub const DEFAULT_PAGE: u32 = 20;
pub const MAX_PAGE: u32 = 100;

const VERSION_NOT_FOUND: ApiError = ApiError::NotFound("Version not found");

pub fn list(call: &mut Call) -> Result<Response, ApiError> {
    let id = call.path_id()?;
    let (before, limit) = page(call)?;
    let page = call.service(CacheUse::Writes)?.history(&id, before, limit)?.ok_or(NOT_FOUND)?;
    Ok(json(StatusCode::OK, &page))
}

pub fn version(call: &mut Call) -> Result<Response, ApiError> {
    let (id, version) = (call.path_id()?, call.path_version()?);
    let entry = call.service(CacheUse::Writes)?.version(&id, version)?.ok_or(NOT_FOUND)?.ok_or(VERSION_NOT_FOUND)?;
    Ok(json(StatusCode::OK, &entry))
}

pub fn restore(call: &mut Call) -> Result<Response, ApiError> {
    let (id, version) = (call.path_id()?, call.path_version()?);
    let conditions = write_conditions(call);
    let retention = call.retention()?;
    let restored = call.service(CacheUse::Writes)?.restore(&id, version, conditions, call.actor(), retention)?;
    match restored {
        Ok(written) => written_response(call, written),
        Err(RestoreError::NotFound) => Err(NOT_FOUND),
        Err(RestoreError::VersionNotFound) => Err(VERSION_NOT_FOUND),
        Err(RestoreError::Unreadable(why)) => {
            Err(ApiError::Conflict(format!("Version {version} cannot be restored: {why}")))
        }
    }
}

/// `?before=N&limit=M`, each optional; anything else in the query is ignored, as FastAPI does.
/// Names and values are read as FastAPI reads them (form-decoded: `%31` is `1`, `+` a space) and
/// an integer may have spaces around it, as pydantic allows.
fn page(call: &Call) -> Result<(Option<i64>, u32), ApiError> {
    let mut before = None;
    let mut limit = DEFAULT_PAGE;
    let mut errors = Vec::new();
    for pair in call.parts.uri.query().unwrap_or_default().split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = form_decoded(value);
        let integer = value.trim().parse::<i64>();
        match form_decoded(name).as_str() {
            "before" => match integer {
                Ok(value) => before = Some(value),
                Err(_) => errors.push(not_an_integer("before")),
            },
            "limit" => match integer {
                Ok(value) if value < 1 => errors.push(FieldError::at_query(
                    "limit",
                    "greater_than_equal",
                    "Input should be greater than or equal to 1",
                )),
                Ok(value) if value > i64::from(MAX_PAGE) => errors.push(FieldError::at_query(
                    "limit",
                    "less_than_equal",
                    &format!("Input should be less than or equal to {MAX_PAGE}"),
                )),
                Ok(value) => limit = value as u32,
                Err(_) => errors.push(not_an_integer("limit")),
            },
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok((before, limit))
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// A query string's name or value as a form decodes it: `+` is a space, then `%XX` escapes are
/// decoded (so `%2B` is `+`). A broken escape stays as it was sent (and is then no integer).
fn form_decoded(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    crate::domain::percent_decode(&spaced).unwrap_or(spaced)
}

fn not_an_integer(name: &str) -> FieldError {
    FieldError::at_query(name, "int_parsing", "Input should be a valid integer, unable to parse string as an integer")
}
