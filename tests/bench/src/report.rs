//! The Markdown report.

use std::fmt::Write as _;
use std::time::Duration;

use test_support::Spin;

use crate::load::{Figures, Measured};
use crate::Options;

/// Above this share of CPU used by other work while the bench is idle, the report warns that
/// its absolute figures are depressed.
const BUSY_MACHINE: f64 = 25.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "PostgreSQL",
            Self::Sqlite => "SQLite",
        }
    }
}

/// What serves a cell: the service the app replaces, the app as a newcomer and as a deployment
/// run it, and the floors it is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// `../shared/anchors/fastapi_baseline.py` under uvicorn (PostgreSQL only).
    FastApi,
    /// The app as deployed: `--runtime-config-file runtime-config.toml` (the cache's key-value store
    /// in each process's memory).
    Deployed,
    /// The README's commands without the runtime config they name: Spin then keeps the key-value
    /// store in a SQLite file in its state directory (a `spin build --up` with no other flag).
    Newcomer,
    /// The app with a key-value store every replica shares: a real `redis-server` as `default`.
    Redis,
    /// The app as deployed with `cache_ttl_ms=0`: every request reaches the database.
    Uncached,
    /// The app as deployed with `cache_ttl_ms=0` and `log_level=warn`: neither the cache's
    /// key-value calls nor a log line per request. No user runs it; it shows what the app's own
    /// code costs beside the floor, apart from those two features' calls into Spin.
    Bare,
    /// One statement per request, the store's own, and nothing else (floor/): `spin:postgres`, or Spin's SQLite.
    Floor,
}

impl Server {
    /// Every server, in the order of the report's columns.
    pub const ALL: [Server; 7] =
        [Self::FastApi, Self::Deployed, Self::Newcomer, Self::Redis, Self::Uncached, Self::Bare, Self::Floor];

    pub fn label(self) -> &'static str {
        match self {
            Self::FastApi => "FastAPI",
            Self::Deployed => "app, deployed",
            Self::Newcomer => "app, no runtime config",
            Self::Redis => "app, Redis",
            Self::Uncached => "app, cache off",
            Self::Bare => "app, no cache or request log",
            Self::Floor => "Spin floor",
        }
    }
}

/// One cell: a route at a number of connections, on each server measured.
pub struct Row {
    pub route: String,
    pub connections: u32,
    pub cells: Vec<(Server, Measured)>,
}

impl Row {
    pub fn get(&self, server: Server) -> Option<&Measured> {
        self.cells.iter().find(|(s, _)| *s == server).map(|(_, m)| m)
    }
}

/// A read route at a fixed rate, the same for every server (`open_loop`).
pub struct EqualLoad {
    pub route: String,
    pub connections: u32,
    /// Requests per second sent, in all.
    pub rate: f64,
    pub cells: Vec<(Server, Figures)>,
}

impl EqualLoad {
    fn get(&self, server: Server) -> Option<&Figures> {
        self.cells.iter().find(|(s, _)| *s == server).map(|(_, figures)| figures)
    }
}

/// The rows of one Spin CLI on one backend, and which servers its columns are.
pub struct Table {
    pub spin: String,
    pub backend: Backend,
    pub servers: Vec<Server>,
    pub rows: Vec<Row>,
    /// The cached reads at FastAPI's load (PostgreSQL, when FastAPI ran).
    pub equal_load: Vec<EqualLoad>,
    /// The PUT cell's later rounds on the servers the goal against the floor compares, in the
    /// order they ran (`PUT_ROUNDS`); the first round is the row in `rows`.
    pub put_rounds: Vec<Row>,
}

impl Table {
    pub fn new(spin: &Spin, backend: Backend, servers: Vec<Server>) -> Self {
        Self {
            spin: spin.to_string(),
            backend,
            servers,
            rows: Vec::new(),
            equal_load: Vec::new(),
            put_rounds: Vec::new(),
        }
    }

    /// Every round of `row`'s cell, the row first: one, but for the PUT.
    fn rounds<'a>(&'a self, row: &'a Row) -> Vec<&'a Row> {
        let later =
            self.put_rounds.iter().filter(|round| round.route == row.route && round.connections == row.connections);
        std::iter::once(row).chain(later).collect()
    }

    pub fn row(&self, route: &str, connections: u32) -> Option<&Row> {
        self.rows.iter().find(|row| row.route == route && row.connections == connections)
    }

    /// The columns that name a cell in the tables of every pass: Spin, backend, route, connections.
    fn cell_name(&self, row: &Row) -> String {
        format!("| {} | {} | {} | {} |", self.spin, self.backend.name(), row.route, row.connections)
    }
}

/// 64 requests at once as the very first requests of a fresh app.
pub struct ColdStart {
    pub spin: String,
    pub backend: Backend,
    pub requests: usize,
    /// Answers other than 2xx and 412 (the race of `If-Match` writes has one winner).
    pub failed: usize,
    pub slowest_ms: f64,
}

