//! The benchmark: a report, never a test (it asserts nothing about speed). For each Spin CLI it
//! measures, the app (the project's `spin.toml` and built components) under a real `spin up`,
//! on a throwaway PostgreSQL and on the SQLite default, side by side in the same run with the
//! FastAPI service it replaces and with a Spin floor (one `pg4` statement per request), all
//! loaded by wrk, and the cached reads also at one fixed rate for FastAPI and the app
//! (`open_loop`); and, once, pgbench sending the same SQL straight to PostgreSQL. Writes a
//! Markdown report (default `tests/bench/results.md`).
//!
//! Usage: cargo run -p bench --release -- [--seconds N] [--connections 16,64] [--spin PATH]...
//!        [--out FILE]

mod fastapi;
mod load;
mod open_loop;
mod redis;
mod report;
/// The Spin floor's statements, shared with its component.
#[path = "../floor/src/statement.rs"]
mod statement;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use spin_sdk::pg4::ParameterValue;
use statement::statement;
use test_support::{AppOptions, PostgresFixture, Spin, SpinApp};

use fastapi::{Baseline, FastApi};
use load::{Measured, Scripts};
use redis::Redis;
use report::{Backend, ColdStart, EqualLoad, Report, Row, Server, Table};

/// The integration the benchmark reads and writes: `facebook` as the app and the FastAPI
/// baseline both seed it.
const ID: &str = "facebook";
const NAME: &str = "Facebook Messenger";
const DESCRIPTION: &str = "Connect with Facebook Messenger";
/// Its settings, as the admin UI sends them.
const SETTINGS: &str = r#"{"verify":"ai-chatbot-framework","secret":"","page_access_token":""}"#;

/// A route under load.
pub struct Route {
    pub name: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    /// The statement the app's PostgreSQL store sends for this route and the values it binds
    /// for the benchmark's request (`None`: NULL). pgbench runs it; the Spin floor component
    /// (`floor/src/lib.rs`, `statement`) sends the same.
    pub statement: fn() -> (String, Vec<Option<String>>),
}

/// The routes, in report order: what the admin UI calls.
pub const ROUTES: [Route; 3] = [
    Route { name: "GET list", method: "GET", path: "/admin/integrations/", statement: || floor("GET", None) },
    Route {
        name: "GET item",
        method: "GET",
        path: "/admin/integrations/facebook",
        statement: || floor("GET", Some(ID)),
    },
    // As the UI toggles it; pgbench cannot alternate, and writing `true` over `true` costs
    // PostgreSQL the same (a new row version and a history row either way).
    Route {
        name: "PUT item",
        method: "PUT",
        path: "/admin/integrations/facebook",
        statement: || floor("PUT", Some(ID)),
    },
];

/// The statement the Spin floor sends for a route, with its parameters as pgbench's text values.
fn floor(method: &str, id: Option<&str>) -> (String, Vec<Option<String>>) {
    let method = method.parse().expect("an HTTP method");
    let (sql, params) = statement(&method, id, put_body(true).as_bytes()).expect("a benchmark route");
    (sql, params.iter().map(pgbench_text).collect())
}

/// A parameter as text, as the extended protocol sends it (`None`: NULL).
fn pgbench_text(param: &ParameterValue) -> Option<String> {
    match param {
        ParameterValue::DbNull => None,
        ParameterValue::Str(text) => Some(text.clone()),
        ParameterValue::Boolean(value) => Some(value.to_string()),
        ParameterValue::Int64(value) => Some(value.to_string()),
        ParameterValue::ArrayInt64(values) => Some(format!(
            "{{{}}}",
            values.iter().map(|v| v.map_or("NULL".into(), |v| v.to_string())).collect::<Vec<_>>().join(",")
        )),
        other => panic!("the benchmark's statements bind no {other:?}"),
    }
}

/// The list grows to these sizes after the main cells (16 connections).
const LIST_SIZES: [usize; 2] = [100, 1000];
const GROWTH_CONNECTIONS: u32 = 16;

impl Route {
    fn slug(&self) -> String {
        self.name.to_ascii_lowercase().replace(' ', "-")
    }

    /// The wrk script: a GET, or the admin UI's PUT of the whole object with `status`
    /// toggled on every request (per wrk thread).
    fn lua(&self) -> String {
        if self.method != "PUT" {
            return format!("wrk.method = \"{}\"\n", self.method);
        }
        format!(
            "local bodies = {{ [[{}]], [[{}]] }}\n\
             local n = 0\n\
             request = function()\n\
             \x20 n = n + 1\n\
             \x20 return wrk.format(\"PUT\", nil, {{ [\"Content-Type\"] = \"application/json\" }}, bodies[n % 2 + 1])\n\
             end\n",
            put_body(true),
            put_body(false)
        )
    }
}

