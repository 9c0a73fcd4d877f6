//! The Prometheus text exposition format (version 0.0.4) for what only the application
//! knows, computed at scrape time from a [`Snapshot`]. Request rates and latencies are
//! not here: the Spin host (or SpinKube's shim) reports those through OpenTelemetry.
//!
//! | family | type | labels | answers |
//! |---|---|---|---|
//! | `integrations_build_info` | gauge, always 1 | `version` | which build is running |
//! | `integrations_storage_backend_info` | gauge, always 1 | `backend` | `postgres` or `sqlite`: is this deployment on the database it should be? |
//! | `integrations_database_up` | gauge, 0/1 | | did the database answer `SELECT 1` during this scrape? |
//! | `integrations_database_ping_seconds` | gauge | | how long opening a connection and that query took |
//! | `integrations_stored` | gauge | | how many integrations exist |
//! | `integrations_enabled` | gauge | | how many of them are enabled (`status` true) |
//! | `integration_enabled` | gauge, 0/1 | `id` | is this integration enabled? |
//! | `integration_last_updated_timestamp_seconds` | gauge | `id` | when it was last written (Unix time) |
//! | `integrations_settings_rows` | gauge | `table`, `key` | how many rows (`live`, `history`) each key id seals (`plain`: none) |
//! | `integrations_settings_rows_on_old_keys` | gauge | | rows not stored as a write would store them now: another key, or plain while a keyring is set (0 before an old key may leave the ring) |
//! | `integrations_settings_unreadable` | gauge | | integrations whose settings cannot be opened with the keyring (each also logs an error) |
//!
//! While the database is down nothing is known about the integrations, so the scrape
//! says only that: `integrations_database_up 0` and no sample of the ping or of the four
//! integration families (an absent series, which `absent()` or `up`-style alerts see,
//! rather than a made-up 0 or a NaN that would read as "no integrations"). The count of
//! integrations is `integrations_stored`, not `integrations_total`: a `_total` suffix
//! promises a counter, and `promtool check metrics` rejects it on a gauge.
//!
//! Why a hand encoder rather than the `prometheus-client` crate (0.26): that crate
//! writes only the OpenMetrics text format (`# EOF`, `# UNIT`, an `info` type that the
//! 0.0.4 parser rejects: `promtool check metrics` fails on its output), and it is built
//! around a registry of long-lived atomic metrics, which a component that lives for one
//! request does not have. It also costs size: the metrics component (release,
//! `wasm32-wasip2`) is 382,289 bytes with an empty encoder, 386,734 with this one
//! (+4.3 KiB) and 425,749 with `prometheus-client` (+42 KiB). The 0.0.4 format for a
//! handful of gauges is short: `# HELP` and `# TYPE` once per family, its samples
//! together, label values escaped (backslash, double quote, newline), and floats as
//! Go's `ParseFloat` reads them (`NaN`, `+Inf`).
//! The unit tests check all of it, and one pipes the output through `promtool`.

use std::fmt::Write;

/// The exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a scrape found out.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// `postgres` or `sqlite`: the backend the configuration selects.
    pub backend: &'static str,
    /// Whether a connection was opened and answered a trivial query.
    pub database_up: bool,
    /// How long that took; `None` when the database is down.
    pub database_ping_seconds: Option<f64>,
    /// Every integration; ignored when the database is down.
    pub integrations: Vec<IntegrationSample>,
    /// Which keys seal the stored settings; ignored when the database is down.
    pub keys: KeySample,
    /// The build's version.
    pub version: &'static str,
}

/// Which keys seal how many rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeySample {
    /// (`live` or `history`, key id or `plain`, rows).
    pub rows: Vec<(&'static str, String, i64)>,
    pub on_old_keys: i64,
    pub unreadable: i64,
}

/// One integration, as far as metrics care.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrationSample {
    pub id: String,
    pub enabled: bool,
    /// Unix time of the last write, in seconds.
    pub updated_at_seconds: f64,
}

