//! The body of `PUT /admin/integrations/{id}`, parsed into the change it asks for.

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{IntegrationId, Settings};
use crate::catalog::{self, IntegrationType, Undeclared};

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// How deep `settings` may nest (the object itself is level 1).
pub const MAX_SETTINGS_DEPTH: usize = 8;

/// The fields a PUT writes; `None` leaves the stored value as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntegrationUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub status: Option<bool>,
    /// Replaces the stored settings whole.
    pub settings: Option<SettingsUpdate>,
}

/// New settings, checked against the catalog.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsUpdate {
    /// As sent, with the catalog's defaults added for fields left out.
    pub values: Settings,
    /// Keys the catalog does not declare, of an integration that refuses them
    /// ([`Undeclared::Refused`]). They are accepted only where the stored settings already hold
    /// them (settings kept from before the catalog, which the admin UI sends back as it read
    /// them); the store checks that atomically with the write.
    pub undeclared: Vec<String>,
}

/// One problem with a request body, in the shape FastAPI (pydantic) reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub loc: Vec<Value>,
    pub msg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx: Option<Value>,
}

impl FieldError {
    fn at(field: &str, kind: &'static str, msg: impl Into<String>) -> Self {
        Self { kind, loc: vec![json!("body"), json!(field)], msg: msg.into(), ctx: None }
    }

    fn at_setting(name: &str, kind: &'static str, msg: impl Into<String>) -> Self {
        Self { kind, loc: vec![json!("body"), json!("settings"), json!(name)], msg: msg.into(), ctx: None }
    }

    /// A problem with a query parameter.
    pub fn at_query(name: &str, kind: &'static str, msg: &str) -> Self {
        Self { kind, loc: vec![json!("query"), json!(name)], msg: msg.into(), ctx: None }
    }

    /// A settings key the catalog does not declare and the stored settings do not hold.
    pub fn undeclared_setting(name: &str) -> Self {
        Self::at_setting(name, "extra_forbidden", "Extra inputs are not permitted")
    }

    fn with_ctx(mut self, ctx: Value) -> Self {
        self.ctx = Some(ctx);
        self
    }
}

impl IntegrationUpdate {
    /// Parses a PUT body for the integration at `path_id`, reporting every problem at once.
    ///
    /// Unknown fields are ignored, so the admin UI can send back the whole object it
    /// holds. Values are never echoed into errors: `settings` carries secrets.
    pub fn parse(path_id: &IntegrationId, content_type: Option<&str>, body: &[u8]) -> Result<Self, Vec<FieldError>> {
        let fields = parse_object(content_type, body)?;
        let mut errors = Vec::new();
        let mut update = Self::default();

        if let Some(id) = fields.get("id") {
            match id.as_str() {
                None => errors.push(string_type("id")),
                Some(id) if id != path_id.as_str() => errors.push(FieldError::at(
                    "id",
                    "value_error",
                    "Value error, id must match the id in the path; an integration cannot be renamed",
                )),
                Some(_) => {}
            }
        }
        update.name = text_field(&fields, "name", 1, MAX_NAME_CHARS, &mut errors);
        update.description = text_field(&fields, "description", 0, MAX_DESCRIPTION_CHARS, &mut errors);
        update.status = fields.get("status").and_then(|value| {
            status_field(value).map_err(|(kind, msg)| errors.push(FieldError::at("status", kind, msg))).ok()
        });
        update.settings = fields
            .get("settings")
            .and_then(|value| settings_field(value, catalog::find(path_id.as_str()), &mut errors));

        if errors.is_empty() {
            Ok(update)
        } else {
            Err(errors)
        }
    }
}

