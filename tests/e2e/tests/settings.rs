//! What an operator's settings do to a running service: a value some request refuses keeps the
//! pod out of the Service (readiness 503 naming the variable).

use e2e::{Backend, Service, Spin};
use reqwest::Method;
use serde_json::json;

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
);
