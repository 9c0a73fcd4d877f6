//! What the end-to-end tests and the benchmark share: the app under a real `spin up`
//! ([`spin`]), and a throwaway PostgreSQL cluster ([`postgres`]). Nothing here imitates Spin.

pub mod postgres;
pub mod spin;

pub use postgres::PostgresFixture;
pub use spin::{process_group_resident_bytes, AppOptions, AppSource, LogLine, Spin, SpinApp};

use std::path::{Path, PathBuf};

/// The repository's root (where `spin.toml` is).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the workspace root exists")
}
