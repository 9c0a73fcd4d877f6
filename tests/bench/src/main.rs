//! The benchmark (not part of the test run): the built components under the test host in a
//! child process, loaded by wrk from another, on a throwaway PostgreSQL and on SQLite, with
//! the same SQL driven straight at PostgreSQL by pgbench as the floor. Writes a Markdown
//! report (default `tests/bench/results.md`).
//!
//! Usage: cargo run -p bench --release -- [--seconds N] [--out FILE] [--only postgres|sqlite]

mod load;
mod report;
mod service;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use spin_test_host::PostgresFixture;

use load::Figures;
use report::{Instantiation, Report, Row};
use service::{Backend, ServiceProcess};

pub const CONCURRENCY: [u32; 3] = [1, 16, 64];
pub const LIST_SIZES: [usize; 3] = [2, 100, 1000];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("serve") {
        return service::serve_child(args.collect()).await;
    }
    let mut seconds = 5;
    let mut backends = vec![Backend::Postgres, Backend::Sqlite];
    let mut out = workspace_root().join("tests/bench/results.md");
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--seconds" => seconds = args.next().context("--seconds N")?.parse()?,
            "--out" => out = args.next().context("--out FILE")?.into(),
            "--only" => {
                backends = match args.next().as_deref() {
                    Some("postgres") => vec![Backend::Postgres],
                    Some("sqlite") => vec![Backend::Sqlite],
                    _ => anyhow::bail!("--only postgres|sqlite"),
                }
            }
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let duration = Duration::from_secs(seconds);
    let mut report = Report::new(duration);

    eprintln!("== instantiation cost and sizes");
    report.instantiation = instantiation().await?;

    let postgres = PostgresFixture::start().await?;
    for backend in backends {
        eprintln!("== {backend:?}");
        let service = ServiceProcess::start(backend, &postgres).await?;
        service.warm_up().await?;
        if backend == Backend::Postgres {
            let (figures, _) = service.load("/health", None, 16, duration)?;
            report.rows.push(Row::new("health (no database)", backend.name(), 16, figures, None));
        }
        for (endpoint, path) in [("list", "/admin/integrations"), ("get", "/admin/integrations/facebook")] {
            for concurrency in CONCURRENCY {
                let (figures, rss) = service.load(path, None, concurrency, duration)?;
                report.rows.push(Row::new(endpoint, backend.name(), concurrency, figures, Some(rss)));
            }
        }
        let put_script = service::put_script()?;
        for concurrency in CONCURRENCY {
            let (figures, rss) =
                service.load("/admin/integrations/facebook", Some(put_script.path()), concurrency, duration)?;
            report.rows.push(Row::new("put", backend.name(), concurrency, figures, Some(rss)));
        }
        if backend == Backend::Postgres {
            report.floor = floor(service.dsn().context("a DSN")?, duration)?;
        }
        for size in LIST_SIZES.into_iter().skip(1) {
            service.grow_to(size).await?;
            let (figures, rss) = service.load("/admin/integrations", None, 16, duration)?;
            report.growth.push(Row::new(&format!("list, {size} rows"), backend.name(), 16, figures, Some(rss)));
        }
        report.peak_rss_kib.push((backend.name(), service.peak_rss_kib()?));
    }
    drop(postgres);

    let markdown = report.render();
    std::fs::write(&out, &markdown).with_context(|| format!("writing {}", out.display()))?;
    println!("{markdown}");
    eprintln!("written to {}", out.display());
    Ok(())
}

/// Store and instance creation per component, as each request pays it.
async fn instantiation() -> Result<Vec<Instantiation>> {
    let manifest = workspace_root().join("spin.toml");
    let app = spin_test_host::TestApp::start(spin_test_host::TestAppOptions {
        manifest: manifest.clone(),
        ..Default::default()
    })
    .await?;
    let parsed = spin_test_host::manifest::AppManifest::load(&manifest)?;
    let mut rows = Vec::new();
    for (id, component) in &parsed.components {
        app.measure_instantiation(id, 50).await?; // warm-up
        let mut samples = app.measure_instantiation(id, 500).await?;
        samples.sort();
        let size = std::fs::metadata(&component.source)?.len();
        rows.push(Instantiation {
            component: id.clone(),
            size_bytes: size,
            p50: samples[samples.len() / 2],
            p99: samples[samples.len() * 99 / 100],
        });
    }
    Ok(rows)
}

/// The service's SQL, straight at PostgreSQL: what a request could cost at best.
fn floor(dsn: &str, duration: Duration) -> Result<Vec<(String, u32, Figures)>> {
    let scripts = [
        ("list", integrations_core::store::postgres_statements::list()),
        ("get", integrations_core::store::postgres_statements::get().replace("$1", "'facebook'")),
        ("put", put_statement()),
    ];
    let mut rows = Vec::new();
    for (name, sql) in scripts {
        let mut file = tempfile::NamedTempFile::new()?;
        std::io::Write::write_all(&mut file, format!("{sql};\n").as_bytes())?;
        for concurrency in CONCURRENCY {
            rows.push((name.to_string(), concurrency, load::pgbench(dsn, file.path(), concurrency, duration)?));
        }
    }
    Ok(rows)
}

/// The PUT's statement with the bench's body (`{"status": true}`) inlined.
fn put_statement() -> String {
    integrations_core::store::postgres_statements::update()
        .replace("$1::text", "'facebook'::text")
        .replace("$2::text", "NULL::text")
        .replace("$3::text", "NULL::text")
        .replace("$4::boolean", "true::boolean")
        .replace("$5::text", "NULL::text")
        .replace("$6::int8[]", "NULL::int8[]")
}
