//! A replica served the way a SpinKube node serves it: containerd-shim-spin v0.24.0 (Spin 3.6.3
//! inside) under containerd 1.7.13, from the node runtime in `../shared/spinkube-node` (its
//! README), following its `run-under-shim.sh`: a containerd of its own (socket, root and state in
//! a temporary directory, CRI off), a registry of its own (Debian's `docker-registry`), the app
//! pushed with `spin registry push` and pulled by containerd as the Wasm OCI artifact, then
//! `ctr run` with the runtime class `io.containerd.spin.v2`, the runtime config mounted at
//! `/runtime-config.toml` (where spin-operator mounts it), `SPIN_HTTP_LISTEN_ADDR` and the
//! `SPIN_VARIABLE_*` as the container's environment, on the host's network. Stopped as the
//! kubelet stops a container: SIGTERM to the task.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use test_support::Spin;

/// The node runtime: `SPINKUBE_NODE`, else `../shared/spinkube-node` beside the checkout when it
/// is there; `None` without one (it is not something a user installs: see its README).
pub fn node_runtime() -> Option<PathBuf> {
    let dir = match std::env::var_os("SPINKUBE_NODE") {
        Some(dir) => PathBuf::from(dir),
        None => test_support::workspace_root().join("../shared/spinkube-node"),
    };
    dir.join("containerd-shim-spin-v2").is_file().then(|| dir.canonicalize().unwrap_or(dir))
}

pub struct ShimApp {
    dir: tempfile::TempDir,
    ctr: PathBuf,
    name: String,
    port: u16,
    containerd: Child,
    registry: Child,
    task: Option<Child>,
    /// From `ctr run` until the app answered.
    pub serving_after: Duration,
}

impl ShimApp {
    /// Serves the app of `manifest` (built) on 127.0.0.1:`port`; `spin` pushes it.
    pub async fn start(
        node: &Path,
        spin: &Spin,
        manifest: &Path,
        runtime_config: &Path,
        variables: &[(String, String)],
    ) -> Result<Self> {
        ensure!(
            std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self")?) == 0,
            "containerd-shim-spin runs under a containerd of its own, which needs root"
        );
        let registry_binary = crate::binary("docker-registry", "docker-registry")?;
        let dir = tempfile::Builder::new().prefix("fleet-shim-").tempdir()?;
        let w = dir.path().to_owned();
        let w = w.as_path();
        std::fs::create_dir_all(w.join("bin"))?;
        std::fs::create_dir_all(w.join("registry"))?;
        std::fs::copy(node.join("containerd-shim-spin-v2"), w.join("bin/containerd-shim-spin-v2"))?;
        let socket = w.join("containerd.sock");
        std::fs::write(
            w.join("containerd.toml"),
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{socket}\"\n[ttrpc]\n  address = \"{socket}.ttrpc\"\n",
                root = w.join("root").display(),
                state = w.join("state").display(),
                socket = socket.display()
            ),
        )?;
        let registry_port = test_support::free_port()?;
        std::fs::write(
            w.join("registry.yml"),
            format!(
                "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\n\
                 http: {{addr: 127.0.0.1:{registry_port}}}\n",
                w.join("registry").display()
            ),
        )?;
        let path = format!("{}:{}:{}", w.join("bin").display(), node.join("bin").display(), std::env::var("PATH")?);
        let log = |name: &str| std::fs::File::create(w.join(name));
        let containerd = Command::new(node.join("bin/containerd"))
            .arg("--config")
            .arg(w.join("containerd.toml"))
            .env("PATH", &path)
            .stdin(Stdio::null())
            .stdout(log("containerd.log")?)
            .stderr(log("containerd.log")?)
            .spawn()
            .context("starting containerd")?;
        let registry = Command::new(registry_binary)
            .arg("serve")
            .arg(w.join("registry.yml"))
            .stdin(Stdio::null())
            .stdout(log("registry.log")?)
            .stderr(log("registry.log")?)
            .spawn()
            .context("starting docker-registry")?;
        let name = format!("fleet{}", registry_port);
        let mut shim = Self {
            ctr: node.join("bin/ctr"),
            dir,
            name,
            port: test_support::free_port()?,
            containerd,
            registry,
            task: None,
            serving_after: Duration::ZERO,
        };
        let started = Instant::now();
        while !(shim.ctr(&["version"]).await.is_ok()
            && tokio::net::TcpStream::connect(("127.0.0.1", registry_port)).await.is_ok())
        {
            ensure!(started.elapsed() < Duration::from_secs(30), "containerd or the registry did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // What the release workflow and a node do: push the artifact, pull it.
        let reference = format!("127.0.0.1:{registry_port}/integrations-service:fleet");
        let app_dir = manifest.parent().context("the manifest's directory")?;
        let push = tokio::process::Command::new(&spin.path)
            .args(["registry", "push", "--insecure", &reference])
            .current_dir(app_dir)
            .output()
            .await?;
        ensure!(push.status.success(), "spin registry push: {}", String::from_utf8_lossy(&push.stderr));
        shim.ctr(&["image", "pull", "--plain-http", &reference]).await.context("containerd pulls the artifact")?;

        let mut run = Command::new(&shim.ctr);
        run.arg("--address")
            .arg(shim.socket())
            .args(["run", "--rm", "--net-host", "--runtime", "io.containerd.spin.v2", "--mount"])
            .arg(format!("type=bind,src={},dst=/runtime-config.toml,options=rbind:ro", runtime_config.display()))
            .args(["--env", &format!("SPIN_HTTP_LISTEN_ADDR=127.0.0.1:{}", shim.port)]);
        for (variable, value) in variables {
            run.args(["--env", &format!("SPIN_VARIABLE_{}={value}", variable.to_ascii_uppercase())]);
        }
        // Attached: the shim writes the app's output to ctr's stdout.
        run.args([&reference, &shim.name, "/"]).stdin(Stdio::null()).stdout(log("app.log")?).stderr(log("app.log")?);
        let started = Instant::now();
        let mut task = run.spawn().context("ctr run")?;
        let url = format!("http://127.0.0.1:{}/health", shim.port);
        let output = || std::fs::read_to_string(shim.dir.path().join("app.log")).unwrap_or_default();
        test_support::wait_until_serving(&mut task, "containerd-shim-spin", &url, Duration::from_secs(180), output)
            .await?;
        shim.serving_after = started.elapsed();
        shim.task = Some(task);
        Ok(shim)
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    async fn ctr(&self, args: &[&str]) -> Result<String> {
        let output =
            tokio::process::Command::new(&self.ctr).arg("--address").arg(self.socket()).args(args).output().await?;
        if !output.status.success() {
            bail!("ctr {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIGTERM to the task, as the kubelet stops a container; how long until it exited.
    pub async fn stop(mut self) -> Result<Duration> {
        let signalled = Instant::now();
        self.ctr(&["task", "kill", "-s", "SIGTERM", &self.name]).await?;
        let mut task = self.task.take().context("not running")?;
        while task.try_wait()?.is_none() {
            ensure!(signalled.elapsed() < Duration::from_secs(30), "the task did not exit within 30 s of SIGTERM");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(signalled.elapsed())
    }
}

impl Drop for ShimApp {
    fn drop(&mut self) {
        if let Some(mut task) = self.task.take() {
            let _ = Command::new(&self.ctr)
                .arg("--address")
                .arg(self.socket())
                .args(["task", "kill", "-s", "SIGKILL", &self.name])
                .output();
            let _ = task.wait();
        }
        let _ = self.containerd.kill();
        let _ = self.containerd.wait();
        let _ = self.registry.kill();
        let _ = self.registry.wait();
    }
}
