//! Who may do what, and who did it: scoped tokens on every route of the route table, the actor
//! of each version in the history and in the log line, a token rotation by the README's steps,
//! bad tokens as a configuration error.

use e2e::{Backend, Reply, Service, Spin};
use integrations_core::api::routes::{Auth, RouteDef, Scope, ROUTES};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Digest as _;

const UI: &str = "ui-tok-e2e-7f3a";
const BOT: &str = "bot-tok-e2e-91c4";
const OPS: &str = "ops-tok-e2e-52d0";
const LEGACY: &str = "legacy-tok-e2e-08be";
const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// `sha256:<hex>` of `token`, as the README shows how to make it.
fn hashed(token: &str) -> String {
    let digest = sha2::Sha256::digest(token.as_bytes());
    format!("sha256:{}", digest.iter().map(|byte| format!("{byte:02x}")).collect::<String>())
}

/// The admin UI with a hashed admin token, the bot runtime with a plain read token.
fn tokens() -> String {
    format!("admin-ui:admin:{},bot-runtime:read:{BOT}", hashed(UI))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Every operation of the route table that needs a token: its route, method and scope.
fn guarded() -> Vec<(&'static RouteDef, Method, Scope)> {
    let mut all = Vec::new();
    for def in ROUTES {
        for method in def.methods() {
            if let Some(operation) = def.operation(&method) {
                if let Auth::AdminToken(scope) = operation.auth {
                    all.push((def, method, scope));
                }
            }
        }
    }
    all
}

/// Calls `method` on `def`'s path (`facebook`, version 1) with `token`; a PUT sends a body.
async fn call(service: &Service, def: &RouteDef, method: &Method, token: Option<&str>) -> Reply {
    let path = def.path().replace("{id}", "facebook").replace("{version}", "1");
    let authorization = token.map(bearer);
    let mut headers = vec![("content-type", "application/json")];
    if let Some(authorization) = &authorization {
        headers.push(("authorization", authorization));
    }
    let body = (*method == Method::PUT).then(|| br#"{"status": true}"#.to_vec());
    service.send(method.clone(), &path, &headers, body).await
}

/// The version of facebook, as the admin sees it.
async fn facebook_version(service: &Service) -> String {
    let authorization = bearer(UI);
    let reply = service
        .send(
            Method::GET,
            "/admin/integrations/facebook",
            &[("authorization", &authorization), ("cache-control", "no-cache")],
            None,
        )
        .await;
    reply.header("etag").unwrap().to_owned()
}

async fn history(service: &Service, id: &str, token: &str) -> Value {
    let authorization = bearer(token);
    let reply = service
        .send(Method::GET, &format!("/admin/integrations/{id}/history"), &[("authorization", &authorization)], None)
        .await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()
}

/// `(actor, authenticated)` of every version of a history page, newest first.
fn actors(page: &Value) -> Vec<(Value, Value)> {
    page["versions"].as_array().unwrap().iter().map(|v| (v["actor"].clone(), v["authenticated"].clone())).collect()
}

/// No log line of `service` holds any of `secrets`.
fn no_line_holds(service: &Service, secrets: &[&str]) {
    for line in service.log_lines() {
        for secret in secrets {
            assert!(!line.contains(secret), "{}: a token in {line}", service.spin());
        }
    }
}

e2e::e2e_tests!(
    #[on_each_backend]
    /// The route list comes from the route table, so a new route cannot be left out.
    async fn each_token_gets_what_its_scope_covers_on_every_route(spin: &Spin, backend: Backend) {
        let variables = [("api_tokens", tokens()), ("settings_keyring", format!("k1:{KEY}"))];
        let variables: Vec<(&str, &str)> = variables.iter().map(|(name, value)| (*name, value.as_str())).collect();
        let service = Service::start_with(spin, backend, &variables).await;
        let operations = guarded();
        assert!(operations.len() >= 10, "{operations:?}");
        let before = facebook_version(&service).await;

        // Anonymous and wrong tokens first, then the bot's: nothing may change.
        for (def, method, scope) in &operations {
            let at = format!("{spin} {backend:?}: {method} {}", def.path());
            for token in [None, Some("nope"), Some(&hashed(BOT)[..]), Some(&hashed(UI)["sha256:".len()..])] {
                let reply = call(&service, def, method, token).await;
                assert_eq!((reply.status, reply.header("www-authenticate")), (401, Some("Bearer")), "{at} {token:?}");
            }
            let reply = call(&service, def, method, Some(BOT)).await;
            match scope {
                Scope::Read => assert_eq!(reply.status, 200, "{at}"),
                Scope::Admin => {
                    assert_eq!(reply.status, 403, "{at}");
                    assert_eq!(
                        reply.header("www-authenticate"),
                        Some(r#"Bearer error="insufficient_scope", scope="admin""#),
                        "{at}"
                    );
                    if *method != Method::HEAD {
                        assert_eq!(reply.json(), json!({"detail": "Not enough permissions"}), "{at}");
                    }
                }
            }
        }
        assert_eq!(facebook_version(&service).await, before, "{spin} {backend:?}: a refused request wrote");
        let refused = service.wait_for_log("\"status\":403").await;
        assert!(refused.contains("\"actor\":\"bot-runtime\""), "the refused caller is named: {refused}");

        // The admin UI's token may do everything.
        for (def, method, _) in &operations {
            let reply = call(&service, def, method, Some(UI)).await;
            assert_eq!(
                reply.status,
                200,
                "{spin} {backend:?}: admin {method} {}: {}",
                def.path(),
                String::from_utf8_lossy(&reply.body)
            );
        }
        assert_ne!(facebook_version(&service).await, before);

        // What is not the admin API needs no token of it.
        for path in ["/health", "/readiness", "/ready", "/openapi.json", "/docs", "/metrics"] {
            assert_eq!(service.get(path).await.status, 200, "{path}");
        }
        let preflight = [("origin", "http://ui.example"), ("access-control-request-method", "PUT")];
        assert_eq!(service.send(Method::OPTIONS, "/admin/integrations/facebook", &preflight, None).await.status, 204);
        no_line_holds(&service, &[UI, BOT, &hashed(UI)["sha256:".len()..]]);
    }

    #[on_each_backend]
    async fn the_history_and_the_log_line_name_who_made_each_change(spin: &Spin, backend: Backend) {
        let tokens =
            format!("{},ops:admin:{},bot-runtime:read:{BOT}", tokens().split(',').next().unwrap(), hashed(OPS));
        let service = Service::start_with(spin, backend, &[("api_tokens", &tokens), ("admin_token", LEGACY)]).await;
        let write = |token: &'static str, request_id: &'static str, body: Value| {
            let authorization = bearer(token);
            let service = &service;
            async move {
                let headers = [
                    ("authorization", authorization.as_str()),
                    ("content-type", "application/json"),
                    ("x-request-id", request_id),
                ];
                let body = Some(body.to_string().into_bytes());
                service.send(Method::PUT, "/admin/integrations/chat_widget", &headers, body).await
            }
        };
        assert_eq!(write(UI, "actor-req-ui", json!({"status": true})).await.status, 200);
        assert_eq!(write(OPS, "actor-req-ops", json!({"name": "Site chat"})).await.status, 200);
        let authorization = bearer(LEGACY);
        let restore = service
            .send(
                Method::POST,
                "/admin/integrations/chat_widget/history/2/restore",
                &[("authorization", &authorization)],
                None,
            )
            .await;
        assert_eq!(restore.status, 200);

        let page = history(&service, "chat_widget", UI).await;
        assert_eq!(
            actors(&page),
            [
                (json!("admin_token"), json!(true)),
                (json!("ops"), json!(true)),
                (json!("admin-ui"), json!(true)),
                (Value::Null, json!(false)),
            ],
            "{spin} {backend:?}: {page}"
        );
        assert_eq!(page["versions"][1]["request_id"], "actor-req-ops");
        let one = service
            .send(Method::GET, "/admin/integrations/chat_widget/history/3", &[("authorization", &bearer(OPS))], None)
            .await;
        assert_eq!(one.json()["actor"], "ops");

        for (request_id, actor) in [("actor-req-ui", "admin-ui"), ("actor-req-ops", "ops")] {
            let line: Value = serde_json::from_str(&service.wait_for_log(request_id).await).unwrap();
            assert_eq!((line["msg"].as_str(), line["actor"].as_str()), (Some("request"), Some(actor)), "{line}");
        }
        // A read names its caller too; a refused one has no name to give.
        let read = service
            .send(
                Method::GET,
                "/admin/integrations/facebook",
                &[("authorization", &bearer(BOT)), ("x-request-id", "actor-req-bot")],
                None,
            )
            .await;
        assert_eq!(read.status, 200);
        let line: Value = serde_json::from_str(&service.wait_for_log("actor-req-bot").await).unwrap();
        assert_eq!(line["actor"], "bot-runtime");
        let anonymous = service
            .send(Method::GET, "/admin/integrations/facebook", &[("x-request-id", "actor-req-none")], None)
            .await;
        assert_eq!(anonymous.status, 401);
        let line: Value = serde_json::from_str(&service.wait_for_log("actor-req-none").await).unwrap();
        assert!(line.get("actor").is_none(), "{line}");
        no_line_holds(&service, &[UI, OPS, BOT, LEGACY]);
        assert!(!page.to_string().contains("tok-e2e"), "a token in the history: {page}");
    }

    #[on_each_spin]
    /// README, "Access": add the new token beside the old one and roll it out to every replica,
    /// move the client to it, then remove the old one and roll that out. Two replicas on one
    /// database, each restarted in turn as a rolling update does: the client, reading through
    /// both, is never refused while it follows the steps; one that skips ahead is.
    async fn a_rotation_by_the_readmes_steps_never_refuses_a_client_that_follows_them(spin: &Spin) {
        let admin = format!("admin-ui:admin:{}", hashed(UI));
        let (old, new) = ("bot-old-tok-e2e-3b1d", "bot-new-tok-e2e-c6a9");
        let before = format!("{admin},bot-runtime:read:{}", hashed(old));
        let both = format!("{admin},bot-runtime:read:{},bot-runtime-2:read:{}", hashed(old), hashed(new));
        let after = format!("{admin},bot-runtime-2:read:{}", hashed(new));

        let first = Service::start_with(spin, Backend::Postgres, &[("api_tokens", &before)]).await;
        let second = first.replica(&[("api_tokens", &before)]).await;
        let mut replicas = [first, second];
        async fn reads(replicas: &[Service], token: &str) -> Vec<u16> {
            let mut statuses = Vec::new();
            for replica in replicas {
                let authorization = bearer(token);
                let reply = replica
                    .send(Method::GET, "/admin/integrations/facebook", &[("authorization", &authorization)], None)
                    .await;
                statuses.push(reply.status);
            }
            statuses
        }
        assert_eq!(reads(&replicas, old).await, [200, 200], "{spin}: before");

        // 1. The new token beside the old one, replica by replica; the client keeps the old one.
        replicas[0].restart_with(&[("api_tokens", &both)]).await;
        assert_eq!(reads(&replicas, old).await, [200, 200], "{spin}: during step 1");
        assert_eq!(reads(&replicas, new).await, [200, 401], "{spin}: a client that moves before step 1 is done");
        replicas[1].restart_with(&[("api_tokens", &both)]).await;
        assert_eq!(reads(&replicas, old).await, [200, 200], "{spin}: after step 1");

        // 2. The client moves to the new token.
        assert_eq!(reads(&replicas, new).await, [200, 200], "{spin}: step 2");

        // 3. The old token goes, replica by replica.
        replicas[0].restart_with(&[("api_tokens", &after)]).await;
        assert_eq!(reads(&replicas, new).await, [200, 200], "{spin}: during step 3");
        replicas[1].restart_with(&[("api_tokens", &after)]).await;
        assert_eq!(reads(&replicas, new).await, [200, 200], "{spin}: after step 3");
        assert_eq!(reads(&replicas, old).await, [401, 401], "{spin}: the old token is gone");
    }

    #[on_each_spin]
    async fn bad_tokens_are_a_configuration_error_at_first_use_and_in_readiness(spin: &Spin) {
        let secret = "tok-e2e-never-logged";
        let mut service =
            Service::start_with(spin, Backend::Sqlite, &[("api_tokens", &format!("ui:owner:{secret}"))]).await;
        for bad in [
            format!("ui:owner:{secret}"),
            format!("ui:admin:{secret},ui:read:{secret}-2"),
            format!("ui:admin:sha256:{secret}"),
            format!("ui:admin:{secret},bot:read:"),
        ] {
            service.restart_with(&[("api_tokens", &bad)]).await;
            let readiness = service.get("/readiness").await;
            assert_eq!(
                (readiness.status, readiness.json()["detail"].as_str()),
                (503, Some("Service misconfigured: api_tokens")),
                "{spin}: {bad}"
            );
            // Never an open API: with a token or without, every admin route says what is wrong.
            for (method, path) in [
                (Method::GET, "/admin/integrations/"),
                (Method::PUT, "/admin/integrations/facebook"),
                (Method::GET, "/admin/keys"),
            ] {
                let authorization = bearer(secret);
                let reply = service
                    .send(
                        method.clone(),
                        path,
                        &[("authorization", &authorization), ("content-type", "application/json")],
                        Some(b"{}".to_vec()),
                    )
                    .await;
                assert_eq!(
                    reply.json(),
                    json!({"detail": "Service misconfigured: api_tokens"}),
                    "{spin}: {bad}: {method} {path}"
                );
                assert_eq!(reply.status, 500);
            }
            let line = service.wait_for_log("\"variable\":\"api_tokens\"").await;
            assert!(line.contains("\"msg\":\"misconfigured\"") && line.contains("\"level\":\"error\""), "{line}");
            no_line_holds(&service, &[secret]);
        }
    }
);
