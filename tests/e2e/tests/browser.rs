//! The admin UI's calls from a real browser on another origin (headless Chromium: src/browser.rs).
//! The UI (the framework's `frontend/app/services/integrations.tsx`) lists with
//! `fetch(base + "/admin/integrations/")`, reads one with `fetch(base + "/admin/integrations/" +
//! id)`, and saves with a `fetch` PUT as `Content-Type: application/json`, which the browser sends
//! only after a preflight: its settings form saves on every keystroke, the integration it holds
//! with the setting typed in, and its toggle the integration with `status` and the form's settings. The other tests check the CORS headers the
//! app sends; these check that a browser, which decides what a page may send and read, lets the
//! UI do its work: each answer, errors included, readable by the page, and nothing readable or
//! written from an origin the operator did not allow. Last, `/docs` as the browser renders it.

use e2e::browser::{Browser, BrowserRequest};
use e2e::{Backend, Service, Spin};
use serde_json::json;

const ITEM: &str = "/admin/integrations/facebook";

e2e::e2e_tests!(
    #[on_each_service]
    /// Every call of the UI, and what a UI can do with what this API adds (the ETag for
    /// `If-Match`, the request id, the error details), from a page of another origin.
    async fn the_admin_ui_works_from_another_origin(service: Service) {
        let browser = Browser::open().await.expect("a browser");
        let ui = |request: BrowserRequest| {
            let service = &service;
            let browser = &browser;
            async move {
                let what = format!("{} {}", request.method(), request.path());
                let reply = service.from_browser(browser, &request).await;
                reply.unwrap_or_else(|refusal| panic!("{}: the browser refused {what}: {refusal}", service.spin()))
            }
        };

        // listIntegrations
        let list = ui(BrowserRequest::get("/admin/integrations/")).await;
        assert_eq!(list.status, 200);
        let ids: Vec<_> = list.json().as_array().unwrap().iter().map(|i| i["id"].clone()).collect();
        assert_eq!(ids, [json!("facebook"), json!("chat_widget")]);

        // getIntegration: the page can read the ETag and the request id (exposed), not only the body.
        let read = ui(BrowserRequest::get(ITEM)).await;
        assert_eq!(read.status, 200);
        assert_eq!(read.json()["settings"]["verify"], "ai-chatbot-framework");
        let first_etag = read.header("etag").expect("the page reads the ETag").to_owned();
        assert_eq!(read.header("x-request-id").map(str::len), Some(32), "{:?}", read.headers);

        // updateIntegration, as the UI's form calls it on each keystroke: the integration it holds
        // (as read: created_at and updated_at too) with the one setting typed in, then what the
        // API answered in its place. The JSON body makes the browser ask first (a preflight).
        let mut integration = read.json();
        for typed in ["m", "my", "my-verify"] {
            integration["settings"]["verify"] = json!(typed);
            let save = ui(BrowserRequest::put(ITEM, &integration)).await;
            assert_eq!(save.status, 200, "{}", save.body);
            assert_eq!(save.json()["settings"]["verify"], typed);
            integration = save.json();
        }
        // The browser's preflight, not the test's: the app saw an OPTIONS before the PUTs.
        service.wait_for_log(&format!(r#""method":"OPTIONS","path":"{ITEM}""#)).await;
        // ... and as its toggle calls it: the integration, enabled, with the form's settings.
        let settings = json!({"verify": "my-verify", "secret": "app-secret", "page_access_token": "EAAB-page"});
        integration["status"] = json!(true);
        integration["settings"] = settings.clone();
        let save = ui(BrowserRequest::put(ITEM, &integration)).await;
        assert_eq!(save.status, 200, "{}", save.body);
        assert_eq!((save.json()["status"].clone(), save.json()["settings"].clone()), (json!(true), settings.clone()));
        let etag = save.header("etag").expect("the page reads the new ETag").to_owned();
        assert_ne!(etag, first_etag);
        // Reading it again shows the save: neither the browser's cache nor the app's answers the
        // copy read before it.
        let again = ui(BrowserRequest::get(ITEM)).await;
        assert_eq!((again.json()["settings"].clone(), again.header("etag")), (settings.clone(), Some(etag.as_str())));

        // A UI that saves with If-Match: the preflight lets the header through, and a conflict is
        // a 412 the page can read and tell the user about.
        let body = json!({"status": true, "settings": settings});
        let conditional = ui(BrowserRequest::put(ITEM, &body).header("If-Match", &etag)).await;
        assert_eq!(conditional.status, 200, "{}", conditional.body);
        let etag = conditional.header("etag").unwrap().to_owned();
        let stale = ui(BrowserRequest::put(ITEM, &json!({"status": false})).header("If-Match", &first_etag)).await;
        assert_eq!(stale.status, 412);
        assert_eq!(stale.json(), json!({"detail": "Integration was modified since it was read"}));

        // A body that does not validate: the page reads which field, as FastAPI's 422 says it.
        let invalid = ui(BrowserRequest::put(ITEM, &json!({"settings": {"verify": 5}}))).await;
        assert_eq!(invalid.status, 422);
        assert_eq!(invalid.json()["detail"][0]["loc"], json!(["body", "settings", "verify"]));

        // With credentials (the browser then requires the page's own origin, never `*`), and with
        // an Authorization header, as a UI that signs in sends it.
        let with_credentials = ui(BrowserRequest::get(ITEM).with_credentials()).await;
        assert_eq!(with_credentials.status, 200);
        let signed_in = ui(BrowserRequest::get(ITEM).header("Authorization", "Bearer any")).await;
        assert_eq!(signed_in.status, 200, "no token is configured: the API is open");

        // A path no route names: FastAPI's 404, readable too.
        let nowhere = ui(BrowserRequest::get("/admin/nothing")).await;
        assert_eq!((nowhere.status, nowhere.json()), (404, json!({"detail": "Not Found"})));

        // What the browser saved is what is stored; the refused saves wrote nothing.
        let stored = service.get(ITEM).await;
        assert_eq!(stored.header("etag"), Some(etag.as_str()));
        assert_eq!((stored.json()["status"].clone(), stored.json()["settings"].clone()), (json!(true), settings));
    }

    #[on_each_spin]
    /// With tokens configured, a page without one reads the 401 (and can ask the user to sign
    /// in) instead of a network error; with one, it reads and saves; a read token's save is a
    /// 403 it can read.
    async fn a_ui_signs_in_with_a_token_from_another_origin(spin: &Spin) {
        let tokens = "ui:admin:ui-admin-token,bot:read:bot-read-token";
        let service = Service::start_with(spin, Backend::Sqlite, &[("api_tokens", tokens)]).await;
        let browser = Browser::open().await.expect("a browser");
        let ui = |request: BrowserRequest| {
            let (service, browser) = (&service, &browser);
            async move { service.from_browser(browser, &request).await.expect("the browser lets the page read it") }
        };

        let anonymous = ui(BrowserRequest::get(ITEM)).await;
        assert_eq!(anonymous.status, 401, "{}", anonymous.body);
        assert!(anonymous.json()["detail"].is_string());

        let admin = |request: BrowserRequest| request.header("Authorization", "Bearer ui-admin-token");
        assert_eq!(ui(admin(BrowserRequest::get(ITEM))).await.status, 200);
        let save = ui(admin(BrowserRequest::put(ITEM, &json!({"status": true})))).await;
        assert_eq!((save.status, save.json()["status"].clone()), (200, json!(true)));

        let read_only =
            BrowserRequest::put(ITEM, &json!({"status": false})).header("Authorization", "Bearer bot-read-token");
        assert_eq!(ui(read_only).await.status, 403);
        assert_eq!(service.get(ITEM).await.status, 401, "the test's own client has no token either");
    }

    #[on_each_spin]
    /// `cors_allowed_origins` as the browser enforces it: from an origin the list does not name,
    /// the page reads nothing and its save is never sent (the preflight fails); the same page is
    /// let in once the operator names its origin.
    async fn an_origin_the_operator_did_not_allow_reads_and_writes_nothing(spin: &Spin) {
        let browser = Browser::open().await.expect("a browser");
        let other = [("cors_allowed_origins", "https://admin.example.com")];
        let mut service = Service::start_with(spin, Backend::Sqlite, &other).await;

        let read = service.from_browser(&browser, &BrowserRequest::get(ITEM)).await;
        assert!(read.is_err(), "the page read an answer meant for another origin: {read:?}");
        let save = service.from_browser(&browser, &BrowserRequest::put(ITEM, &json!({"status": true}))).await;
        assert!(save.is_err(), "the page saved from an origin not allowed: {save:?}");
        service.wait_for_log(&format!(r#""method":"OPTIONS","path":"{ITEM}""#)).await;
        assert!(
            !service.log_lines().iter().any(|line| line.contains(&format!(r#""method":"PUT","path":"{ITEM}""#))),
            "the browser sent the PUT whose preflight was refused"
        );
        assert_eq!(service.get(ITEM).await.json()["status"], false, "nothing written");

        service
            .restart_with(&[("cors_allowed_origins", &format!("https://admin.example.com,{}", browser.origin()))])
            .await;
        let read = service.from_browser(&browser, &BrowserRequest::get(ITEM)).await.expect("the named origin reads");
        assert_eq!(read.status, 200);
        let save = service.from_browser(&browser, &BrowserRequest::put(ITEM, &json!({"status": true}))).await;
        assert_eq!(save.expect("the named origin saves").status, 200);
    }

    #[on_each_spin]
    /// The interactive docs (`/docs`) as a browser shows them: the page's script runs under the
    /// page's own Content-Security-Policy, reads the description and renders every operation.
    async fn the_docs_page_renders_every_operation_in_a_browser(spin: &Spin) {
        let service = Service::start_as_the_readme_runs_it(spin).await;
        let description = service.get("/openapi.json").await.json();
        let page = e2e::browser::rendered(&service.url("/docs")).await.expect("Chromium renders /docs");

        let info = &description["info"];
        let title = format!("{} {} API", info["title"].as_str().unwrap(), info["version"].as_str().unwrap());
        assert!(page.contains(&format!("<title>{title}</title>")), "no title {title:?} in:\n{page}");
        assert!(page.contains(r#"aria-busy="false""#), "the page did not finish rendering:\n{page}");
        let mut operations = 0;
        for (path, item) in description["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                if !["get", "head", "put", "post", "patch", "delete", "options"].contains(&method.as_str()) {
                    continue;
                }
                let id = operation["operationId"].as_str().map_or_else(|| format!("{method}{path}"), str::to_owned);
                assert!(page.contains(&format!(r#"id="op-{id}""#)), "{method} {path} is not on the page");
                operations += 1;
            }
        }
        assert!(operations >= 10, "only {operations} operations described");
    }
);
