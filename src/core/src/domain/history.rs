//! The history of an integration: every version its writes made, who made each, and what
//! changed. Secret settings (the catalog says which) are never shown, only that they changed.

use serde::Serialize;

use super::{Settings, Timestamp, Unreadable};
use crate::catalog;

/// What made a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Seeded by a migration (a new catalog entry).
    Seed,
    /// The row as it stood when history began (the migration that introduced it).
    Baseline,
    /// A `PUT`.
    Update,
    /// A restore of an earlier version.
    Restore,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Seed => "seed",
            Self::Baseline => "baseline",
            Self::Update => "update",
            Self::Restore => "restore",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "seed" => Self::Seed,
            "baseline" => Self::Baseline,
            "update" => Self::Update,
            "restore" => Self::Restore,
            _ => return None,
        })
    }
}

/// Who asked for a write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// The name of the token the request carried (`api_tokens`' name, or `admin_token`), never
    /// the token. `None` when no token is configured (the API is open), and for `seed` and
    /// `baseline`.
    #[serde(rename = "actor")]
    pub name: Option<String>,
    /// Whether the request carried a configured token. Without one configured, every request is
    /// anonymous.
    pub authenticated: bool,
    /// The request's `X-Request-Id` (the client's, or the one this service made up).
    pub request_id: Option<String>,
    /// `ip:port` of the client, as Spin saw it.
    pub client_addr: Option<String>,
}

/// One version in the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub version: i64,
    pub recorded_at: Timestamp,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<i64>,
    #[serde(flatten)]
    pub actor: Actor,
    /// What this version changed from the one before; `null` for the oldest version kept.
    pub changes: Option<Vec<Change>>,
    /// The integration as this version left it, secrets withheld.
    pub integration: Snapshot,
}

/// One changed field: `status`, `name`, `description`, or `settings.<key>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub field: String,
    /// A secret setting: its values are never shown.
    pub secret: bool,
}

/// An integration as a version left it, with secret settings withheld.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub name: String,
    pub description: String,
    pub status: bool,
    /// The settings that are not secret; `null` when the version's settings cannot be opened.
    pub settings: Option<Settings>,
    /// The names of the secret settings this version holds (their values are withheld).
    pub secret_settings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings_error: Option<String>,
}

/// The fields of a stored version, opened.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionState {
    pub name: String,
    pub description: String,
    pub status: bool,
    pub settings: Result<Settings, Unreadable>,
}

impl VersionState {
    /// What is shown of this version of integration `id`.
    pub fn snapshot(&self, id: &str) -> Snapshot {
        let (settings, secret_settings, settings_error) = match &self.settings {
            Ok(settings) => {
                let (secret, shown): (Vec<_>, Vec<_>) =
                    settings.iter().partition(|(name, _)| catalog::is_secret(id, name));
                let shown = shown.into_iter().map(|(name, value)| (name.clone(), value.clone())).collect();
                (Some(shown), secret.into_iter().map(|(name, _)| name.clone()).collect(), None)
            }
            Err(Unreadable(why)) => (None, Vec::new(), Some(why.clone())),
        };
        Snapshot {
            name: self.name.clone(),
            description: self.description.clone(),
            status: self.status,
            settings,
            secret_settings,
            settings_error,
        }
    }

    /// The fields that differ from `previous`, in a stable order.
    pub fn changes_since(&self, previous: &VersionState, id: &str) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut changed = |field: &str, secret| changes.push(Change { field: field.to_owned(), secret });
        if self.name != previous.name {
            changed("name", false);
        }
        if self.description != previous.description {
            changed("description", false);
        }
        if self.status != previous.status {
            changed("status", false);
        }
        match (&previous.settings, &self.settings) {
            (Ok(before), Ok(after)) => {
                // Keys in the order the old version had them, then those the new one added.
                let added = after.keys().filter(|name| !before.contains_key(*name));
                for name in before.keys().chain(added) {
                    if before.get(name) != after.get(name) {
                        changed(&format!("settings.{name}"), catalog::is_secret(id, name));
                    }
                }
            }
            // Either side cannot be opened: say that settings may have changed, and nothing more.
            (Err(_), _) | (_, Err(_)) => changed("settings", true),
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn state(status: bool, settings: Value) -> VersionState {
        VersionState {
            name: "Facebook Messenger".into(),
            description: "d".into(),
            status,
            settings: Ok(settings.as_object().unwrap().clone()),
        }
    }

    #[test]
    fn changes_name_fields_and_mark_secrets_without_values() {
        let before = state(false, json!({"verify": "a", "secret": "old", "page_access_token": "t"}));
        let after = state(true, json!({"verify": "b", "secret": "new", "page_access_token": "t"}));
        let changes = after.changes_since(&before, "facebook");
        let fields: Vec<_> = changes.iter().map(|c| (c.field.as_str(), c.secret)).collect();
        assert_eq!(fields, [("status", false), ("settings.verify", false), ("settings.secret", true)]);
        let shown = serde_json::to_string(&changes).unwrap();
        assert!(!shown.contains("old") && !shown.contains("new"));
    }

    #[test]
    fn a_snapshot_withholds_secret_values() {
        let snapshot =
            state(true, json!({"verify": "v", "secret": "s3cr3t", "page_access_token": "EAAB"})).snapshot("facebook");
        assert_eq!(snapshot.settings, Some(json!({"verify": "v"}).as_object().unwrap().clone()));
        assert_eq!(snapshot.secret_settings, ["secret", "page_access_token"]);
        assert!(!serde_json::to_string(&snapshot).unwrap().contains("s3cr3t"));
    }

    #[test]
    fn unreadable_settings_are_a_change_of_unknown_content() {
        let before = state(false, json!({}));
        let after = VersionState { settings: Err(Unreadable("key k1 missing".into())), ..before.clone() };
        assert_eq!(after.changes_since(&before, "facebook"), [Change { field: "settings".into(), secret: true }]);
        assert_eq!(after.snapshot("facebook").settings_error.as_deref(), Some("key k1 missing"));
    }
}
