//! The integrations admin API. Each Spin component is a thin shell that calls [`serve`]
//! with the endpoint it is mounted on.

pub type Request = http::Request<Vec<u8>>;
pub type Response = http::Response<Vec<u8>>;

/// The path a component serves; Spin routes by path, the endpoint dispatches on method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    List,
    Item,
    Health,
    Readiness,
    Metrics,
    OpenApi,
}

/// Handles one request on the Spin host.
pub fn serve(endpoint: Endpoint, _request: Request) -> Response {
    let _ = endpoint;
    http::Response::builder()
        .status(501)
        .body(b"{\"detail\":\"Not implemented\"}".to_vec())
        .unwrap()
}
