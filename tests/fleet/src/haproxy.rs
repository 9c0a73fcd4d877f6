//! A real HAProxy (Debian's `haproxy` package) in front of the replicas, the way an Ingress sits
//! in front of a Service: one frontend on a free port of 127.0.0.1, one backend with a fixed
//! number of server slots, driven through its runtime API (the admin stats socket).
//!
//! What it is configured to do, and why:
//! - **Readiness checks** on `/readiness` every 250 ms, over HTTP/1.1 with a Host header: Spin
//!   drops HAProxy's default check (HTTP/1.0, no Host) without answering. One good check puts a
//!   server in rotation, two failed ones take it out (as the SpinApp's probes, faster).
//! - **Retries**: a request is retried, on another server (`option redispatch 1`), when the
//!   connection failed (nothing was sent: always safe) or, for idempotent methods only (GET,
//!   HEAD, OPTIONS, PUT), when the server closed the connection without answering (a replica
//!   killed mid-request). A PUT here is idempotent: replayed, it writes the same fields again,
//!   and one sent with `If-Match` gets 412 if its first attempt did commit. POSTs (restore,
//!   re-seal) are never replayed.
//! - **Draining** a server (`set server ... state drain`) takes it out of rotation while the
//!   requests it holds finish; [`HaProxy::drain`] waits until it holds none.
//! - Every response says which server answered (`X-Served-By: <slot>/<port>`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const BACKEND: &str = "app";

pub struct HaProxy {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    slots: usize,
}

/// A server slot's line of `show stat`.
#[derive(Debug, Clone, Default)]
pub struct ServerStat {
    pub name: String,
    /// `UP`, `DOWN`, `MAINT`, `DRAIN`, `no check`, ...
    pub status: String,
    /// Requests it holds now, and queued for it.
    pub current: u64,
    pub queued: u64,
    /// Sessions it served in all.
    pub total: u64,
    /// Retries and redispatches HAProxy made away from it.
    pub retries: u64,
    pub redispatches: u64,
    /// Connection errors and response errors seen on it.
    pub connection_errors: u64,
    pub response_errors: u64,
}

