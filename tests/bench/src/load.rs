//! Load from a separate process: wrk for HTTP, pgbench for the floor. Both outputs are parsed
//! into the same figures.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

/// What one load run measured.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub requests_per_second: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub mean_ms: Option<f64>,
    pub requests: u64,
    /// Non-2xx/3xx responses, socket errors and timeouts (wrk), failed transactions (pgbench).
    pub errors: u64,
}

/// `wrk` at `connections` concurrent connections; `script` is an optional Lua file.
pub fn wrk(url: &str, connections: u32, duration: Duration, script: Option<&Path>) -> Result<Figures> {
    let mut command = Command::new("wrk");
    command
        .arg(format!("-t{}", connections.min(2)))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs()))
        .args(["--latency", "--timeout", "10s"]);
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let output = command.arg(url).output().context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&output.stderr));
    }
    parse_wrk(&text)
}

fn parse_wrk(text: &str) -> Result<Figures> {
    let mut figures = Figures::default();
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", rate] => figures.requests_per_second = rate.parse()?,
            ["50%", value] => figures.p50_ms = Some(milliseconds(value)?),
            ["99%", value] => figures.p99_ms = Some(milliseconds(value)?),
            ["Latency", mean, ..] if mean.starts_with(|c: char| c.is_ascii_digit()) => {
                figures.mean_ms = Some(milliseconds(mean)?)
            }
            [count, "requests", "in", ..] => figures.requests = count.parse()?,
            ["Non-2xx", "or", "3xx", "responses:", count] => figures.errors += count.parse::<u64>()?,
            ["Socket", "errors:", rest @ ..] => {
                // "connect 0, read 0, write 0, timeout 0"
                for number in rest.iter().filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok()) {
                    figures.errors += number;
                }
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

/// pgbench with one custom script, extended protocol (parse, bind, execute per statement,
/// as the host's client does), `clients` connections.
pub fn pgbench(dsn: &str, script: &Path, clients: u32, duration: Duration) -> Result<Figures> {
    let output = Command::new("pgbench")
        .args(["--no-vacuum", "--protocol=extended"])
        .arg(format!("--client={clients}"))
        .arg(format!("--jobs={}", clients.min(2)))
        .arg(format!("--time={}", duration.as_secs()))
        .arg("--file")
        .arg(script)
        .arg(dsn)
        .output()
        .context("running pgbench")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("pgbench failed: {text}{}", String::from_utf8_lossy(&output.stderr));
    }
    parse_pgbench(&text)
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
            figures.errors = rest.split_whitespace().next().context("failures")?.parse()?;
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
        assert_eq!(figures.errors, 7);
        assert_eq!((figures.p50_ms, figures.p99_ms), (Some(1.9), Some(12.5)));
        assert_eq!(figures.requests_per_second, 2400.5);
        assert_eq!(milliseconds("850.00us").unwrap(), 0.85);
    }

    #[test]
    fn pgbench_output_is_read() {
        let text = "number of transactions actually processed: 300000\nnumber of failed transactions: 0 (0.000%)\nlatency average = 0.053 ms\ntps = 60000.123456 (without initial connection time)\n";
        let figures = parse_pgbench(text).unwrap();
        assert_eq!((figures.requests, figures.errors), (300000, 0));
        assert_eq!(figures.mean_ms, Some(0.053));
        assert_eq!(figures.requests_per_second, 60000.123456);
    }
}
