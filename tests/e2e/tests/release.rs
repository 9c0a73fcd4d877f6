//! The OCI artifact is what is tested for release: the built app pushed with
//! `spin registry push` to a plain-HTTP registry on 127.0.0.1 (Debian's `docker-registry`),
//! under the tags `.github/workflows/release.yml` pushes (`v<spin.toml version>` and the
//! commit SHA), then served by `spin up --insecure --from <reference>` and driven through an
//! acceptance path on SQLite and on PostgreSQL, with every Spin of `SPIN_BIN`.
//!
//! The registry's manifest is checked too: its Wasm layers are the components the tests
//! built (by sha256), both tags carry the same layers, and its version annotation is the tag's.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{AppSource, Backend, Cluster, PostgresFixture, Service, Spin, SpinApp};
use serde_json::{json, Value};
use sha2::Digest as _;

const REPOSITORY: &str = "integrations-service";

/// `docker-registry serve` on a free port of 127.0.0.1, storing in a temporary directory.
struct Registry {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    async fn start() -> Registry {
        let dir = tempfile::Builder::new().prefix("oci-registry-").tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let address = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {address}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `docker-registry` ({e}): install Debian's docker-registry package, or put its \
                     binary on PATH (.ci/run extracts it from the package into target/ci-tools/bin)"
                )
            });
        let registry = Registry { child, address, _dir: dir };
        let client = reqwest::Client::new();
        let started = Instant::now();
        while client.get(format!("http://{}/v2/", registry.address)).send().await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "docker-registry did not listen on {}",
                registry.address
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        registry
    }

    /// `spin registry push --insecure ADDRESS/integrations-service:TAG` from the repository root
    /// (no `--build`: the components the tests built, as release.yml pushes them).
    fn push(&self, spin: &Spin, tag: &str) -> String {
        let reference = format!("{}/{REPOSITORY}:{tag}", self.address);
        let output = Command::new(&spin.path)
            .args(["registry", "push", "--insecure", &reference])
            .current_dir(test_support::workspace_root())
            .output()
            .unwrap();
        let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "{spin}: spin registry push {reference} failed:\n{printed}");
        assert!(printed.contains("Pushed with digest sha256:"), "{spin}: {printed}");
        reference
    }

    async fn manifest(&self, tag: &str) -> Value {
        reqwest::Client::new()
            .get(format!("http://{}/v2/{REPOSITORY}/manifests/{tag}", self.address))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tags release.yml pushes for a release of this checkout: `v<version>` and the commit SHA
/// (`GITHUB_SHA` in a workflow, else `git rev-parse HEAD`).
fn release_tags() -> (String, String) {
    let version = app_manifest::Manifest::of_the_app().application.version;
    let sha = match std::env::var("GITHUB_SHA") {
        Ok(sha) if !sha.is_empty() => sha,
        _ => {
            let output = Command::new("git")
                .args(["rev-parse", "HEAD"])
                .current_dir(test_support::workspace_root())
                .output()
                .expect("git (or GITHUB_SHA), for the commit-SHA tag");
            String::from_utf8(output.stdout).unwrap().trim().to_owned()
        }
    };
    assert!(sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit()), "not a commit SHA: {sha:?}");
    (format!("v{version}"), sha)
}

/// sha256 digests of the components spin.toml names (the files tests/run built).
fn built_component_digests() -> BTreeSet<String> {
    let root = test_support::workspace_root();
    app_manifest::Manifest::of_the_app()
        .component
        .values()
        .map(|component| {
            let source: PathBuf = root.join(&component.source);
            let bytes = std::fs::read(&source)
                .unwrap_or_else(|e| panic!("{}: {e} (build the components first: tests/run)", source.display()));
            let digest = sha2::Sha256::digest(&bytes);
            format!("sha256:{}", digest.iter().map(|byte| format!("{byte:02x}")).collect::<String>())
        })
        .collect()
}

