//! `GET /metrics`: what only the application knows, computed at scrape time. Request
//! counts and latencies come from the host's OpenTelemetry (see the README).

use std::time::Instant;

use http::StatusCode;

use super::auth::require_bearer;
use super::response::{with_body, ApiError};
use crate::config::Storage;
use crate::host::Host;
use crate::metrics::{encode, IntegrationSample, Snapshot, CONTENT_TYPE};
use crate::{Request, Response};

pub fn serve(request: &Request, host: &dyn Host) -> Result<Response, ApiError> {
    if !host.flag("metrics_enabled", false) {
        return Err(ApiError::NotFound("Not Found"));
    }
    require_bearer(request, host.get("metrics_token").as_deref())?;
    let snapshot = snapshot(host);
    Ok(with_body(StatusCode::OK, CONTENT_TYPE, encode(&snapshot).into_bytes()))
}

/// A scrape still succeeds while the database is down: that is when it matters most.
fn snapshot(host: &dyn Host) -> Snapshot {
    let storage = Storage::from_variables(host);
    let started = Instant::now();
    let measured = host.open_store(&storage).and_then(|store| {
        store.ping()?;
        let ping = started.elapsed();
        Ok((ping, store.list()?))
    });
    let (database_up, database_ping_seconds, integrations) = match measured {
        Ok((ping, integrations)) => (true, Some(ping.as_secs_f64()), integrations),
        Err(_) => (false, None, Vec::new()),
    };
    Snapshot {
        backend: storage.backend().as_str(),
        database_up,
        database_ping_seconds,
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
