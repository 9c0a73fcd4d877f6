//! The integrations API end to end: real HTTP into the built components, on PostgreSQL
//! and on SQLite. Each test runs once per backend.

use e2e::{Backend, Service, REQUEST_TIMEOUT};
use integrations_core::store::migrations::LATEST;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The catalog's ids, in its order: what a fresh database lists.
fn catalog() -> Vec<&'static str> {
    integrations_core::catalog::CATALOG.iter().map(|entry| entry.id).collect()
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array().unwrap().iter().map(|item| item["id"].as_str().unwrap()).collect()
}

// Spin leaves Nagle's algorithm on for the connections it accepts, so a body written to the
// socket after its head waits for the client's delayed ACK (40 ms on Linux): that was the p99 of
// every cached read in the benchmark. Each answer must leave in one write, which a client sees as
// head and body in the same read.

e2e::e2e_tests!(
    #[on_each_service]
    async fn list_answers_with_and_without_the_trailing_slash(service: Service) {
        for path in ["/admin/integrations", "/admin/integrations/"] {
            let reply = service.get(path).await;
            assert_eq!(reply.status, 200, "{path}");
            assert_eq!(ids(&reply.json()), catalog());
        }
        let facebook = &service.get("/admin/integrations").await.json()[0];
        assert_eq!(
            facebook["settings"],
            json!({"verify": "ai-chatbot-framework", "secret": "", "page_access_token": ""})
        );
        assert_eq!(facebook["status"], false);
    }

    #[on_each_service]
    async fn the_admin_uis_call_sequence_works(service: Service) {
        // The UI lists, opens one integration, then PUTs its whole object on every keystroke.
        assert_eq!(service.get("/admin/integrations/").await.status, 200);
        let mut facebook = service.get("/admin/integrations/facebook").await.json();
        let mut typed = String::new();
        for key in "my-verify-token".chars() {
            typed.push(key);
            facebook["settings"]["verify"] = json!(typed);
            let reply = service.put("/admin/integrations/facebook", &facebook).await;
            assert_eq!(reply.status, 200);
            facebook = reply.json();
        }
        facebook["status"] = json!(true);
        let toggled = service.put("/admin/integrations/facebook", &facebook).await.json();
        assert_eq!(toggled["status"], true);
        assert_eq!(toggled["settings"]["verify"], "my-verify-token");
        let stored = service.get("/admin/integrations/facebook").await;
        assert_eq!(stored.json()["settings"]["verify"], "my-verify-token");
        assert_eq!(stored.header("etag"), Some(&*format!("\"{}\"", "my-verify-token".len() + 2)));
    }

    #[on_each_service]
    async fn partial_puts_keep_what_they_do_not_name(service: Service) {
        let settings = json!({"verify": "v", "secret": "s", "page_access_token": "t"});
        let reply = service.put("/admin/integrations/facebook", &json!({ "settings": settings })).await;
        assert_eq!(reply.status, 200);
        let reply = service.put("/admin/integrations/facebook", &json!({"status": true})).await;
        let facebook = reply.json();
        assert_eq!((facebook["status"].clone(), facebook["settings"].clone()), (json!(true), settings));
        assert_eq!(facebook["name"], "Facebook Messenger");
        assert!(facebook["updated_at"].as_str() >= facebook["created_at"].as_str());
        // Settings left out get the catalog's defaults; settings are replaced whole.
        let reply = service.put("/admin/integrations/facebook", &json!({"settings": {"verify": "only"}})).await;
        assert_eq!(reply.json()["settings"], json!({"verify": "only", "secret": "", "page_access_token": ""}));
    }

    #[on_each_service]
    async fn settings_are_checked_against_the_catalog(service: Service) {
        let before = service.get("/admin/integrations/facebook").await.json();
        let cases = [
            (json!({"settings": {"verify": 5}}), json!(["body", "settings", "verify"]), "string_type"),
            (json!({"settings": {"verfy": "typo"}}), json!(["body", "settings", "verfy"]), "extra_forbidden"),
            (json!({"name": "a\u{0}b"}), json!(["body", "name"]), "value_error"),
        ];
        for (body, loc, kind) in cases {
            let reply = service.put("/admin/integrations/facebook", &body).await;
            assert_eq!(reply.status, 422, "{body}");
            let detail = &reply.json()["detail"][0];
            assert_eq!((&detail["loc"], detail["type"].as_str()), (&loc, Some(kind)), "{body}");
        }
        // The chat widget's settings are free-form, as in the original: any object, stored exactly.
        let free_form = r##"{"theme":{"color":"#123456","dark":true},"origins":["https://a.example"],"n":1.50}"##;
        let body = format!(r#"{{"settings": {free_form}}}"#).into_bytes();
        let headers = [("content-type", "application/json")];
        let widget = service.send(Method::PUT, "/admin/integrations/chat_widget", &headers, Some(body)).await;
        assert_eq!(widget.status, 200, "{}", String::from_utf8_lossy(&widget.body));
        let read = String::from_utf8(service.get("/admin/integrations/chat_widget").await.body).unwrap();
        assert!(read.contains(&format!("\"settings\":{free_form}")), "{read}");
        assert_eq!(service.get("/admin/integrations/facebook").await.json(), before, "a refused PUT changes nothing");
    }

    #[on_each_service]
    async fn bad_requests_get_clear_4xx_and_change_nothing(service: Service) {
        let before = service.get("/admin/integrations/facebook").await.json();
        let json_body = |body: &str| Some(body.as_bytes().to_vec());
        let cases: Vec<(Method, &str, Option<Vec<u8>>, u16)> = vec![
            (Method::GET, "/admin/integrations/nope", None, 404),
            (Method::GET, "/admin/integrations/fa%20b", None, 404),
            (Method::PUT, "/admin/integrations/twitter", json_body(r#"{"status": true}"#), 404),
            (Method::DELETE, "/admin/integrations/facebook", None, 405),
            (Method::POST, "/admin/integrations", json_body("{}"), 405),
            (Method::PUT, "/admin/integrations/facebook", json_body(r#"{"id": "renamed"}"#), 422),
            (Method::PUT, "/admin/integrations/facebook", json_body(r#"{"status": "yes", "settings": []}"#), 422),
            (Method::PUT, "/admin/integrations/facebook", json_body("{\"status\": tru"), 422),
            (Method::PUT, "/admin/integrations/facebook", json_body(""), 422),
            (Method::PUT, "/admin/integrations/facebook", Some(vec![b' '; 64 * 1024 + 1]), 413),
        ];
        for (method, path, body, expected) in cases {
            let reply = service.send(method.clone(), path, &[("content-type", "application/json")], body).await;
            assert_eq!(reply.status, expected, "{method} {path}: {}", String::from_utf8_lossy(&reply.body));
        }
        let invalid = service
            .send(Method::PUT, "/admin/integrations/facebook", &[], json_body(r#"{"status": 2, "name": 2}"#))
            .await
            .json();
        let locs: Vec<Value> = invalid["detail"].as_array().unwrap().iter().map(|e| e["loc"].clone()).collect();
        assert_eq!(locs, [json!(["body", "name"]), json!(["body", "status"])]);
        let not_found = service.get("/admin/integrations/nope").await.json();
        assert_eq!(not_found, json!({"detail": "Integration not found"}));
        let method = service.send(Method::DELETE, "/admin/integrations/facebook", &[], None).await;
        assert_eq!(method.header("allow"), Some("GET, HEAD, PUT, OPTIONS"));
        assert_eq!(service.get("/admin/integrations/facebook").await.json(), before);
        // A path no route names reaches spin.toml's catch-all, which answers as FastAPI does
        // (Spin alone answers an empty 404), whatever the method.
        for (method, path) in [(Method::GET, "/admin/integrations/a/b"), (Method::GET, "/"), (Method::POST, "/admin")] {
            let unrouted = service.send(method.clone(), path, &[], None).await;
            assert_eq!((unrouted.status, unrouted.json()), (404, json!({"detail": "Not Found"})), "{method} {path}");
            assert_eq!(unrouted.header("content-type"), Some("application/json"));
            assert!(unrouted.header("x-request-id").is_some());
        }
        let head = service.send(Method::HEAD, "/nothing", &[], None).await;
        assert_eq!((head.status, head.body.len()), (404, 0));
    }

    #[on_each_service]
    async fn a_stale_if_match_is_refused_with_412(service: Service) {
        let read = service.get("/admin/integrations/facebook").await;
        let etag = read.header("etag").unwrap().to_owned();
        let headers = [("if-match", etag.as_str()), ("content-type", "application/json")];
        let put = |status: bool| {
            let body = Some(json!({ "status": status }).to_string().into_bytes());
            service.send(Method::PUT, "/admin/integrations/facebook", &headers, body)
        };
        assert_eq!(put(true).await.status, 200);
        let stale = put(false).await;
        assert_eq!(stale.status, 412);
        assert_eq!(stale.json(), json!({"detail": "Integration was modified since it was read"}));
        assert_eq!(service.get("/admin/integrations/facebook").await.json()["status"], true);
        let unchanged =
            service.send(Method::GET, "/admin/integrations/facebook", &[("if-none-match", &etag)], None).await;
        assert_eq!(unchanged.status, 200, "an old etag is not the current one");
    }

    #[on_each_service]
    async fn preflight_and_cors_headers_let_the_admin_ui_in(service: Service) {
        let origin = "http://localhost:3000";
        let preflight = service
            .send(
                Method::OPTIONS,
                "/admin/integrations/facebook",
                &[
                    ("origin", origin),
                    ("access-control-request-method", "PUT"),
                    ("access-control-request-headers", "content-type"),
                ],
                None,
            )
            .await;
        assert_eq!(preflight.status, 204);
        assert_eq!(preflight.header("access-control-allow-origin"), Some(origin));
        assert_eq!(preflight.header("access-control-allow-credentials"), Some("true"));
        assert!(preflight.header("access-control-allow-methods").unwrap().contains("PUT"));
        assert_eq!(preflight.header("access-control-allow-headers"), Some("content-type"));
        let get = service.send(Method::GET, "/admin/integrations/", &[("origin", origin)], None).await;
        assert_eq!(get.header("access-control-allow-origin"), Some(origin));
        assert!(get.header("access-control-expose-headers").unwrap().contains("ETag"));
    }

    #[on_each_service]
    async fn concurrent_first_requests_seed_each_catalog_row_once(service: Service) {
        let replies = futures::future::join_all((0..24).map(|_| service.get("/admin/integrations/"))).await;
        for reply in &replies {
            assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
            assert_eq!(ids(&reply.json()), catalog());
        }
        if let Some(dsn) = &service.dsn {
            let client = e2e::connect(dsn).await;
            let count: i64 = client.query_one("SELECT count(*) FROM integrations", &[]).await.unwrap().get(0);
            assert_eq!(count, catalog().len() as i64);
            let versions: Vec<i64> = client
                .query("SELECT version FROM integrations_schema_migrations ORDER BY version", &[])
                .await
                .unwrap()
                .iter()
                .map(|row| row.get(0))
                .collect();
            assert_eq!(versions, (1..=LATEST).collect::<Vec<_>>(), "every migration ran once");
        }
    }

    #[on_each_service]
    async fn concurrent_puts_lose_no_write(service: Service) {
        service.get("/admin/integrations/").await; // the schema exists before the race
        let writers = 16;
        let service = &service;
        let puts = (0..writers).map(|i| async move {
            let body = if i % 2 == 0 {
                json!({ "settings": { "verify": format!("writer {i}") } })
            } else {
                json!({ "name": format!("name {i}") })
            };
            service.put("/admin/integrations/facebook", &body).await
        });
        for reply in futures::future::join_all(puts).await {
            assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
        }
        let facebook = service.get("/admin/integrations/facebook").await;
        // Every write landed on top of the previous one: one version step each, each in the history.
        assert_eq!(facebook.header("etag"), Some(&*format!("\"{}\"", writers + 1)));
        let facebook = facebook.json();
        assert!(facebook["settings"]["verify"].as_str().unwrap().starts_with("writer "), "from a settings write");
        assert!(facebook["name"].as_str().unwrap().starts_with("name "), "the name comes from a name write");
        assert_eq!(facebook["description"], "Connect with Facebook Messenger");
        let history = service.get(&format!("/admin/integrations/facebook/history?limit={}", writers + 1)).await.json();
        let versions: Vec<i64> =
            history["versions"].as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
        assert_eq!(versions, (1..=writers as i64 + 1).rev().collect::<Vec<_>>());
    }

    #[on_each_service]
    async fn probes_docs_and_metrics_answer(service: Service) {
        assert_eq!(service.get("/health").await.json(), json!({"status": "ok"}));
        let backend = if service.backend == Backend::Postgres { "postgres" } else { "sqlite" };
        for path in ["/readiness", "/ready"] {
            assert_eq!(service.get(path).await.json(), json!({"status": "ok", "backend": backend}));
        }
        let spec = service.get("/openapi.json").await.json();
        assert!(spec["paths"]["/admin/integrations/{id}"]["put"].is_object());
        let docs = service.get("/docs").await;
        assert!(docs.header("content-type").unwrap().starts_with("text/html"));
        let metrics = service.get("/metrics").await;
        assert_eq!(metrics.status, 200);
        assert!(String::from_utf8_lossy(&metrics.body).contains("integrations_"));
    }

    #[on_each_service]
    async fn every_request_writes_one_json_log_line(service: Service) {
        let reply =
            service.send(Method::GET, "/admin/integrations/facebook", &[("x-request-id", "e2e-req-1")], None).await;
        assert_eq!(reply.header("x-request-id"), Some("e2e-req-1"));
        let line = service.wait_for_log("e2e-req-1").await;
        let line: Value = serde_json::from_str(&line).expect("a JSON log line");
        for field in ["ts", "level", "msg", "component", "method", "path", "status", "duration_ms", "request_id"] {
            assert!(line.get(field).is_some(), "{field} missing in {line}");
        }
        assert_eq!((line["status"].as_u64(), line["component"].as_str()), (Some(200), Some("integrations-item")));
    }

    #[on_each_service]
    async fn each_answer_leaves_in_one_write(service: Service) {
        let port = service.app.port();
        let client = |_| async move {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let mut split = Vec::new();
            let paths = ["/admin/integrations/facebook", "/admin/integrations", "/health", "/admin/integrations/nope"];
            for path in paths.iter().cycle().take(60) {
                let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n");
                stream.write_all(request.as_bytes()).await.unwrap();
                let mut received = Vec::new();
                let mut buffer = vec![0u8; 64 * 1024];
                let mut reads = 0;
                // Reads until the whole answer is in: its head, then content-length bytes.
                loop {
                    let n = tokio::time::timeout(REQUEST_TIMEOUT, stream.read(&mut buffer)).await.unwrap().unwrap();
                    assert!(n > 0, "{path}: the connection closed");
                    received.extend_from_slice(&buffer[..n]);
                    reads += 1;
                    let Some(head_end) = received.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                    let head = String::from_utf8_lossy(&received[..head_end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length:"))
                        .map(|value| value.trim().parse().unwrap())
                        .unwrap_or_else(|| panic!("{path}: no content-length in {head}"));
                    if received.len() >= head_end + 4 + length {
                        break;
                    }
                }
                if reads > 1 {
                    split.push(*path);
                }
            }
            split
        };
        let split: Vec<&str> = futures::future::join_all((0..4).map(client)).await.into_iter().flatten().collect();
        assert!(split.is_empty(), "answers that arrived in more than one read: {split:?}");
    }
);