/// Renders a snapshot in the text exposition format.
pub fn encode(snapshot: &Snapshot) -> String {
    let mut out = Encoder(String::with_capacity(2048));
    out.gauge(
        "integrations_build_info",
        "The build of integrations-service that answered this scrape; the value is always 1.",
        &[("version", snapshot.version)],
        1.0,
    );
    out.gauge(
        "integrations_storage_backend_info",
        "The storage backend the configuration selects (postgres or sqlite); the value is always 1.",
        &[("backend", snapshot.backend)],
        1.0,
    );
    out.gauge(
        "integrations_database_up",
        "Whether the database answered a trivial query during this scrape (1) or not (0).",
        &[],
        bool_value(snapshot.database_up),
    );
    if !snapshot.database_up {
        return out.0;
    }
    if let Some(seconds) = snapshot.database_ping_seconds {
        out.gauge(
            "integrations_database_ping_seconds",
            "Time this scrape took to open a database connection and run a trivial query.",
            &[],
            seconds,
        );
    }
    let integrations = &snapshot.integrations;
    let enabled = integrations.iter().filter(|integration| integration.enabled).count();
    out.gauge("integrations_stored", "Number of integrations stored.", &[], integrations.len() as f64);
    out.gauge("integrations_enabled", "Number of integrations whose status is enabled.", &[], enabled as f64);
    out.per_integration(
        integrations,
        "integration_enabled",
        "Whether the integration is enabled (1) or not (0).",
        |integration| bool_value(integration.enabled),
    );
    out.per_integration(
        integrations,
        "integration_last_updated_timestamp_seconds",
        "Unix time of the integration's last write.",
        |integration| integration.updated_at_seconds,
    );
    let keys = &snapshot.keys;
    if !keys.rows.is_empty() {
        out.header(
            "integrations_settings_rows",
            "Rows whose settings are sealed with each key id (plain: not sealed).",
        );
        for (table, key, rows) in &keys.rows {
            out.sample("integrations_settings_rows", &[("table", table), ("key", key)], *rows as f64);
        }
    }
    out.gauge(
        "integrations_settings_rows_on_old_keys",
        "Rows (live and history) not sealed with the keyring's current key; re-seal before removing an old key.",
        &[],
        keys.on_old_keys as f64,
    );
    out.gauge(
        "integrations_settings_unreadable",
        "Integrations whose settings cannot be opened with the configured keyring.",
        &[],
        keys.unreadable as f64,
    );
    out.0
}

struct Encoder(String);

impl Encoder {
    /// A family of one sample.
    fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.header(name, help);
        self.sample(name, labels, value);
    }

    /// A family of one sample per integration, labelled `id`; left out when there are none.
    fn per_integration(
        &mut self,
        integrations: &[IntegrationSample],
        name: &str,
        help: &str,
        value: fn(&IntegrationSample) -> f64,
    ) {
        if integrations.is_empty() {
            return;
        }
        self.header(name, help);
        for integration in integrations {
            self.sample(name, &[("id", &integration.id)], value(integration));
        }
    }

    fn header(&mut self, name: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape(help, false));
        let _ = writeln!(self.0, "# TYPE {name} gauge");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (index, (label, value)) in labels.iter().enumerate() {
                if index > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{label}=\"{}\"", escape(value, true));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", float(value));
    }
}

fn bool_value(value: bool) -> f64 {
    if value {
        1.0
    } else {
        0.0
    }
}

/// Escapes `\` and newline (HELP text), and also `"` (label values).
fn escape(text: &str, label_value: bool) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '"' if label_value => escaped.push_str("\\\""),
            c => escaped.push(c),
        }
    }
    escaped
}

