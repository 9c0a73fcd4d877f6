//! Keeps `deploy/` consistent with the app and with itself: the SpinApp binds every variable
//! `spin.toml` declares, secrets come from Secrets whose names and keys the docs and the
//! example agree on, probes hit routes that exist, every YAML file parses, the OpenTelemetry
//! Collector's pipelines use only components it defines, and Terraform is formatted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_serde::Value as Yaml;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every document of a (multi-document) YAML file; empty documents are skipped.
fn yaml_docs(rel: &str) -> Vec<Yaml> {
    parse_docs(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn parse_docs(text: &str) -> Result<Vec<Yaml>, yaml_serde::Error> {
    let mut docs = Vec::new();
    for doc in yaml_serde::Deserializer::from_str(text) {
        let value: Yaml = serde::Deserialize::deserialize(doc)?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn yaml_doc(rel: &str) -> Yaml {
    let mut docs = yaml_docs(rel);
    assert_eq!(docs.len(), 1, "{rel}: expected exactly one document");
    docs.remove(0)
}

/// The one document of `kind` in a file.
fn doc_of_kind(rel: &str, kind: &str) -> Yaml {
    let mut found: Vec<Yaml> = yaml_docs(rel).into_iter().filter(|d| d["kind"].as_str() == Some(kind)).collect();
    assert_eq!(found.len(), 1, "{rel}: expected one {kind}");
    found.remove(0)
}

fn str_at<'a>(value: &'a Yaml, path: &[&str]) -> &'a str {
    let mut v = value;
    for key in path {
        v = &v[*key];
    }
    v.as_str().unwrap_or_else(|| panic!("expected a string at {}", path.join(".")))
}

fn seq<'a>(value: &'a Yaml, what: &str) -> &'a Vec<Yaml> {
    value.as_sequence().unwrap_or_else(|| panic!("expected a list at {what}"))
}

fn spin_toml() -> app_manifest::Manifest {
    app_manifest::Manifest::of_the_app()
}

fn spinapp() -> Yaml {
    yaml_doc("deploy/k8s/base/spinapp.yaml")
}

/// `(name, source)` of each SpinApp variable, where source is `secret:NAME/KEY`,
/// `configmap:NAME/KEY` or `value`.
fn spinapp_bindings() -> BTreeMap<String, String> {
    let app = spinapp();
    let mut out = BTreeMap::new();
    for var in seq(&app["spec"]["variables"], "spec.variables") {
        let name = str_at(var, &["name"]).to_string();
        let from = &var["valueFrom"];
        let source = if !from["secretKeyRef"].is_null() {
            format!("secret:{}/{}", str_at(from, &["secretKeyRef", "name"]), str_at(from, &["secretKeyRef", "key"]))
        } else if !from["configMapKeyRef"].is_null() {
            format!(
                "configmap:{}/{}",
                str_at(from, &["configMapKeyRef", "name"]),
                str_at(from, &["configMapKeyRef", "key"])
            )
        } else {
            assert!(var["value"].is_string(), "variable {name}: neither valueFrom nor value");
            "value".into()
        };
        assert!(out.insert(name.clone(), source).is_none(), "variable {name} bound twice");
    }
    out
}

