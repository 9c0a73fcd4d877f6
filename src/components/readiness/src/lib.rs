//! `/readiness` and `/ready`: is the database answering, with its schema up to date?

use integrations_core::{endpoint, serve};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

#[spin_sdk::http_component]
fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    serve::<endpoint::Readiness>(request, response_out)
}