pub struct Report {
    seconds: u64,
    /// What was measured: the app's version and the checkout's commit.
    build: String,
    spins: Vec<String>,
    /// The baseline's description, or why it was skipped.
    fastapi: Result<String, String>,
    pub tools: Vec<String>,
    /// (when, percent): how busy other work kept the shared machine while the bench was idle.
    pub background: Vec<(String, f64)>,
    /// (component, bytes of its release .wasm)
    pub sizes: Vec<(String, u64)>,
    pub tables: Vec<Table>,
    /// (route, clients, figures)
    pub pgbench: Vec<(&'static str, u32, Measured)>,
    pub cold_starts: Vec<ColdStart>,
    /// Why the Redis column is missing, if it is.
    pub redis: Result<String, String>,
    pub elapsed: Duration,
}

impl Report {
    pub fn new(options: &Options, spins: &[Spin], fastapi: Result<String, String>) -> Self {
        Self {
            seconds: options.duration.as_secs(),
            build: build(),
            spins: spins.iter().map(|spin| format!("{spin} (`{}`)", spin.path.display())).collect(),
            fastapi,
            tools: Vec::new(),
            background: Vec::new(),
            sizes: Vec::new(),
            tables: Vec::new(),
            pgbench: Vec::new(),
            cold_starts: Vec::new(),
            redis: Err("not run".into()),
            elapsed: Duration::ZERO,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Benchmark results\n");
        let _ = writeln!(
            out,
            "Generated by `cargo run -p bench --release` on {} ({}, {} cores, {}), {} s per cell, {:.0} min in all. \
             The app: {}. Spin CLIs: {}. Also on the machine: {}.\n\n\
             CPU busy with other work while the bench itself was idle (2 s samples): {}.\n",
            today(),
            cpu_model(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory(),
            self.seconds,
            self.elapsed.as_secs_f64() / 60.0,
            self.build,
            self.spins.join(", "),
            self.tools.join(", "),
            self.background.iter().map(|(when, busy)| format!("{when} {busy:.0} %")).collect::<Vec<_>>().join(", ")
        );
        match &self.fastapi {
            Ok(description) => {
                let _ = writeln!(
                    out,
                    "FastAPI baseline (`../shared/anchors/fastapi_baseline.py`): {description}; uvicorn with 1 worker, \
                     the baseline's asyncpg pool (at most 10 connections), on its own database of the same cluster.\n"
                );
            }
            Err(why) => {
                let _ = writeln!(
                    out,
                    "**The FastAPI comparison was SKIPPED in this run: {why}.** Its columns say `skipped`.\n"
                );
            }
        }
        match &self.redis {
            Ok(version) => {
                let _ = writeln!(
                    out,
                    "Shared key-value store for the `app, Redis` column: {version}, started by the bench.\n"
                );
            }
            Err(why) => {
                let _ = writeln!(out, "**The Redis column was SKIPPED in this run: {why}.**\n");
            }
        }
        let _ = writeln!(
            out,
            "The app's configurations: **deployed** is `spin up --runtime-config-file runtime-config.toml` (the \
             cache's key-value store in each process's memory), which the README's commands run too (`spin build \
             --up --runtime-config-file runtime-config.toml`, and the PostgreSQL command with it); **no runtime \
             config** is those commands without the flag, where Spin keeps that store in a SQLite file in its \
             state directory; **Redis** is the runtime config a fleet uses, a key-value store \
             every replica shares (a `redis-server` on this machine); **cache off** is deployed with \
             `cache_ttl_ms=0`; **no cache or request log** is cache off with `log_level=warn` too, which no \
             user runs: set beside the floor, it shows what the app's own code costs, without the calls into \
             Spin that the cache and the request's log line make.\n"
        );
        let _ = writeln!(
            out,
            "The app runs under `spin up` at spin.toml's default `log_level`, `info`, as the README's commands \
             and the deployment run it (a JSON log line per request); FastAPI as its anchor says to run it \
             (`--log-level warning`: no access log). Every server has its own process group; RSS is the largest resident memory of the whole \
             group (for Spin: `spin up` and its `spin trigger http` child) sampled every 250 ms during the cell. \
             `errors` counts non-2xx responses and socket errors (connect, read, write, timeout) as wrk reports them.\n\n\
             Noise: wrk, PostgreSQL and the server under load share one machine's {} cores, which other work \
             may use too. Runs differ by ±15 % or more; compare figures of the same run. Within a cell, every \
             server runs back to back so that drift hits them alike; the ratios are steadier than the absolute \
             figures.\n",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        if self.background.iter().any(|(_, busy)| *busy > BUSY_MACHINE) {
            let _ = writeln!(
                out,
                "**Other work kept this machine busy during the run** (the samples above): the absolute \
                 figures are well below what the same machine gives when quiet; read the ratios within a cell.\n"
            );
        }
        for table in &self.tables {
            self.render_table(&mut out, table);
        }
        self.render_goals(&mut out);
        self.render_put_rounds(&mut out);
        self.render_cpu(&mut out);
        self.render_put_parts(&mut out);
        self.render_equal_load(&mut out);
        self.render_cold_starts(&mut out);
        self.render_pgbench(&mut out);
        self.render_errors(&mut out);
        let _ = writeln!(out, "\n## Component sizes\n\n| component | release .wasm bytes |\n|---|---:|");
        for (component, bytes) in &self.sizes {
            let _ = writeln!(out, "| {component} | {bytes} |");
        }
        out
    }

    fn render_table(&self, out: &mut String, table: &Table) {
        match table.backend {
            Backend::Postgres => {
                let _ = writeln!(out, "## {}\n\n### {}\n", table.spin, table.backend.name());
            }
            Backend::Sqlite => {
                let _ = writeln!(
                    out,
                    "### {} (the default: `spin up` with no DSN)\n\n\
                     The FastAPI column repeats the PostgreSQL figures above (the baseline has no SQLite mode).\n",
                    table.backend.name()
                );
            }
        }
        let labels: Vec<&str> = table.servers.iter().map(|server| server.label()).collect();
        let _ = writeln!(
            out,
            "| route | conns | {} | errors {} | peak RSS MiB {} |",
            labels.iter().map(|label| format!("{label} req/s (p99)")).collect::<Vec<_>>().join(" | "),
            labels.join(" / "),
            labels.join(" / ")
        );
        let _ = writeln!(out, "|---|---:|{}---:|---:|", "---:|".repeat(labels.len()));
        let skipped = if self.fastapi.is_err() { "skipped" } else { "–" };
        for row in &table.rows {
            let cells: Vec<Option<&Measured>> = table.servers.iter().map(|server| row.get(*server)).collect();
            let rates = table.servers.iter().zip(&cells).map(|(server, measured)| {
                measured.map_or(if *server == Server::FastApi { skipped } else { "–" }.to_owned(), rate_and_p99)
            });
            let each = |value: fn(&Measured) -> String| {
                cells.iter().map(|m| m.map_or("–".to_owned(), value)).collect::<Vec<_>>().join(" / ")
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                row.route,
                row.connections,
                rates.collect::<Vec<_>>().join(" | "),
                each(|m| m.figures.errors().to_string()),
                each(|m| format!("{:.0}", m.peak_rss_bytes as f64 / (1024.0 * 1024.0))),
            );
        }
        let _ = writeln!(out);
    }

    /// The goals of issues 11 and 18, cell by cell: met, or the measured ratio. Why the gaps are
    /// what they are is in README.md, "The goals".
    fn render_goals(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "## The goals, cell by cell\n\n\
             `met`, or the measured figure. Why the gaps: [README.md](README.md#the-goals).\n\n\
             - **vs FastAPI** (PostgreSQL, the app deployed): GET at least FastAPI's req/s, and at most its p99 \
             at 16 connections (at 64 the ratio is shown, no goal); PUT at least 0.9 x its req/s.\n\
             - A req/s goal is not met in a cell where either server had an error (wrk counts a 503 as a request).\n\
             - **vs floor**: where a request must reach PostgreSQL (every PUT; a GET with the cache off), at \
             least 0.95 x the Spin floor's req/s (on SQLite the ratio, no goal).\n\
             - **The README's commands within 10 % of the deployment's req/s**: met by construction. Both carry \
             `--runtime-config-file runtime-config.toml`, the deployment's (the bench's tests read them from the \
             README), so they run the `app, deployed` configuration. **no runtime config vs deployed**: the \
             same commands without the flag, reported (no goal): what leaving it off costs.\n\
             - **SQLite PUT**: p99 at most 50 ms at 16 connections and 200 ms at 64, and no error, in every \
             configuration users run (the SQLite floor's p99 beside it).\n\
             - **Redis vs deployed**: reported (no goal: a network store costs a round trip per call).\n\
             - **without cache or request log vs floor**: the app with neither (a configuration no user runs) \
             against the floor, reported (no goal): what is left of the `vs floor` gap without the cache's \
             key-value calls and the request's log line.\n\
             - A PUT's ratios to the floor are each taken within one of its {} rounds (\"PUT against the floor, \
             round by round\"), and a goal on them is judged on their median.\n\n\
             | Spin | backend | route | conns | req/s vs FastAPI | p99 vs FastAPI | vs floor | no runtime config vs deployed | SQLite PUT p99, errors | Redis vs deployed | without cache or request log vs floor |\n\
             |---|---|---|---:|---|---|---|---|---|---|---|",
            crate::PUT_ROUNDS
        );
        let rate = |m: &Measured| m.figures.requests_per_second;
        for table in &self.tables {
            let postgres = table.backend == Backend::Postgres;
            for row in table.rows.iter().filter(|row| !row.route.contains("rows")) {
                let put = row.route.starts_with("PUT");
                let deployed = row.get(Server::Deployed);
                let fastapi = row.get(Server::FastApi).filter(|_| postgres);
                let versus_fastapi = match (deployed, fastapi) {
                    (Some(app), Some(fastapi)) => rate_verdict(app, fastapi, if put { 0.9 } else { 1.0 }),
                    (_, None) if postgres && self.fastapi.is_err() => "skipped".to_owned(),
                    _ => "–".to_owned(),
                };
                // Issue 18's read tail: at most FastAPI's p99 at 16 connections; elsewhere the ratio,
                // with no verdict.
                let p99 = match (put, deployed.and_then(|m| m.figures.p99_ms), fastapi.and_then(|m| m.figures.p99_ms)) {
                    (false, Some(app), Some(fastapi)) if row.connections == crate::EQUAL_LOAD_CONNECTIONS => {
                        verdict(app / fastapi, 1.0, false)
                    }
                    (false, Some(app), Some(fastapi)) => format!("{:.2} (no goal)", app / fastapi),
                    _ => "–".to_owned(),
                };
                // A PUT always reaches the database, cache or not; a GET only with the cache off.
                // Issue 18 sets the goal on PostgreSQL; on SQLite the ratio is shown. A PUT's are
                // judged over its rounds.
                let rounds = table.rounds(row);
                let reaching = if put { Server::Deployed } else { Server::Uncached };
                let versus_floor = match to_floor(&rounds, reaching) {
                    Some(ratios) if postgres => ratios.verdict(0.95),
                    Some(ratios) => format!("{} (no goal)", ratios.shown()),
                    None => "–".to_owned(),
                };
                let newcomer = match (row.get(Server::Newcomer), deployed) {
                    (Some(newcomer), Some(deployed)) => format!("{:.2}", rate(newcomer) / rate(deployed)),
                    _ => "–".to_owned(),
                };
                let sqlite_put = if put && !postgres {
                    let limit = if row.connections <= 16 { 50.0 } else { 200.0 };
                    // The app's configurations (the FastAPI column repeats PostgreSQL's figures; the
                    // floor is what the platform alone takes, shown beside).
                    let apps = row
                        .cells
                        .iter()
                        .filter(|(server, _)| !matches!(server, Server::FastApi | Server::Floor | Server::Bare));
                    let worst = apps.clone().filter_map(|(_, m)| m.figures.p99_ms).fold(0.0, f64::max);
                    let errors: u64 = apps.map(|(_, m)| m.figures.errors()).sum();
                    let floor = row
                        .get(Server::Floor)
                        .and_then(|floor| floor.figures.p99_ms)
                        .map_or(String::new(), |p99| format!("; floor {p99:.0} ms"));
                    if worst <= limit && errors == 0 {
                        format!("met ({worst:.0} ms, 0{floor})")
                    } else {
                        format!("**gap: {worst:.0} ms, {errors}** (goal ≤ {limit:.0} ms, 0{floor})")
                    }
                } else {
                    "–".to_owned()
                };
                let redis = match (row.get(Server::Redis), deployed) {
                    (Some(redis), Some(deployed)) => format!("{:.2}", rate(redis) / rate(deployed)),
                    _ => "–".to_owned(),
                };
                let bare = to_floor(&rounds, Server::Bare).map_or("–".to_owned(), |ratios| ratios.shown());
                let _ = writeln!(
                    out,
                    "{} {versus_fastapi} | {p99} | {versus_floor} | {newcomer} | {sqlite_put} | {redis} | {bare} |",
                    table.cell_name(row)
                );
            }
        }
        let _ = writeln!(out);
    }

    /// Every round of each PUT cell on the servers the goal against the floor compares: the
    /// figures behind the goals' medians.
    fn render_put_rounds(&self, out: &mut String) {
        let tables: Vec<&Table> = self.tables.iter().filter(|table| !table.put_rounds.is_empty()).collect();
        if tables.is_empty() {
            return;
        }
        let labels = crate::ROUND_SERVERS.map(Server::label);
        let _ = writeln!(
            out,
            "## PUT against the floor, round by round\n\n\
             Each pass measures the PUT {} times on these servers, alternated: round 1 is the cell in the tables \
             above, the others follow the pass's PUT cells. A ratio is taken within its round, so that the \
             machine's drift between rounds hits both sides of it alike; the goals are judged on the median.\n\n\
             | Spin | backend | conns | round | {} | app, deployed / floor | no cache or request log / floor |\n\
             |---|---|---:|---:|{}---:|---:|",
            crate::PUT_ROUNDS,
            labels.map(|label| format!("{label} req/s (p99)")).join(" | "),
            "---:|".repeat(labels.len())
        );
        for table in tables {
            for row in table.rows.iter().filter(|row| table.put_rounds.iter().any(|round| round.route == row.route)) {
                for (round, cells) in table.rounds(row).into_iter().enumerate() {
                    let figures =
                        crate::ROUND_SERVERS.map(|server| cells.get(server).map_or("–".to_owned(), rate_and_p99));
                    let ratio = |server| to_floor(&[cells], server).map_or("–".to_owned(), |ratios| ratios.shown());
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} | {} | {} | {} |",
                        table.spin,
                        table.backend.name(),
                        row.connections,
                        round + 1,
                        figures.join(" | "),
                        ratio(Server::Deployed),
                        ratio(Server::Bare)
                    );
                }
            }
        }
        let _ = writeln!(out);
    }

