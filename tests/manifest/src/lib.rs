//! `spin.toml`, read one way: the app's manifest as typed data. The core's tests check it against
//! the route table and the variables, the end-to-end and deployment tests read the components
//! and routes from it, and `tests/run` asks it which packages to build (`app-manifest
//! build-packages`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The parts of a Spin manifest (version 2) this project uses.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Manifest {
    pub application: Application,
    #[serde(default)]
    pub variables: BTreeMap<String, Variable>,
    pub trigger: Triggers,
    pub component: BTreeMap<String, Component>,
}

#[derive(Debug, Deserialize)]
pub struct Application {
    pub name: String,
    pub version: String,
}

/// A `[variables]` entry.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct Variable {
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
}

#[derive(Debug, Deserialize)]
pub struct Triggers {
    pub http: Vec<HttpTrigger>,
}

/// A `[[trigger.http]]`.
#[derive(Debug, Deserialize)]
pub struct HttpTrigger {
    pub route: String,
    pub component: String,
}

/// A `[component.<id>]`.
#[derive(Debug, Deserialize)]
pub struct Component {
    pub source: String,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    /// The variables the component is given, and the template each one's value comes from.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    pub build: Option<Build>,
}

#[derive(Debug, Deserialize)]
pub struct Build {
    pub command: String,
    #[serde(default)]
    pub watch: Vec<String>,
}

/// The build commands' shape: each component is one package of the workspace.
const BUILD_PREFIX: &str = "cargo build --target wasm32-wasip2 --release -p ";

impl Manifest {
    /// The manifest at `path`.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The repository's `spin.toml`.
    pub fn of_the_app() -> Self {
        Self::load(&Self::path()).unwrap_or_else(|error| panic!("{error}"))
    }

    pub fn path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spin.toml")
    }

    /// The workspace package each component's build command builds, by component id.
    pub fn packages(&self) -> Result<BTreeMap<&str, &str>, String> {
        let mut packages = BTreeMap::new();
        for (id, component) in &self.component {
            let command = component.build.as_ref().map(|build| build.command.as_str()).unwrap_or_default();
            let package = command.strip_prefix(BUILD_PREFIX).filter(|package| !package.contains(' '));
            let package = package.ok_or_else(|| format!("component {id}: build is not `{BUILD_PREFIX}<package>`"))?;
            packages.insert(id.as_str(), package);
        }
        Ok(packages)
    }

    /// The component each `[[trigger.http]]` route reaches.
    pub fn routes(&self) -> BTreeMap<&str, &str> {
        self.trigger.http.iter().map(|trigger| (trigger.route.as_str(), trigger.component.as_str())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apps_manifest_builds_one_package_per_component() {
        let manifest = Manifest::of_the_app();
        let packages = manifest.packages().unwrap();
        assert_eq!(packages.len(), manifest.component.len());
        assert!(packages.values().all(|package| package.starts_with("integrations-")), "{packages:?}");
        assert!(manifest.routes().values().all(|component| manifest.component.contains_key(*component)));
    }

    #[test]
    fn a_build_command_of_another_shape_is_an_error_naming_the_component() {
        let text = r#"
            spin_manifest_version = 2
            [application]
            name = "x"
            version = "1"
            [[trigger.http]]
            route = "/"
            component = "c"
            [component.c]
            source = "c.wasm"
            [component.c.build]
            command = "make c"
        "#;
        let manifest: Manifest = toml::from_str(text).unwrap();
        assert!(manifest.packages().unwrap_err().contains("component c"));
    }
}