/// A sample value as Prometheus parses it: integers as integers (`1`, `2`), other finite
/// values in serde_json's shortest round-trip spelling (`0.0042`, `1.2e-5`; the component
/// has it already, while `f64`'s own `Display` would add ~20 KiB of float formatting to
/// the component), and Go's spelling for the rest (`NaN`, `+Inf`, `-Inf`).
fn float(value: f64) -> String {
    /// Beyond 2^53 not every integer is an `f64`; such values keep the float spelling.
    const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if value.fract() == 0.0 && value.abs() < EXACT_INTEGERS {
        (value as i64).to_string()
    } else {
        serde_json::Number::from_f64(value).map_or_else(|| "NaN".into(), |number| number.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: &str, enabled: bool, updated_at_seconds: f64) -> IntegrationSample {
        IntegrationSample { id: id.into(), enabled, updated_at_seconds }
    }

    fn up() -> Snapshot {
        Snapshot {
            backend: "postgres",
            database_up: true,
            database_ping_seconds: Some(0.0042),
            integrations: vec![sample("facebook", false, 1_700_000_000.123456), sample("chat_widget", true, 0.5)],
            keys: KeySample {
                rows: vec![("live", "k2".into(), 1), ("live", "plain".into(), 1), ("history", "k1".into(), 3)],
                on_old_keys: 4,
                unreadable: 0,
            },
            version: "0.1.0",
        }
    }

    fn down() -> Snapshot {
        Snapshot {
            backend: "sqlite",
            database_up: false,
            database_ping_seconds: None,
            integrations: Vec::new(),
            keys: KeySample::default(),
            version: "0.1.0",
        }
    }

    /// The sample lines, without HELP and TYPE.
    fn samples(text: &str) -> Vec<&str> {
        text.lines().filter(|line| !line.starts_with('#')).collect()
    }

    #[test]
    fn a_healthy_scrape_has_every_family_and_sample() {
        let text = encode(&up());
        assert_eq!(
            samples(&text),
            [
                r#"integrations_build_info{version="0.1.0"} 1"#,
                r#"integrations_storage_backend_info{backend="postgres"} 1"#,
                "integrations_database_up 1",
                "integrations_database_ping_seconds 0.0042",
                "integrations_stored 2",
                "integrations_enabled 1",
                r#"integration_enabled{id="facebook"} 0"#,
                r#"integration_enabled{id="chat_widget"} 1"#,
                r#"integration_last_updated_timestamp_seconds{id="facebook"} 1700000000.123456"#,
                r#"integration_last_updated_timestamp_seconds{id="chat_widget"} 0.5"#,
                r#"integrations_settings_rows{table="live",key="k2"} 1"#,
                r#"integrations_settings_rows{table="live",key="plain"} 1"#,
                r#"integrations_settings_rows{table="history",key="k1"} 3"#,
                "integrations_settings_rows_on_old_keys 4",
                "integrations_settings_unreadable 0",
            ]
        );
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn every_family_has_help_then_type_gauge_once_before_its_samples() {
        let text = encode(&up());
        let lines: Vec<&str> = text.lines().collect();
        let mut seen = Vec::new();
        for (index, line) in lines.iter().enumerate() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                assert!(!seen.contains(&name), "{name} declared twice");
                assert_eq!(lines[index + 1], format!("# TYPE {name} gauge"));
                seen.push(name);
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(Some(&name), seen.last(), "{line} is not under its own family");
            }
        }
        assert_eq!(seen.len(), 11);
    }

    #[test]
    fn names_follow_the_prometheus_conventions() {
        for line in encode(&up()).lines().filter(|line| line.starts_with("# TYPE")) {
            let name = line.split(' ').nth(2).unwrap();
            let mut chars = name.chars();
            assert!(chars.next().unwrap().is_ascii_lowercase(), "{name}");
            assert!(chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{name}");
            assert!(name.starts_with("integrations_") || name.starts_with("integration_"), "{name}");
            // Reserved for counters, histograms and summaries.
            for suffix in ["_total", "_count", "_sum", "_bucket"] {
                assert!(!name.ends_with(suffix), "{name}");
            }
        }
    }

    #[test]
    fn a_scrape_while_the_database_is_down_says_only_that() {
        let text = encode(&down());
        assert_eq!(
            samples(&text),
            [
                r#"integrations_build_info{version="0.1.0"} 1"#,
                r#"integrations_storage_backend_info{backend="sqlite"} 1"#,
                "integrations_database_up 0",
            ]
        );
        assert!(!text.contains("NaN") && !text.contains("ping"));
    }

    #[test]
    fn an_empty_store_still_reports_zero_counts_but_no_per_id_families() {
        let text = encode(&Snapshot { integrations: Vec::new(), ..up() });
        assert!(samples(&text).contains(&"integrations_stored 0"));
        assert!(samples(&text).contains(&"integrations_enabled 0"));
        assert!(!text.contains("integration_enabled"));
        assert!(!text.contains("integration_last_updated"));
    }

    #[test]
    fn label_values_are_escaped() {
        let snapshot = Snapshot { integrations: vec![sample("a\\b\"c\nd", true, 1.0)], ..up() };
        let text = encode(&snapshot);
        assert!(text.contains(r#"integration_enabled{id="a\\b\"c\nd"} 1"#), "{text}");
        assert_eq!(text.lines().filter(|line| line.starts_with("integration_enabled")).count(), 1);
    }

    #[test]
    fn help_text_escapes_backslash_and_newline_but_not_quotes() {
        assert_eq!(escape("a\\b\n\"c\"", false), r#"a\\b\n"c""#);
        assert_eq!(escape("a\\b\n\"c\"", true), r#"a\\b\n\"c\""#);
    }

    #[test]
    fn floats_use_the_spelling_prometheus_parses() {
        assert_eq!(float(1.0), "1");
        assert_eq!(float(0.0), "0");
        assert_eq!(float(-3.0), "-3");
        assert_eq!(float(0.0042), "0.0042");
        assert_eq!(float(-0.0), "0");
        assert_eq!(float(1e300).parse::<f64>().unwrap(), 1e300);
        assert_eq!(float(0.000_012).parse::<f64>().unwrap(), 0.000_012);
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        let value: f64 = float(1_700_000_000.123_456).parse().unwrap();
        assert_eq!(value, 1_700_000_000.123_456);
    }

    /// `promtool check metrics` parses the text as Prometheus does and lints the names
    /// (units, reserved suffixes). It must be installed (Debian package `prometheus`):
    /// this test fails without it rather than passing unchecked.
    #[test]
    fn promtool_accepts_the_output() {
        let escaped = Snapshot { integrations: vec![sample("we\"ird\\id\n", true, 2.0)], ..up() };
        for snapshot in [up(), down(), escaped, Snapshot { integrations: Vec::new(), ..up() }] {
            let text = encode(&snapshot);
            test_support::promtool_check(&text).unwrap_or_else(|report| panic!("{report}\n{text}"));
        }
    }
}
