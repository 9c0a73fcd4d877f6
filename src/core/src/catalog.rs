//! The integrations this service knows, declared in one place: what each one is called, whether
//! it starts enabled, the settings it takes (type, required, default, secret), and what becomes
//! of a settings key it does not declare.
//!
//! Everything else follows from here: the rows every database is seeded with (a database that
//! lacks an entry's row gets it on its next request, see `store::migrations`), the validation of
//! `PUT` bodies, which settings the history withholds, and the per-integration settings schemas
//! of the OpenAPI description (`api::openapi` writes them from this file).
//!
//! Adding an integration is one entry in [`CATALOG`]; the README's "Adding an integration" says
//! how, and `tests/e2e/tests/migration.rs` follows it to the letter.

use serde_json::{Map, Value};

/// One integration type.
#[derive(Debug)]
pub struct IntegrationType {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    /// Whether it is enabled when first seeded.
    pub default_status: bool,
    /// The settings it takes, in the order they are seeded and documented.
    pub settings: &'static [SettingField],
    /// What becomes of a settings key that `settings` does not declare.
    pub undeclared: Undeclared,
}

/// What a `PUT` may do with a settings key its integration does not declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undeclared {
    /// Refused (422 `extra_forbidden`), unless the stored settings already hold the key: rows from
    /// before the catalog keep their keys, and the admin UI, which sends back the whole object it
    /// read, keeps working.
    Refused,
    /// Accepted and stored exactly, as the original API's free-form settings were (any JSON
    /// object, default `{}`).
    Accepted,
}

/// One setting of an integration.
#[derive(Debug)]
pub struct SettingField {
    pub name: &'static str,
    pub kind: SettingKind,
    /// A `PUT` whose settings lack a required field without a default is refused.
    pub required: bool,
    /// Seeded, and filled in when a `PUT`'s settings leave the field out (a JSON literal).
    pub default: Option<&'static str>,
    /// Never shown in the history (a marker says it changed). At rest, all settings of a row
    /// are sealed when a keyring is configured, secret or not.
    pub secret: bool,
    pub description: &'static str,
}

/// The JSON type a setting takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingKind {
    String,
    Boolean,
    Integer,
    Number,
}

impl SettingKind {
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            Self::String => value.is_string(),
            Self::Boolean => value.is_boolean(),
            Self::Integer => value.as_number().is_some_and(|n| n.is_i64() || n.is_u64()),
            Self::Number => value.is_number(),
        }
    }

    /// The JSON Schema type name, as the OpenAPI description spells it.
    pub fn json_type(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Boolean => "boolean",
            Self::Integer => "integer",
            Self::Number => "number",
        }
    }

    /// pydantic's error type and message for a value of the wrong type, as FastAPI reports them.
    pub fn type_error(self) -> (&'static str, &'static str) {
        match self {
            Self::String => ("string_type", "Input should be a valid string"),
            Self::Boolean => ("bool_type", "Input should be a valid boolean"),
            Self::Integer => ("int_type", "Input should be a valid integer"),
            Self::Number => ("float_type", "Input should be a valid number"),
        }
    }
}

/// Every integration, in the order they were added (the list shows them in this order). A new
/// one goes at the end: its row reaches every database on its next request.
pub const CATALOG: &[IntegrationType] = &[
    IntegrationType {
        id: "facebook",
        name: "Facebook Messenger",
        description: "Connect with Facebook Messenger",
        default_status: false,
        undeclared: Undeclared::Refused,
        settings: &[
            SettingField {
                name: "verify",
                kind: SettingKind::String,
                required: false,
                default: Some(r#""ai-chatbot-framework""#),
                secret: false,
                description: "Webhook verify token: Facebook echoes it when it subscribes the webhook.",
            },
            SettingField {
                name: "secret",
                kind: SettingKind::String,
                required: false,
                default: Some(r#""""#),
                secret: true,
                description: "App secret, for the X-Hub-Signature check of incoming webhooks.",
            },
            SettingField {
                name: "page_access_token",
                kind: SettingKind::String,
                required: false,
                default: Some(r#""""#),
                secret: true,
                description: "Page access token, with which the bot sends its replies.",
            },
        ],
    },
    IntegrationType {
        id: "chat_widget",
        name: "Chat Widget",
        description: "Add a chat widget to your website",
        default_status: true,
        // The original stored whatever a client sent here (a theme, a greeting, origins...).
        undeclared: Undeclared::Accepted,
        settings: &[],
    },
];

/// The catalog entry for `id`, if it has one. Rows without one (none exist unless someone inserts
/// them by hand) keep free-form settings.
pub fn find(id: &str) -> Option<&'static IntegrationType> {
    CATALOG.iter().find(|entry| entry.id == id)
}

impl IntegrationType {
    pub fn field(&self, name: &str) -> Option<&'static SettingField> {
        self.settings.iter().find(|field| field.name == name)
    }

    /// The settings a new row starts with: every field that has a default.
    pub fn default_settings(&self) -> Map<String, Value> {
        self.settings.iter().filter_map(|field| Some((field.name.to_owned(), field.default_value()?))).collect()
    }
}

impl SettingField {
    pub fn default_value(&self) -> Option<Value> {
        self.default.map(|literal| serde_json::from_str(literal).expect("catalog defaults are JSON literals"))
    }
}

/// Whether the setting `name` of integration `id` is secret: never shown in the history (which
/// says only that it changed).
///
/// A setting the catalog does not declare counts as secret, free-form ones of an
/// [`Undeclared::Accepted`] entry included. Nothing says what such a key holds: the original API
/// let clients store anything there, an API key as well as a colour, and the history is shown to
/// every admin client, so what is not known to be harmless is withheld. The live row still holds
/// the value; declaring the field (with `secret: false`) is how an integration has it shown.
pub fn is_secret(id: &str, name: &str) -> bool {
    find(id).and_then(|entry| entry.field(name)).is_none_or(|field| field.secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_valid() {
        let mut ids: Vec<_> = CATALOG.iter().map(|entry| entry.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), CATALOG.len());
        for id in ids {
            assert!(crate::domain::IntegrationId::parse(id).is_some(), "{id}");
        }
    }

    #[test]
    fn defaults_are_of_their_fields_type() {
        for entry in CATALOG {
            for field in entry.settings {
                if let Some(value) = field.default_value() {
                    assert!(field.kind.accepts(&value), "{}.{}", entry.id, field.name);
                }
            }
        }
    }

    #[test]
    fn facebook_starts_as_the_original_seeded_it() {
        let facebook = find("facebook").unwrap();
        let settings = Value::Object(facebook.default_settings());
        assert_eq!(settings.to_string(), r#"{"verify":"ai-chatbot-framework","secret":"","page_access_token":""}"#);
        assert!(is_secret("facebook", "page_access_token") && !is_secret("facebook", "verify"));
        assert!(is_secret("chat_widget", "color"), "undeclared settings are treated as secret");
        let widget = find("chat_widget").unwrap();
        assert_eq!((facebook.undeclared, widget.undeclared), (Undeclared::Refused, Undeclared::Accepted));
    }
}
