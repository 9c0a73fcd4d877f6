//! What the end-to-end tests and the benchmark share: the app under a real `spin up`
//! ([`spin`]), and a throwaway PostgreSQL cluster ([`postgres`]). Nothing here imitates Spin.

pub mod postgres;
pub mod spin;

pub use postgres::PostgresFixture;
pub use spin::{
    proc_kib, process_and_children_cpu_us, process_group_cpu_us, process_group_resident_bytes, AppOptions, AppSource,
    LogLine, Spin, SpinApp,
};

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// The repository's root (where `spin.toml` is).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the workspace root exists")
}

/// `promtool check metrics` on `text`: Prometheus's own parser and linter (units, reserved
/// suffixes). `Err` holds promtool's complaints, or says it is missing (Debian package
/// `prometheus`): a check without it fails rather than passing unchecked.
pub fn promtool_check(text: &str) -> Result<(), String> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("promtool does not run ({e}): apt-get install prometheus"))?;
    promtool.stdin.take().expect("a piped stdin").write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    let output = promtool.wait_with_output().map_err(|e| e.to_string())?;
    let report = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    match output.status.success() && report.trim().is_empty() {
        true => Ok(()),
        false => Err(format!("promtool: {report}")),
    }
}

/// A port of 127.0.0.1 that nothing listens on now.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
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
