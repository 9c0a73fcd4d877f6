//! `/health`: liveness. Never touches the database.

use integrations_core::{serve, Endpoint, Request, Response};

#[spin_sdk::http_component]
fn handle(request: Request) -> Response {
    serve(Endpoint::Health, request)
}
