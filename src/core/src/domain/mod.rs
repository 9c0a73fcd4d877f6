//! What an integration is, independent of HTTP and storage.

mod id;
mod integration;
mod update;

pub use id::IntegrationId;
pub use integration::{defaults, Integration, Precondition, Seed, Settings, Timestamp, Version};
pub use update::{FieldError, IntegrationUpdate, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_SETTINGS_DEPTH};
