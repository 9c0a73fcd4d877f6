//! The integrations admin API. Each Spin component is a thin shell that calls [`serve`]
//! with the endpoint it is mounted on; everything else lives here, where it can be
//! tested natively.

pub mod api;
pub mod config;
pub mod domain;
pub mod host;
pub mod metrics;
mod redact;
pub mod store;
pub mod telemetry;

pub type Request = http::Request<Vec<u8>>;
pub type Response = http::Response<Vec<u8>>;

/// The path a component serves. Spin routes by path; the endpoint dispatches on method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/admin/integrations` (and `/admin/integrations/`)
    List,
    /// `/admin/integrations/:id`
    Item,
    /// `/health`
    Health,
    /// `/readiness` and `/ready`
    Readiness,
    /// `/metrics`
    Metrics,
    /// `/openapi.json` and `/docs`
    OpenApi,
}

/// Handles one request on the Spin host.
pub fn serve(endpoint: Endpoint, request: Request) -> Response {
    api::handle(endpoint, request, &host::SpinHost)
}
