//! The FastAPI service the app replaces: `../shared/anchors/fastapi_baseline.py` (FastAPI, an
//! asyncpg pool), under uvicorn with one worker, from a virtual environment of the bench's own
//! (`target/bench-venv`). When Python, venv or PyPI are not there, the run goes on without it
//! and the report says that the comparison was skipped, and why.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

/// Checked together: the baseline's `@app.on_event("startup")` (deprecated, but kept by
/// FastAPI) still runs its pool and schema set-up under these. Plain `uvicorn`, as the seed
/// installs it: asyncio's own loop and h11, not uvloop or httptools.
const REQUIREMENTS: [&str; 5] =
    ["fastapi==0.142.2", "starlette==1.10.0", "pydantic==2.14.4", "uvicorn==0.54.0", "asyncpg==0.31.0"];

/// A ready virtual environment and the baseline's script.
pub struct Baseline {
    python: PathBuf,
    anchors: PathBuf,
    /// For the report: Python's version and the pinned packages.
    pub description: String,
}

/// Sets the virtual environment up (once: a stamp file remembers what it holds). `Err` says
/// why the comparison cannot run.
pub fn prepare(root: &Path) -> Result<Baseline, String> {
    let anchors = root.join("../shared/anchors");
    if !anchors.join("fastapi_baseline.py").is_file() {
        return Err(format!("{} has no fastapi_baseline.py", anchors.display()));
    }
    let venv = root.join("target/bench-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv), "python3 -m venv")?;
    }
    let stamp = venv.join("bench-requirements.txt");
    let wanted = REQUIREMENTS.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        eprintln!("installing the FastAPI baseline into {}", venv.display());
        run(
            Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
                .args(REQUIREMENTS),
            "pip install",
        )?;
        std::fs::write(&stamp, &wanted).map_err(|error| error.to_string())?;
    }
    let version = Command::new(&python).arg("--version").output().map_err(|error| error.to_string())?;
    let description =
        format!("{}, {}", String::from_utf8_lossy(&version.stdout).trim(), REQUIREMENTS.join(", ").replace("==", " "));
    Ok(Baseline { python, anchors: anchors.canonicalize().map_err(|error| error.to_string())?, description })
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command.stdin(Stdio::null()).output().map_err(|error| format!("{what}: {error}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        return Err(format!("{what} failed: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" / ")));
    }
    Ok(())
}

/// uvicorn serving the baseline, in a process group of its own (its memory is the group's;
/// stopping it stops any worker it started).
pub struct FastApi {
    child: Child,
    base_url: String,
    log: tempfile::NamedTempFile,
}

impl FastApi {
    pub async fn start(baseline: &Baseline, dsn: &str) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = tempfile::Builder::new().prefix("bench-uvicorn-").suffix(".log").tempfile()?;
        let mut command = Command::new(&baseline.python);
        command
            .args(["-m", "uvicorn", "fastapi_baseline:app", "--app-dir"])
            .arg(&baseline.anchors)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--workers", "1", "--log-level", "warning"])
            .env("DB_DSN", dsn)
            // The anchors directory is read-only.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(log.reopen()?)
            .stderr(log.reopen()?);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().context("starting uvicorn")?;
        let mut fastapi = Self { child, base_url: format!("http://127.0.0.1:{port}"), log };
        fastapi.wait_until_serving().await?;
        Ok(fastapi)
    }

    /// Its startup hook opens the pool and creates the table before uvicorn accepts requests.
    async fn wait_until_serving(&mut self) -> Result<()> {
        let url = format!("{}/admin/integrations/", self.base_url);
        let read = || std::fs::read_to_string(self.log.path()).unwrap_or_default();
        test_support::wait_until_serving(&mut self.child, "uvicorn", &url, Duration::from_secs(60), read).await
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The process group (uvicorn's pid).
    pub fn group(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for FastApi {
    fn drop(&mut self) {
        let group = self.child.id() as i32;
        // SAFETY: killpg(2) on the group this struct created (process_group(0) above).
        unsafe { libc::killpg(group, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above.
        unsafe { libc::killpg(group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn without_the_anchor_the_comparison_is_skipped_with_a_reason() {
        let root = tempfile::tempdir().unwrap();
        let why = super::prepare(&root.path().join("repo")).err().expect("no baseline");
        assert!(why.contains("fastapi_baseline.py"), "{why}");
    }
}
