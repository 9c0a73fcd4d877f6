//! `/admin/integrations/:id/history/...`: the versions of an integration, and restoring one.

use integrations_core::{endpoint, serve};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

#[spin_sdk::http_component]
fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    serve::<endpoint::History>(request, response_out)
}