/// Secret name -> its keys, from the example Secrets.
fn example_secrets() -> BTreeMap<String, BTreeMap<String, String>> {
    yaml_docs("deploy/k8s/secrets.example.yaml")
        .iter()
        .filter(|d| d["kind"].as_str() == Some("Secret"))
        .map(|d| {
            let data = d["stringData"].as_mapping().expect("example Secrets use stringData");
            let keys = data
                .iter()
                .map(|(k, v)| (k.as_str().unwrap().to_string(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            (str_at(d, &["metadata", "name"]).to_string(), keys)
        })
        .collect()
}

fn config_map() -> Yaml {
    yaml_doc("deploy/k8s/base/config.yaml")
}

#[test]
fn the_spinapp_binds_every_variable_spin_toml_declares_and_no_other() {
    let manifest = spin_toml();
    let declared = &manifest.variables;
    let bindings = spinapp_bindings();

    for (name, decl) in declared {
        let source = bindings.get(name).unwrap_or_else(|| {
            let required = if decl.default.is_some() { "" } else { " (required: no default)" };
            panic!("spin.toml variable {name}{required} is not bound by deploy/k8s/base/spinapp.yaml")
        });
        if decl.secret {
            assert!(source.starts_with("secret:"), "{name} is secret in spin.toml but comes from {source}");
        } else {
            assert!(!source.starts_with("secret:"), "{name} is not secret; keep it in the ConfigMap ({source})");
        }
    }
    for name in bindings.keys() {
        assert!(declared.contains_key(name), "the SpinApp binds {name}, which spin.toml does not declare");
    }
}

#[test]
fn the_database_dsn_comes_from_the_secret_the_migration_guide_names() {
    assert_eq!(spinapp_bindings()["db_dsn"], "secret:integrations-db-secret/DATABASE_URL");

    let readme = read("deploy/README.md");
    for needle in ["integrations-db-secret", "DATABASE_URL", "integrations-app-secrets", "integrations-config"] {
        assert!(readme.contains(needle), "deploy/README.md does not mention {needle}");
    }
}

#[test]
fn every_secret_and_config_reference_exists_where_the_deployment_creates_it() {
    let secrets = example_secrets();
    let config = config_map();
    let config_name = str_at(&config, &["metadata", "name"]);
    let config_data = config["data"].as_mapping().expect("ConfigMap data");
    let readme = read("deploy/README.md");
    let terraform_app = read("deploy/terraform/app/main.tf");

    for (var, source) in spinapp_bindings() {
        if let Some(reference) = source.strip_prefix("secret:") {
            let (name, key) = reference.split_once('/').unwrap();
            let keys =
                secrets.get(name).unwrap_or_else(|| panic!("{var}: Secret {name} is not in secrets.example.yaml"));
            assert!(keys.contains_key(key), "{var}: secrets.example.yaml's {name} has no key {key}");
            assert!(readme.contains(key), "{var}: deploy/README.md's kubectl steps do not create key {key}");
            assert!(terraform_app.contains(name), "{var}: terraform/app does not create Secret {name}");
            assert!(terraform_app.contains(key), "{var}: terraform/app does not set key {key}");
        } else if let Some(reference) = source.strip_prefix("configmap:") {
            let (name, key) = reference.split_once('/').unwrap();
            assert_eq!(name, config_name, "{var}: ConfigMap {name} is not deploy/k8s/base/config.yaml's");
            assert!(config_data.contains_key(key), "{var}: ConfigMap {name} has no key {key}");
        }
    }
}

/// Least privilege: each client has its own token with no more scope than it needs (the bot
/// runtime `read`, the admin UI `admin`), and the service's Secret holds only their hashes; the
/// example, Terraform and the kubectl steps agree.
#[test]
fn each_client_gets_a_token_of_the_scope_it_needs_and_the_service_keeps_hashes() {
    use integrations_core::api::routes::Scope;
    use integrations_core::api::ApiTokens;
    use integrations_core::config::Parse;

    let expected = [("bot-runtime", Scope::Read), ("admin-ui", Scope::Admin)];
    let bindings = spinapp_bindings();
    assert_eq!(bindings["api_tokens"], "secret:integrations-app-secrets/API_TOKENS");
    assert_eq!(bindings["admin_token"], "secret:integrations-app-secrets/ADMIN_TOKEN");

    let secrets = example_secrets();
    let app_secrets = &secrets["integrations-app-secrets"];
    let listed = &app_secrets["API_TOKENS"];
    let tokens = ApiTokens::parse(listed).unwrap_or_else(|why| panic!("secrets.example.yaml's API_TOKENS: {why}"));
    let scopes: Vec<(&str, Scope)> = tokens.iter().map(|token| (token.name.as_str(), token.scope)).collect();
    assert_eq!(scopes, expected, "secrets.example.yaml's API_TOKENS");
    for entry in listed.split(',') {
        assert!(entry.splitn(3, ':').nth(2).is_some_and(|secret| secret.starts_with("sha256:")), "not a hash: {entry}");
    }
    assert_eq!(app_secrets["ADMIN_TOKEN"], "", "the single admin token gives way to API_TOKENS");

    // Terraform: the same names and scopes, stored as hashes, and the plain tokens as outputs.
    let main = read("deploy/terraform/app/main.tf");
    for (name, scope) in expected {
        let block = &main[main.find(&format!("\"{name}\" = {{")).unwrap_or_else(|| panic!("main.tf: no {name}"))..];
        let block = &block[..block.find('}').unwrap()];
        assert!(
            block.contains(&format!("scope = \"{}\"", scope.as_str())),
            "main.tf: {name} is not {scope:?}: {block}"
        );
    }
    for line in [
        "\"${name}:${client.scope}:sha256:${sha256(client.token)}\"",
        "API_TOKENS = local.api_tokens",
        "ADMIN_TOKEN = \"\"",
    ] {
        assert!(
            main.split_whitespace().collect::<String>().contains(&line.split_whitespace().collect::<String>()),
            "main.tf: {line}"
        );
    }
    let outputs = read("deploy/terraform/app/outputs.tf");
    for (output, client) in [("admin_token", "admin-ui"), ("bot_runtime_token", "bot-runtime")] {
        let block =
            &outputs[outputs.find(&format!("output \"{output}\"")).unwrap_or_else(|| panic!("no output {output}"))..];
        assert!(
            block[..block.find('}').unwrap()].contains(&format!("local.client_tokens[\"{client}\"].token")),
            "{output}"
        );
    }

    // The kubectl steps make the same entries, hashed.
    let readme = read("deploy/README.md");
    for (name, scope) in expected {
        assert!(readme.contains(&format!("{name}:{}:sha256:$(hash ", scope.as_str())), "deploy/README.md: {name}");
    }
}

#[test]
fn production_configuration_pins_postgres_and_a_db_host_matching_the_dsn() {
    let config = config_map();
    // auto would fall back to a SQLite file private to each pod when the DSN is missing.
    assert_eq!(str_at(&config, &["data", "DB_BACKEND"]), "postgres");

    let db_host = str_at(&config, &["data", "DB_HOST"]);
    let dsn = &example_secrets()["integrations-db-secret"]["DATABASE_URL"];
    let host_port = dsn.split('@').nth(1).and_then(|rest| rest.split('/').next()).expect("DSN has @host:port/");
    assert_eq!(host_port, db_host, "the example DATABASE_URL's host:port must equal DB_HOST");
    assert!(dsn.contains("sslmode=require"), "the example DSN should ask for TLS");
}

#[test]
fn probe_paths_are_routes_of_spin_toml_and_liveness_does_not_touch_the_database() {
    let manifest = spin_toml();
    let routes = manifest.routes();

    let app = spinapp();
    for probe in ["liveness", "readiness"] {
        let path = str_at(&app, &["spec", "checks", probe, "httpGet", "path"]);
        assert!(routes.contains_key(path), "{probe} probe path {path} is not a route in spin.toml");
    }
    let liveness = str_at(&app, &["spec", "checks", "liveness", "httpGet", "path"]);
    let component = &manifest.component[routes[liveness]];
    assert!(
        component.allowed_outbound_hosts.is_empty() && component.variables.is_empty(),
        "the liveness route's component must not reach the database (a DB outage would restart pods)"
    );
    assert_eq!(str_at(&app, &["spec", "checks", "readiness", "httpGet", "path"]), "/readiness");
}

#[test]
fn every_yaml_file_under_deploy_and_github_parses() {
    let mut files = Vec::new();
    for dir in ["deploy", ".github"] {
        collect_yaml(&root().join(dir), &mut files);
    }
    assert!(files.len() >= 10, "expected the deploy/ YAML files, found {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let docs = parse_docs(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(!docs.is_empty(), "{}: no document", file.display());
        // Kubernetes objects: every document under deploy/k8s names its kind.
        let rel = file.strip_prefix(root()).unwrap().to_string_lossy().into_owned();
        if rel.starts_with("deploy/k8s/") && !rel.ends_with("kustomizeconfig.yaml") {
            for doc in &docs {
                assert!(
                    doc["apiVersion"].is_string() && doc["kind"].is_string(),
                    "{rel}: a document without apiVersion/kind"
                );
            }
        }
    }
}

/// Both workflows run `.ci/run`, whose end-to-end tests need real Spin CLIs: on GitHub there is
/// no `../shared/spin`, so `.github/install-spin` must run first (it sets `SPIN_BIN`), and it
/// pins a 3.6 (SpinKube's runtime, which release.yml pushes with) and a 4.x.
#[test]
fn the_workflows_install_spin_before_ci_run() {
    for workflow in [".github/workflows/ci.yml", ".github/workflows/release.yml"] {
        let doc = yaml_doc(workflow);
        let jobs = doc["jobs"].as_mapping().expect("jobs");
        let mut runs_ci = 0;
        for (job, body) in jobs {
            let runs: Vec<&str> =
                seq(&body["steps"], "steps").iter().map(|s| s["run"].as_str().unwrap_or("")).collect();
            let Some(ci) = runs.iter().position(|r| r.contains("bash .ci/run")) else { continue };
            runs_ci += 1;
            let install = runs.iter().position(|r| r.contains("bash .github/install-spin"));
            assert!(
                install.is_some_and(|i| i < ci),
                "{workflow} job {job:?}: `bash .github/install-spin` must come before `bash .ci/run`"
            );
        }
        assert_eq!(runs_ci, 1, "{workflow}: one job runs .ci/run");
    }
    let script = read(".github/install-spin");
    let pins: Vec<(&str, &str)> =
        script.lines().filter_map(|l| l.trim().strip_prefix('"')?.strip_suffix('"')?.split_once(' ')).collect();
    assert!(pins.iter().all(|(_, sha)| sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit())), "{pins:?}");
    assert!(
        pins.first().is_some_and(|(v, _)| v.starts_with("3.6.")),
        "3.6.x first (release.yml pushes with it): {pins:?}"
    );
    assert!(pins.iter().any(|(v, _)| v.starts_with("4.")), "a 4.x: {pins:?}");
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !path.ends_with(".terraform") {
                collect_yaml(&path, out);
            }
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(path);
        }
    }
}

