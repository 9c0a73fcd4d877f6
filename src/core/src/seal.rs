//! Settings sealed at rest. With `settings_keyring` set, every row's settings (all of them,
//! at any depth, secret or not) are stored as one XChaCha20-Poly1305 ciphertext under the
//! keyring's current key, bound to the integration and the key id, and the row records which
//! key sealed it: whether a value is sealed is read from that column, never guessed from the
//! value. Reads open any key of the ring; writes always seal with the current one, so rows move
//! to it on their next write, or by `POST /admin/keys/reseal`.
//!
//! The keyring is `id:base64key[,id:base64key...]`, current key first; each key is 32 random
//! bytes (`head -c32 /dev/urandom | base64`).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde_json::Value;

use crate::domain::{Settings, Unreadable};
use crate::store::{StoreError, StoredSettings};

const NONCE_LEN: usize = 24;
const MAX_KEY_ID_LEN: usize = 32;

/// Rows the previous release sealed field by field (`enc:v1:` values of secret-looking keys);
/// the migration that introduced whole-row sealing marked them with this instead of a key id.
pub const LEGACY_FIELDS: &str = "#v1-fields";
const LEGACY_PREFIX: &str = "enc:v1:";
const LEGACY_SECRET_NAME_PARTS: &[&str] = &["secret", "token", "password", "api_key", "apikey"];

/// The keys settings are sealed with; the first seals, all open.
pub struct Keyring {
    keys: Vec<(String, XChaCha20Poly1305)>,
}

impl Keyring {
    /// Parses `settings_keyring`. Errors name the problem, never the key.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let mut keys: Vec<(String, XChaCha20Poly1305)> = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
            let (id, key) = entry.split_once(':').ok_or("settings_keyring entries are id:base64key")?;
            let valid_id = !id.is_empty()
                && id.len() <= MAX_KEY_ID_LEN
                && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !valid_id {
                return Err("settings_keyring key ids are 1-32 of [A-Za-z0-9._-]");
            }
            if keys.iter().any(|(known, _)| known == id) {
                return Err("settings_keyring names a key id twice");
            }
            let bytes = BASE64.decode(key.trim()).map_err(|_| "a settings_keyring key is not base64")?;
            let cipher =
                XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| "settings_keyring keys must be 32 bytes")?;
            keys.push((id.to_owned(), cipher));
        }
        if keys.is_empty() {
            return Err("settings_keyring holds no key");
        }
        Ok(Self { keys })
    }

    /// The id of the key new writes are sealed with.
    pub fn current_id(&self) -> &str {
        &self.keys[0].0
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(id, _)| id.as_str())
    }

    /// Seals `settings` of integration `id` with the current key.
    pub fn seal(&self, id: &str, settings: &Settings) -> Result<StoredSettings, StoreError> {
        let (key_id, cipher) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| StoreError::Unexpected("no randomness for a nonce".into()))?;
        let plain = serde_json::to_vec(settings).expect("settings always serialize");
        let aad = associated_data(id, key_id);
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: &plain, aad: &aad })
            .map_err(|_| StoreError::Unexpected("sealing settings failed".into()))?;
        Ok(StoredSettings { text: BASE64.encode([&nonce[..], &sealed].concat()), key: Some(key_id.clone()) })
    }

    fn open_sealed(&self, id: &str, key_id: &str, text: &str) -> Result<Settings, Unreadable> {
        let (_, cipher) = self.keys.iter().find(|(known, _)| known == key_id).ok_or_else(|| {
            Unreadable(format!("settings are sealed with key {key_id:?}, which settings_keyring does not hold"))
        })?;
        let does_not_open = || Unreadable(format!("settings sealed with key {key_id:?} do not open"));
        let bytes = BASE64.decode(text).map_err(|_| does_not_open())?;
        if bytes.len() < NONCE_LEN {
            return Err(does_not_open());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let aad = associated_data(id, key_id);
        let plain = cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: &aad })
            .map_err(|_| does_not_open())?;
        serde_json::from_slice(&plain).map_err(|_| does_not_open())
    }

    /// The previous release's field-by-field format: its secret-looking keys hold
    /// `enc:v1:<base64>` values bound to the integration and the key name. That release had one
    /// key, without an id: each key of the ring is tried.
    fn open_legacy(&self, id: &str, text: &str) -> Result<Settings, Unreadable> {
        let mut settings = parse_plain(text)?;
        for (name, value) in settings.iter_mut() {
            let lower = name.to_ascii_lowercase();
            let sealed = value.as_str().and_then(|text| text.strip_prefix(LEGACY_PREFIX));
            let Some(sealed) = sealed.filter(|_| LEGACY_SECRET_NAME_PARTS.iter().any(|part| lower.contains(part)))
            else {
                continue;
            };
            let opened = BASE64.decode(sealed).ok().filter(|bytes| bytes.len() >= NONCE_LEN).and_then(|bytes| {
                let (nonce, sealed) = bytes.split_at(NONCE_LEN);
                let aad = format!("integrations/{id}/settings/{name}").into_bytes();
                self.keys.iter().find_map(|(_, cipher)| {
                    cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: &aad }).ok()
                })
            });
            let plain = opened.and_then(|bytes| String::from_utf8(bytes).ok()).ok_or_else(|| {
                Unreadable(format!("setting {name:?} (sealed by the previous release) does not open"))
            })?;
            *value = Value::String(plain);
        }
        Ok(settings)
    }
}

impl crate::config::Parse for Keyring {
    fn parse(text: &str) -> Result<Self, &'static str> {
        Keyring::parse(text)
    }
}

