//! What the platforms would accept: every Kubernetes object `deploy/` defines, as the
//! cluster would receive it, validated against the schema of its kind, with unknown fields
//! as errors (as `kubectl apply`'s strict field validation treats them).
//!
//! - Built-in kinds: Kubernetes v1.32.0's strict JSON schemas (`additionalProperties: false`
//!   everywhere), from the PyPI package kubernetes-validate 1.37.0.
//! - Custom resources: our own hand-written JSON schemas of SpinApp and SpinAppExecutor
//!   (spin-operator v0.6.1), Shim (runtime-class-manager v0.2.0) and PodMonitor
//!   (prometheus-operator v0.93.0), transcribed from those CRDs and as strict as the API server
//!   is with them: none of them preserves unknown fields, so every object accepts only the
//!   fields it declares (a lint below keeps the files so). Where a CRD embeds a Kubernetes
//!   type (volumes, env sources, label selectors, conditions) the schema names the Kubernetes
//!   definition; `metadata` is Kubernetes' ObjectMeta. CEL rules (`x-kubernetes-validations`,
//!   none in these CRDs) and spin-operator's admission webhook are not evaluated. The ignored
//!   test [`the_hand_written_schemas_match_the_crds`] compares them with the CRDs when a
//!   version changes.
//!
//! `schemas/SOURCES.md` says where each file comes from. An (apiVersion, kind) without a
//! schema is an error too: a wrong `apiVersion` is caught that way.
//!
//! What is validated: every file under `deploy/k8s`, each kustomization as `kubectl apply -k`
//! would send it, and the objects `deploy/terraform/app` hands to `kubernetes_manifest`.
//! Kustomize is not installed on CI (Debian bookworm's kubectl is 1.20, whose kustomize
//! predates these kustomizations), so [`kustomize`] renders the features the
//! kustomizations use (resources, components, `configurations` image paths, `images`, RFC 6902
//! `patches`) and refuses any other; its output was compared with `kubectl kustomize`
//! (kustomize v5.5.0) for base and overlays/autoscaling when this was written, and for
//! overlays/shared-cache (whose component came later) on 2026-12-06 with kubectl v1.32.4: the
//! same objects, field for field, in another order. `deploy/k8s/drain/deployment.patch.yaml` is a partial object for
//! server-side apply: it is validated merged into a model of the Deployment spin-operator creates. The Terraform objects are rendered the way
//! `terraform/app/main.tf` builds them ([`terraform_app_objects`]); a test keeps that render
//! in step with main.tf's `kubernetes_manifest` resources.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every non-empty document of a (multi-document) YAML text, as JSON values.
fn yaml_docs(text: &str, what: &str) -> Vec<Value> {
    let mut docs = Vec::new();
    for doc in yaml_serde::Deserializer::from_str(text) {
        let value: Value = serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("{what}: {e}"));
        if !value.is_null() {
            docs.push(value);
        }
    }
    docs
}

fn file_docs(path: &Path) -> Vec<Value> {
    yaml_docs(&read(path), &path.display().to_string())
}

// --- schemas ----------------------------------------------------------------------------

const KUBERNETES: &str = "kubernetes-v1.32.0/definitions.json";
/// Our schemas of the custom resources (one file per operator release; SOURCES.md).
const CUSTOM: [&str; 3] =
    ["spin-operator-v0.6.1.json", "runtime-class-manager-v0.2.0.json", "prometheus-operator-v0.93.0.json"];
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// A validator per (apiVersion, kind).
struct Catalogue {
    validators: BTreeMap<(String, String), (String, jsonschema::Validator)>,
}

fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(Catalogue::load)
}

/// Kubernetes' definitions and those of our custom-resource files, in one `$defs` (our
/// names carry a prefix of their own: `spinkube.`, `rcm.`, `prom.`), and the custom kinds:
/// (apiVersion, kind, file, the schema of the object less apiVersion, kind and metadata).
#[allow(clippy::type_complexity)]
fn definitions() -> &'static (Map<String, Value>, Vec<(String, String, String, Value)>) {
    static DEFINITIONS: OnceLock<(Map<String, Value>, Vec<(String, String, String, Value)>)> = OnceLock::new();
    DEFINITIONS.get_or_init(|| {
        let kubernetes: Value =
            serde_json::from_str(&read(&schemas_dir().join(KUBERNETES))).expect("Kubernetes definitions are JSON");
        let mut defs = kubernetes["$defs"].as_object().expect("$defs").clone();
        let mut kinds = Vec::new();
        for file in CUSTOM {
            let custom: Value = serde_json::from_str(&read(&schemas_dir().join(file)))
                .unwrap_or_else(|e| panic!("{file} is JSON: {e}"));
            for (name, definition) in custom["$defs"].as_object().into_iter().flatten() {
                assert!(!name.starts_with("io.k8s."), "{file}: $defs/{name} would shadow a Kubernetes definition");
                assert!(
                    defs.insert(name.clone(), definition.clone()).is_none(),
                    "{file}: $defs/{name} is defined twice"
                );
            }
            for entry in custom["kinds"].as_array().unwrap_or_else(|| panic!("{file}: kinds")) {
                let field =
                    |key: &str| entry[key].as_str().unwrap_or_else(|| panic!("{file}: kinds[].{key}")).to_owned();
                kinds.push((field("apiVersion"), field("kind"), file.to_owned(), entry["schema"].clone()));
            }
        }
        (defs, kinds)
    })
}

impl Catalogue {
    fn load() -> Self {
        let (defs, kinds) = definitions();
        let mut schemas = Vec::new();

        // Built-in kinds: the definitions that name their group/version/kind.
        for (name, definition) in defs {
            for gvk in definition["x-kubernetes-group-version-kind"].as_array().into_iter().flatten() {
                let api_version = api_version(gvk["group"].as_str().unwrap(), gvk["version"].as_str().unwrap());
                let kind = gvk["kind"].as_str().unwrap().to_owned();
                schemas.push((
                    (api_version, kind),
                    format!("Kubernetes v1.32.0 {name}"),
                    json!({ "$ref": format!("#/$defs/{name}") }),
                ));
            }
        }
        // Custom resources: our schema of each, with the fields every object has.
        for (api_version, kind, file, schema) in kinds {
            let mut schema = schema.clone();
            let properties = schema["properties"].as_object_mut().expect("a kind's schema has properties");
            for (field, value) in [
                ("apiVersion", json!({ "const": api_version })),
                ("kind", json!({ "const": kind })),
                ("metadata", json!({ "$ref": format!("#/$defs/{OBJECT_META}") })),
            ] {
                assert!(properties.insert(field.into(), value).is_none(), "{file} {kind}: {field} is added here");
            }
            schemas.push(((api_version.clone(), kind.clone()), file.clone(), schema));
        }

        let validators = schemas
            .into_iter()
            .map(|(key, source, mut schema)| {
                let object = schema.as_object_mut().unwrap();
                object.insert("$schema".into(), json!("https://json-schema.org/draft/2020-12/schema"));
                object.insert("$defs".into(), Value::Object(defs.clone()));
                let validator = jsonschema::validator_for(&schema)
                    .unwrap_or_else(|e| panic!("the schema of {key:?} ({source}) compiles: {e}"));
                (key, (source, validator))
            })
            .collect();
        Self { validators }
    }