    /// What each server, and PostgreSQL behind it, spent per request in every cell: where the
    /// distances between the columns of the tables above go, run by run.
    fn render_cpu(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "## CPU per request\n\n\
             Microseconds of CPU per request in each cell above, from /proc: the server's processes (Spin's \
             `spin up` and its trigger, with SQLite inside; FastAPI's uvicorn) `+` PostgreSQL's (its server \
             and every backend: the servers of a cell take turns, so these are that server's statements). \
             Neither wrk's CPU nor Redis's is counted. They all share the machine's cores, so the more a \
             request costs here, the fewer requests per second wrk sees: where two columns differ, this is \
             where the time goes.\n\n\
             | Spin | backend | route | conns | {} |\n|---|---|---|---:|{}",
            Server::ALL.map(Server::label).join(" | "),
            "---:|".repeat(Server::ALL.len())
        );
        for table in &self.tables {
            let postgres = table.backend == Backend::Postgres;
            for row in &table.rows {
                let cells = Server::ALL.map(|server| {
                    // The SQLite table repeats FastAPI's PostgreSQL cells.
                    let measured = row.get(server).filter(|_| postgres || server != Server::FastApi);
                    match measured.map(|m| (m.server_cpu_us, m.database_cpu_us.filter(|_| postgres))) {
                        Some((Some(server), Some(database))) => format!("{server:.0} + {database:.0}"),
                        Some((Some(server), None)) => format!("{server:.0}"),
                        Some((None, _)) | None => "–".to_owned(),
                    }
                });
                let _ = writeln!(out, "{} {} |", table.cell_name(row), cells.join(" | "));
            }
        }
        let _ = writeln!(out);
    }

