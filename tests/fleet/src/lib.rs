//! The fleet the service is deployed as, on one machine: N `spin up` replicas of the built app
//! (each with its own state directory, all on one PostgreSQL and the same runtime config) behind
//! a real HAProxy, optionally with a real Redis as the key-value store they share. The tests
//! replace replicas one at a time (this release and the previous one, [`release`]), crash them
//! and start several at once, under continuous load ([`load`]) through the load balancer.
//!
//! PostgreSQL only: the SQLite default is a file in one replica's state directory, so a SQLite
//! "fleet" would be N services with N databases (its upgrade and rollback run one release after
//! another on one state directory instead).
//!
//! Every replica is given an `admin_token` ([`ADMIN_TOKEN`], which both releases read) and every
//! request of the load carries it ([`client`]), as a deployment with the admin UI behind a token
//! runs: the previous release's authenticated writes must reach this release's history as the
//! token's (`actor`), whichever release made them and before or after the migration.

pub mod haproxy;
pub mod load;
pub mod redis;
pub mod release;
pub mod shim;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
pub use haproxy::HaProxy;
pub use load::{check_writes, Kind, Load, Plan, Report, WriteCheck};
pub use redis::Redis;
pub use release::{previous_release, this_release, Release};
pub use shim::ShimApp;
pub use test_support::{AppOptions, PostgresFixture, Spin, SpinApp};

/// The admin token every replica is given and every request of the tests carries.
pub const ADMIN_TOKEN: &str = "fleet-admin-token";

/// An HTTP client for the fleet's API: `timeout` per request, the admin token on every request.
pub fn client(timeout: Duration) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let bearer = format!("Bearer {ADMIN_TOKEN}").parse().expect("a header value");
    headers.insert(reqwest::header::AUTHORIZATION, bearer);
    reqwest::Client::builder().timeout(timeout).default_headers(headers).build().expect("an HTTP client")
}

/// How long a replica may take to pass its first readiness check once in rotation.
const UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the requests a draining replica holds may take to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The fleet tests share the machine's two cores: one fleet at a time per test process.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// Where the replicas keep the key-value store `default` (the read cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyValue {
    /// Each replica its own, in memory: the repository's `runtime-config.toml`, as the SpinApp
    /// in deploy/ ships.
    PerReplica,
    /// One Redis for all: deploy/'s shared-cache component.
    SharedRedis,
}

/// A replica in one of the load balancer's slots.
pub struct Replica {
    /// `None` once crashed, until restarted.
    pub app: Option<Runner>,
    pub release: Release,
    pub port: u16,
    state: tempfile::TempDir,
}

/// What serves a replica: `spin up`, or containerd-shim-spin as on a SpinKube node.
pub enum Runner {
    Spin(SpinApp),
    Shim(ShimApp),
}

impl Runner {
    /// SIGTERM (to `spin up`'s process group, or to the container's task) and the exit.
    async fn stop(self) -> Result<()> {
        match self {
            Runner::Spin(app) => app.stop().await,
            Runner::Shim(shim) => shim.stop().await.map(drop),
        }
    }
}

/// What replacing one replica took.
#[derive(Debug, Clone)]
pub struct Replacement {
    pub slot: usize,
    pub from: String,
    pub to: String,
    /// From "drain" at the load balancer until the replica held no request.
    pub drain: Duration,
    /// From SIGTERM until the old replica had exited.
    pub exit: Duration,
    /// `spin up` of the new replica until it served.
    pub start: Duration,
    /// From "ready" at the load balancer until its readiness check passed (its migrations ran).
    pub up: Duration,
}

pub struct Fleet {
    pub spin: Spin,
    pub lb: HaProxy,
    pub redis: Option<Redis>,
    /// The app's database (superuser DSN).
    pub dsn: String,
    /// The fleet's own PostgreSQL, when it is not the test process's shared one.
    own_postgres: Option<PostgresFixture>,
    db_host: String,
    runtime_config: PathBuf,
    _config_dir: tempfile::TempDir,
    replicas: Vec<Option<Replica>>,
    /// Every port a replica listened on, and its release, for reading `X-Served-By`.
    ports: Vec<(u16, String)>,
}

impl Fleet {
    /// A load balancer with `slots` empty slots, a fresh database on the test process's
    /// PostgreSQL, and the key-value store `kv`.
    pub async fn new(spin: &Spin, slots: usize, kv: KeyValue) -> Result<Self> {
        Self::on(spin, slots, kv, None).await
    }

    /// As [`Self::new`], on a PostgreSQL of its own behind a network link the test may cut
    /// ([`Self::cut_database_link`]).
    pub async fn new_behind_link(spin: &Spin, slots: usize, kv: KeyValue) -> Result<Self> {
        Self::on(spin, slots, kv, Some(PostgresFixture::start_behind_link().await?)).await
    }

