//! What an operator's settings do to a running service: a value some request refuses keeps the
//! pod out of the Service (readiness 503 naming the variable), and `log_level` decides which lines
//! reach the pod's log, from every component.

use e2e::{Backend, Service, Spin};
use reqwest::Method;
use serde_json::{json, Value};

e2e::e2e_tests!(
    #[on_each_spin]
    /// Readiness used to check only the log level, the tokens and the database: with
    /// `cache_ttl_ms=soon` (the README's own example of a bad value) the pod was ready while every
    /// read answered 500, so a rollout with it went through instead of stopping at its first pod.
    async fn a_value_some_request_refuses_keeps_readiness_down(spin: &Spin) {
        let facebook = json!({"status": true});
        let mut service = Service::start(spin, Backend::Sqlite).await;
        // (variable, a value that does not parse, a request that reads it)
        let cases = [
            ("cache_ttl_ms", "soon", Method::GET, "/admin/integrations/"),
            ("history_retention", "0", Method::PUT, "/admin/integrations/facebook"),
            ("metrics_enabled", "maybe", Method::GET, "/metrics"),
        ];
        for (variable, value, method, path) in cases {
            service.restart_with(&[(variable, value)]).await;
            let detail = format!("Service misconfigured: {variable}");
            let body = (method == Method::PUT).then(|| serde_json::to_vec(&facebook).unwrap());
            let headers = [("content-type", "application/json")];
            let refused = service.send(method.clone(), path, &headers, body).await;
            assert_eq!((refused.status, refused.json()), (500, json!({ "detail": detail })), "{method} {path}");
            let readiness = service.get("/readiness").await;
            assert_eq!(
                (readiness.status, readiness.json()),
                (503, json!({"status": "unavailable", "detail": detail, "backend": "sqlite"})),
                "{variable}={value}"
            );
            assert!(readiness.header("retry-after").is_some());
            let line = service.wait_for_log(&format!("\"reason\":\"{variable}: ")).await;
            assert!(line.contains("\"msg\":\"not ready\""), "{line}");
        }
        service.restart_with(&[]).await;
        assert_eq!(service.get("/readiness").await.status, 200);
    }

    #[on_each_spin]
    /// `log_level=warn`: no component writes an info line, liveness included (the kubelet probes it
    /// every few seconds), and what is at warn or above still is written.
    async fn log_level_is_honoured_by_every_component(spin: &Spin) {
        let service =
            Service::start_with(spin, Backend::Sqlite, &[("log_level", "warn"), ("cache_ttl_ms", "soon")]).await;
        for path in ["/health", "/readiness", "/metrics", "/openapi.json", "/admin/integrations/facebook/history"] {
            let id = format!("quiet{}", path.replace('/', "-"));
            service.send(Method::GET, path, &[("x-request-id", &id)], None).await;
        }
        let refused = service.send(Method::GET, "/admin/integrations/", &[("x-request-id", "loud-1")], None).await;
        assert_eq!(refused.status, 500);
        let line: Value = serde_json::from_str(
            &service.wait_for_log("\"msg\":\"request\",\"component\":\"integrations-list\"").await,
        )
        .unwrap();
        assert_eq!((line["level"].as_str(), line["request_id"].as_str()), (Some("warn"), Some("loud-1")));
        // Lines trail their responses by a moment: give the quiet ones that moment too.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        for line in service.log_lines() {
            let parsed: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
            assert!(matches!(parsed["level"].as_str(), Some("warn" | "error")), "below log_level=warn: {line}");
        }
    }
);
