//! Concurrent writers on the SQLite default (`spin build --up`, no DSN), under every Spin:
//! every request answers without a 5xx, and no write is lost.
//!
//! Spin gives each request a SQLite connection of its own, so concurrent writers meet in SQLite's
//! write lock. Two things used to fail here: a fresh app's first requests raced to switch the
//! database to write-ahead logging, which SQLite refuses at once, without waiting, to a connection
//! that read the file while another holds the write lock ("database is locked", a 503 after a few
//! milliseconds); and writers queued for the lock in SQLite's busy handler, whose back-off left
//! some waiting past its 5 s timeout (a 503). A correctness test: it asserts outcomes, never a time.

use std::collections::BTreeSet;

use e2e::{Backend, Service, Spin};
use reqwest::Method;
use serde_json::json;

const CONCURRENT: usize = 64;
/// PUTs each concurrent writer sends, one after the other.
const ROUNDS: usize = 10;
/// Fresh apps whose first requests race, per Spin.
const COLD_STARTS: usize = 3;

e2e::e2e_tests!(
    #[on_each_spin]
    async fn concurrent_first_requests_and_writers_on_sqlite_get_no_5xx_and_lose_no_write(spin: &Spin) {
        // The first as the README's command runs it, the others without its runtime config, where
        // the cache's key-value store is a second SQLite file that the first requests also race on.
        first_requests(&Service::start_as_the_readme_runs_it(spin).await).await;
        for _ in 2..COLD_STARTS {
            first_requests(&Service::start(spin, Backend::Sqlite).await).await;
        }
        // Every write stays in the history, so that each one can be found there.
        let retention = (CONCURRENT * (ROUNDS + 1) + 10).to_string();
        let service = Service::start_with(spin, Backend::Sqlite, &[("history_retention", retention.as_str())]).await;
        first_requests(&service).await;
        writers(&service).await;
    }
);

/// 64 requests at once as the very first requests of a fresh app (the database file does not
/// exist yet): each finds the schema missing and migrates, or waits for the one that does.
async fn first_requests(service: &Service) {
    let service_ref = service;
    let requests = (0..CONCURRENT).map(|i| async move {
        let reply = match i % 4 {
            // A plain write.
            0 => service_ref.put("/admin/integrations/facebook", &json!({"description": format!("first {i}")})).await,
            // A write only of the seeded version: exactly one of these may win.
            1 => {
                service_ref
                    .send(
                        Method::PUT,
                        "/admin/integrations/chat_widget",
                        &[("if-match", "\"1\""), ("content-type", "application/json")],
                        Some(json!({"description": format!("first {i}")}).to_string().into_bytes()),
                    )
                    .await
            }
            2 => service_ref.get("/admin/integrations/facebook").await,
            _ => service_ref.get("/admin/integrations/").await,
        };
        (i, reply)
    });
    let replies = futures::future::join_all(requests).await;
    let spin = service.spin();
    for (i, reply) in &replies {
        assert!(
            reply.status < 500,
            "{spin}: first request {i} answered {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
    }
    let written = |kind: usize| replies.iter().filter(|(i, reply)| i % 4 == kind && reply.status == 200).count();
    assert_eq!(written(0), CONCURRENT / 4, "{spin}: every plain first write succeeds");
    assert_eq!(written(1), 1, "{spin}: exactly one write of version 1 wins; the others get 412");
    let stale = replies.iter().filter(|(i, reply)| i % 4 == 1 && reply.status == 412).count();
    assert_eq!(stale, CONCURRENT / 4 - 1, "{spin}");

    assert_eq!(version_of(service).await, 1 + (CONCURRENT / 4) as i64, "{spin}: no first write lost");
    assert_eq!(service.get("/readiness").await.json()["status"], "ok", "{spin}");
}

/// 64 clients writing the same integration at once, each several times: every PUT answers 200
/// with a version of its own, and the history holds exactly those versions, each with the
/// request that made it.
async fn writers(service: &Service) {
    let spin = service.spin();
    let before = version_of(service).await;
    let service_ref = service;
    let clients = (0..CONCURRENT).map(|client| async move {
        let mut written = Vec::new();
        for round in 0..ROUNDS {
            let request_id = format!("writer-{client}-{round}");
            let body = json!({"status": (client + round) % 2 == 0, "description": request_id});
            let reply = service_ref
                .send(
                    Method::PUT,
                    "/admin/integrations/facebook",
                    &[("content-type", "application/json"), ("x-request-id", request_id.as_str())],
                    Some(body.to_string().into_bytes()),
                )
                .await;
            assert_eq!(reply.status, 200, "{request_id}: {}", String::from_utf8_lossy(&reply.body));
            let version: i64 =
                reply.header("etag").and_then(|tag| tag.trim_matches('"').parse().ok()).expect("a numeric ETag");
            assert_eq!(reply.json()["description"], request_id.as_str(), "the answer is this write's row");
            written.push((version, request_id));
        }
        written
    });
    let written: Vec<(i64, String)> = futures::future::join_all(clients).await.into_iter().flatten().collect();
    let versions: BTreeSet<i64> = written.iter().map(|(version, _)| *version).collect();
    assert_eq!(versions.len(), written.len(), "{spin}: no two writes got the same version");
    let expected: BTreeSet<i64> = (before + 1..=before + written.len() as i64).collect();
    assert_eq!(versions, expected, "{spin}: the writes got consecutive versions after {before}");
    assert_eq!(version_of(service).await, before + written.len() as i64, "{spin}: no write lost");

    // The history holds each of these versions, recorded by the request that made it.
    let mut recorded = std::collections::BTreeMap::new();
    let mut before_page: Option<i64> = None;
    loop {
        let path = match before_page {
            Some(before) => format!("/admin/integrations/facebook/history?limit=100&before={before}"),
            None => "/admin/integrations/facebook/history?limit=100".to_owned(),
        };
        let page = service.get(&path).await.json();
        for entry in page["versions"].as_array().expect("versions") {
            let version = entry["version"].as_i64().expect("a version");
            recorded.insert(version, entry["request_id"].as_str().unwrap_or_default().to_owned());
        }
        match page["next_before"].as_i64() {
            Some(next) => before_page = Some(next),
            None => break,
        }
    }
    for (version, request_id) in &written {
        assert_eq!(recorded.get(version), Some(request_id), "{spin}: version {version} is in the history");
    }
}

async fn version_of(service: &Service) -> i64 {
    let reply = service.get("/admin/integrations/facebook").await;
    reply.header("etag").and_then(|tag| tag.trim_matches('"').parse().ok()).expect("a numeric ETag")
}