/// The body the admin UI sends: the whole integration it holds.
fn put_body(status: bool) -> String {
    format!(r#"{{"id":"{ID}","name":"{NAME}","description":"{DESCRIPTION}","status":{status},"settings":{SETTINGS}}}"#)
}

struct Options {
    duration: Duration,
    connections: Vec<u32>,
    spins: Vec<PathBuf>,
    out: PathBuf,
}

impl Options {
    fn parse() -> Result<Self> {
        let mut options = Options {
            duration: Duration::from_secs(8),
            connections: vec![16, 64],
            spins: Vec::new(),
            out: test_support::workspace_root().join("tests/bench/results.md"),
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--seconds" => options.duration = Duration::from_secs(value()?.parse()?),
                "--connections" => {
                    options.connections = value()?.split(',').map(str::parse).collect::<Result<_, _>>()?
                }
                "--spin" => options.spins.push(value()?.into()),
                "--out" => options.out = value()?.into(),
                other => bail!(
                    "unknown argument {other}; usage: bench [--seconds N] [--connections 16,64] [--spin PATH]... [--out FILE]"
                ),
            }
        }
        Ok(options)
    }
}

/// `--spin` paths, else `SPIN_BIN` (separated by `:`), else the shared CLIs beside the
/// repository (`../shared/spin/*/spin`), else `spin` on PATH.
fn spins(flags: &[PathBuf]) -> Result<Vec<Spin>> {
    let paths = if !flags.is_empty() {
        flags.to_vec()
    } else if let Some(list) = std::env::var("SPIN_BIN").ok().filter(|list| !list.trim().is_empty()) {
        list.split(':').filter(|path| !path.is_empty()).map(PathBuf::from).collect()
    } else {
        let shared = test_support::workspace_root().join("../shared/spin").canonicalize().unwrap_or_default();
        let mut found: Vec<PathBuf> = std::fs::read_dir(shared)
            .map(|entries| entries.flatten().map(|entry| entry.path().join("spin")).filter(|p| p.is_file()).collect())
            .unwrap_or_default();
        found.sort();
        if found.is_empty() {
            vec![PathBuf::from("spin")]
        } else {
            found
        }
    };
    paths.iter().map(|path| Spin::at(path)).collect()
}

/// The app's components and the floor's, as `spin.toml`'s build commands make them (a no-op
/// when they are up to date; measuring stale components would be worse than the wait).
fn build_components() -> Result<()> {
    let root = test_support::workspace_root();
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(&root).args(["build", "--locked", "--release", "--target", "wasm32-wasip2"]);
    // The app's packages, from its build commands, and the floor's.
    let manifest = std::fs::read_to_string(root.join("spin.toml")).context("reading spin.toml")?;
    let packages = manifest.lines().filter_map(|line| line.split(" -p ").nth(1)).map(|rest| rest.trim_end_matches('"'));
    for package in packages.chain(["bench-floor"]) {
        command.args(["-p", package]);
    }
    if !command.status().context("running cargo")?.success() {
        bail!("building the components failed");
    }
    Ok(())
}

/// Each component of the app's and the floor's manifests, and the size of its built `.wasm`.
fn component_sizes() -> Result<Vec<(String, u64)>> {
    let root = test_support::workspace_root();
    let mut sizes = Vec::new();
    for manifest in [root.join("spin.toml"), root.join("tests/bench/floor/spin.toml")] {
        let text = std::fs::read_to_string(&manifest)?;
        let mut component = None;
        for line in text.lines() {
            if let Some(name) = line.strip_prefix("[component.").and_then(|rest| rest.strip_suffix(']')) {
                component = Some(name.to_owned());
            } else if let Some(source) = line.strip_prefix("source = \"").and_then(|rest| rest.strip_suffix('"')) {
                let path = manifest.parent().context("a directory")?.join(source);
                let bytes = std::fs::metadata(&path).with_context(|| format!("{}", path.display()))?.len();
                sizes.push((component.clone().context("a source outside a component")?, bytes));
            }
        }
    }
    Ok(sizes)
}

/// The app as the README's commands run it without the runtime config they name (Spin then keeps
/// the cache's key-value store in a SQLite file in its state directory): its spin.toml and no
/// variable at all, so `log_level` is its default `info` (a log line per request, which users pay
/// for too). On PostgreSQL, [`on_postgres`] adds the README's two variables.
fn newcomer_options() -> AppOptions {
    as_deployed(AppOptions::manifest(test_support::workspace_root().join("spin.toml")))
}

/// [`newcomer_options`] with a runtime config: `runtime-config.toml`, as a deployment runs it (the
/// key-value store in memory), or another (the shared Redis).
fn app_options(runtime_config: PathBuf) -> AppOptions {
    AppOptions { runtime_config: Some(runtime_config), ..newcomer_options() }
}

/// The deployment's runtime config, which the README's commands name too.
fn deployed() -> PathBuf {
    test_support::workspace_root().join("runtime-config.toml")
}

