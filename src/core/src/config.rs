//! Settings, read from Spin variables. Each variable is declared once, in [`variables!`] below:
//! its name, its type, its one default and whether it is secret. From that line come
//! [`VARIABLES`] (spin.toml's `[variables]` must be exactly these: a test checks it) and one typed
//! accessor on [`Config`] (`config.cache_ttl_ms()`), so a misspelt variable does not compile.
//!
//! An accessor answers the value, the default when the value is empty, or [`Misconfigured`]
//! naming the variable when the value does not parse, or when spin.toml does not give the
//! variable to the component asking for it (Spin says so; it never silently means the default).
//! The API answers that with a 500 (readiness: 503) and a log line naming the variable, never its
//! value.

use std::fmt;
use std::num::NonZeroU32;

use crate::seal::Keyring;

/// A Spin variable of this app, as spin.toml declares it.
#[derive(Debug)]
pub struct Variable {
    pub name: &'static str,
    pub default: &'static str,
    pub secret: bool,
}

/// Where the values come from: Spin variables on the host, a map in tests.
pub trait Variables {
    /// The value given to this component (`""` when empty), or why there is none: spin.toml does
    /// not give this component the variable ([`NOT_GIVEN`]), or its provider could not be read.
    fn get(&self, name: &'static str) -> Result<String, &'static str>;
}

/// Why a component has no value for a variable it asks for.
pub const NOT_GIVEN: &str = "not given to this component in spin.toml";

/// The typed view of a component's variables.
#[derive(Clone, Copy)]
pub struct Config<'a>(pub &'a dyn Variables);

/// Every variable at its default (e.g. `DEFAULTS.history_retention()`).
pub const DEFAULTS: Config<'static> = Config(&Defaults);

struct Defaults;

impl Variables for Defaults {
    fn get(&self, _name: &'static str) -> Result<String, &'static str> {
        Ok(String::new())
    }
}

/// A variable whose value cannot be used: the operator's to fix. `why` never holds the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Misconfigured {
    /// The variable, or what else of spin.toml is wrong.
    pub what: &'static str,
    pub why: &'static str,
}

impl fmt::Display for Misconfigured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.why)
    }
}

/// How a variable's text becomes its value.
pub trait Parse: Sized {
    /// `text` is trimmed and not empty; the error says why, never what the text was.
    fn parse(text: &str) -> Result<Self, &'static str>;
}

macro_rules! variables {
    ($( $(#[$doc:meta])* $name:ident: $type:ty = $default:literal $(, $secret:ident)?; )*) => {
        /// Every variable, in spin.toml's order.
        pub const VARIABLES: &[Variable] = &[$(
            Variable { name: stringify!($name), default: $default, secret: variables!(@secret $($secret)?) },
        )*];

        impl Config<'_> {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> Result<$type, Misconfigured> {
                    self.value(stringify!($name), $default)
                }
            )*
        }

        #[cfg(test)]
        mod defaults {
            use super::*;

            /// Every default is a value of its variable's type.
            #[test]
            fn every_default_parses() {
                $( assert!(Config(&tests::MapVariables::default()).$name().is_ok(), stringify!($name)); )*
            }
        }
    };
    (@secret secret) => { true };
    (@secret) => { false };
}

