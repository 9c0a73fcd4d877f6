//! `/metrics`: Prometheus exposition of what only the application knows.

use integrations_core::{serve, Endpoint, Request, Response};

#[spin_sdk::http_component]
fn handle(request: Request) -> Response {
    serve(Endpoint::Metrics, request)
}
