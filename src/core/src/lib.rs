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

macro_rules! components {
    ($( $(#[$doc:meta])* $name:ident = $id:literal, )*) => {
        /// A component of spin.toml: the routes it serves are `api::routes::ROUTES`' rows that name it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Endpoint {
            $( $(#[$doc])* $name, )*
        }

        impl Endpoint {
            pub const ALL: &'static [Endpoint] = &[$(Endpoint::$name),*];

            /// The component id in spin.toml, as log lines name it.
            pub fn component(self) -> &'static str {
                match self {
                    $( Self::$name => $id, )*
                }
            }
        }

        /// One type per component, for [`serve`].
        pub mod endpoint {
            use super::{Component, Endpoint};
            $(
                pub struct $name;
                impl Component for $name {
                    const ENDPOINT: Endpoint = Endpoint::$name;
                }
            )*
        }

        /// [`api::handle`] for a component chosen at run time, as the tests choose them.
        #[cfg(test)]
        pub(crate) fn handle_any(endpoint: Endpoint, request: Request, host: &dyn host::Host) -> Response {
            match endpoint {
                $( Endpoint::$name => api::handle::<endpoint::$name>(request, host), )*
            }
        }
    };
}

components! {
    List = "integrations-list",
    Item = "integrations-item",
    History = "integrations-history",
    Keys = "integrations-keys",
    /// Liveness: given no variables, it reads none.
    Health = "health",
    Readiness = "readiness",
    Metrics = "metrics",
    OpenApi = "openapi",
}
