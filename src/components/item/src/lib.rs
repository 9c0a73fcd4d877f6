//! `/admin/integrations/:id`: read or update one integration.

use integrations_core::{serve, Endpoint, Request, Response};

#[spin_sdk::http_component]
fn handle(request: Request) -> Response {
    serve(Endpoint::Item, request)
}