/// `options` on the PostgreSQL database `dsn`, whose server is at `host`: the variables the README's
/// PostgreSQL command sets, and no other.
fn on_postgres(options: AppOptions, dsn: &str, host: &str) -> AppOptions {
    options.variable("db_dsn", dsn).variable("db_host", host)
}

/// The app as deployed on PostgreSQL (`runtime_config`: the deployment's, or the shared Redis):
/// [`on_postgres`] plus what `deploy/k8s/base/config.yaml` sets that differs from spin.toml's
/// defaults (`db_backend=postgres`; its `log_level` is the default `info`).
fn deployed_on_postgres(runtime_config: PathBuf, dsn: &str, host: &str) -> AppOptions {
    on_postgres(app_options(runtime_config), dsn, host).variable("db_backend", "postgres")
}

/// `options` (the cache off) without the request's log line either: what the app's own code costs
/// beside the floor ([`Server::Bare`]).
fn bare(options: AppOptions) -> AppOptions {
    options.variable("log_level", "warn")
}

/// Spin without `RUST_BACKTRACE`, which a developer's shell may set and a deployment does not:
/// with it, every error inside the host captures a backtrace (3-4 % of Spin's CPU under PUT load,
/// measured with perf).
fn as_deployed(mut options: AppOptions) -> AppOptions {
    for name in ["RUST_BACKTRACE", "RUST_LIB_BACKTRACE"] {
        options.env.push((name.into(), "0".into()));
    }
    options
}

/// What every pass shares.
struct Run {
    options: Options,
    scripts: Scripts,
    postgres: PostgresFixture,
    /// The process id of `postgres`'s server, whose CPU time (with its backends') each cell reads.
    database_pid: u32,
    baseline: Result<Baseline, String>,
    redis: Option<Redis>,
    started: Instant,
    /// How many cells have run: each starts its servers one further along their order.
    cells_run: std::cell::Cell<usize>,
}

/// The servers of one pass, started side by side, each measured in every cell back to back.
struct Servers {
    fastapi: Option<FastApi>,
    apps: Vec<(Server, SpinApp)>,
}

impl Servers {
    fn base_url_and_group(&self, server: Server) -> Option<(&str, u32)> {
        match server {
            Server::FastApi => self.fastapi.as_ref().map(|fastapi| (fastapi.base_url(), fastapi.group())),
            _ => self.apps.iter().find(|(s, _)| *s == server).map(|(_, app)| (app.base_url(), app.pid())),
        }
    }

    async fn stop(self) -> Result<()> {
        for (_, app) in self.apps {
            app.stop().await?;
        }
        Ok(())
    }
}

impl Run {
    fn progress(&self, what: &str) {
        eprintln!("[{:>4} s] {what}", self.started.elapsed().as_secs());
    }

    fn measure(&self, label: &str, base_url: &str, group: u32, route: &Route, connections: u32) -> Result<Measured> {
        self.progress(&format!("  {label}: {} c={connections}", route.name));
        load::wrk(base_url, group, self.database_pid, route, &self.scripts, connections, self.options.duration)
            .with_context(|| format!("{label}, {} at {connections} connections", route.name))
    }

    /// A cell: `route` at `connections` on every server of `order` that runs, back to back, from
    /// the one after where the last cell started: the app's configurations and the floor share one
    /// database, so whoever always ran last would always meet the others' dead rows and autovacuum.
    /// The row lists them in `order`.
    fn cell(&self, servers: &Servers, order: &[Server], route: &Route, label: String, connections: u32) -> Result<Row> {
        let mut cells = Vec::new();
        for &server in rotated(order, self.cells_run.replace(self.cells_run.get() + 1)) {
            if let Some((base_url, group)) = servers.base_url_and_group(server) {
                cells.push((server, self.measure(server.label(), base_url, group, route, connections)?));
            }
        }
        cells.sort_by_key(|(server, _)| order.iter().position(|listed| listed == server));
        Ok(Row { route: label, connections, cells })
    }

    /// The Redis runtime config for the app of pass `pass` on `backend`: a database of its own.
    fn redis_config(&self, pass: usize, backend: Backend) -> Result<Option<PathBuf>> {
        let database = 2 * pass as u32 + u32::from(backend == Backend::Sqlite);
        self.redis.as_ref().map(|redis| redis.runtime_config(database)).transpose()
    }

