//! Migrations on live databases: a database the previous release created and its users changed
//! (committed in `fixtures/v1/`, see its README) is brought up to date with every change kept;
//! and a third integration added to the catalog, as the README's recipe says, reaches a
//! database this release created.

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::{Backend, Service, Spin};
use integrations_core::store::migrations::LATEST;
use reqwest::Method;
use serde_json::json;
use test_support::{AppOptions, PostgresFixture, SpinApp};

/// The key the previous release sealed the fixture's Facebook secrets with.
const V1_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/v1").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A service on a database loaded from the previous release's fixture.
async fn on_previous_release(spin: &Spin, backend: Backend, variables: &[(&str, &str)]) -> Service {
    let state = tempfile::tempdir().unwrap();
    let (cluster, dsn) = match backend {
        Backend::Postgres => {
            let fixture_cluster = PostgresFixture::shared().await.expect("PostgreSQL starts");
            let dsn = e2e::fresh_database(&fixture_cluster.dsn()).await;
            e2e::connect(&dsn).await.batch_execute(&fixture("postgres.sql")).await.expect("the fixture loads");
            (Some(e2e::Cluster::Shared(fixture_cluster)), Some(dsn))
        }
        Backend::Sqlite => {
            let db = rusqlite::Connection::open(state.path().join("sqlite_db.db")).unwrap();
            db.execute_batch(&fixture("sqlite.sql")).expect("the fixture loads");
            (None, None)
        }
    };
    let options = Service::options(cluster.as_ref().map(e2e::Cluster::fixture), dsn.as_deref(), variables);
    let options = AppOptions { state_dir: Some(state.path().to_owned()), ..options };
    let app = SpinApp::start(spin, &options).await.unwrap_or_else(|e| panic!("{spin}: {e:#}"));
    Service::around(app, backend, cluster, dsn, state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_previous_release_database_keeps_every_change_its_users_made() {
    for spin in Spin::all() {
        for backend in [Backend::Postgres, Backend::Sqlite] {
            let keyring = format!("v1:{V1_KEY}");
            let service = on_previous_release(spin, backend, &[("settings_keyring", &keyring)]).await;
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
            let n =
                if backend == Backend::Postgres { "123456789012345680000000000000" } else { "1.2345678901234568e+29" };
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
    }
}

/// The app with a third integration, built from a copy of the workspace by the README's recipe
/// ("Adding an integration"): one catalog entry, one migration. The copy's target directory is
/// seeded with hard links to the workspace's, so only the app's own crates compile again.
fn build_with_a_third_integration() -> (tempfile::TempDir, PathBuf) {
    let root = test_support::workspace_root();
    let copy = tempfile::Builder::new().prefix("variant-").tempdir().unwrap();
    let run = |program: &str, args: &[&str], dir: &Path| {
        let status = Command::new(program).args(args).current_dir(dir).status().unwrap();
        assert!(status.success(), "{program} {args:?}");
    };
    for entry in ["src", "Cargo.toml", "Cargo.lock", "spin.toml"] {
        run("cp", &["-r", &root.join(entry).display().to_string(), &copy.path().display().to_string()], &root);
    }
    std::fs::create_dir(copy.path().join("target")).unwrap();
    for built in ["wasm32-wasip2", "release"] {
        if root.join("target").join(built).exists() {
            run("cp", &["-al", &root.join("target").join(built).display().to_string(), "target/"], copy.path());
        }
    }
    let edit = |file: &str, change: &dyn Fn(String) -> String| {
        let path = copy.path().join(file);
        std::fs::write(&path, change(std::fs::read_to_string(&path).unwrap())).unwrap();
    };
    // Only the app: the copy has no tests.
    edit("Cargo.toml", &|text| {
        let start = text.find("members = [").unwrap();
        let end = start + text[start..].find(']').unwrap() + 1;
        format!("{}members = [\"src/core\", \"src/components/*\"]{}", &text[..start], &text[end..])
    });
    // The recipe: a catalog entry ...
    edit("src/core/src/catalog.rs", &|text| {
        text.replace("&[FACEBOOK, CHAT_WIDGET]", "&[FACEBOOK, CHAT_WIDGET, SLACK]")
            + r##"
pub const SLACK: IntegrationType = IntegrationType {
    id: "slack",
    name: "Slack",
    description: "Answer in Slack channels",
    default_status: false,
    settings: &[SettingField {
        name: "bot_token",
        kind: SettingKind::String,
        required: false,
        default: Some(r#""""#),
        secret: true,
        description: "Bot token (xoxb-...)",
    }],
};
"##
    });
    // ... and a migration that seeds it.
    edit("src/core/src/store/migrations.rs", &|text| {
        let end = text.find("\n];\n").expect("the end of MIGRATIONS");
        let next = LATEST + 1;
        let seed = format!(
            "\n    Migration {{ version: {next}, description: \"seed slack\", steps: &[Step::Seed(\"slack\")] }},"
        );
        format!("{}{seed}{}", &text[..end], &text[end..])
    });
    let packages: Vec<String> = std::fs::read_to_string(copy.path().join("spin.toml"))
        .unwrap()
        .lines()
        .filter_map(|line| line.strip_prefix("command = \"cargo build --target wasm32-wasip2 --release -p "))
        .map(|rest| rest.trim_end_matches('"').to_owned())
        .collect();
    let mut args = vec!["build", "--release", "--target", "wasm32-wasip2", "--offline"];
    for package in &packages {
        args.extend(["-p", package]);
    }
    let status = Command::new("cargo")
        .args(&args)
        .current_dir(copy.path())
        .env("CARGO_TARGET_DIR", copy.path().join("target"))
        .status()
        .unwrap();
    assert!(status.success(), "the variant builds");
    let manifest = copy.path().join("spin.toml");
    (copy, manifest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_integration_reaches_a_database_this_release_created() {
    let (_copy, variant) = tokio::task::spawn_blocking(build_with_a_third_integration).await.unwrap();
    for spin in Spin::all() {
        for backend in [Backend::Postgres, Backend::Sqlite] {
            // This release's database, with users' changes.
            let mut service = Service::start(spin, backend).await;
            let settings = json!({"verify": "mine", "secret": "third-s3cret", "page_access_token": "tok"});
            let body = json!({"status": true, "settings": settings});
            assert_eq!(service.put("/admin/integrations/facebook", &body).await.status, 200);
            assert_eq!(service.put("/admin/integrations/chat_widget", &json!({"name": "Site chat"})).await.status, 200);
            let before = service.get("/admin/integrations/").await.json();

            // The same database under the build with the new catalog entry.
            service.restart_on(&variant, &[]).await;
            let after = service.send(Method::GET, "/admin/integrations/", &[("cache-control", "no-cache")], None).await;
            let after = after.json();
            let ids: Vec<&str> = after.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
            assert_eq!(ids, ["facebook", "chat_widget", "slack"], "{spin} {backend:?}");
            assert_eq!(after[0], before[0], "every user change kept");
            assert_eq!(after[1], before[1], "every user change kept");
            assert_eq!((after[2]["status"].as_bool(), &after[2]["settings"]), (Some(false), &json!({"bot_token": ""})));
            let history = service.get("/admin/integrations/slack/history").await.json();
            assert_eq!(history["versions"][0]["action"], "seed");
            let refused = service.put("/admin/integrations/slack", &json!({"settings": {"bot_token": 5}})).await;
            assert_eq!(refused.status, 422, "the new entry's settings are checked too");
            if let Some(dsn) = &service.dsn {
                let client = e2e::connect(dsn).await;
                let latest: i64 = client
                    .query_one("SELECT max(version) FROM integrations_schema_migrations", &[])
                    .await
                    .unwrap()
                    .get(0);
                assert_eq!(latest, LATEST + 1);
            }
        }
    }
}
