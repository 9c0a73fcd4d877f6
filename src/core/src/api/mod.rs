//! From request to response: the route table, method dispatch, CORS, auth, and the request's
//! log line. Database work goes through [`crate::service`].

mod admin;
mod auth;
mod cors;
mod docs;
mod history;
mod keys;
mod metrics;
mod probes;
mod response;

use std::time::Instant;

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH};
use http::request::Parts;
use http::{Method, StatusCode};
use serde_json::json;

use crate::body::{Body, BodyError};
use crate::config::LogLevel;
use crate::domain::{Actor, IntegrationId};
use crate::host::Host;
use crate::service::{CacheUse, Service};
use crate::store::StoreError;
use crate::telemetry::Telemetry;
use crate::{Component, Endpoint, Request, Response};
use cors::CorsPolicy;
use response::{allow_header, ApiError};

/// Bodies above this are refused: from `Content-Length` before anything is read, else while
/// reading.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Spin puts the part of the path after a wildcard route's prefix here.
const PATH_INFO: &str = "spin-path-info";
/// Spin puts the `:id` segment of a route here, still percent-encoded.
const PATH_MATCH_ID: &str = "spin-path-match-id";
/// Spin's `ip:port` of the client.
const CLIENT_ADDR: &str = "spin-client-addr";

const GET: &[Method] = &[Method::GET, Method::HEAD, Method::OPTIONS];
const GET_PUT: &[Method] = &[Method::GET, Method::HEAD, Method::PUT, Method::OPTIONS];
const POST: &[Method] = &[Method::POST, Method::OPTIONS];

/// What a request asks for: the component's endpoint, refined by the rest of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/admin/integrations[/]`
    List,
    /// `/admin/integrations/{id}`
    Item,
    /// `/admin/integrations/{id}/history`
    History,
    /// `/admin/integrations/{id}/history/{version}`
    Version(i64),
    /// `/admin/integrations/{id}/history/{version}/restore`
    Restore(i64),
    /// `/admin/keys`
    Keys,
    /// `/admin/keys/reseal`
    Reseal,
    /// `/health`
    Health,
    /// `/readiness`, `/ready`
    Readiness,
    /// `/metrics`
    Metrics,
    /// `/openapi.json`, `/docs`
    OpenApi,
    /// A path under a wildcard route that names nothing.
    Unknown,
}

impl Route {
    /// The route table: what each path serves.
    pub fn of(endpoint: Endpoint, path_info: &str) -> Self {
        let rest: Vec<&str> = path_info.split('/').filter(|segment| !segment.is_empty()).collect();
        match (endpoint, rest.as_slice()) {
            (Endpoint::List, _) => Self::List,
            (Endpoint::Item, _) => Self::Item,
            (Endpoint::History, []) => Self::History,
            (Endpoint::History, [version]) => version.parse().map_or(Self::Unknown, Self::Version),
            (Endpoint::History, [version, "restore"]) => version.parse().map_or(Self::Unknown, Self::Restore),
            (Endpoint::Keys, []) => Self::Keys,
            (Endpoint::Keys, ["reseal"]) => Self::Reseal,
            (Endpoint::History | Endpoint::Keys, _) => Self::Unknown,
            (Endpoint::Health, _) => Self::Health,
            (Endpoint::Readiness, _) => Self::Readiness,
            (Endpoint::Metrics, _) => Self::Metrics,
            (Endpoint::OpenApi, _) => Self::OpenApi,
        }
    }

    pub fn methods(self) -> &'static [Method] {
        match self {
            Self::Item => GET_PUT,
            Self::Restore(_) | Self::Reseal => POST,
            Self::List
            | Self::History
            | Self::Version(_)
            | Self::Keys
            | Self::Health
            | Self::Readiness
            | Self::Metrics
            | Self::OpenApi
            | Self::Unknown => GET,
        }
    }

    /// Routes under `/admin` (an unknown one can only be under its wildcard routes): bearer-guarded,
    /// CORS for the admin UI, never cached.
    fn is_admin(self) -> bool {
        match self {
            Self::List
            | Self::Item
            | Self::History
            | Self::Version(_)
            | Self::Restore(_)
            | Self::Keys
            | Self::Reseal
            | Self::Unknown => true,
            Self::Health | Self::Readiness | Self::Metrics | Self::OpenApi => false,
        }
    }
}

impl Endpoint {
    /// The component id in spin.toml, as log lines name it.
    pub fn component(self) -> &'static str {
        match self {
            Self::List => "integrations-list",
            Self::Item => "integrations-item",
            Self::History => "integrations-history",
            Self::Keys => "integrations-keys",
            Self::Health => "health",
            Self::Readiness => "readiness",
            Self::Metrics => "metrics",
            Self::OpenApi => "openapi",
        }
    }
}

/// One request, as the handlers see it.
pub struct Call<'a> {
    pub route: Route,
    pub parts: Parts,
    body: Body,
    pub host: &'a dyn Host,
    pub telemetry: Telemetry,
}

