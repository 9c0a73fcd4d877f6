//! `/admin/integrations` (and its trailing-slash form): every integration.

use integrations_core::{serve, Endpoint, Request, Response};

#[spin_sdk::http_component]
fn handle(request: Request) -> Response {
    serve(Endpoint::List, request)
}
