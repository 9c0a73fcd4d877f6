//! Secrets in `settings` encrypted at rest. With `settings_encryption_key` set, the
//! values of secret-looking settings (`secret`, `page_access_token`, any key naming a
//! secret, token, password or api key) are stored as `enc:v1:<base64>`: XChaCha20-Poly1305
//! with a random nonce, bound to the integration id and the setting's name so a sealed
//! value cannot be moved to another row or field. Clients see plain values; a database
//! dump does not. Plain values already stored stay readable and are sealed on their next write.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde_json::Value;

use super::{Backend, Store, StoreError, UpdateOutcome};
use crate::domain::{Integration, IntegrationId, IntegrationUpdate, Precondition, Settings};

const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 24;
const SECRET_NAME_PARTS: &[&str] = &["secret", "token", "password", "api_key", "apikey"];

/// The key, parsed from `settings_encryption_key` (32 bytes, base64).
#[derive(Clone)]
pub struct SettingsKey(XChaCha20Poly1305);

impl SettingsKey {
    pub fn parse(base64_key: &str) -> Result<Self, StoreError> {
        let bytes = BASE64
            .decode(base64_key.trim())
            .map_err(|_| StoreError::Misconfigured("settings_encryption_key is not base64"))?;
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes)
            .map_err(|_| StoreError::Misconfigured("settings_encryption_key must be 32 bytes"))?;
        Ok(Self(cipher))
    }

    fn seal(&self, id: &str, name: &str, plain: &str) -> Result<String, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| StoreError::Unexpected("no randomness for a nonce".into()))?;
        let aad = associated_data(id, name);
        let sealed = self
            .0
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain.as_bytes(), aad: &aad })
            .map_err(|_| StoreError::Unexpected("sealing a setting failed".into()))?;
        Ok(format!("{PREFIX}{}", BASE64.encode([&nonce[..], &sealed].concat())))
    }

    fn open(&self, id: &str, name: &str, stored: &str) -> Result<String, StoreError> {
        let cannot_open =
            || StoreError::Unexpected(format!("sealed setting {name} of {id} does not open with this key"));
        let bytes = BASE64.decode(&stored[PREFIX.len()..]).map_err(|_| cannot_open())?;
        if bytes.len() < NONCE_LEN {
            return Err(cannot_open());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let aad = associated_data(id, name);
        let plain =
            self.0.decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: &aad }).map_err(|_| cannot_open())?;
        String::from_utf8(plain).map_err(|_| cannot_open())
    }
}

fn associated_data(id: &str, name: &str) -> Vec<u8> {
    format!("integrations/{id}/settings/{name}").into_bytes()
}

fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_NAME_PARTS.iter().any(|part| name.contains(part))
}

fn is_sealed(value: &Value) -> bool {
    value.as_str().is_some_and(|text| text.starts_with(PREFIX))
}

/// A [`Store`] that seals secret settings on the way in and opens them on the way out.
pub struct SealedSettings {
    inner: Box<dyn Store>,
    key: SettingsKey,
}

impl SealedSettings {
    pub fn new(inner: Box<dyn Store>, key: SettingsKey) -> Self {
        Self { inner, key }
    }

    fn seal(&self, id: &str, settings: &Settings) -> Result<Settings, StoreError> {
        let mut sealed = settings.clone();
        for (name, value) in sealed.iter_mut() {
            if let Some(plain) = value.as_str().filter(|plain| is_secret_name(name) && !plain.is_empty()) {
                *value = Value::String(self.key.seal(id, name, plain)?);
            }
        }
        Ok(sealed)
    }

    fn open(&self, mut integration: Integration) -> Result<Integration, StoreError> {
        for (name, value) in integration.settings.iter_mut() {
            if is_sealed(value) {
                let plain = self.key.open(&integration.id, name, value.as_str().unwrap_or_default())?;
                *value = Value::String(plain);
            }
        }
        Ok(integration)
    }
}

impl Store for SealedSettings {
    fn backend(&self) -> Backend {
        self.inner.backend()
    }

    fn list(&self) -> Result<Vec<Integration>, StoreError> {
        self.inner.list()?.into_iter().map(|integration| self.open(integration)).collect()
    }

    fn get(&self, id: &IntegrationId) -> Result<Option<Integration>, StoreError> {
        self.inner.get(id)?.map(|integration| self.open(integration)).transpose()
    }

    fn update(
        &self,
        id: &IntegrationId,
        update: &IntegrationUpdate,
        precondition: Option<&Precondition>,
    ) -> Result<UpdateOutcome, StoreError> {
        let settings = update.settings.as_ref().map(|settings| self.seal(id.as_str(), settings)).transpose()?;
        let sealed_update = IntegrationUpdate { settings, ..update.clone() };
        match self.inner.update(id, &sealed_update, precondition)? {
            UpdateOutcome::Updated(integration) => Ok(UpdateOutcome::Updated(self.open(integration)?)),
            other => Ok(other),
        }
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::memory::MemoryStore;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes

    fn facebook() -> IntegrationId {
        IntegrationId::parse("facebook").unwrap()
    }

    fn sealed_over(memory: &MemoryStore) -> SealedSettings {
        SealedSettings::new(Box::new(memory.clone()), SettingsKey::parse(KEY).unwrap())
    }

    fn secrets() -> Settings {
        json!({"verify": "v", "secret": "app-secret", "page_access_token": "EAAB", "empty_token": ""})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn secrets_are_sealed_at_rest_and_plain_to_clients() {
        let memory = MemoryStore::seeded();
        let store = sealed_over(&memory);
        let update = IntegrationUpdate { settings: Some(secrets()), ..Default::default() };
        let UpdateOutcome::Updated(written) = store.update(&facebook(), &update, None).unwrap() else { panic!() };
        assert_eq!(written.settings, secrets());
        assert_eq!(store.get(&facebook()).unwrap().unwrap().settings, secrets());

        let at_rest = memory.get(&facebook()).unwrap().unwrap().settings;
        assert!(is_sealed(&at_rest["secret"]) && is_sealed(&at_rest["page_access_token"]));
        assert_eq!((&at_rest["verify"], &at_rest["empty_token"]), (&json!("v"), &json!("")));
        assert!(!serde_json::to_string(&at_rest).unwrap().contains("app-secret"));
    }

    #[test]
    fn a_sealed_value_moved_to_another_row_does_not_open() {
        let key = SettingsKey::parse(KEY).unwrap();
        let sealed = key.seal("facebook", "secret", "app-secret").unwrap();
        assert_eq!(key.open("facebook", "secret", &sealed).unwrap(), "app-secret");
        assert!(key.open("chat_widget", "secret", &sealed).is_err());
        assert!(key.open("facebook", "page_access_token", &sealed).is_err());
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(SettingsKey::parse("not base64!").is_err());
        assert!(SettingsKey::parse("c2hvcnQ=").is_err());
    }
}
