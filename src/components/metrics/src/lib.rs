//! `/metrics`: Prometheus exposition of what only the application knows.

use integrations_core::{endpoint, serve};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

#[spin_sdk::http_component]
fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    serve::<endpoint::Metrics>(request, response_out)
}
