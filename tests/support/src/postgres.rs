//! A throwaway PostgreSQL cluster for tests: `initdb` into a temporary directory, a free port on
//! 127.0.0.1, `pg_ctl` to start and stop it (tests stop it to see an outage). It is removed when
//! the fixture is dropped and, should the test process die first, by a watchdog process.
//! `TEST_DATABASE_URL` replaces the shared cluster with an existing server.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context as _, Result};

/// The server runs as this user when the tests run as root (initdb refuses root).
const SERVER_USER: &str = "postgres";

pub struct PostgresFixture {
    dsn: String,
    cluster: Option<Cluster>,
}

struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
    as_root: bool,
    watchdog: Child,
}

impl PostgresFixture {
    /// A cluster of its own, for a test that stops and restarts it.
    pub async fn start() -> Result<Self> {
        let cluster = tokio::task::spawn_blocking(Cluster::create).await??;
        let dsn = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
        Ok(Self { dsn, cluster: Some(cluster) })
    }

    /// One cluster per test process (or the server of `TEST_DATABASE_URL`), for tests that
    /// only need a database of their own on it.
    pub async fn shared() -> Result<&'static Self> {
        static SHARED: tokio::sync::OnceCell<PostgresFixture> = tokio::sync::OnceCell::const_new();
        SHARED
            .get_or_try_init(|| async {
                match std::env::var("TEST_DATABASE_URL") {
                    Ok(dsn) if !dsn.is_empty() => Ok(Self { dsn, cluster: None }),
                    _ => Self::start().await,
                }
            })
            .await
    }

    /// A superuser DSN for the `postgres` database.
    pub fn dsn(&self) -> String {
        self.dsn.clone()
    }

    /// `host:port`, as `allowed_outbound_hosts` names it.
    pub fn host_port(&self) -> String {
        let config: tokio_postgres::Config = self.dsn.parse().expect("a valid DSN");
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            _ => "localhost".into(),
        };
        format!("{host}:{}", config.get_ports().first().copied().unwrap_or(5432))
    }

    /// A new, empty database on this server, so that tests sharing a cluster (or a
    /// `TEST_DATABASE_URL`) never see each other's rows: its superuser DSN.
    pub async fn fresh_database(&self) -> Result<String> {
        fresh_database(&self.dsn).await
    }

    /// Stops the server (fast shutdown: sessions are cut, as in an outage).
    pub async fn stop(&self) -> Result<()> {
        let cluster = self.cluster.as_ref().context("an external TEST_DATABASE_URL server is not stopped by tests")?;
        cluster.pg_ctl(["-D", &cluster.data_dir(), "-m", "fast", "-w", "stop"].map(String::from).to_vec()).await
    }

    pub async fn restart(&self) -> Result<()> {
        let cluster =
            self.cluster.as_ref().context("an external TEST_DATABASE_URL server is not restarted by tests")?;
        cluster.pg_ctl(cluster.start_args()).await
    }
}

/// A new, empty database on the server behind `admin_dsn`: its DSN.
pub async fn fresh_database(admin_dsn: &str) -> Result<String> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!("e2e_{}_{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let client = connect(admin_dsn).await?;
    // Two statements: a multi-statement batch would run as one transaction, which these refuse.
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).await?;
    client.batch_execute(&format!("CREATE DATABASE {name}")).await?;
    Ok(with_database(admin_dsn, &name))
}

/// Opens a direct connection (no TLS), for tests that look at the rows themselves.
pub async fn connect(dsn: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) =
        tokio_postgres::connect(dsn, tokio_postgres::NoTls).await.context("connecting to PostgreSQL")?;
    tokio::spawn(connection);
    Ok(client)
}

/// `dsn` with its database name replaced.
pub fn with_database(dsn: &str, name: &str) -> String {
    let (base, query) = dsn.split_once('?').map_or((dsn, None), |(base, query)| (base, Some(query)));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

impl Cluster {
    fn create() -> Result<Self> {
        let bin = server_bin_dir()?;
        let as_root = std::fs::metadata("/proc/self")?.uid() == 0;
        let dir = tempfile::Builder::new().prefix("spin-test-pg-").tempdir()?;
        if as_root {
            chown_to_server_user(dir.path())?;
        }
        let port = crate::free_port()?;
        let watchdog = spawn_watchdog(dir.path(), &bin, as_root)?;
        let cluster = Self { dir, port, bin, as_root, watchdog };
        cluster
            .run("initdb", &["-D", &cluster.data_dir(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])?;
        cluster.run("pg_ctl", &cluster.start_args().iter().map(String::as_str).collect::<Vec<_>>())?;
        Ok(cluster)
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn start_args(&self) -> Vec<String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=1000",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        ["-D", &self.data_dir(), "-o", &options, "-l", &log, "-w", "start"].map(String::from).to_vec()
    }

    async fn pg_ctl(&self, args: Vec<String>) -> Result<()> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = tokio::process::Command::from(self.command("pg_ctl", &args)).output().await?;
        ensure_success("pg_ctl", &output)
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<()> {
        let output = self.command(program, args).output().with_context(|| format!("running {program}"))?;
        ensure_success(program, &output)
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let program = self.bin.join(program);
        let mut command = if self.as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", SERVER_USER, "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        command.args(args).stdin(Stdio::null());
        command
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data_dir = self.data_dir();
        let _ = self.run("pg_ctl", &["-D", &data_dir, "-m", "immediate", "-w", "stop"]);
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

fn ensure_success(program: &str, output: &std::process::Output) -> Result<()> {
    if !output.status.success() {
        bail!(
            "{program} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// `PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin`.
fn server_bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Ok(dir.into());
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL server binaries not found in /usr/lib/postgresql (install postgresql-15, or set PG_BIN)")?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let version = path.file_name()?.to_str()?.parse().ok()?;
            path.join("bin/initdb").exists().then(|| (version, path.join("bin")))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).context("no PostgreSQL server under /usr/lib/postgresql")
}

fn chown_to_server_user(path: &Path) -> Result<()> {
    let output = Command::new("id").args(["-u", SERVER_USER]).output()?;
    ensure_success("id", &output)
        .with_context(|| format!("the {SERVER_USER} user must exist to run PostgreSQL as root"))?;
    let uid: u32 = String::from_utf8_lossy(&output.stdout).trim().parse()?;
    std::os::unix::fs::chown(path, Some(uid), None)?;
    Ok(())
}

/// Stops the cluster and removes its directory once this process is gone, however it ended.
fn spawn_watchdog(dir: &Path, bin: &Path, as_root: bool) -> Result<Child> {
    let pg_ctl = bin.join("pg_ctl");
    let data = dir.join("data");
    let stop = if as_root {
        format!("runuser -u {SERVER_USER} -- {} -D {} -m immediate stop", pg_ctl.display(), data.display())
    } else {
        format!("{} -D {} -m immediate stop", pg_ctl.display(), data.display())
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        dir = dir.display()
    );
    Ok(Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_name_is_swapped_and_the_query_kept() {
        assert_eq!(
            super::with_database("postgres://u@h:1/postgres?sslmode=disable", "x"),
            "postgres://u@h:1/x?sslmode=disable"
        );
        assert_eq!(super::with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
    }
}
