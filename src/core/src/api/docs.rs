//! `GET /openapi.json` and `GET /docs`: the API description, kept in one file of this
//! crate, and a self-contained page that renders it (no outside server is reached).

use http::header::{HeaderValue, CONTENT_SECURITY_POLICY};
use http::{Method, StatusCode};

use super::cors::CorsPolicy;
use super::response::{with_body, ApiError};
use super::{check_method, options};
use crate::host::Host;
use crate::{Endpoint, Request, Response};

pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");
const DOCS_HTML: &str = include_str!("../../docs.html");

/// The page's script and style are inline and it only talks to its own origin.
const DOCS_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'";

pub fn serve(request: &Request, host: &dyn Host) -> Response {
    let cors = CorsPolicy::from_variables(host);
    let mut response = if CorsPolicy::is_preflight(request) {
        cors.preflight(request, Endpoint::OpenApi.methods())
    } else if request.method() == Method::OPTIONS {
        options(Endpoint::OpenApi)
    } else {
        check_method(Endpoint::OpenApi, request).map_or_else(ApiError::into_response, |()| document(request))
    };
    cors.decorate(request, &mut response);
    response
}

fn document(request: &Request) -> Response {
    if request.uri().path().trim_end_matches('/').ends_with("/docs") {
        let mut page = with_body(StatusCode::OK, "text/html; charset=utf-8", DOCS_HTML.into());
        page.headers_mut().insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(DOCS_CSP));
        page
    } else {
        with_body(StatusCode::OK, "application/json", OPENAPI_JSON.into())
    }
}
