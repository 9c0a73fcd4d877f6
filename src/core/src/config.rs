//! Settings, read from Spin variables. Each component is given only the variables it
//! uses; one it was not given reads as unset.

use crate::store::Backend;

/// Where configuration comes from: Spin variables on the host, a map in tests.
pub trait Variables {
    /// The variable's value; `None` when it is unset, empty, or not given to this component.
    fn get(&self, name: &str) -> Option<String>;

    fn flag(&self, name: &str, default: bool) -> bool {
        match self.get(name).map(|value| value.trim().to_ascii_lowercase()) {
            Some(value) if ["true", "1", "yes", "on"].contains(&value.as_str()) => true,
            Some(value) if ["false", "0", "no", "off"].contains(&value.as_str()) => false,
            _ => default,
        }
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
        let choice = variables.get("db_backend").unwrap_or_else(|| "auto".into());
        match (choice.trim().to_ascii_lowercase().as_str(), dsn) {
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
        variables.get("log_level").and_then(|level| Self::parse(&level)).unwrap_or(Self::Info)
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
    fn flags_accept_the_usual_spellings() {
        let vars = MapVariables::default().with("a", "TRUE").with("b", "off").with("c", "maybe");
        assert!(vars.flag("a", false));
        assert!(!vars.flag("b", true));
        assert!(vars.flag("c", true));
    }
}
