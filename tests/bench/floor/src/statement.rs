//! The statement the app's PostgreSQL store sends for each route of the benchmark, with its
//! parameters: what the Spin floor component sends per request, and what the benchmark's pgbench
//! floor runs (`tests/bench/src/main.rs` includes this file).

use integrations_core::config::DEFAULTS;
use integrations_core::domain::{Action, Actor, IntegrationId, WriteConditions};
use integrations_core::store::{postgres_statements, Provenance, SettingsWrite, StoredSettings, Write};
use serde::Deserialize;
use spin_sdk::pg4::ParameterValue;

/// The admin UI's PUT body (its whole integration object; `id` is the path's).
#[derive(Deserialize)]
struct Put {
    name: String,
    description: String,
    status: bool,
    settings: serde_json::Value,
}

/// For each route of the benchmark, the statement the app's store sends and the parameters it
/// binds for the same request (the store's own `write_params` for a PUT).
///
/// Each of these returns at least one row for the benchmark's requests (the seeded table, the
/// `facebook` row): Spin 4.0.x and 4.1.0-pre0 never return from a query with zero rows
/// (spinframework/spin#3671), so a floor that asked for a missing row would hang, not measure.
pub fn statement(method: &http::Method, id: Option<&str>, body: &[u8]) -> Option<(String, Vec<ParameterValue>)> {
    match (method, id) {
        (&http::Method::GET, None) => Some((postgres_statements::list(), vec![])),
        (&http::Method::GET, Some(id)) => Some((postgres_statements::get(), vec![ParameterValue::Str(id.into())])),
        (&http::Method::PUT, Some(id)) => {
            let write = admin_ui_put(id, body)?;
            Some((postgres_statements::write(), postgres_statements::write_params(&write)))
        }
        _ => None,
    }
}

/// The admin UI's PUT as the store binds it: no preconditions, no keyring (plain settings), every
/// key declared, the default retention.
pub fn admin_ui_put(id: &str, body: &[u8]) -> Option<Write> {
    let put: Put = serde_json::from_slice(body).ok()?;
    let settings = put.settings.as_object()?.clone();
    Some(Write {
        id: IntegrationId::parse(id)?,
        name: Some(put.name),
        description: Some(put.description),
        status: Some(put.status),
        settings: Some(SettingsWrite {
            keys: settings.keys().cloned().collect(),
            stored: StoredSettings::plain(&settings),
            undeclared: Vec::new(),
        }),
        conditions: WriteConditions::default(),
        provenance: Provenance {
            action: Action::Update,
            restored_from: None,
            actor: Actor { name: None, authenticated: false, request_id: Some("bench".into()), client_addr: None },
        },
        retention: DEFAULTS.history_retention().ok()?.get(),
    })
}
