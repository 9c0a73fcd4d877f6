//! The app under a real `spin up`: the CLI a user runs, started the way a user starts it
//! (`spin up --listen ... --state-dir ...` on the app's `spin.toml`, or `--from` a registry
//! reference), with variables given as `SPIN_VARIABLE_<NAME>`.
//!
//! Which Spin: `SPIN_BIN` (one path, or several separated by `:`), else `spin` on `PATH`.
//! `spin up` runs a child (`spin trigger http`) that owns the port, so the app is started in
//! a process group of its own and stopped by signalling the whole group.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

/// How long a first start may take: Spin compiles every component before it serves (a few
/// seconds each on 2 cores; later starts hit Wasmtime's cache).
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// What `spin up` writes to its stdout and stderr, in the app's own directory.
const OUTPUT: &str = "spin-output.txt";

/// One Spin CLI and the version it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spin {
    pub path: PathBuf,
    /// As `spin --version` prints it, e.g. `3.6.3` or `4.1.0-pre0`.
    pub version: String,
}

impl Spin {
    /// The Spin CLIs the tests run on, in the order given. Panics with what to do when there
    /// is none: every end-to-end test needs one, as running the app does.
    pub fn all() -> &'static [Spin] {
        static ALL: std::sync::OnceLock<Vec<Spin>> = std::sync::OnceLock::new();
        ALL.get_or_init(|| Self::discover().unwrap_or_else(|error| panic!("{error:#}")))
    }

    fn discover() -> Result<Vec<Spin>> {
        let paths: Vec<PathBuf> = match std::env::var("SPIN_BIN") {
            Ok(list) if !list.trim().is_empty() => {
                list.split(':').map(str::trim).filter(|p| !p.is_empty()).map(PathBuf::from).collect()
            }
            _ => vec![PathBuf::from("spin")],
        };
        paths.into_iter().map(|path| Self::at(&path)).collect()
    }

    /// The Spin CLI at `path` (a file name is looked up on `PATH`).
    pub fn at(path: &Path) -> Result<Spin> {
        let output = Command::new(path).arg("--version").output().with_context(|| {
            format!(
                "cannot run `{}`: the end-to-end tests run the app under a real Spin CLI. Install Spin \
                 (https://spinframework.dev/install) or point SPIN_BIN at one or more `spin` binaries",
                path.display()
            )
        })?;
        let text = String::from_utf8_lossy(&output.stdout);
        let version = text.split_whitespace().nth(1).context("`spin --version` printed no version")?.to_owned();
        Ok(Spin { path: path.to_owned(), version })
    }

    /// The major version: 3 (SpinKube's shim) or 4 (today's CLI).
    pub fn major(&self) -> u32 {
        self.version.split('.').next().and_then(|major| major.parse().ok()).unwrap_or(0)
    }
}

impl fmt::Display for Spin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spin {}", self.version)
    }
}

/// What `spin up` serves.
#[derive(Debug, Clone)]
pub enum AppSource {
    /// A `spin.toml` on disk, with its built components.
    Manifest(PathBuf),
    /// An OCI reference pushed with `spin registry push`, pulled from a plain-HTTP registry.
    InsecureRegistry(String),
}

/// How to start the app.
#[derive(Debug, Clone)]
pub struct AppOptions {
    pub source: AppSource,
    /// Spin variables, given to `spin up` as `SPIN_VARIABLE_<NAME>` in its environment.
    pub variables: Vec<(String, String)>,
    /// Other environment for the Spin process (e.g. `RUST_BACKTRACE`).
    pub env: Vec<(String, String)>,
    /// `--runtime-config-file`, if any.
    pub runtime_config: Option<PathBuf>,
    /// `--state-dir` (the SQLite default and the key-value store live there); a fresh one when
    /// `None`. Give one to start the app again on the same state.
    pub state_dir: Option<PathBuf>,
    /// The port on 127.0.0.1 to listen on; a free one when `None`. Give one to start the app
    /// again where a load balancer expects it (as a restarted container keeps its pod's address).
    pub port: Option<u16>,
}

impl AppOptions {
    pub fn manifest(manifest: impl Into<PathBuf>) -> Self {
        Self {
            source: AppSource::Manifest(manifest.into()),
            variables: Vec::new(),
            env: Vec::new(),
            runtime_config: None,
            state_dir: None,
            port: None,
        }
    }

    pub fn variable(mut self, name: &str, value: &str) -> Self {
        self.variables.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// A line a component wrote to its stdout or stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub component: String,
    pub stderr: bool,
    pub line: String,
}

/// A running `spin up`. Dropping it kills the whole process group.
pub struct SpinApp {
    pub spin: Spin,
    base_url: String,
    port: u16,
    child: std::process::Child,
    dir: tempfile::TempDir,
    state_dir: PathBuf,
    stopped: bool,
}

impl SpinApp {
    /// Starts `spin up` on a free port with a fresh state directory (so the SQLite default
    /// starts empty), and waits until it serves.
    pub async fn start(spin: &Spin, options: &AppOptions) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("spin-app-").tempdir()?;
        let state_dir = match &options.state_dir {
            Some(state_dir) => state_dir.clone(),
            None => {
                let state_dir = dir.path().join("state");
                std::fs::create_dir(&state_dir)?;
                state_dir
            }
        };
        let port = match options.port {
            Some(port) => port,
            None => crate::free_port()?,
        };
        let output = std::fs::File::create(dir.path().join(OUTPUT))?;

