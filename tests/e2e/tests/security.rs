//! Authentication, and secrets that must never leak into logs or error bodies.

use e2e::{Backend, Service, Spin};
use reqwest::Method;
use serde_json::json;

e2e::e2e_tests!(
    #[on_each_spin]
    async fn an_admin_token_guards_the_admin_api_but_not_the_probes(spin: &Spin) {
        let service = Service::start_with(spin, Backend::Sqlite, &[("admin_token", "tok-e2e-XYZ")]).await;
        let anonymous = service.get("/admin/integrations/").await;
        assert_eq!((anonymous.status, anonymous.header("www-authenticate")), (401, Some("Bearer")));
        let wrong = service.send(Method::GET, "/admin/integrations/", &[("authorization", "Bearer nope")], None).await;
        assert_eq!(wrong.status, 401);
        let right =
            service.send(Method::GET, "/admin/integrations/", &[("authorization", "Bearer tok-e2e-XYZ")], None).await;
        assert_eq!(right.status, 200);
        let preflight = service
            .send(
                Method::OPTIONS,
                "/admin/integrations/",
                &[("origin", "http://ui"), ("access-control-request-method", "GET")],
                None,
            )
            .await;
        assert_eq!(preflight.status, 204);
        assert_eq!(service.get("/health").await.status, 200);
        assert_eq!(service.get("/readiness").await.status, 200);
    }

    #[on_each_spin]
    async fn no_secret_reaches_a_log_line_or_an_error_body(spin: &Spin) {
        let mut service = Service::start_with_own_cluster(spin, &[]).await;
        // A DSN with a password, as a deployment's is (the test cluster trusts local logins, so the
        // password is never checked, only carried).
        let password = "pg-pa55word-e2e";
        let admin = e2e::connect(service.dsn.as_deref().unwrap()).await;
        admin.batch_execute(&format!("CREATE ROLE e2e_app LOGIN SUPERUSER PASSWORD '{password}'")).await.unwrap();
        let dsn = service.dsn.clone().unwrap().replacen("://postgres@", &format!("://e2e_app:{password}@"), 1);
        assert!(dsn.contains(password), "{dsn}");
        service.restart_with(&[("db_dsn", &dsn)]).await;
        assert_eq!(service.get("/readiness").await.status, 200, "the app connects with the password's DSN");
        let secret = "s3cr3t-e2e-value";
        let body = json!({"settings": {"verify": "v", "secret": secret, "page_access_token": secret}});
        assert_eq!(service.put("/admin/integrations/facebook", &body).await.status, 200);
        let bad = service.put("/admin/integrations/facebook", &json!({"settings": secret, "name": secret})).await;
        assert_eq!(bad.status, 422);
        assert!(!String::from_utf8_lossy(&bad.body).contains(secret));

        // With the database gone, errors are logged; none may carry the DSN.
        service.stop_database().await;
        let down = service.get("/admin/integrations/facebook").await;
        assert_eq!(down.status, 503);
        let body = String::from_utf8_lossy(&down.body);
        assert!(!body.contains("127.0.0.1") && !body.contains(password), "{body}");
        let lines = service.log_lines();
        assert!(lines.iter().any(|line| line.contains("database unavailable")), "{lines:#?}");
        for line in &lines {
            assert!(!line.contains(secret), "secret in {line}");
            assert!(!line.contains(password), "the database password in {line}");
            assert!(!line.contains(&dsn), "DSN in {line}");
            assert!(!line.contains("postgres://"), "a DSN in {line}");
        }
    }
);
