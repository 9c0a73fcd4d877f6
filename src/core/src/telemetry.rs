//! One JSON line per request on stdout, plus one per problem worth an operator's look.
//! Lines carry the request id (taken from `x-request-id` or made up) and, when the
//! request has a W3C `traceparent`, its trace id, to join them with the host's traces.
//! Nothing here ever writes a header value other than those two, a body, or a variable.

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::config::LogLevel;
use crate::domain::Timestamp;
use http::request::Parts;

const MAX_REQUEST_ID_LEN: usize = 128;

pub struct Telemetry {
    component: &'static str,
    min_level: LogLevel,
    pub request_id: String,
    trace: Option<TraceContext>,
}

impl Telemetry {
    pub fn start(component: &'static str, min_level: LogLevel, request: &Parts) -> Self {
        let header = |name| request.headers.get(name).and_then(|value| value.to_str().ok());
        let request_id =
            header("x-request-id").filter(|id| is_safe_request_id(id)).map_or_else(new_request_id, str::to_owned);
        let trace = header("traceparent").and_then(TraceContext::parse);
        Self { component, min_level, request_id, trace }
    }

    /// The request's line; `actor` names the configured token it carried (never the token).
    pub fn request_done(&self, request: &Parts, actor: Option<&str>, status: u16, elapsed: Duration) {
        let level = if status >= 500 { LogLevel::Warn } else { LogLevel::Info };
        // Below the level (every 2xx-4xx at `warn`), the line is not even built: its map and
        // strings would only be dropped.
        if level < self.min_level {
            return;
        }
        let mut fields = Map::new();
        fields.insert("method".into(), request.method.as_str().into());
        fields.insert("path".into(), request.uri.path().into());
        fields.insert("status".into(), status.into());
        fields.insert("duration_ms".into(), json!((elapsed.as_secs_f64() * 1e6).round() / 1e3));
        if let Some(actor) = actor {
            fields.insert("actor".into(), actor.into());
        }
        self.write(level, "request", Value::Object(fields));
    }

    pub fn log(&self, level: LogLevel, msg: &str, fields: Value) {
        self.write(level, msg, fields);
    }

    fn write(&self, level: LogLevel, msg: &str, fields: Value) {
        if level < self.min_level {
            return;
        }
        println!("{}", self.line(level, msg, fields));
    }

    fn line(&self, level: LogLevel, msg: &str, fields: Value) -> String {
        let mut line = Map::new();
        line.insert("ts".into(), Timestamp::now().to_rfc3339().into());
        line.insert("level".into(), level.as_str().into());
        line.insert("msg".into(), msg.into());
        line.insert("component".into(), self.component.into());
        if let Value::Object(fields) = fields {
            line.extend(fields);
        }
        line.insert("request_id".into(), self.request_id.clone().into());
        if let Some(trace) = &self.trace {
            line.insert("trace_id".into(), trace.trace_id.clone().into());
            line.insert("span_id".into(), trace.parent_id.clone().into());
        }
        Value::Object(line).to_string()
    }
}

/// Ids from clients are echoed into logs and headers, so only a plain alphabet passes.
fn is_safe_request_id(id: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.:".contains(c);
    !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && id.chars().all(allowed)
}

fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No entropy is no reason to fail a request; the clock still tells requests apart.
        bytes[..8].copy_from_slice(&Timestamp::now().0.to_le_bytes());
    }
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The parts of a W3C `traceparent` (version 00) that a log line needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: String,
    pub parent_id: String,
}

impl TraceContext {
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (version, trace_id, parent_id, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let is_hex = |s: &str, len| s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let all_zero = |s: &str| s.bytes().all(|b| b == b'0');
        let valid = version == "00"
            && parts.next().is_none()
            && is_hex(trace_id, 32)
            && is_hex(parent_id, 16)
            && is_hex(flags, 2)
            && !all_zero(trace_id)
            && !all_zero(parent_id);
        valid.then(|| Self { trace_id: trace_id.into(), parent_id: parent_id.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::builder().method("PUT").uri("/admin/integrations/facebook?token=x");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_clean_client_request_id_is_kept_and_a_dirty_one_replaced() {
        let kept = Telemetry::start("c", LogLevel::Info, &request(&[("x-request-id", "abc-123")]));
        assert_eq!(kept.request_id, "abc-123");
        let replaced = Telemetry::start("c", LogLevel::Info, &request(&[("x-request-id", "a\"b")]));
        assert_eq!(replaced.request_id.len(), 32);
        assert_ne!(replaced.request_id, new_request_id());
    }

    #[test]
    fn a_request_line_carries_the_agreed_fields_and_no_query_or_body() {
        let telemetry = Telemetry::start(
            "integrations-item",
            LogLevel::Info,
            &request(&[("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]),
        );
        let line =
            telemetry.line(LogLevel::Info, "request", json!({"status": 200, "path": "/admin/integrations/facebook"}));
        let parsed: Value = serde_json::from_str(&line).unwrap();
        for field in ["ts", "level", "msg", "component", "status", "path", "request_id", "trace_id", "span_id"] {
            assert!(parsed.get(field).is_some(), "{field} missing from {line}");
        }
        assert_eq!(parsed["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(!line.contains("s3cret") && !line.contains("token"));
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for header in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert_eq!(TraceContext::parse(header), None, "{header}");
        }
    }
}