        let mut command = Command::new(&spin.path);
        command.arg("up").args(["--listen", &format!("127.0.0.1:{port}")]).arg("--state-dir").arg(&state_dir);
        match &options.source {
            AppSource::Manifest(manifest) => {
                command.arg("--from").arg(manifest);
            }
            AppSource::InsecureRegistry(reference) => {
                command.args(["--insecure", "--from", reference]).arg("--cache-dir").arg(dir.path().join("oci-cache"));
            }
        }
        if let Some(file) = &options.runtime_config {
            command.arg("--runtime-config-file").arg(file);
        }
        // Only the variables this test gives: none leak in from the environment running the tests.
        for (name, _) in std::env::vars() {
            if name.starts_with("SPIN_VARIABLE_") {
                command.env_remove(name);
            }
        }
        for (name, value) in &options.variables {
            command.env(format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()), value);
        }
        command.envs(options.env.iter().map(|(name, value)| (name, value)));
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command.stdin(Stdio::null()).stdout(output.try_clone()?).stderr(output);
        let child = command.spawn().with_context(|| format!("starting {}", spin.path.display()))?;

        let base_url = format!("http://127.0.0.1:{port}");
        let mut app = Self { spin: spin.clone(), base_url, port, child, dir, state_dir, stopped: false };
        app.wait_until_serving().await?;
        Ok(app)
    }

    /// Polls Spin's own health endpoint (answered by the trigger, not by a component).
    async fn wait_until_serving(&mut self) -> Result<()> {
        let url = format!("{}/.well-known/spin/health", self.base_url);
        let spin = self.spin.to_string();
        let read = || std::fs::read_to_string(self.dir.path().join(OUTPUT)).unwrap_or_default();
        crate::wait_until_serving(&mut self.child, &spin, &url, START_TIMEOUT, read).await
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `spin up` process (the parent; the trigger runs as its child, in the same group).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every process of the app: `spin up` and the trigger it started.
    pub fn process_ids(&self) -> Vec<u32> {
        process_group_members(self.child.id())
    }

    /// Resident memory of all the app's processes, in bytes (from /proc).
    pub fn resident_bytes(&self) -> u64 {
        process_group_resident_bytes(self.child.id())
    }

    /// What Spin itself printed (not the components: see [`Self::logs`]).
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(OUTPUT)).unwrap_or_default()
    }

    /// Every line the components wrote so far. Spin writes component output to
    /// `STATE_DIR/logs/<component>_{stdout,stderr}.txt`.
    pub fn logs(&self) -> Vec<LogLine> {
        let Ok(entries) = std::fs::read_dir(self.state_dir.join("logs")) else { return Vec::new() };
        let mut lines = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let (component, stderr) = match (name.strip_suffix("_stdout.txt"), name.strip_suffix("_stderr.txt")) {
                (Some(component), _) => (component.to_owned(), false),
                (_, Some(component)) => (component.to_owned(), true),
                _ => continue,
            };
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            lines.extend(text.lines().map(|line| LogLine {
                component: component.clone(),
                stderr,
                line: line.to_owned(),
            }));
        }
        lines
    }

    /// The state directory (`--state-dir`): the SQLite default lives here.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Sends `signal` to the `spin up` process only, as `kill PID` or a container runtime does.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with a pid this struct owns; no memory is involved.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits up to `limit` for `spin up` to exit; `None` if it is still running.
    pub async fn wait_for_exit(&mut self, limit: Duration) -> Result<Option<ExitStatus>> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if started.elapsed() > limit {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the app: SIGTERM to the whole group, then SIGKILL after a grace period.
    pub async fn stop(mut self) -> Result<()> {
        self.signal_group(libc::SIGTERM);
        if self.wait_for_exit(Duration::from_secs(10)).await?.is_none() {
            self.signal_group(libc::SIGKILL);
        }
        let _ = self.child.wait();
        self.stopped = true;
        Ok(())
    }

    /// Kills every process of the app at once (SIGKILL to the whole group, as the kernel's OOM
    /// killer or `kill -9 -PGID` would): nothing is flushed, closed or answered. Returns once
    /// `spin up` is reaped.
    pub async fn kill(mut self) -> Result<()> {
        self.signal_group(libc::SIGKILL);
        let group = self.child.id();
        // The trigger is reaped by init, not by us: wait until no process of the group is left.
        while self.child.try_wait()?.is_none() || !process_group_members(group).is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.stopped = true;
        Ok(())
    }

    fn signal_group(&self, signal: i32) {
        // SAFETY: killpg(2) on the group this struct created (process_group(0) above).
        unsafe { libc::killpg(self.child.id() as i32, signal) };
    }
}

