//! Checks every response the tests see against `src/core/openapi.json`: the status must
//! be documented for that path and method, and a JSON body must match its schema.

use std::path::Path;

use serde_json::{json, Value};

pub struct Spec {
    document: Value,
}

impl Spec {
    pub fn load() -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../src/core/openapi.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Self { document: serde_json::from_str(&text).expect("openapi.json is JSON") }
    }

    /// `Ok` when the response is one the spec describes. Paths the spec does not
    /// describe (Spin's own 404 for an unrouted path) are not checked.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<(), String> {
        let Some(template) = self.path_template(path) else {
            return Ok(());
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
        let response = self.resolve(response);
        let Some(content) = response.get("content") else {
            return if body.is_empty() {
                Ok(())
            } else {
                Err(format!("{method} {template} {status}: body not documented"))
            };
        };
        let media_type = content_type.unwrap_or_default().split(';').next().unwrap_or_default().trim();
        let Some(media) = content.get(media_type) else {
            return Err(format!("{method} {template} {status}: content type {media_type:?} not documented"));
        };
        if media_type != "application/json" {
            return Ok(());
        }
        let instance: Value =
            serde_json::from_slice(body).map_err(|e| format!("{method} {template} {status}: not JSON: {e}"))?;
        self.validate(&media["schema"], &instance).map_err(|e| format!("{method} {template} {status}: {e}"))
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

    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(pointer) => self.document.pointer(pointer.trim_start_matches('#')).unwrap_or(value),
            None => value,
        }
    }

    /// The spec path that `path` falls under: literal segments first, then `{param}`s.
    fn path_template(&self, path: &str) -> Option<String> {
        let paths = self.document["paths"].as_object()?;
        if paths.contains_key(path) {
            return Some(path.to_owned());
        }
        let segments: Vec<&str> = path.split('/').collect();
        paths
            .keys()
            .find(|template| {
                let parts: Vec<&str> = template.split('/').collect();
                parts.len() == segments.len()
                    && parts.iter().zip(&segments).all(|(part, segment)| {
                        part == segment || (part.starts_with('{') && part.ends_with('}') && !segment.is_empty())
                    })
            })
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conforming_error_passes_and_a_wrong_shape_fails() {
        let spec = Spec::load();
        let not_found = br#"{"detail": "Integration not found"}"#;
        spec.check("GET", "/admin/integrations/nope", 404, Some("application/json"), not_found).unwrap();
        let wrong = br#"{"error": 1}"#;
        assert!(spec.check("GET", "/admin/integrations/nope", 404, Some("application/json"), wrong).is_err());
        assert!(spec.check("GET", "/admin/integrations/nope", 418, Some("application/json"), not_found).is_err());
    }
}
