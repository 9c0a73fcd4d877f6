//! Settings, read from Spin variables. [`VARIABLES`] is the one list of them, with their
//! defaults: spin.toml's `[variables]` must declare exactly these (a unit test checks it), and a
//! component reads a variable it was not given, or one it cannot parse, as its default here.

use crate::store::Backend;

/// A Spin variable of this app.
#[derive(Debug)]
pub struct Variable {
    pub name: &'static str,
    pub default: &'static str,
    pub secret: bool,
}

const fn variable(name: &'static str, default: &'static str) -> Variable {
    Variable { name, default, secret: false }
}

const fn secret(name: &'static str) -> Variable {
    Variable { name, default: "", secret: true }
}

/// Every variable, as spin.toml declares it.
pub const VARIABLES: &[Variable] = &[
    secret("db_dsn"),
    variable("db_host", "localhost:5432"),
    variable("db_backend", "auto"),
    variable("log_level", "info"),
    variable("metrics_enabled", "true"),
    secret("metrics_token"),
    secret("admin_token"),
    secret("settings_keyring"),
    variable("cors_allowed_origins", "*"),
    variable("cache_ttl_ms", "1000"),
    variable("history_retention", "100"),
];

/// The default of a variable of [`VARIABLES`].
pub fn default_of(name: &str) -> &'static str {
    VARIABLES
        .iter()
        .find(|variable| variable.name == name)
        .unwrap_or_else(|| panic!("{name} is not a variable of this app"))
        .default
}

/// Where configuration comes from: Spin variables on the host, a map in tests.
pub trait Variables {
    /// The variable's value; `None` when it is unset, empty, or not given to this component.
    fn get(&self, name: &str) -> Option<String>;

    /// The value, else its default.
    fn value(&self, name: &str) -> String {
        self.get(name).unwrap_or_else(|| default_of(name).to_owned())
    }

    fn flag(&self, name: &str) -> bool {
        parse_flag(&self.value(name)).or_else(|| parse_flag(default_of(name))).unwrap_or(false)
    }

    /// A whole number; the default when the value is not one.
    fn number(&self, name: &str) -> u32 {
        self.value(name).trim().parse().or_else(|_| default_of(name).parse()).unwrap_or(0)
    }
}

fn parse_flag(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Which database a request should use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    Postgres {
        dsn: String,
    },
    Sqlite,
    /// Says why no database can be used; every database request answers 503.
    Misconfigured {
        backend: Backend,
        why: &'static str,
    },
}

impl Storage {
    /// `db_backend` = `auto` (the default: PostgreSQL when `db_dsn` is set, else
    /// SQLite), `postgres` (a DSN is required: no silent fallback to a pod-local file),
    /// or `sqlite`.
    pub fn from_variables(variables: &dyn Variables) -> Self {
        let dsn = variables.get("db_dsn");
        match (variables.value("db_backend").trim().to_ascii_lowercase().as_str(), dsn) {
            ("sqlite", _) | ("auto", None) => Self::Sqlite,
            ("postgres" | "auto", Some(dsn)) if is_postgres_dsn(&dsn) => Self::Postgres { dsn },
            ("postgres" | "auto", Some(_)) => {
                Self::misconfigured_postgres("db_dsn is not a postgres:// or postgresql:// URL")
            }
            ("postgres", None) => Self::misconfigured_postgres("db_backend is postgres but db_dsn is not set"),
            _ => Self::misconfigured_postgres("db_backend must be auto, postgres or sqlite"),
        }
    }

    fn misconfigured_postgres(why: &'static str) -> Self {
        Self::Misconfigured { backend: Backend::Postgres, why }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Postgres { .. } => Backend::Postgres,
            Self::Sqlite => Backend::Sqlite,
            Self::Misconfigured { backend, .. } => *backend,
        }
    }
}