    /// Every configuration of the app, FastAPI and the floor on PostgreSQL, cell by cell, back to
    /// back, so that the machine's drift hits them alike. The first pass also runs the pgbench floor.
    async fn postgres_pass(&self, pass: usize, spin: &Spin, report: &mut Report) -> Result<Table> {
        let admin = self.postgres.dsn();
        let host = self.postgres.host_port();
        let app_dsn = fresh_database(&admin, &format!("bench_app_{pass}")).await?;
        self.progress(&format!("{spin}, PostgreSQL: starting the app's configurations, the floor and FastAPI"));
        let mut apps = Vec::new();
        let deployed_app = SpinApp::start(spin, &deployed_on_postgres(deployed(), &app_dsn, &host)).await?;
        // The app's first request creates and seeds the schema, which the others then find.
        warm_up("app, deployed", deployed_app.base_url(), false).await?;
        apps.push((Server::Deployed, deployed_app));
        let newcomer = SpinApp::start(spin, &on_postgres(newcomer_options(), &app_dsn, &host)).await?;
        apps.push((Server::Newcomer, newcomer));
        if let Some(config) = self.redis_config(pass, Backend::Postgres)? {
            apps.push((Server::Redis, SpinApp::start(spin, &deployed_on_postgres(config, &app_dsn, &host)).await?));
        }
        let uncached = deployed_on_postgres(deployed(), &app_dsn, &host).variable("cache_ttl_ms", "0");
        apps.push((Server::Bare, SpinApp::start(spin, &bare(uncached.clone())).await?));
        apps.push((Server::Uncached, SpinApp::start(spin, &uncached).await?));
        let floor = SpinApp::start(
            spin,
            &as_deployed(AppOptions::manifest(test_support::workspace_root().join("tests/bench/floor/spin.toml")))
                .variable("db_dsn", &app_dsn)
                .variable("db_host", &host),
        )
        .await?;
        apps.push((Server::Floor, floor));
        for (server, app) in &apps {
            warm_up(server.label(), app.base_url(), *server == Server::Floor).await?;
        }
        let fastapi = match &self.baseline {
            Ok(baseline) => {
                let dsn = fresh_database(&admin, &format!("bench_fastapi_{pass}")).await?;
                let fastapi = FastApi::start(baseline, &dsn).await?;
                warm_up("FastAPI", fastapi.base_url(), false).await?;
                Some((fastapi, dsn))
            }
            Err(_) => None,
        };
        let fastapi_dsn = fastapi.as_ref().map(|(_, dsn)| dsn.clone());
        let servers = Servers { fastapi: fastapi.map(|(fastapi, _)| fastapi), apps };

        let present: Vec<Server> =
            Server::ALL.into_iter().filter(|server| servers.base_url_and_group(*server).is_some()).collect();
        let mut table = Table::new(spin, Backend::Postgres, present.clone());
        for route in &ROUTES {
            for &connections in &self.options.connections {
                table.rows.push(self.cell(&servers, &present, route, route.name.into(), connections)?);
            }
        }
        table.put_rounds = self.put_rounds(&servers)?;
        table.equal_load = self.equal_load(&servers, &table)?;
        if report.pgbench.is_empty() {
            for route in &ROUTES {
                for &clients in &self.options.connections {
                    self.progress(&format!("  pgbench: {} c={clients}", route.name));
                    report.pgbench.push((
                        route.name,
                        clients,
                        load::pgbench(&app_dsn, self.database_pid, route, clients, self.options.duration)?,
                    ));
                }
            }
        }
        for size in LIST_SIZES {
            grow_postgres(&app_dsn, "integrations", size).await?;
            if let Some(dsn) = &fastapi_dsn {
                grow_postgres(dsn, "fa_integrations", size).await?;
            }
            let label = format!("{}, {size} rows", ROUTES[0].name);
            table.rows.push(self.cell(&servers, &present, &ROUTES[0], label, GROWTH_CONNECTIONS)?);
        }
        servers.stop().await?;
        Ok(table)
    }

    /// The PUT cell's later rounds: the app deployed, the app with no cache or request log and the
    /// floor, alternated again at each number of connections, `PUT_ROUNDS - 1` times.
    fn put_rounds(&self, servers: &Servers) -> Result<Vec<Row>> {
        let put = ROUTES.iter().find(|route| route.method == "PUT").expect("the benchmark writes");
        let mut rows = Vec::new();
        for round in 2..=PUT_ROUNDS {
            for &connections in &self.options.connections {
                self.progress(&format!("  PUT round {round} of {PUT_ROUNDS}"));
                rows.push(self.cell(servers, &ROUND_SERVERS, put, put.name.into(), connections)?);
            }
        }
        Ok(rows)
    }

