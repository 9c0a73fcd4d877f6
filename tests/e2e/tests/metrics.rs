//! `/metrics` through the host: valid exposition format by Prometheus's own parser, and values
//! that agree with the database after a few updates.

use e2e::{Backend, Service, Spin};
use reqwest::Method;
use serde_json::json;

/// `promtool check metrics` on the text; panics with promtool's complaints.
fn promtool_accepts(text: &str) {
    test_support::promtool_check(text).unwrap_or_else(|report| panic!("/metrics: {report}\n{text}"));
}

/// The value of the sample `series` (name with labels, as written), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

e2e::e2e_tests!(
    #[on_each_spin]
    async fn metrics_are_valid_and_agree_with_the_database(spin: &Spin) {
        let service = Service::start(spin, Backend::Postgres).await;
        assert_eq!(service.put("/admin/integrations/facebook", &json!({"status": true})).await.status, 200);
        assert_eq!(service.put("/admin/integrations/chat_widget", &json!({"status": false})).await.status, 200);
        assert_eq!(
            service.put("/admin/integrations/facebook", &json!({"settings": {"verify": "x"}})).await.status,
            200
        );

        let reply = service.get("/metrics").await;
        assert_eq!(reply.status, 200);
        assert!(reply.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
        let text = String::from_utf8(reply.body).unwrap();
        promtool_accepts(&text);

        assert_eq!(sample(&text, "integrations_database_up"), Some(1.0));
        assert_eq!(sample(&text, r#"integrations_storage_backend_info{backend="postgres"}"#), Some(1.0));
        assert!(sample(&text, "integrations_database_ping_seconds").is_some_and(|s| s > 0.0 && s < 5.0));

        let client = e2e::connect(service.dsn.as_deref().unwrap()).await;
        let rows = client
            .query("SELECT id, status, extract(epoch FROM updated_at)::float8 FROM integrations", &[])
            .await
            .unwrap();
        assert_eq!(sample(&text, "integrations_stored"), Some(rows.len() as f64));
        let enabled = rows.iter().filter(|row| row.get::<_, bool>(1)).count();
        assert_eq!(sample(&text, "integrations_enabled"), Some(enabled as f64));
        for row in &rows {
            let id: &str = row.get(0);
            let status = if row.get::<_, bool>(1) { 1.0 } else { 0.0 };
            assert_eq!(sample(&text, &format!(r#"integration_enabled{{id="{id}"}}"#)), Some(status), "{id}");
            let updated: f64 = row.get(2);
            let exported =
                sample(&text, &format!(r#"integration_last_updated_timestamp_seconds{{id="{id}"}}"#)).unwrap();
            assert!((exported - updated).abs() < 1e-3, "{id}: {exported} vs {updated}");
        }
    }

    #[on_each_spin]
    async fn metrics_follow_their_variables(spin: &Spin) {
        let off = Service::start_with(spin, Backend::Sqlite, &[("metrics_enabled", "false")]).await;
        let reply = off.get("/metrics").await;
        assert_eq!((reply.status, reply.json()), (404, json!({"detail": "Not Found"})));

        let guarded = Service::start_with(spin, Backend::Sqlite, &[("metrics_token", "scrape-e2e")]).await;
        assert_eq!(guarded.get("/metrics").await.status, 401);
        let scraped = guarded.send(Method::GET, "/metrics", &[("authorization", "Bearer scrape-e2e")], None).await;
        assert_eq!(scraped.status, 200);
        let text = String::from_utf8(scraped.body).unwrap();
        promtool_accepts(&text);
        assert_eq!(sample(&text, r#"integrations_storage_backend_info{backend="sqlite"}"#), Some(1.0));
    }
);
