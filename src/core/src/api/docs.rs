//! `GET /openapi.json` and `GET /docs` (and `HEAD`): the API description ([`super::openapi`]
//! writes it from the route table, the catalog and the hand-written prose), and a self-contained
//! page that renders it (no outside server is reached). The unit tests below keep the description
//! honest: the routes and methods it describes are the route table's, its limits are the enforced
//! ones, its settings schemas are the catalog's, and its metrics example is what the encoder
//! writes.

use http::header::{HeaderValue, CONTENT_SECURITY_POLICY};
use http::StatusCode;

use super::response::{json, with_body, ApiError};
use super::Call;
use crate::Response;

const DOCS_HTML: &str = include_str!("../../docs.html");

/// The page's script and style are inline and it only talks to its own origin.
const DOCS_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'";

/// `/openapi.json`.
pub fn description(_call: &mut Call) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &super::openapi::document()))
}

/// `/docs`: the page, which reads `/openapi.json`.
pub fn page(_call: &mut Call) -> Result<Response, ApiError> {
    let mut page = with_body(StatusCode::OK, "text/html; charset=utf-8", DOCS_HTML.into());
    page.headers_mut().insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(DOCS_CSP));
    Ok(page)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{json, Value};

    use super::*;
    use crate::api::history::{DEFAULT_PAGE, MAX_PAGE};
    use crate::api::openapi::{document, settings_schema_name, TEMPLATE};
    use crate::api::routes::{Auth, Browsers, RouteDef, Scope, ROUTES};
    use crate::api::{Route, MAX_BODY_BYTES};
    use crate::catalog::CATALOG;
    use crate::domain::{FieldError, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_SETTINGS_DEPTH};
    use crate::metrics::{self, IntegrationSample, KeySample};
    use crate::service::RESEAL_BATCH;

    const METHODS: [&str; 8] = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

    fn spec() -> Value {
        document()
    }

    fn resolve<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(target) => spec.pointer(target.trim_start_matches('#')).unwrap_or_else(|| panic!("{target}")),
            None => value,
        }
    }

    /// The route a described path belongs to.
    fn def_of(path: &str) -> &'static RouteDef {
        ROUTES.iter().find(|def| def.paths().iter().any(|p| p == path)).unwrap_or_else(|| panic!("{path}"))
    }

    fn methods(def: &RouteDef) -> BTreeSet<String> {
        def.methods().iter().map(|m| m.as_str().to_ascii_lowercase()).collect()
    }

    fn operations(item: &Value) -> impl Iterator<Item = (&'static str, &Value)> {
        METHODS.into_iter().filter_map(move |method| Some((method, item.get(method)?)))
    }

    #[test]
    fn the_document_is_openapi_3_1_of_this_version() {
        let spec = spec();
        assert!(spec["openapi"].as_str().unwrap().starts_with("3.1."));
        assert_eq!(spec["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(!spec.to_string().contains("{{"), "a placeholder of the template is left");
    }

    /// The template holds prose for exactly the table's routes and methods: nothing it describes
    /// is left out, and nothing is described that the table does not serve.
    #[test]
    fn the_template_writes_exactly_the_operations_of_the_table() {
        let template: Value = serde_json::from_str(TEMPLATE).unwrap();
        let written: BTreeSet<&String> = template["paths"].as_object().unwrap().keys().collect();
        let spellings: Vec<String> = ROUTES.iter().flat_map(RouteDef::paths).collect();
        assert_eq!(written, spellings.iter().collect(), "the template's paths are the table's spellings");
        for def in ROUTES {
            let item = &template["paths"][def.path()];
            let served: BTreeSet<String> =
                def.operations.iter().map(|op| op.method.method().as_str().to_ascii_lowercase()).collect();
            let described: BTreeSet<String> = operations(item).map(|(method, _)| method.to_owned()).collect();
            assert_eq!(described, served, "{}: the template's operations", def.path());
            for (method, operation) in operations(item) {
                assert!(operation.get("security").is_none(), "{method} {}: security comes from the table", def.path());
                for refusal in ["401", "403"] {
                    let written = operation["responses"].get(refusal);
                    assert!(written.is_none(), "{method} {}: {refusal} comes from the table", def.path());
                }
            }
            for alias in &def.paths()[1..] {
                let alias = &template["paths"][alias];
                assert!(alias["x-summary"].is_string() && operations(alias).next().is_none(), "{alias}");
            }
        }
    }

    #[test]
    fn every_route_is_described_at_every_spelling_with_exactly_its_methods() {
        let spec = spec();
        let paths = spec["paths"].as_object().unwrap();
        let expected: BTreeSet<String> = ROUTES.iter().flat_map(RouteDef::paths).collect();
        assert_eq!(paths.keys().cloned().collect::<BTreeSet<_>>(), expected);
        for (path, item) in paths {
            let def = def_of(path);
            let documented: BTreeSet<String> = operations(item).map(|(method, _)| method.to_owned()).collect();
            assert_eq!(documented, methods(def), "{path}");
            assert!(item["description"].as_str().unwrap().contains("405 with `Allow`"), "{path}");
            // The dispatcher finds this route at this path.
            let concrete = path.replace("{id}", "facebook").replace("{version}", "7");
            assert_eq!(Route::of(def.endpoint, &concrete).0, def.route, "{path}");
        }
    }

    /// Each operation's `security` is its auth in the table, with the scope it needs, and its
    /// refusals follow: 401 wherever a token is needed, 403 where a `read` token would not do.
    #[test]
    fn who_may_call_each_operation_is_the_tables() {
        let spec = spec();
        for def in ROUTES {
            for operation in def.operations {
                for path in def.paths() {
                    let method = operation.method.method().as_str().to_ascii_lowercase();
                    let written = &spec["paths"][&path][&method];
                    let (expected, refusals) = match operation.auth {
                        Auth::Public => (json!([]), (None, None)),
                        Auth::MetricsToken => (json!([{}, {"metricsToken": []}]), (Some("Unauthorized"), None)),
                        Auth::AdminToken(Scope::Read) => {
                            (json!([{}, {"apiToken": ["read"]}]), (Some("AdminUnauthorized"), None))
                        }
                        Auth::AdminToken(Scope::Admin) => {
                            (json!([{}, {"apiToken": ["admin"]}]), (Some("AdminUnauthorized"), Some("Forbidden")))
                        }
                    };
                    assert_eq!(written["security"], expected, "{method} {path}");
                    let named = |status: &str| {
                        written["responses"][status]["$ref"].as_str().map(|target| target.rsplit('/').next().unwrap())
                    };
                    assert_eq!((named("401"), named("403")), refusals, "{method} {path}");
                }
            }
        }
        let schemes = spec["components"]["securitySchemes"].as_object().unwrap();
        assert_eq!(schemes.keys().collect::<Vec<_>>(), ["apiToken", "metricsToken"]);
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
            let def = def_of(path);
            for (method, operation) in operations(item) {
                if method == "options" {
                    assert_eq!(operation["security"], json!([]), "{path}");
                    let responses = &operation["responses"];
                    if def.browsers == Browsers::Cors {
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
                        assert_eq!(asked, methods(def), "{path}: the preflight allows every method served");
                    } else {
                        assert_eq!(responses["204"]["$ref"], "#/components/responses/PlainOptions", "{path}");
                    }
                    continue;
                }
                let responses = operation["responses"].as_object().unwrap();
                if def.is_admin() {
                    for (status, response) in responses {
                        let headers = &resolve(&spec, response)["headers"];
                        assert!(headers.get("Cache-Control").is_some(), "{method} {path} {status}: no-store");
                    }
                    assert!(responses.contains_key("401"), "{method} {path}");
                } else {
                    assert!(!responses.contains_key("401") || def.route == Route::Metrics, "{method} {path}");
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

    #[test]
    fn the_settings_schemas_are_the_catalogs() {
        let spec = spec();
        let schemas = spec["components"]["schemas"].as_object().unwrap();
        for entry in CATALOG {
            let name = settings_schema_name(entry);
            let schema = &schemas[&name];
            let declared: Vec<&str> = schema["properties"].as_object().unwrap().keys().map(String::as_str).collect();
            let fields: Vec<&str> = entry.settings.iter().map(|field| field.name).collect();
            assert_eq!(declared, fields, "{name}: the catalog's fields, in its order");
            // Undeclared keys pass somewhere (stored rows, or free-form): never `false`.
            assert_eq!(schema["additionalProperties"], true, "{name}");
            for field in entry.settings {
                let property = &schema["properties"][field.name];
                assert_eq!(property["type"], field.kind.json_type(), "{name}.{}", field.name);
                assert_eq!(property.get("x-secret") == Some(&json!(true)), field.secret, "{name}.{}", field.name);
            }
            let target = json!(format!("#/components/schemas/{name}"));
            let by_id = schemas["Integration"]["allOf"].as_array().unwrap().iter().any(|rule| {
                rule["if"]["properties"]["id"]["const"] == entry.id
                    && rule["then"]["properties"]["settings"]["anyOf"][0]["$ref"] == target
            });
            assert!(by_id, "Integration does not apply {name} to {}", entry.id);
            let put_settings = schemas["IntegrationUpdate"]["properties"]["settings"]["description"].as_str().unwrap();
            assert!(put_settings.contains(&format!("`{name}` for `{}`", entry.id)), "IntegrationUpdate names {name}");
        }
        let widget = &schemas["ChatWidgetSettings"]["description"];
        assert!(widget.as_str().unwrap().contains("free-form"), "{widget}");
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