    /// The cached reads at the same offered load for FastAPI and the app: a share of what
    /// FastAPI served in the closed-loop cell, sent on a schedule (`open_loop`), so that each
    /// server's p99 is measured at a load both can carry.
    fn equal_load(&self, servers: &Servers, table: &Table) -> Result<Vec<EqualLoad>> {
        let mut rows = Vec::new();
        for route in ROUTES.iter().filter(|route| route.method == "GET") {
            let closed = table.row(route.name, EQUAL_LOAD_CONNECTIONS).and_then(|row| row.get(Server::FastApi));
            let Some(fastapi) = closed else { continue };
            for share in EQUAL_LOAD_SHARES {
                let rate = share * fastapi.figures.requests_per_second;
                let mut cells = Vec::new();
                for server in [Server::FastApi, Server::Deployed, Server::Newcomer, Server::Redis] {
                    let Some((base_url, _)) = servers.base_url_and_group(server) else { continue };
                    let label = format!("{}, {} at {rate:.0} req/s", server.label(), route.name);
                    self.progress(&format!("  {label}, c={EQUAL_LOAD_CONNECTIONS}"));
                    let figures =
                        open_loop::fixed_rate(base_url, route, EQUAL_LOAD_CONNECTIONS, rate, self.options.duration)
                            .context(label)?;
                    cells.push((server, figures));
                }
                rows.push(EqualLoad { route: route.name.into(), connections: EQUAL_LOAD_CONNECTIONS, rate, cells });
            }
        }
        Ok(rows)
    }

    /// The app on the SQLite default (`spin up` with no DSN) in each configuration, and the floor
    /// on the deployed app's database; FastAPI has no SQLite mode, so the FastAPI column repeats
    /// the PostgreSQL pass's figures.
    async fn sqlite_pass(&self, pass: usize, spin: &Spin, on_postgres: &Table) -> Result<Table> {
        self.progress(&format!("{spin}, SQLite: starting the app's configurations and the floor"));
        let mut apps = vec![(Server::Newcomer, SpinApp::start(spin, &newcomer_options()).await?)];
        let deployed_app = SpinApp::start(spin, &app_options(deployed())).await?;
        // The app's first request creates and seeds the schema, which the floor then writes to.
        warm_up("app, deployed", deployed_app.base_url(), false).await?;
        let floor = AppOptions {
            state_dir: Some(deployed_app.state_dir().to_owned()),
            ..as_deployed(AppOptions::manifest(test_support::workspace_root().join("tests/bench/floor/spin.toml")))
        };
        apps.push((Server::Deployed, deployed_app));
        if let Some(config) = self.redis_config(pass, Backend::Sqlite)? {
            apps.push((Server::Redis, SpinApp::start(spin, &app_options(config)).await?));
        }
        let uncached = app_options(deployed()).variable("cache_ttl_ms", "0");
        apps.push((Server::Bare, SpinApp::start(spin, &bare(uncached)).await?));
        apps.push((Server::Floor, SpinApp::start(spin, &floor).await?));
        for (server, app) in &apps {
            warm_up(server.label(), app.base_url(), *server == Server::Floor).await?;
        }
        let servers = Servers { fastapi: None, apps };
        let order = [Server::Deployed, Server::Newcomer, Server::Redis, Server::Bare, Server::Floor];
        let present: Vec<Server> =
            order.into_iter().filter(|server| servers.base_url_and_group(*server).is_some()).collect();
        let mut columns = vec![Server::FastApi];
        columns.extend(&present);
        let mut table = Table::new(spin, Backend::Sqlite, columns);
        let mut cell = |route: &Route, label: String, connections: u32| -> Result<()> {
            let mut row = self.cell(&servers, &present, route, label, connections)?;
            if let Some(fastapi) = on_postgres.row(&row.route, connections).and_then(|row| row.get(Server::FastApi)) {
                row.cells.insert(0, (Server::FastApi, fastapi.clone()));
            }
            table.rows.push(row);
            Ok(())
        };
        for route in &ROUTES {
            for &connections in &self.options.connections {
                cell(route, route.name.into(), connections)?;
            }
        }
        table.put_rounds = self.put_rounds(&servers)?;
        for size in LIST_SIZES {
            // The floor's database is the deployed app's.
            for (_, app) in servers.apps.iter().filter(|(server, _)| *server != Server::Floor) {
                grow_sqlite(&app.state_dir().join("sqlite_db.db"), size).await?;
            }
            cell(&ROUTES[0], format!("{}, {size} rows", ROUTES[0].name), GROWTH_CONNECTIONS)?;
        }
        servers.stop().await?;
        Ok(table)
    }

    /// A fresh app with no runtime config on `backend`, and 64 requests at once as its first.
    async fn cold_start(&self, pass: usize, spin: &Spin, backend: Backend) -> Result<ColdStart> {
        self.progress(&format!("{spin}, {}: cold start", backend.name()));
        let options = match backend {
            Backend::Postgres => {
                let dsn = fresh_database(&self.postgres.dsn(), &format!("bench_cold_{pass}")).await?;
                on_postgres(newcomer_options(), &dsn, &self.postgres.host_port())
            }
            Backend::Sqlite => newcomer_options(),
        };
        let app = SpinApp::start(spin, &options).await?;
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        let requests = (0..COLD_START_REQUESTS).map(|i| {
            let (client, base) = (&client, app.base_url());
            async move {
                let item = format!("{base}/admin/integrations/{ID}");
                let request = match i % 4 {
                    0 => client.put(&item).header("content-type", "application/json").body(put_body(i % 8 == 0)),
                    1 => client
                        .put(&item)
                        .header("content-type", "application/json")
                        .header("if-match", "\"1\"")
                        .body(put_body(true)),
                    2 => client.get(&item),
                    _ => client.get(format!("{base}/admin/integrations/")),
                };
                let started = Instant::now();
                let status = request.send().await.map(|response| response.status().as_u16()).unwrap_or(0);
                (cold_start_failed(status, i % 4 == 1), started.elapsed())
            }
        });
        let answers = futures::future::join_all(requests).await;
        app.stop().await?;
        Ok(ColdStart {
            spin: spin.to_string(),
            backend,
            requests: answers.len(),
            failed: answers.iter().filter(|(failed, _)| *failed).count(),
            slowest_ms: answers.iter().map(|(_, took)| took.as_secs_f64() * 1000.0).fold(0.0, f64::max),
        })
    }
}