impl Drop for SpinApp {
    fn drop(&mut self) {
        if !self.stopped {
            self.signal_group(libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// Every live process of the process group `group` (from /proc).
fn process_group_members(group: u32) -> Vec<u32> {
    processes_where(Stat::Group, group)
}

/// Every live process whose field `field` of /proc/PID/stat is `value`.
fn processes_where(field: Stat, value: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return vec![] };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| stat_field(*pid, field).is_some_and(|found| found == u64::from(value)))
        .collect()
}

/// Resident memory of every process of the group `group`, in bytes: for any server started
/// in a group of its own (`spin up` and its trigger, or uvicorn and its workers).
pub fn process_group_resident_bytes(group: u32) -> u64 {
    process_group_members(group).into_iter().filter_map(resident_bytes_of).sum()
}

/// CPU time of every process of the group `group`, in microseconds (see [`cpu_us`]).
pub fn process_group_cpu_us(group: u32) -> u64 {
    cpu_us(process_group_members(group))
}

/// CPU time of the process `pid` and of its children, in microseconds (see [`cpu_us`]): for
/// PostgreSQL's postmaster, whose backends each leave its process group for one of their own.
pub fn process_and_children_cpu_us(pid: u32) -> u64 {
    let mut processes = processes_where(Stat::Parent, pid);
    processes.push(pid);
    cpu_us(processes)
}

/// Each live process's user and system time, with that of the children it has waited for (a
/// postmaster's backends that ended): read before and after a load, the difference is what the
/// processes spent on it.
fn cpu_us(processes: Vec<u32>) -> u64 {
    let times = [Stat::UserTime, Stat::SystemTime, Stat::ChildrenUserTime, Stat::ChildrenSystemTime];
    let ticks: u64 = processes.into_iter().flat_map(|pid| times.map(|field| stat_field(pid, field))).flatten().sum();
    ticks.saturating_mul(1_000_000) / clock_ticks_per_second()
}

/// What /proc counts CPU time in.
fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf(3) only reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&ticks| ticks > 0).unwrap_or(100)
}

/// Fields of /proc/PID/stat, by their number in proc(5).
#[derive(Clone, Copy)]
enum Stat {
    Parent = 4,
    Group = 5,
    UserTime = 14,
    SystemTime = 15,
    ChildrenUserTime = 16,
    ChildrenSystemTime = 17,
}

/// Field `field` of /proc/PID/stat, counted after the parenthesised command name (field 2, which
/// may hold spaces).
fn stat_field(pid: u32, field: Stat) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(field as usize - 3)?.parse().ok()
}

fn resident_bytes_of(pid: u32) -> Option<u64> {
    Some(proc_kib(&format!("/proc/{pid}/status"), "VmRSS")? * 1024)
}

/// A `Name:   1234 kB` line of a /proc file (`/proc/meminfo`, `/proc/PID/status`), in KiB.
pub fn proc_kib(path: &str, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))?;
    line.trim().trim_end_matches("kB").trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt as _;

    use super::*;

    #[test]
    fn this_process_is_found_in_its_own_group() {
        let me = std::process::id();
        let group = u32::try_from(stat_field(me, Stat::Group).unwrap()).unwrap();
        assert_eq!(stat_field(me, Stat::Parent), Some(u64::from(std::os::unix::process::parent_id())));
        assert!(group > 0);
        assert!(resident_bytes_of(me).unwrap() > 1024 * 1024);
        assert!(proc_kib("/proc/meminfo", "MemTotal").unwrap() > 1024);
    }

    /// CPU time counts this process's own work, a live child's, and an ended child's once it was
    /// waited for (a postmaster's backends); a process group's counts its members'.
    #[test]
    fn cpu_time_counts_the_process_and_its_children() {
        let me = std::process::id();
        let mine_before = process_and_children_cpu_us(me);
        // 300 ms of CPU by the kernel's own clock for this process, however busy the machine is.
        let started = process_cpu_clock_us();
        let mut spin = 0u64;
        while process_cpu_clock_us() - started < 300_000 {
            spin = std::hint::black_box(spin.wrapping_add(1));
        }
        // /proc counts whole clock ticks (10 ms).
        let mine = process_and_children_cpu_us(me);
        assert!(mine.saturating_sub(mine_before) >= 250_000, "{mine_before} us, then {mine} us ({spin} turns)");

        // The child leads a group of its own, as the bench's servers do: the group this test runs
        // in is the CI runner's, whose other members may start and end meanwhile.
        let mut child =
            std::process::Command::new("sh").args(["-c", "while :; do :; done"]).process_group(0).spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let childs = loop {
            let childs = cpu_us(vec![child.id()]);
            if childs >= 200_000 || std::time::Instant::now() > deadline {
                break childs;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert!(childs >= 200_000, "the child used {childs} us in 30 s");
        assert!(process_group_cpu_us(child.id()) >= childs);
        assert!(process_and_children_cpu_us(me) >= mine + childs);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(process_and_children_cpu_us(me) >= mine + childs);
    }

    fn process_cpu_clock_us() -> u64 {
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime(2) writes the timespec it is given.
        assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) }, 0);
        now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
    }
}
