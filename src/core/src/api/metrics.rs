//! `GET /metrics`: what only the application knows, computed at scrape time. Request
//! counts and latencies come from the host's OpenTelemetry (see the README).

use std::time::Instant;

use http::StatusCode;

use super::response::{with_body, ApiError};
use super::Call;
use crate::metrics::{encode, IntegrationSample, KeySample, Snapshot, CONTENT_TYPE};
use crate::service::CacheUse;
use crate::store::StoreError;
use crate::Response;

/// Served only while `metrics_enabled` (the route's auth checks it, before the token).
pub fn serve(call: &mut Call) -> Result<Response, ApiError> {
    let snapshot = snapshot(call)?;
    Ok(with_body(StatusCode::OK, CONTENT_TYPE, encode(&snapshot).into_bytes()))
}

/// A scrape still succeeds while the database is down: that is when it matters most. A
/// misconfiguration is a 500 (the scrape fails, and the log says which variable).
fn snapshot(call: &Call) -> Result<Snapshot, ApiError> {
    let backend = call.config().backend()?.as_str();
    let started = Instant::now();
    // Never the cache: a scrape reports what the database holds.
    let service = call.service(CacheUse::None)?;
    let measured = (|| -> Result<_, StoreError> {
        service.ping()?;
        let ping = started.elapsed();
        Ok((ping, service.list()?, service.key_report()?))
    })();
    let (ping, integrations, report) = match measured {
        Ok(measured) => measured,
        Err(StoreError::Misconfigured(misconfigured)) => return Err(misconfigured.into()),
        Err(StoreError::Unavailable(_) | StoreError::Unexpected(_)) => {
            return Ok(Snapshot {
                backend,
                database_up: false,
                database_ping_seconds: None,
                integrations: Vec::new(),
                keys: KeySample::default(),
                version: env!("CARGO_PKG_VERSION"),
            })
        }
    };
    let tables = [("live", &report.live), ("history", &report.history)];
    let rows = tables
        .iter()
        .flat_map(|(table, counts)| {
            counts.iter().map(move |count| (*table, count.key.clone().unwrap_or_else(|| "plain".into()), count.rows))
        })
        .collect();
    Ok(Snapshot {
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
    })
}
