use chrono::{DateTime, SecondsFormat};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// Free-form, per-integration configuration (the Messenger tokens, widget options, ...).
pub type Settings = Map<String, Value>;

/// An integration as stored, and as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Integration {
    pub id: String,
    pub name: String,
    pub description: String,
    pub status: bool,
    pub settings: Settings,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Bumped by every write; the API shows it as the `ETag`, not in the body.
    #[serde(skip)]
    pub version: Version,
}

/// An instant, as microseconds since the Unix epoch (UTC); shown as RFC 3339.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Self(i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX))
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    pub fn to_rfc3339(self) -> String {
        DateTime::from_timestamp_micros(self.0).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

/// The row version behind optimistic concurrency (`ETag` / `If-Match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version(pub i64);

impl Version {
    /// A strong entity tag: `"7"`.
    pub fn etag(self) -> String {
        format!("\"{}\"", self.0)
    }
}

/// What an `If-Match` header asks of the stored version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// `*`: any current version.
    Exists,
    /// One or more entity tags; the write proceeds only if one is the current version.
    OneOf(Vec<Version>),
}

impl Precondition {
    /// Parses an `If-Match` value. `If-Match` compares strongly (RFC 9110 13.1.1), so weak
    /// and foreign tags can never match: they are dropped, and a header left with none
    /// fails every write, which is what RFC 9110 asks for.
    pub fn parse_if_match(value: &str) -> Self {
        if value.trim() == "*" {
            return Self::Exists;
        }
        let versions = value
            .split(',')
            .filter_map(|tag| tag.trim().strip_prefix('"')?.strip_suffix('"')?.parse().ok())
            .map(Version)
            .collect();
        Self::OneOf(versions)
    }

    pub fn is_met_by(&self, current: Version) -> bool {
        match self {
            Self::Exists => true,
            Self::OneOf(versions) => versions.contains(&current),
        }
    }
}

/// The two integrations every installation starts with, in creation order.
pub fn defaults() -> [Seed; 2] {
    [
        Seed {
            id: "facebook",
            name: "Facebook Messenger",
            description: "Connect with Facebook Messenger",
            status: false,
            settings: r#"{"verify": "ai-chatbot-framework", "secret": "", "page_access_token": ""}"#,
        },
        Seed {
            id: "chat_widget",
            name: "Chat Widget",
            description: "Add a chat widget to your website",
            status: true,
            settings: "{}",
        },
    ]
}

/// A default integration, inserted where missing when the schema is first created.
#[derive(Debug, Clone, Copy)]
pub struct Seed {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub status: bool,
    /// A JSON object.
    pub settings: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_as_utc_rfc3339() {
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00.000000Z");
        assert_eq!(Timestamp(1_700_000_000_123_456).to_rfc3339(), "2023-11-14T22:13:20.123456Z");
    }

    #[test]
    fn if_match_accepts_strong_tags_and_star() {
        assert_eq!(Precondition::parse_if_match("*"), Precondition::Exists);
        let tags = Precondition::parse_if_match(r#""3", "5""#);
        assert!(tags.is_met_by(Version(5)));
        assert!(!tags.is_met_by(Version(4)));
    }

    #[test]
    fn if_match_never_matches_weak_or_garbled_tags() {
        for header in [r#"W/"3""#, "3", r#""three""#, ""] {
            assert!(!Precondition::parse_if_match(header).is_met_by(Version(3)), "{header}");
        }
    }

    #[test]
    fn etag_round_trips_through_if_match() {
        let version = Version(42);
        assert!(Precondition::parse_if_match(&version.etag()).is_met_by(version));
    }

    #[test]
    fn default_settings_are_json_objects() {
        for seed in defaults() {
            let value: Value = serde_json::from_str(seed.settings).unwrap();
            assert!(value.is_object(), "{}", seed.id);
        }
    }
}