variables! {
    /// PostgreSQL URL (`postgres://user:pass@host:port/db?sslmode=require`); `None`: Spin's SQLite.
    db_dsn: Option<String> = "", secret;
    /// `host:port` of `db_dsn`. Spin itself reads it (`allowed_outbound_hosts`); no component does.
    db_host: String = "localhost:5432";
    /// `auto` (PostgreSQL when `db_dsn` is set, else SQLite), `postgres` or `sqlite`.
    db_backend: BackendChoice = "auto";
    /// Lines below it are not written.
    log_level: LogLevel = "info";
    /// Whether `GET /metrics` is served.
    metrics_enabled: bool = "true";
    /// When set, `/metrics` requires `Authorization: Bearer <token>`.
    metrics_token: Option<String> = "", secret;
    /// `name:scope:token[,...]` (`scope` `read` or `admin`; `token` plain or `sha256:<hex>`): the
    /// admin API's tokens. With it or `admin_token` set, `/admin/*` requires one of them
    /// (`Config::admin_tokens`).
    api_tokens: Option<crate::api::ApiTokens> = "", secret;
    /// An `admin` token named `admin_token` (what 0.2.0 had, before scopes).
    admin_token: Option<String> = "", secret;
    /// `id:base64key[,id:base64key...]`, current key first: settings are sealed at rest.
    settings_keyring: Option<Keyring> = "", secret;
    /// `*`, `none`, or a comma-separated list of origins allowed to call `/admin/*` from a browser.
    cors_allowed_origins: crate::api::CorsPolicy = "*";
    /// How long a cached read may answer for the database; 0 turns the cache off.
    cache_ttl_ms: u32 = "1000";
    /// Versions kept per integration in its history, this write's included (at least 1).
    history_retention: NonZeroU32 = "100";
}

impl Config<'_> {
    fn value<T: Parse>(&self, name: &'static str, default: &'static str) -> Result<T, Misconfigured> {
        let given = self.0.get(name).map_err(|why| Misconfigured { what: name, why })?;
        let text = match given.trim() {
            "" => default,
            text => text,
        };
        T::parse(text.trim()).map_err(|why| Misconfigured { what: name, why })
    }

    /// Which database requests use.
    pub fn storage(&self) -> Result<Storage, Misconfigured> {
        let dsn = self.db_dsn()?;
        let postgres = |dsn: String| match is_postgres_dsn(&dsn) {
            true => Ok(Storage::Postgres { dsn }),
            false => Err(Misconfigured { what: "db_dsn", why: "not a postgres:// or postgresql:// URL" }),
        };
        match (self.db_backend()?, dsn) {
            (BackendChoice::Sqlite, _) | (BackendChoice::Auto, None) => Ok(Storage::Sqlite),
            (BackendChoice::Postgres | BackendChoice::Auto, Some(dsn)) => postgres(dsn),
            (BackendChoice::Postgres, None) => {
                Err(Misconfigured { what: "db_dsn", why: "db_backend is postgres but db_dsn is not set" })
            }
        }
    }

    /// Every variable a component reads, read and parsed, alone and together (`storage`, the
    /// admin tokens): the first that cannot be used. Readiness answers with it, so that whatever
    /// would make some request answer "Service misconfigured" keeps a new pod out of the Service
    /// and stops a rollout at its first pod. `db_host` is left out: only Spin reads it.
    pub fn check(&self) -> Result<(), Misconfigured> {
        self.log_level()?;
        self.admin_tokens()?;
        self.storage()?;
        self.settings_keyring()?;
        self.cors_allowed_origins()?;
        self.cache_ttl_ms()?;
        self.history_retention()?;
        self.metrics_enabled()?;
        self.metrics_token()?;
        Ok(())
    }

    /// The backend the configuration selects, for probes and metrics: the one `db_backend`
    /// names, or what `auto` picks.
    pub fn backend(&self) -> Result<crate::store::Backend, Misconfigured> {
        use crate::store::Backend;
        Ok(match self.db_backend()? {
            BackendChoice::Postgres => Backend::Postgres,
            BackendChoice::Sqlite => Backend::Sqlite,
            BackendChoice::Auto if self.db_dsn()?.is_some() => Backend::Postgres,
            BackendChoice::Auto => Backend::Sqlite,
        })
    }
}

/// `db_backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    Auto,
    Postgres,
    Sqlite,
}

impl Parse for BackendChoice {
    fn parse(text: &str) -> Result<Self, &'static str> {
        match text.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "postgres" => Ok(Self::Postgres),
            "sqlite" => Ok(Self::Sqlite),
            _ => Err("must be auto, postgres or sqlite"),
        }
    }
}

/// Which database a request uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    Postgres { dsn: String },
    Sqlite,
}