    /// Where a PUT's CPU goes on PostgreSQL, in parts that add up to the deployed app's: each part
    /// is the difference between two figures of this run ("CPU per request" and pgbench's), from
    /// FastAPI's write to the app with every feature, so that issue 18's table of the distance to
    /// FastAPI comes from the same run as the goals.
    fn render_put_parts(&self, out: &mut String) {
        let put = crate::ROUTES.iter().find(|route| route.method == "PUT").expect("the benchmark writes");
        let columns: Vec<(String, PutCpu)> = self
            .tables
            .iter()
            .filter(|table| table.backend == Backend::Postgres)
            .flat_map(|table| table.rows.iter().filter(|row| row.route == put.name).map(move |row| (table, row)))
            .map(|(table, row)| {
                let pgbench = self
                    .pgbench
                    .iter()
                    .find(|(route, clients, _)| *route == put.name && *clients == row.connections)
                    .and_then(|(_, _, measured)| measured.database_cpu_us);
                (format!("{}, {} conns", table.spin, row.connections), PutCpu { row, pgbench })
            })
            .collect();
        if columns.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "## Where a PUT's CPU goes (PostgreSQL)\n\n\
             The deployed app's CPU per PUT (\"CPU per request\", Spin's `+` PostgreSQL's) in parts that add up \
             to it, each the difference between two figures of this run: from FastAPI's write, through the same \
             write as this app sends it (pgbench) and as Spin sends it (the Spin floor), to the deployed app. \
             Each part is the difference of two measurements, each of which moves by ±15 % \
             between runs. The app's own parts (its work, its log line, its cache's upkeep) are each smaller than \
             that noise, so they are one part here; \
             [README.md](README.md#where-a-puts-time-goes-postgresql) splits them, measured alternated.\n\n\
             | part | from | {} |\n|---|---|{}",
            columns.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join(" | "),
            "---:|".repeat(columns.len())
        );
        for part in PUT_PARTS {
            let cells =
                columns.iter().map(|(_, cpu)| (part.value)(cpu).map_or("–".to_owned(), |us| format!("{us:.0}")));
            let _ = writeln!(out, "| {} | {} | {} |", part.name, part.from, cells.collect::<Vec<_>>().join(" | "));
        }
        let rates = columns.iter().map(|(_, cpu)| {
            format!("{} / {}", cpu.rate_to_fastapi(Server::Deployed), cpu.rate_to_fastapi(Server::Floor))
        });
        let _ = writeln!(
            out,
            "| req/s against FastAPI's: app, deployed / Spin floor | the tables above | {} |\n",
            rates.collect::<Vec<_>>().join(" | ")
        );
    }

    /// The read latency goal at one offered load for every server: the app's p99 against
    /// FastAPI's, each sent the same requests per second.
    fn render_equal_load(&self, out: &mut String) {
        let tables: Vec<&Table> = self.tables.iter().filter(|table| !table.equal_load.is_empty()).collect();
        if tables.is_empty() {
            return;
        }
        let servers = [Server::FastApi, Server::Deployed, Server::Newcomer, Server::Redis];
        let _ = writeln!(
            out,
            "## Cached reads at the same load\n\n\
             wrk keeps every connection busy, so a server that answers faster is sent more: in the tables above, \
             the app's p99 is measured at about twice FastAPI's requests per second. Here every server is sent \
             the same requests per second, {} of what FastAPI served in the cell above, on a schedule over the \
             same connections (an open loop, `src/open_loop.rs`); a request's latency runs from when it was \
             due, so a server that falls behind is charged for the requests queued behind it. Goal: the app's \
             p99 at most FastAPI's.\n",
            crate::EQUAL_LOAD_SHARES.map(|share| format!("{:.0} %", share * 100.0)).join(" and ")
        );
        let labels: Vec<&str> = servers.iter().map(|server| server.label()).collect();
        let _ = writeln!(
            out,
            "| Spin | route | conns | req/s sent | {} | errors | app, deployed p99 vs FastAPI's |\n\
             |---|---|---:|---:|{}---:|---|",
            labels.iter().map(|label| format!("{label} p99 (mean)")).collect::<Vec<_>>().join(" | "),
            "---:|".repeat(labels.len())
        );
        for table in tables {
            for row in &table.equal_load {
                let cells = servers.iter().map(|server| {
                    row.get(*server).map_or("–".to_owned(), |figures| {
                        format!("{} ({})", optional_ms(figures.p99_ms), optional_ms(figures.mean_ms))
                    })
                });
                let errors: u64 = row.cells.iter().map(|(_, figures)| figures.errors()).sum();
                let p99 = |server| row.get(server).and_then(|figures| figures.p99_ms);
                let verdict = match (p99(Server::Deployed), p99(Server::FastApi)) {
                    (Some(app), Some(fastapi)) => verdict(app / fastapi, 1.0, false),
                    _ => "–".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.0} | {} | {errors} | {verdict} |",
                    table.spin,
                    row.route,
                    row.connections,
                    row.rate,
                    cells.collect::<Vec<_>>().join(" | ")
                );
            }
        }
        let _ = writeln!(out);
    }

    fn render_cold_starts(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "## Cold start: 64 concurrent first requests\n\n\
             A fresh app with no runtime config (the SQLite file does not exist yet; on PostgreSQL, a new \
             database): 64 requests at once (PUTs, PUTs with `If-Match: \"1\"` of which one may win, GETs of \
             the item and the list), each the first of its connection. Failed: any answer but 2xx or that 412. \
             Goal: none.\n\n\
             | Spin | backend | requests | failed | slowest |\n|---|---|---:|---:|---:|"
        );
        for cold in &self.cold_starts {
            let failed = if cold.failed == 0 { "0 (met)".to_owned() } else { format!("**{}** (goal 0)", cold.failed) };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {failed} | {:.0} ms |",
                cold.spin,
                cold.backend.name(),
                cold.requests,
                cold.slowest_ms
            );
        }
        let _ = writeln!(out);
    }

    fn render_pgbench(&self, out: &mut String) {
        let floors: Vec<&Table> = self.tables.iter().filter(|table| table.backend == Backend::Postgres).collect();
        let _ = writeln!(
            out,
            "## The database floor: the same SQL straight at PostgreSQL\n\n\
             pgbench, extended protocol (parse, bind, execute, as Spin's client), the store's statements with the \
             benchmark's values bound as parameters, measured once (during the first Spin pass). PostgreSQL's \
             CPU per transaction, beside the Spin floor's per request (\"CPU per request\"), shows what Spin's \
             client adds on the database's side: its pool's clean-up batch before each request (`CLOSE ALL` ... \
             `DISCARD SEQUENCES`), and the statement prepared, run and closed in round trips of their own, \
             where pgbench sends all three in one.\n"
        );
        let mut header =
            String::from("| route | clients | pgbench tx/s (mean latency ms) | errors | PostgreSQL CPU us per tx |");
        let mut rule = String::from("|---|---:|---:|---:|---:|");
        for table in &floors {
            let _ = write!(header, " Spin floor / pgbench, {} |", table.spin);
            rule.push_str("---:|");
        }
        let _ = writeln!(out, "{header}\n{rule}");
        for (route, clients, measured) in &self.pgbench {
            let figures = &measured.figures;
            let _ = write!(
                out,
                "| {route} | {clients} | {:.0} ({}) | {} | {} |",
                figures.requests_per_second,
                optional_ms(figures.mean_ms),
                figures.errors(),
                measured.database_cpu_us.map_or("–".to_owned(), |us| format!("{us:.0}"))
            );
            for table in &floors {
                let floor = table.row(route, *clients).and_then(|row| row.get(Server::Floor));
                let ratio = floor.map_or("–".to_owned(), |floor| {
                    format!("{:.1} %", 100.0 * floor.figures.requests_per_second / figures.requests_per_second)
                });
                let _ = write!(out, " {ratio} |");
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out);
    }

    fn render_errors(&self, out: &mut String) {
        let mut lines = Vec::new();
        for table in &self.tables {
            for row in &table.rows {
                for (server, measured) in &row.cells {
                    let figures = &measured.figures;
                    // The SQLite table repeats FastAPI's PostgreSQL cells: count them once.
                    if figures.errors() == 0 || (table.backend == Backend::Sqlite && *server == Server::FastApi) {
                        continue;
                    }
                    lines.push(format!(
                        "- {}, {}, {} at {} connections, {}: {} non-2xx, {} socket errors of {} requests",
                        table.spin,
                        table.backend.name(),
                        row.route,
                        row.connections,
                        server.label(),
                        figures.non_2xx,
                        figures.socket_errors,
                        figures.requests
                    ));
                }
            }
        }
        let _ = writeln!(out, "## Errors\n");
        if lines.is_empty() {
            let _ = writeln!(out, "No cell had a non-2xx response or a socket error.");
        } else {
            let _ = writeln!(out, "{}", lines.join("\n"));
        }
    }
}

