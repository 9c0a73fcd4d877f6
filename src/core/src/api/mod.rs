//! From request to response: the route table, method dispatch, CORS, auth, and the request's
//! log line. Database work goes through [`crate::service`].

mod admin;
mod auth;
mod cors;
mod docs;
mod history;
mod keys;
mod metrics;
pub mod openapi;
mod probes;
mod response;
pub mod routes;

use std::time::Instant;

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, X_CONTENT_TYPE_OPTIONS};
use http::request::Parts;
use http::{Method, StatusCode};
use serde_json::json;

use crate::body::{Body, BodyError};
use crate::config::{Config, LogLevel, Misconfigured};
use crate::domain::{Actor, IntegrationId};
use crate::host::Host;
use crate::service::{CacheUse, Service};
use crate::store::StoreError;
use crate::telemetry::Telemetry;
use crate::{Component, Endpoint, Request, Response};
pub use auth::{ApiToken, ApiTokens};
pub use cors::CorsPolicy;
use response::{allow_header, ApiError};
use routes::{Auth, Browsers, PathParams, Route, RouteDef};

/// Bodies above this are refused: from `Content-Length` before anything is read, else while
/// reading.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Spin's `ip:port` of the client.
const CLIENT_ADDR: &str = "spin-client-addr";

/// One request, as the handlers see it.
pub struct Call<'a> {
    pub route: Route,
    /// `{id}` of the path, still percent-encoded.
    id: Option<String>,
    /// `{version}` of the path.
    version: Option<i64>,
    pub parts: Parts,
    body: Body,
    pub host: &'a dyn Host,
    pub telemetry: Telemetry,
    /// The name of the configured token the request carried: the actor of its writes, and of
    /// its log line. `None` when the operation needs no token, or none is configured.
    caller: Option<String>,
}

impl<'a> Call<'a> {
    fn header(&self, name: &str) -> Option<&str> {
        self.parts.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// A list-valued header (`If-Match`, `If-None-Match`, `Cache-Control`) as one list: a sender
    /// may split a list over several field lines, which mean what one line joined by commas means
    /// (RFC 9110 5.3), so reading only the first would drop a condition. A line that is not text
    /// adds nothing to the list; `None` when the header is absent.
    fn header_list(&self, name: &str) -> Option<String> {
        let mut lines = self.parts.headers.get_all(name).iter().peekable();
        lines.peek()?;
        Some(lines.map(|line| line.to_str().unwrap_or_default()).collect::<Vec<_>>().join(", "))
    }

    /// The component's variables.
    fn config(&self) -> Config<'a> {
        Config(self.host)
    }

    /// The integration id of the path; any id that cannot exist is not found.
    fn path_id(&self) -> Result<IntegrationId, ApiError> {
        self.id.as_deref().and_then(IntegrationId::from_path_segment).ok_or(admin::NOT_FOUND)
    }

    /// The version of the path (the route matched only if it is an integer).
    fn path_version(&self) -> Result<i64, ApiError> {
        self.version.ok_or(ApiError::NotFound("Not Found"))
    }

    /// Who is asking, for the history.
    fn actor(&self) -> Actor {
        Actor {
            name: self.caller.clone(),
            authenticated: self.caller.is_some(),
            request_id: Some(self.telemetry.request_id.clone()),
            client_addr: self.header(CLIENT_ADDR).map(str::to_owned),
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
    fn service(&self, cache: CacheUse) -> Result<Service<'_>, ApiError> {
        let telemetry = &self.telemetry;
        let on_trouble = Box::new(move |reason: &str| {
            telemetry.log(
                LogLevel::Warn,
                "cache unavailable",
                json!({ "reason": crate::redact::short_reason(reason) }),
            );
        });
        Ok(Service::open(self.host, cache, on_trouble)?)
    }

    fn retention(&self) -> Result<u32, ApiError> {
        Ok(self.config().history_retention()?.get())
    }
}

/// What a route is, for the headers every answer of it gets. A path that names no route is
/// answered as the component's routes are (under `/admin`: `no-store`, CORS).
fn class(endpoint: Endpoint, route: Route) -> &'static RouteDef {
    route.def().or_else(|| endpoint.routes().next()).expect("every component serves a route")
}