fn is_postgres_dsn(dsn: &str) -> bool {
    let lower = dsn.to_ascii_lowercase();
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

impl Parse for LogLevel {
    fn parse(level: &str) -> Result<Self, &'static str> {
        Ok(match level.to_ascii_lowercase().as_str() {
            "trace" => Self::Trace,
            "debug" => Self::Debug,
            "info" => Self::Info,
            "warn" | "warning" => Self::Warn,
            "error" => Self::Error,
            _ => return Err("must be trace, debug, info, warn or error"),
        })
    }
}

impl LogLevel {
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

impl Parse for bool {
    fn parse(text: &str) -> Result<Self, &'static str> {
        match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err("must be true or false"),
        }
    }
}

impl Parse for u32 {
    fn parse(text: &str) -> Result<Self, &'static str> {
        text.parse().map_err(|_| "must be a whole number")
    }
}

impl Parse for NonZeroU32 {
    fn parse(text: &str) -> Result<Self, &'static str> {
        text.parse().map_err(|_| "must be a whole number, at least 1")
    }
}

impl Parse for String {
    fn parse(text: &str) -> Result<Self, &'static str> {
        Ok(text.to_owned())
    }
}

/// An optional value: empty (the default of every optional variable) is `None`.
impl<T: Parse> Parse for Option<T> {
    fn parse(text: &str) -> Result<Self, &'static str> {
        match text {
            "" => Ok(None),
            text => T::parse(text).map(Some),
        }
    }
}

#[cfg(test)]
pub mod tests {
    use std::cell::RefCell;
    use std::collections::{BTreeSet, HashMap};

    use super::*;

    /// Variables for tests: a plain map, every variable given unless [`Self::without`] says
    /// otherwise; remembers which were asked for.
    #[derive(Default)]
    pub struct MapVariables {
        values: HashMap<&'static str, String>,
        not_given: BTreeSet<&'static str>,
        pub asked: RefCell<BTreeSet<&'static str>>,
    }

    impl MapVariables {
        pub fn with(mut self, name: &'static str, value: &str) -> Self {
            self.values.insert(name, value.into());
            self
        }

        /// As spin.toml leaving `name` out of a component's variables.
        pub fn without(mut self, name: &'static str) -> Self {
            self.not_given.insert(name);
            self
        }
    }

    impl Variables for MapVariables {
        fn get(&self, name: &'static str) -> Result<String, &'static str> {
            self.asked.borrow_mut().insert(name);
            if self.not_given.contains(name) {
                return Err(NOT_GIVEN);
            }
            Ok(self.values.get(name).cloned().unwrap_or_default())
        }
    }

