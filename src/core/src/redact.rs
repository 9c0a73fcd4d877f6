//! Host error texts can be long (a backtrace under `RUST_BACKTRACE=1`) and can name
//! addresses or carry a DSN. Logs get a short, known-safe reason instead.

const MAX_REASON_CHARS: usize = 120;

/// What Spin says (in any case) when a component may not reach the database's address: a
/// `db_host` that does not match `db_dsn`.
pub const NOT_PERMITTED: &str = "is not permitted";
/// What Spin says (in any case) when `db_dsn` does not parse.
pub const INVALID_CONNECTION_STRING: &str = "invalid connection string";

/// Reasons recognised in host and driver error texts, most specific first.
const KNOWN_REASONS: &[(&str, &str)] = &[
    (NOT_PERMITTED, "database address not permitted by allowed_outbound_hosts (check db_host)"),
    ("connection refused", "connection refused"),
    ("password authentication failed", "authentication failed"),
    ("no pg_hba.conf entry", "authentication failed"),
    ("timed out", "timed out"),
    ("timeout", "timed out"),
    ("failed to lookup address", "database host name did not resolve"),
    ("name or service not known", "database host name did not resolve"),
    ("certificate", "TLS handshake failed"),
    ("tls", "TLS handshake failed"),
    ("ssl", "TLS handshake failed"),
    ("connection closed", "connection closed"),
    ("connection reset", "connection reset"),
    ("broken pipe", "connection closed"),
    ("the database system is shutting down", "database shutting down"),
    ("the database system is starting up", "database starting up"),
    ("too many clients", "too many connections"),
    ("does not exist", "database or role does not exist"),
    (INVALID_CONNECTION_STRING, "db_dsn is not a valid connection string"),
];

/// A short description of `text` that is safe to log.
pub fn short_reason(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    if let Some((_, reason)) = KNOWN_REASONS.iter().find(|(needle, _)| lower.contains(needle)) {
        return (*reason).to_owned();
    }
    let first_line = text.lines().next().unwrap_or_default();
    // Anything from the first hint of an address or credential onwards is dropped.
    let cut = ["://", "@", "host=", "password", "user="]
        .iter()
        .filter_map(|marker| first_line.to_ascii_lowercase().find(marker))
        .min()
        .unwrap_or(first_line.len());
    let safe: String = first_line[..cut].chars().take(MAX_REASON_CHARS).collect();
    let safe = safe.trim();
    if safe.is_empty() {
        "unrecognised database error".to_owned()
    } else {
        safe.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_failures_get_their_short_name() {
        let refused =
            "Error occurred while creating a new object: error connecting to server: Connection refused (os error 111)";
        assert_eq!(short_reason(refused), "connection refused");
        assert_eq!(
            short_reason("address postgres://10.0.0.5:5432 is not permitted"),
            "database address not permitted by allowed_outbound_hosts (check db_host)"
        );
    }

    #[test]
    fn unknown_texts_lose_everything_from_an_address_on() {
        let text = "weird failure for postgres://app:hunter2@db:5432/app\nstack backtrace: ...";
        assert_eq!(short_reason(text), "weird failure for postgres");
        assert_eq!(short_reason("odd host=db password=x"), "odd");
        assert_eq!(short_reason("://"), "unrecognised database error");
    }

    #[test]
    fn long_texts_are_truncated() {
        assert_eq!(short_reason(&"x".repeat(1000)).len(), MAX_REASON_CHARS);
    }
}
