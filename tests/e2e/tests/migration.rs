//! Migrations on live databases: databases earlier releases created and their users changed
//! (committed in `fixtures/v1/` and `fixtures/v2/`, see their READMEs) are brought up to date with
//! every change kept; and a third integration, added by following the README's recipe to the
//! letter on a copy of the workspace, reaches a database this release created and one an earlier
//! release did.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use e2e::{Backend, Service, Spin};
use integrations_core::store::migrations::LATEST;
use reqwest::Method;
use serde_json::{json, Value};
use test_support::{AppOptions, PostgresFixture, SpinApp};

/// The key the previous release sealed the fixture's Facebook secrets with.
const V1_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// What release 0.2.0 sealed `fixtures/v2` with, and its admin token there.
const V2_KEY: &str = V1_KEY;
const V2_TOKEN: &str = "fixture-v2-admin-token";

/// A database as `release` (`v1`: 0.1.0, `v2`: 0.2.0) left it.
fn fixture(release: &str, name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(release).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A service of the build at `manifest` on a database loaded from 0.1.0's fixture.
async fn on_previous_release(spin: &Spin, backend: Backend, manifest: &Path, variables: &[(&str, &str)]) -> Service {
    on_release("v1", spin, backend, manifest, variables).await
}

/// A service of the build at `manifest` on a database loaded from `release`'s fixture.
async fn on_release(
    release: &str,
    spin: &Spin,
    backend: Backend,
    manifest: &Path,
    variables: &[(&str, &str)],
) -> Service {
    let state = tempfile::tempdir().unwrap();
    let (cluster, dsn) = match backend {
        Backend::Postgres => {
            let fixture_cluster = PostgresFixture::shared().await.expect("PostgreSQL starts");
            let dsn = e2e::fresh_database(&fixture_cluster.dsn()).await;
            e2e::connect(&dsn).await.batch_execute(&fixture(release, "postgres.sql")).await.expect("the fixture loads");
            (Some(e2e::Cluster::Shared(fixture_cluster)), Some(dsn))
        }
        Backend::Sqlite => {
            let db = rusqlite::Connection::open(state.path().join("sqlite_db.db")).unwrap();
            db.execute_batch(&fixture(release, "sqlite.sql")).expect("the fixture loads");
            (None, None)
        }
    };
    let options = Service::options(cluster.as_ref().map(e2e::Cluster::fixture), dsn.as_deref(), variables);
    let options = AppOptions {
        source: test_support::AppSource::Manifest(manifest.to_owned()),
        state_dir: Some(state.path().to_owned()),
        ..options
    };
    let app = SpinApp::start(spin, &options).await.unwrap_or_else(|e| panic!("{spin}: {e:#}"));
    Service::around(app, backend, cluster, dsn, state)
}

/// Where the README says how to add an integration.
const RECIPE: &str = "### The catalog, and adding an integration";

/// The README's recipe, as written: the file it names and the entry it shows.
fn recipe() -> (String, String) {
    let readme = std::fs::read_to_string(test_support::workspace_root().join("README.md")).unwrap();
    let section = &readme[readme.find(RECIPE).expect("the README has the recipe")..];
    let section = &section[..section[RECIPE.len()..].find("\n#").map_or(section.len(), |end| end + RECIPE.len())];
    let start = section.find("```rust\n").expect("the recipe shows its entry") + "```rust\n".len();
    let entry = &section[start..start + section[start..].find("```").expect("the block ends")];
    // The one file the recipe changes: the only `src/...rs` path before the block.
    let mut files: Vec<&str> =
        section[..start].split('`').filter(|word| word.starts_with("src/") && word.ends_with(".rs")).collect();
    files.dedup();
    assert_eq!(files.len(), 1, "the recipe names one file to change: {files:?}");
    (files[0].to_owned(), entry.to_owned())
}

/// The workspace (its files git tracks or would track), copied to `target/e2e-variant/` (the copy's own `target/`
/// stays between runs; the first one starts from hard links to this workspace's build), with
/// the README's recipe applied literally: its entry added at the end of `CATALOG` in the file it
/// names, and nothing else. Builds the copy's components, as `tests/run` builds these.
fn build_with_a_third_integration() -> PathBuf {
    let root = test_support::workspace_root();
    let copy = root.join("target/e2e-variant");
    if copy.exists() {
        for entry in std::fs::read_dir(&copy).unwrap().flatten().filter(|entry| entry.file_name() != "target") {
            let path = entry.path();
            if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) }.unwrap();
        }
    }
    let listed = Command::new("git")
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .current_dir(&root)
        .output()
        .expect("git ls-files");
    for file in listed.stdout.split(|&byte| byte == 0).filter(|file| !file.is_empty()) {
        let file = std::str::from_utf8(file).unwrap();
        let (from, to) = (root.join(file), copy.join(file));
        if from.is_file() {
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    }
    if !copy.join("target").exists() {
        std::fs::create_dir_all(copy.join("target")).unwrap();
        for built in ["wasm32-wasip2", "release"] {
            if root.join("target").join(built).exists() {
                let status = Command::new("cp")
                    .arg("-al")
                    .arg(root.join("target").join(built))
                    .arg(copy.join("target"))
                    .status();
                assert!(status.unwrap().success(), "cp -al target/{built}");
            }
        }
    }

    // The recipe, as the README says it.
    let (file, entry) = recipe();
    let catalog = copy.join(&file);
    let text = std::fs::read_to_string(&catalog).unwrap();
    let list = text.find("pub const CATALOG").unwrap_or_else(|| panic!("{file} has no CATALOG"));
    let end = list + text[list..].find("\n];").expect("the end of CATALOG") + 1;
    std::fs::write(&catalog, format!("{}{entry}{}", &text[..end], &text[end..])).unwrap();
    let changed = Command::new("git")
        .args(["diff", "--no-index", "--name-only", "--"])
        .arg(root.join("src"))
        .arg(copy.join("src"))
        .output()
        .unwrap();
    let changed: Vec<String> = String::from_utf8_lossy(&changed.stdout).lines().map(str::to_owned).collect();
    assert_eq!(changed.len(), 1, "the recipe changes one file of the app: {changed:?}");

    let manifest = copy.join("spin.toml");
    let parsed = app_manifest::Manifest::load(&manifest).unwrap();
    let packages: Vec<String> = parsed.packages().unwrap().into_values().map(String::from).collect();
    let mut build = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    build.args(["build", "--locked", "--offline", "--release", "--target", "wasm32-wasip2"]).current_dir(&copy);
    for package in packages {
        build.args(["-p", &package]);
    }
    let status = build.env("CARGO_TARGET_DIR", copy.join("target")).status().unwrap();
    assert!(status.success(), "the app with the README's third integration builds");
    manifest
}

