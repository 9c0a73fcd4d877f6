use std::fmt;

/// The key of an integration, as it appears in `/admin/integrations/{id}`.
///
/// Parsing is the only way to get one, so an id that reaches the store is always
/// 1 to 64 characters of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IntegrationId(String);

impl IntegrationId {
    pub const MAX_LEN: usize = 64;

    /// Parses an id; `None` for anything outside `[A-Za-z0-9_-]{1,64}`.
    ///
    /// Spin hands the path segment over still percent-encoded, so an encoded byte
    /// (`%20`) is simply an invalid character here, as it should be.
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
}
