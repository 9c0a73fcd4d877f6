//! Spin's application variables: component templates over `[variables]`, resolved from an
//! explicit map (as `spin up --variable`), then `SPIN_VARIABLE_<NAME>` in the environment, then
//! the variable's default. Values are looked up when a component asks, as Spin does.

use std::collections::{BTreeMap, HashMap};

use anyhow::{anyhow, bail, Result};

use crate::manifest::{AppManifest, VariableDecl};

/// Prefix of the environment variables Spin's default provider reads.
pub const ENV_PREFIX: &str = "SPIN_VARIABLE_";

/// A template such as `"postgres://{{ db_host }}"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

impl Template {
    pub fn parse(text: &str) -> Result<Self> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after_open) = rest.strip_prefix("{{") {
                let Some((expression, after)) = after_open.split_once("}}") else {
                    bail!("invalid variable template: unmatched '{{{{' in template");
                };
                parts.push(Part::Variable(expression.trim().to_string()));
                rest = after;
            } else {
                let end = rest.find("{{").unwrap_or(rest.len());
                parts.push(Part::Literal(rest[..end].to_string()));
                rest = &rest[end..];
            }
        }
        Ok(Self { parts })
    }

    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|part| matches!(part, Part::Literal(_)))
    }

    fn variable_names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Variable(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }
}

/// The errors of `fermyon:spin/variables@2.0.0`, with Spin's texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariableError {
    InvalidName(String),
    Undefined(String),
    Provider(String),
    Other(String),
}

impl std::fmt::Display for VariableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidName(message) => write!(f, "invalid variable name: {message}"),
            Self::Undefined(message) => write!(f, "undefined variable: {message}"),
            Self::Provider(message) => write!(f, "provider error: {message}"),
            Self::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for VariableError {}

/// Checks a variable name as Spin does: lower-case ASCII letters, digits and single underscores,
/// starting with a letter and not ending with an underscore.
pub fn validate_name(name: &str) -> Result<(), VariableError> {
    let reason = if name.is_empty() {
        Some("must not be empty".to_string())
    } else if let Some(c) = name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')) {
        Some(format!(
            "invalid character {c:?}. Variable names may contain only lower-case letters, numbers, and underscores."
        ))
    } else if !name.as_bytes()[0].is_ascii_lowercase() {
        Some("must start with a lowercase ASCII letter".to_string())
    } else if !name.as_bytes()[name.len() - 1].is_ascii_alphanumeric() {
        Some("must end with a lowercase ASCII letter or digit".to_string())
    } else if name.contains("__") {
        Some("must not contain multiple consecutive underscores".to_string())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(VariableError::InvalidName(format!("{name:?}: {reason}"))),
        None => Ok(()),
    }
}

/// Where values come from, highest priority first.
#[derive(Debug, Clone, Default)]
pub struct VariableSources {
    /// Values given by the caller (tests, `--var`), like `spin up --variable`.
    pub explicit: HashMap<String, String>,
    /// Whether to read `SPIN_VARIABLE_<NAME>` from the process environment.
    pub read_env: bool,
}

impl VariableSources {
    fn lookup(&self, name: &str) -> Option<String> {
        if let Some(value) = self.explicit.get(name) {
            return Some(value.clone());
        }
        if self.read_env {
            return std::env::var(format!("{ENV_PREFIX}{}", name.to_ascii_uppercase())).ok();
        }
        None
    }
}

/// Resolves component variables for one application.
#[derive(Debug)]
pub struct VariableResolver {
    declared: BTreeMap<String, VariableDecl>,
    /// component id -> variable name -> template
    component_templates: HashMap<String, HashMap<String, Template>>,
    sources: VariableSources,
}

impl VariableResolver {
    /// Checks the manifest's templates and that every required variable has a value, as Spin does
    /// at load.
    pub fn new(manifest: &AppManifest, sources: VariableSources) -> Result<Self> {
        let mut component_templates = HashMap::new();
        for component in manifest.components.values() {
            let mut templates = HashMap::new();
            for (key, text) in &component.variables {
                validate_name(key).map_err(|e| anyhow!("component {:?}: {e}", component.id))?;
                let template = Template::parse(text)?;
                for name in template.variable_names() {
                    if !manifest.variables.contains_key(name) {
                        bail!("component {:?}: invalid variable template: unknown variable {name:?}", component.id);
                    }
                }
                templates.insert(key.clone(), template);
            }
            component_templates.insert(component.id.clone(), templates);
        }
        let resolver = Self { declared: manifest.variables.clone(), component_templates, sources };
        resolver.ensure_required_variables_have_values()?;
        Ok(resolver)
    }

    fn ensure_required_variables_have_values(&self) -> Result<()> {
        let missing: Vec<&str> = self
            .declared
            .iter()
            .filter(|(name, decl)| decl.default.is_none() && self.sources.lookup(name).is_none())
            .map(|(name, _)| name.as_str())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let hints: Vec<String> =
            missing.iter().map(|name| format!("{name} (set {ENV_PREFIX}{})", name.to_ascii_uppercase())).collect();
        bail!("no provider resolved required variable(s): {}", hints.join(", "))
    }

