//! A throwaway PostgreSQL cluster for tests: `initdb` into a temporary directory, a free port on
//! 127.0.0.1, `pg_ctl` to start and stop it (tests stop it to see an outage). It is removed when
//! the fixture is dropped and, should the test process die first, by a watchdog process.
//! `TEST_DATABASE_URL` replaces the shared cluster with an existing server.
//!
//! A cluster may instead sit behind a network link of its own ([`PostgresFixture::start_behind_link`]):
//! it runs in a network namespace joined to this one by a veth pair (iproute2's `ip`, as root),
//! and the test can cut that link as a network partition does, with no process of either side
//! told.

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
    /// The network namespace the server runs in, if not this one.
    link: Option<Link>,
    watchdog: Child,
}

/// A network namespace of the cluster's own, and the veth pair that joins it to this one.
struct Link {
    namespace: String,
    /// This side's address, and the cluster's (a /30 of 198.18.0.0/15, the range RFC 2544 sets
    /// aside for tests of network devices, so that no real network is shadowed).
    ours: String,
    theirs: String,
}

impl PostgresFixture {
    /// A cluster of its own, for a test that stops and restarts it.
    pub async fn start() -> Result<Self> {
        Self::start_on(false).await
    }

    /// A cluster of its own behind a network link the test may cut ([`Self::cut_link`]); needs
    /// root and iproute2.
    pub async fn start_behind_link() -> Result<Self> {
        Self::start_on(true).await
    }

    async fn start_on(behind_link: bool) -> Result<Self> {
        let cluster = tokio::task::spawn_blocking(move || Cluster::create(behind_link)).await??;
        let dsn = format!("postgres://postgres@{}:{}/postgres", cluster.listen_address(), cluster.port);
        Ok(Self { dsn, cluster: Some(cluster) })
    }

    /// Cuts the link to a cluster started with [`Self::start_behind_link`]: the cluster's side
    /// drops every packet for this side, so that connections, old and new, are never answered
    /// or acknowledged, and neither side is told, as across a network partition.
    pub async fn cut_link(&self) -> Result<()> {
        self.link()?.route("add").await
    }

    /// Undoes [`Self::cut_link`].
    pub async fn restore_link(&self) -> Result<()> {
        self.link()?.route("del").await
    }