    /// Every way `object` breaks its kind's schema (`where: path: message`), or that no
    /// schema is known for its apiVersion and kind.
    fn errors(&self, object: &Value) -> Vec<String> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default().to_owned();
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        let Some((source, validator)) = self.validators.get(&(api_version.clone(), kind.clone())) else {
            let known: Vec<_> = self.validators.keys().filter(|(_, k)| *k == kind).map(|(v, _)| v.as_str()).collect();
            return vec![format!(
                "no schema for apiVersion {api_version:?} kind {kind:?} (this kind is served as {known:?})"
            )];
        };
        let mut errors: Vec<String> = validator
            .iter_errors(object)
            .map(|error| format!("{}: {error} (schema: {source})", display_path(&error.instance_path.to_string())))
            .collect();
        errors.sort();
        errors.dedup();
        errors
    }
}

fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

/// `/spec/checks/0/path` -> `spec.checks[0].path`.
fn display_path(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').skip(1) {
        if part.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&part.replace("~1", "/").replace("~0", "~"));
        }
    }
    if out.is_empty() {
        "(object)".into()
    } else {
        out
    }
}

// --- kustomize --------------------------------------------------------------------------

/// `kubectl kustomize DIR` for the features our kustomizations use; any other feature is an
/// error, so a kustomization that grows one must grow this render (or CI must get kustomize).
fn kustomize(dir: &Path) -> Vec<Value> {
    render(dir, "Kustomization", Vec::new())
}

/// A `Kustomization`, or a `Component` applied to the `objects` of the kustomization that lists
/// it, in kustomize's order: its resources join `objects`, then its components apply to them
/// all, then its own patches and images.
fn render(dir: &Path, kind: &str, mut objects: Vec<Value>) -> Vec<Value> {
    let file = dir.join("kustomization.yaml");
    let kustomization = file_docs(&file).remove(0);
    let what = file.display().to_string();
    for key in kustomization.as_object().expect("a kustomization is a map").keys() {
        assert!(
            ["apiVersion", "kind", "resources", "components", "configurations", "images", "patches"]
                .contains(&key.as_str()),
            "{what}: `{key}` is not supported by tests/deployment's kustomize render; extend `kustomize()` in \
             tests/deployment/tests/schemas.rs"
        );
    }
    assert_eq!(kustomization["kind"], kind, "{what}");
    let api_version =
        if kind == "Component" { "kustomize.config.k8s.io/v1alpha1" } else { "kustomize.config.k8s.io/v1beta1" };
    assert_eq!(kustomization["apiVersion"], api_version, "{what}");

    for resource in kustomization["resources"].as_array().into_iter().flatten() {
        let path = dir.join(resource.as_str().expect("a resource is a path"));
        if path.is_dir() {
            objects.extend(kustomize(&path));
        } else {
            objects.extend(file_docs(&path));
        }
    }
    for component in kustomization["components"].as_array().into_iter().flatten() {
        objects = render(&dir.join(component.as_str().expect("a component is a path")), "Component", objects);
    }

    for patch in kustomization["patches"].as_array().into_iter().flatten() {
        let target = &patch["target"];
        let operations = match (&patch["patch"], &patch["path"]) {
            (Value::String(text), _) => yaml_docs(text, &what).remove(0),
            (_, Value::String(path)) => file_docs(&dir.join(path)).remove(0),
            _ => panic!("{what}: a patch without `patch` or `path`"),
        };
        assert!(operations.is_array(), "{what}: only RFC 6902 (JSON patch) patches are rendered, not {operations}");
        let operations: json_patch::Patch = serde_json::from_value(operations).expect("an RFC 6902 patch");
        let mut matched = 0;
        for object in objects.iter_mut().filter(|object| selects(target, object)) {
            json_patch::patch(object, &operations).unwrap_or_else(|e| panic!("{what}: patch {target}: {e}"));
            matched += 1;
        }
        assert!(matched > 0, "{what}: the patch target {target} selects nothing");
    }

    // Image fields: kustomize's built-in ones (pod templates) and those `configurations` add.
    let mut image_paths: Vec<(Option<String>, Vec<String>)> = vec![
        (None, vec!["spec".into(), "template".into(), "spec".into(), "containers[]".into(), "image".into()]),
        (None, vec!["spec".into(), "template".into(), "spec".into(), "initContainers[]".into(), "image".into()]),
    ];
    for configuration in kustomization["configurations"].as_array().into_iter().flatten() {
        let config = file_docs(&dir.join(configuration.as_str().unwrap())).remove(0);
        for key in config.as_object().unwrap().keys() {
            assert_eq!(key, "images", "{what}: configuration `{key}` is not rendered");
        }
        for spec in config["images"].as_array().unwrap() {
            let path = spec["path"].as_str().unwrap().split('/').map(String::from).collect();
            image_paths.push((spec["kind"].as_str().map(String::from), path));
        }
    }
    for image in kustomization["images"].as_array().into_iter().flatten() {
        let name = image["name"].as_str().expect("images[].name");
        let mut rewritten = 0;
        for object in &mut objects {
            for (kind, path) in &image_paths {
                if kind.as_deref().is_some_and(|kind| object["kind"] != kind) {
                    continue;
                }
                rewritten += rewrite_images(object, path, name, image);
            }
        }
        assert!(rewritten > 0, "{what}: images entry {name} rewrites nothing");
    }
    objects
}