#[test]
fn kustomizations_list_files_that_exist_and_objects_share_one_namespace() {
    for dir in [
        "deploy/k8s/base",
        "deploy/k8s/overlays/autoscaling",
        "deploy/k8s/overlays/shared-cache",
        "deploy/k8s/components/shared-cache",
    ] {
        let kustomization = yaml_doc(&format!("{dir}/kustomization.yaml"));
        for list in ["resources", "components"] {
            for entry in kustomization[list].as_sequence().into_iter().flatten() {
                let path = root().join(dir).join(entry.as_str().unwrap());
                assert!(path.exists(), "{dir}: {list} entry {} does not exist", path.display());
            }
        }
    }

    let namespace = str_at(&yaml_doc("deploy/k8s/base/namespace.yaml"), &["metadata", "name"]).to_string();
    let base = yaml_doc("deploy/k8s/base/kustomization.yaml");
    for resource in seq(&base["resources"], "resources") {
        for doc in yaml_docs(&format!("deploy/k8s/base/{}", resource.as_str().unwrap())) {
            if doc["kind"].as_str() != Some("Namespace") {
                assert_eq!(str_at(&doc, &["metadata", "namespace"]), namespace, "{resource:?}: {:?}", doc["kind"]);
            }
        }
    }
    for rel in [
        "deploy/k8s/secrets.example.yaml",
        "deploy/k8s/overlays/autoscaling/hpa.yaml",
        "deploy/k8s/monitoring/podmonitors.yaml",
        "deploy/k8s/components/shared-cache/valkey.yaml",
        "deploy/k8s/drain/deployment.patch.yaml",
    ] {
        for doc in yaml_docs(rel) {
            assert_eq!(str_at(&doc, &["metadata", "namespace"]), namespace, "{rel}");
        }
    }
}