impl<'a> Call<'a> {
    fn header(&self, name: &str) -> Option<&str> {
        self.parts.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The integration id of the path; any id that cannot exist is not found.
    fn path_id(&self) -> Result<IntegrationId, ApiError> {
        self.header(PATH_MATCH_ID).and_then(IntegrationId::from_path_segment).ok_or(admin::NOT_FOUND)
    }

    /// Who is asking, for the history.
    fn actor(&self, authenticated: bool) -> Actor {
        Actor {
            request_id: Some(self.telemetry.request_id.clone()),
            client_addr: self.header(CLIENT_ADDR).map(str::to_owned),
            authenticated,
        }
    }

    /// The body, if it is at most [`MAX_BODY_BYTES`]: refused from `Content-Length` without
    /// reading when it says more, and otherwise read no further than the limit.
    fn body(&mut self) -> Result<Vec<u8>, ApiError> {
        let declared = self.header(CONTENT_LENGTH.as_str()).and_then(|length| length.trim().parse::<u64>().ok());
        if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
            return Err(ApiError::PayloadTooLarge);
        }
        self.body.read_up_to(MAX_BODY_BYTES).map_err(|error| match error {
            BodyError::TooLarge => ApiError::PayloadTooLarge,
            BodyError::Broken => ApiError::BadRequest("There was an error parsing the body"),
        })
    }

    /// The service for this request, using the read-through cache as `cache` says.
    fn service(&self, cache: CacheUse) -> Service<'_> {
        let telemetry = &self.telemetry;
        let on_trouble = Box::new(move |reason: &str| {
            telemetry.log(
                LogLevel::Warn,
                "cache unavailable",
                json!({ "reason": crate::redact::short_reason(reason) }),
            );
        });
        Service::open(self.host, cache, on_trouble)
    }

    fn retention(&self) -> u32 {
        self.host.number("history_retention").max(1)
    }
}

/// Serves one request for the component `C` and writes its log line.
pub fn handle<C: Component>(request: Request, host: &dyn Host) -> Response {
    let endpoint = C::ENDPOINT;
    let started = Instant::now();
    // Liveness is given no variables at all, so it does not ask for any.
    let level = if endpoint == Endpoint::Health { LogLevel::Info } else { LogLevel::from_variables(host) };
    let (parts, body) = request.into_parts();
    let telemetry = Telemetry::start(endpoint.component(), level, &parts);
    let path_info = parts.headers.get(PATH_INFO).and_then(|value| value.to_str().ok()).unwrap_or_default();
    let route = Route::of(endpoint, path_info);
    let mut call = Call { route, parts, body, host, telemetry };
    let mut response = dispatch::<C>(&mut call);
    // HEAD is GET without the body (the headers stay, as FastAPI sends them).
    if call.parts.method == Method::HEAD {
        response.body_mut().clear();
    }
    if let Ok(id) = HeaderValue::from_str(&call.telemetry.request_id) {
        response.headers_mut().insert("x-request-id", id);
    }
    call.telemetry.request_done(&call.parts, response.status().as_u16(), started.elapsed());
    response
}

fn dispatch<C: Component>(call: &mut Call) -> Response {
    let route = call.route;
    let speaks_cors = route.is_admin() || route == Route::OpenApi;
    let cors = (speaks_cors && CorsPolicy::applies_to(&call.parts)).then(|| CorsPolicy::from_variables(call.host));
    let mut response = match &cors {
        // A path nothing serves is not found, whatever the method (as FastAPI's router answers).
        _ if route == Route::Unknown => ApiError::NotFound("Not Found").into_response(),
        Some(cors) if CorsPolicy::is_preflight(&call.parts) => cors.preflight(&call.parts, route.methods()),
        _ if call.parts.method == Method::OPTIONS => options(route),
        _ => answer::<C>(call).unwrap_or_else(|error| error_response(error, &call.telemetry)),
    };
    if speaks_cors {
        CorsPolicy::vary(&mut response);
    }
    if let Some(cors) = &cors {
        cors.decorate(&call.parts, &mut response);
    }
    if route.is_admin() {
        // Integrations carry credentials: no cache along the way may keep a copy.
        response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Dispatches on the component first: `C::ENDPOINT` is a constant of each component's build, so
/// the others' handlers are left out of its binary.
fn answer<C: Component>(call: &mut Call) -> Result<Response, ApiError> {
    if !call.route.methods().contains(&call.parts.method) {
        return Err(ApiError::MethodNotAllowed(call.route.methods()));
    }
    let authenticated = if call.route.is_admin() {
        auth::require_bearer(&call.parts, call.host.get("admin_token").as_deref())?
    } else {
        false
    };
    match (C::ENDPOINT, call.route) {
        (Endpoint::List, _) => admin::list(call),
        (Endpoint::Item, _) if call.parts.method == Method::PUT => admin::put(call, authenticated),
        (Endpoint::Item, _) => admin::get(call),
        (Endpoint::History, Route::Version(version)) => history::version(call, version),
        (Endpoint::History, Route::Restore(version)) => history::restore(call, version, authenticated),
        (Endpoint::History, Route::History) => history::list(call),
        (Endpoint::Keys, Route::Reseal) => keys::reseal(call),
        (Endpoint::Keys, Route::Keys) => keys::report(call),
        // Answered in `dispatch`: Route::of gives these endpoints no other route.
        (Endpoint::History | Endpoint::Keys, _) => Err(ApiError::NotFound("Not Found")),
        (Endpoint::Health, _) => Ok(probes::health()),
        (Endpoint::Readiness, _) => Ok(probes::readiness(call)),
        (Endpoint::Metrics, _) => metrics::serve(call),
        (Endpoint::OpenApi, _) => Ok(docs::document(&call.parts)),
    }
}

/// The answer to a plain `OPTIONS` (not a CORS preflight).
fn options(route: Route) -> Response {
    let mut response = response::empty(StatusCode::NO_CONTENT);
    response.headers_mut().insert(http::header::ALLOW, allow_header(route.methods()));
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
mod tests;