    fn link(&self) -> Result<&Link> {
        self.cluster.as_ref().and_then(|cluster| cluster.link.as_ref()).context("the cluster is not behind a link")
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

    /// The process id of the cluster's server (the postmaster, whose children are its backends),
    /// when this fixture started it: for what PostgreSQL spends under a load
    /// ([`crate::process_and_children_cpu_us`]).
    pub fn server_pid(&self) -> Option<u32> {
        let cluster = self.cluster.as_ref()?;
        let pid_file = std::fs::read_to_string(cluster.dir.path().join("data/postmaster.pid")).ok()?;
        pid_file.lines().next()?.trim().parse().ok()
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

impl Link {
    /// A new namespace and veth pair, on the first free number: namespaces are machine-wide, and
    /// tests run in parallel processes.
    fn create() -> Result<Self> {
        for number in 0..=255u32 {
            let namespace = format!("itpg{number}");
            let added = ip(&["netns", "add", &namespace])?;
            if !added.status.success() {
                let why = String::from_utf8_lossy(&added.stderr);
                if why.contains("exists") {
                    continue; // another test's (or a crashed run's): the next number
                }
                bail!("ip netns add {namespace} failed (a cluster behind a link needs root): {why}");
            }
            let link = Self { namespace, ours: format!("198.18.{number}.1"), theirs: format!("198.18.{number}.2") };
            let (host_end, cluster_end) = (format!("itpg{number}h"), format!("itpg{number}c"));
            let (ours, theirs) = (format!("{}/30", link.ours), format!("{}/30", link.theirs));
            let ns = link.namespace.as_str();
            for args in [
                &["link", "add", &host_end, "type", "veth", "peer", "name", &cluster_end][..],
                &["link", "set", &cluster_end, "netns", ns],
                &["addr", "add", &ours, "dev", &host_end],
                &["link", "set", &host_end, "up"],
                &["-n", ns, "addr", "add", &theirs, "dev", &cluster_end],
                &["-n", ns, "link", "set", &cluster_end, "up"],
                &["-n", ns, "link", "set", "lo", "up"],
            ] {
                let output = ip(args)?;
                ensure_success("ip", &output).with_context(|| format!("ip {}", args.join(" ")))?;
            }
            return Ok(link);
        }
        bail!("no free network namespace itpg0-255")
    }

    /// Adds or deletes, on the cluster's side, the route that drops every packet for this side.
    async fn route(&self, action: &str) -> Result<()> {
        let ours = format!("{}/32", self.ours);
        let args = ["-n", &self.namespace, "route", action, "blackhole", &ours];
        let output = tokio::process::Command::new(ip_program()).args(args).output().await.context("running ip")?;
        ensure_success("ip", &output).with_context(|| format!("ip {}", args.join(" ")))
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Takes the veth pair with it.
        let _ = ip(&["netns", "del", &self.namespace]);
    }
}

fn ip(args: &[&str]) -> Result<std::process::Output> {
    Command::new(ip_program()).args(args).stdin(Stdio::null()).output().context("running ip (iproute2)")
}

/// iproute2's `ip`: root's PATH has it, another's may lack /usr/sbin.
fn ip_program() -> &'static str {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .unwrap_or("ip")
}

impl Cluster {
    fn create(behind_link: bool) -> Result<Self> {
        let bin = server_bin_dir()?;
        let as_root = std::fs::metadata("/proc/self")?.uid() == 0;
        let dir = tempfile::Builder::new().prefix("spin-test-pg-").tempdir()?;
        if as_root {
            chown_to_server_user(dir.path())?;
        }
        let port = crate::free_port()?;
        let link = if behind_link { Some(Link::create()?) } else { None };
        let watchdog = spawn_watchdog(dir.path(), &bin, as_root, link.as_ref().map(|link| link.namespace.as_str()))?;
        let cluster = Self { dir, port, bin, as_root, link, watchdog };
        cluster
            .run("initdb", &["-D", &cluster.data_dir(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])?;
        if let Some(link) = &cluster.link {
            // initdb trusts loopback only; the link is as private.
            let hba = cluster.dir.path().join("data/pg_hba.conf");
            let mut rules = std::fs::read_to_string(&hba)?;
            rules.push_str(&format!("host all all {}/32 trust\n", link.ours));
            std::fs::write(&hba, rules)?;
        }
        let started = cluster.run("pg_ctl", &cluster.start_args().iter().map(String::as_str).collect::<Vec<_>>());
        started.with_context(|| {
            let log = std::fs::read_to_string(cluster.dir.path().join("server.log")).unwrap_or_default();
            format!("the server's log:\n{log}")
        })?;
        Ok(cluster)
    }

    /// Where the server listens: loopback, or its end of the link.
    fn listen_address(&self) -> &str {
        self.link.as_ref().map_or("127.0.0.1", |link| &link.theirs)
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn start_args(&self) -> Vec<String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses={} -c fsync=off -c max_connections=1000",
            self.port,
            self.dir.path().display(),
            self.listen_address()
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
        let mut words: Vec<std::ffi::OsString> = Vec::new();
        if let Some(link) = &self.link {
            words.extend([ip_program(), "netns", "exec", &link.namespace].map(Into::into));
        }
        if self.as_root {
            words.extend(["runuser", "-u", SERVER_USER, "--"].map(Into::into));
        }
        words.push(program.into());
        let mut command = Command::new(&words[0]);
        command.args(&words[1..]).args(args).stdin(Stdio::null());
        command
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data_dir = self.data_dir();
        let _ = self.run("pg_ctl", &["-D", &data_dir, "-m", "immediate", "-w", "stop"]);
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
        // The link (a field) goes after the server that ran in it.
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

/// Stops the cluster and removes its directory (and network namespace) once this process is
/// gone, however it ended.
fn spawn_watchdog(dir: &Path, bin: &Path, as_root: bool, namespace: Option<&str>) -> Result<Child> {
    let pg_ctl = bin.join("pg_ctl");
    let data = dir.join("data");
    let stop = if as_root {
        format!("runuser -u {SERVER_USER} -- {} -D {} -m immediate stop", pg_ctl.display(), data.display())
    } else {
        format!("{} -D {} -m immediate stop", pg_ctl.display(), data.display())
    };
    let unlink =
        namespace.map(|namespace| format!("; {} netns del {namespace} 2>/dev/null", ip_program())).unwrap_or_default();
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'{unlink}",
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
