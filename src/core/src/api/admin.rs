//! `/admin/integrations` and `/admin/integrations/{id}`: what the admin UI calls.

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH};
use http::{Method, StatusCode};

use super::auth::require_bearer;
use super::cors::CorsPolicy;
use super::response::{empty, json, ApiError};
use super::{check_method, error_response, options};
use crate::config::Storage;
use crate::domain::{Integration, IntegrationId, IntegrationUpdate, Precondition};
use crate::host::Host;
use crate::store::{Store, UpdateOutcome};
use crate::telemetry::Telemetry;
use crate::{Endpoint, Request, Response};

/// Bodies above this are refused before they are parsed.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

const NOT_FOUND: ApiError = ApiError::NotFound("Integration not found");

/// Spin puts the `:id` segment of the route here, still percent-encoded.
const PATH_MATCH_ID: &str = "spin-path-match-id";

pub fn serve(endpoint: Endpoint, request: &Request, host: &dyn Host, telemetry: &Telemetry) -> Response {
    let cors = CorsPolicy::from_variables(host);
    let mut response = if CorsPolicy::is_preflight(request) {
        cors.preflight(request, endpoint.methods())
    } else if request.method() == Method::OPTIONS {
        options(endpoint)
    } else {
        answer(endpoint, request, host).unwrap_or_else(|error| error_response(error, telemetry))
    };
    cors.decorate(request, &mut response);
    // Integrations carry credentials: no cache along the way may keep a copy.
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn answer(endpoint: Endpoint, request: &Request, host: &dyn Host) -> Result<Response, ApiError> {
    check_method(endpoint, request)?;
    require_bearer(request, host.get("admin_token").as_deref())?;
    let open = || host.open_store(&Storage::from_variables(host));
    match endpoint {
        Endpoint::List => Ok(json(StatusCode::OK, &open()?.list()?)),
        _ if request.method() == Method::PUT => {
            if request.body().len() > MAX_BODY_BYTES {
                return Err(ApiError::PayloadTooLarge);
            }
            let id = path_id(request)?;
            let content_type = request.headers().get(CONTENT_TYPE).and_then(|value| value.to_str().ok());
            let update = IntegrationUpdate::parse(&id, content_type, request.body()).map_err(ApiError::Validation)?;
            put(&*open()?, &id, &update, request)
        }
        _ => {
            let id = path_id(request)?;
            get(&*open()?, &id, request)
        }
    }
}

fn path_id(request: &Request) -> Result<IntegrationId, ApiError> {
    let raw = request.headers().get(PATH_MATCH_ID).and_then(|value| value.to_str().ok());
    raw.and_then(IntegrationId::parse).ok_or(NOT_FOUND)
}

fn get(store: &dyn Store, id: &IntegrationId, request: &Request) -> Result<Response, ApiError> {
    let integration = store.get(id)?.ok_or(NOT_FOUND)?;
    let if_none_match = request.headers().get(IF_NONE_MATCH).and_then(|value| value.to_str().ok());
    // If-None-Match compares weakly: `W/"3"` still names version 3.
    let unchanged = if_none_match
        .is_some_and(|tags| Precondition::parse_if_match(&tags.replace("W/", "")).is_met_by(integration.version));
    if unchanged {
        let mut response = empty(StatusCode::NOT_MODIFIED);
        response.headers_mut().insert(ETAG, etag(&integration));
        return Ok(response);
    }
    Ok(with_etag(&integration))
}

fn put(
    store: &dyn Store,
    id: &IntegrationId,
    update: &IntegrationUpdate,
    request: &Request,
) -> Result<Response, ApiError> {
    let precondition =
        request.headers().get(IF_MATCH).map(|value| Precondition::parse_if_match(value.to_str().unwrap_or_default()));
    match store.update(id, update, precondition.as_ref())? {
        UpdateOutcome::Updated(integration) => Ok(with_etag(&integration)),
        UpdateOutcome::NotFound => Err(NOT_FOUND),
        UpdateOutcome::PreconditionFailed => Err(ApiError::PreconditionFailed),
    }
}

fn with_etag(integration: &Integration) -> Response {
    let mut response = json(StatusCode::OK, integration);
    response.headers_mut().insert(ETAG, etag(integration));
    response
}

fn etag(integration: &Integration) -> HeaderValue {
    HeaderValue::from_str(&integration.version.etag()).expect("an etag is a quoted number")
}