fn selects(target: &Value, object: &Value) -> bool {
    let (group, version) = match object["apiVersion"].as_str().unwrap_or_default().split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", object["apiVersion"].as_str().unwrap_or_default()),
    };
    let fields = [("group", group), ("version", version), ("kind", object["kind"].as_str().unwrap_or_default())];
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    for key in target.as_object().expect("a patch target").keys() {
        assert!(
            ["group", "version", "kind", "name"].contains(&key.as_str()),
            "patch target field {key} is not rendered"
        );
    }
    fields.iter().all(|(key, actual)| target[*key].as_str().is_none_or(|wanted| wanted == *actual))
        && target["name"].as_str().is_none_or(|wanted| wanted == name)
}

fn rewrite_images(value: &mut Value, path: &[String], name: &str, image: &Value) -> usize {
    let Some((first, rest)) = path.split_first() else {
        let Some(current) = value.as_str() else { return 0 };
        let (repository, suffix) = split_image(current);
        if repository != name {
            return 0;
        }
        let repository = image["newName"].as_str().unwrap_or(repository);
        let suffix = match (image["newTag"].as_str(), image["digest"].as_str()) {
            (_, Some(digest)) => format!("@{digest}"),
            (Some(tag), None) => format!(":{tag}"),
            (None, None) => suffix.to_owned(),
        };
        *value = json!(format!("{repository}{suffix}"));
        return 1;
    };
    match first.strip_suffix("[]") {
        Some(field) => value
            .get_mut(field)
            .and_then(Value::as_array_mut)
            .map(|items| items.iter_mut().map(|item| rewrite_images(item, rest, name, image)).sum())
            .unwrap_or(0),
        None => match value.get_mut(first) {
            Some(next) => rewrite_images(next, rest, name, image),
            None => 0,
        },
    }
}

/// `repo:tag` or `repo@digest` -> (`repo`, `:tag` / `@digest`); a registry port is not a tag.
fn split_image(image: &str) -> (&str, &str) {
    if let Some(at) = image.find('@') {
        return image.split_at(at);
    }
    match image.rfind(':') {
        Some(colon) if !image[colon..].contains('/') => image.split_at(colon),
        _ => (image, ""),
    }
}

// --- terraform/app ----------------------------------------------------------------------

/// The objects `deploy/terraform/app` gives `kubernetes_manifest`, for one choice of its
/// inputs: the files it reads, and its SpinApp as main.tf's `local.spinapp` merges it. The
/// ConfigMap and Secrets it creates are typed resources (`kubernetes_config_map_v1`,
/// `kubernetes_secret_v1`), checked by the provider's own schema at plan time.
fn terraform_app_objects(enable_autoscaling: bool, pull_secret: Option<&str>) -> Vec<(String, Value)> {
    let k8s = root().join("deploy/k8s");
    let main = read(&root().join("deploy/terraform/app/main.tf"));
    let mut objects = Vec::new();
    for file in terraform_base_files(&main) {
        for object in file_docs(&k8s.join("base").join(&file)) {
            objects.push((format!("base: {file}"), object));
        }
    }
    objects.push(("namespace".into(), file_docs(&k8s.join("base/namespace.yaml")).remove(0)));
    objects.push(("shim".into(), file_docs(&k8s.join("platform/shim.yaml")).remove(0)));
    if enable_autoscaling {
        objects.push(("hpa".into(), file_docs(&k8s.join("overlays/autoscaling/hpa.yaml")).remove(0)));
    }

    let mut spinapp = file_docs(&k8s.join("base/spinapp.yaml")).remove(0);
    let spec = spinapp["spec"].as_object_mut().unwrap();
    spec.remove("replicas");
    spec.insert("image".into(), json!("registry.example/owner/integrations-service:v0.1.0"));
    if enable_autoscaling {
        spec.insert("enableAutoscaling".into(), json!(true));
    } else {
        spec.insert("replicas".into(), json!(2));
    }
    if let Some(name) = pull_secret {
        spec.insert("imagePullSecrets".into(), json!([{ "name": name }]));
    }
    objects.push(("spinapp".into(), spinapp));
    objects
}

/// main.tf's `base_files = [...]`.
fn terraform_base_files(main: &str) -> Vec<String> {
    let start = main.find("base_files").expect("main.tf has local.base_files");
    let list = &main[start..];
    let list = &list[list.find('[').unwrap() + 1..list.find(']').unwrap()];
    list.split(',').map(|f| f.trim().trim_matches('"').to_owned()).filter(|f| !f.is_empty()).collect()
}

// --- the tests --------------------------------------------------------------------------

