//! The harness of the end-to-end tests: the project's spin.toml under a real `spin up` (every
//! Spin CLI of `SPIN_BIN`), on a fresh PostgreSQL database or a fresh SQLite state directory,
//! and a client whose every response is checked against the OpenAPI description.

pub mod browser;
pub mod harness;
pub mod spec;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::Method;
use serde_json::Value;
pub use test_support::{AppOptions, AppSource, PostgresFixture, Spin, SpinApp};

use browser::{Browser, BrowserReply, BrowserRequest};
use spec::Spec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Every request gets at most this long: a request that does not answer is a failure, not a
/// wait (Spin 4.0's zero-row deadlock made requests hang forever).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The service under test, and what it runs on.
pub struct Service {
    pub app: SpinApp,
    pub backend: Backend,
    /// The cluster behind a PostgreSQL service.
    cluster: Option<Cluster>,
    pub dsn: Option<String>,
    /// `--state-dir`: the SQLite default and the cache's key-value store. Kept across restarts.
    state: tempfile::TempDir,
    client: reqwest::Client,
    /// The description this service serves, fetched on its first checked request.
    spec: tokio::sync::OnceCell<Spec>,
    /// The longest any request of this service took, in microseconds, and which (printed on
    /// drop with `--nocapture`; the timeout above is the assertion).
    slowest: std::sync::Mutex<(u64, String)>,
}

impl Drop for Service {
    fn drop(&mut self) {
        let (slowest, request) = &*self.slowest.lock().unwrap();
        if *slowest > 0 && harness::verbose() {
            let ms = *slowest as f64 / 1000.0;
            eprintln!("e2e: {} {:?}: slowest request {ms:.1} ms: {request}", self.app.spin, self.backend);
        }
    }
}

pub fn manifest() -> PathBuf {
    test_support::workspace_root().join("spin.toml")
}

impl Service {
    pub async fn start(spin: &Spin, backend: Backend) -> Self {
        Self::start_with(spin, backend, &[]).await
    }

    /// Starts the app with `variables` on top of what the backend needs. PostgreSQL services
    /// get a fresh database on the test process's shared cluster.
    pub async fn start_with(spin: &Spin, backend: Backend, variables: &[(&str, &str)]) -> Self {
        let cluster = match backend {
            Backend::Postgres => Some(Cluster::Shared(PostgresFixture::shared().await.expect("PostgreSQL starts"))),
            Backend::Sqlite => None,
        };
        Self::start_on(spin, backend, cluster, variables).await
    }

    /// The app as the README's command runs it: the SQLite default, with the runtime config the
    /// command names (the cache's key-value store in memory; every other test runs without one,
    /// where Spin keeps that store in a second SQLite file).
    pub async fn start_as_the_readme_runs_it(spin: &Spin) -> Self {
        let state = tempfile::Builder::new().prefix("e2e-state-").tempdir().expect("a state directory");
        let options = AppOptions {
            state_dir: Some(state.path().to_owned()),
            runtime_config: Some(test_support::workspace_root().join("runtime-config.toml")),
            ..Self::options(None, None, &[])
        };
        let app = SpinApp::start(spin, &options).await.unwrap_or_else(|e| panic!("the app starts under {spin}: {e:#}"));
        Self::around(app, Backend::Sqlite, None, None, state)
    }

    /// A PostgreSQL service on a cluster of its own, which the test may stop and restart.
    pub async fn start_with_own_cluster(spin: &Spin, variables: &[(&str, &str)]) -> Self {
        let cluster = Cluster::Own(PostgresFixture::start().await.expect("PostgreSQL starts"));
        Self::start_on(spin, Backend::Postgres, Some(cluster), variables).await
    }

    /// A PostgreSQL service on a cluster of its own behind a network link the test may cut.
    pub async fn start_with_own_cluster_behind_link(spin: &Spin, variables: &[(&str, &str)]) -> Self {
        let cluster =
            Cluster::Own(PostgresFixture::start_behind_link().await.expect("PostgreSQL starts behind a link"));
        Self::start_on(spin, Backend::Postgres, Some(cluster), variables).await
    }

    async fn start_on(spin: &Spin, backend: Backend, cluster: Option<Cluster>, variables: &[(&str, &str)]) -> Self {
        let dsn = match &cluster {
            Some(cluster) => Some(fresh_database(&cluster.fixture().dsn()).await),
            None => None,
        };
        let state = tempfile::Builder::new().prefix("e2e-state-").tempdir().expect("a state directory");
        let options = Self::options(cluster.as_ref().map(Cluster::fixture), dsn.as_deref(), variables);
        let options = AppOptions { state_dir: Some(state.path().to_owned()), ..options };
        let app = SpinApp::start(spin, &options).await.unwrap_or_else(|e| panic!("the app starts under {spin}: {e:#}"));
        Self::around(app, backend, cluster, dsn, state)
    }