    async fn on(spin: &Spin, slots: usize, kv: KeyValue, own_postgres: Option<PostgresFixture>) -> Result<Self> {
        let postgres = match &own_postgres {
            Some(own) => own,
            None => PostgresFixture::shared().await?,
        };
        let dsn = postgres.fresh_database().await?;
        let db_host = postgres.host_port();
        let config_dir = tempfile::Builder::new().prefix("fleet-config-").tempdir()?;
        let runtime_config = config_dir.path().join("runtime-config.toml");
        let redis = match kv {
            KeyValue::PerReplica => {
                std::fs::copy(test_support::workspace_root().join("runtime-config.toml"), &runtime_config)?;
                None
            }
            KeyValue::SharedRedis => {
                let redis = Redis::start().await?;
                std::fs::write(&runtime_config, redis.runtime_config())?;
                Some(redis)
            }
        };
        let lb = HaProxy::start(slots).await?;
        Ok(Self {
            spin: spin.clone(),
            lb,
            redis,
            dsn,
            own_postgres,
            db_host,
            runtime_config,
            _config_dir: config_dir,
            replicas: (0..slots).map(|_| None).collect(),
            ports: Vec::new(),
        })
    }

    pub fn url(&self) -> String {
        self.lb.url()
    }

    /// Cuts every replica off from the fleet's own PostgreSQL (see [`Self::new_behind_link`]), as a
    /// network partition does: nothing is answered, and nobody is told.
    pub async fn cut_database_link(&self) -> Result<()> {
        self.own_postgres.as_ref().context("the fleet's PostgreSQL is not behind a link")?.cut_link().await
    }

    pub async fn restore_database_link(&self) -> Result<()> {
        self.own_postgres.as_ref().context("the fleet's PostgreSQL is not behind a link")?.restore_link().await
    }

    /// The release a port's replica ran.
    pub fn release_on(&self, port: u16) -> Option<&str> {
        self.ports.iter().find(|(p, _)| *p == port).map(|(_, release)| release.as_str())
    }

    pub fn replica(&self, slot: usize) -> Option<&Replica> {
        self.replicas[slot].as_ref()
    }

