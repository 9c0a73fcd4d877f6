//! Load from separate processes on the same machine: wrk for HTTP (with the server's resident
//! memory sampled meanwhile), pgbench for the database floor. Both outputs are parsed into the
//! same figures.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use crate::Route;

/// What one load run measured.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub requests_per_second: f64,
    pub p99_ms: Option<f64>,
    pub mean_ms: Option<f64>,
    pub requests: u64,
    /// Responses other than 2xx/3xx (wrk); failed transactions (pgbench).
    pub non_2xx: u64,
    /// Connect, read and write errors and timeouts (wrk).
    pub socket_errors: u64,
}

impl Figures {
    pub fn errors(&self) -> u64 {
        self.non_2xx + self.socket_errors
    }
}

/// A wrk run, the server's largest resident memory seen during it, and the CPU time the server
/// and PostgreSQL spent on it.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub figures: Figures,
    pub peak_rss_bytes: u64,
    /// The server's processes (Spin, or uvicorn), in microseconds per request.
    pub server_cpu_us: Option<f64>,
    /// The PostgreSQL cluster's server and backends, in microseconds per request.
    pub database_cpu_us: Option<f64>,
}

/// The wrk Lua scripts for the routes: one file each, kept for the whole run.
pub struct Scripts {
    dir: tempfile::TempDir,
}

impl Scripts {
    pub fn write() -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("bench-wrk-").tempdir()?;
        for route in crate::ROUTES {
            std::fs::write(dir.path().join(format!("{}.lua", route.slug())), route.lua())?;
        }
        Ok(Self { dir })
    }

    fn of(&self, route: &Route) -> PathBuf {
        self.dir.path().join(format!("{}.lua", route.slug()))
    }
}

/// wrk on `route` of the server at `base_url`, while the resident memory of the process group
/// `group` (the server's processes) is sampled; the CPU time of `group` and of `database` (the
/// PostgreSQL cluster's server, with its backends) is read before and after.
pub fn wrk(
    base_url: &str,
    group: u32,
    database: u32,
    route: &Route,
    scripts: &Scripts,
    connections: u32,
    duration: Duration,
) -> Result<Measured> {
    let peak = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, running) = (peak.clone(), running.clone());
        std::thread::spawn(move || {
            while running.load(Ordering::Relaxed) {
                peak.fetch_max(test_support::process_group_resident_bytes(group), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    let cpu_before = (test_support::process_group_cpu_us(group), test_support::process_and_children_cpu_us(database));
    let output = Command::new("wrk")
        // Two threads at most: the machine has two cores and the server needs them too.
        .arg(format!("-t{}", connections.min(2)))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs()))
        .args(["--latency", "--timeout", "10s", "-s"])
        .arg(scripts.of(route))
        .arg(format!("{base_url}{}", route.path))
        .output()
        .context("running wrk");
    let cpu_after = (test_support::process_group_cpu_us(group), test_support::process_and_children_cpu_us(database));
    running.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    let output = output?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&output.stderr));
    }
    let figures = parse_wrk(&text)?;
    Ok(Measured {
        server_cpu_us: per_request(&figures, cpu_before.0, cpu_after.0),
        database_cpu_us: per_request(&figures, cpu_before.1, cpu_after.1),
        figures,
        peak_rss_bytes: peak.load(Ordering::Relaxed),
    })
}

/// `program`, from the Debian package `package`: when it is missing and this runs as root (as on
/// the project's machines), the package is installed, else the run stops saying what to install.
pub fn ensure_installed(program: &str, package: &str) -> Result<()> {
    if on_path(program) {
        return Ok(());
    }
    let as_root = std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status.lines().any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(1) == Some("0"))
    });
    if !as_root || !on_path("apt-get") {
        bail!("{program} is not installed: install the Debian package `{package}` (apt-get install {package})");
    }
    eprintln!("{program} is missing: apt-get install {package}");
    let install = || Command::new("apt-get").args(["install", "-y", "-q", package]).status().is_ok_and(|s| s.success());
    if !install() {
        let _ = Command::new("apt-get").args(["update", "-q"]).status();
        if !install() {
            bail!("{program} is not installed and `apt-get install {package}` failed: install the Debian package `{package}`");
        }
    }
    Ok(())
}

pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn parse_wrk(text: &str) -> Result<Figures> {
    let mut figures = Figures::default();
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", rate] => figures.requests_per_second = rate.parse()?,
            ["99%", value] => figures.p99_ms = Some(milliseconds(value)?),
            ["Latency", mean, ..] if mean.starts_with(|c: char| c.is_ascii_digit()) => {
                figures.mean_ms = Some(milliseconds(mean)?)
            }
            [count, "requests", "in", ..] => figures.requests = count.parse()?,
            ["Non-2xx", "or", "3xx", "responses:", count] => figures.non_2xx = count.parse()?,
            ["Socket", "errors:", rest @ ..] => {
                // "connect 0, read 0, write 0, timeout 0"
                figures.socket_errors =
                    rest.iter().filter_map(|word| word.trim_end_matches(',').parse::<u64>().ok()).sum();
            }
            _ => {}
        }
    }
    if figures.requests == 0 {
        bail!("wrk reported no requests:\n{text}");
    }
    Ok(figures)
}

