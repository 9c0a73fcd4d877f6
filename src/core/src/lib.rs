//! The integrations admin API. Each Spin component is a thin shell that calls [`serve`]
//! with the endpoint it is mounted on; everything else lives here, where it can be
//! tested natively.

pub mod api;
pub mod body;
pub mod catalog;
pub mod config;
pub mod domain;
pub mod host;
pub mod metrics;
mod redact;
pub mod seal;
pub mod service;
mod spin;
pub mod store;
pub mod telemetry;

pub use spin::serve;

pub type Request = http::Request<body::Body>;
pub type Response = http::Response<Vec<u8>>;

/// A component: the endpoint it serves, known when it is compiled, so that each component's
/// binary carries only its own endpoint's code (see [`endpoint`]).
pub trait Component {
    const ENDPOINT: Endpoint;
}

/// One type per component, for [`serve`].
pub mod endpoint {
    use super::{Component, Endpoint};

    macro_rules! endpoints {
        ($($name:ident),*) => {$(
            pub struct $name;
            impl Component for $name {
                const ENDPOINT: Endpoint = Endpoint::$name;
            }
        )*};
    }

    endpoints!(List, Item, History, Keys, Health, Readiness, Metrics, OpenApi);
}

/// The path a component serves. Spin routes by path; the endpoint dispatches on method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/admin/integrations` (and `/admin/integrations/`)
    List,
    /// `/admin/integrations/:id`
    Item,
    /// `/admin/integrations/:id/history/...`
    History,
    /// `/admin/keys/...`
    Keys,
    /// `/health`
    Health,
    /// `/readiness` and `/ready`
    Readiness,
    /// `/metrics`
    Metrics,
    /// `/openapi.json` and `/docs`
    OpenApi,
}