    /// The Spin variables every replica gets, whatever runs it.
    fn variables(&self) -> Vec<(String, String)> {
        [
            ("db_dsn", self.dsn.as_str()),
            ("db_host", self.db_host.as_str()),
            ("db_backend", "postgres"),
            // The write check reads every version back from the history.
            ("history_retention", "1000000"),
            ("admin_token", ADMIN_TOKEN),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .to_vec()
    }

    fn options(&self, release: &Release, state: &Path, port: Option<u16>) -> AppOptions {
        AppOptions {
            runtime_config: Some(self.runtime_config.clone()),
            state_dir: Some(state.to_owned()),
            port,
            variables: self.variables(),
            ..AppOptions::manifest(&release.manifest)
        }
    }

    /// Starts `spin up` of `release` (not yet in rotation); how long until it served.
    async fn launch(&self, release: &Release) -> Result<(Replica, Duration)> {
        let state = tempfile::Builder::new().prefix("fleet-state-").tempdir()?;
        let started = Instant::now();
        let app = SpinApp::start(&self.spin, &self.options(release, state.path(), None))
            .await
            .with_context(|| format!("{} of release {release}", self.spin))?;
        let port = app.port();
        Ok((Replica { app: Some(Runner::Spin(app)), release: release.clone(), port, state }, started.elapsed()))
    }

    fn seat(&mut self, slot: usize, replica: Replica) {
        self.ports.push((replica.port, replica.release.version.clone()));
        self.replicas[slot] = Some(replica);
    }

    /// Starts `release` in each of `slots` at once, then puts them all in rotation at once and
    /// waits until every one passed its readiness check. How long each start took.
    pub async fn start_all(&mut self, slots: &[usize], release: &Release) -> Result<Vec<Duration>> {
        let launches = slots.iter().map(|_| self.launch(release));
        let launched = futures::future::join_all(launches).await;
        let mut times = Vec::new();
        for (slot, launched) in slots.iter().zip(launched) {
            let (replica, took) = launched?;
            if self.replicas[*slot].is_some() {
                bail!("slot {slot} is taken");
            }
            self.seat(*slot, replica);
            times.push(took);
        }
        for slot in slots {
            let port = self.replicas[*slot].as_ref().unwrap().port;
            self.lb.enable(*slot, port).await?;
        }
        for slot in slots {
            self.lb.wait_until_up(*slot, UP_TIMEOUT).await?;
        }
        Ok(times)
    }

    /// Drains slot `slot` at the load balancer, lets its requests finish and stops its replica
    /// with SIGTERM. How long the drain took, and the exit after SIGTERM.
    pub async fn retire(&mut self, slot: usize) -> Result<(Duration, Duration)> {
        let drain = self.lb.drain(slot, DRAIN_TIMEOUT).await?;
        self.lb.disable(slot).await?;
        let replica = self.replicas[slot].take().with_context(|| format!("slot {slot} is empty"))?;
        let signalled = Instant::now();
        if let Some(app) = replica.app {
            app.stop().await?;
        }
        Ok((drain, signalled.elapsed()))
    }

    /// One step of a rolling update, as a Deployment does it with a readiness gate: drain slot
    /// `slot`, SIGTERM its replica once it holds no request, start `release` in its place, and put
    /// it in rotation once it runs; it takes requests when its readiness check passes.
    pub async fn replace(&mut self, slot: usize, release: &Release) -> Result<Replacement> {
        let from = self.replicas[slot].as_ref().map(|r| r.release.version.clone()).unwrap_or_default();
        let (drain, exit) = self.retire(slot).await?;
        let (replica, start) = self.launch(release).await?;
        let port = replica.port;
        self.seat(slot, replica);
        self.lb.enable(slot, port).await?;
        let up = self.lb.wait_until_up(slot, UP_TIMEOUT).await?;
        let replacement = Replacement { slot, from, to: release.version.clone(), drain, exit, start, up };
        eprintln!("fleet: {replacement:?}");
        Ok(replacement)
    }

    /// As [`Self::replace`], with `release` served by containerd-shim-spin from the SpinKube node
    /// runtime `node` (see [`shim`]) instead of `spin up`.
    pub async fn replace_under_shim(&mut self, slot: usize, release: &Release, node: &Path) -> Result<Replacement> {
        let from = self.replicas[slot].as_ref().map(|r| r.release.version.clone()).unwrap_or_default();
        let (drain, exit) = self.retire(slot).await?;
        let shim = ShimApp::start(node, &self.spin, &release.manifest, &self.runtime_config, &self.variables()).await?;
        let start = shim.serving_after;
        let port = shim.port();
        let state = tempfile::Builder::new().prefix("fleet-state-").tempdir()?;
        self.seat(slot, Replica { app: Some(Runner::Shim(shim)), release: release.clone(), port, state });
        self.lb.enable(slot, port).await?;
        let up = self.lb.wait_until_up(slot, UP_TIMEOUT).await?;
        let to = format!("{} (containerd-shim-spin)", release.version);
        let replacement = Replacement { slot, from, to, drain, exit, start, up };
        eprintln!("fleet: {replacement:?}");
        Ok(replacement)
    }

    /// `kill -9` of slot `slot`'s replica, its whole process group, with no warning to the load
    /// balancer (as a node loss or the OOM killer).
    pub async fn crash(&mut self, slot: usize) -> Result<()> {
        let replica = self.replicas[slot].as_mut().with_context(|| format!("slot {slot} is empty"))?;
        match replica.app.take().with_context(|| format!("slot {slot} is not running"))? {
            Runner::Spin(app) => app.kill().await,
            Runner::Shim(_) => bail!("only a spin up replica is crashed here"),
        }
    }

    /// Starts slot `slot`'s release again on the same port and state directory (a container
    /// restarted in its pod) and waits until the load balancer's readiness check finds it back,
    /// with no runtime API call: how long from the restart until it was in rotation.
    pub async fn restart(&mut self, slot: usize) -> Result<Duration> {
        let started = Instant::now();
        let replica = self.replicas[slot].as_ref().with_context(|| format!("slot {slot} is empty"))?;
        let options = self.options(&replica.release, replica.state.path(), Some(replica.port));
        let app = SpinApp::start(&self.spin, &options).await?;
        self.replicas[slot].as_mut().unwrap().app = Some(Runner::Spin(app));
        self.lb.wait_until_up(slot, UP_TIMEOUT).await?;
        Ok(started.elapsed())
    }

    /// `max(version)` of `integrations_schema_migrations`, and how many times each version is
    /// recorded (0 and none before the table exists).
    pub async fn schema(&self) -> Result<(i64, Vec<(i64, i64)>)> {
        let client = test_support::postgres::connect(&self.dsn).await?;
        let versioned: bool =
            client.query_one("SELECT to_regclass('integrations_schema_migrations') IS NOT NULL", &[]).await?.get(0);
        if !versioned {
            return Ok((0, Vec::new())); // a release from before versioned migrations
        }
        let rows = client
            .query(
                "SELECT version, count(*) FROM integrations_schema_migrations GROUP BY version ORDER BY version",
                &[],
            )
            .await?;
        let counts: Vec<(i64, i64)> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
        Ok((counts.last().map_or(0, |(version, _)| *version), counts))
    }

    /// Requests each release answered, from `X-Served-By`.
    pub fn by_release(&self, report: &Report) -> Vec<(String, usize)> {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for (port, requests) in report.by_port() {
            let release = self.release_on(port).unwrap_or("?").to_owned();
            match counts.iter_mut().find(|(r, _)| *r == release) {
                Some((_, n)) => *n += requests,
                None => counts.push((release, requests)),
            }
        }
        counts
    }
}

/// A server binary of a Debian package: on `PATH`, else in `/usr/sbin` or `/usr/bin`; a missing
/// one is an error naming the package.
pub(crate) fn binary(name: &str, package: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!(
                "`{name}` not found on PATH or in /usr/sbin, /usr/bin: the fleet tests run a real one. Install \
                 Debian's `{package}` package (`apt-get install {package}`; .ci/run does)"
            )
        })
}