/// `status` read as the original's model (`status: bool`, pydantic 2 in its default lax mode)
/// read it, so that a client of the original that sends `1` or `"yes"` keeps working: a boolean;
/// the numbers 0 and 1 (`1.0` too); the strings `0`, `1` and, in any case, `f`/`t`, `n`/`y`,
/// `no`/`yes`, `off`/`on`, `false`/`true`. Anything else is refused with pydantic's error type:
/// `bool_parsing` for another integer or string, `bool_type` for the rest (null, a fraction, an
/// integer beyond 64 bits, an array, an object). Declared boolean settings stay strict: the
/// original had no such check to keep. The error: pydantic's type and message.
fn status_field(value: &Value) -> Result<bool, (&'static str, &'static str)> {
    let parsing = || ("bool_parsing", "Input should be a valid boolean, unable to interpret input");
    let not_bool = || ("bool_type", "Input should be a valid boolean");
    match value {
        Value::Bool(flag) => Ok(*flag),
        Value::Number(number) => match (number.as_i64(), number.as_f64()) {
            (Some(0), _) => Ok(false),
            (Some(1), _) => Ok(true),
            (Some(_), _) => Err(parsing()),
            (None, Some(0.0)) => Ok(false),
            (None, Some(1.0)) => Ok(true),
            (None, _) => Err(not_bool()),
        },
        Value::String(text) => {
            let is = |words: &[&str]| words.iter().any(|word| text.eq_ignore_ascii_case(word));
            if is(&["0", "f", "n", "no", "off", "false"]) {
                Ok(false)
            } else if is(&["1", "t", "y", "yes", "on", "true"]) {
                Ok(true)
            } else {
                Err(parsing())
            }
        }
        Value::Null | Value::Array(_) | Value::Object(_) => Err(not_bool()),
    }
}