/// `order` starting at its `turn`th entry (modulo its length), wrapping around.
fn rotated(order: &[Server], turn: usize) -> impl Iterator<Item = &Server> {
    let start = if order.is_empty() { 0 } else { turn % order.len() };
    order[start..].iter().chain(&order[..start])
}

/// Whether a cold start's answer `status` (0: none) failed: anything but a 2xx, or a 412 to a
/// PUT with `If-Match` (`conditional`), of which one may win the race. A 412 to a plain PUT is a
/// failure: it has no precondition to fail.
fn cold_start_failed(status: u16, conditional: bool) -> bool {
    !((200..300).contains(&status) || (conditional && status == 412))
}

/// The read latency goal's connections, and the shares of FastAPI's closed-loop rate at which
/// every server is sent the same load. Sent on a schedule, FastAPI carries less than wrk gets
/// from it (75 % of its wrk rate left it 0.2-1.8 s behind in every cell, 2026-12-06): the shares
/// stay below that, so that the tails compared are not a queue that only grows.
const EQUAL_LOAD_CONNECTIONS: u32 = 16;
const EQUAL_LOAD_SHARES: [f64; 2] = [0.25, 0.5];

/// How many times in all a pass measures a PUT on the servers that the goal against the floor
/// compares ([`ROUND_SERVERS`]), alternated: once in the table's cell, then again after it. One 8 s
/// cell moves between runs by as much as the app's distance to the floor (±15 %), so the goal is
/// judged on the median of the rounds' ratios, each taken within its round.
const PUT_ROUNDS: usize = 3;
const ROUND_SERVERS: [Server; 3] = [Server::Deployed, Server::Bare, Server::Floor];

/// How many first requests a cold start sends at once.
const COLD_START_REQUESTS: usize = 64;

#[tokio::main]
async fn main() -> Result<()> {
    let options = Options::parse()?;
    let started = Instant::now();
    load::ensure_installed("wrk", "wrk")?;
    if !load::on_path("pgbench") {
        bail!("pgbench is not installed: it comes with the PostgreSQL client (apt-get install postgresql-client-15)");
    }
    let spins = spins(&options.spins)?;
    build_components()?;
    let baseline = fastapi::prepare(&test_support::workspace_root());
    if let Err(why) = &baseline {
        eprintln!("SKIPPING the FastAPI comparison: {why}");
    }
    let redis = Redis::start().map_err(|why| format!("{why:#}"));
    if let Err(why) = &redis {
        eprintln!("SKIPPING the Redis column: {why}");
    }
    let redis_description = redis.as_ref().map(|redis| redis.version.clone()).map_err(Clone::clone);
    let postgres = PostgresFixture::start().await?;
    let run = Run {
        scripts: Scripts::write()?,
        database_pid: postgres.server_pid().context("the bench's PostgreSQL has no postmaster.pid")?,
        postgres,
        baseline,
        redis: redis.ok(),
        started,
        options,
        cells_run: Default::default(),
    };
    let mut report =
        Report::new(&run.options, &spins, run.baseline.as_ref().map(|b| b.description.clone()).map_err(Clone::clone));
    report.redis = redis_description;
    report.tools = tool_versions(&run.postgres).await?;
    for (pass, spin) in spins.iter().enumerate() {
        report.background.push((format!("before {spin}"), report::busy_percent()));
        for backend in [Backend::Sqlite, Backend::Postgres] {
            report.cold_starts.push(run.cold_start(pass, spin, backend).await?);
        }
        let on_postgres = run.postgres_pass(pass, spin, &mut report).await?;
        let on_sqlite = run.sqlite_pass(pass, spin, &on_postgres).await?;
        report.tables.extend([on_postgres, on_sqlite]);
        // What is measured so far, should a later pass fail.
        std::fs::write(&run.options.out, report.render())
            .with_context(|| format!("writing {}", run.options.out.display()))?;
    }
    report.background.push(("at the end".into(), report::busy_percent()));
    report.elapsed = started.elapsed();
    report.sizes = component_sizes()?;

    let markdown = report.render();
    std::fs::write(&run.options.out, &markdown).with_context(|| format!("writing {}", run.options.out.display()))?;
    println!("{markdown}");
    eprintln!("written to {} after {} s", run.options.out.display(), report.elapsed.as_secs());
    Ok(())
}

