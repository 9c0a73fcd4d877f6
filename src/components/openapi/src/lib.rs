//! `/openapi.json` and `/docs`: the API description and a page to read it.

use integrations_core::{serve, Endpoint, Request, Response};

#[spin_sdk::http_component]
fn handle(request: Request) -> Response {
    serve(Endpoint::OpenApi, request)
}
