//! CORS, as the original app's middleware did it: any origin by default, credentials
//! allowed (so the origin is echoed, never `*`), any request header. `cors_allowed_origins`
//! narrows the origins to a comma-separated list; `none` allows no browser origin.

use http::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{Method, StatusCode};
use serde_json::json;

use super::response::{allow_header, empty, json};
use crate::config::Parse;
use http::request::Parts;

use crate::Response;

/// Response headers a browser script may read: the ETag for `If-Match`, and the ids.
const EXPOSED_HEADERS: &str = "ETag, X-Request-Id, Retry-After";
const PREFLIGHT_MAX_AGE_SECONDS: &str = "600";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsPolicy {
    AnyOrigin,
    Origins(Vec<String>),
}

/// `cors_allowed_origins`.
impl Parse for CorsPolicy {
    fn parse(origins: &str) -> Result<Self, &'static str> {
        Ok(match origins {
            "*" => Self::AnyOrigin,
            "none" => Self::Origins(Vec::new()),
            list => Self::Origins(
                list.split(',')
                    .map(|entry| entry.trim().trim_end_matches('/'))
                    .filter(|entry| !entry.is_empty())
                    .map(origin)
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
}

/// One entry of a list: an origin as a browser sends it, `scheme://host[:port]` (a trailing `/`
/// is forgiven). Anything else would silently match no browser (`*` or `none` inside a list, a
/// path, a user), so it is refused, and the pod is not ready until it is fixed.
fn origin(entry: &str) -> Result<String, &'static str> {
    let (scheme, authority) = entry
        .split_once("://")
        .ok_or("an entry of the list is not an origin (scheme://host[:port]); * and none stand alone")?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let authority_ok = !authority.is_empty()
        && !authority.contains(|c: char| matches!(c, '/' | '?' | '#' | '@' | '*' | ',') || c.is_whitespace());
    if scheme_ok && authority_ok {
        Ok(entry.to_owned())
    } else {
        Err("an entry of the list is not an origin (scheme://host[:port], no path)")
    }
}

impl CorsPolicy {
    fn allows(&self, origin: &str) -> bool {
        match self {
            Self::AnyOrigin => true,
            Self::Origins(origins) => origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin)),
        }
    }