/// The variant's manifest, built once per run of this file.
fn variant() -> &'static Path {
    static VARIANT: OnceLock<PathBuf> = OnceLock::new();
    VARIANT.get_or_init(build_with_a_third_integration)
}

/// This build's catalog, then the recipe's integration: what the variant lists.
fn with_third(third: &str) -> Vec<&str> {
    let catalog = integrations_core::catalog::CATALOG.iter().map(|entry| entry.id);
    catalog.chain(std::iter::once(third)).collect()
}

/// The third integration as the recipe declares it, and its settings' defaults.
fn third() -> (String, Value) {
    let (_, entry) = recipe();
    let field = |text: &str, name: &str| {
        text.split(&format!("{name}: \"")).nth(1).and_then(|rest| rest.split('"').next()).map(str::to_owned)
    };
    let id = field(&entry, "id").expect("the entry has an id");
    let setting = entry.split("SettingField {").nth(1).and_then(|declared| field(declared, "name"));
    let setting = setting.expect("the entry declares a setting");
    (id, json!({ setting: "" }))
}

e2e::e2e_tests!(
    #[on_each_backend]
    async fn a_previous_release_database_keeps_every_change_its_users_made(spin: &Spin, backend: Backend) {
        let keyring = format!("v1:{V1_KEY}");
        let service = on_previous_release(spin, backend, &e2e::manifest(), &[("settings_keyring", &keyring)]).await;
        let list = service.get("/admin/integrations/").await;
        assert_eq!(list.status, 200, "{spin} {backend:?}: {}", String::from_utf8_lossy(&list.body));
        let list = list.json();
        let facebook = &list[0];
        assert_eq!(facebook["status"], true);
        // Sealed field by field by the previous release, opened with its key.
        assert_eq!(
            facebook["settings"],
            json!({"verify": "my-verify-token", "secret": "app-secret-v1", "page_access_token": "EAAB-page-token-v1"}),
            "{spin} {backend:?}"
        );
        let widget = &list[1];
        assert_eq!((widget["name"].as_str(), widget["status"].as_bool()), (Some("Website chat"), Some(false)));
        assert_eq!(widget["settings"]["greeting"], "hi \"there\"");
        // Numbers as the previous release stored them, digit for digit.
        let text = String::from_utf8(service.get("/admin/integrations/chat_widget").await.body).unwrap();
        let n = if backend == Backend::Postgres { "123456789012345680000000000000" } else { "1.2345678901234568e+29" };
        assert!(text.contains(&format!("\"n\":{n}")), "{text}");
        assert!(widget["created_at"].as_str().unwrap().starts_with("2026-11-30T10:19:"), "{widget}");
        let etag = service.get("/admin/integrations/facebook").await.header("etag").map(str::to_owned);
        assert_eq!(etag.as_deref(), Some("\"2\""), "versions carry over");

        // History begins with the row as it stood.
        let history = service.get("/admin/integrations/facebook/history").await.json();
        assert_eq!(history["versions"][0]["action"], "baseline");
        assert_eq!(history["versions"][0]["version"], 2);

        // The admin UI sends back what it read, keys from before the catalog included.
        let mut widget = widget.clone();
        widget["status"] = json!(true);
        let toggled = service.put("/admin/integrations/chat_widget", &widget).await;
        assert_eq!(toggled.status, 200, "{}", String::from_utf8_lossy(&toggled.body));
        assert_eq!(toggled.json()["settings"], widget["settings"]);

        // Secrets move to whole-row sealing under the current key on the next write.
        let mut facebook = facebook.clone();
        facebook["status"] = json!(false);
        assert_eq!(service.put("/admin/integrations/facebook", &facebook).await.status, 200);
        let keys = service.get("/admin/keys").await.json();
        assert!(keys["live"].as_array().unwrap().iter().any(|k| k["key"] == "v1"), "{keys}");
    }

    #[on_each_backend]
    /// Migration 4 on what 0.2.0 wrote: each version it made with its one token says
    /// `admin_token`, the others `null`; nothing else changes, and the same token goes on writing.
    async fn a_0_2_0_database_gets_the_actor_of_each_version(spin: &Spin, backend: Backend) {
        let keyring = format!("k1:{V2_KEY}");
        let variables = [("settings_keyring", keyring.as_str()), ("admin_token", V2_TOKEN)];
        let service = on_release("v2", spin, backend, &e2e::manifest(), &variables).await;
        let authorization = format!("Bearer {V2_TOKEN}");
        let auth = [("authorization", authorization.as_str())];
        let history = |id: &'static str| {
            let service = &service;
            async move {
                let page = service.send(Method::GET, &format!("/admin/integrations/{id}/history"), &auth, None).await;
                assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
                let page = page.json();
                let versions = page["versions"].as_array().unwrap().clone();
                versions
                    .iter()
                    .map(|v| (v["version"].as_i64().unwrap(), v["actor"].clone(), v["authenticated"].clone()))
                    .collect::<Vec<_>>()
            }
        };
        let (admin, open) = ((json!("admin_token"), json!(true)), (Value::Null, json!(false)));
        let expected = |entries: &[(i64, &(Value, Value))]| -> Vec<(i64, Value, Value)> {
            entries
                .iter()
                .map(|(version, (actor, authenticated))| (*version, actor.clone(), authenticated.clone()))
                .collect()
        };
        assert_eq!(
            history("chat_widget").await,
            expected(&[(4, &admin), (3, &admin), (2, &open), (1, &open)]),
            "{spin} {backend:?}"
        );
        assert_eq!(history("facebook").await, expected(&[(2, &admin), (1, &open)]), "{spin} {backend:?}");
        let restore = service.send(Method::GET, "/admin/integrations/chat_widget/history/4", &auth, None).await.json();
        assert_eq!((restore["request_id"].as_str(), restore["restored_from"].as_i64()), (Some("v2-auth-3"), Some(2)));
        let facebook = service.send(Method::GET, "/admin/integrations/facebook", &auth, None).await.json();
        assert_eq!(facebook["settings"]["secret"], "app-secret-v2", "sealed by 0.2.0, opened");

        let headers = [("authorization", authorization.as_str()), ("content-type", "application/json")];
        let put = service
            .send(Method::PUT, "/admin/integrations/facebook", &headers, Some(br#"{"status": false}"#.to_vec()))
            .await;
        assert_eq!(put.status, 200);
        assert_eq!(history("facebook").await[0], (3, json!("admin_token"), json!(true)));
        if let Some(dsn) = &service.dsn {
            let client = e2e::connect(dsn).await;
            let latest: i64 =
                client.query_one("SELECT max(version) FROM integrations_schema_migrations", &[]).await.unwrap().get(0);
            assert_eq!(latest, LATEST);
        }
    }

    #[on_each_backend]
    /// The README's recipe, followed literally on a copy of the workspace and built, on a database
    /// this release created and its users changed.
    async fn a_third_integration_reaches_a_database_this_release_created(spin: &Spin, backend: Backend) {
        let variant = tokio::task::spawn_blocking(variant).await.unwrap();
        let (third, defaults) = third();
        let mut service = Service::start(spin, backend).await;
        let settings = json!({"verify": "mine", "secret": "third-s3cret", "page_access_token": "tok"});
        let body = json!({"status": true, "settings": settings});
        assert_eq!(service.put("/admin/integrations/facebook", &body).await.status, 200);
        let widget = json!({"name": "Site chat", "settings": {"theme": "dark"}});
        assert_eq!(service.put("/admin/integrations/chat_widget", &widget).await.status, 200);
        let before = service.get("/admin/integrations/").await.json();

        // The same database under the build with the new entry; its answers are checked against
        // the description it serves (which has the new entry's settings schema).
        service.restart_on(variant, &[]).await;
        let after = service.send(Method::GET, "/admin/integrations/", &[("cache-control", "no-cache")], None).await;
        let after = after.json();
        let ids: Vec<&str> = after.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert_eq!(ids, with_third(&third), "{spin} {backend:?}");
        assert_eq!(after[0], before[0], "every user change kept");
        assert_eq!(after[1], before[1], "every user change kept");
        assert_eq!((after[2]["status"].as_bool(), &after[2]["settings"]), (Some(false), &defaults));
        let history = service.get(&format!("/admin/integrations/{third}/history")).await.json();
        assert_eq!(history["versions"][0]["action"], "seed");
        let wrong_type = json!({"settings": {defaults.as_object().unwrap().keys().next().unwrap(): 5}});
        let refused = service.put(&format!("/admin/integrations/{third}"), &wrong_type).await;
        assert_eq!(refused.status, 422, "the new entry's settings are checked too");
        let description = service.get("/openapi.json").await.json();
        let schema = format!("{}Settings", third[..1].to_uppercase() + &third[1..]);
        assert!(description["components"]["schemas"][&schema].is_object(), "the description has {schema}");
        if let Some(dsn) = &service.dsn {
            let client = e2e::connect(dsn).await;
            let latest: i64 =
                client.query_one("SELECT max(version) FROM integrations_schema_migrations", &[]).await.unwrap().get(0);
            assert_eq!(latest, LATEST, "no migration was needed");
        }
    }

    #[on_each_backend]
    /// The same build on a database the previous release created: it gets the new row too.
    async fn a_third_integration_reaches_a_database_the_previous_release_created(spin: &Spin, backend: Backend) {
        let variant = tokio::task::spawn_blocking(variant).await.unwrap();
        let (third, defaults) = third();
        let service =
            on_previous_release(spin, backend, variant, &[("settings_keyring", &format!("v1:{V1_KEY}"))]).await;
        let list = service.get("/admin/integrations/").await.json();
        let ids: Vec<&str> = list.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert_eq!(ids, with_third(&third), "{spin} {backend:?}");
        assert_eq!(list[0]["settings"]["secret"], "app-secret-v1", "the previous release's rows as they were");
        assert_eq!(list[2]["settings"], defaults);
    }
);
