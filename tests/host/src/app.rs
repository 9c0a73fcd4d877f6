//! Starting an app for a test (or by hand): build it unless told not to, load it, serve it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use tokio::net::TcpListener;

use crate::logs::{LogLine, LogSink};
use crate::manifest::AppManifest;
use crate::outbound_pg::PgPools;
use crate::routing::Router;
use crate::runtime::LoadedApp;
use crate::server::Server;
use crate::state::AppContext;
use crate::variables::{VariableResolver, VariableSources};

/// Set to skip `spin build` before starting (the test command has built everything already).
pub const SKIP_BUILD_ENV: &str = "SPIN_TEST_HOST_SKIP_BUILD";

#[derive(Debug, Clone, Default)]
pub struct TestAppOptions {
    pub manifest: PathBuf,
    /// Variable values, as `spin up --variable name=value`.
    pub variables: Vec<(String, String)>,
    /// Also read `SPIN_VARIABLE_<NAME>` from the environment (off in tests, for isolation).
    pub read_env: bool,
    /// Spin's `--state-dir`; a temporary directory when unset.
    pub state_dir: Option<PathBuf>,
    /// Where to listen; a free port on 127.0.0.1 when unset.
    pub listen: Option<SocketAddr>,
    /// Echo component output to stderr, as `spin up` does, instead of capturing it for `logs`.
    pub echo_logs: bool,
}

/// A running app. Dropping it stops the server.
pub struct TestApp {
    server_state: Arc<Server>,
    address: SocketAddr,
    base_url: String,
    logs: LogSink,
    server: tokio::task::JoinHandle<()>,
    _temporary_state: Option<tempfile::TempDir>,
}

impl TestApp {
    pub async fn start(options: TestAppOptions) -> Result<Self> {
        let manifest = AppManifest::load(&options.manifest)?;
        if std::env::var_os(SKIP_BUILD_ENV).is_none() {
            build_once(&manifest).await?;
        }
        let (state_dir, temporary_state) = match options.state_dir {
            Some(dir) => (dir, None),
            None => {
                let dir = tempfile::tempdir()?;
                (dir.path().to_path_buf(), Some(dir))
            }
        };
        let sources = VariableSources { explicit: options.variables.into_iter().collect(), read_env: options.read_env };
        let logs = if options.echo_logs { LogSink::default() } else { LogSink::capture() };
        let context = AppContext {
            variables: VariableResolver::new(&manifest, sources)?,
            pg_pools: PgPools::default(),
            state_dir,
            logs: logs.clone(),
        };
        let app = tokio::task::block_in_place(|| LoadedApp::load(&manifest, context))?;
        let router = Router::build(&manifest.http_routes)?;
        let listener = TcpListener::bind(options.listen.unwrap_or_else(|| ([127, 0, 0, 1], 0).into())).await?;
        let address = listener.local_addr()?;
        let server_state = Arc::new(Server { app, router });
        let server = tokio::spawn(server_state.clone().serve(listener));
        Ok(Self {
            server_state,
            address,
            base_url: format!("http://{address}"),
            logs,
            server,
            _temporary_state: temporary_state,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Every line the components (and the host, about them) have written so far; empty when
    /// the output is echoed.
    pub fn logs(&self) -> Vec<LogLine> {
        self.logs.lines()
    }

    /// What each request pays before its handler runs: a fresh store and instance of
    /// `component`, measured `iterations` times.
    pub async fn measure_instantiation(&self, component: &str, iterations: usize) -> Result<Vec<Duration>> {
        let loaded =
            self.server_state.app.components.get(component).with_context(|| format!("no component {component}"))?;
        let mut samples = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let started = Instant::now();
            let instance = loaded.instantiate().await?;
            samples.push(started.elapsed());
            drop(instance);
        }
        Ok(samples)
    }

    /// Serves until the process is stopped.
    pub async fn wait(mut self) -> Result<()> {
        (&mut self.server).await.context("server task")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Runs each component's `[component.x.build]` command as `spin build` does, once per manifest
/// per process.
async fn build_once(manifest: &AppManifest) -> Result<()> {
    static BUILT: OnceLock<Mutex<Vec<PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    // One build at a time: concurrent cargo builds would only queue on cargo's lock.
    static BUILDING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _guard = BUILDING.lock().await;
    if built.lock().unwrap().contains(&manifest.dir) {
        return Ok(());
    }
    for component in manifest.components.values() {
        let Some(build) = &component.build else { continue };
        let status = tokio::process::Command::new("sh")
            .args(["-c", &build.command])
            .current_dir(&build.workdir)
            .status()
            .await
            .with_context(|| format!("running the build command of {}", component.id))?;
        if !status.success() {
            bail!("build command of component {} failed ({status}): {}", component.id, build.command);
        }
    }
    built.lock().unwrap().push(manifest.dir.clone());
    Ok(())
}
