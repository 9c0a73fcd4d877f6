//! `/admin/keys/...`: which keys seal the stored settings, and re-sealing with the current one.

use integrations_core::{endpoint, serve};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

#[spin_sdk::http_component]
fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    serve::<endpoint::Keys>(request, response_out)
}