fn milliseconds(value: &str) -> Result<f64> {
    let (number, unit) = value.split_at(value.find(|c: char| c.is_alphabetic()).context("a unit")?);
    let number: f64 = number.parse()?;
    Ok(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        other => bail!("unknown unit {other}"),
    })
}

/// pgbench running `route`'s statement, extended protocol (parse, bind, execute, as Spin's
/// client does), `clients` connections. The values are pgbench variables (`-D`), which the
/// extended protocol binds as parameters, as the store binds them; a NULL is written inline.
/// pgbench sending `route`'s statement to `dsn`, and the CPU time PostgreSQL (`database`: its
/// server, with its backends) spent per transaction.
pub fn pgbench(dsn: &str, database: u32, route: &Route, clients: u32, duration: Duration) -> Result<Measured> {
    let (mut sql, values) = (route.statement)();
    let mut command = Command::new("pgbench");
    // From the highest number down, so that `$1` does not eat the start of `$10`.
    for (index, value) in values.iter().enumerate().rev() {
        let placeholder = format!("${}", index + 1);
        match value {
            Some(value) => {
                sql = sql.replace(&placeholder, &format!(":p{}", index + 1));
                command.arg("-D").arg(format!("p{}={value}", index + 1));
            }
            None => sql = sql.replace(&placeholder, "NULL"),
        }
    }
    let mut script = tempfile::Builder::new().suffix(".sql").tempfile()?;
    std::io::Write::write_all(&mut script, format!("{sql};\n").as_bytes())?;
    let cpu_before = test_support::process_and_children_cpu_us(database);
    let output = command
        .args(["--no-vacuum", "--protocol=extended"])
        .arg(format!("--client={clients}"))
        .arg(format!("--jobs={}", clients.min(2)))
        .arg(format!("--time={}", duration.as_secs()))
        .arg("--file")
        .arg(script.path())
        .arg(dsn)
        .output()
        .context("running pgbench (it comes with the PostgreSQL client, e.g. postgresql-client-15)")?;
    let cpu_after = test_support::process_and_children_cpu_us(database);
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("pgbench failed: {text}{}", String::from_utf8_lossy(&output.stderr));
    }
    let figures = parse_pgbench(&text)?;
    Ok(Measured { database_cpu_us: per_request(&figures, cpu_before, cpu_after), figures, ..Default::default() })
}

/// CPU microseconds per request, from two readings around a run.
fn per_request(figures: &Figures, before: u64, after: u64) -> Option<f64> {
    (figures.requests > 0).then(|| after.saturating_sub(before) as f64 / figures.requests as f64)
}

fn parse_pgbench(text: &str) -> Result<Figures> {
    let mut figures = Figures::default();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("tps = ") {
            figures.requests_per_second = rest.split_whitespace().next().context("tps")?.parse()?;
        } else if let Some(rest) = line.strip_prefix("latency average = ") {
            figures.mean_ms = Some(rest.split_whitespace().next().context("latency")?.parse()?);
        } else if let Some(rest) = line.strip_prefix("number of transactions actually processed: ") {
            figures.requests = rest.split(|c: char| !c.is_ascii_digit()).next().context("count")?.parse()?;
        } else if let Some(rest) = line.strip_prefix("number of failed transactions: ") {
            figures.non_2xx = rest.split_whitespace().next().context("failures")?.parse()?;
        }
    }
    if figures.requests == 0 {
        bail!("pgbench processed nothing:\n{text}");
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let text = "Running 5s test @ http://127.0.0.1:1/x\n  2 threads and 16 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency     2.10ms    1.00ms  20.00ms   90.00%\n    Req/Sec   811.64     31.15     0.87k    69.05%\n  Latency Distribution\n     50%    1.90ms\n     75%    2.40ms\n     90%    3.00ms\n     99%   12.50ms\n  12000 requests in 5.00s, 1.2MB read\n  Socket errors: connect 0, read 1, write 0, timeout 2\n  Non-2xx or 3xx responses: 4\nRequests/sec:   2400.50\nTransfer/sec:    240KB\n";
        let figures = parse_wrk(text).unwrap();
        assert_eq!(figures.requests, 12000);
        assert_eq!((figures.non_2xx, figures.socket_errors), (4, 3));
        assert_eq!(figures.p99_ms, Some(12.5));
        assert_eq!(figures.mean_ms, Some(2.1));
        assert_eq!(figures.requests_per_second, 2400.5);
        assert_eq!(milliseconds("850.00us").unwrap(), 0.85);
    }

    #[test]
    fn pgbench_output_is_read() {
        let text = "number of transactions actually processed: 300000\nnumber of failed transactions: 0 (0.000%)\nlatency average = 0.053 ms\ntps = 60000.123456 (without initial connection time)\n";
        let figures = parse_pgbench(text).unwrap();
        assert_eq!((figures.requests, figures.errors()), (300000, 0));
        assert_eq!(figures.mean_ms, Some(0.053));
        assert_eq!(figures.requests_per_second, 60000.123456);
    }
}
