//! What an integration is, independent of HTTP and storage.

pub mod history;
mod id;
mod integration;
mod update;

pub use history::{Action, Actor, Change, HistoryEntry};
pub(crate) use id::percent_decode;
pub use id::IntegrationId;
pub use integration::{Integration, Precondition, Settings, Timestamp, Unreadable, Version, WriteConditions};
pub use update::{
    FieldError, IntegrationUpdate, SettingsUpdate, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_SETTINGS_DEPTH,
};
