//! Every request that finds nothing answers, under every Spin. Spin 4.0.x never returns from a
//! PostgreSQL query that yields no row (spinframework/spin#3671) and keeps the stuck request's
//! pooled connection: the app must never send one. Each request here has the harness's
//! timeout, so a hang is a failure, and there are more of them than Spin's pool has connections
//! (64), so a leak would starve the requests after them.

use e2e::{Backend, Service};
use reqwest::Method;
use serde_json::json;

e2e::e2e_tests!(
    #[on_each_service]
    async fn every_request_that_finds_nothing_answers(service: Service) {
        // The very first request on a fresh database: readiness runs the migrations.
        assert_eq!(service.get("/readiness").await.json()["status"], "ok");

        let service = &service;
        let misses = (0..80).map(|i| async move {
            match i % 4 {
                0 => service.get("/admin/integrations/nope").await,
                1 => service.put("/admin/integrations/nope", &json!({"status": true})).await,
                2 => service.get("/admin/integrations/nope/history").await,
                _ => service.get("/admin/integrations/facebook/history/999").await,
            }
        });
        for reply in futures::future::join_all(misses).await {
            assert_eq!(reply.status, 404, "{}", String::from_utf8_lossy(&reply.body));
        }
        let mismatch = service.put("/admin/integrations/facebook", &json!({"id": "other"})).await;
        assert_eq!(mismatch.status, 422);
        let stale = service
            .send(
                Method::PUT,
                "/admin/integrations/facebook",
                &[("if-match", "\"99\""), ("content-type", "application/json")],
                Some(br#"{"status": true}"#.to_vec()),
            )
            .await;
        assert_eq!(stale.status, 412);
        let restore_missing =
            service.send(Method::POST, "/admin/integrations/facebook/history/99/restore", &[], None).await;
        assert_eq!(restore_missing.status, 404);
        let undeclared = service.put("/admin/integrations/facebook", &json!({"settings": {"x": 1}})).await;
        assert_eq!(undeclared.status, 422, "undeclared keys the row does not hold");
        // An integration that exists, with no version before the first: an empty page.
        let empty = service.get("/admin/integrations/facebook/history?before=1").await;
        assert_eq!((empty.status, empty.json()), (200, json!({"versions": [], "next_before": null})));

        // The pool still serves: nothing above kept a connection.
        assert_eq!(service.get("/admin/integrations/facebook").await.status, 200);
        assert_eq!(service.put("/admin/integrations/facebook", &json!({"status": true})).await.status, 200);

        // An empty table (rows removed around the service) answers too: its first statement yields
        // one row of NULLs, notices the missing catalog rows, and seeds them again, as the original
        // seeded whatever was missing on every start.
        if service.backend == Backend::Postgres {
            let client = e2e::connect(service.dsn.as_deref().unwrap()).await;
            client.batch_execute("DELETE FROM integrations").await.unwrap();
            let reseeded =
                service.send(Method::GET, "/admin/integrations/", &[("cache-control", "no-cache")], None).await;
            assert_eq!(reseeded.status, 200);
            assert_eq!(reseeded.json().as_array().unwrap().len(), integrations_core::catalog::CATALOG.len());
            let history = service.get("/admin/integrations/facebook/history").await.json();
            assert_eq!(history["versions"][0]["action"], "seed", "{history}");
        }
    }
);
