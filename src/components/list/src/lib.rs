//! `/admin/integrations` (and its trailing-slash form): every integration.

use integrations_core::{endpoint, serve};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

#[spin_sdk::http_component]
fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    serve::<endpoint::List>(request, response_out)
}
