use chrono::{DateTime, SecondsFormat};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// Per-integration configuration (the Messenger tokens, widget options, ...), in the order it
/// was sent, numbers with every digit they were sent with.
pub type Settings = Map<String, Value>;

/// An integration as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Integration {
    pub id: String,
    pub name: String,
    pub description: String,
    pub status: bool,
    /// `null` when the stored settings cannot be opened (see `settings_error`).
    #[serde(serialize_with = "settings_or_null")]
    pub settings: Result<Settings, Unreadable>,
    /// Why `settings` is `null`: the row is sealed with a key the keyring does not hold, or
    /// its ciphertext does not open. Absent for every readable row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Bumped by every write; the API shows it as the `ETag`, not in the body.
    #[serde(skip)]
    pub version: Version,
}

/// Stored settings that cannot be opened, and why (for operators; never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable(pub String);

fn settings_or_null<S: Serializer>(settings: &Result<Settings, Unreadable>, serializer: S) -> Result<S::Ok, S::Error> {
    match settings {
        Ok(settings) => settings.serialize(serializer),
        Err(_) => serializer.serialize_none(),
    }
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

    /// Parses an `If-None-Match` value, which compares weakly (RFC 9110 13.1.2): `W/"3"`
    /// still names version 3.
    pub fn parse_if_none_match(value: &str) -> Self {
        Self::parse_if_match(&value.replace("W/", ""))
    }

    pub fn is_met_by(&self, current: Version) -> bool {
        match self {
            Self::Exists => true,
            Self::OneOf(versions) => versions.contains(&current),
        }
    }
}

/// The preconditions of a write (RFC 9110 13.1): `If-Match` must name the current version,
/// and `If-None-Match` must not (`If-None-Match: *` fails on any existing row).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteConditions {
    pub if_match: Option<Precondition>,
    pub if_none_match: Option<Precondition>,
}

impl WriteConditions {
    pub fn allow(&self, current: Version) -> bool {
        self.if_match.as_ref().is_none_or(|tags| tags.is_met_by(current))
            && !self.if_none_match.as_ref().is_some_and(|tags| tags.is_met_by(current))
    }
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
    fn write_conditions_follow_rfc_9110() {
        let conditions = |if_match: Option<&str>, if_none_match: Option<&str>| WriteConditions {
            if_match: if_match.map(Precondition::parse_if_match),
            if_none_match: if_none_match.map(Precondition::parse_if_none_match),
        };
        assert!(conditions(None, None).allow(Version(3)));
        assert!(conditions(Some(r#""3""#), None).allow(Version(3)));
        assert!(!conditions(Some(r#""2""#), None).allow(Version(3)));
        assert!(!conditions(None, Some("*")).allow(Version(3)), "If-None-Match: * fails on an existing row");
        assert!(!conditions(None, Some(r#"W/"3""#)).allow(Version(3)));
        assert!(conditions(None, Some(r#""2""#)).allow(Version(3)));
    }
}
