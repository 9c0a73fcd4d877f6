//! Checks every response the tests see against the OpenAPI description the service under test
//! serves (`GET /openapi.json`): the status must be documented for that path and method, and a
//! JSON body must match its schema. A `HEAD` answer is `GET`'s without the body: its status must
//! be documented and its body empty.

use reqwest::header::HeaderMap;
use serde_json::{json, Value};

pub struct Spec {
    document: Value,
}

impl Spec {
    pub fn new(document: Value) -> Self {
        Self { document }
    }

    /// `Ok` when the response is one the spec describes. Of a path the spec does not describe,
    /// only a 404 is checked: it is the catch-all's, in FastAPI's error shape (`HTTPError`); its
    /// other answers are those of another spelling of a described path (a trailing slash).
    pub fn check(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<(), String> {
        let Some(template) = self.path_template(path) else {
            // The catch-all's 404 is FastAPI's, as JSON.
            let not_found =
                json!({"content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPError"}}}});
            return match status {
                404 => {
                    self.check_body(&format!("{method} {path} 404 (no route)"), method, &not_found, content_type, body)
                }
                _ => Ok(()),
            };
        };
        let operation = &self.document["paths"][template.as_str()][method.to_ascii_lowercase()];
        if operation.is_null() {
            // Undocumented methods must be refused.
            return if status == 405 {
                Ok(())
            } else {
                Err(format!("{method} {template} is not in the spec but got {status}"))
            };
        }
        let responses = &operation["responses"];
        let class = format!("{}XX", status / 100);
        let response = [status.to_string(), class, "default".into()]
            .iter()
            .map(|key| &responses[key.as_str()])
            .find(|response| !response.is_null())
            .ok_or_else(|| format!("{method} {template}: status {status} is not documented"))?;
        self.check_body(&format!("{method} {template} {status}"), method, self.resolve(response), content_type, body)
    }

    /// `Ok` when `body` is one `response` (a response object) describes: none to a HEAD, else of a
    /// documented content type, and a JSON body of its schema. `what` names the answer in errors.
    fn check_body(
        &self,
        what: &str,
        method: &str,
        response: &Value,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<(), String> {
        if method.eq_ignore_ascii_case("HEAD") {
            return if body.is_empty() {
                Ok(())
            } else {
                Err(format!("{what}: a HEAD answer has no body, got {} bytes", body.len()))
            };
        }
        let Some(content) = response.get("content") else {
            return if body.is_empty() { Ok(()) } else { Err(format!("{what}: body not documented")) };
        };
        let media_type = content_type.unwrap_or_default().split(';').next().unwrap_or_default().trim();
        let Some(media) = content.get(media_type) else {
            return Err(format!("{what}: content type {media_type:?} not documented"));
        };
        if media_type != "application/json" {
            return Ok(());
        }
        let instance: Value = serde_json::from_slice(body).map_err(|e| format!("{what}: not JSON: {e}"))?;
        self.validate(&media["schema"], &instance).map_err(|e| format!("{what}: {e}"))
    }

    /// `Ok` when the response carries every header the description requires of it, and each
    /// header it describes has a value its schema allows. Paths and statuses the description does
    /// not have are [`Self::check`]'s to report.
    pub fn check_headers(&self, method: &str, path: &str, status: u16, headers: &HeaderMap) -> Result<(), String> {
        let Some(template) = self.path_template(path) else {
            return Ok(());
        };
        let responses = &self.document["paths"][template.as_str()][method.to_ascii_lowercase()]["responses"];
        let Some(response) = [status.to_string(), format!("{}XX", status / 100), "default".into()]
            .iter()
            .map(|key| &responses[key.as_str()])
            .find(|response| !response.is_null())
        else {
            return Ok(());
        };
        let described = self.resolve(response).get("headers").and_then(Value::as_object);
        let mut problems = Vec::new();
        for (name, header) in described.into_iter().flatten() {
            let header = self.resolve(header);
            let values: Vec<&str> =
                headers.get_all(name.as_str()).iter().map(|value| value.to_str().unwrap_or("<not text>")).collect();
            match values.as_slice() {
                [] if header["required"] == true => problems.push(format!("{name} is required but absent")),
                [] => {}
                [value] => {
                    if let Err(e) = self.validate(&header["schema"], &json!(value)) {
                        problems.push(format!("{name}: {value:?}: {e}"));
                    }
                }
                several => problems.push(format!("{name} sent {} times: {several:?}", several.len())),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("{method} {template} {status}: {}", problems.join("; ")))
        }
    }

    fn validate(&self, schema: &Value, instance: &Value) -> Result<(), String> {
        // The whole document is the schema resource, so `#/components/...` refs resolve.
        let mut root = self.document.clone();
        root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
        root["allOf"] = json!([schema]);
        let validator = jsonschema::validator_for(&root).map_err(|e| format!("bad schema: {e}"))?;
        let errors: Vec<String> =
            validator.iter_errors(instance).map(|e| format!("{e} at {}", e.instance_path)).collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Whether the description lists `status` for `method` on `path` (a concrete path).
    pub fn documents(&self, path: &str, method: &str, status: u16) -> bool {
        let Some(template) = self.path_template(path) else { return false };
        !self.document["paths"][template.as_str()][method.to_ascii_lowercase()]["responses"][status.to_string()]
            .is_null()
    }

    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(pointer) => self.document.pointer(pointer.trim_start_matches('#')).unwrap_or(value),
            None => value,
        }
    }

    /// The spec path that `path` falls under: of the templates with as many segments, each
    /// literal or a `{param}` standing for a non-empty segment, the one with the most literal
    /// segments (`/admin/keys/reseal` before a `/admin/keys/{x}`, were there one).
    fn path_template(&self, path: &str) -> Option<String> {
        let paths = self.document["paths"].as_object()?;
        if paths.contains_key(path) {
            return Some(path.to_owned());
        }
        let segments: Vec<&str> = path.split('/').collect();
        let literal_matches = |template: &str| -> Option<usize> {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literals = 0;
            for (part, segment) in parts.iter().zip(&segments) {
                if part == segment {
                    literals += 1;
                } else if !(part.starts_with('{') && part.ends_with('}') && !segment.is_empty()) {
                    return None;
                }
            }
            Some(literals)
        };
        paths
            .keys()
            .filter_map(|template| Some((literal_matches(template)?, template)))
            .max_by_key(|(literals, _)| *literals)
            .map(|(_, template)| template.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The description this build serves, as the core writes it.
    fn spec() -> Spec {
        Spec::new(integrations_core::api::openapi::document())
    }

    const JSON: Option<&str> = Some("application/json");

    #[test]
    fn a_conforming_error_passes_and_a_wrong_shape_fails() {
        let spec = spec();
        let not_found = br#"{"detail": "Integration not found"}"#;
        spec.check("GET", "/admin/integrations/nope", 404, JSON, not_found).unwrap();
        let wrong = br#"{"error": 1}"#;
        assert!(spec.check("GET", "/admin/integrations/nope", 404, JSON, wrong).is_err());
        assert!(spec.check("GET", "/admin/integrations/nope", 418, JSON, not_found).is_err());
    }

    #[test]
    fn a_path_the_description_does_not_name_may_only_be_fastapis_404() {
        let spec = spec();
        spec.check("GET", "/admin/integrations/a/b", 404, JSON, br#"{"detail": "Not Found"}"#).unwrap();
        spec.check("HEAD", "/nothing", 404, JSON, b"").unwrap();
        // Spin's own answer to a path no route matches: empty, no content type.
        assert!(spec.check("GET", "/admin/integrations/a/b", 404, None, b"").is_err());
        assert!(spec.check("GET", "/nothing", 404, JSON, br#"{"error": "Not Found"}"#).is_err());
        // Another spelling of a described path (the trailing slash) is not checked.
        spec.check("GET", "/admin/integrations/facebook/", 200, JSON, b"{}").unwrap();
    }

    #[test]
    fn the_headers_a_response_must_carry_are_checked() {
        let spec = spec();
        // Every answer forbids sniffing; the pairs are the rest.
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs.iter().chain(&[("x-content-type-options", "nosniff")]) {
                map.append(*name, value.parse().unwrap());
            }
            map
        };
        let item = "/admin/integrations/facebook";
        let good = [("etag", r#""3""#), ("x-request-id", "r-1"), ("cache-control", "no-store")];
        spec.check_headers("GET", item, 200, &headers(&good)).unwrap();
        spec.check_headers("HEAD", item, 200, &headers(&good)).unwrap();
        let mut sniffable = headers(&good);
        sniffable.remove("x-content-type-options");
        assert!(spec.check_headers("GET", item, 200, &sniffable).is_err(), "every answer forbids sniffing");
        spec.check_headers("GET", "/health", 200, &headers(&[("x-request-id", "r-1")])).unwrap();
        let no_etag = spec.check_headers("GET", item, 200, &headers(&good[1..])).unwrap_err();
        assert!(no_etag.contains("ETag is required"), "{no_etag}");
        let weak = [("etag", r#"W/"3""#), good[1], good[2]];
        assert!(spec.check_headers("GET", item, 200, &headers(&weak)).is_err(), "a weak tag is not the pattern");
        let twice = [good[0], good[1], good[2], ("cache-control", "no-store")];
        assert!(spec.check_headers("GET", item, 200, &headers(&twice)).is_err(), "one header, one line");
        let retry = [("retry-after", "5"), good[1], good[2]];
        spec.check_headers("PUT", item, 503, &headers(&retry)).unwrap();
        assert!(spec.check_headers("PUT", item, 503, &headers(&good[1..])).is_err(), "503 says when to retry");
    }

    #[test]
    fn a_head_answer_has_a_documented_status_and_no_body() {
        let spec = spec();
        for path in ["/admin/integrations/facebook", "/admin/integrations/facebook/history/3", "/metrics", "/docs"] {
            spec.check("HEAD", path, 200, JSON, b"").unwrap();
        }
        spec.check("HEAD", "/admin/integrations/facebook", 304, None, b"").unwrap();
        spec.check("HEAD", "/admin/integrations/nope", 404, JSON, b"").unwrap();
        assert!(spec.check("HEAD", "/admin/integrations/facebook", 200, JSON, b"{}").is_err());
        assert!(spec.check("HEAD", "/admin/integrations/facebook", 418, JSON, b"").is_err());
        // No HEAD where there is no GET: refused with 405.
        spec.check("HEAD", "/admin/keys/reseal", 405, JSON, b"").unwrap();
        assert!(spec.check("HEAD", "/admin/keys/reseal", 200, JSON, b"").is_err());
    }

    #[test]
    fn history_paths_match_their_templates() {
        let spec = spec();
        assert_eq!(
            spec.path_template("/admin/integrations/facebook/history").as_deref(),
            Some("/admin/integrations/{id}/history")
        );
        assert_eq!(
            spec.path_template("/admin/integrations/facebook/history/3").as_deref(),
            Some("/admin/integrations/{id}/history/{version}")
        );
        assert_eq!(
            spec.path_template("/admin/integrations/facebook/history/3/restore").as_deref(),
            Some("/admin/integrations/{id}/history/{version}/restore")
        );
        assert_eq!(spec.path_template("/admin/keys/reseal").as_deref(), Some("/admin/keys/reseal"));
        assert_eq!(spec.path_template("/admin/integrations/facebook/history/3/other"), None);

        let entry = json!({
            "version": 2, "recorded_at": "2026-01-06T14:02:11.482913Z", "action": "update",
            "request_id": "r", "client_addr": null, "actor": null, "authenticated": false,
            "changes": [{"field": "settings.secret", "secret": true}],
            "integration": {"name": "n", "description": "", "status": true, "settings": {"verify": "v"},
                            "secret_settings": ["secret"]}
        });
        let body = |value: &Value| value.to_string().into_bytes();
        spec.check("GET", "/admin/integrations/facebook/history/2", 200, JSON, &body(&entry)).unwrap();
        let page = json!({"versions": [entry], "next_before": null});
        spec.check("GET", "/admin/integrations/facebook/history", 200, JSON, &body(&page)).unwrap();
        let mut restore = entry.clone();
        restore["action"] = json!("restore");
        assert!(
            spec.check("GET", "/admin/integrations/facebook/history/2", 200, JSON, &body(&restore)).is_err(),
            "a restore names the version it restored"
        );
        for detail in ["Version not found", "Not Found"] {
            let not_found = body(&json!({ "detail": detail }));
            spec.check("GET", "/admin/integrations/facebook/history/abc", 404, JSON, &not_found).unwrap();
        }
        let query = body(&json!({"detail": [{"type": "less_than_equal", "loc": ["query", "limit"], "msg": "m"}]}));
        spec.check("GET", "/admin/integrations/facebook/history", 422, JSON, &query).unwrap();
        spec.check("POST", "/admin/integrations/facebook/history/1/restore", 409, JSON, br#"{"detail": "x"}"#).unwrap();
        spec.check("PUT", "/admin/integrations/facebook/history/1", 405, JSON, br#"{"detail": "x"}"#).unwrap();
    }

    /// 401 wherever a token may be needed, 403 only where a `read` token would not do, and each
    /// operation's requirement names the scope the route table gives it.
    #[test]
    fn refusals_and_scopes_follow_the_route_table() {
        use integrations_core::api::routes::{Auth, Scope, ROUTES};
        let spec = spec();
        for def in ROUTES {
            let path = def.path().replace("{id}", "facebook").replace("{version}", "1");
            for method in def.methods().into_iter().filter(|method| *method != reqwest::Method::OPTIONS) {
                let auth = def.operation(&method).unwrap().auth;
                let at = format!("{method} {path}");
                let documents = |status| spec.documents(&path, method.as_str(), status);
                let (needs_token, needs_admin) = match auth {
                    Auth::Public => (false, false),
                    Auth::MetricsToken => (true, false),
                    Auth::AdminToken(scope) => (true, scope == Scope::Admin),
                };
                assert_eq!((documents(401), documents(403)), (needs_token, needs_admin), "{at}");
                if let Auth::AdminToken(scope) = auth {
                    let operation = &spec.document["paths"][def.path()][method.as_str().to_ascii_lowercase()];
                    assert_eq!(operation["security"], json!([{}, { "apiToken": [scope.as_str()] }]), "{at}");
                }
                if needs_admin && method != reqwest::Method::HEAD {
                    spec.check(method.as_str(), &path, 403, JSON, br#"{"detail": "Not enough permissions"}"#).unwrap();
                }
            }
        }
    }

    #[test]
    fn settings_follow_the_catalog_schema_of_the_id() {
        let spec = spec();
        let integration = |id: &str, settings: Value| {
            json!({"id": id, "name": "n", "description": "", "status": true, "settings": settings,
                   "created_at": "2026-01-05T09:30:00.000000Z", "updated_at": "2026-01-05T09:30:00.000000Z"})
            .to_string()
            .into_bytes()
        };
        let get = |id: &str, body: &[u8]| spec.check("GET", &format!("/admin/integrations/{id}"), 200, JSON, body);
        get("facebook", &integration("facebook", json!({"verify": "v", "secret": "", "page_access_token": ""})))
            .unwrap();
        assert!(get("facebook", &integration("facebook", json!({"verify": 5}))).is_err());
        get("chat_widget", &integration("chat_widget", json!({"kept": {"from": "before"}}))).unwrap();
        let mut unreadable: Value = serde_json::from_slice(&integration("facebook", Value::Null)).unwrap();
        assert!(get("facebook", unreadable.to_string().as_bytes()).is_err(), "null settings say why");
        unreadable["settings_error"] =
            json!("settings are sealed with key \"k1\", which settings_keyring does not hold");
        get("facebook", unreadable.to_string().as_bytes()).unwrap();
    }

    /// Every example of the description is an instance of the schema beside it.
    #[test]
    fn every_example_matches_its_schema() {
        let spec = spec();
        let mut checked = 0;
        let mut media_types = Vec::new();
        collect_media("#/paths", &spec.document["paths"], &mut media_types);
        collect_media("#/components/responses", &spec.document["components"]["responses"], &mut media_types);
        for (at, media) in media_types {
            let Some(examples) = media.get("examples").and_then(Value::as_object) else { continue };
            for (name, example) in examples {
                let value = &spec.resolve(example)["value"];
                if value.is_string() && !media["schema"].get("type").is_some_and(|t| t == "string") {
                    panic!("{at} {name}: a string example for a non-string schema");
                }
                spec.validate(&media["schema"], value).unwrap_or_else(|e| panic!("{at} example {name}: {e}"));
                checked += 1;
            }
        }
        for (name, schema) in spec.document["components"]["schemas"].as_object().unwrap() {
            for example in schema.get("examples").and_then(Value::as_array).into_iter().flatten() {
                spec.validate(&json!({ "$ref": format!("#/components/schemas/{name}") }), example)
                    .unwrap_or_else(|e| panic!("schema {name} example: {e}"));
                checked += 1;
            }
        }
        assert!(checked > 30, "only {checked} examples found");
    }

    /// The `application/json` media types under `value` (at `at`), with where they are.
    fn collect_media<'a>(at: &str, value: &'a Value, found: &mut Vec<(String, &'a Value)>) {
        let Value::Object(map) = value else { return };
        for (key, child) in map {
            let here = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
            if key == "application/json" && child.get("schema").is_some() {
                found.push((here, child));
            } else {
                collect_media(&here, child, found);
            }
        }
    }
}
