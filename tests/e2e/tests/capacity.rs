//! How many PostgreSQL connections one `spin up` (one pod) opens: the figure behind
//! deploy/README.md's "replicas x pool per pod <= max_connections" arithmetic.
//!
//! 1. Load: 64 concurrent clients, each doing PUT, GET one, GET list in a loop (a bounded
//!    number of rounds), while another task samples
//!    `SELECT count(*) FROM pg_stat_activity WHERE datname = <the app's database>` (the
//!    test's own sessions excluded). Printed: the most connections seen, and how many stay
//!    open once the load is over (the pool keeps idle connections).
//! 2. Ceiling: the table is locked from a direct connection and 100 GETs of one item plus
//!    100 GETs of the list are sent at once; each holds a pooled connection while it waits.
//!    The count stops at Spin's pool size, the other requests wait for a free connection
//!    rather than fail, and all 200 answer 200 once the lock is released.
//!
//! Spin's pool (`CONNECTION_POOL_SIZE = 64` in `crates/factor-outbound-pg/src/client.rs`) is
//! one per database address for the whole app in Spin 3.x (3.6.3: what SpinKube's shim runs),
//! but one per address *per component* from Spin 4.0 on (`client_factories`, one per
//! component, in that crate's lib.rs): the two components loaded here share 64 connections
//! under 3.6.3 and hold up to 128 under 4.1.0-pre0.
//!
//! Assertions are on outcomes (never above the pool ceiling, the ceiling reached, no request
//! failed), not on speed; the figures are printed.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::{Service, Spin};
use serde_json::json;

/// `CONNECTION_POOL_SIZE` in Spin's `crates/factor-outbound-pg/src/client.rs` (3.6.3 and main).
const SPIN_POOL_SIZE: i64 = 64;
const CLIENTS: usize = 64;
const ROUNDS: usize = 20;
const HELD: usize = 100;
/// The components this test sends requests to (`integrations-item`, `integrations-list`).
const COMPONENTS: i64 = 2;

/// The most connections Spin may open for those components.
fn ceiling_for(spin: &Spin) -> i64 {
    if spin.major() >= 4 {
        SPIN_POOL_SIZE * COMPONENTS
    } else {
        SPIN_POOL_SIZE
    }
}

/// The app's sessions on its database: every client backend but the test's own.
async fn app_connections(admin: &tokio_postgres::Client, database: &str, ours: &[i32]) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend' \
             AND pid <> ALL($2)",
            &[&database, &ours],
        )
        .await
        .unwrap()
        .get(0)
}

async fn backend_pid(client: &tokio_postgres::Client) -> i32 {
    client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0)
}

