//! The OpenAPI description, written from what the code knows and the prose people wrote.
//!
//! `openapi.template.json` holds what only people can say: the introduction, each operation's
//! summary, description, parameters and responses, the schemas of the bodies, the examples. The
//! rest is derived here, so it is stated once:
//! - the paths, their spellings and methods, and who may call each ([`ROUTES`]): an operation's
//!   `security` (the scope it needs) and its 401 and 403, its `HEAD` twin (`GET` without the
//!   body), its `OPTIONS` (a CORS preflight or the methods served), the path parameters;
//! - each integration's settings schema, and which integration takes which ([`CATALOG`]);
//! - the `X-Content-Type-Options` header every answer carries ([`super::handle`]);
//! - the version (Cargo's).

use serde_json::{json, Map, Value};

use super::routes::{Auth, Browsers, RouteDef, Scope, Verb, ROUTES};
use crate::catalog::{IntegrationType, Undeclared, CATALOG};
use crate::Endpoint;

/// The hand-written part of the description.
pub const TEMPLATE: &str = include_str!("../../openapi.template.json");

const METHOD_NOT_ALLOWED: &str = "A method this path does not serve gets 405 with `Allow` (see `MethodNotAllowed`).";
const HEAD_DESCRIPTION: &str =
    "`GET` without the body: the same status and headers (`Content-Type` included), and no content, errors included.";

/// `InternalError` as answered outside `/admin`, derived from it.
const PLAIN_INTERNAL_ERROR: &str = "PlainInternalError";