#[test]
fn the_app_objects_point_at_each_other() {
    let app = spinapp();
    let app_name = str_at(&app, &["metadata", "name"]);

    // The executor the SpinApp names is the one we ship, in its namespace.
    let executor = yaml_doc("deploy/k8s/base/executor.yaml");
    assert_eq!(str_at(&app, &["spec", "executor"]), str_at(&executor, &["metadata", "name"]));
    assert_eq!(
        str_at(&executor, &["spec", "deploymentConfig", "runtimeClassName"]),
        str_at(&yaml_doc("deploy/k8s/platform/shim.yaml"), &["spec", "runtimeClass", "name"]),
        "the executor's RuntimeClass is the one the Shim creates"
    );
    let service_account = yaml_doc("deploy/k8s/base/serviceaccount.yaml");
    assert_eq!(str_at(&app, &["spec", "serviceAccountName"]), str_at(&service_account, &["metadata", "name"]));

    // spin-operator labels the pods core.spinkube.dev/app-name=<SpinApp name>.
    let pdb = yaml_doc("deploy/k8s/base/pdb.yaml");
    assert_eq!(str_at(&pdb, &["spec", "selector", "matchLabels", "core.spinkube.dev/app-name"]), app_name);
    let pod_monitor = yaml_docs("deploy/k8s/monitoring/podmonitors.yaml")
        .into_iter()
        .find(|d| d["metadata"]["name"].as_str() == Some(app_name))
        .expect("a PodMonitor for the app");
    assert_eq!(str_at(&pod_monitor, &["spec", "selector", "matchLabels", "core.spinkube.dev/app-name"]), app_name);
    let endpoint = &seq(&pod_monitor["spec"]["podMetricsEndpoints"], "podMetricsEndpoints")[0];
    assert_eq!(str_at(endpoint, &["path"]), "/metrics");
    let token = &spinapp_bindings()["metrics_token"];
    assert_eq!(
        format!(
            "secret:{}/{}",
            str_at(endpoint, &["authorization", "credentials", "name"]),
            str_at(endpoint, &["authorization", "credentials", "key"])
        ),
        *token,
        "Prometheus must send the token the app checks"
    );
    let scrape = read("deploy/prometheus/scrape-config.yaml");
    assert!(scrape.contains(&format!("regex: {app_name}")), "scrape-config.yaml keeps the app's pods");

    // The HPA scales the Deployment spin-operator names after the SpinApp, and the overlay
    // drops replicas (SpinApp rejects replicas with enableAutoscaling).
    let hpa = yaml_doc("deploy/k8s/overlays/autoscaling/hpa.yaml");
    assert_eq!(str_at(&hpa, &["spec", "scaleTargetRef", "kind"]), "Deployment");
    assert_eq!(str_at(&hpa, &["spec", "scaleTargetRef", "name"]), app_name);
    let overlay = read("deploy/k8s/overlays/autoscaling/kustomization.yaml");
    assert!(overlay.contains("path: /spec/replicas") && overlay.contains("path: /spec/enableAutoscaling"));

    // kustomize's images: entry must name the SpinApp's image, or it rewrites nothing.
    let image = str_at(&app, &["spec", "image"]);
    let repository = image.rsplit_once(':').map_or(image, |(repo, _)| repo);
    let kustomization = yaml_doc("deploy/k8s/base/kustomization.yaml");
    assert!(
        seq(&kustomization["images"], "images").iter().any(|i| i["name"].as_str() == Some(repository)),
        "base/kustomization.yaml's images: does not name {repository}"
    );
}