    /// Another `spin up` of the app on this service's PostgreSQL database (a second replica), with
    /// `variables` of its own and its own state directory.
    pub async fn replica(&self, variables: &[(&str, &str)]) -> Self {
        let Some(Cluster::Shared(fixture)) = self.cluster else {
            panic!("replicas share the test process's PostgreSQL cluster")
        };
        let state = tempfile::Builder::new().prefix("e2e-state-").tempdir().expect("a state directory");
        let options = Self::options(Some(fixture), self.dsn.as_deref(), variables);
        let options = AppOptions { state_dir: Some(state.path().to_owned()), ..options };
        let spin = self.spin().clone();
        let app =
            SpinApp::start(&spin, &options).await.unwrap_or_else(|e| panic!("a replica starts under {spin}: {e:#}"));
        Self::around(app, self.backend, Some(Cluster::Shared(fixture)), self.dsn.clone(), state)
    }

    /// Stops the app and starts it again, with `variables` instead of those it had, on the same
    /// database and state directory (as an operator changing its configuration does).
    pub async fn restart_with(&mut self, variables: &[(&str, &str)]) {
        self.restart_on(&manifest(), variables).await;
    }

    /// As [`Self::restart_with`], with another build of the app (the `spin.toml` at `manifest`).
    pub async fn restart_on(&mut self, manifest: &std::path::Path, variables: &[(&str, &str)]) {
        let spin = self.app.spin.clone();
        let fixture = self.cluster.as_ref().map(Cluster::fixture);
        let options = Self::options(fixture, self.dsn.as_deref(), variables);
        let options = AppOptions {
            source: test_support::AppSource::Manifest(manifest.to_owned()),
            state_dir: Some(self.state.path().to_owned()),
            ..options
        };
        let app =
            SpinApp::start(&spin, &options).await.unwrap_or_else(|e| panic!("the app restarts under {spin}: {e:#}"));
        let old = std::mem::replace(&mut self.app, app);
        old.stop().await.expect("the old app stops");
        // Another build may describe itself otherwise.
        self.spec = Default::default();
    }

    /// The state directory (`--state-dir`) of the app.
    pub fn state_dir(&self) -> &std::path::Path {
        self.state.path()
    }

    /// The `spin up` options for the app's own manifest on `dsn` (SQLite when `None`).
    pub fn options(fixture: Option<&PostgresFixture>, dsn: Option<&str>, variables: &[(&str, &str)]) -> AppOptions {
        let mut options = AppOptions::manifest(manifest());
        if let (Some(fixture), Some(dsn)) = (fixture, dsn) {
            options = options
                .variable("db_dsn", dsn)
                .variable("db_host", &fixture.host_port())
                .variable("db_backend", "postgres");
        }
        variables.iter().fold(options, |options, (name, value)| options.variable(name, value))
    }

    /// A service around an app the test started itself (e.g. from a registry reference) on
    /// `state` (its `--state-dir`).
    pub fn around(
        app: SpinApp,
        backend: Backend,
        cluster: Option<Cluster>,
        dsn: Option<String>,
        state: tempfile::TempDir,
    ) -> Self {
        let client = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build().expect("an HTTP client");
        Self { app, backend, cluster, dsn, state, client, spec: Default::default(), slowest: Default::default() }
    }

    pub fn spin(&self) -> &Spin {
        &self.app.spin
    }

    /// Stops this service's own cluster (see `start_with_own_cluster`).
    pub async fn stop_database(&self) {
        self.own_cluster().stop().await.expect("PostgreSQL stops");
    }

    pub async fn restart_database(&self) {
        self.own_cluster().restart().await.expect("PostgreSQL starts again");
    }

    /// Cuts the network between the app and its own cluster (see
    /// `start_with_own_cluster_behind_link`), as a partition does.
    pub async fn cut_database_link(&self) {
        self.own_cluster().cut_link().await.expect("the link is cut");
    }

    pub async fn restore_database_link(&self) {
        self.own_cluster().restore_link().await.expect("the link is restored");
    }

