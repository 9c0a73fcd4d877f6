//! `/openapi.json` and `/docs`: the API description and a page to read it.

use integrations_core::{endpoint, serve};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

#[spin_sdk::http_component]
fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    serve::<endpoint::OpenApi>(request, response_out)
}
