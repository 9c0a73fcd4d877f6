//! What the end-to-end tests and the benchmark share: the app under a real `spin up`
//! ([`spin`]), and a throwaway PostgreSQL cluster ([`postgres`]). Nothing here imitates Spin.

pub mod postgres;
pub mod spin;

pub use postgres::PostgresFixture;
pub use spin::{proc_kib, process_group_resident_bytes, AppOptions, AppSource, LogLine, Spin, SpinApp};

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// The repository's root (where `spin.toml` is).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the workspace root exists")
}

/// Polls `url` until it answers with a success, for a server `child` that was just started:
/// fails as soon as `child` exits, or after `timeout`, with `output()` (its log) in the error.
pub async fn wait_until_serving(
    child: &mut Child,
    what: &str,
    url: &str,
    timeout: Duration,
    output: impl Fn() -> String,
) -> Result<()> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited before serving ({status}):\n{}", output());
        }
        if client.get(url).send().await.is_ok_and(|response| response.status().is_success()) {
            return Ok(());
        }
        if started.elapsed() > timeout {
            bail!("{what} did not serve within {timeout:?}:\n{}", output());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