/// A few requests on every route before measuring: the app's first request creates the schema,
/// and Spin's first request on a component, or FastAPI's first on a route, costs more. The
/// floor answers with its row count, which must not be 0: on Spin 4.x a zero-row query would
/// hang (the client's timeout turns that into an error here rather than a stuck run).
async fn warm_up(label: &str, base_url: &str, floor: bool) -> Result<()> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    for route in &ROUTES {
        for status in [true, false, true] {
            let mut request = client.request(route.method.parse()?, format!("{base_url}{}", route.path));
            if route.method == "PUT" {
                request = request.header("content-type", "application/json").body(put_body(status));
            }
            let response = request.send().await.with_context(|| format!("{label}: {} {}", route.method, route.path))?;
            let code = response.status();
            let body = response.text().await?;
            if !code.is_success() || (floor && body.trim().parse::<u64>().unwrap_or(0) == 0) {
                bail!("{label}: {} {} answered {code}: {body}", route.method, route.path);
            }
        }
    }
    Ok(())
}

/// wrk's, pgbench's and the server's versions, for the report's header.
async fn tool_versions(postgres: &PostgresFixture) -> Result<Vec<String>> {
    let first_line = |program: &str, arg: &str| -> Result<String> {
        let output = Command::new(program).arg(arg).output()?;
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        // wrk -v: "wrk 4.1.0 [epoll] Copyright (C) ..."
        Ok(text.lines().next().unwrap_or(program).split(" Copyright").next().unwrap_or(program).trim().to_owned())
    };
    let (client, connection) = tokio_postgres::connect(&postgres.dsn(), tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let server: String = client.query_one("SHOW server_version", &[]).await?.get(0);
    Ok(vec![first_line("wrk", "-v")?, first_line("pgbench", "--version")?, format!("PostgreSQL server {server}")])
}

async fn fresh_database(admin_dsn: &str, name: &str) -> Result<String> {
    let (client, connection) = tokio_postgres::connect(admin_dsn, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    // Two calls: one multi-statement string would run as a transaction, which these refuse.
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).await?;
    client.batch_execute(&format!("CREATE DATABASE {name}")).await?;
    admin_dsn.rsplit_once('/').map(|(base, _)| format!("{base}/{name}")).context("a DSN with a database")
}

/// Adds integrations to `table` (the app's and the baseline's share these columns) until it
/// holds `size`.
async fn grow_postgres(dsn: &str, table: &str, size: usize) -> Result<()> {
    let (client, connection) = tokio_postgres::connect(dsn, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .execute(
            &format!(
                "INSERT INTO {table} (id, name, description, status, settings)
                 SELECT 'bench_' || g, 'Bench ' || g, 'A benchmark integration', g % 2 = 0,
                        jsonb_build_object('token', md5(g::text), 'n', g)
                 FROM generate_series((SELECT count(*) FROM {table}) + 1, $1::int8) AS g"
            ),
            &[&(size as i64)],
        )
        .await?;
    Ok(())
}

/// The same for the SQLite default, in the file Spin keeps in its state directory.
async fn grow_sqlite(path: &Path, size: usize) -> Result<()> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let connection = rusqlite::Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
        connection.execute(
            "WITH RECURSIVE g(n) AS (SELECT (SELECT count(*) FROM integrations) + 1
                                     UNION ALL SELECT n + 1 FROM g WHERE n < ?1)
             INSERT INTO integrations (id, name, description, status, settings, created_at, updated_at)
             SELECT 'bench_' || n, 'Bench ' || n, 'A benchmark integration', n % 2,
                    json_object('token', hex(randomblob(16)), 'n', n), now, now
             FROM g, (SELECT max(created_at) AS now FROM integrations)",
            [size as i64],
        )?;
        Ok(())
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(options: &AppOptions) -> Vec<String> {
        options.variables.iter().map(|(name, _)| name.clone()).collect()
    }

    /// The `SPIN_VARIABLE_*` names the top-level README's PostgreSQL command sets, lowercased.
    fn readme_postgres_variables() -> Vec<String> {
        let readme = std::fs::read_to_string(test_support::workspace_root().join("README.md")).unwrap();
        let command = readme.split("To point it at PostgreSQL:").nth(1).expect("the README's PostgreSQL command");
        let block = command.split("```").nth(1).expect("its code block");
        block
            .split_whitespace()
            .filter_map(|word| word.strip_prefix("SPIN_VARIABLE_")?.split_once('='))
            .map(|(name, _)| name.to_ascii_lowercase())
            .collect()
    }

    #[test]
    fn each_cell_starts_one_server_further() {
        let order = [Server::FastApi, Server::Deployed, Server::Floor];
        let turn = |turn| rotated(&order, turn).copied().collect::<Vec<_>>();
        assert_eq!(turn(0), order);
        assert_eq!(turn(1), [Server::Deployed, Server::Floor, Server::FastApi]);
        assert_eq!(turn(5), [Server::Floor, Server::FastApi, Server::Deployed]);
        assert_eq!(rotated(&[], 3).count(), 0);
    }

    #[test]
    fn a_cold_start_fails_on_anything_but_a_2xx_or_a_lost_if_match_race() {
        assert!(!cold_start_failed(200, false) && !cold_start_failed(201, true));
        assert!(!cold_start_failed(412, true));
        assert!(cold_start_failed(412, false), "a plain PUT has no precondition to fail");
        assert!(cold_start_failed(503, true) && cold_start_failed(0, false));
    }

    /// The README's two commands, the one that runs the app and the PostgreSQL one, each as the
    /// words of its code block.
    fn readme_commands() -> [Vec<String>; 2] {
        let readme = std::fs::read_to_string(test_support::workspace_root().join("README.md")).unwrap();
        let block = |after: &str| -> Vec<String> {
            let section = readme.split(after).nth(1).unwrap_or_else(|| panic!("{after} in the README"));
            let block = section.split("```").nth(1).expect("a code block");
            block.split_whitespace().map(str::to_owned).collect()
        };
        let run = block("## Run it, test it");
        // Its first line, up to the comment: the block also holds the test command.
        let run = run.iter().skip(1).take_while(|word| *word != "#").cloned().collect();
        [run, block("To point it at PostgreSQL:")]
    }

    /// Issue 18's fallback: the README's commands carry the deployment's runtime config, so what
    /// they run is the bench's "deployed" (on PostgreSQL, but for `db_backend`, which only
    /// insists on the backend that `db_dsn` already picks).
    #[test]
    fn the_readmes_commands_run_the_deployments_runtime_config() {
        let root = test_support::workspace_root();
        for command in readme_commands() {
            let file =
                command.windows(2).find(|pair| pair[0] == "--runtime-config-file").map(|pair| root.join(&pair[1]));
            assert_eq!(file.as_ref(), Some(&deployed()), "{command:?}");
        }
        let [run, postgres] = readme_commands();
        assert_eq!(run[..3], ["spin", "build", "--up"]);
        assert!(postgres.windows(2).any(|pair| pair == ["spin", "up"]), "{postgres:?}");
        let deployed = deployed_on_postgres(deployed(), "postgres://u@127.0.0.1:1/d", "127.0.0.1:1");
        let mut given = names(&deployed);
        let mut readme = readme_postgres_variables();
        readme.push("db_backend".into());
        given.sort();
        readme.sort();
        assert_eq!(given, readme);
    }

    /// "no runtime config" is the README's commands without their `--runtime-config-file`:
    /// `spin build --up` sets no variable, and the PostgreSQL command exactly the variables it
    /// shows.
    #[test]
    fn the_newcomer_runs_the_readmes_commands_and_nothing_more() {
        let sqlite = newcomer_options();
        assert!(sqlite.variables.is_empty(), "{:?}", sqlite.variables);
        assert_eq!(sqlite.runtime_config, None);
        let postgres = on_postgres(newcomer_options(), "postgres://u@127.0.0.1:1/d", "127.0.0.1:1");
        let mut given = names(&postgres);
        let mut readme = readme_postgres_variables();
        given.sort();
        readme.sort();
        assert_eq!(given, readme);
        assert_eq!(postgres.runtime_config, None);
    }

    /// "deployed" is runtime-config.toml and the deployment's own variables: each one the bench
    /// sets besides the database's address has the value deploy/k8s/base/config.yaml gives it.
    #[test]
    fn the_deployed_app_runs_the_deployments_config() {
        let root = test_support::workspace_root();
        let config = std::fs::read_to_string(root.join("deploy/k8s/base/config.yaml")).unwrap();
        let value_of = |name: &str| {
            config.lines().find_map(|line| {
                let (key, value) = line.trim().split_once(": ")?;
                (key == name.to_ascii_uppercase()).then(|| value.trim_matches('"').to_owned())
            })
        };
        let options = deployed_on_postgres(deployed(), "postgres://u@127.0.0.1:1/d", "127.0.0.1:1");
        assert_eq!(options.runtime_config, Some(root.join("runtime-config.toml")));
        for (name, value) in options.variables.iter().filter(|(name, _)| name != "db_dsn" && name != "db_host") {
            assert_eq!(value_of(name).as_deref(), Some(value.as_str()), "{name}");
        }
        // Its log level is spin.toml's default, as the deployment's.
        assert_eq!(value_of("log_level").as_deref(), Some("info"));
        assert!(!names(&options).contains(&"log_level".to_owned()));
    }
}