impl HaProxy {
    /// Starts HAProxy with `slots` server slots (`s0`, `s1`, ...), all in maintenance until
    /// [`Self::enable`] points one at a replica.
    pub async fn start(slots: usize) -> Result<Self> {
        let binary = crate::binary("haproxy", "haproxy")?;
        let dir = tempfile::Builder::new().prefix("fleet-haproxy-").tempdir()?;
        let port = test_support::free_port()?;
        let socket = dir.path().join("admin.sock");
        let servers: String =
            (0..slots).map(|slot| format!("    server s{slot} 127.0.0.1:1 disabled\n")).collect::<Vec<_>>().concat();
        let config = format!(
            "global
    stats socket {socket} mode 600 level admin
    log stdout format raw local0 info

defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 30s
    timeout server 15s
    timeout http-keep-alive 15s
    timeout check 2s
    retries 3
    option redispatch 1

frontend fleet
    bind 127.0.0.1:{port}
    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readiness ver HTTP/1.1 hdr Host fleet.test
    http-check expect status 200
    retry-on conn-failure empty-response
    acl idempotent method GET HEAD OPTIONS PUT
    http-request disable-l7-retry unless idempotent
    http-response set-header X-Served-By %s/%sp
    default-server check inter 250ms fastinter 100ms downinter 250ms rise 1 fall 2
{servers}",
            socket = socket.display()
        );
        let config_path = dir.path().join("haproxy.cfg");
        std::fs::write(&config_path, config)?;
        let check = Command::new(&binary).arg("-c").arg("-q").arg("-f").arg(&config_path).output()?;
        if !check.status.success() {
            bail!("haproxy -c refuses the fleet's configuration: {}", String::from_utf8_lossy(&check.stderr));
        }
        let log = std::fs::File::create(dir.path().join("haproxy.log"))?;
        let child = Command::new(&binary)
            .arg("-db")
            .arg("-f")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let haproxy = Self { child, dir, port, slots };
        let started = Instant::now();
        while haproxy.command("show info").await.is_err()
            || tokio::net::TcpStream::connect(haproxy.address()).await.is_err()
        {
            if started.elapsed() > Duration::from_secs(20) {
                bail!("haproxy did not start within 20 s:\n{}", haproxy.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(haproxy)
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The frontend's base URL, as clients reach the fleet.
    pub fn url(&self) -> String {
        format!("http://{}", self.address())
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    /// What HAProxy logged (one line per request, and every server state change).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("admin.sock")
    }

    /// One runtime API command; its answer.
    pub async fn command(&self, command: &str) -> Result<String> {
        let mut stream = tokio::net::UnixStream::connect(self.socket()).await?;
        stream.write_all(format!("{command}\n").as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok(answer)
    }

    /// A command whose answer must be empty (HAProxy answers errors in words).
    async fn set(&self, command: &str) -> Result<()> {
        let answer = self.command(command).await?;
        let answer = answer.trim();
        // `set server ... addr` acknowledges in words; everything else answers nothing.
        if !(answer.is_empty() || answer.starts_with("IP changed") || answer.starts_with("no need to change")) {
            bail!("haproxy: `{command}`: {answer}");
        }
        Ok(())
    }

    /// Points slot `slot` at a replica on `port` and puts it in rotation: it takes requests once
    /// its readiness check passes (see [`Self::wait_until_up`]).
    pub async fn enable(&self, slot: usize, port: u16) -> Result<()> {
        self.set(&format!("set server {BACKEND}/s{slot} addr 127.0.0.1 port {port}")).await?;
        self.set(&format!("set server {BACKEND}/s{slot} state ready")).await
    }

    /// Waits until slot `slot` is UP (its readiness check passed); how long that took.
    pub async fn wait_until_up(&self, slot: usize, limit: Duration) -> Result<Duration> {
        let started = Instant::now();
        loop {
            let stat = self.stat(slot).await?;
            if stat.status == "UP" {
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                bail!("haproxy: s{slot} is not UP after {limit:?}: {stat:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Takes slot `slot` out of rotation and waits until the requests it holds (and any queued
    /// for it) have finished: the load balancer's half of a graceful drain. How long they took.
    pub async fn drain(&self, slot: usize, limit: Duration) -> Result<Duration> {
        self.set(&format!("set server {BACKEND}/s{slot} state drain")).await?;
        let started = Instant::now();
        loop {
            let stat = self.stat(slot).await?;
            if stat.current == 0 && stat.queued == 0 {
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                bail!("haproxy: s{slot} still holds requests {limit:?} after the drain began: {stat:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Puts slot `slot` in maintenance: no traffic, no checks (its replica is gone).
    pub async fn disable(&self, slot: usize) -> Result<()> {
        self.set(&format!("set server {BACKEND}/s{slot} state maint")).await
    }

    /// `show stat` for every server slot, and the backend's own line (name `BACKEND`).
    pub async fn stats(&self) -> Result<Vec<ServerStat>> {
        let csv = self.command("show stat").await?;
        let mut lines = csv.lines();
        let header: Vec<&str> =
            lines.next().context("show stat: no header")?.trim_start_matches("# ").split(',').collect();
        let column = |name: &str| header.iter().position(|h| *h == name).with_context(|| format!("show stat: {name}"));
        let (pxname, svname, status) = (column("pxname")?, column("svname")?, column("status")?);
        let numbers = ["scur", "qcur", "stot", "wretr", "wredis", "econ", "eresp"].map(column);
        let mut stats = Vec::new();
        for line in lines.filter(|line| !line.is_empty()) {
            let fields: Vec<&str> = line.split(',').collect();
            if fields.get(pxname) != Some(&BACKEND) {
                continue;
            }
            let number = |i: usize| -> u64 {
                numbers[i].as_ref().ok().and_then(|c| fields.get(*c)).and_then(|v| v.parse().ok()).unwrap_or(0)
            };
            stats.push(ServerStat {
                name: fields[svname].to_owned(),
                status: fields[status].to_owned(),
                current: number(0),
                queued: number(1),
                total: number(2),
                retries: number(3),
                redispatches: number(4),
                connection_errors: number(5),
                response_errors: number(6),
            });
        }
        Ok(stats)
    }

    pub async fn stat(&self, slot: usize) -> Result<ServerStat> {
        let name = format!("s{slot}");
        self.stats().await?.into_iter().find(|stat| stat.name == name).with_context(|| format!("show stat: no {name}"))
    }

    /// The backend's totals.
    pub async fn backend(&self) -> Result<ServerStat> {
        self.stats().await?.into_iter().find(|stat| stat.name == "BACKEND").context("show stat: no BACKEND line")
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
