//! `GET /openapi.json` and `GET /docs`: the API description, kept in one file of this
//! crate, and a self-contained page that renders it (no outside server is reached).

use http::header::{HeaderValue, CONTENT_SECURITY_POLICY};
use http::request::Parts;
use http::StatusCode;

use super::response::with_body;
use crate::Response;

pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");
const DOCS_HTML: &str = include_str!("../../docs.html");

/// The page's script and style are inline and it only talks to its own origin.
const DOCS_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'";

/// `/docs` is the page; anything else this component serves is the description.
pub fn document(request: &Parts) -> Response {
    if request.uri.path().trim_end_matches('/').ends_with("/docs") {
        let mut page = with_body(StatusCode::OK, "text/html; charset=utf-8", DOCS_HTML.into());
        page.headers_mut().insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(DOCS_CSP));
        page
    } else {
        with_body(StatusCode::OK, "application/json", OPENAPI_JSON.into())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;
    use crate::api::{Route, MAX_BODY_BYTES};
    use crate::domain::{MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS};

    fn spec() -> Value {
        serde_json::from_str(OPENAPI_JSON).expect("openapi.json is JSON")
    }

    /// The routes of `spin.toml`, in OpenAPI's spelling (`:id` becomes `{id}`).
    fn spin_routes() -> Vec<String> {
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spin.toml");
        let manifest = std::fs::read_to_string(&manifest).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
        let routes: Vec<String> = manifest
            .lines()
            .filter_map(|line| line.trim().strip_prefix("route")?.trim().strip_prefix('=')?.trim().strip_prefix('"'))
            .map(|route| {
                let route = route.split('"').next().unwrap();
                route.split('/').map(|s| s.strip_prefix(':').map_or(s.to_owned(), |p| format!("{{{p}}}"))).collect()
            })
            .map(|segments: Vec<String>| segments.join("/"))
            .collect();
        assert!(routes.len() >= 8, "spin.toml routes not found: {routes:?}");
        routes
    }

    fn route_of(path: &str) -> Route {
        match path {
            "/admin/integrations" | "/admin/integrations/" => Route::List,
            "/admin/integrations/{id}" => Route::Item,
            "/admin/integrations/{id}/history" => Route::History,
            "/admin/integrations/{id}/history/{version}" => Route::Version(1),
            "/admin/integrations/{id}/history/{version}/restore" => Route::Restore(1),
            "/admin/keys" => Route::Keys,
            "/admin/keys/reseal" => Route::Reseal,
            "/health" => Route::Health,
            "/readiness" | "/ready" => Route::Readiness,
            "/metrics" => Route::Metrics,
            "/openapi.json" | "/docs" => Route::OpenApi,
            other => panic!("openapi.json describes {other}, which no component serves"),
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_of_this_version() {
        let spec = spec();
        assert!(spec["openapi"].as_str().unwrap().starts_with("3.1."));
        assert_eq!(spec["info"]["version"], env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn every_spin_route_is_described_with_exactly_the_methods_it_serves() {
        let spec = spec();
        let paths = spec["paths"].as_object().unwrap();
        let mut expected: BTreeSet<String> = spin_routes().into_iter().collect();
        // The admin UI's spelling: Spin serves it on the same route, without a redirect.
        expected.insert("/admin/integrations/".into());
        let described: BTreeSet<String> = paths.keys().cloned().collect();
        assert_eq!(described, expected);
        for (path, item) in paths {
            let served: BTreeSet<String> =
                route_of(path).methods().iter().map(|m| m.as_str().to_ascii_lowercase()).collect();
            let documented: BTreeSet<String> = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]
                .into_iter()
                .filter(|method| item.get(*method).is_some())
                .map(str::to_owned)
                .collect();
            assert_eq!(documented, served, "{path}");
        }
    }

    #[test]
    fn every_ref_resolves_and_operation_ids_are_unique() {
        fn walk<'a>(value: &'a Value, refs: &mut Vec<&'a str>, ids: &mut Vec<&'a str>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(target)) = map.get("$ref") {
                        refs.push(target);
                    }
                    if let Some(Value::String(id)) = map.get("operationId") {
                        ids.push(id);
                    }
                    map.values().for_each(|child| walk(child, refs, ids));
                }
                Value::Array(items) => items.iter().for_each(|child| walk(child, refs, ids)),
                _ => {}
            }
        }
        let spec = spec();
        let (mut refs, mut ids) = (Vec::new(), Vec::new());
        walk(&spec, &mut refs, &mut ids);
        assert!(refs.len() > 20);
        for target in refs {
            let pointer = target.strip_prefix('#').unwrap_or_else(|| panic!("{target} is not local"));
            assert!(spec.pointer(pointer).is_some(), "{target} does not resolve");
        }
        let unique: BTreeSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "duplicate operationId in {ids:?}");
    }

    #[test]
    fn the_documented_limits_are_the_enforced_ones() {
        let spec = spec();
        let schemas = &spec["components"]["schemas"];
        for schema in ["Integration", "IntegrationUpdate"] {
            let properties = &schemas[schema]["properties"];
            assert_eq!(properties["name"]["maxLength"], MAX_NAME_CHARS, "{schema}");
            assert_eq!(properties["name"]["minLength"], 1, "{schema}");
            assert_eq!(properties["description"]["maxLength"], MAX_DESCRIPTION_CHARS, "{schema}");
        }
        assert_eq!(MAX_BODY_BYTES, 64 * 1024, "the spec says 64 KiB");
        let put = &spec["paths"]["/admin/integrations/{id}"]["put"];
        assert!(put["requestBody"]["description"].as_str().unwrap().contains("64 KiB"));
    }

    #[test]
    fn the_docs_page_is_self_contained() {
        let page = DOCS_HTML.to_ascii_lowercase();
        assert!(page.contains("<noscript>") && page.contains("openapi.json"));
        // Nothing may be loaded from another server: the CSP would block it anyway.
        for outside in ["http://", "https://", "src=", "@import", "url("] {
            assert!(!page.contains(outside), "docs.html refers to {outside}");
        }
        assert!(DOCS_HTML.len() < 16 * 1024, "docs.html is {} bytes", DOCS_HTML.len());
    }
}
