//! `GET /metrics`: what only the application knows, computed at scrape time. Request
//! counts and latencies come from the host's OpenTelemetry (see the README).

use std::time::Instant;

use http::StatusCode;

use super::auth::require_bearer;
use super::response::{with_body, ApiError};
use super::Call;
use crate::config::Storage;
use crate::metrics::{encode, IntegrationSample, KeySample, Snapshot, CONTENT_TYPE};
use crate::service::CacheUse;
use crate::store::StoreError;
use crate::Response;

pub fn serve(call: &Call) -> Result<Response, ApiError> {
    if !call.host.flag("metrics_enabled") {
        return Err(ApiError::NotFound("Not Found"));
    }
    require_bearer(&call.parts, call.host.get("metrics_token").as_deref())?;
    let snapshot = snapshot(call);
    Ok(with_body(StatusCode::OK, CONTENT_TYPE, encode(&snapshot).into_bytes()))
}

/// A scrape still succeeds while the database is down: that is when it matters most.
fn snapshot(call: &Call) -> Snapshot {
    let backend = Storage::from_variables(call.host).backend().as_str();
    let started = Instant::now();
    let measured = (|| -> Result<_, StoreError> {
        // Never the cache: a scrape reports what the database holds.
        let service = call.service(CacheUse::None);
        service.ping()?;
        let ping = started.elapsed();
        Ok((ping, service.list()?, service.key_report()?))
    })();
    let Ok((ping, integrations, report)) = measured else {
        return Snapshot {
            backend,
            database_up: false,
            database_ping_seconds: None,
            integrations: Vec::new(),
            keys: KeySample::default(),
            version: env!("CARGO_PKG_VERSION"),
        };
    };
    let tables = [("live", &report.live), ("history", &report.history)];
    let rows = tables
        .iter()
        .flat_map(|(table, counts)| {
            counts.iter().map(move |count| (*table, count.key.clone().unwrap_or_else(|| "plain".into()), count.rows))
        })
        .collect();
    Snapshot {
        backend,
        database_up: true,
        database_ping_seconds: Some(ping.as_secs_f64()),
        keys: KeySample {
            rows,
            on_old_keys: report.on_old_keys,
            unreadable: integrations.iter().filter(|integration| integration.settings.is_err()).count() as i64,
        },
        integrations: integrations
            .into_iter()
            .map(|integration| IntegrationSample {
                enabled: integration.status,
                updated_at_seconds: integration.updated_at.as_secs_f64(),
                id: integration.id,
            })
            .collect(),
        version: env!("CARGO_PKG_VERSION"),
    }
}