    pub fn is_preflight(request: &Parts) -> bool {
        request.method == Method::OPTIONS
            && request.headers.contains_key(ORIGIN)
            && request.headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// Answers a preflight for an endpoint serving `methods`.
    pub fn preflight(&self, request: &Parts, methods: &[Method]) -> Response {
        let header = |name| request.headers.get(name).and_then(|value: &HeaderValue| value.to_str().ok());
        let origin = header(ORIGIN).unwrap_or_default();
        if !self.allows(origin) {
            return json(StatusCode::BAD_REQUEST, &json!({ "detail": "Disallowed CORS origin" }));
        }
        let requested = header(ACCESS_CONTROL_REQUEST_METHOD).unwrap_or_default();
        if !methods.iter().any(|method| method.as_str().eq_ignore_ascii_case(requested)) {
            return json(StatusCode::BAD_REQUEST, &json!({ "detail": "Disallowed CORS method" }));
        }
        let mut response = empty(StatusCode::NO_CONTENT);
        self.decorate(request, &mut response);
        let headers = response.headers_mut();
        headers.insert(ACCESS_CONTROL_ALLOW_METHODS, allow_header(methods));
        if let Some(requested_headers) = request.headers.get(ACCESS_CONTROL_REQUEST_HEADERS) {
            headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, requested_headers.clone());
        }
        headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(PREFLIGHT_MAX_AGE_SECONDS));
        response
    }

    /// Whether the request comes from a browser page (it names its origin): only then does an
    /// answer need the policy, so only then is `cors_allowed_origins` read.
    pub fn applies_to(request: &Parts) -> bool {
        request.headers.contains_key(ORIGIN)
    }

    /// Says that answers differ by `Origin`: every answer of a route that speaks CORS, so a cache
    /// on the way never serves one origin's answer to another.
    pub fn vary(response: &mut Response) {
        response.headers_mut().append(VARY, HeaderValue::from_static("Origin"));
    }

    /// Adds the CORS headers to a response, when the request came from an allowed origin.
    pub fn decorate(&self, request: &Parts, response: &mut Response) {
        let headers = response.headers_mut();
        let Some(origin) = request.headers.get(ORIGIN) else {
            return;
        };
        if !origin.to_str().is_ok_and(|origin| self.allows(origin)) {
            return;
        }
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED_HEADERS));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::MapVariables;
    use crate::config::Config;

    const ADMIN_UI: &str = "http://localhost:3000";

    fn preflight_request(origin: &str, method: &str) -> Parts {
        http::Request::builder()
            .method(Method::OPTIONS)
            .header(ORIGIN, origin)
            .header(ACCESS_CONTROL_REQUEST_METHOD, method)
            .header(ACCESS_CONTROL_REQUEST_HEADERS, "content-type,authorization")
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    fn policy(value: &str) -> CorsPolicy {
        Config(&MapVariables::default().with("cors_allowed_origins", value)).cors_allowed_origins().unwrap()
    }

    #[test]
    fn the_admin_uis_preflight_for_put_is_allowed_by_default() {
        let request = preflight_request(ADMIN_UI, "PUT");
        assert!(CorsPolicy::is_preflight(&request));
        let response = policy("*").preflight(&request, &[Method::GET, Method::PUT, Method::OPTIONS]);
        assert_eq!(response.status(), 204);
        let headers = response.headers();
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_ORIGIN], ADMIN_UI);
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_HEADERS], "content-type,authorization");
        assert!(headers[ACCESS_CONTROL_ALLOW_METHODS].to_str().unwrap().contains("PUT"));
    }

    #[test]
    fn a_listed_origin_passes_and_others_are_refused() {
        let policy = policy("https://admin.example.com, http://localhost:3000/");
        assert!(policy.allows(ADMIN_UI));
        let refused = policy.preflight(&preflight_request("https://evil.example", "PUT"), &[Method::PUT]);
        assert_eq!(refused.status(), 400);
        assert!(!refused.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
    }

    #[test]
    fn a_preflight_for_a_method_the_endpoint_lacks_is_refused() {
        let response = policy("*").preflight(&preflight_request(ADMIN_UI, "DELETE"), &[Method::GET]);
        assert_eq!(response.status(), 400);
    }

    #[test]
    fn simple_responses_echo_an_allowed_origin_and_expose_the_etag() {
        let request = http::Request::builder().header(ORIGIN, ADMIN_UI).body(()).unwrap().into_parts().0;
        let mut response = empty(StatusCode::OK);
        CorsPolicy::vary(&mut response);
        policy("*").decorate(&request, &mut response);
        assert_eq!(response.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], ADMIN_UI);
        assert!(response.headers()[ACCESS_CONTROL_EXPOSE_HEADERS].to_str().unwrap().contains("ETag"));
        assert_eq!(response.headers()[VARY], "Origin");
    }

    /// A list entry that no browser's `Origin` could equal is a misconfiguration, not an entry
    /// that silently refuses everyone: `*` or `none` inside a list, a path, a user, no scheme.
    #[test]
    fn a_list_entry_that_is_no_origin_is_misconfigured() {
        let parsed = |value: &str| CorsPolicy::parse(value);
        for bad in [
            "https://admin.example.com, *",
            "none, https://admin.example.com",
            "admin.example.com",
            "https://admin.example.com/ui",
            "https://user@admin.example.com",
            "https://admin.example.com?x",
            "https://",
            "://admin.example.com",
            "https://*.example.com",
        ] {
            assert!(parsed(bad).is_err(), "{bad}");
            let error = Config(&MapVariables::default().with("cors_allowed_origins", bad)).cors_allowed_origins();
            assert_eq!(error.map_err(|error| error.what), Err("cors_allowed_origins"), "{bad}");
        }
        let good = parsed("https://admin.example.com, http://localhost:3000/, http://[::1]:8080,").unwrap();
        let expected = ["https://admin.example.com", "http://localhost:3000", "http://[::1]:8080"];
        assert_eq!(good, CorsPolicy::Origins(expected.map(String::from).to_vec()));
    }

    #[test]
    fn unset_allows_any_origin_and_none_allows_none() {
        assert_eq!(Config(&MapVariables::default()).cors_allowed_origins(), Ok(CorsPolicy::AnyOrigin));
        assert_eq!(policy("none"), CorsPolicy::Origins(vec![]));
    }
}
