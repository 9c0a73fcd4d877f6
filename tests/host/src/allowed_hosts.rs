//! `allowed_outbound_hosts` as Spin reads and checks them (crates/outbound-networking-config):
//! `scheme://host[:port]`, `*` for any scheme, host or port, `*.domain` subdomains, port ranges
//! `a..b`, a scheme's well-known port when none is given, templates expanded at load, and entries
//! that expand to nothing skipped. Hosts are compared literally: `localhost` does not allow
//! `127.0.0.1`.

use std::net::IpAddr;

use anyhow::{bail, Context, Result};

use crate::variables::{Template, VariableResolver};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts {
    entries: Vec<AllowedHost>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.example.com`, stored as `.example.com`.
    Subdomain(String),
    Ip(IpAddr),
    Domain(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    Port(u16),
    /// `a..b`: `a` inclusive, `b` exclusive.
    Range(u16, u16),
}

/// The result of checking an outbound address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Not allowed; carries the `scheme://authority` Spin names in its warning.
    Denied {
        pattern: String,
    },
}

impl AllowedHosts {
    /// Expands each entry's template and parses it, as Spin does before the first check.
    pub fn resolve(entries: &[String], variables: &VariableResolver) -> Result<Self> {
        if entries.len() == 1 && entries[0] == "insecure:allow-all" {
            bail!("'insecure:allow-all' is not allowed - use '*://*:*' instead if you really want to allow all outbound traffic'");
        }
        let mut parsed = Vec::new();
        for entry in entries {
            let template = Template::parse(entry)?;
            let text = if template.is_literal() {
                entry.clone()
            } else {
                let text = variables.resolve_template(&template)?;
                // An empty expansion means "no endpoint configured" (Spin skips these).
                if text.is_empty() || text == "http://" || text == "https://" {
                    continue;
                }
                text
            };
            parsed.push(
                AllowedHost::parse(&text).with_context(|| {
                    format!("invalid allowed_outbound_hosts entry {entry:?} (expanded to {text:?})")
                })?,
            );
        }
        Ok(Self { entries: parsed })
    }

    /// Checks `host[:port]` for a scheme, the way Spin checks a PostgreSQL address.
    pub fn check(&self, scheme: &str, host: &str, port: Option<u16>) -> Verdict {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if self.entries.iter().any(|entry| entry.allows(scheme, host, port)) {
            return Verdict::Allowed;
        }
        let authority = match port {
            Some(port) if host.contains(':') => format!("[{host}]:{port}"),
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        Verdict::Denied { pattern: format!("{scheme}://{authority}") }
    }
}

impl AllowedHost {
    fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let Some((scheme, rest)) = text.split_once("://") else {
            bail!("{text:?} does not contain a scheme (e.g., 'http://' or '*://')");
        };
        let (host, port) = match rest.rsplit_once(':') {
            None => (rest, ""),
            Some((host, "")) => (host, ""),
            Some((host, tail)) if !host.contains(']') && host.contains(':') => {
                // A bare IPv6 address has colons of its own.
                if rest.parse::<IpAddr>().is_ok() {
                    (rest, "")
                } else {
                    (host, tail)
                }
            }
            Some((host, tail)) => (host, tail.strip_suffix('/').unwrap_or(tail)),
        };
        let scheme_pattern = match scheme {
            "*" => None,
            s if s.chars().all(|c| c.is_alphabetic()) => Some(s.to_string()),
            s => bail!("Invalid allowed host scheme {s:?}"),
        };
        let port = match port {
            "" => PortPattern::Port(well_known_port(scheme).with_context(|| {
                format!("no port was provided and the scheme {scheme:?} does not have a known default port number")
            })?),
            "*" => PortPattern::Any,
            p => match p.split_once("..") {
                Some((start, end)) => PortPattern::Range(
                    start.parse().with_context(|| format!("port range {p:?} contains non-number"))?,
                    end.parse().with_context(|| format!("port range {p:?} contains non-number"))?,
                ),
                None => PortPattern::Port(p.parse().with_context(|| format!("port {p:?} is not a number"))?),
            },
        };
        let host = host.trim().strip_suffix('/').unwrap_or(host.trim());
        if host.contains('/') {
            bail!("Invalid allowed host {host:?}: must not include a path");
        }
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(domain) = host.strip_prefix("*.") {
            if domain.contains('*') {
                bail!("wildcards are allowed only as prefixes");
            }
            HostPattern::Subdomain(format!(".{}", domain.to_ascii_lowercase()))
        } else if host.contains('*') {
            bail!("wildcards are allowed only as subdomains");
        } else if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse() {
            HostPattern::Ip(ip)
        } else {
            HostPattern::Domain(host.to_ascii_lowercase())
        };
        Ok(Self { scheme: scheme_pattern, host, port })
    }

    fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == scheme);
        let host_ok = match (&self.host, host.parse::<IpAddr>()) {
            (HostPattern::Any, _) => true,
            (HostPattern::Ip(allowed), Ok(ip)) => *allowed == ip,
            (HostPattern::Domain(allowed), Err(_)) => host.eq_ignore_ascii_case(allowed),
            (HostPattern::Subdomain(suffix), Err(_)) => host.to_ascii_lowercase().ends_with(suffix),
            _ => false,
        };
        let port_ok = match &self.port {
            PortPattern::Any => true,
            pattern => match port.or_else(|| well_known_port(scheme)) {
                None => false,
                Some(port) => match pattern {
                    PortPattern::Port(p) => *p == port,
                    PortPattern::Range(start, end) => (*start..*end).contains(&port),
                    PortPattern::Any => true,
                },
            },
        };
        scheme_ok && host_ok && port_ok
    }
}

fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str]) -> AllowedHosts {
        AllowedHosts { entries: entries.iter().map(|e| AllowedHost::parse(e).unwrap()).collect() }
    }

    #[test]
    fn literal_host_and_port() {
        let allowed = hosts(&["postgres://127.0.0.1:5433"]);
        assert_eq!(allowed.check("postgres", "127.0.0.1", Some(5433)), Verdict::Allowed);
        assert_eq!(
            allowed.check("postgres", "127.0.0.1", Some(5432)),
            Verdict::Denied { pattern: "postgres://127.0.0.1:5432".into() }
        );
        assert!(matches!(allowed.check("postgres", "localhost", Some(5433)), Verdict::Denied { .. }));
    }

    #[test]
    fn no_port_means_the_schemes_well_known_port() {
        let allowed = hosts(&["postgres://db.internal"]);
        assert_eq!(allowed.check("postgres", "db.internal", None), Verdict::Allowed);
        assert_eq!(allowed.check("postgres", "db.internal", Some(5432)), Verdict::Allowed);
        assert!(matches!(allowed.check("postgres", "db.internal", Some(6543)), Verdict::Denied { .. }));
    }

    #[test]
    fn wildcards() {
        let allowed = hosts(&["postgres://*.example.com:*", "*://10.0.0.1:5000..5010"]);
        assert_eq!(allowed.check("postgres", "a.example.com", Some(1)), Verdict::Allowed);
        assert!(matches!(allowed.check("postgres", "example.com", Some(1)), Verdict::Denied { .. }));
        assert_eq!(allowed.check("mysql", "10.0.0.1", Some(5009)), Verdict::Allowed);
        assert!(matches!(allowed.check("mysql", "10.0.0.1", Some(5010)), Verdict::Denied { .. }));
        assert_eq!(hosts(&["*://*:*"]).check("postgres", "anything", Some(9)), Verdict::Allowed);
    }

    #[test]
    fn malformed_entries_are_rejected() {
        assert!(AllowedHost::parse("localhost:5432").is_err());
        assert!(AllowedHost::parse("postgres://db/path").is_err());
        assert!(AllowedHost::parse("postgres://a*b").is_err());
        assert!(AllowedHost::parse("tcp://db").is_err(), "tcp has no well-known port");
    }
}