/// One PUT cell, with pgbench's PostgreSQL CPU per transaction for the same write and clients.
struct PutCpu<'a> {
    row: &'a Row,
    pgbench: Option<f64>,
}

impl PutCpu<'_> {
    fn server(&self, server: Server) -> Option<f64> {
        self.row.get(server)?.server_cpu_us
    }

    fn database(&self, server: Server) -> Option<f64> {
        self.row.get(server)?.database_cpu_us
    }

    fn total(&self, server: Server) -> Option<f64> {
        Some(self.server(server)? + self.database(server)?)
    }

    /// `server`'s req/s against FastAPI's.
    fn rate_to_fastapi(&self, server: Server) -> String {
        let rate = |server| self.row.get(server).map(|m: &Measured| m.figures.requests_per_second);
        rate(server).zip(rate(Server::FastApi)).map_or("–".to_owned(), |(of, to)| format!("{:.2}", of / to))
    }
}

/// A row of the PUT's parts: what it is, which figures it is taken from, and its value.
struct PutPart {
    name: &'static str,
    from: &'static str,
    value: fn(&PutCpu<'_>) -> Option<f64>,
}

/// The parts, in order: those above the deployed app's total add up to it.
const PUT_PARTS: [PutPart; 8] = [
    PutPart {
        name: "PostgreSQL: FastAPI's write (a bare `UPDATE`, prepared once per connection by asyncpg)",
        from: "FastAPI's PostgreSQL",
        value: |cpu| cpu.database(Server::FastApi),
    },
    PutPart {
        name: "PostgreSQL: this app's write beyond it (the history's INSERT and prune, the advisory lock, \
               the verdict; parsed and planned on each call)",
        from: "pgbench − FastAPI's PostgreSQL",
        value: |cpu| Some(cpu.pgbench? - cpu.database(Server::FastApi)?),
    },
    PutPart {
        name: "PostgreSQL: Spin's client beyond pgbench (the pool's clean-up batch; parse, bind and execute in \
               round trips of their own)",
        from: "Spin floor's PostgreSQL − pgbench",
        value: |cpu| Some(cpu.database(Server::Floor)? - cpu.pgbench?),
    },
    PutPart {
        name: "Spin: a request that sends the write and nothing else (accept, instantiate, route, pool \
               checkout, query, answer)",
        from: "Spin floor's Spin",
        value: |cpu| cpu.server(Server::Floor),
    },
    PutPart {
        name: "the app beyond the floor: its own work (variables, the body and the catalog's checks, the JSON \
               answer), its log line and its cache's upkeep",
        from: "deployed − Spin floor",
        value: |cpu| Some(cpu.total(Server::Deployed)? - cpu.total(Server::Floor)?),
    },
    PutPart { name: "**app, deployed: in all**", from: "deployed", value: |cpu| cpu.total(Server::Deployed) },
    PutPart { name: "FastAPI's uvicorn (Python)", from: "FastAPI's server", value: |cpu| cpu.server(Server::FastApi) },
    PutPart { name: "**FastAPI: in all**", from: "FastAPI", value: |cpu| cpu.total(Server::FastApi) },
];

/// `server`'s req/s over the floor's in each of `rounds` where both ran, each taken within its round.
fn to_floor(rounds: &[&Row], server: Server) -> Option<Ratios> {
    let pairs: Vec<(&Measured, &Measured)> =
        rounds.iter().filter_map(|row| Some((row.get(server)?, row.get(Server::Floor)?))).collect();
    if pairs.is_empty() {
        return None;
    }
    Some(Ratios {
        each: pairs
            .iter()
            .map(|(of, floor)| of.figures.requests_per_second / floor.figures.requests_per_second)
            .collect(),
        errors: pairs.iter().map(|(of, floor)| of.figures.errors() + floor.figures.errors()).sum(),
    })
}

/// One cell's req/s ratios, a round each, and the errors of the cells they were taken from.
struct Ratios {
    each: Vec<f64>,
    errors: u64,
}

impl Ratios {
    fn median(&self) -> f64 {
        let mut sorted = self.each.clone();
        sorted.sort_by(f64::total_cmp);
        let middle = sorted.len() / 2;
        if sorted.len() % 2 == 1 {
            sorted[middle]
        } else {
            (sorted[middle - 1] + sorted[middle]) / 2.0
        }
    }