    /// `variables.get(key)` for a component.
    pub fn resolve(&self, component_id: &str, key: &str) -> Result<String, VariableError> {
        validate_name(key)?;
        let templates = self
            .component_templates
            .get(component_id)
            .ok_or_else(|| VariableError::Undefined(format!("no variable for component {component_id:?}")))?;
        let template = templates
            .get(key)
            .ok_or_else(|| VariableError::Undefined(format!("no variable for {component_id:?}.{key:?}")))?;
        self.resolve_template(template)
    }

    /// Expands a template over the application variables (e.g. an allowed_outbound_hosts entry).
    pub fn resolve_template(&self, template: &Template) -> Result<String, VariableError> {
        let mut value = String::new();
        for part in &template.parts {
            match part {
                Part::Literal(text) => value.push_str(text),
                Part::Variable(name) => value.push_str(&self.resolve_variable(name)?),
            }
        }
        Ok(value)
    }

    fn resolve_variable(&self, name: &str) -> Result<String, VariableError> {
        if let Some(value) = self.sources.lookup(name) {
            return Ok(value);
        }
        let declared = self.declared.get(name).ok_or_else(|| VariableError::InvalidName(name.to_string()))?;
        declared
            .default
            .clone()
            .ok_or_else(|| VariableError::Provider(format!("no provider resolved required variable {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const MANIFEST: &str = r#"
        spin_manifest_version = 2
        [application]
        name = "demo"
        [variables]
        db_host = { default = "localhost:5432" }
        token = { required = true }
        greeting = { default = "hello" }
        [component.one]
        source = "one.wasm"
        [component.one.variables]
        host = "{{ db_host }}"
        url = "postgres://{{db_host}}/db"
        token = "{{ token }}"
        fixed = "literal"
        [component.two]
        source = "two.wasm"
    "#;

    fn resolver(explicit: &[(&str, &str)]) -> Result<VariableResolver> {
        let manifest = AppManifest::parse(MANIFEST, Path::new("/app")).unwrap();
        let explicit = explicit.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        VariableResolver::new(&manifest, VariableSources { explicit, read_env: false })
    }

    #[test]
    fn templates_split_into_literals_and_variables() {
        let template = Template::parse("a-{{ x }}-b{{y}}").unwrap();
        assert_eq!(template.variable_names().collect::<Vec<_>>(), ["x", "y"]);
        assert!(Template::parse("plain").unwrap().is_literal());
        assert!(Template::parse("{{ open").is_err());
    }

    #[test]
    fn required_variable_without_a_value_fails_at_load() {
        let error = resolver(&[]).unwrap_err().to_string();
        assert!(error.contains("token"), "{error}");
        assert!(error.contains("SPIN_VARIABLE_TOKEN"), "{error}");
    }

    #[test]
    fn explicit_values_win_over_defaults() {
        let resolver = resolver(&[("token", "t"), ("db_host", "db:1")]).unwrap();
        assert_eq!(resolver.resolve("one", "host").unwrap(), "db:1");
        assert_eq!(resolver.resolve("one", "url").unwrap(), "postgres://db:1/db");
        assert_eq!(resolver.resolve("one", "token").unwrap(), "t");
        assert_eq!(resolver.resolve("one", "fixed").unwrap(), "literal");
    }

    #[test]
    fn defaults_apply_when_nothing_else_is_set() {
        let resolver = resolver(&[("token", "t")]).unwrap();
        assert_eq!(resolver.resolve("one", "host").unwrap(), "localhost:5432");
    }

    #[test]
    fn a_component_sees_only_its_own_variables() {
        let resolver = resolver(&[("token", "t")]).unwrap();
        assert_eq!(
            resolver.resolve("two", "host"),
            Err(VariableError::Undefined("no variable for \"two\".\"host\"".into()))
        );
        assert_eq!(
            resolver.resolve("one", "greeting"),
            Err(VariableError::Undefined("no variable for \"one\".\"greeting\"".into()))
        );
    }

    #[test]
    fn invalid_names_are_rejected_like_spin() {
        let resolver = resolver(&[("token", "t")]).unwrap();
        for name in ["", "Host", "1a", "_a", "a_", "a__b", "a-b"] {
            assert!(matches!(resolver.resolve("one", name), Err(VariableError::InvalidName(_))), "{name:?}");
        }
        for name in ["a", "a1", "a_1_b"] {
            assert!(validate_name(name).is_ok(), "{name:?}");
        }
    }

    #[test]
    fn environment_is_read_when_enabled() {
        // A name no other test uses, so setting it cannot disturb them.
        let manifest = AppManifest::parse(
            &MANIFEST
                .replace("greeting = { default = \"hello\" }", "env_probe_x = { default = \"d\" }")
                .replace("fixed = \"literal\"", "probe = \"{{ env_probe_x }}\""),
            Path::new("/app"),
        )
        .unwrap();
        // SAFETY: set once before reading, by this test only.
        unsafe { std::env::set_var("SPIN_VARIABLE_ENV_PROBE_X", "from-env") };
        let sources = VariableSources { explicit: [("token".to_string(), "t".to_string())].into(), read_env: true };
        let resolver = VariableResolver::new(&manifest, sources).unwrap();
        assert_eq!(resolver.resolve("one", "probe").unwrap(), "from-env");
    }
}