    fn own_cluster(&self) -> &PostgresFixture {
        match &self.cluster {
            Some(Cluster::Own(fixture)) => fixture,
            _ => panic!("only a service started with its own cluster may stop it"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.app.base_url().trim_end_matches('/'))
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], None).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::PUT, path, &[("content-type", "application/json")], Some(body.to_string().into_bytes())).await
    }

    /// The OpenAPI description this service serves.
    pub async fn spec(&self) -> &Spec {
        self.spec
            .get_or_init(|| async {
                let served = self.send_unchecked(Method::GET, "/openapi.json", &[], None).await;
                assert_eq!(served.status, 200, "{}: /openapi.json", self.spin());
                Spec::new(served.json())
            })
            .await
    }

    /// Sends a request and checks the response against the OpenAPI description it serves.
    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Reply {
        self.send_within(REQUEST_TIMEOUT, method, path, headers, body).await
    }

    /// [`Self::send`], for a request that may take up to `timeout` rather than
    /// [`REQUEST_TIMEOUT`].
    pub async fn send_within(
        &self,
        timeout: Duration,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let reply = self.send_unchecked_within(timeout, method.clone(), path, headers, body).await;
        let content_type = reply.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let spec_path = path.split('?').next().unwrap_or(path);
        let spec = self.spec().await;
        let checked = spec
            .check(method.as_str(), spec_path, reply.status, content_type, &reply.body)
            .and_then(|()| spec.check_headers(method.as_str(), spec_path, reply.status, &reply.headers));
        if let Err(mismatch) = checked {
            panic!(
                "{}: response contradicts openapi.json: {mismatch}\nbody: {}",
                self.spin(),
                String::from_utf8_lossy(&reply.body)
            );
        }
        reply
    }

    /// Has `browser`'s page, on another origin, make `request` to this service, and checks what
    /// the page could read against the OpenAPI description: the status and the body. The
    /// headers are not checked here: the browser shows the page only those CORS lets it read.
    pub async fn from_browser(&self, browser: &Browser, request: &BrowserRequest) -> Result<BrowserReply, String> {
        let reply = browser.fetch(self.app.base_url(), request).await?;
        let path = request.path().split('?').next().unwrap_or_default();
        let content_type = reply.header("content-type");
        if let Err(mismatch) =
            self.spec().await.check(request.method(), path, reply.status, content_type, reply.body.as_bytes())
        {
            panic!(
                "{}: the browser read an answer that contradicts openapi.json: {mismatch}\nbody: {}",
                self.spin(),
                reply.body
            );
        }
        Ok(reply)
    }

    /// Sends a request without checking the answer against the description: to fetch the
    /// description itself.
    async fn send_unchecked(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        self.send_unchecked_within(REQUEST_TIMEOUT, method, path, headers, body).await
    }

    async fn send_unchecked_within(
        &self,
        timeout: Duration,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut request = self.client.request(method.clone(), self.url(path)).timeout(timeout);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let spin = self.spin();
        let started = Instant::now();
        let response =
            request.send().await.unwrap_or_else(|e| panic!("{spin} ({:?}): {method} {path}: {e}", self.backend));
        let reply = Reply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.bytes().await.unwrap_or_else(|e| panic!("{spin}: {method} {path}: body: {e}")).to_vec(),
        };
        let took = started.elapsed().as_micros() as u64;
        let mut slowest = self.slowest.lock().unwrap();
        if took > slowest.0 {
            *slowest = (took, format!("{method} {path} ({})", reply.status));
        }
        drop(slowest);
        reply
    }

    /// Every line the components wrote to stdout and stderr so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.app.logs().into_iter().map(|line| line.line).collect()
    }

    /// Waits for a component log line containing `needle` (Spin writes them to files as the
    /// component runs, so a line may trail the response by a moment).
    pub async fn wait_for_log(&self, needle: &str) -> String {
        for _ in 0..250 {
            if let Some(line) = self.log_lines().into_iter().find(|line| line.contains(needle)) {
                return line;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{}: no log line contains {needle}: {:#?}", self.spin(), self.log_lines());
    }
}

pub enum Cluster {
    Shared(&'static PostgresFixture),
    Own(PostgresFixture),
}

impl Cluster {
    pub fn fixture(&self) -> &PostgresFixture {
        match self {
            Self::Shared(fixture) => fixture,
            Self::Own(fixture) => fixture,
        }
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// A new, empty database on the cluster behind `admin_dsn`, so that tests sharing a
/// cluster (or a `TEST_DATABASE_URL`) never see each other's rows.
pub async fn fresh_database(admin_dsn: &str) -> String {
    test_support::postgres::fresh_database(admin_dsn).await.expect("a fresh database")
}

/// Opens a direct connection, for tests that look at the rows themselves.
pub async fn connect(dsn: &str) -> tokio_postgres::Client {
    test_support::postgres::connect(dsn).await.expect("direct connection")
}
