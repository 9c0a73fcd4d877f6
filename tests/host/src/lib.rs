//! A test host that runs a Spin app's built components the way `spin up` does: Spin's routing
//! and request headers, Spin's variables, and Spin's PostgreSQL and SQLite interfaces over
//! real servers. Test infrastructure for this project; `spin up` remains the way to run it.

pub mod allowed_hosts;
mod app;
pub mod bindings;
pub mod logs;
pub mod manifest;
pub mod outbound_pg;
mod pg_fixture;
pub mod routing;
mod runtime;
mod server;
pub mod sqlite;
mod state;
pub mod variables;
mod variables_host;

pub use app::{TestApp, TestAppOptions, SKIP_BUILD_ENV};
pub use logs::{LogLine, LogStream};
pub use pg_fixture::PostgresFixture;
