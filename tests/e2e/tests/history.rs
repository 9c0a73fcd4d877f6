//! Every accepted write is kept: who made it, when, what changed (secret values never shown),
//! pages newest first, retention, and restoring a version as a new one with ETag semantics.

use e2e::{Backend, Service, Spin};
use reqwest::Method;
use serde_json::{json, Value};

fn versions(page: &Value) -> Vec<i64> {
    page["versions"].as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect()
}

e2e::e2e_tests!(
    #[on_each_service]
    async fn history_keeps_every_accepted_write(service: Service) {
        let ui = |verify: &str, secret: &str| {
            json!({"id": "facebook", "name": "Facebook Messenger", "description": "Connect with Facebook Messenger",
                   "status": false, "settings": {"verify": verify, "secret": secret, "page_access_token": ""}})
        };
        let headers = [("content-type", "application/json"), ("x-request-id", "hist-req-7")];
        let put = |body: Value| {
            service.send(Method::PUT, "/admin/integrations/facebook", &headers, Some(body.to_string().into_bytes()))
        };
        assert_eq!(put(ui("v1", "hist-s3cret-1")).await.status, 200);
        assert_eq!(put(ui("v2", "hist-s3cret-1")).await.status, 200);
        assert_eq!(put(ui("v2", "hist-s3cret-2")).await.status, 200);
        // Refused writes leave no trace.
        assert_eq!(put(json!({"settings": {"verify": 1}})).await.status, 422);
        assert_eq!(service.put("/admin/integrations/nope", &json!({"status": true})).await.status, 404);

        let page = service.get("/admin/integrations/facebook/history").await.json();
        assert_eq!(versions(&page), [4, 3, 2, 1]);
        assert_eq!(page["next_before"], Value::Null);
        let newest = &page["versions"][0];
        assert_eq!(newest["changes"], json!([{"field": "settings.secret", "secret": true}]));
        assert_eq!(newest["action"], "update");
        assert_eq!(newest["request_id"], "hist-req-7");
        assert!(newest["client_addr"].as_str().unwrap().starts_with("127.0.0.1:"), "{newest}");
        assert_eq!((&newest["actor"], &newest["authenticated"]), (&Value::Null, &json!(false)), "no token configured");
        assert_eq!(newest["integration"]["settings"], json!({"verify": "v2"}));
        assert_eq!(newest["integration"]["secret_settings"], json!(["secret", "page_access_token"]));
        assert_eq!(page["versions"][1]["changes"], json!([{"field": "settings.verify", "secret": false}]));
        assert!(!page.to_string().contains("hist-s3cret"), "a secret value in the history: {page}");

        // Pages, newest first, and one version on its own.
        let first = service.get("/admin/integrations/facebook/history?limit=2").await.json();
        assert_eq!((versions(&first), first["next_before"].as_i64()), (vec![4, 3], Some(3)));
        let second = service.get("/admin/integrations/facebook/history?limit=2&before=3").await.json();
        assert_eq!((versions(&second), &second["next_before"]), (vec![2, 1], &Value::Null));
        assert_eq!(service.get("/admin/integrations/facebook/history/2").await.json()["version"], 2);
        assert_eq!(service.get("/admin/integrations/facebook/history?limit=0").await.status, 422);
    }

    #[on_each_service]
    async fn restore_is_a_new_version_with_etag_semantics(service: Service) {
        let settings = json!({"verify": "before", "secret": "restore-s3cret", "page_access_token": "tok"});
        assert_eq!(service.put("/admin/integrations/facebook", &json!({ "settings": settings })).await.status, 200);
        // Someone breaks the page token from the admin UI ...
        let broken = json!({"verify": "before", "secret": "restore-s3cret", "page_access_token": ""});
        let current = service.put("/admin/integrations/facebook", &json!({ "settings": broken })).await;
        let etag = current.header("etag").unwrap().to_owned();
        assert_eq!(etag, "\"3\"");
        // ... and it is put back: version 2 again, as version 4, only if nobody wrote meanwhile.
        let stale = service
            .send(Method::POST, "/admin/integrations/facebook/history/2/restore", &[("if-match", "\"2\"")], None)
            .await;
        assert_eq!(stale.status, 412);
        let restored = service
            .send(Method::POST, "/admin/integrations/facebook/history/2/restore", &[("if-match", &etag)], None)
            .await;
        assert_eq!(restored.status, 200, "{}", String::from_utf8_lossy(&restored.body));
        assert_eq!(restored.header("etag"), Some("\"4\""));
        assert_eq!(restored.json()["settings"], settings);
        assert_eq!(service.get("/admin/integrations/facebook").await.json()["settings"], settings);
        let entry = service.get("/admin/integrations/facebook/history/4").await.json();
        assert_eq!((entry["action"].as_str(), entry["restored_from"].as_i64()), (Some("restore"), Some(2)));
        assert_eq!(entry["changes"], json!([{"field": "settings.page_access_token", "secret": true}]));
        let missing = service.send(Method::POST, "/admin/integrations/facebook/history/77/restore", &[], None).await;
        assert_eq!((missing.status, missing.json()["detail"].as_str()), (404, Some("Version not found")));
    }

    #[on_each_backend]
    async fn history_keeps_as_many_versions_as_retention_says_and_who_was_authenticated(spin: &Spin, backend: Backend) {
        let variables = [("history_retention", "3"), ("admin_token", "hist-tok")];
        let service = Service::start_with(spin, backend, &variables).await;
        let auth = [("authorization", "Bearer hist-tok"), ("content-type", "application/json")];
        for status in [true, false, true, false, true] {
            let body = json!({ "status": status }).to_string().into_bytes();
            assert_eq!(
                service.send(Method::PUT, "/admin/integrations/chat_widget", &auth, Some(body)).await.status,
                200
            );
        }
        let page = service.send(Method::GET, "/admin/integrations/chat_widget/history", &auth[..1], None).await.json();
        assert_eq!(versions(&page), [6, 5, 4], "{spin} {backend:?}");
        assert_eq!(
            (&page["versions"][0]["actor"], &page["versions"][0]["authenticated"]),
            (&json!("admin_token"), &json!(true))
        );
        assert_eq!(page["versions"][2]["changes"], Value::Null, "the oldest kept version has no predecessor");
        let anonymous = service.get("/admin/integrations/chat_widget/history").await;
        assert_eq!(anonymous.status, 401);
    }

    #[on_each_backend]
    async fn lowering_retention_trims_the_history_at_the_next_write(spin: &Spin, backend: Backend) {
        let mut service = Service::start_with(spin, backend, &[("history_retention", "40")]).await;
        // More versions than a write prunes in one go on PostgreSQL (16), all kept.
        for round in 0..30 {
            let body = json!({ "description": format!("round {round}") });
            assert_eq!(service.put("/admin/integrations/chat_widget", &body).await.status, 200);
        }
        let page = service.get("/admin/integrations/chat_widget/history?limit=100").await.json();
        assert_eq!(versions(&page).len(), 31, "{spin} {backend:?}: the seed and 30 writes");
        service.restart_with(&[("history_retention", "3")]).await;
        assert_eq!(service.put("/admin/integrations/chat_widget", &json!({"status": true})).await.status, 200);
        let page = service.get("/admin/integrations/chat_widget/history?limit=100").await.json();
        assert_eq!(versions(&page), [32, 31, 30], "{spin} {backend:?}");
    }
);
