//! The service under load: the test host in a child process of its own (so that its memory is
//! its own), on a fresh PostgreSQL database or SQLite state directory.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use spin_test_host::{PostgresFixture, TestApp, TestAppOptions};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::load::{self, Figures};

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

pub struct ServiceProcess {
    child: tokio::process::Child,
    base_url: String,
    dsn: Option<String>,
    state_dir: tempfile::TempDir,
}

impl ServiceProcess {
    pub async fn start(backend: Backend, postgres: &PostgresFixture) -> Result<Self> {
        let state_dir = tempfile::tempdir()?;
        let mut variables = vec![("log_level".to_string(), "warn".to_string())];
        let dsn = match backend {
            Backend::Postgres => {
                let dsn = fresh_database(&postgres.dsn(), "bench").await?;
                variables.push(("db_dsn".into(), dsn.clone()));
                variables.push(("db_host".into(), postgres.host_port()));
                variables.push(("db_backend".into(), "postgres".into()));
                Some(dsn)
            }
            Backend::Sqlite => None,
        };
        let mut command = tokio::process::Command::new(std::env::current_exe()?);
        command.arg("serve").arg(state_dir.path());
        for (name, value) in &variables {
            command.arg(format!("{name}={value}"));
        }
        let mut child = command
            .env(spin_test_host::SKIP_BUILD_ENV, "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().context("child stdout")?).lines();
        let base_url = lines.next_line().await?.context("the service process printed no address")?;
        // Keep draining: a full pipe would block the child.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, base_url, dsn, state_dir })
    }

    pub fn dsn(&self) -> Option<&str> {
        self.dsn.as_deref()
    }

    /// The first request creates the schema; none of that belongs in a measurement.
    pub async fn warm_up(&self) -> Result<()> {
        for _ in 0..20 {
            let status = reqwest::get(format!("{}/admin/integrations", self.base_url)).await?.status();
            if status != 200 {
                bail!("warm-up GET gave {status}");
            }
        }
        Ok(())
    }

    /// Runs wrk on `path`; also returns the service's largest resident set seen meanwhile (KiB).
    pub fn load(
        &self,
        path: &str,
        script: Option<&Path>,
        concurrency: u32,
        duration: Duration,
    ) -> Result<(Figures, u64)> {
        let pid = self.child.id().context("service process exited")?;
        let peak = Arc::new(AtomicU64::new(0));
        let running = Arc::new(AtomicBool::new(true));
        let sampler = {
            let (peak, running) = (peak.clone(), running.clone());
            std::thread::spawn(move || {
                while running.load(Ordering::Relaxed) {
                    if let Ok(rss) = status_kib(pid, "VmRSS:") {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        eprintln!("   {path} c={concurrency}");
        let figures = load::wrk(&format!("{}{path}", self.base_url), concurrency, duration, script);
        running.store(false, Ordering::Relaxed);
        let _ = sampler.join();
        Ok((figures?, peak.load(Ordering::Relaxed)))
    }

    /// Adds integrations straight into the database until there are `size`.
    pub async fn grow_to(&self, size: usize) -> Result<()> {
        match &self.dsn {
            Some(dsn) => {
                let (client, connection) = tokio_postgres::connect(dsn, tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                client
                    .execute(
                        "INSERT INTO integrations (id, name, description, status, settings)
                         SELECT 'bench_' || g, 'Bench ' || g, 'A benchmark integration', g % 2 = 0,
                                jsonb_build_object('token', md5(g::text), 'n', g)
                         FROM generate_series((SELECT count(*) FROM integrations) - 1, $1::int8 - 2) AS g",
                        &[&(size as i64)],
                    )
                    .await?;
            }
            None => {
                let path = self.state_dir.path().join("sqlite_db.db");
                let size = size as i64;
                tokio::task::spawn_blocking(move || -> Result<()> {
                    let connection = rusqlite::Connection::open(path)?;
                    connection.execute(
                        "WITH RECURSIVE g(n) AS (SELECT (SELECT count(*) FROM integrations) - 1
                                                  UNION ALL SELECT n + 1 FROM g WHERE n < ?1 - 2)
                         INSERT INTO integrations (id, name, description, status, settings, created_at, updated_at)
                         SELECT 'bench_' || n, 'Bench ' || n, 'A benchmark integration', n % 2,
                                json_object('token', hex(randomblob(16)), 'n', n), 0, 0 FROM g",
                        [size],
                    )?;
                    Ok(())
                })
                .await??;
            }
        }
        Ok(())
    }

    /// The service's peak resident set over its whole life (VmHWM), KiB.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        status_kib(self.child.id().context("service process exited")?, "VmHWM:")
    }
}

fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|line| line.starts_with(field)).context("no such field")?;
    Ok(line.split_whitespace().nth(1).context("a value")?.parse()?)
}

async fn fresh_database(admin_dsn: &str, name: &str) -> Result<String> {
    let (client, connection) = tokio_postgres::connect(admin_dsn, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).await?;
    client.batch_execute(&format!("CREATE DATABASE {name}")).await?;
    admin_dsn.rsplit_once('/').map(|(base, _)| format!("{base}/{name}")).context("a DSN with a database")
}

/// wrk's Lua for the PUT the admin UI sends when it toggles an integration.
pub fn put_script() -> Result<tempfile::NamedTempFile> {
    let mut file = tempfile::Builder::new().suffix(".lua").tempfile()?;
    std::io::Write::write_all(
        &mut file,
        br#"wrk.method = "PUT"
wrk.body = '{"status": true}'
wrk.headers["Content-Type"] = "application/json"
"#,
    )?;
    Ok(file)
}

/// `bench serve STATE_DIR name=value...`: the child process, printing its URL first.
pub async fn serve_child(args: Vec<String>) -> Result<()> {
    let (state_dir, variables) = args.split_first().context("serve STATE_DIR name=value...")?;
    let variables = variables
        .iter()
        .map(|pair| pair.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).context("name=value"))
        .collect::<Result<_>>()?;
    let app = TestApp::start(TestAppOptions {
        manifest: crate::workspace_root().join("spin.toml"),
        variables,
        state_dir: Some(state_dir.into()),
        ..Default::default()
    })
    .await?;
    println!("{}", app.base_url());
    app.wait().await
}
