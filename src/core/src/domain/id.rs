use std::fmt;

/// The key of an integration, as it appears in `/admin/integrations/{id}`.
///
/// Parsing is the only way to get one, so an id that reaches the store is always
/// 1 to 64 characters of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IntegrationId(String);

impl IntegrationId {
    pub const MAX_LEN: usize = 64;

    /// The id named by a path segment as Spin hands it over: still percent-encoded, so it is
    /// decoded first, as FastAPI's router does (`%66acebook` is `facebook`; `fa%20b` is
    /// `fa b`, which no id can be).
    pub fn from_path_segment(raw: &str) -> Option<Self> {
        Self::parse(&percent_decode(raw)?)
    }

    /// Parses an id; `None` for anything outside `[A-Za-z0-9_-]{1,64}`.
    pub fn parse(raw: &str) -> Option<Self> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        let valid = !raw.is_empty() && raw.len() <= Self::MAX_LEN && raw.chars().all(valid_char);
        valid.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IntegrationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `%XX` escapes decoded; `None` for a broken escape or bytes that are not UTF-8.
pub(crate) fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_seeded_ids_and_the_full_alphabet() {
        for id in ["facebook", "chat_widget", "A-z_0-9", &"x".repeat(64)] {
            assert_eq!(IntegrationId::parse(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn rejects_empty_long_encoded_and_punctuated_ids() {
        let too_long = "x".repeat(65);
        for id in ["", &too_long, "fa%20b", "a/b", "a.b", "é", "' OR 1=1 --", " facebook"] {
            assert!(IntegrationId::parse(id).is_none(), "{id:?} should be rejected");
        }
    }

    #[test]
    fn path_segments_are_percent_decoded_first() {
        assert_eq!(IntegrationId::from_path_segment("%66acebook").unwrap().as_str(), "facebook");
        assert_eq!(IntegrationId::from_path_segment("chat%5Fwidget").unwrap().as_str(), "chat_widget");
        for raw in ["fa%20b", "%", "%6", "%zz", "%ff", "a%2Fb"] {
            assert!(IntegrationId::from_path_segment(raw).is_none(), "{raw:?}");
        }
    }
}
