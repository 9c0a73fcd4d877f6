//! `spin-test-host`: serves an app under the test host by hand, for debugging. A test tool:
//! run the product with `spin up`.
//!
//! Usage: spin-test-host [--manifest spin.toml] [--listen 127.0.0.1:3000] [--state-dir DIR]
//!                       [--variable name=value]... [--throwaway-postgres]
//! Variables are also read from `SPIN_VARIABLE_<NAME>`, as Spin does. `--throwaway-postgres`
//! starts a temporary PostgreSQL cluster (removed on exit) and points `db_dsn` at it.

use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use spin_test_host::{PostgresFixture, TestApp, TestAppOptions};

#[tokio::main]
async fn main() -> Result<()> {
    let mut options = TestAppOptions {
        manifest: PathBuf::from("spin.toml"),
        read_env: true,
        echo_logs: true,
        listen: Some(([127, 0, 0, 1], 3000).into()),
        ..Default::default()
    };
    let mut args = std::env::args().skip(1);
    let mut postgres = None;
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--manifest" | "-f" => options.manifest = value()?.into(),
            "--listen" => options.listen = Some(value()?.parse().context("--listen takes ip:port")?),
            "--state-dir" => options.state_dir = Some(value()?.into()),
            "--variable" => {
                let pair = value()?;
                let (name, value) = pair.split_once('=').context("--variable takes name=value")?;
                options.variables.push((name.into(), value.into()));
            }
            "--throwaway-postgres" => {
                let fixture = PostgresFixture::start().await?;
                for (name, value) in [("db_dsn", fixture.dsn()), ("db_host", fixture.host_port())] {
                    options.variables.push((name.into(), value));
                }
                options.variables.push(("db_backend".into(), "postgres".into()));
                postgres = Some(fixture);
            }
            "--help" | "-h" => {
                println!(
                    "usage: spin-test-host [--manifest spin.toml] [--listen ip:port] [--state-dir DIR] \
                     [--variable name=value]... [--throwaway-postgres]"
                );
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    let app = TestApp::start(options).await?;
    eprintln!("spin-test-host: serving on {} (a test tool; run the product with `spin up`)", app.base_url());
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let served = tokio::select! {
        served = app.wait() => served,
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = terminate.recv() => Ok(()),
    };
    // Stops and removes the throwaway cluster.
    drop(postgres);
    served
}