/// The whole description, as `/openapi.json` serves it.
pub fn document() -> Value {
    let mut document: Value = serde_json::from_str(TEMPLATE).expect("openapi.template.json is JSON");
    document["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
    let template_paths = std::mem::take(&mut document["paths"]);
    let mut heads = Vec::new();
    let mut paths = Map::new();
    for def in ROUTES {
        for (index, path) in def.paths().into_iter().enumerate() {
            let item = path_item(def, &template_paths, index, &path, &mut heads);
            paths.insert(path, item);
        }
    }
    document["paths"] = Value::Object(paths);
    let responses = document["components"]["responses"].as_object_mut().expect("components.responses");
    // Outside `/admin` an answer carries no credentials, so no `no-store`: the same 500 without it.
    let mut plain = responses["InternalError"].clone();
    plain["headers"].as_object_mut().expect("InternalError.headers").remove("Cache-Control");
    responses.insert(PLAIN_INTERNAL_ERROR.into(), plain);
    for name in heads {
        let mut head = responses[&name].clone();
        head.as_object_mut().expect("a response").remove("content");
        head["description"] = json!(format!(
            "{} To a HEAD: the same status and headers, no body.",
            head["description"].as_str().unwrap_or_default()
        ));
        responses.insert(format!("{name}Head"), head);
    }
    let schemas = document["components"]["schemas"].as_object_mut().expect("components.schemas");
    for entry in CATALOG {
        schemas.insert(settings_schema_name(entry), settings_schema(entry));
        let rule = json!({
            "if": { "properties": { "id": { "const": entry.id } }, "required": ["id"] },
            "then": { "properties": { "settings": { "anyOf": [
                { "$ref": format!("#/components/schemas/{}", settings_schema_name(entry)) },
                { "type": "null" },
            ] } } },
        });
        schemas["Integration"]["allOf"].as_array_mut().expect("Integration.allOf").push(rule);
    }
    fill_in(&mut document);
    forbid_sniffing(&mut document);
    document
}

/// Every answer carries `X-Content-Type-Options: nosniff` ([`super::handle`]): every response of
/// the description says so, the hand-written ones and those derived above.
fn forbid_sniffing(document: &mut Value) {
    const NAME: &str = "X-Content-Type-Options";
    document["components"]["headers"][NAME] = json!({
        "description": "Always `nosniff`: a browser reads an answer only as its `Content-Type` says.",
        "required": true,
        "schema": { "const": "nosniff" },
    });
    let header = json!({ "$ref": format!("#/components/headers/{NAME}") });
    // A `$ref` response is one of components.responses, which gets the header itself.
    let mark = |response: &mut Value| {
        if response.get("$ref").is_none() {
            response["headers"][NAME] = header.clone();
        }
    };
    for item in document["paths"].as_object_mut().expect("paths").values_mut() {
        for operation in item.as_object_mut().expect("a path item").values_mut() {
            if let Some(listed) = operation.get_mut("responses").and_then(Value::as_object_mut) {
                listed.values_mut().for_each(mark);
            }
        }
    }
    document["components"]["responses"].as_object_mut().expect("components.responses").values_mut().for_each(mark);
}

/// The path item of `path`, the `index`th spelling of `def`'s path.
fn path_item(def: &RouteDef, template: &Value, index: usize, path: &str, heads: &mut Vec<String>) -> Value {
    let canonical = def.path();
    let written = |path: &str| template.get(path).unwrap_or_else(|| panic!("openapi.template.json lacks {path}"));
    let item = written(&canonical);
    // A second spelling: its own description, and a note on each operation's summary.
    let (description, note) = match index {
        0 => (&item["description"], None),
        _ => (&written(path)["description"], written(path)["x-summary"].as_str()),
    };
    let suffix = match (index, path.strip_suffix('/')) {
        (0, _) => String::new(),
        (_, Some(_)) => "Slash".into(),
        _ => upper_camel(path.rsplit('/').next().unwrap_or_default()),
    };
    let mut out = Map::new();
    out.insert(
        "description".into(),
        json!(format!("{} {METHOD_NOT_ALLOWED}", description.as_str().unwrap_or_default())),
    );
    let mut parameters: Vec<Value> = Vec::new();
    for (param, component) in [("{id}", "IntegrationIdPath"), ("{version}", "VersionPath")] {
        if path.contains(param) {
            parameters.push(json!({ "$ref": format!("#/components/parameters/{component}") }));
        }
    }
    parameters.extend(["XRequestId", "Traceparent"].map(|p| json!({ "$ref": format!("#/components/parameters/{p}") })));
    out.insert("parameters".into(), Value::Array(parameters));
    let mut tags = Value::Null;
    for operation in def.operations {
        let method = operation.method.method().as_str().to_ascii_lowercase();
        let mut written =
            item.get(&method).unwrap_or_else(|| panic!("openapi.template.json lacks {method} {canonical}")).clone();
        written["security"] = security(operation.auth);
        let responses = written["responses"].as_object_mut().expect("responses");
        for &(status, response) in refusals(operation.auth) {
            let hand_written =
                responses.insert(status.into(), json!({ "$ref": format!("#/components/responses/{response}") }));
            assert!(
                hand_written.is_none(),
                "openapi.template.json: {method} {canonical} lists {status}, which the route table says"
            );
        }
        if reads_variables(def) {
            responses.entry("500").or_insert_with(|| internal_error(def));
        }
        // By status, as the hand-written ones are.
        responses.sort_keys();
        if let Some(note) = note {
            written["summary"] = json!(format!("{} ({note})", written["summary"].as_str().unwrap_or_default()));
            written["operationId"] = json!(format!("{}{suffix}", written["operationId"].as_str().unwrap_or_default()));
        }
        tags = written["tags"].clone();
        let head = (operation.method == Verb::Get).then(|| head_of(&written, heads));
        out.insert(method, written);
        if let Some(head) = head {
            out.insert("head".into(), head);
        }
    }
    out.insert("options".into(), options(def, path, tags, &suffix));
    Value::Object(out)
}

/// Whether the route's component reads variables: then any of its answers may be a 500 naming a
/// misconfigured one (liveness reads none).
fn reads_variables(def: &RouteDef) -> bool {
    def.endpoint != Endpoint::Health
}

/// The 500 of `def`'s operations: `InternalError`, without its `Cache-Control` outside `/admin`.
fn internal_error(def: &RouteDef) -> Value {
    let name = if def.is_admin() { "InternalError" } else { PLAIN_INTERNAL_ERROR };
    json!({ "$ref": format!("#/components/responses/{name}") })
}

/// Who may call: anyone, or (when the service has tokens) a bearer token; for the admin API's
/// tokens, the scope the operation needs, as OpenAPI 3.1 lets a requirement name roles. `{}`: no
/// token at all, when none is configured.
fn security(auth: Auth) -> Value {
    match auth {
        Auth::Public => json!([]),
        Auth::MetricsToken => json!([{}, { "metricsToken": [] }]),
        Auth::AdminToken(scope) => json!([{}, { "apiToken": [scope.as_str()] }]),
    }
}

/// The refusals an operation's caller may get: 401 wherever a token is needed, 403 where a token
/// of another scope could be presented (only `admin` operations: every token may read).
fn refusals(auth: Auth) -> &'static [(&'static str, &'static str)] {
    match auth {
        Auth::Public => &[],
        Auth::MetricsToken => &[("401", "Unauthorized")],
        Auth::AdminToken(Scope::Read) => &[("401", "AdminUnauthorized")],
        Auth::AdminToken(Scope::Admin) => &[("401", "AdminUnauthorized"), ("403", "Forbidden")],
    }
}