fn assert_valid(what: &str, objects: &[Value]) {
    assert!(!objects.is_empty(), "{what}: no objects");
    let mut failures = Vec::new();
    for object in objects {
        let errors = catalogue().errors(object);
        if !errors.is_empty() {
            failures.push(format!(
                "{what}: {} {}:\n  {}",
                object["kind"].as_str().unwrap_or("?"),
                object["metadata"]["name"].as_str().unwrap_or("?"),
                errors.join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn k8s_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            k8s_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml")
            && !["kustomization.yaml", "kustomizeconfig.yaml"].contains(&path.file_name().unwrap().to_str().unwrap())
            // Partial objects for server-side apply, validated merged into what they patch.
            && !path.to_string_lossy().ends_with(".patch.yaml")
        {
            out.push(path);
        }
    }
}

#[test]
fn every_manifest_file_under_deploy_k8s_is_valid_for_its_kind() {
    let mut files = Vec::new();
    k8s_files(&root().join("deploy/k8s"), &mut files);
    files.sort();
    let kinds: Vec<String> =
        files.iter().flat_map(|f| file_docs(f)).map(|o| o["kind"].as_str().unwrap().to_owned()).collect();
    for kind in ["SpinApp", "SpinAppExecutor", "Shim", "PodMonitor", "HorizontalPodAutoscaler", "Secret", "Deployment"]
    {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} found under deploy/k8s: {files:?}");
    }
    for file in files {
        assert_valid(&file.strip_prefix(root()).unwrap().display().to_string(), &file_docs(&file));
    }
}

#[test]
fn each_kustomization_renders_to_valid_objects() {
    for dir in ["deploy/k8s/base", "deploy/k8s/overlays/autoscaling", "deploy/k8s/overlays/shared-cache"] {
        let objects = kustomize(&root().join(dir));
        assert_valid(dir, &objects);
        let spinapp = objects.iter().find(|o| o["kind"] == "SpinApp").expect("a SpinApp");
        if dir.ends_with("autoscaling") {
            assert_eq!(spinapp["spec"]["enableAutoscaling"], true);
            assert!(spinapp["spec"].get("replicas").is_none(), "SpinApp refuses replicas with enableAutoscaling");
            assert!(objects.iter().any(|o| o["kind"] == "HorizontalPodAutoscaler"));
        }
        if dir.ends_with("shared-cache") {
            shared_cache_is_wired(&objects);
        } else {
            // As shipped: the cache in each pod's memory, as runtime-config.toml has it.
            assert_eq!(
                spinapp["spec"]["runtimeConfig"]["keyValueStores"],
                json!([{ "name": "default", "type": "spin" }])
            );
        }
    }
}

/// The shared-cache component: the SpinApp's key-value store `default` is Redis at the URL of
/// the Service the component creates, which selects the Valkey pods on the port they listen on,
/// and only the app's pods may reach them.
fn shared_cache_is_wired(objects: &[Value]) {
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind && (name.is_empty() || o["metadata"]["name"] == name))
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    let spinapp = find("SpinApp", "");
    let policy = find("NetworkPolicy", "");
    let cache = policy["metadata"]["name"].as_str().unwrap();
    let (service, deployment) = (find("Service", cache), find("Deployment", cache));
    let stores = spinapp["spec"]["runtimeConfig"]["keyValueStores"].as_array().unwrap();
    assert_eq!(stores.len(), 1, "{stores:?}");
    assert_eq!((&stores[0]["name"], &stores[0]["type"]), (&json!("default"), &json!("redis")));
    let url = stores[0]["options"].as_array().unwrap().iter().find(|o| o["name"] == "url").unwrap()["value"]
        .as_str()
        .unwrap();
    let port = service["spec"]["ports"][0]["port"].as_i64().unwrap();
    let host = format!(
        "{}.{}.svc.cluster.local",
        service["metadata"]["name"].as_str().unwrap(),
        service["metadata"]["namespace"].as_str().unwrap()
    );
    assert_eq!(url, format!("redis://{host}:{port}"), "the SpinApp's store is the component's Service");
    assert_eq!(service["metadata"]["namespace"], spinapp["metadata"]["namespace"]);

    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&pod_labels[key], value, "the Service selects the Valkey pods");
    }
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let target = &service["spec"]["ports"][0]["targetPort"];
    assert!(
        container["ports"].as_array().unwrap().iter().any(|p| &p["name"] == target && p["containerPort"] == port),
        "the Service's targetPort is the container's port"
    );
    for (key, value) in policy["spec"]["podSelector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&pod_labels[key], value, "the NetworkPolicy guards the Valkey pods");
    }
    // spin-operator labels the app's pods core.spinkube.dev/app-name=<SpinApp name>.
    let from = &policy["spec"]["ingress"][0]["from"];
    assert_eq!(
        from,
        &json!([{ "podSelector": { "matchLabels": { "core.spinkube.dev/app-name": spinapp["metadata"]["name"] } } }])
    );
    assert_eq!(policy["spec"]["ingress"][0]["ports"], json!([{ "port": target }]));
    // A cache must never evict its generation token (cache.rs): noeviction.
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(args.windows(2).any(|w| w == ["--maxmemory-policy", "noeviction"]), "{args:?}");
}

/// The Deployment spin-operator v0.6.1 creates for a SpinApp run by a SpinAppExecutor with a
/// RuntimeClass, as `constructDeployment` (`internal/controller/spinapp_controller.go`) and the
/// helpers of `internal/controller/deployment.go` build it, with only the fields it sets. The
/// runtime-config Secret's name is a checksum of its contents there; any name does here.
fn operator_deployment(spinapp: &Value, executor: &Value) -> Value {
    let name = spinapp["metadata"]["name"].as_str().unwrap();
    let spec = &spinapp["spec"];
    let config = &executor["spec"]["deploymentConfig"];
    let ready = json!({ "core.spinkube.dev/app-name": name, format!("core.spinkube.dev/app.{name}.status"): "ready" });
    let mut env: Vec<Value> = spec["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|variable| {
            let mut env =
                json!({ "name": format!("SPIN_VARIABLE_{}", variable["name"].as_str().unwrap().to_uppercase()) });
            for field in ["value", "valueFrom"] {
                if let Some(value) = variable.get(field) {
                    env[field] = value.clone();
                }
            }
            env
        })
        .collect();
    env.push(json!({ "name": "SPIN_HTTP_LISTEN_ADDR", "value": "0.0.0.0:80" }));
    if let Some(endpoint) = config["otel"]["exporter_otlp_endpoint"].as_str() {
        env.push(json!({ "name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": endpoint }));
    }
    let probe = |check: &Value| {
        let mut probe = json!({ "httpGet": { "path": check["httpGet"]["path"], "port": 80 } });
        for field in ["initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"]
        {
            if let Some(value) = check.get(field) {
                probe[field] = value.clone();
            }
        }
        probe
    };
    let mut volumes = vec![json!({ "name": "spin-runtime-config", "secret": {
        "secretName": format!("{name}-0123abcd"), "optional": true,
        "items": [{ "key": "runtime-config.toml", "path": "runtime-config.toml" }] } })];
    let mut mounts = vec![json!({ "name": "spin-runtime-config", "readOnly": true,
        "mountPath": "/runtime-config.toml", "subPath": "runtime-config.toml" })];
    if config["installDefaultCACerts"] == json!(true) {
        volumes.push(json!({ "name": "spin-ca", "secret": { "secretName": "spin-ca", "optional": true,
            "items": [{ "key": "ca-certificates.crt", "path": "ca-certificates.crt" }] } }));
        mounts.push(json!({ "name": "spin-ca", "readOnly": true,
            "mountPath": "/etc/ssl/certs/ca-certificates.crt", "subPath": "ca-certificates.crt" }));
    }
    let mut deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "namespace": spinapp["metadata"]["namespace"],
            "labels": { "core.spinkube.dev/app-name": name }, "annotations": {} },
        "spec": {
            "selector": { "matchLabels": ready },
            "template": {
                "metadata": { "labels": ready, "annotations": {} },
                "spec": {
                    "runtimeClassName": config["runtimeClassName"],
                    "serviceAccountName": spec["serviceAccountName"],
                    "containers": [{
                        "name": name,
                        "image": spec["image"],
                        "command": ["/"],
                        "ports": [{ "name": "http-app", "containerPort": 80 }],
                        "env": env,
                        "volumeMounts": mounts,
                        "resources": spec["resources"],
                        "livenessProbe": probe(&spec["checks"]["liveness"]),
                        "readinessProbe": probe(&spec["checks"]["readiness"]),
                    }],
                    "volumes": volumes,
                },
            },
        },
    });
    if let Some(replicas) = spec.get("replicas") {
        deployment["spec"]["replicas"] = replicas.clone();
    }
    deployment
}