fn parse_object(content_type: Option<&str>, body: &[u8]) -> Result<Map<String, Value>, Vec<FieldError>> {
    // A UTF-8 byte order mark, as editors and PowerShell write at the start of a file: FastAPI
    // (Python's json) reads past it, and so does this (offsets in errors count from after it).
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let body_error = |kind, msg: &str| vec![FieldError { kind, loc: vec![json!("body")], msg: msg.into(), ctx: None }];
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(body_error("missing", "Field required"));
    }
    // FastAPI reads a body as JSON when it says so or says nothing; anything else is raw bytes.
    if content_type.is_some_and(|value| !is_json_media_type(value)) {
        return Err(body_error(
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(body_error(
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
        )),
        Err(error) => Err(vec![json_invalid(body, &error)]),
    }
}

fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// FastAPI's `json_invalid`: `loc` holds the byte offset where decoding failed.
fn json_invalid(body: &[u8], error: &serde_json::Error) -> FieldError {
    let offset = byte_offset(body, error.line(), error.column());
    let reason = error.to_string();
    let reason = reason.split(" at line ").next().unwrap_or(&reason).to_owned();
    FieldError {
        kind: "json_invalid",
        loc: vec![json!("body"), json!(offset)],
        msg: "JSON decode error".into(),
        ctx: Some(json!({ "error": reason })),
    }
}

fn byte_offset(body: &[u8], line: usize, column: usize) -> usize {
    let line_start: usize = body.split(|&b| b == b'\n').take(line.saturating_sub(1)).map(|l| l.len() + 1).sum();
    (line_start + column.saturating_sub(1)).min(body.len())
}

fn string_type(field: &str) -> FieldError {
    FieldError::at(field, "string_type", "Input should be a valid string")
}

fn text_field(
    fields: &Map<String, Value>,
    field: &str,
    min_chars: usize,
    max_chars: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let value = fields.get(field)?;
    let Some(text) = value.as_str() else {
        errors.push(string_type(field));
        return None;
    };
    // PostgreSQL's text cannot hold NUL; both backends refuse it alike rather than store it on
    // one and fail on the other. (NUL inside settings is stored: settings are kept as JSON text.)
    if text.contains('\0') {
        errors.push(FieldError::at(field, "value_error", "Value error, text must not contain NUL characters"));
        return None;
    }
    let chars = text.chars().count();
    if chars < min_chars {
        errors.push(
            FieldError::at(field, "string_too_short", format!("String should have at least {min_chars} character"))
                .with_ctx(json!({ "min_length": min_chars })),
        );
        return None;
    }
    if chars > max_chars {
        errors.push(
            FieldError::at(field, "string_too_long", format!("String should have at most {max_chars} characters"))
                .with_ctx(json!({ "max_length": max_chars })),
        );
        return None;
    }
    Some(text.to_owned())
}

fn settings_field(
    value: &Value,
    entry: Option<&'static IntegrationType>,
    errors: &mut Vec<FieldError>,
) -> Option<SettingsUpdate> {
    let Some(settings) = value.as_object() else {
        errors.push(FieldError::at("settings", "dict_type", "Input should be a valid dictionary"));
        return None;
    };
    if depth(value) > MAX_SETTINGS_DEPTH {
        errors.push(
            FieldError::at(
                "settings",
                "too_deep",
                format!("Settings should nest at most {MAX_SETTINGS_DEPTH} levels deep"),
            )
            .with_ctx(json!({ "max_depth": MAX_SETTINGS_DEPTH })),
        );
        return None;
    }
    // An integration the catalog does not know keeps free-form settings.
    let Some(entry) = entry else {
        return Some(SettingsUpdate { values: settings.clone(), undeclared: Vec::new() });
    };
    let before = errors.len();
    let mut values = settings.clone();
    let mut undeclared = Vec::new();
    for (name, value) in settings {
        match (entry.field(name), entry.undeclared) {
            (Some(field), _) if field.kind.accepts(value) => {}
            (Some(field), _) => {
                let (kind, msg) = field.kind.type_error();
                errors.push(FieldError::at_setting(name, kind, msg));
            }
            // Free-form: stored exactly, like every other value.
            (None, Undeclared::Accepted) => {}
            // PostgreSQL cannot compare a key with NUL in it with the stored ones (jsonb refuses
            // it): such a key is refused here, on both backends alike.
            (None, Undeclared::Refused) if name.contains('\0') => errors.push(FieldError::undeclared_setting(name)),
            (None, Undeclared::Refused) => undeclared.push(name.clone()),
        }
    }
    for field in entry.settings.iter().filter(|field| !settings.contains_key(field.name)) {
        match field.default_value() {
            Some(default) => {
                values.insert(field.name.to_owned(), default);
            }
            None if field.required => errors.push(FieldError::at_setting(field.name, "missing", "Field required")),
            None => {}
        }
    }
    (errors.len() == before).then_some(SettingsUpdate { values, undeclared })
}

/// Nesting depth of containers: a scalar is 0, `{}` is 1, `{"a": []}` is 2.
fn depth(value: &Value) -> usize {
    let deepest_child = match value {
        Value::Object(map) => map.values().map(depth).max(),
        Value::Array(items) => items.iter().map(depth).max(),
        _ => return 0,
    };
    1 + deepest_child.unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facebook() -> IntegrationId {
        IntegrationId::parse("facebook").unwrap()
    }

    fn parse(body: &str) -> Result<IntegrationUpdate, Vec<FieldError>> {
        IntegrationUpdate::parse(&facebook(), Some("application/json"), body.as_bytes())
    }

    fn error_kinds(body: &str) -> Vec<(&'static str, Vec<Value>)> {
        parse(body).unwrap_err().into_iter().map(|e| (e.kind, e.loc)).collect()
    }

    #[test]
    fn the_admin_uis_full_object_is_accepted_and_unknown_fields_ignored() {
        let body = r#"{"id": "facebook", "name": "Facebook Messenger", "description": "d",
            "status": true, "settings": {"verify": "v"}, "created_at": "x", "updated_at": "y"}"#;
        let update = parse(body).unwrap();
        assert_eq!(update.status, Some(true));
        assert_eq!(update.name.as_deref(), Some("Facebook Messenger"));
        let settings = update.settings.unwrap();
        assert_eq!(settings.values["verify"], "v");
        assert_eq!(settings.values["secret"], "", "fields left out get their defaults");
        assert!(settings.undeclared.is_empty());
    }

    #[test]
    fn a_partial_body_leaves_absent_fields_unset() {
        let update = parse(r#"{"status": false}"#).unwrap();
        assert_eq!(update, IntegrationUpdate { status: Some(false), ..Default::default() });
    }

    #[test]
    fn a_body_id_that_differs_from_the_path_is_rejected() {
        assert_eq!(error_kinds(r#"{"id": "twitter"}"#), [("value_error", vec![json!("body"), json!("id")])]);
    }

    #[test]
    fn every_wrong_type_is_reported_at_once() {
        let kinds: Vec<_> =
            error_kinds(r#"{"id": 1, "name": null, "description": [], "status": "maybe", "settings": []}"#)
                .into_iter()
                .map(|(kind, _)| kind)
                .collect();
        assert_eq!(kinds, ["string_type", "string_type", "string_type", "bool_parsing", "dict_type"]);
    }

    /// What pydantic 2.14 made of each `status` in the original's model (`status: bool`), checked
    /// against it when written: these callers of the original keep working, and the rest get its
    /// error types.
    #[test]
    fn status_is_read_as_the_originals_pydantic_model_read_it() {
        let cases = [
            ("true", Ok(true)),
            ("1", Ok(true)),
            ("0", Ok(false)),
            ("1.0", Ok(true)),
            ("0.0", Ok(false)),
            ("1e0", Ok(true)),
            (r#""yes""#, Ok(true)),
            (r#""YES""#, Ok(true)),
            (r#""On""#, Ok(true)),
            (r#""t""#, Ok(true)),
            (r#""1""#, Ok(true)),
            (r#""FALSE""#, Ok(false)),
            (r#""n""#, Ok(false)),
            ("2", Err("bool_parsing")),
            ("-1", Err("bool_parsing")),
            (r#"" true""#, Err("bool_parsing")),
            (r#""1.0""#, Err("bool_parsing")),
            (r#""nope""#, Err("bool_parsing")),
            ("1.5", Err("bool_type")),
            ("10000000000000000000000", Err("bool_type")),
            ("null", Err("bool_type")),
            ("[]", Err("bool_type")),
            ("{}", Err("bool_type")),
        ];
        for (sent, expected) in cases {
            let parsed = parse(&format!(r#"{{"status": {sent}}}"#));
            let got = parsed.map(|update| update.status.unwrap()).map_err(|errors| errors[0].kind);
            assert_eq!(got, expected, "status {sent}");
        }
    }

    #[test]
    fn malformed_json_reports_the_offset_where_decoding_failed() {
        let errors = parse("{\"status\": tru}").unwrap_err();
        assert_eq!(errors[0].kind, "json_invalid");
        assert_eq!(errors[0].loc, [json!("body"), json!(14)]);
        assert!(!errors[0].ctx.as_ref().unwrap()["error"].as_str().unwrap().contains("line"));
    }

    #[test]
    fn non_object_bodies_and_empty_bodies_are_rejected() {
        assert_eq!(error_kinds("[1]")[0].0, "model_attributes_type");
        assert_eq!(error_kinds("  ")[0].0, "missing");
        let as_text = IntegrationUpdate::parse(&facebook(), Some("text/plain"), b"{}");
        assert_eq!(as_text.unwrap_err()[0].kind, "model_attributes_type");
    }

    #[test]
    fn a_utf8_byte_order_mark_is_read_past_as_fastapi_does() {
        let update = IntegrationUpdate::parse(&facebook(), None, b"\xEF\xBB\xBF{\"status\": true}").unwrap();
        assert_eq!(update.status, Some(true));
        assert_eq!(error_kinds("\u{FEFF}")[0].0, "missing", "a mark alone is no body");
        let broken = IntegrationUpdate::parse(&facebook(), None, b"\xEF\xBB\xBF{\"status\": tru}").unwrap_err();
        assert_eq!(broken[0].loc, [json!("body"), json!(14)], "counted from after the mark");
    }

    #[test]
    fn json_media_types_with_parameters_and_suffixes_count_as_json() {
        for content_type in [None, Some("application/json; charset=utf-8"), Some("application/merge-patch+json")] {
            assert!(IntegrationUpdate::parse(&facebook(), content_type, b"{}").is_ok(), "{content_type:?}");
        }
    }

    #[test]
    fn name_and_description_lengths_are_bounded() {
        let long_name = format!(r#"{{"name": "{}"}}"#, "n".repeat(MAX_NAME_CHARS + 1));
        assert_eq!(error_kinds(&long_name)[0].0, "string_too_long");
        assert_eq!(error_kinds(r#"{"name": ""}"#)[0].0, "string_too_short");
        assert!(parse(r#"{"description": ""}"#).is_ok());
    }

    #[test]
    fn settings_nesting_is_bounded() {
        let nest = |levels: usize| {
            format!(r#"{{"settings": {}{}}}"#, "{\"a\": ".repeat(levels - 1) + "{}", "}".repeat(levels - 1))
        };
        assert!(parse(&nest(MAX_SETTINGS_DEPTH)).is_ok());
        assert_eq!(error_kinds(&nest(MAX_SETTINGS_DEPTH + 1))[0].0, "too_deep");
    }

    #[test]
    fn settings_are_checked_against_the_catalog() {
        let errors = parse(r#"{"settings": {"verify": 5, "secret": true}}"#).unwrap_err();
        let found: Vec<_> = errors.iter().map(|e| (e.kind, e.loc.clone())).collect();
        assert_eq!(
            found,
            [
                ("string_type", vec![json!("body"), json!("settings"), json!("verify")]),
                ("string_type", vec![json!("body"), json!("settings"), json!("secret")]),
            ]
        );
        let update = parse(r#"{"settings": {"verfy": "typo"}}"#).unwrap();
        assert_eq!(update.settings.unwrap().undeclared, ["verfy"], "the store decides whether it was already there");
    }

    #[test]
    fn exact_values_survive_parsing() {
        let body = r#"{"settings": {"verify": "a\u0000b", "secret": "", "page_access_token": "",
            "big": 123456789012345678901234567890, "fine": 0.12345678901234567, "exp": 1E+2}}"#;
        let settings = parse(body).unwrap().settings.unwrap().values;
        let text = serde_json::to_string(&settings).unwrap();
        assert!(text.contains(r#""verify":"a\u0000b""#), "{text}");
        assert!(text.contains("123456789012345678901234567890") && text.contains("0.12345678901234567"), "{text}");
        assert!(text.starts_with(r#"{"verify""#), "order kept: {text}");
    }

    #[test]
    fn nul_is_refused_in_name_and_description() {
        assert_eq!(error_kinds(r#"{"name": "a\u0000"}"#), [("value_error", vec![json!("body"), json!("name")])]);
    }

    #[test]
    fn the_chat_widget_takes_any_object_as_the_original_did() {
        let id = IntegrationId::parse("chat_widget").unwrap();
        let body = br##"{"settings": {"theme": {"color": "#123456"}, "origins": ["https://a"], "n": 123456789012345678901234567890, "a\u0000b": null}}"##;
        let settings = IntegrationUpdate::parse(&id, None, body).unwrap().settings.unwrap();
        assert_eq!(settings.undeclared, Vec::<String>::new(), "nothing for the store to check");
        let text = serde_json::to_string(&settings.values).unwrap();
        assert_eq!(
            text,
            r##"{"theme":{"color":"#123456"},"origins":["https://a"],"n":123456789012345678901234567890,"a\u0000b":null}"##
        );
    }

    #[test]
    fn an_integration_outside_the_catalog_keeps_free_form_settings() {
        let id = IntegrationId::parse("legacy").unwrap();
        let update = IntegrationUpdate::parse(&id, None, br#"{"settings": {"anything": [1]}}"#).unwrap();
        assert_eq!(update.settings.unwrap().undeclared, Vec::<String>::new());
    }

    #[test]
    fn errors_never_echo_the_values_sent() {
        let errors = parse(r#"{"settings": "s3cret", "status": "s3cret"}"#).unwrap_err();
        assert!(!serde_json::to_string(&errors).unwrap().contains("s3cret"));
    }
}