/// `HEAD` of a `GET`: the same statuses and headers, no content.
fn head_of(get: &Value, heads: &mut Vec<String>) -> Value {
    let mut head = get.clone();
    let id = get["operationId"].as_str().unwrap_or_default();
    let rest =
        ["get", "list"].iter().find_map(|verb| id.strip_prefix(verb).filter(|r| r.starts_with(char::is_uppercase)));
    head["operationId"] = json!(format!("head{}", upper_camel(rest.unwrap_or(id))));
    head["summary"] = json!(format!("{} (headers only)", get["summary"].as_str().unwrap_or_default()));
    head["description"] = json!(HEAD_DESCRIPTION);
    for response in head["responses"].as_object_mut().expect("responses").values_mut() {
        if let Some(target) = response.get("$ref").and_then(Value::as_str) {
            let name = target.rsplit('/').next().unwrap_or_default().to_owned();
            if !heads.contains(&name) {
                heads.push(name.clone());
            }
            *response = json!({ "$ref": format!("#/components/responses/{name}Head") });
        } else if response.as_object_mut().expect("a response").remove("content").is_some() {
            let description = response["description"].as_str().unwrap_or_default().trim_end_matches('.');
            response["description"] = json!(format!("{description}, without the body."));
        }
    }
    head
}

/// `OPTIONS`: a CORS preflight where browsers call the route, else the methods served.
fn options(def: &RouteDef, path: &str, tags: Value, suffix: &str) -> Value {
    let id = format!("options{:?}{suffix}", def.route);
    if def.browsers == Browsers::SameOrigin {
        let mut responses = json!({ "204": { "$ref": "#/components/responses/PlainOptions" } });
        if reads_variables(def) {
            responses["500"] = internal_error(def);
        }
        return json!({
            "tags": tags, "operationId": id, "summary": "The methods served", "security": [], "responses": responses,
        });
    }
    let methods: Vec<String> = def.methods().iter().map(|method| method.to_string()).collect();
    let example = def.operations.iter().rev().map(|operation| operation.method.method().to_string()).next();
    let mut responses = json!({
        "204": { "$ref": "#/components/responses/Options" },
        "400": { "$ref": "#/components/responses/PreflightRefused" },
    });
    if path.contains("{version}") {
        responses["404"] = json!({ "$ref": "#/components/responses/NotAVersion" });
    }
    if reads_variables(def) {
        responses["500"] = internal_error(def);
    }
    json!({
        "tags": tags,
        "operationId": id,
        "summary": "CORS preflight, or the methods served",
        "security": [],
        "parameters": [
            { "$ref": "#/components/parameters/Origin" },
            {
                "name": "Access-Control-Request-Method",
                "in": "header",
                "required": false,
                "description": "The method the browser wants to use; a method this path does not serve gets 400.",
                "schema": { "enum": methods, "examples": [example] },
            },
            { "$ref": "#/components/parameters/AccessControlRequestHeaders" },
        ],
        "responses": responses,
    })
}