e2e::e2e_tests!(
    #[on_each_spin]
    async fn one_spin_up_opens_at_most_its_pool_size_of_connections(spin: &Spin) {
        let service = Arc::new(Service::start_with_own_cluster(spin, &[]).await);
        let dsn = service.dsn.clone().unwrap();
        let database = dsn.rsplit('/').next().unwrap().to_owned();
        assert_eq!(service.get("/admin/integrations/").await.status, 200);
        let admin = Arc::new(e2e::connect(&dsn).await);
        let blocker = e2e::connect(&dsn).await;
        let ours = vec![backend_pid(&admin).await, backend_pid(&blocker).await];

        // 1. 64 concurrent clients.
        let peak = Arc::new(AtomicI64::new(0));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let (admin, database, ours, peak, done) =
                (admin.clone(), database.clone(), ours.clone(), peak.clone(), done.clone());
            tokio::spawn(async move {
                let mut samples = 0;
                while !done.load(Ordering::Relaxed) {
                    peak.fetch_max(app_connections(&admin, &database, &ours).await, Ordering::Relaxed);
                    samples += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                samples
            })
        };
        let started = Instant::now();
        // A plain client: the API tests check the answers against openapi.json; here the
        // client must not be the bottleneck.
        let http = reqwest::Client::builder().timeout(e2e::REQUEST_TIMEOUT * 6).build().unwrap();
        let base = service.app.base_url().to_owned();
        let clients = (0..CLIENTS).map(|client| {
            let (http, base) = (http.clone(), base.clone());
            tokio::spawn(async move {
                for round in 0..ROUNDS {
                    let body = json!({"name": format!("client {client} round {round}")});
                    // no-cache: every read reaches PostgreSQL, as when the cache is off or cold.
                    let requests = [
                        http.put(format!("{base}/admin/integrations/chat_widget")).json(&body),
                        http.get(format!("{base}/admin/integrations/facebook")).header("cache-control", "no-cache"),
                        http.get(format!("{base}/admin/integrations/")).header("cache-control", "no-cache"),
                    ];
                    for request in requests {
                        assert_eq!(request.send().await.unwrap().status(), 200);
                    }
                }
            })
        });
        for client in futures::future::join_all(clients).await {
            client.unwrap();
        }
        let load_time = started.elapsed();
        done.store(true, Ordering::Relaxed);
        let samples = sampler.await.unwrap();
        let under_load = peak.load(Ordering::Relaxed);
        let idle_after = app_connections(&admin, &database, &ours).await;
        println!(
            "{spin}: {CLIENTS} clients x {ROUNDS} rounds of PUT+GET+list ({} requests in {load_time:?}): at most \
             {under_load} PostgreSQL connections ({samples} samples of pg_stat_activity), {idle_after} still open \
             after the load",
            CLIENTS * ROUNDS * 3
        );
        assert!(under_load <= ceiling_for(spin), "{spin}: {under_load} connections, above the pool ceiling");
        assert!(under_load > 1, "{spin}: concurrent requests use several pooled connections");
        assert!(idle_after >= 1, "{spin}: the pool keeps its connections while idle");

        // 2. The ceiling: requests that hold their connection while they wait on a lock.
        blocker.batch_execute("BEGIN; LOCK TABLE integrations IN ACCESS EXCLUSIVE MODE").await.unwrap();
        let client = reqwest::Client::new(); // no timeout: the requests wait for the lock
        let base = service.app.base_url().to_owned();
        let held = (0..HELD * COMPONENTS as usize)
            .map(|i| {
                let path = if i % 2 == 0 { "/admin/integrations/facebook" } else { "/admin/integrations/" };
                let request = client.get(format!("{base}{path}"));
                tokio::spawn(async move { request.send().await.map(|response| response.status().as_u16()) })
            })
            .collect::<Vec<_>>();
        let started = Instant::now();
        let mut ceiling = 0;
        while ceiling < ceiling_for(spin) {
            ceiling = ceiling.max(app_connections(&admin, &database, &ours).await);
            assert!(started.elapsed() < Duration::from_secs(120), "{spin}: only {ceiling} connections opened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Give the other requests every chance to open more (they do not).
        for _ in 0..50 {
            ceiling = ceiling.max(app_connections(&admin, &database, &ours).await);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let waiting_in_postgres: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
                &[&database],
            )
            .await
            .unwrap()
            .get(0);
        blocker.batch_execute("COMMIT").await.unwrap();
        let mut statuses = Vec::new();
        for request in held {
            statuses.push(request.await.unwrap().expect("a held request is answered"));
        }
        println!(
            "{spin}: {} requests (item and list) held on a table lock: {ceiling} PostgreSQL connections \
             ({waiting_in_postgres} waiting on the lock, the rest waiting for a pooled connection); after the lock: {} \
             answered 200",
            statuses.len(),
            statuses.iter().filter(|s| **s == 200).count()
        );
        assert_eq!(ceiling, ceiling_for(spin), "{spin}: pools of {SPIN_POOL_SIZE} per database address");
        assert!(
            statuses.iter().all(|s| *s == 200),
            "{spin}: waiting for the pool is latency, not errors: {statuses:?}"
        );
    }
);