    /// One ratio alone, or the median and then every round's, in the order they ran.
    fn shown(&self) -> String {
        match self.each.as_slice() {
            [one] => format!("{one:.2}"),
            each => format!(
                "median {:.2}; rounds {}",
                self.median(),
                each.iter().map(|ratio| format!("{ratio:.2}")).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// At least `goal` at the median, with no error in any round: wrk's req/s counts a 503 as
    /// much as a 200.
    fn verdict(&self, goal: f64) -> String {
        let shown = self.shown();
        if self.errors > 0 {
            format!("**{shown}, {} errors** (goal ≥ {goal}, no error)", self.errors)
        } else if self.median() >= goal {
            format!("met ({shown})")
        } else {
            format!("**gap: {shown}** (goal ≥ {goal})")
        }
    }
}

/// The req/s of `measured` against `reference`'s, at least `goal` times it. wrk's req/s counts
/// every answer, a 503 as much as a 200: a cell where either side had an error meets no goal.
fn rate_verdict(measured: &Measured, reference: &Measured, goal: f64) -> String {
    Ratios {
        each: vec![measured.figures.requests_per_second / reference.figures.requests_per_second],
        errors: measured.figures.errors() + reference.figures.errors(),
    }
    .verdict(goal)
}

/// `met (ratio)` when `ratio` reaches `goal` (at least it, or at most it), else the gap in bold.
fn verdict(ratio: f64, goal: f64, higher_is_better: bool) -> String {
    let met = if higher_is_better { ratio >= goal } else { ratio <= goal };
    if met {
        format!("met ({ratio:.2})")
    } else {
        format!("**gap: {ratio:.2}** (goal {}{goal})", if higher_is_better { "≥ " } else { "≤ " })
    }
}

/// A cell of the tables of figures: requests/s, and the p99 in brackets.
fn rate_and_p99(measured: &Measured) -> String {
    format!("{:.0} ({})", measured.figures.requests_per_second, optional_ms(measured.figures.p99_ms))
}

fn optional_ms(value: Option<f64>) -> String {
    value.map_or("–".into(), |ms| format!("{ms:.1} ms"))
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned()))
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn memory() -> String {
    test_support::proc_kib("/proc/meminfo", "MemTotal")
        .map(|kib| format!("{:.0} GiB", kib as f64 / (1024.0 * 1024.0)))
        .unwrap_or_else(|| "unknown memory".into())
}

/// The share of the machine's CPU time that was not idle over the next two seconds.
pub fn busy_percent() -> f64 {
    // The `cpu` line of /proc/stat: user nice system idle iowait irq softirq steal ...
    let sample = || -> (u64, u64) {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields: Vec<u64> =
            stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
        let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
        (fields.iter().take(8).sum(), idle)
    };
    let (total_before, idle_before) = sample();
    std::thread::sleep(Duration::from_secs(2));
    let (total, idle) = sample();
    let elapsed = total.saturating_sub(total_before).max(1);
    100.0 * (elapsed - idle.saturating_sub(idle_before).min(elapsed)) as f64 / elapsed as f64
}

/// The app's version (every crate of the workspace has it, spin.toml too: a test keeps them
/// equal) and the commit of the checkout the bench built it from, with whether it had changes.
fn build() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(test_support::workspace_root())
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let commit = match (git(&["rev-parse", "--short", "HEAD"]), git(&["status", "--porcelain", "--untracked-files=no"]))
    {
        (Some(commit), Some(changes)) if changes.is_empty() => format!("commit {commit}"),
        (Some(commit), Some(_)) => format!("commit {commit} with uncommitted changes"),
        (Some(_), None) | (None, _) => "no git commit known".to_owned(),
    };
    format!("integrations-service {} ({commit})", env!("CARGO_PKG_VERSION"))
}

fn today() -> String {
    std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skipped_baseline_is_said_in_the_header_and_in_its_column() {
        let figures = Figures { requests_per_second: 100.0, p99_ms: Some(5.0), requests: 800, ..Default::default() };
        let app = Measured { figures, peak_rss_bytes: 100 << 20, ..Default::default() };
        let report = Report {
            seconds: 8,
            build: "integrations-service 0.4.0 (commit 0123abc)".into(),
            spins: vec!["spin 3.6.3".into()],
            fastapi: Err("python3 -m venv: not found".into()),
            tools: Vec::new(),
            background: vec![("before spin 3.6.3".into(), 90.0)],
            sizes: Vec::new(),
            tables: vec![Table {
                spin: "spin 3.6.3".into(),
                backend: Backend::Postgres,
                servers: vec![Server::FastApi, Server::Deployed],
                rows: vec![Row { route: "GET list".into(), connections: 16, cells: vec![(Server::Deployed, app)] }],
                equal_load: Vec::new(),
                put_rounds: Vec::new(),
            }],
            pgbench: Vec::new(),
            cold_starts: Vec::new(),
            redis: Err("redis-server is not installed".into()),
            elapsed: Duration::from_secs(60),
        };
        let markdown = report.render();
        assert!(markdown.contains("The app: integrations-service 0.4.0 (commit 0123abc)."), "{markdown}");
        assert!(markdown.contains("**The FastAPI comparison was SKIPPED in this run: python3 -m venv: not found.**"));
        assert!(markdown.contains("| GET list | 16 | skipped | 100 (5.0 ms) |"), "{markdown}");
        assert!(markdown.contains("**Other work kept this machine busy"));
        assert!(markdown.contains("**The Redis column was SKIPPED in this run: redis-server is not installed.**"));
    }

    #[test]
    fn the_sqlite_put_goal_is_the_apps_worst_p99_not_fastapis() {
        let measured = |p99: f64| Measured {
            figures: Figures { requests_per_second: 500.0, p99_ms: Some(p99), requests: 4000, ..Default::default() },
            ..Default::default()
        };
        let mut report = with_fastapi(vec![16]);
        report.tables.push(one_cell(
            Backend::Sqlite,
            "PUT item",
            vec![
                (Server::FastApi, measured(800.0)),
                (Server::Deployed, measured(30.0)),
                (Server::Newcomer, measured(45.0)),
            ],
        ));
        let markdown = report.render();
        assert!(markdown.contains("| 1.00 | met (45 ms, 0) |"), "{markdown}");
    }

    #[test]
    fn the_equal_load_verdict_compares_the_deployed_apps_p99_with_fastapis() {
        let figures =
            |p99: f64| Figures { p99_ms: Some(p99), mean_ms: Some(p99 / 4.0), requests: 10, ..Default::default() };
        let mut report = with_fastapi(vec![16]);
        let row = |route: &str, app: f64| EqualLoad {
            route: route.into(),
            connections: 16,
            rate: 1500.0,
            cells: vec![
                (Server::FastApi, figures(10.0)),
                (Server::Deployed, figures(app)),
                (Server::Newcomer, figures(30.0)),
            ],
        };
        report.tables.push(Table {
            spin: "spin 4.1".into(),
            backend: Backend::Postgres,
            servers: vec![Server::FastApi, Server::Deployed],
            rows: Vec::new(),
            equal_load: vec![row("GET item", 8.0), row("GET list", 12.0)],
            put_rounds: Vec::new(),
        });
        let markdown = report.render();
        assert!(markdown.contains("## Cached reads at the same load"), "{markdown}");
        assert!(markdown.contains("FastAPI's |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n"), "{markdown}");
        assert!(
            markdown.contains("| spin 4.1 | GET item | 16 | 1500 | 10.0 ms (2.5 ms) | 8.0 ms (2.0 ms) | 30.0 ms (7.5 ms) | – | 0 | met (0.80) |"),
            "{markdown}"
        );
        assert!(
            markdown.contains("| GET list | 16 | 1500 |") && markdown.contains("**gap: 1.20** (goal ≤ 1) |"),
            "{markdown}"
        );
    }

    /// The SQLite PUT goal is about the configurations users run: the app without cache or request
    /// log is reported beside the floor, never the cell's worst p99.
    #[test]
    fn the_sqlite_put_goal_leaves_out_what_no_user_runs() {
        let mut report = with_fastapi(vec![16]);
        report.tables.push(one_cell(
            Backend::Sqlite,
            "PUT item",
            vec![
                (Server::Deployed, measured(800.0, 45.0, 0)),
                (Server::Newcomer, measured(790.0, 48.0, 0)),
                (Server::Bare, measured(900.0, 70.0, 0)),
                (Server::Floor, measured(1000.0, 40.0, 0)),
            ],
        ));
        let markdown = report.render();
        assert!(
            markdown
                .contains("| PUT item | 16 | – | – | 0.80 (no goal) | 0.99 | met (48 ms, 0; floor 40 ms) | – | 0.90 |"),
            "{markdown}"
        );
    }

    fn goals_of(rows: Vec<Row>) -> String {
        let mut report = with_fastapi(vec![16, 64]);
        report.tables.push(Table {
            spin: "spin 3.6.3".into(),
            backend: Backend::Postgres,
            servers: vec![
                Server::FastApi,
                Server::Deployed,
                Server::Newcomer,
                Server::Uncached,
                Server::Bare,
                Server::Floor,
            ],
            rows,
            equal_load: Vec::new(),
            put_rounds: Vec::new(),
        });
        report.render()
    }

    /// Spin 3.6.3 on `backend`, with one row: `route` at 16 connections on the servers of `cells`.
    fn one_cell(backend: Backend, route: &str, cells: Vec<(Server, Measured)>) -> Table {
        Table {
            spin: "spin 3.6.3".into(),
            backend,
            servers: cells.iter().map(|(server, _)| *server).collect(),
            rows: vec![Row { route: route.into(), connections: 16, cells }],
            equal_load: Vec::new(),
            put_rounds: Vec::new(),
        }
    }

    /// An empty report of a run with FastAPI, at `connections`.
    fn with_fastapi(connections: Vec<u32>) -> Report {
        let options =
            Options { duration: Duration::from_secs(8), connections, spins: Vec::new(), out: Default::default() };
        Report::new(&options, &[], Ok("FastAPI".into()))
    }

    fn measured(rate: f64, p99: f64, non_2xx: u64) -> Measured {
        Measured {
            figures: Figures {
                requests_per_second: rate,
                p99_ms: Some(p99),
                requests: 8000,
                non_2xx,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Issue 18's read tail is at 16 connections: at 64 the p99 ratio is shown without a verdict.
    /// The ratios are the app's req/s over FastAPI's, the uncached app's over the floor's, the
    /// newcomer's over the deployed app's (no goal), and (last) the app without cache or request
    /// log over the floor's.
    #[test]
    fn the_read_goals_are_the_issues_ratios_and_the_p99_goal_is_at_16_connections() {
        let row = |connections| Row {
            route: "GET item".into(),
            connections,
            cells: vec![
                (Server::FastApi, measured(1000.0, 10.0, 0)),
                (Server::Deployed, measured(2000.0, 12.0, 0)),
                (Server::Newcomer, measured(1700.0, 14.0, 0)),
                (Server::Uncached, measured(950.0, 20.0, 0)),
                (Server::Bare, measured(980.0, 19.0, 0)),
                (Server::Floor, measured(1000.0, 20.0, 0)),
            ],
        };
        let markdown = goals_of(vec![row(16), row(64)]);
        assert!(
            markdown.contains(
                "| spin 3.6.3 | PostgreSQL | GET item | 16 | met (2.00) | **gap: 1.20** (goal ≤ 1) | met (0.95) | 0.85 | – | – | 0.98 |"
            ),
            "{markdown}"
        );
        assert!(
            markdown.contains(
                "| spin 3.6.3 | PostgreSQL | GET item | 64 | met (2.00) | 1.20 (no goal) | met (0.95) | 0.85 | – | – | 0.98 |"
            ),
            "{markdown}"
        );
    }

    /// Each server's CPU per request, with PostgreSQL's beside it on that backend only: on SQLite
    /// the database runs inside Spin, and the FastAPI cells are PostgreSQL's, repeated.
    #[test]
    fn cpu_per_request_adds_postgresql_only_where_the_server_uses_it() {
        let spent = |server: f64, database: f64| Measured {
            server_cpu_us: Some(server),
            database_cpu_us: Some(database),
            ..measured(1000.0, 20.0, 0)
        };
        let mut report = with_fastapi(vec![16]);
        for backend in [Backend::Postgres, Backend::Sqlite] {
            report.tables.push(one_cell(
                backend,
                "PUT item",
                vec![
                    (Server::FastApi, spent(600.4, 400.0)),
                    (Server::Deployed, spent(1020.0, 700.6)),
                    (Server::Floor, Measured { server_cpu_us: None, ..spent(0.0, 0.0) }),
                ],
            ));
        }
        report.pgbench.push(("PUT item", 16, Measured { database_cpu_us: Some(412.4), ..measured(3000.0, 9.0, 0) }));
        let markdown = report.render();
        assert!(markdown.contains("| PUT item | 16 | 3000 (–) | 0 | 412 | 33.3 % |"), "{markdown}");
        assert!(
            markdown
                .contains("| spin 3.6.3 | PostgreSQL | PUT item | 16 | 600 + 400 | 1020 + 701 | – | – | – | – | – |"),
            "{markdown}"
        );
        assert!(
            markdown.contains("| spin 3.6.3 | SQLite | PUT item | 16 | – | 1020 | – | – | – | – | – |"),
            "{markdown}"
        );
    }

    /// The parts of a PUT are differences of one run's figures, from FastAPI's write to the
    /// deployed app, and those above its total add up to it.
    #[test]
    fn a_puts_parts_add_up_to_the_deployed_apps_cpu() {
        let spent = |rate: f64, server: f64, database: f64| Measured {
            server_cpu_us: Some(server),
            database_cpu_us: Some(database),
            ..measured(rate, 20.0, 0)
        };
        let mut report = with_fastapi(vec![16]);
        report.tables.push(one_cell(
            Backend::Postgres,
            "PUT item",
            vec![
                (Server::FastApi, spent(2000.0, 500.0, 150.0)),
                (Server::Deployed, spent(1100.0, 1000.0, 650.0)),
                (Server::Floor, spent(1500.0, 550.0, 600.0)),
            ],
        ));
        report.pgbench.push(("PUT item", 16, Measured { database_cpu_us: Some(450.0), ..measured(2600.0, 6.0, 0) }));
        let markdown = report.render();
        let table = markdown.split("## Where a PUT's CPU goes (PostgreSQL)").nth(1).expect("the section");
        let value = |part: &str| -> f64 {
            let line = table.lines().find(|line| line.starts_with(&format!("| {part}"))).expect(part);
            line.rsplit('|').nth(1).expect("a cell").trim().parse().expect("a number")
        };
        assert_eq!(value("PostgreSQL: FastAPI's write"), 150.0);
        assert_eq!(value("PostgreSQL: this app's write beyond it"), 300.0);
        assert_eq!(value("PostgreSQL: Spin's client beyond pgbench"), 150.0);
        assert_eq!(value("Spin: a request that sends the write"), 550.0);
        assert_eq!(value("the app beyond the floor"), 500.0);
        let parts = [
            "PostgreSQL: FastAPI's write",
            "PostgreSQL: this app's",
            "PostgreSQL: Spin's",
            "Spin: a request",
            "the app beyond the floor",
        ];
        assert_eq!(parts.iter().map(|part| value(part)).sum::<f64>(), value("**app, deployed: in all**"));
        assert_eq!(value("**app, deployed: in all**"), 1650.0);
        assert_eq!(value("FastAPI's uvicorn"), 500.0);
        assert_eq!(value("**FastAPI: in all**"), 650.0);
        assert!(table.contains("| spin 3.6.3, 16 conns |"), "{table}");
        assert!(
            table.contains("| req/s against FastAPI's: app, deployed / Spin floor | the tables above | 0.55 / 0.75 |"),
            "{table}"
        );
    }

    /// A PUT's goal against the floor is judged on the median of its rounds' ratios, each taken
    /// within its round, and every round is listed; an error in any round meets no goal.
    #[test]
    fn a_puts_goal_against_the_floor_is_the_median_of_its_rounds() {
        let round = |deployed: f64, bare: f64, floor: f64, non_2xx: u64| Row {
            route: "PUT item".into(),
            connections: 16,
            cells: vec![
                (Server::Deployed, measured(deployed, 30.0, non_2xx)),
                (Server::Bare, measured(bare, 25.0, 0)),
                (Server::Floor, measured(floor, 20.0, 0)),
            ],
        };
        let render = |later: Vec<Row>| {
            let mut table = one_cell(Backend::Postgres, "PUT item", round(800.0, 900.0, 1000.0, 0).cells);
            table.put_rounds = later;
            let mut report = with_fastapi(vec![16]);
            report.tables.push(table);
            report.render()
        };
        let markdown = render(vec![round(1000.0, 1000.0, 1000.0, 0), round(960.0, 990.0, 1000.0, 0)]);
        assert!(
            markdown.contains(
                "| PUT item | 16 | – | – | met (median 0.96; rounds 0.80, 1.00, 0.96) | – | – | – | median 0.99; rounds 0.90, 1.00, 0.99 |"
            ),
            "{markdown}"
        );
        assert!(markdown.contains("## PUT against the floor, round by round"), "{markdown}");
        assert!(
            markdown.contains(
                "| spin 3.6.3 | PostgreSQL | 16 | 1 | 800 (30.0 ms) | 900 (25.0 ms) | 1000 (20.0 ms) | 0.80 | 0.90 |"
            ),
            "{markdown}"
        );
        assert!(markdown.contains("| spin 3.6.3 | PostgreSQL | 16 | 3 | 960 (30.0 ms) |"), "{markdown}");

        let markdown = render(vec![round(900.0, 1000.0, 1000.0, 0), round(920.0, 990.0, 1000.0, 0)]);
        assert!(markdown.contains("**gap: median 0.90; rounds 0.80, 0.90, 0.92** (goal ≥ 0.95) |"), "{markdown}");
        let markdown = render(vec![round(1000.0, 1000.0, 1000.0, 3), round(990.0, 990.0, 1000.0, 0)]);
        assert!(
            markdown.contains("**median 0.99; rounds 0.80, 1.00, 0.99, 3 errors** (goal ≥ 0.95, no error) |"),
            "{markdown}"
        );
    }

    /// wrk's req/s counts a 503 as a request: a faster server that fails some answers meets no
    /// req/s goal.
    #[test]
    fn a_cell_with_errors_meets_no_rate_goal() {
        let row = Row {
            route: "PUT item".into(),
            connections: 16,
            cells: vec![
                (Server::FastApi, measured(1000.0, 30.0, 0)),
                (Server::Deployed, measured(1200.0, 40.0, 7)),
                (Server::Newcomer, measured(1200.0, 40.0, 0)),
                (Server::Floor, measured(1000.0, 40.0, 0)),
            ],
        };
        let markdown = goals_of(vec![row]);
        assert!(
            markdown.contains(
                "| PUT item | 16 | **1.20, 7 errors** (goal ≥ 0.9, no error) | – | **1.20, 7 errors** (goal ≥ 0.95, no error) | 1.00 |"
            ),
            "{markdown}"
        );
    }
}
