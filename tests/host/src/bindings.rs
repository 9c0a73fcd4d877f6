//! Host bindings for the Spin interfaces of `wit/world.wit` (world `spin-imports`). WASI and
//! `wasi:http` come from wasmtime-wasi and wasmtime-wasi-http, as in Spin itself.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "integrations:service/spin-imports",
    imports: { default: async | trappable },
    with: {
        "spin:postgres/postgres.connection": crate::outbound_pg::PgConnection,
        "fermyon:spin/sqlite.connection": crate::sqlite::SqliteConnection,
    },
    require_store_data_send: true,
});

pub use fermyon::spin::{sqlite, variables};
pub use spin::postgres::postgres;
