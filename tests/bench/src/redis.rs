//! A real `redis-server` (Debian's) for the `app, Redis` column: the key-value store a fleet
//! shares, as `runtime-config.toml` shows how to configure it. On a free port of 127.0.0.1, with
//! no persistence, in a process group of its own, stopped on drop. Each app gets a database
//! number of its own, so that no app reads another's cache.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

pub struct Redis {
    child: Child,
    port: u16,
    /// `redis-server --version`, for the report.
    pub version: String,
    dir: tempfile::TempDir,
}

impl Redis {
    /// Starts it; `Err` says why the Redis column is skipped.
    pub fn start() -> Result<Self> {
        crate::load::ensure_installed("redis-server", "redis-server")?;
        let version = Command::new("redis-server").arg("--version").output().context("redis-server --version")?;
        let version = String::from_utf8_lossy(&version.stdout).split(" sha=").next().unwrap_or("").trim().to_owned();
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = tempfile::Builder::new().prefix("bench-redis-").tempdir()?;
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--databases", "64", "--dir"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().context("starting redis-server")?;
        let mut redis = Self { child, port, version, dir };
        redis.wait_until_serving()?;
        Ok(redis)
    }

    fn wait_until_serving(&mut self) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("redis-server exited before serving ({status})");
            }
            if self.ping().is_ok() {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("redis-server did not answer PING within 10 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ping(&self) -> Result<()> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        stream.write_all(b"PING\r\n")?;
        let mut answer = [0u8; 7];
        stream.read_exact(&mut answer)?;
        if &answer != b"+PONG\r\n" {
            bail!("redis-server answered {:?}", String::from_utf8_lossy(&answer));
        }
        Ok(())
    }

    /// A runtime config whose `default` key-value store is this server's database `database`.
    pub fn runtime_config(&self, database: u32) -> Result<PathBuf> {
        let path = self.dir.path().join(format!("runtime-config-{database}.toml"));
        std::fs::write(
            &path,
            format!(
                "# The bench's shared key-value store, as runtime-config.toml describes it.\n\
                 [key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:{}/{database}\"\n",
                self.port
            ),
        )?;
        Ok(path)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let group = self.child.id() as i32;
        // SAFETY: killpg(2) on the group this struct created (process_group(0) above).
        unsafe { libc::killpg(group, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
