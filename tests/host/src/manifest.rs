//! The parts of a Spin application manifest (`spin_manifest_version = 2`) the test host runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;

/// A loaded `spin.toml`.
#[derive(Debug, Clone)]
pub struct AppManifest {
    /// The directory holding the manifest: component sources and build commands are relative to it.
    pub dir: PathBuf,
    pub name: String,
    pub variables: BTreeMap<String, VariableDecl>,
    /// `[[trigger.http]]` entries, in manifest order.
    pub http_routes: Vec<HttpRoute>,
    pub components: BTreeMap<String, ComponentManifest>,
}

/// An application variable (`[variables]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    pub route: String,
    pub component: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentManifest {
    pub id: String,
    /// Absolute path of the component's Wasm file.
    pub source: PathBuf,
    /// Component variable templates (`[component.x.variables]`), e.g. `"{{ db_dsn }}"`.
    pub variables: BTreeMap<String, String>,
    pub allowed_outbound_hosts: Vec<String>,
    pub sqlite_databases: Vec<String>,
    pub environment: BTreeMap<String, String>,
    pub build: Option<BuildConfig>,
}

/// `[component.x.build]`: what `spin build` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildConfig {
    pub command: String,
    /// Where the command runs: the manifest's directory, or its `workdir` under it.
    pub workdir: PathBuf,
}

impl AppManifest {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading manifest {}", path.display()))?;
        let path = std::path::absolute(path)?;
        let dir = path.parent().context("manifest path has no directory")?.to_path_buf();
        Self::parse(&text, &dir).with_context(|| format!("invalid manifest {}", path.display()))
    }

    /// Parses manifest text; relative paths are resolved against `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<Self> {
        let raw: RawManifest = toml::from_str(text)?;
        ensure!(
            raw.spin_manifest_version == 2,
            "only spin_manifest_version = 2 is supported, found {}",
            raw.spin_manifest_version
        );
        for (name, variable) in &raw.variables {
            crate::variables::validate_name(name).with_context(|| format!("invalid variable name {name:?}"))?;
            ensure!(
                variable.required ^ variable.default.is_some(),
                "variable {name:?}: must be `required` OR have a `default`"
            );
        }

        let mut http_routes = Vec::new();
        for (trigger_type, triggers) in &raw.trigger {
            if trigger_type != "http" {
                bail!("trigger type {trigger_type:?} is not supported by the test host");
            }
            for trigger in triggers {
                let route = match &trigger.route {
                    RawRoute::Path(route) => route.clone(),
                    RawRoute::Private { private: true } => continue,
                    RawRoute::Private { private: false } => bail!(
                        "route must be a string pattern or '{{ private = true }}': '{}' has {{ private = false }}",
                        trigger.component
                    ),
                };
                ensure!(
                    raw.component.contains_key(&trigger.component),
                    "trigger for route {route:?} names unknown component {:?}",
                    trigger.component
                );
                http_routes.push(HttpRoute { route, component: trigger.component.clone() });
            }
        }

        let mut components = BTreeMap::new();
        for (id, component) in raw.component {
            let build = component.build.map(|build| BuildConfig {
                command: build.command,
                workdir: match build.workdir {
                    Some(workdir) => dir.join(workdir),
                    None => dir.to_path_buf(),
                },
            });
            for template in component.variables.values() {
                crate::variables::Template::parse(template)
                    .with_context(|| format!("component {id:?}: invalid variable template"))?;
            }
            let manifest = ComponentManifest {
                id: id.clone(),
                source: dir.join(component.source),
                variables: component.variables,
                allowed_outbound_hosts: component.allowed_outbound_hosts,
                sqlite_databases: component.sqlite_databases,
                environment: component.environment,
                build,
            };
            components.insert(id, manifest);
        }

        Ok(Self {
            dir: dir.to_path_buf(),
            name: raw.application.name,
            variables: raw.variables,
            http_routes,
            components,
        })
    }
}

#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: u32,
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    trigger: BTreeMap<String, Vec<RawTrigger>>,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize)]
struct RawApplication {
    name: String,
}

#[derive(Deserialize)]
struct RawTrigger {
    route: RawRoute,
    component: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRoute {
    Path(String),
    Private { private: bool },
}

#[derive(Deserialize)]
struct RawComponent {
    source: PathBuf,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    build: Option<RawBuild>,
}

#[derive(Deserialize)]
struct RawBuild {
    command: String,
    #[serde(default)]
    workdir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
        spin_manifest_version = 2
        [application]
        name = "demo"
        [variables]
        db_dsn = { default = "", secret = true }
        token = { required = true }
        [[trigger.http]]
        route = "/a"
        component = "one"
        [[trigger.http]]
        route = "/b/..."
        component = "one"
        [component.one]
        source = "target/one.wasm"
        allowed_outbound_hosts = ["postgres://{{ db_host }}"]
        sqlite_databases = ["default"]
        [component.one.variables]
        dsn = "{{ db_dsn }}"
        [component.one.build]
        command = "cargo build -p one"
    "#;

    #[test]
    fn reads_variables_routes_and_components() {
        let manifest = AppManifest::parse(MANIFEST, Path::new("/app")).unwrap();
        assert_eq!(manifest.name, "demo");
        assert_eq!(manifest.variables["db_dsn"].default.as_deref(), Some(""));
        assert!(manifest.variables["db_dsn"].secret);
        assert!(manifest.variables["token"].required);
        let routes: Vec<_> = manifest.http_routes.iter().map(|r| r.route.as_str()).collect();
        assert_eq!(routes, ["/a", "/b/..."]);
        let one = &manifest.components["one"];
        assert_eq!(one.source, Path::new("/app/target/one.wasm"));
        assert_eq!(one.variables["dsn"], "{{ db_dsn }}");
        assert_eq!(one.allowed_outbound_hosts, ["postgres://{{ db_host }}"]);
        assert_eq!(one.sqlite_databases, ["default"]);
        let build = one.build.as_ref().unwrap();
        assert_eq!(build.command, "cargo build -p one");
        assert_eq!(build.workdir, Path::new("/app"));
    }

    #[test]
    fn a_variable_is_required_or_has_a_default() {
        let both = MANIFEST.replace("{ required = true }", "{ required = true, default = \"x\" }");
        let error = AppManifest::parse(&both, Path::new("/app")).unwrap_err();
        assert!(format!("{error:#}").contains("must be `required` OR have a `default`"));
        let neither = MANIFEST.replace("{ required = true }", "{ secret = true }");
        assert!(AppManifest::parse(&neither, Path::new("/app")).is_err());
    }
}
