//! A real Redis (Debian's `redis-server`) on a free port of 127.0.0.1, without persistence: the
//! key-value store `default` shared by every replica, as a Valkey/Redis Service is on a cluster.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

pub struct Redis {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Redis {
    pub async fn start() -> Result<Self> {
        let binary = crate::binary("redis-server", "redis-server")?;
        let dir = tempfile::Builder::new().prefix("fleet-redis-").tempdir()?;
        let port = test_support::free_port()?;
        let log = std::fs::File::create(dir.path().join("redis.log"))?;
        let child = Command::new(&binary)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let redis = Self { child, dir, port };
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if started.elapsed() > Duration::from_secs(20) {
                bail!("redis-server did not listen within 20 s: {}", redis.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// A runtime config (`spin up --runtime-config-file`) whose key-value store `default` is this
    /// Redis, as `runtime-config.toml`'s comment shows.
    pub fn runtime_config(&self) -> String {
        format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n", self.url())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
