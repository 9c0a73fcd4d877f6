//! Route matching and the `spin-*` request headers of Spin's HTTP trigger (crates/routes and
//! crates/trigger-http/src/headers.rs): the same matcher (routefinder), the same precedence
//! (exact segments beat `:name`, which beats the trailing wildcard; longer prefixes win), the
//! same trailing-slash handling, and the same header values.

use std::net::SocketAddr;

use anyhow::{anyhow, Result};
use indexmap_lite::OrderedRoutes;

use crate::manifest::HttpRoute;

/// The routes of an application's HTTP trigger.
pub struct Router {
    inner: routefinder::Router<RouteHandler>,
}

#[derive(Debug, Clone)]
struct RouteHandler {
    component: String,
    /// The route as written in the manifest (Spin's `raw_route`).
    raw_route: String,
    /// The route with the base (always `/` in manifest v2) applied (Spin's `based_route`).
    based_route: String,
}

/// What a request path matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub component: String,
    pub raw_route: String,
    pub based_route: String,
    /// `:name` captures, in route order, as they appear in the path (not percent-decoded).
    pub named_wildcards: Vec<(String, String)>,
    /// The part of the path the trailing `/...` matched, Spin's way (empty for exact routes).
    pub path_info: String,
}

impl Router {
    /// Builds the router; when two triggers have the same route the later one wins, as in Spin.
    pub fn build(routes: &[HttpRoute]) -> Result<Self> {
        let mut deduplicated = OrderedRoutes::default();
        for route in routes {
            deduplicated.insert(route.route.clone(), route.component.clone());
        }
        let mut inner = routefinder::Router::new();
        for (raw_route, component) in deduplicated.into_entries() {
            let based_route = sanitize_with_base("/", &raw_route);
            let spec = match based_route.strip_suffix("/...") {
                Some(prefix) => format!("{prefix}/*"),
                None => based_route.clone(),
            };
            let handler = RouteHandler { component: component.clone(), raw_route, based_route };
            inner
                .add(spec.as_str(), handler)
                .map_err(|e| anyhow!("Error parsing route {spec} associated with component {component}: {e}"))?;
        }
        Ok(Self { inner })
    }

    /// The best route for a request path, or `None` (Spin then answers 404 with an empty body).
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let best = self.inner.best_match(path)?;
        let handler = best.handler();
        let captures = best.captures();
        let named_wildcards = captures.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
        // Spin keeps the trailing slash that routefinder drops.
        let path_info = match captures.wildcard() {
            None => String::new(),
            Some(wildcard) => match (wildcard.is_empty(), path.ends_with('/')) {
                (true, false) => String::new(),
                (true, true) => "/".to_string(),
                (false, false) => format!("/{wildcard}"),
                (false, true) => format!("/{wildcard}/"),
            },
        };
        Some(RouteMatch {
            component: handler.component.clone(),
            raw_route: handler.raw_route.clone(),
            based_route: handler.based_route.clone(),
            named_wildcards,
            path_info,
        })
    }

    /// `(route, component)` pairs, e.g. for printing at startup.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inner.iter().map(|(_, h)| (h.based_route.as_str(), h.component.as_str()))
    }
}

impl RouteMatch {
    /// The route without its trailing `/...` (Spin's `spin-component-route`).
    pub fn raw_route_or_prefix(&self) -> &str {
        self.raw_route.strip_suffix("/...").unwrap_or(&self.raw_route)
    }

    /// The headers Spin adds to the request a component sees, in Spin's order.
    /// `full_url` is `scheme://host` + path and query of the request.
    pub fn spin_headers(&self, full_url: &str, client_addr: SocketAddr) -> Vec<(String, String)> {
        let mut headers = vec![
            ("spin-path-info".to_string(), self.path_info.clone()),
            ("spin-full-url".to_string(), full_url.to_string()),
            ("spin-matched-route".to_string(), self.based_route.clone()),
            ("spin-base-path".to_string(), "/".to_string()),
            ("spin-raw-component-route".to_string(), self.raw_route.clone()),
            ("spin-component-route".to_string(), self.raw_route_or_prefix().to_string()),
            ("spin-client-addr".to_string(), client_addr.to_string()),
        ];
        for (name, value) in &self.named_wildcards {
            // Spin builds `SPIN_PATH_MATCH_<NAME>` and then turns `_` into `-` and lower-cases.
            let key = format!("spin-path-match-{}", name.to_ascii_lowercase().replace('_', "-"));
            headers.push((key, value.clone()));
        }
        headers
    }
}

/// Spin's `sanitize_with_base`: absolute route, one trailing slash stripped from base and route.
fn sanitize_with_base(base: &str, route: &str) -> String {
    let route = if route.starts_with('/') { route.to_string() } else { format!("/{route}") };
    let strip = |s: &str| s.strip_suffix('/').unwrap_or(s).to_string();
    format!("{}{}", strip(base), strip(&route))
}