/// Opens stored settings of integration `id` with the keyring, if there is one.
pub fn open(keyring: Option<&Keyring>, id: &str, stored: &StoredSettings) -> Result<Settings, Unreadable> {
    match (stored.key.as_deref(), keyring) {
        (None, _) => parse_plain(&stored.text),
        (Some(key_id), None) => {
            Err(Unreadable(format!("settings are sealed with key {key_id:?}, but settings_keyring is not set")))
        }
        (Some(LEGACY_FIELDS), Some(keyring)) => keyring.open_legacy(id, &stored.text),
        (Some(key_id), Some(keyring)) => keyring.open_sealed(id, key_id, &stored.text),
    }
}

/// Settings of integration `id` as they are to be stored: sealed with the current key when there
/// is a keyring, else plain JSON.
pub fn store(keyring: Option<&Keyring>, id: &str, settings: &Settings) -> Result<StoredSettings, StoreError> {
    match keyring {
        Some(keyring) => keyring.seal(id, settings),
        None => Ok(StoredSettings::plain(settings)),
    }
}

fn parse_plain(text: &str) -> Result<Settings, Unreadable> {
    serde_json::from_str(text).map_err(|_| Unreadable("stored settings are not a JSON object".into()))
}

/// A ciphertext opens only for the row and the key id it was sealed for: it cannot be moved to
/// another integration, nor relabelled with another key id.
fn associated_data(id: &str, key_id: &str) -> Vec<u8> {
    format!("integrations/{id}/settings#{key_id}").into_bytes()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    pub const KEY_A: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
    pub const KEY_B: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="; // 32 bytes

    fn settings() -> Settings {
        json!({"verify": "enc:v1:AAAA", "nested": {"secret": ["s3cr3t"]}, "n": 123456789012345678901234567890_u128})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn sealed_settings_hide_every_value_and_open_to_the_same_settings() {
        let ring = Keyring::parse(&format!("a:{KEY_A}")).unwrap();
        let stored = store(Some(&ring), "facebook", &settings()).unwrap();
        assert_eq!(stored.key.as_deref(), Some("a"));
        for plain in ["s3cr3t", "enc:v1", "nested", "verify"] {
            assert!(!stored.text.contains(plain), "{plain} readable at rest");
        }
        assert_eq!(open(Some(&ring), "facebook", &stored).unwrap(), settings());
    }

    #[test]
    fn a_plain_value_that_looks_sealed_is_just_a_value() {
        let stored = store(None, "facebook", &settings()).unwrap();
        assert_eq!(stored.key, None);
        let ring = Keyring::parse(&format!("a:{KEY_A}")).unwrap();
        assert_eq!(open(Some(&ring), "facebook", &stored).unwrap()["verify"], "enc:v1:AAAA");
    }

    #[test]
    fn rotation_opens_old_rows_and_seals_new_ones_with_the_current_key() {
        let old = Keyring::parse(&format!("a:{KEY_A}")).unwrap();
        let stored = store(Some(&old), "facebook", &settings()).unwrap();
        let rotated = Keyring::parse(&format!("b:{KEY_B}, a:{KEY_A}")).unwrap();
        assert_eq!(open(Some(&rotated), "facebook", &stored).unwrap(), settings());
        assert_eq!(store(Some(&rotated), "facebook", &settings()).unwrap().key.as_deref(), Some("b"));
        let without_a = Keyring::parse(&format!("b:{KEY_B}")).unwrap();
        let error = open(Some(&without_a), "facebook", &stored).unwrap_err();
        assert!(error.0.contains("\"a\"") && !error.0.contains(KEY_A), "{error:?}");
    }

    #[test]
    fn a_ciphertext_does_not_open_for_another_row_or_key_id() {
        let ring = Keyring::parse(&format!("a:{KEY_A},b:{KEY_A}")).unwrap();
        let stored = store(Some(&ring), "facebook", &settings()).unwrap();
        assert!(open(Some(&ring), "chat_widget", &stored).is_err());
        let relabelled = StoredSettings { key: Some("b".into()), ..stored };
        assert!(open(Some(&ring), "facebook", &relabelled).is_err());
    }

    #[test]
    fn rows_of_the_previous_release_open_field_by_field() {
        // Sealed as the previous release did: nonce || ciphertext, AAD bound to id and name.
        let cipher = XChaCha20Poly1305::new_from_slice(&BASE64.decode(KEY_A).unwrap()).unwrap();
        let nonce = [7u8; NONCE_LEN];
        let aad = b"integrations/facebook/settings/secret";
        let sealed = cipher.encrypt(XNonce::from_slice(&nonce), Payload { msg: b"app-secret", aad }).unwrap();
        let value = format!("{LEGACY_PREFIX}{}", BASE64.encode([&nonce[..], &sealed].concat()));
        let text = json!({"verify": "enc:v1:not-sealed", "secret": value}).to_string();
        let stored = StoredSettings { text, key: Some(LEGACY_FIELDS.into()) };
        let ring = Keyring::parse(&format!("new:{KEY_B},old:{KEY_A}")).unwrap();
        let opened = open(Some(&ring), "facebook", &stored).unwrap();
        assert_eq!(opened, *json!({"verify": "enc:v1:not-sealed", "secret": "app-secret"}).as_object().unwrap());
    }

    #[test]
    fn keyrings_are_checked_without_echoing_keys() {
        for bad in
            ["", "nokey", "a:not-base64!", "a:c2hvcnQ=", &format!("a:{KEY_A},a:{KEY_B}"), &format!("a b:{KEY_A}")]
        {
            let error = Keyring::parse(bad).err().unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(!error.contains(KEY_A), "{error}");
        }
    }
}