/// `chat_widget` has `ChatWidgetSettings`.
pub fn settings_schema_name(entry: &IntegrationType) -> String {
    upper_camel(entry.id) + "Settings"
}

fn upper_camel(text: &str) -> String {
    let words = text.split(['_', '-', '.']).map(|word| {
        let mut chars = word.chars();
        chars.next().map_or(String::new(), |first| first.to_ascii_uppercase().to_string() + chars.as_str())
    });
    words.collect()
}

/// The settings schema of a catalog entry.
fn settings_schema(entry: &IntegrationType) -> Value {
    let mut properties = Map::new();
    for field in entry.settings {
        let mut property = Map::new();
        property.insert("type".into(), json!(field.kind.json_type()));
        if field.secret {
            if field.kind.json_type() == "string" {
                property.insert("format".into(), json!("password"));
            }
            property.insert("x-secret".into(), json!(true));
        }
        if let Some(default) = field.default_value() {
            property.insert("default".into(), default);
        }
        let secret = if field.secret { "Secret. " } else { "" };
        property.insert("description".into(), json!(format!("{secret}{}", field.description)));
        properties.insert(field.name.into(), Value::Object(property));
    }
    let required: Vec<&str> = entry
        .settings
        .iter()
        .filter(|field| field.required && field.default.is_none())
        .map(|field| field.name)
        .collect();
    let declares = if entry.settings.is_empty() { ": it declares none" } else { "" };
    let undeclared = match entry.undeclared {
        Undeclared::Refused => {
            "a key it does not declare is a 422 `extra_forbidden` unless the stored settings already hold it \
             (settings kept from before the catalog, which the admin UI sends back as it read them)"
        }
        Undeclared::Accepted => {
            "a key it does not declare is stored and returned exactly as sent: beside the declared fields, its \
             settings are free-form, as the original API's were"
        }
    };
    let mut schema = json!({
        "title": settings_schema_name(entry),
        "description": format!(
            "The settings of `{}` ({}){declares}. From the service's catalog: a PUT's settings are checked against \
             it. A declared field of another type is a 422 (`string_type`, `bool_type`, `int_type`, `float_type`); \
             a field left out gets its `default`; a `required` field without a default left out is a 422 `missing`; \
             {undeclared}. Fields marked `x-secret` are never shown in the history (only that they changed), nor \
             is any undeclared key.",
            entry.id, entry.name,
        ),
        "type": "object",
        "properties": properties,
        "additionalProperties": true,
        "examples": [entry.default_settings()],
    });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

/// The prose's references to what the code knows: `{{settings schemas}}` names every settings
/// schema, `{{settings schemas by id}}` says which integration takes which, `{{version}}` is the
/// version (in the metrics examples).
fn fill_in(value: &mut Value) {
    match value {
        Value::String(text) if text.contains("{{") => {
            let names: Vec<String> = CATALOG.iter().map(|entry| format!("`{}`", settings_schema_name(entry))).collect();
            let by_id: Vec<String> =
                CATALOG.iter().map(|entry| format!("`{}` for `{}`", settings_schema_name(entry), entry.id)).collect();
            *text = text
                .replace("{{settings schemas by id}}", &by_id.join(", "))
                .replace("{{settings schemas}}", &names.join(", "))
                .replace("{{version}}", env!("CARGO_PKG_VERSION"));
        }
        Value::Array(items) => items.iter_mut().for_each(fill_in),
        Value::Object(map) => map.values_mut().for_each(fill_in),
        _ => {}
    }
}