fn is_postgres_dsn(dsn: &str) -> bool {
    let lower = dsn.trim().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// `log_level`: lines below it are not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn from_variables(variables: &dyn Variables) -> Self {
        Self::parse(&variables.value("log_level"))
            .or_else(|| Self::parse(default_of("log_level")))
            .unwrap_or(Self::Info)
    }

    fn parse(level: &str) -> Option<Self> {
        Some(match level.trim().to_ascii_lowercase().as_str() {
            "trace" => Self::Trace,
            "debug" => Self::Debug,
            "info" => Self::Info,
            "warn" | "warning" => Self::Warn,
            "error" => Self::Error,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

#[cfg(test)]
pub mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Variables for tests: a plain map.
    #[derive(Default)]
    pub struct MapVariables(pub HashMap<&'static str, String>);

    impl MapVariables {
        pub fn with(mut self, name: &'static str, value: &str) -> Self {
            self.0.insert(name, value.into());
            self
        }
    }

    impl Variables for MapVariables {
        fn get(&self, name: &str) -> Option<String> {
            self.0.get(name).filter(|value| !value.is_empty()).cloned()
        }
    }

    fn storage(pairs: &[(&'static str, &str)]) -> Storage {
        let variables = pairs.iter().fold(MapVariables::default(), |vars, (name, value)| vars.with(name, value));
        Storage::from_variables(&variables)
    }

    #[test]
    fn spin_toml_declares_exactly_these_variables_with_these_defaults() {
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spin.toml");
        let manifest = std::fs::read_to_string(manifest).unwrap();
        let section = manifest.split("[variables]").nth(1).unwrap().split("\n[").next().unwrap();
        let declared: Vec<String> = section
            .lines()
            .map(str::trim)
            .filter(|line| !line.starts_with('#') && line.contains('='))
            .map(str::to_owned)
            .collect();
        let expected: Vec<String> = VARIABLES
            .iter()
            .map(|v| match v.secret {
                true => format!("{} = {{ default = \"{}\", secret = true }}", v.name, v.default),
                false => format!("{} = {{ default = \"{}\" }}", v.name, v.default),
            })
            .collect();
        assert_eq!(declared, expected, "spin.toml's [variables] and config::VARIABLES differ");
    }

    #[test]
    fn auto_picks_postgres_when_a_dsn_is_set_and_sqlite_otherwise() {
        let dsn = "postgres://app@db:5432/app";
        assert_eq!(storage(&[("db_dsn", dsn)]), Storage::Postgres { dsn: dsn.into() });
        assert_eq!(storage(&[]), Storage::Sqlite);
        assert_eq!(storage(&[("db_backend", "sqlite"), ("db_dsn", dsn)]), Storage::Sqlite);
    }

    #[test]
    fn postgres_without_a_dsn_never_falls_back_to_sqlite() {
        assert!(matches!(storage(&[("db_backend", "postgres")]), Storage::Misconfigured { .. }));
        assert!(matches!(storage(&[("db_dsn", "mysql://x")]), Storage::Misconfigured { .. }));
        assert!(matches!(storage(&[("db_backend", "mongo")]), Storage::Misconfigured { .. }));
    }

    #[test]
    fn log_levels_parse_case_insensitively_and_default_to_info() {
        let level = |value| LogLevel::from_variables(&MapVariables::default().with("log_level", value));
        assert_eq!(level("WARN"), LogLevel::Warn);
        assert_eq!(level("nonsense"), LogLevel::Info);
    }

    #[test]
    fn flags_and_numbers_fall_back_to_their_defaults() {
        let vars = MapVariables::default().with("metrics_enabled", "maybe").with("cache_ttl_ms", "-5");
        assert!(vars.flag("metrics_enabled"), "the default is true");
        assert_eq!(vars.number("cache_ttl_ms"), 1000);
        assert!(!MapVariables::default().with("metrics_enabled", "off").flag("metrics_enabled"));
        assert_eq!(MapVariables::default().number("history_retention"), 100);
    }
}
