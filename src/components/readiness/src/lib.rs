//! `/readiness` and `/ready`: is the database answering?

use integrations_core::{serve, Endpoint, Request, Response};

#[spin_sdk::http_component]
fn handle(request: Request) -> Response {
    serve(Endpoint::Readiness, request)
}
