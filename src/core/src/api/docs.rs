//! `GET /openapi.json` and `GET /docs` (and `HEAD`): the API description, kept in one file of
//! this crate, and a self-contained page that renders it (no outside server is reached). The
//! unit tests below keep the description honest: the routes and methods it describes are the
//! route table's, its limits are the enforced ones, its settings schemas are the catalog's, and
//! its metrics example is what the encoder writes.

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

    use serde_json::{json, Value};

    use super::*;
    use crate::api::history::{DEFAULT_PAGE, MAX_PAGE};
    use crate::api::{Route, MAX_BODY_BYTES};
    use crate::catalog::{IntegrationType, CATALOG};
    use crate::domain::{FieldError, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_SETTINGS_DEPTH};
    use crate::metrics::{self, IntegrationSample, KeySample};
    use crate::service::RESEAL_BATCH;
    use crate::Endpoint;

    const METHODS: [&str; 8] = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];
    const ENDPOINTS: [Endpoint; 8] = [
        Endpoint::List,
        Endpoint::Item,
        Endpoint::History,
        Endpoint::Keys,
        Endpoint::Health,
        Endpoint::Readiness,
        Endpoint::Metrics,
        Endpoint::OpenApi,
    ];
    /// What a wildcard route's sub-path may be, in OpenAPI's spelling; only those the route
    /// table serves (not [`Route::Unknown`]) are expected in the description.
    const SUB_PATHS: [&str; 6] = ["", "/{version}", "/{version}/restore", "/reseal", "/restore", "/{version}/reseal"];

    fn spec() -> Value {
        serde_json::from_str(OPENAPI_JSON).expect("openapi.json is JSON")
    }

    fn resolve<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(target) => spec.pointer(target.trim_start_matches('#')).unwrap_or_else(|| panic!("{target}")),
            None => value,
        }
    }

    /// The `[[trigger.http]]` routes of `spin.toml`, in OpenAPI's spelling (`:id` becomes `{id}`),
    /// with the endpoint of the component each one names.
    fn spin_routes() -> Vec<(String, Endpoint)> {
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spin.toml");
        let manifest = std::fs::read_to_string(&manifest).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
        let quoted = |line: &str, key: &str| -> Option<String> {
            let value = line.trim().strip_prefix(key)?.trim().strip_prefix('=')?.trim().strip_prefix('"')?;
            Some(value.split('"').next().unwrap().to_owned())
        };
        let mut routes = Vec::new();
        let mut pending = None;
        for line in manifest.lines() {
            if let Some(route) = quoted(line, "route") {
                let segments: Vec<String> = route
                    .split('/')
                    .map(|s| s.strip_prefix(':').map_or(s.to_owned(), |p| format!("{{{p}}}")))
                    .collect();
                pending = Some(segments.join("/"));
            } else if let Some(component) = quoted(line, "component") {
                let route = pending.take().unwrap_or_else(|| panic!("component {component} without a route"));
                let endpoint = ENDPOINTS
                    .into_iter()
                    .find(|endpoint| endpoint.component() == component)
                    .unwrap_or_else(|| panic!("spin.toml routes {route} to {component}, which is no endpoint"));
                routes.push((route, endpoint));
            }
        }
        assert!(routes.len() >= 10, "spin.toml routes not found: {routes:?}");
        routes
    }

    /// A concrete path info for a sub-path in OpenAPI's spelling.
    fn concrete(sub_path: &str) -> String {
        sub_path.replace("{version}", "7")
    }

    /// The route the table gives a described path: the spin.toml route it falls under names the
    /// endpoint, and the rest of it is the path info.
    fn route_of(path: &str) -> Route {
        for (route, endpoint) in spin_routes() {
            let rest = match route.strip_suffix("/...") {
                Some(prefix) => path.strip_prefix(prefix).filter(|rest| rest.is_empty() || rest.starts_with('/')),
                // The admin UI's spelling of the list: Spin serves it on the same route.
                None => (path == route || path.strip_suffix('/') == Some(route.as_str())).then_some(""),
            };
            if let Some(rest) = rest {
                return Route::of(endpoint, &concrete(rest));
            }
        }
        panic!("openapi.json describes {path}, which no spin.toml route serves")
    }

    /// Where each route of the table is described. Exhaustive: a new route does not compile
    /// until it is placed here, and then the tests want it described.
    fn described_at(route: Route) -> &'static [&'static str] {
        match route {
            Route::List => &["/admin/integrations", "/admin/integrations/"],
            Route::Item => &["/admin/integrations/{id}"],
            Route::History => &["/admin/integrations/{id}/history"],
            Route::Version(_) => &["/admin/integrations/{id}/history/{version}"],
            Route::Restore(_) => &["/admin/integrations/{id}/history/{version}/restore"],
            Route::Keys => &["/admin/keys"],
            Route::Reseal => &["/admin/keys/reseal"],
            Route::Health => &["/health"],
            Route::Readiness => &["/readiness", "/ready"],
            Route::Metrics => &["/metrics"],
            Route::OpenApi => &["/openapi.json", "/docs"],
            Route::Unknown => &[],
        }
    }

    fn methods(route: Route) -> BTreeSet<String> {
        route.methods().iter().map(|m| m.as_str().to_ascii_lowercase()).collect()
    }

    fn operations(item: &Value) -> impl Iterator<Item = (&'static str, &Value)> {
        METHODS.into_iter().filter_map(move |method| Some((method, item.get(method)?)))
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
        let mut expected = BTreeSet::new();
        for (route, endpoint) in spin_routes() {
            match route.strip_suffix("/...") {
                Some(prefix) => expected.extend(
                    SUB_PATHS
                        .iter()
                        .filter(|sub_path| Route::of(endpoint, &concrete(sub_path)) != Route::Unknown)
                        .map(|sub_path| format!("{prefix}{sub_path}")),
                ),
                None => {
                    expected.insert(route.clone());
                }
            }
        }
        // The admin UI's spelling: Spin serves it on the same route, without a redirect.
        expected.insert("/admin/integrations/".into());
        let described: BTreeSet<String> = paths.keys().cloned().collect();
        assert_eq!(described, expected);
        for (path, item) in paths {
            let route = route_of(path);
            assert!(described_at(route).contains(&path.as_str()), "{path} is described, but as {route:?}");
            let documented: BTreeSet<String> = operations(item).map(|(method, _)| method.to_owned()).collect();
            assert_eq!(documented, methods(route), "{path}");
            assert!(item["description"].as_str().unwrap().contains("405 with `Allow`"), "{path}");
        }
    }

    #[test]
    fn every_route_of_the_table_is_described() {
        let routes = [
            Route::List,
            Route::Item,
            Route::History,
            Route::Version(7),
            Route::Restore(7),
            Route::Keys,
            Route::Reseal,
            Route::Health,
            Route::Readiness,
            Route::Metrics,
            Route::OpenApi,
        ];
        let spec = spec();
        for route in routes {
            assert!(!described_at(route).is_empty(), "{route:?}");
            for path in described_at(route) {
                assert!(spec["paths"][path].is_object(), "{route:?} is not described at {path}");
                assert_eq!(route_of(path), route, "{path}");
            }
        }
    }

    #[test]
    fn head_is_get_without_a_body() {
        let spec = spec();
        for (path, item) in spec["paths"].as_object().unwrap() {
            let Some(get) = item.get("get") else {
                assert!(item.get("head").is_none(), "{path}: HEAD without GET");
                continue;
            };
            let head = &item["head"];
            assert_eq!(head["parameters"], get["parameters"], "{path}");
            assert_eq!(head["security"], get["security"], "{path}");
            let statuses =
                |operation: &Value| operation["responses"].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
            assert_eq!(statuses(head), statuses(get), "{path}");
            for (status, response) in head["responses"].as_object().unwrap() {
                let response = resolve(&spec, response);
                assert!(response.get("content").is_none(), "HEAD {path} {status} has a body");
                let get_response = resolve(&spec, &get["responses"][status]);
                assert_eq!(response["headers"], get_response["headers"], "HEAD {path} {status}");
            }
        }
    }

    #[test]
    fn admin_routes_are_guarded_uncached_and_speak_cors() {
        let spec = spec();
        for (path, item) in spec["paths"].as_object().unwrap() {
            let route = route_of(path);
            let cors = route.is_admin() || route == Route::OpenApi;
            for (method, operation) in operations(item) {
                if method == "options" {
                    assert_eq!(operation["security"], json!([]), "{path}");
                    let responses = &operation["responses"];
                    if cors {
                        assert_eq!(responses["400"]["$ref"], "#/components/responses/PreflightRefused", "{path}");
                        let preflight_method = operation["parameters"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|parameter| resolve(&spec, parameter))
                            .find(|parameter| parameter["name"] == "Access-Control-Request-Method")
                            .unwrap_or_else(|| panic!("{path}: no Access-Control-Request-Method"));
                        let asked: BTreeSet<String> = preflight_method["schema"]["enum"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|m| m.as_str().unwrap().to_ascii_lowercase())
                            .collect();
                        assert_eq!(asked, methods(route), "{path}: the preflight allows every method served");
                    } else {
                        assert_eq!(responses["204"]["$ref"], "#/components/responses/PlainOptions", "{path}");
                    }
                    continue;
                }
                let responses = operation["responses"].as_object().unwrap();
                if route.is_admin() {
                    assert_eq!(operation["security"], json!([{}, {"adminToken": []}]), "{method} {path}");
                    for (status, response) in responses {
                        let headers = &resolve(&spec, response)["headers"];
                        assert!(headers.get("Cache-Control").is_some(), "{method} {path} {status}: no-store");
                    }
                    assert!(responses.contains_key("401"), "{method} {path}");
                } else {
                    assert!(!responses.contains_key("401") || route == Route::Metrics, "{method} {path}");
                }
            }
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
        let kib = format!("{} KiB", MAX_BODY_BYTES / 1024);
        assert_eq!(MAX_BODY_BYTES % 1024, 0);
        let put = &spec["paths"]["/admin/integrations/{id}"]["put"];
        assert!(put["requestBody"]["description"].as_str().unwrap().contains(&kib));
        assert!(spec["components"]["responses"]["PayloadTooLarge"]["description"].as_str().unwrap().contains(&kib));
        let depth = format!("at most {MAX_SETTINGS_DEPTH} levels deep");
        assert!(schemas["Settings"]["description"].as_str().unwrap().contains(&depth));

        let parameters = &spec["components"]["parameters"];
        let limit = &parameters["HistoryLimit"]["schema"];
        assert_eq!(
            (&limit["minimum"], &limit["maximum"], &limit["default"]),
            (&json!(1), &json!(MAX_PAGE), &json!(DEFAULT_PAGE))
        );
        assert_eq!(schemas["HistoryList"]["properties"]["versions"]["maxItems"], MAX_PAGE);
        let reseal = spec["paths"]["/admin/keys/reseal"]["post"]["description"].as_str().unwrap();
        assert!(reseal.contains(&format!("up to {RESEAL_BATCH} rows")), "{reseal}");
        let history = &spec["paths"]["/admin/integrations/{id}/history"]["get"]["parameters"];
        for parameter in ["HistoryBefore", "HistoryLimit"] {
            assert!(history
                .as_array()
                .unwrap()
                .contains(&json!({"$ref": format!("#/components/parameters/{parameter}")})));
        }
    }

    /// The schema name of a catalog entry's settings: `chat_widget` has `ChatWidgetSettings`.
    fn settings_schema_name(entry: &IntegrationType) -> String {
        let words = entry.id.split(['_', '-']).map(|word| {
            let mut chars = word.chars();
            chars.next().map_or(String::new(), |first| first.to_ascii_uppercase().to_string() + chars.as_str())
        });
        words.collect::<String>() + "Settings"
    }

    #[test]
    fn the_settings_schemas_are_the_catalogs() {
        let spec = spec();
        let schemas = spec["components"]["schemas"].as_object().unwrap();
        let mut names = BTreeSet::new();
        for entry in CATALOG {
            let name = settings_schema_name(entry);
            let schema = schemas.get(&name).unwrap_or_else(|| panic!("{} has no schema {name}", entry.id));
            assert_eq!(schema["type"], "object", "{name}");
            // Undeclared keys pass where the stored settings already hold them: not `false`.
            assert_eq!(schema["additionalProperties"], true, "{name}");
            assert!(schema["description"].as_str().unwrap().contains("extra_forbidden"), "{name}");
            let properties = schema["properties"].as_object().unwrap_or_else(|| panic!("{name}: no properties"));
            let declared: Vec<&str> = properties.keys().map(String::as_str).collect();
            let fields: Vec<&str> = entry.settings.iter().map(|field| field.name).collect();
            assert_eq!(declared, fields, "{name}: the catalog's fields, in its order");
            for field in entry.settings {
                let property = &properties[field.name];
                let at = format!("{name}.{}", field.name);
                assert_eq!(property["type"], field.kind.json_type(), "{at}");
                assert_eq!(property.get("default"), field.default_value().as_ref(), "{at}");
                assert!(property["description"].as_str().unwrap().contains(field.description), "{at}");
                let marked = property.get("x-secret") == Some(&json!(true));
                assert_eq!(marked, field.secret, "{at}: x-secret");
                let masked = property.get("format") == Some(&json!("password"));
                assert_eq!(masked, field.secret && field.kind.json_type() == "string", "{at}: format password");
            }
            let required: BTreeSet<&str> = schema
                .get("required")
                .map(|list| list.as_array().unwrap().iter().map(|name| name.as_str().unwrap()).collect())
                .unwrap_or_default();
            let expected: BTreeSet<&str> = entry
                .settings
                .iter()
                .filter(|field| field.required && field.default.is_none())
                .map(|field| field.name)
                .collect();
            assert_eq!(required, expected, "{name}: required are the required fields without a default");

            // An integration's settings follow its schema.
            let target = json!(format!("#/components/schemas/{name}"));
            let by_id = schemas["Integration"]["allOf"].as_array().unwrap().iter().find(|rule| {
                rule["if"]["properties"]["id"]["const"] == entry.id
                    && rule["then"]["properties"]["settings"]["anyOf"][0]["$ref"] == target
            });
            assert!(by_id.is_some(), "Integration does not apply {name} to {}", entry.id);
            let put_settings = schemas["IntegrationUpdate"]["properties"]["settings"]["description"].as_str().unwrap();
            assert!(put_settings.contains(&format!("`{name}` for `{}`", entry.id)), "IntegrationUpdate names {name}");
            names.insert(name);
        }
        let described: BTreeSet<String> =
            schemas.keys().filter(|name| name.ends_with("Settings") && *name != "Settings").cloned().collect();
        assert_eq!(described, names, "a settings schema without a catalog entry");
    }

    #[test]
    fn every_validation_error_type_is_documented() {
        let spec = spec();
        let documented = spec["components"]["schemas"]["ValidationError"]["properties"]["type"]["enum"].clone();
        let documented: Vec<&str> = documented.as_array().unwrap().iter().map(|kind| kind.as_str().unwrap()).collect();
        let mut produced =
            vec![FieldError::undeclared_setting("x").kind, FieldError::at_query("limit", "int_parsing", "").kind];
        for entry in CATALOG {
            produced.extend(entry.settings.iter().map(|field| field.kind.type_error().0));
        }
        produced.extend(["missing", "int_parsing", "greater_than_equal", "less_than_equal", "value_error"]);
        for kind in produced {
            assert!(documented.contains(&kind), "{kind} is not in ValidationError's enum");
        }
    }

    #[test]
    fn the_metrics_examples_are_what_the_encoder_writes() {
        let spec = spec();
        let get = &spec["paths"]["/metrics"]["get"];
        let examples = &get["responses"]["200"]["content"]["text/plain"]["examples"];
        let sample =
            |id: &str, enabled| IntegrationSample { id: id.into(), enabled, updated_at_seconds: 1_767_605_400.0 };
        let healthy = metrics::Snapshot {
            backend: "postgres",
            database_up: true,
            database_ping_seconds: Some(0.0021),
            integrations: vec![sample("facebook", false), sample("chat_widget", true)],
            keys: KeySample {
                rows: vec![
                    ("live", "k2".into(), 2),
                    ("history", "k2".into(), 2),
                    ("history", "k1".into(), 3),
                    ("history", "plain".into(), 2),
                ],
                on_old_keys: 5,
                unreadable: 0,
            },
            version: env!("CARGO_PKG_VERSION"),
        };
        let healthy = metrics::encode(&healthy);
        assert_eq!(examples["healthy"]["value"].as_str().unwrap(), healthy);
        let down = metrics::Snapshot {
            backend: "postgres",
            database_up: false,
            database_ping_seconds: None,
            integrations: Vec::new(),
            keys: KeySample::default(),
            version: env!("CARGO_PKG_VERSION"),
        };
        assert_eq!(examples["down"]["value"].as_str().unwrap(), metrics::encode(&down));
        let description = get["description"].as_str().unwrap();
        for family in healthy.lines().filter_map(|line| line.strip_prefix("# TYPE ")?.split(' ').next()) {
            assert!(description.contains(&format!("`{family}")), "the description does not name {family}");
        }
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
