//! A database outage mid-flight: 503 with Retry-After (never a crash or a hang), readiness
//! down, liveness up, and the next request after the database is back succeeds.

use std::time::{Duration, Instant};

use e2e::{Backend, Service, Spin};
use reqwest::Method;
use serde_json::json;

e2e::e2e_tests!(
    #[on_each_spin]
    async fn a_stopped_database_gives_503_and_the_service_recovers(spin: &Spin) {
        let service = Service::start_with_own_cluster(spin, &[]).await;
        assert_eq!(service.put("/admin/integrations/facebook", &json!({"status": true})).await.status, 200);

        service.stop_database().await;
        let started = Instant::now();
        for path in ["/admin/integrations/", "/admin/integrations/facebook"] {
            let reply = service.get(path).await;
            assert_eq!(reply.status, 503, "{path}");
            assert_eq!(reply.json(), json!({"detail": "Database unavailable"}));
            assert!(reply.header("retry-after").is_some());
        }
        let put = service.put("/admin/integrations/facebook", &json!({"status": false})).await;
        assert_eq!(put.status, 503);
        assert!(started.elapsed() < Duration::from_secs(30), "an outage must not hang requests");
        let readiness = service.get("/readiness").await;
        assert_eq!(readiness.status, 503);
        assert_eq!(readiness.json()["backend"], "postgres");
        assert_eq!(service.get("/health").await.status, 200);
        let metrics = String::from_utf8(service.get("/metrics").await.body).unwrap();
        assert!(metrics.lines().any(|line| line == "integrations_database_up 0"), "a scrape still answers: {metrics}");

        service.restart_database().await;
        assert_eq!(service.get("/readiness").await.status, 200);
        let facebook = service.get("/admin/integrations/facebook").await;
        assert_eq!(facebook.status, 200);
        assert_eq!(facebook.json()["status"], true, "the write before the outage survived, the one during it did not");
    }

    #[on_each_spin]
    /// A database the network cuts off (a partition; the old address of a failed-over primary)
    /// answers nothing: not a statement on a pooled connection, not a new connection, and no
    /// error comes either. Spin sets no timeout, so requests waited until the kernel gave up on
    /// the connection, a quarter of an hour and more; the store gives the host's client network
    /// timeouts of its own (`CONNECTION_DEFAULTS` in src/core/src/store/postgres.rs): 503 in
    /// 5-11 s.
    async fn a_database_cut_off_by_the_network_gives_503_not_a_hang(spin: &Spin) {
        // What a client would wait at most, far below what the kernel takes.
        const BOUND: Duration = Duration::from_secs(30);
        let service = Service::start_with_own_cluster_behind_link(spin, &[]).await;
        // Several pooled connections, which the cut leaves for dead without a word.
        let on = json!({"status": true});
        let puts = (0..8).map(|_| service.put("/admin/integrations/facebook", &on));
        for put in futures::future::join_all(puts).await {
            assert_eq!(put.status, 200, "{spin}");
        }

        service.cut_database_link().await;
        let started = Instant::now();
        let no_cache = [("cache-control", "no-cache")];
        let put = (&[("content-type", "application/json")], Some(br#"{"status":false}"#.to_vec()));
        let requests = [
            (Method::PUT, "/admin/integrations/facebook", &put.0[..], put.1.clone()),
            (Method::GET, "/admin/integrations/", &no_cache[..], None),
            (Method::GET, "/admin/integrations/facebook", &no_cache[..], None),
            (Method::PUT, "/admin/integrations/chat_widget", &put.0[..], put.1),
            (Method::GET, "/readiness", &[][..], None),
        ];
        let replies = futures::future::join_all(requests.iter().map(|(method, path, headers, body)| {
            service.send_within(BOUND, method.clone(), path, headers, body.clone())
        }))
        .await;
        for ((method, path, ..), reply) in requests.iter().zip(&replies) {
            assert_eq!(reply.status, 503, "{spin}: {method} {path}");
            assert_eq!(reply.json()["detail"], "Database unavailable", "{spin}: {method} {path}");
            assert!(reply.header("retry-after").is_some(), "{spin}: {method} {path}");
        }
        eprintln!("{spin}: the cut answered 503 within {:?}", started.elapsed());
        assert_eq!(service.get("/health").await.status, 200);

        service.restore_database_link().await;
        assert_eq!(service.get("/readiness").await.status, 200, "{spin}: back");
        let facebook = service.send(Method::GET, "/admin/integrations/facebook", &no_cache, None).await;
        assert_eq!(facebook.json()["status"], true, "{spin}: the write during the cut never reached the database");
        let put = service.put("/admin/integrations/facebook", &json!({"status": false})).await;
        assert_eq!(put.status, 200, "{spin}");
    }

    #[on_each_spin]
    /// The host sets no timeout on a PostgreSQL call: a request waits as long as the database
    /// does (a table locked by a long migration or by hand). An operator bounds that wait on the
    /// server, with `lock_timeout` or `statement_timeout` (for the app's role or database, or
    /// `options` in `db_dsn`); what the server then answers (SQLSTATE 55P03, 57014) is the
    /// database being unavailable for now, as when it is down: 503, never a 500.
    async fn a_database_timeout_on_a_locked_table_gives_503(spin: &Spin) {
        for setting in ["lock_timeout", "statement_timeout"] {
            let service = Service::start(spin, Backend::Postgres).await;
            let dsn = service.dsn.clone().expect("a PostgreSQL service");
            let admin = e2e::connect(&dsn).await;
            // Before the app's first connection: a session takes the database's settings when it
            // starts.
            let set = format!(
                "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET {setting} = 300', current_database()); END $$"
            );
            admin.batch_execute(&set).await.unwrap();
            assert_eq!(service.get("/readiness").await.status, 200, "{setting}: migrated");

            admin.batch_execute("BEGIN; LOCK TABLE integrations IN ACCESS EXCLUSIVE MODE").await.unwrap();
            let no_cache = [("cache-control", "no-cache")];
            let started = Instant::now();
            for path in ["/admin/integrations/", "/admin/integrations/facebook", "/admin/integrations/facebook/history"]
            {
                let reply = service.send(Method::GET, path, &no_cache, None).await;
                assert_eq!(
                    (reply.status, reply.json()),
                    (503, json!({"detail": "Database unavailable"})),
                    "{spin} {setting}: GET {path}"
                );
                assert!(reply.header("retry-after").is_some());
            }
            let put = service.put("/admin/integrations/facebook", &json!({"status": true})).await;
            assert_eq!((put.status, put.json()), (503, json!({"detail": "Database unavailable"})), "{spin} {setting}");
            let readiness = service.get("/readiness").await;
            assert_eq!(
                (readiness.status, readiness.json()["detail"].as_str()),
                (503, Some("Database unavailable")),
                "{spin} {setting}"
            );
            assert!(started.elapsed() < Duration::from_secs(8), "{spin} {setting}: bounded by the server's timeout");
            admin.batch_execute("COMMIT").await.unwrap();

            let put = service.put("/admin/integrations/facebook", &json!({"status": true})).await;
            assert_eq!(put.status, 200, "{spin} {setting}: the lock released");
            assert_eq!(service.get("/admin/integrations/facebook").await.json()["status"], true);
            for line in service.log_lines() {
                assert!(!line.contains("\"level\":\"error\""), "{spin} {setting}: not an error of the app: {line}");
            }
        }
    }

    #[on_each_spin]
    async fn postgres_backend_without_a_dsn_is_misconfigured_not_sqlite(spin: &Spin) {
        let service = Service::start_with(spin, Backend::Sqlite, &[("db_backend", "postgres")]).await;
        let readiness = service.get("/readiness").await;
        assert_eq!(readiness.status, 503);
        let readiness = readiness.json();
        assert_eq!(
            (readiness["backend"].as_str(), readiness["detail"].as_str()),
            (Some("postgres"), Some("Service misconfigured: db_dsn"))
        );
        let list = service.get("/admin/integrations/").await;
        assert_eq!((list.status, list.json()), (500, json!({"detail": "Service misconfigured: db_dsn"})));
        let line = service.wait_for_log("\"msg\":\"misconfigured\"").await;
        assert!(line.contains("\"variable\":\"db_dsn\"") && line.contains("\"level\":\"error\""), "{line}");
    }

    #[on_each_spin]
    /// A `db_host` that does not let the components reach `db_dsn`'s address, and a `db_dsn` that
    /// does not parse, are the operator's to fix: they answered 503 `Database unavailable` with
    /// `Retry-After`, as if waiting would help, and readiness did not say which variable.
    async fn a_wrong_db_host_or_db_dsn_is_misconfigured_naming_it(spin: &Spin) {
        let mut service = Service::start(spin, Backend::Postgres).await;
        let dsn = service.dsn.clone().expect("a PostgreSQL service");
        let unparsable = dsn.replacen("@127.0.0.1:", "@127.0.0.1:notaport", 1);
        assert_ne!(unparsable, dsn, "the fixture's DSN names 127.0.0.1: {dsn}");
        let separator = if dsn.contains('?') { '&' } else { '?' };
        let bad_option = format!("{dsn}{separator}sslmode=notamode");
        for (variables, variable) in [
            (vec![("db_host", "127.0.0.1:1")], "db_host"),
            (vec![("db_dsn", unparsable.as_str())], "db_dsn"),
            (vec![("db_dsn", bad_option.as_str())], "db_dsn"),
        ] {
            service.restart_with(&variables).await;
            let detail = format!("Service misconfigured: {variable}");
            let list = service.get("/admin/integrations/").await;
            assert_eq!((list.status, list.json()), (500, json!({ "detail": detail })), "{spin} {variables:?}");
            let readiness = service.get("/readiness").await;
            assert_eq!(
                (readiness.status, readiness.json()["detail"].as_str()),
                (503, Some(detail.as_str())),
                "{spin} {variables:?}"
            );
            let line = service.wait_for_log(&format!("\"variable\":\"{variable}\"")).await;
            assert!(line.contains("\"msg\":\"misconfigured\""), "{line}");
            for line in service.log_lines() {
                assert!(!line.contains("notaport") && !line.contains(&dsn), "the DSN in {line}");
                assert!(!line.contains("notamode"), "the DSN in {line}");
            }
        }
        service.restart_with(&[]).await;
        assert_eq!(service.get("/readiness").await.status, 200);
    }

    #[on_each_spin]
    /// Issue 19: a keyring that does not parse was reported to clients as "Database unavailable".
    async fn a_keyring_that_does_not_parse_is_a_500_naming_it_and_readiness_fails(spin: &Spin) {
        let secret_looking = "k1:c2hvcnQta2V5";
        let service = Service::start_with(spin, Backend::Sqlite, &[("settings_keyring", secret_looking)]).await;
        let readiness = service.get("/readiness").await;
        assert_eq!(
            (readiness.status, readiness.json()["detail"].as_str()),
            (503, Some("Service misconfigured: settings_keyring"))
        );
        let put = service.put("/admin/integrations/facebook", &json!({"settings": {"verify": "v"}})).await;
        assert_eq!((put.status, put.json()), (500, json!({"detail": "Service misconfigured: settings_keyring"})));
        let line = service.wait_for_log("\"variable\":\"settings_keyring\"").await;
        assert!(line.contains("32 bytes"), "the reason: {line}");
        for line in service.log_lines() {
            assert!(!line.contains("c2hvcnQta2V5"), "the value in {line}");
        }
    }
);