    fn config(pairs: &[(&'static str, &str)]) -> MapVariables {
        pairs.iter().fold(MapVariables::default(), |vars, (name, value)| vars.with(name, value))
    }

    fn storage(pairs: &[(&'static str, &str)]) -> Result<Storage, Misconfigured> {
        Config(&config(pairs)).storage()
    }

    #[test]
    fn spin_toml_declares_exactly_these_variables_with_these_defaults() {
        let manifest = app_manifest::Manifest::of_the_app();
        let declared: Vec<(&str, Option<&str>, bool)> =
            manifest.variables.iter().map(|(name, v)| (name.as_str(), v.default.as_deref(), v.secret)).collect();
        let mut typed: Vec<(&str, Option<&str>, bool)> =
            VARIABLES.iter().map(|v| (v.name, Some(v.default), v.secret)).collect();
        typed.sort();
        assert_eq!(declared, typed, "spin.toml's [variables] and config::VARIABLES differ");
    }

    #[test]
    fn auto_picks_postgres_when_a_dsn_is_set_and_sqlite_otherwise() {
        let dsn = "postgres://app@db:5432/app";
        assert_eq!(storage(&[("db_dsn", dsn)]), Ok(Storage::Postgres { dsn: dsn.into() }));
        assert_eq!(storage(&[]), Ok(Storage::Sqlite));
        assert_eq!(storage(&[("db_backend", "sqlite"), ("db_dsn", dsn)]), Ok(Storage::Sqlite));
    }

    #[test]
    fn postgres_without_a_dsn_never_falls_back_to_sqlite() {
        let what = |pairs: &[(&'static str, &str)]| storage(pairs).unwrap_err().what;
        assert_eq!(what(&[("db_backend", "postgres")]), "db_dsn");
        assert_eq!(what(&[("db_dsn", "mysql://x")]), "db_dsn");
        assert_eq!(what(&[("db_backend", "mongo")]), "db_backend");
    }

    #[test]
    fn values_parse_case_insensitively_and_empty_is_the_default() {
        assert_eq!(Config(&config(&[("log_level", "WARN")])).log_level(), Ok(LogLevel::Warn));
        assert_eq!(Config(&config(&[("log_level", "  ")])).log_level(), Ok(LogLevel::Info));
        assert!(!Config(&config(&[("metrics_enabled", "off")])).metrics_enabled().unwrap());
        assert_eq!(Config(&config(&[])).history_retention().unwrap().get(), 100);
        assert_eq!(Config(&config(&[])).admin_token(), Ok(None));
    }

    #[test]
    fn a_value_that_does_not_parse_is_misconfigured_never_the_default() {
        let vars = config(&[("metrics_enabled", "maybe"), ("cache_ttl_ms", "-5"), ("history_retention", "0")]);
        let bad = Config(&vars);
        assert_eq!(bad.metrics_enabled().unwrap_err().what, "metrics_enabled");
        assert_eq!(bad.cache_ttl_ms().unwrap_err().what, "cache_ttl_ms");
        assert_eq!(bad.history_retention().unwrap_err().what, "history_retention");
        let Err(keyring) = Config(&config(&[("settings_keyring", "k1:c2VjcmV0")])).settings_keyring() else {
            panic!("a 6-byte key is refused")
        };
        assert_eq!(keyring.what, "settings_keyring");
        assert!(!keyring.to_string().contains("c2VjcmV0"), "{keyring}");
    }

    /// Readiness answers with `check`: whatever makes a request of some component answer
    /// "Service misconfigured: <variable>" must fail it too (issue: `cache_ttl_ms=soon` left pods
    /// ready while every read answered 500).
    #[test]
    fn check_fails_on_every_variable_a_component_reads_and_names_it() {
        let manifest = app_manifest::Manifest::of_the_app();
        let read: BTreeSet<&str> =
            manifest.component.values().flat_map(|component| component.variables.keys().map(String::as_str)).collect();
        for variable in VARIABLES {
            let error = Config(&MapVariables::default().without(variable.name)).check().err().map(|error| error.what);
            let expected = read.contains(variable.name).then_some(variable.name);
            assert_eq!(error, expected, "{}: its provider failing", variable.name);
        }
        let bad_values = [
            ("log_level", "loud"),
            ("db_backend", "mongo"),
            ("db_dsn", "mysql://x"),
            ("api_tokens", "bot:write:t"),
            ("settings_keyring", "k1:c2hvcnQ="),
            ("cache_ttl_ms", "soon"),
            ("history_retention", "0"),
            ("metrics_enabled", "maybe"),
        ];
        for (name, value) in bad_values {
            assert_eq!(
                Config(&config(&[(name, value)])).check().map_err(|error| error.what),
                Err(name),
                "{name}={value}"
            );
        }
        assert_eq!(Config(&config(&[("db_backend", "postgres")])).check().map_err(|error| error.what), Err("db_dsn"));
        assert_eq!(Config(&config(&[])).check(), Ok(()));
    }

    #[test]
    fn a_variable_spin_toml_does_not_give_the_component_is_misconfigured() {
        let error = Config(&MapVariables::default().without("cache_ttl_ms")).cache_ttl_ms().unwrap_err();
        assert_eq!(error, Misconfigured { what: "cache_ttl_ms", why: NOT_GIVEN });
    }
}