#[test]
fn the_collector_pipelines_use_only_defined_components_and_the_shim_reaches_it() {
    let text = read("deploy/otel/collector.yaml");
    let config: Yaml = yaml_serde::from_str(&text).expect("collector.yaml parses");

    let defined = |section: &str| -> BTreeSet<String> {
        config[section]
            .as_mapping()
            .map(|m| m.keys().map(|k| k.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let (receivers, processors, exporters, connectors) =
        (defined("receivers"), defined("processors"), defined("exporters"), defined("connectors"));

    let pipelines = config["service"]["pipelines"].as_mapping().expect("service.pipelines");
    for signal in ["traces", "metrics", "logs"] {
        assert!(pipelines.contains_key(signal), "no {signal} pipeline: Spin exports {signal} once an endpoint is set");
    }
    let mut used = BTreeSet::new();
    let mut connector_ends: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for (name, pipeline) in pipelines {
        let name = name.as_str().unwrap();
        for (role, known) in [("receivers", &receivers), ("processors", &processors), ("exporters", &exporters)] {
            let list = seq(&pipeline[role], &format!("pipeline {name}.{role}"));
            assert!(role == "processors" || !list.is_empty(), "pipeline {name} has no {role}");
            for component in list {
                let component = component.as_str().unwrap().to_string();
                if role != "processors" && connectors.contains(&component) {
                    let ends = connector_ends.entry(component.clone()).or_default();
                    if role == "receivers" {
                        ends.1 = true
                    } else {
                        ends.0 = true
                    }
                } else {
                    assert!(
                        known.contains(&component),
                        "pipeline {name} uses {role} {component}, which is not defined"
                    );
                }
                used.insert(component);
            }
        }
    }
    for connector in &connectors {
        assert_eq!(
            connector_ends.get(connector),
            Some(&(true, true)),
            "connector {connector} must end one pipeline and start another"
        );
    }
    for component in receivers.iter().chain(&processors).chain(&exporters) {
        assert!(used.contains(component), "{component} is defined but in no pipeline");
    }
    for extension in seq(&config["service"]["extensions"], "service.extensions") {
        assert!(defined("extensions").contains(extension.as_str().unwrap()));
    }

    // The Kubernetes ConfigMap carries this very file.
    let config_map = doc_of_kind("deploy/k8s/base/otel-collector.yaml", "ConfigMap");
    assert_eq!(
        str_at(&config_map, &["data", "collector.yaml"]),
        text,
        "the ConfigMap's copy differs from deploy/otel/collector.yaml"
    );

    // The executor's OTLP endpoint is the collector Service's OTLP/HTTP port, and the
    // receiver listens for HTTP there (Spin's default protocol is http/protobuf).
    let executor = yaml_doc("deploy/k8s/base/executor.yaml");
    let endpoint = str_at(&executor, &["spec", "deploymentConfig", "otel", "exporter_otlp_endpoint"]);
    let service = doc_of_kind("deploy/k8s/base/otel-collector.yaml", "Service");
    let namespace = str_at(&service, &["metadata", "namespace"]);
    let http_port = seq(&service["spec"]["ports"], "ports")
        .iter()
        .find(|p| p["name"].as_str() == Some("otlp-http"))
        .and_then(|p| p["port"].as_u64())
        .expect("an otlp-http port");
    let service_name = str_at(&service, &["metadata", "name"]);
    assert_eq!(endpoint, format!("http://{service_name}.{namespace}.svc.cluster.local:{http_port}"));
    let http_endpoint = str_at(&config, &["receivers", "otlp", "protocols", "http", "endpoint"]);
    assert!(http_endpoint.ends_with(&format!(":{http_port}")), "the OTLP receiver listens on {http_endpoint}");
}

#[test]
fn terraform_is_formatted() {
    let dir = root().join("deploy/terraform");
    let output = match Command::new("terraform")
        .args(["fmt", "-check", "-recursive", "-diff", "-no-color"])
        .arg(&dir)
        .output()
    {
        Ok(output) => output,
        Err(e) => panic!(
            "could not run `terraform` ({e}): install Terraform (1.8 or later) and put it on PATH; \
             this test checks `terraform fmt -check -recursive deploy/terraform` and does not skip"
        ),
    };
    assert!(
        output.status.success(),
        "`terraform fmt -check -recursive deploy/terraform` failed; run `terraform fmt -recursive deploy/terraform`.\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// release.yml's check of a tag, run as the workflow runs it (bash, in a checkout): the tag must
/// be `v` and spin.toml's version, and CHANGELOG.md's first heading that version's dated release
/// section (the tests check that heading names spin.toml's version), never `## [Unreleased]`.
#[test]
fn the_release_workflow_refuses_a_tag_that_is_not_the_dated_release_of_spin_tomls_version() {
    let doc = yaml_doc(".github/workflows/release.yml");
    let steps = seq(&doc["jobs"]["release"]["steps"], "steps");
    let check = steps
        .iter()
        .find(|step| step["name"].as_str().is_some_and(|name| name.starts_with("Check the tag")))
        .expect("release.yml checks the tag");
    assert_eq!(check["if"].as_str(), Some("startsWith(github.ref, 'refs/tags/v')"));
    let script = check["run"].as_str().unwrap();
    let version = app_manifest::Manifest::of_the_app().application.version;
    let changelog = read("CHANGELOG.md");
    let first = changelog.lines().find(|line| line.starts_with("## [")).unwrap().to_owned();
    let dated = changelog.replacen(&first, &format!("## [{version}] - 2027-01-31"), 1);

    let run = |tag: &str, changelog: &str| -> (bool, String) {
        let checkout = tempfile::tempdir().unwrap();
        std::fs::copy(root().join("spin.toml"), checkout.path().join("spin.toml")).unwrap();
        std::fs::write(checkout.path().join("CHANGELOG.md"), changelog).unwrap();
        let output = Command::new("bash")
            .args(["-e", "-c", script])
            .current_dir(checkout.path())
            .env("GITHUB_REF_NAME", tag)
            .output()
            .unwrap();
        (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let tag = format!("v{version}");
    assert_eq!(run(&tag, &dated), (true, String::new()), "the release of spin.toml's version, dated");
    let (passed, said) = run("v9.9.9", &dated);
    assert!(!passed && said.contains("does not match spin.toml version"), "{said}");
    let (passed, said) = run(&tag, &dated.replacen(&format!("## [{version}] - 2027-01-31"), "## [Unreleased] - x", 1));
    assert!(!passed && said.contains("CHANGELOG.md's first heading is '## [Unreleased]"), "{said}");
    let (passed, said) =
        run(&tag, &dated.replacen(&format!("## [{version}] - 2027-01-31"), "## [0.0.1] - 2027-01-31", 1));
    assert!(!passed && said.contains("::error::CHANGELOG.md"), "{said}");
}