/// Serves one request for the component `C` and writes its log line.
pub fn handle<C: Component>(request: Request, host: &dyn Host) -> Response {
    let endpoint = C::ENDPOINT;
    let started = Instant::now();
    // Liveness is given no variables at all, so it does not ask for any (a provider such as Vault
    // is asked on every read, and its outage must not fail liveness). Not knowing `log_level`, it
    // writes warn and above only, which its answers never are: no line per probe, whatever the
    // level (at `warn` the kubelet's probes used to be the only info lines). A log level that does
    // not parse is answered below (every request is then a 500); its own line is still written.
    let level = match endpoint {
        Endpoint::Health => Ok(LogLevel::Warn),
        _ => Config(host).log_level(),
    };
    let (parts, body) = request.into_parts();
    let telemetry = Telemetry::start(endpoint.component(), *level.as_ref().unwrap_or(&LogLevel::Info), &parts);
    let (route, PathParams { id, version }) = Route::of(endpoint, parts.uri.path());
    let id = id.map(str::to_owned);
    let mut call = Call { route, id, version, parts, body, host, telemetry, caller: None };
    let mut response = match level {
        // Readiness answers a misconfiguration itself, with its 503.
        Err(misconfigured) if route != Route::Readiness => {
            error_response(ApiError::Misconfigured(misconfigured), &call.telemetry)
        }
        _ => dispatch::<C>(&mut call),
    };
    // HEAD is GET without the body (the headers stay, as FastAPI sends them).
    if call.parts.method == Method::HEAD {
        response.body_mut().clear();
    }
    if let Ok(id) = HeaderValue::from_str(&call.telemetry.request_id) {
        response.headers_mut().insert("x-request-id", id);
    }
    // Integrations carry credentials as JSON: a browser must never read an answer as anything
    // but its declared type (OWASP's REST guidance; FastAPI leaves it to a middleware).
    response.headers_mut().insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    call.telemetry.request_done(&call.parts, call.caller.as_deref(), response.status().as_u16(), started.elapsed());
    response
}

fn dispatch<C: Component>(call: &mut Call) -> Response {
    let route = call.route;
    let class = class(C::ENDPOINT, route);
    let methods = route.def().map(RouteDef::methods).unwrap_or_default();
    // `const`: a component none of whose routes speaks CORS leaves that code out.
    let speaks_cors = const { C::ENDPOINT.speaks_cors() } && class.browsers == Browsers::Cors;
    let cors = match speaks_cors && CorsPolicy::applies_to(&call.parts) {
        true => call.config().cors_allowed_origins().map(Some),
        false => Ok(None),
    };
    let mut response = match &cors {
        // A path nothing serves is not found, whatever the method (as FastAPI's router answers).
        _ if route == Route::Unknown => ApiError::NotFound("Not Found").into_response(),
        Err(misconfigured) => error_response(ApiError::Misconfigured(*misconfigured), &call.telemetry),
        Ok(Some(cors)) if CorsPolicy::is_preflight(&call.parts) => cors.preflight(&call.parts, &methods),
        _ if call.parts.method == Method::OPTIONS => options(&methods),
        _ => answer::<C>(call).unwrap_or_else(|error| error_response(error, &call.telemetry)),
    };
    if speaks_cors {
        CorsPolicy::vary(&mut response);
    }
    if let Ok(Some(cors)) = &cors {
        cors.decorate(&call.parts, &mut response);
    }
    if class.is_admin() {
        // Integrations carry credentials: no cache along the way may keep a copy.
        response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The method's operation, once its caller may call it: the token is checked from the headers,
/// before any body is read (401 without a configured token, 403 when its scope falls short).
fn answer<C: Component>(call: &mut Call) -> Result<Response, ApiError> {
    let def = call.route.def().ok_or(ApiError::NotFound("Not Found"))?;
    let Some(operation) = def.operation(&call.parts.method) else {
        return Err(ApiError::MethodNotAllowed(def.methods()));
    };
    match operation.auth {
        // `const`: a component with no guarded route leaves the token checks out.
        _ if const { !C::ENDPOINT.guarded() } => {}
        Auth::Public => {}
        // A disabled `/metrics` is not there at all, token or not.
        Auth::MetricsToken if !call.config().metrics_enabled()? => return Err(ApiError::NotFound("Not Found")),
        Auth::MetricsToken => {
            let expected = call.config().metrics_token()?;
            call.caller = auth::scraper(&call.parts, expected.as_deref())?.map(str::to_owned);
        }
        Auth::AdminToken(needed) => {
            let tokens = call.config().admin_tokens()?;
            if let Some(token) = auth::caller(&call.parts, tokens.as_ref())? {
                // Named in the log line even when refused.
                call.caller = Some(token.name.clone());
                token.may(needed)?;
            }
        }
    }
    routes::dispatch::<C>(call.route, operation.method, call)
}

/// The answer to a plain `OPTIONS` (not a CORS preflight).
fn options(methods: &[Method]) -> Response {
    let mut response = response::empty(StatusCode::NO_CONTENT);
    response.headers_mut().insert(http::header::ALLOW, allow_header(methods));
    response
}

/// Turns an error into its response; database trouble and misconfiguration are logged with
/// their reason here, the one place that sees them, and never shown to the client.
fn error_response(error: ApiError, telemetry: &Telemetry) -> Response {
    match &error {
        ApiError::Store(StoreError::Unexpected(why)) => {
            telemetry.log(LogLevel::Error, "unexpected database error", json!({ "reason": why }))
        }
        ApiError::Store(StoreError::Unavailable(why)) => {
            telemetry.log(LogLevel::Warn, "database unavailable", json!({ "reason": why }))
        }
        ApiError::Misconfigured(Misconfigured { what, why }) => {
            telemetry.log(LogLevel::Error, "misconfigured", json!({ "variable": what, "reason": why }))
        }
        _ => {}
    }
    error.into_response()
}

#[cfg(test)]
mod tests;
