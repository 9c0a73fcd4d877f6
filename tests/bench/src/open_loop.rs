//! Load at a fixed rate, whatever the answers (an open loop, as wrk2 sends it), to compare the
//! latency of two servers at the *same* offered load.
//!
//! wrk keeps each connection busy (a closed loop): a server that answers twice as fast gets twice
//! the requests, and its p99 is then measured at twice the load, on the same two cores that wrk
//! and PostgreSQL share. Here each connection sends on a schedule (`connections / rate` apart,
//! the connections staggered), and a request's latency runs from when it was *due*, not from when
//! it left: a server that falls behind is charged for the requests that queued behind the slow
//! one (no coordinated omission).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};

use crate::load::Figures;
use crate::Route;

/// `route` at `rate` requests per second in all, over `connections` keep-alive connections, for
/// `duration`. GET routes only (the comparison is the cached read's).
pub fn fixed_rate(base_url: &str, route: &Route, connections: u32, rate: f64, duration: Duration) -> Result<Figures> {
    ensure!(route.method == "GET", "the open loop sends GETs only, not {}", route.method);
    ensure!(rate > 0.0 && connections > 0, "a rate and connections");
    let address = base_url.strip_prefix("http://").context("an http:// base URL")?.trim_end_matches('/').to_owned();
    let request = format!("GET {} HTTP/1.1\r\nHost: {address}\r\n\r\n", route.path);
    let interval = Duration::from_secs_f64(f64::from(connections) / rate);
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + duration;
    let workers: Vec<_> = (0..connections)
        .map(|index| {
            let (address, request) = (address.clone(), request.clone());
            let first = start + interval.mul_f64(f64::from(index) / f64::from(connections));
            std::thread::spawn(move || connection(&address, request.as_bytes(), first, interval, end))
        })
        .collect();
    let mut figures = Figures::default();
    let mut latencies_us = Vec::new();
    for worker in workers {
        let done = worker.join().map_err(|_| anyhow::anyhow!("an open-loop connection panicked"))?;
        latencies_us.extend(done.latencies_us);
        figures.non_2xx += done.non_2xx;
        figures.socket_errors += done.socket_errors;
    }
    ensure!(!latencies_us.is_empty(), "no answer at all from {base_url}");
    latencies_us.sort_unstable();
    figures.requests = latencies_us.len() as u64;
    figures.requests_per_second = latencies_us.len() as f64 / duration.as_secs_f64();
    figures.mean_ms = Some(latencies_us.iter().sum::<u64>() as f64 / latencies_us.len() as f64 / 1000.0);
    figures.p99_ms = Some(percentile(&latencies_us, 0.99) as f64 / 1000.0);
    Ok(figures)
}

/// The value below which `share` of the sorted `values` fall (nearest rank).
fn percentile(sorted: &[u64], share: f64) -> u64 {
    let rank = (share * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Default)]
struct Done {
    latencies_us: Vec<u64>,
    non_2xx: u64,
    socket_errors: u64,
}

/// One connection's schedule: a request every `interval` from `first` until `end`.
fn connection(address: &str, request: &[u8], first: Instant, interval: Duration, end: Instant) -> Done {
    let mut done = Done::default();
    let mut stream = None;
    let mut due = first;
    while due < end {
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if stream.is_none() {
            stream = TcpStream::connect(address)
                .and_then(|tcp| {
                    tcp.set_nodelay(true)?;
                    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
                    Ok(BufReader::new(tcp))
                })
                .ok();
        }
        match stream.as_mut().map(|reader| exchange(reader, request)) {
            Some(Ok(status)) => {
                done.latencies_us.push(Instant::now().duration_since(due).as_micros() as u64);
                if !(200..300).contains(&status) {
                    done.non_2xx += 1;
                }
            }
            Some(Err(_)) | None => {
                done.socket_errors += 1;
                stream = None;
            }
        }
        due += interval;
    }
    done
}

/// Sends `request` and reads its whole answer (a `content-length` or chunked body): the status.
fn exchange(reader: &mut BufReader<TcpStream>, request: &[u8]) -> Result<u16> {
    reader.get_mut().write_all(request)?;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line.split_whitespace().nth(1).context("a status line")?.parse()?;
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("the connection closed inside a head");
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').context("a header")?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = Some(value.trim().parse::<usize>()?),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
    }
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)?;
            let mut skip = vec![0; size + 2]; // the chunk and its CRLF
            reader.read_exact(&mut skip)?;
            if size == 0 {
                break;
            }
        }
    } else {
        let mut body = vec![0; length.context("a content-length or a chunked body")?];
        reader.read_exact(&mut body)?;
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_percentile_is_the_nearest_rank() {
        let values: Vec<u64> = (1..=200).collect();
        assert_eq!(percentile(&values, 0.99), 198);
        assert_eq!(percentile(&values, 0.5), 100);
        assert_eq!(percentile(&[7], 0.99), 7);
    }

    /// A server that answers its first request late: the open loop charges the wait to the
    /// requests that were due meanwhile, as an open-loop client sees them.
    #[test]
    fn a_slow_answer_is_charged_to_the_requests_due_behind_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut first = true;
            let mut line = String::new();
            loop {
                // The request's head, up to its blank line.
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                if std::mem::take(&mut first) {
                    std::thread::sleep(Duration::from_millis(300));
                }
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
                if reader.get_mut().write_all(answer).is_err() {
                    return;
                }
            }
        });
        let route = Route { name: "GET item", method: "GET", path: "/x", statement: || (String::new(), Vec::new()) };
        // 100 requests/s on one connection for 1 s: the first waits 300 ms, and the 30 due
        // behind it wait for it too.
        let figures = fixed_rate(&format!("http://{address}"), &route, 1, 100.0, Duration::from_secs(1)).unwrap();
        assert_eq!(figures.errors(), 0);
        assert!((95..=101).contains(&figures.requests), "{}", figures.requests);
        let p99 = figures.p99_ms.unwrap();
        assert!(p99 >= 250.0, "the late answer's queue shows in the p99: {p99} ms");
        assert!(figures.mean_ms.unwrap() > 30.0, "{:?}", figures.mean_ms);
    }
}