/// Server-side apply's merge of `patch` into `live`, for what the drain patch holds: maps merge
/// field by field; a list of objects with names (containers) merges item by item on `name`, as
/// Kubernetes' list-map keys have it; any other value is replaced.
fn apply_merge(live: &mut Value, patch: &Value) {
    match (live, patch) {
        (Value::Object(live), Value::Object(patch)) => {
            for (key, value) in patch {
                match live.get_mut(key) {
                    Some(existing) => apply_merge(existing, value),
                    None => {
                        live.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(live), Value::Array(patch)) if patch.iter().all(|item| item["name"].is_string()) => {
            for item in patch {
                match live.iter_mut().find(|existing| existing["name"] == item["name"]) {
                    Some(existing) => apply_merge(existing, item),
                    None => live.push(item.clone()),
                }
            }
        }
        (live, patch) => *live = patch.clone(),
    }
}

/// Every leaf field of an object, as a path; list items with a name are keyed by it.
fn leaf_fields(value: &Value, path: String, out: &mut Vec<String>) {
    match value {
        Value::Object(fields) if !fields.is_empty() => {
            for (key, value) in fields {
                leaf_fields(value, format!("{path}.{key}"), out);
            }
        }
        Value::Array(items) if items.iter().all(|item| item["name"].is_string()) && !items.is_empty() => {
            for item in items {
                leaf_fields(item, format!("{path}[name={}]", item["name"].as_str().unwrap()), out);
            }
        }
        _ => out.push(path),
    }
}

/// deploy/k8s/drain/deployment.patch.yaml: applied server-side to the Deployment spin-operator
/// creates, it names that Deployment and its container, sets no field the operator sets (the
/// operator applies with force: it would take such a field back), and the result is a valid
/// Deployment whose grace period outlasts the preStop sleep.
#[test]
fn the_drain_patch_merges_into_the_deployment_spin_operator_creates() {
    let patch = file_docs(&root().join("deploy/k8s/drain/deployment.patch.yaml")).remove(0);
    let executor = file_docs(&root().join("deploy/k8s/base/executor.yaml")).remove(0);
    for dir in ["deploy/k8s/base", "deploy/k8s/overlays/autoscaling", "deploy/k8s/overlays/shared-cache"] {
        let objects = kustomize(&root().join(dir));
        let spinapp = objects.iter().find(|o| o["kind"] == "SpinApp").unwrap();
        let deployment = operator_deployment(spinapp, &executor);
        assert_valid(&format!("{dir}: the operator's Deployment (model)"), std::slice::from_ref(&deployment));

        for field in ["name", "namespace"] {
            assert_eq!(patch["metadata"][field], deployment["metadata"][field], "{dir}: the patch's {field}");
        }
        let containers = patch["spec"]["template"]["spec"]["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1);
        assert_eq!(containers[0]["name"], deployment["spec"]["template"]["spec"]["containers"][0]["name"]);

        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        leaf_fields(&patch, String::new(), &mut ours);
        leaf_fields(&deployment, String::new(), &mut theirs);
        let shared: Vec<&String> = ours
            .iter()
            .filter(|path| theirs.contains(path))
            // What identifies the object and the container, not fields of theirs.
            .filter(|path| ![".apiVersion", ".kind", ".metadata.name", ".metadata.namespace"].contains(&path.as_str()))
            .filter(|path| !path.ends_with("].name"))
            .collect();
        assert!(shared.is_empty(), "{dir}: the patch sets fields spin-operator owns: {shared:?}");

        let mut merged = deployment.clone();
        apply_merge(&mut merged, &patch);
        assert_valid(&format!("{dir}: the operator's Deployment with the drain patch"), &[merged.clone()]);
        let pod = &merged["spec"]["template"]["spec"];
        let sleep = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"].as_i64().unwrap();
        let grace = pod["terminationGracePeriodSeconds"].as_i64().unwrap();
        assert!((1..=10).contains(&sleep), "{dir}: preStop sleep {sleep} s");
        assert!(grace >= sleep + 5, "{dir}: grace period {grace} s leaves the exit no room after a {sleep} s sleep");
        assert_eq!(merged["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
        // The patch only adds: everything the operator set is still there.
        let mut after = Vec::new();
        leaf_fields(&merged, String::new(), &mut after);
        assert!(theirs.iter().all(|path| after.contains(path)));
    }
    // A misspelt field in the patch is refused once merged.
    let mut broken = patch.clone();
    broken["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["preStopp"] = json!({ "sleep": { "seconds": 5 } });
    let objects = kustomize(&root().join("deploy/k8s/base"));
    let mut merged = operator_deployment(objects.iter().find(|o| o["kind"] == "SpinApp").unwrap(), &executor);
    apply_merge(&mut merged, &broken);
    assert!(catalogue().errors(&merged).iter().any(|e| e.contains("'preStopp'")), "{:?}", catalogue().errors(&merged));
}

#[test]
fn the_objects_terraform_app_creates_are_valid() {
    for enable_autoscaling in [false, true] {
        for pull_secret in [None, Some("ghcr-pull")] {
            let objects = terraform_app_objects(enable_autoscaling, pull_secret);
            for (resource, object) in &objects {
                assert_valid(
                    &format!("terraform/app (enable_autoscaling={enable_autoscaling}, pull secret {pull_secret:?}) {resource}"),
                    std::slice::from_ref(object),
                );
            }
        }
    }
}

/// The render above follows main.tf: a new `kubernetes_manifest`, or a file main.tf reads
/// that the render does not, must be added to [`terraform_app_objects`].
#[test]
fn the_terraform_render_covers_every_kubernetes_manifest_of_main_tf() {
    let main = read(&root().join("deploy/terraform/app/main.tf"));
    let mut manifests: Vec<&str> = main
        .match_indices("resource \"kubernetes_manifest\" \"")
        .map(|(at, prefix)| main[at + prefix.len()..].split('"').next().unwrap())
        .collect();
    manifests.sort();
    assert_eq!(manifests, ["base", "hpa", "namespace", "shim", "spinapp"], "extend terraform_app_objects()");

    let mut read_files: Vec<&str> = main
        .match_indices("file(\"${local.k8s_dir}/")
        .map(|(at, prefix)| main[at + prefix.len()..].split('"').next().unwrap())
        .collect();
    read_files.sort();
    assert_eq!(
        read_files,
        [
            "base/${f}",
            "base/config.yaml",
            "base/namespace.yaml",
            "base/spinapp.yaml",
            "overlays/autoscaling/hpa.yaml",
            "platform/shim.yaml"
        ],
        "extend terraform_app_objects()"
    );
    for merged in [
        "k != \"replicas\"",
        "image = var.app_image",
        "enableAutoscaling = true",
        "replicas = var.replicas",
        "imagePullSecrets = [{ name = var.image_pull_secret_name }]",
    ] {
        assert!(main.contains(merged), "main.tf's SpinApp merge changed ({merged}): update terraform_app_objects()");
    }
}

/// The "done when" of issue 13: a copy of deploy/k8s with one misspelt field fails, naming
/// the field, in the file and in the kustomize render.
#[test]
fn a_misspelt_field_in_a_copy_of_the_manifests_is_rejected_by_name() {
    let copy = tempfile::tempdir().unwrap();
    copy_tree(&root().join("deploy/k8s"), copy.path());
    let cases = [
        // (file, text, misspelling, the field the error must name)
        ("base/spinapp.yaml", "        path: /readiness\n", "        pth: /readiness\n", "pth"),
        (
            "base/spinapp.yaml",
            "    - name: db_dsn\n      valueFrom:",
            "    - name: db_dsn\n      valuefrom:",
            "valuefrom",
        ),
        ("base/executor.yaml", "    runtimeClassName:", "    runtimeClass:", "runtimeClass"),
        ("platform/shim.yaml", "  rolloutStrategy:", "  rolloutStrategies:", "rolloutStrategies"),
        (
            "monitoring/podmonitors.yaml",
            "      interval: 30s\n      authorization:",
            "      intervall: 30s\n      authorization:",
            "intervall",
        ),
        ("overlays/autoscaling/hpa.yaml", "  maxReplicas: 4", "  maxReplica: 4", "maxReplica"),
        ("base/otel-collector.yaml", "          readinessProbe:", "          readynessProbe:", "readynessProbe"),
        (
            "components/shared-cache/valkey.yaml",
            "          readinessProbe:",
            "          readinessprobe:",
            "readinessprobe",
        ),
        ("components/shared-cache/valkey.yaml", "  policyTypes:", "  policyType:", "policyType"),
    ];
    for (file, text, broken, field) in cases {
        let path = copy.path().join(file);
        let original = read(&path);
        assert_eq!(original.matches(text).count(), 1, "{file}: the text to misspell is not there once: {text:?}");
        std::fs::write(&path, original.replacen(text, broken, 1)).unwrap();

        let mut rendered = file_docs(&path);
        if !file.starts_with("platform/") && !file.starts_with("monitoring/") {
            let kustomization = match file.split('/').next() {
                Some("overlays") => "overlays/autoscaling",
                Some("components") => "overlays/shared-cache",
                _ => "base",
            };
            rendered.extend(kustomize(&copy.path().join(kustomization)));
        }
        let errors: Vec<String> = rendered.iter().flat_map(|o| catalogue().errors(o)).collect();
        assert!(
            errors.iter().any(|e| e.contains(&format!("'{field}'")) && e.contains("unexpected")),
            "{file}: misspelling {field:?} was not reported by name: {errors:#?}"
        );
        std::fs::write(&path, original).unwrap();
    }
}

#[test]
fn a_wrong_api_version_or_an_unknown_kind_is_rejected() {
    let executor = file_docs(&root().join("deploy/k8s/base/executor.yaml")).remove(0);
    for (api_version, kind) in [
        ("core.spinkube.dev/v1", "SpinAppExecutor"),
        ("spinkube.dev/v1alpha1", "SpinAppExecutor"),
        ("core.spinkube.dev/v1alpha1", "SpinAppExecuter"),
        ("runtime.spinkube.dev/v1", "Shim"),
        ("autoscaling/v2beta2", "HorizontalPodAutoscaler"),
    ] {
        let mut object = executor.clone();
        object["apiVersion"] = json!(api_version);
        object["kind"] = json!(kind);
        let errors = catalogue().errors(&object);
        assert!(errors.iter().any(|e| e.starts_with("no schema")), "{api_version} {kind}: {errors:?}");
    }
    // What the SpinApp cannot carry (deploy/README.md, "Shutdown and draining").
    let mut spinapp = file_docs(&root().join("deploy/k8s/base/spinapp.yaml")).remove(0);
    spinapp["spec"]["terminationGracePeriodSeconds"] = json!(30);
    let errors = catalogue().errors(&spinapp);
    assert!(errors.iter().any(|e| e.contains("'terminationGracePeriodSeconds'")), "{errors:?}");

    // Types count too, not only names: a probe period given as a string.
    let mut spinapp = file_docs(&root().join("deploy/k8s/base/spinapp.yaml")).remove(0);
    spinapp["spec"]["checks"]["readiness"]["periodSeconds"] = json!("5s");
    let errors = catalogue().errors(&spinapp);
    assert!(errors.iter().any(|e| e.starts_with("spec.checks.readiness.periodSeconds")), "{errors:?}");
}

/// Our hand-written schemas check values as the CRDs do, not only field names: enums,
/// patterns, bounds and required fields.
#[test]
fn the_custom_resource_schemas_check_values_too() {
    let shim = file_docs(&root().join("deploy/k8s/platform/shim.yaml")).remove(0);
    let monitors = file_docs(&root().join("deploy/k8s/monitoring/podmonitors.yaml"));
    let spinapp = file_docs(&root().join("deploy/k8s/base/spinapp.yaml")).remove(0);
    let cases: Vec<(Value, &str, Value, &str)> = vec![
        (
            shim.clone(),
            "/spec/fetchStrategy/platforms/0/arch",
            json!("ppc64le"),
            "spec.fetchStrategy.platforms[0].arch",
        ),
        (shim.clone(), "/spec/rolloutStrategy/type", json!("blue-green"), "spec.rolloutStrategy.type"),
        (
            monitors[0].clone(),
            "/spec/podMetricsEndpoints/0/interval",
            json!("30 seconds"),
            "spec.podMetricsEndpoints[0].interval",
        ),
        (
            monitors[0].clone(),
            "/spec/podMetricsEndpoints/0/portNumber",
            json!(70000),
            "spec.podMetricsEndpoints[0].portNumber",
        ),
        (spinapp.clone(), "/spec/resources/limits/memory", json!("512 MiB"), "spec.resources.limits.memory"),
        (spinapp.clone(), "/spec/components", json!([]), "spec.components"),
    ];
    for (mut object, pointer, value, reported) in cases {
        // Set (or add, where the manifest leaves the field out) the value in its parent.
        let (parent, field) = pointer.rsplit_once('/').unwrap();
        let parent = object.pointer_mut(parent).unwrap_or_else(|| panic!("{pointer}: no parent"));
        match parent {
            Value::Array(items) => items[field.parse::<usize>().unwrap()] = value.clone(),
            Value::Object(fields) => {
                fields.insert(field.to_owned(), value.clone());
            }
            _ => panic!("{pointer}: the parent is not a container"),
        }
        let errors = catalogue().errors(&object);
        assert!(errors.iter().any(|e| e.starts_with(&format!("{reported}:"))), "{pointer} = {value}: {errors:?}");
    }
    // Required fields: a Shim without its runtimeClass, a PodMonitor without a selector.
    let mut shim = shim;
    shim["spec"].as_object_mut().unwrap().remove("runtimeClass");
    assert!(catalogue().errors(&shim).iter().any(|e| e.contains("runtimeClass")));
    let mut monitor = monitors[0].clone();
    monitor["spec"].as_object_mut().unwrap().remove("selector");
    assert!(catalogue().errors(&monitor).iter().any(|e| e.contains("selector")));
}

/// `spin registry push` in the release workflow writes `ghcr.io/OWNER/integrations-service`
/// with the tags `vX.Y.Z` (a tag push, equal to spin.toml's version) and the commit SHA; the
/// SpinApp (after kustomize) and Terraform's `app_image` must name such an artifact.
#[test]
fn the_spinapp_image_follows_the_release_workflows_tag_scheme() {
    let workflow = read(&root().join(".github/workflows/release.yml"));
    let repository = "ghcr.io/${GITHUB_REPOSITORY_OWNER,,}/integrations-service";
    assert!(workflow.contains(&format!("image=\"{repository}\"")), "release.yml pushes to {repository}");
    for line in [
        "tags=(\"${GITHUB_SHA}\")",
        "tags+=(\"${GITHUB_REF_NAME}\")",
        "if [ \"v${version}\" != \"${GITHUB_REF_NAME}\" ]",
        "spin registry push \"${image}:${tag}\"",
    ] {
        assert!(workflow.contains(line), "release.yml's tag scheme changed ({line}): update this test and deploy/");
    }
    let version = read(&root().join("spin.toml"))
        .lines()
        .find_map(|line| line.strip_prefix("version = \""))
        .map(|v| v.trim_end_matches('"').to_owned())
        .expect("spin.toml's version");

    let follows = |image: &str| -> bool {
        let (repo, tag) = split_image(image);
        let tag = tag.trim_start_matches(':');
        repo.starts_with("ghcr.io/")
            && repo.ends_with("/integrations-service")
            && repo.matches('/').count() == 2
            && (tag == format!("v{version}") || (tag.len() == 40 && tag.chars().all(|c| c.is_ascii_hexdigit())))
    };
    for dir in ["deploy/k8s/base", "deploy/k8s/overlays/autoscaling"] {
        let objects = kustomize(&root().join(dir));
        let image =
            objects.iter().find(|o| o["kind"] == "SpinApp").unwrap()["spec"]["image"].as_str().unwrap().to_owned();
        assert!(
            follows(&image),
            "{dir}: the SpinApp's image {image} is not something release.yml pushes (v{version} or a commit SHA)"
        );
    }
    let variables = read(&root().join("deploy/terraform/app/variables.tf"));
    assert!(variables.contains("REGISTRY/OWNER/integrations-service:TAG (a version tag or a commit SHA)"));
    assert!(follows(&format!("ghcr.io/owner/integrations-service:v{version}")));
    assert!(!follows("ghcr.io/owner/integrations-service:latest"));
}

/// The HPA of the overlay scales what spin-operator creates for the SpinApp: an apps/v1
/// Deployment of the same name (the schema cannot know that).
#[test]
fn the_hpa_targets_the_deployment_spin_operator_creates() {
    let objects = kustomize(&root().join("deploy/k8s/overlays/autoscaling"));
    let spinapp = objects.iter().find(|o| o["kind"] == "SpinApp").unwrap();
    let hpa = objects.iter().find(|o| o["kind"] == "HorizontalPodAutoscaler").unwrap();
    assert_eq!(
        hpa["spec"]["scaleTargetRef"],
        json!({ "apiVersion": "apps/v1", "kind": "Deployment", "name": spinapp["metadata"]["name"] })
    );
    assert_eq!(hpa["metadata"]["namespace"], spinapp["metadata"]["namespace"]);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

// --- our custom-resource schemas --------------------------------------------------------

/// Our schemas are as strict as the CRDs: none of the CRDs preserves unknown fields, so
/// every object of ours closes itself (`additionalProperties: false`, or a schema for the
/// values of a map), and every `$ref` names a definition that exists.
#[test]
fn the_hand_written_schemas_close_every_object() {
    fn lint(node: &Value, at: &str, defs: &Map<String, Value>, problems: &mut Vec<String>) {
        match node {
            Value::Object(object) => {
                let is_object = object
                    .get("type")
                    .is_some_and(|t| t == "object" || t.as_array().is_some_and(|t| t.contains(&json!("object"))));
                if (is_object || object.contains_key("properties")) && !object.contains_key("additionalProperties") {
                    problems.push(format!("{at}: an object without additionalProperties"));
                }
                if object.contains_key("properties") && object.get("additionalProperties") != Some(&json!(false)) {
                    problems.push(format!("{at}: declared fields and additionalProperties other than false"));
                }
                if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
                    let name = reference.strip_prefix("#/$defs/").unwrap_or(reference);
                    if !defs.contains_key(name) {
                        problems.push(format!("{at}: $ref {reference} names no definition"));
                    }
                }
                for (key, value) in object {
                    lint(value, &format!("{at}/{key}"), defs, problems);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    lint(item, &format!("{at}/{i}"), defs, problems);
                }
            }
            _ => {}
        }
    }
    let (defs, kinds) = definitions();
    let mut problems = Vec::new();
    for file in CUSTOM {
        let custom: Value = serde_json::from_str(&read(&schemas_dir().join(file))).unwrap();
        lint(&custom, file, defs, &mut problems);
    }
    assert!(problems.is_empty(), "{problems:#?}");
    let mut found: Vec<_> = kinds.iter().map(|(v, k, _, _)| format!("{v} {k}")).collect();
    found.sort();
    assert_eq!(
        found,
        [
            "core.spinkube.dev/v1alpha1 SpinApp",
            "core.spinkube.dev/v1alpha1 SpinAppExecutor",
            "monitoring.coreos.com/v1 PodMonitor",
            "runtime.spinkube.dev/v1alpha1 Shim"
        ]
    );
}

/// What a schema says of each field, for comparing ours with a CRD: the path of every field
/// (`spec.variables[].valueFrom`, `{}` for a map's values) and, outside the Kubernetes types
/// that ours names by `$ref` (whose fields alone are compared: their details are Kubernetes
/// v1.32.0's), its type, enum, required fields, bounds, whether it has a pattern (the texts
/// are ours), whether it is closed to unknown fields and whether its items are a set.
fn field_outline(
    node: &Value,
    defs: &Map<String, Value>,
    path: &str,
    detailed: bool,
    out: &mut BTreeMap<String, Option<String>>,
) {
    assert!(path.len() < 600, "{path}: too deep (a recursive definition?)");
    if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        let name = reference.strip_prefix("#/$defs/").expect("a local $ref");
        let detailed = detailed && !name.starts_with("io.k8s.");
        return field_outline(&defs[name], defs, path, detailed, out);
    }
    let int_or_string = node.get("x-kubernetes-int-or-string") == Some(&json!(true))
        || node.get("type") == Some(&json!(["integer", "string"]));
    let kind = if int_or_string { "int-or-string".to_owned() } else { node["type"].as_str().unwrap_or("?").to_owned() };
    let mut facts = vec![kind];
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        let mut values: Vec<&str> = values.iter().map(|v| v.as_str().unwrap_or("?")).collect();
        values.sort();
        facts.push(format!("enum={}", values.join("|")));
    }
    if let Some(required) = node.get("required").and_then(Value::as_array) {
        let mut required: Vec<&str> = required.iter().map(|v| v.as_str().unwrap()).collect();
        required.sort();
        facts.push(format!("required={}", required.join(",")));
    }
    for bound in ["minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems"] {
        if let Some(value) = node.get(bound) {
            facts.push(format!("{bound}={value}"));
        }
    }
    if node.get("pattern").is_some() {
        facts.push("pattern".into());
    }
    if node.get("uniqueItems") == Some(&json!(true)) || node.get("x-kubernetes-list-type") == Some(&json!("set")) {
        facts.push("set".into());
    }
    let closes = node.get("type") == Some(&json!("object"))
        && node.get("x-kubernetes-preserve-unknown-fields") != Some(&json!(true))
        && node.get("additionalProperties").is_none_or(|a| a == &json!(false));
    if closes {
        facts.push("closed".into());
    }
    out.insert(path.to_owned(), detailed.then(|| facts.join(" ")));

    let join = |field: &str| if path.is_empty() { field.to_owned() } else { format!("{path}.{field}") };
    for (field, value) in node.get("properties").and_then(Value::as_object).into_iter().flatten() {
        field_outline(value, defs, &join(field), detailed, out);
    }
    if let Some(items) = node.get("items") {
        field_outline(items, defs, &format!("{path}[]"), detailed, out);
    }
    if let Some(values) = node.get("additionalProperties").filter(|a| a.is_object()) {
        field_outline(values, defs, &format!("{path}{{}}"), detailed, out);
    }
}

/// Differences [`the_hand_written_schemas_match_the_crds`] accepts: (kind, path prefix, why).
const KNOWN_DIFFERENCES: [(&str, &str, &str); 1] = [(
    "SpinApp",
    "spec.volumes[].ephemeral.volumeClaimTemplate.metadata.",
    "controller-gen leaves this embedded ObjectMeta an object without fields, so the API server \
     drops (or, strict, refuses) whatever it holds; ours names Kubernetes' Volume, whose ObjectMeta \
     has its fields. A corner no manifest of ours uses",
)];

/// Run when a version changes (SOURCES.md): `CRD_DIR` names a directory of the new CRD YAML
/// files (any names, several documents per file allowed), e.g. spin-operator's release
/// asset `spin-operator.crds.yaml`. Every field of each CRD's served version must be in our
/// schema and the other way round, with the same facts ([`field_outline`]).
#[test]
#[ignore = "needs CRD_DIR: a directory holding the CRDs to compare with (SOURCES.md)"]
fn the_hand_written_schemas_match_the_crds() {
    let dir = std::env::var("CRD_DIR").expect("CRD_DIR: a directory holding the CRD YAML files");
    let mut crds = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            continue;
        }
        for crd in file_docs(&path).into_iter().filter(|d| d["kind"] == "CustomResourceDefinition") {
            let group = crd["spec"]["group"].as_str().unwrap().to_owned();
            for version in crd["spec"]["versions"].as_array().unwrap() {
                if version["served"] == json!(true) {
                    let key = (
                        api_version(&group, version["name"].as_str().unwrap()),
                        crd["spec"]["names"]["kind"].as_str().unwrap().to_owned(),
                    );
                    crds.insert(key, version["schema"]["openAPIV3Schema"].clone());
                }
            }
        }
    }
    let (defs, kinds) = definitions();
    let mut differences = Vec::new();
    for (api_version, kind, file, ours) in kinds {
        let Some(crd) = crds.get(&(api_version.clone(), kind.clone())) else {
            differences.push(format!("{api_version} {kind} ({file}): no CRD for it in {dir}"));
            continue;
        };
        let mut crd = crd.clone();
        for field in ["apiVersion", "kind", "metadata"] {
            crd["properties"].as_object_mut().unwrap().remove(field);
        }
        let (mut theirs, mut mine) = (BTreeMap::new(), BTreeMap::new());
        field_outline(&crd, &Map::new(), "", true, &mut theirs);
        field_outline(ours, defs, "", true, &mut mine);
        for path in theirs.keys().chain(mine.keys()).collect::<std::collections::BTreeSet<_>>() {
            if KNOWN_DIFFERENCES.iter().any(|(k, prefix, _)| k == kind && path.starts_with(prefix)) {
                continue;
            }
            match (theirs.get(path), mine.get(path)) {
                (Some(_), None) => differences.push(format!("{kind} {path}: in the CRD, not in {file}")),
                (None, Some(_)) => differences.push(format!("{kind} {path}: in {file}, not in the CRD")),
                (Some(Some(crd)), Some(Some(ours))) if crd != ours => {
                    differences.push(format!("{kind} {path}: the CRD says `{crd}`, {file} `{ours}`"))
                }
                _ => {}
            }
        }
        println!("{api_version} {kind}: {} fields compared with {file}", theirs.len());
    }
    assert!(differences.is_empty(), "{} differences:\n{}", differences.len(), differences.join("\n"));
}