/// Insertion-ordered map where re-inserting a key replaces its value in place (like IndexMap).
mod indexmap_lite {
    #[derive(Default)]
    pub struct OrderedRoutes(Vec<(String, String)>);

    impl OrderedRoutes {
        pub fn insert(&mut self, route: String, component: String) {
            match self.0.iter_mut().find(|(r, _)| *r == route) {
                Some(entry) => entry.1 = component,
                None => self.0.push((route, component)),
            }
        }

        pub fn into_entries(self) -> Vec<(String, String)> {
            self.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        let routes: Vec<HttpRoute> = routes
            .iter()
            .map(|(route, component)| HttpRoute { route: route.to_string(), component: component.to_string() })
            .collect();
        Router::build(&routes).unwrap()
    }

    fn component(router: &Router, path: &str) -> Option<String> {
        router.route(path).map(|m| m.component)
    }

    #[test]
    fn exact_routes_also_match_with_a_trailing_slash() {
        let r = router(&[("/admin/integrations", "list"), ("/admin/integrations/:id", "item")]);
        for path in ["/admin/integrations", "/admin/integrations/"] {
            let m = r.route(path).unwrap();
            assert_eq!(m.component, "list", "{path}");
            assert_eq!(m.path_info, "", "{path}");
        }
    }

    #[test]
    fn named_wildcards_capture_one_segment_without_decoding() {
        let r = router(&[("/admin/integrations", "list"), ("/admin/integrations/:id", "item")]);
        let m = r.route("/admin/integrations/fa%20b").unwrap();
        assert_eq!(m.component, "item");
        assert_eq!(m.named_wildcards, [("id".to_string(), "fa%20b".to_string())]);
        assert_eq!(component(&r, "/admin/integrations/a/b"), None);
        assert_eq!(component(&r, "/admin"), None);
    }

    #[test]
    fn exact_beats_named_beats_wildcard_and_longest_prefix_wins() {
        let r = router(&[
            ("/...", "all"),
            ("/one/...", "one"),
            ("/one/two/...", "one-two"),
            ("/one/:name", "named"),
            ("/one/exact", "exact"),
        ]);
        assert_eq!(component(&r, "/one/exact").as_deref(), Some("exact"));
        assert_eq!(component(&r, "/one/else").as_deref(), Some("named"));
        assert_eq!(component(&r, "/one/two/three").as_deref(), Some("one-two"));
        assert_eq!(component(&r, "/one/else/more").as_deref(), Some("one"));
        assert_eq!(component(&r, "/other").as_deref(), Some("all"));
        assert_eq!(component(&r, "/").as_deref(), Some("all"));
    }

    #[test]
    fn trailing_wildcard_path_info_keeps_trailing_slashes() {
        let r = router(&[("/test/...", "t")]);
        let info = |path: &str| r.route(path).unwrap().path_info;
        assert_eq!(info("/test"), "");
        assert_eq!(info("/test/"), "/");
        assert_eq!(info("/test/hello"), "/hello");
        assert_eq!(info("/test/hello/"), "/hello/");
        assert_eq!(info("/test/a/b"), "/a/b");
    }

    #[test]
    fn a_later_duplicate_route_wins() {
        let r = router(&[("/foo", "first"), ("/foo", "second")]);
        assert_eq!(component(&r, "/foo").as_deref(), Some("second"));
        assert_eq!(r.routes().count(), 1);
    }

    #[test]
    fn headers_hold_what_spin_puts_in_them() {
        let r = router(&[("/foo/:user_id/...", "c")]);
        let m = r.route("/foo/42/bar").unwrap();
        let client: SocketAddr = "127.0.0.1:8777".parse().unwrap();
        let headers = m.spin_headers("http://localhost:3000/foo/42/bar?x=1", client);
        let get = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap();
        assert_eq!(get("spin-full-url"), "http://localhost:3000/foo/42/bar?x=1");
        assert_eq!(get("spin-path-info"), "/bar");
        assert_eq!(get("spin-matched-route"), "/foo/:user_id/...");
        assert_eq!(get("spin-raw-component-route"), "/foo/:user_id/...");
        assert_eq!(get("spin-component-route"), "/foo/:user_id");
        assert_eq!(get("spin-base-path"), "/");
        assert_eq!(get("spin-client-addr"), "127.0.0.1:8777");
        assert_eq!(get("spin-path-match-user-id"), "42");
    }

    #[test]
    fn a_route_written_with_a_trailing_slash_is_sanitized() {
        let r = router(&[("/docs/", "d")]);
        let m = r.route("/docs").unwrap();
        assert_eq!(m.based_route, "/docs");
        assert_eq!(m.raw_route, "/docs/");
    }
}