fn wasm_layers(manifest: &Value) -> BTreeSet<String> {
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|layer| layer["mediaType"] == "application/vnd.wasm.content.layer.v1+wasm")
        .map(|layer| layer["digest"].as_str().unwrap().to_owned())
        .collect()
}

async fn acceptance(service: &Service) {
    let spin = service.spin().clone();
    let list = service.get("/admin/integrations").await;
    assert_eq!(list.status, 200, "{spin}");
    let ids: Vec<Value> = list.json().as_array().unwrap().iter().map(|item| item["id"].clone()).collect();
    let catalog: Vec<Value> = integrations_core::catalog::CATALOG.iter().map(|entry| json!(entry.id)).collect();
    assert_eq!(ids, catalog, "{spin}");
    let facebook = service.get("/admin/integrations/facebook").await;
    assert_eq!((facebook.status, facebook.json()["status"].clone()), (200, json!(false)), "{spin}");
    let put =
        service.put("/admin/integrations/facebook", &json!({"status": true, "settings": {"verify": "release"}})).await;
    assert_eq!(put.status, 200, "{spin}");
    let stored = service.get("/admin/integrations/facebook").await.json();
    assert_eq!(
        (stored["status"].clone(), stored["settings"]["verify"].clone()),
        (json!(true), json!("release")),
        "{spin}"
    );
    let backend = if service.backend == Backend::Postgres { "postgres" } else { "sqlite" };
    assert_eq!(service.get("/readiness").await.json(), json!({"status": "ok", "backend": backend}), "{spin}");
    if let Some(dsn) = &service.dsn {
        let client = e2e::connect(dsn).await;
        let row = client.query_one("SELECT status FROM integrations WHERE id = 'facebook'", &[]).await.unwrap();
        assert!(row.get::<_, bool>(0), "{spin}: the PUT reached PostgreSQL");
    }
}

/// `spin up --from` the reference, on a state directory of its own.
async fn start(
    spin: &Spin,
    reference: &str,
    fixture: Option<&PostgresFixture>,
    dsn: Option<&str>,
) -> (SpinApp, tempfile::TempDir) {
    let state = tempfile::tempdir().expect("a state directory");
    let mut options = Service::options(fixture, dsn, &[]);
    options.source = AppSource::InsecureRegistry(reference.to_owned());
    options.state_dir = Some(state.path().to_owned());
    let app = SpinApp::start(spin, &options).await.unwrap_or_else(|e| panic!("{spin} serves {reference}: {e:#}"));
    (app, state)
}

e2e::e2e_tests!(
    #[on_each_spin]
    async fn the_pushed_artifact_is_the_tested_build_and_serves_the_api(spin: &Spin) {
        let registry = Registry::start().await;
        let (version_tag, sha_tag) = release_tags();
        let built = built_component_digests();
        let by_version = registry.push(spin, &version_tag);
        let by_sha = registry.push(spin, &sha_tag);

        let manifest = registry.manifest(&version_tag).await;
        assert_eq!(wasm_layers(&manifest), built, "{spin}: the artifact's Wasm layers are the built components");
        assert_eq!(wasm_layers(&registry.manifest(&sha_tag).await), built, "{spin}: both tags carry the same build");
        assert_eq!(
            manifest["annotations"]["org.opencontainers.image.version"].as_str().map(|v| format!("v{v}")),
            Some(version_tag.clone()),
            "{spin}: the version tag is the artifact's version"
        );

        // SQLite from the version tag, PostgreSQL from the commit-SHA tag.
        let (app, state) = start(spin, &by_version, None, None).await;
        acceptance(&Service::around(app, Backend::Sqlite, None, None, state)).await;

        let fixture = PostgresFixture::shared().await.expect("PostgreSQL starts");
        let dsn = e2e::fresh_database(&fixture.dsn()).await;
        let (app, state) = start(spin, &by_sha, Some(fixture), Some(&dsn)).await;
        acceptance(&Service::around(app, Backend::Postgres, Some(Cluster::Shared(fixture)), Some(dsn), state)).await;
    }
);
