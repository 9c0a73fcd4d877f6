//! `spin up` gets SIGTERM while requests are in flight: what happens to them.
//!
//! The requests are held inside PostgreSQL: a direct connection locks the `integrations`
//! table (ACCESS EXCLUSIVE, in an open transaction), so every GET and PUT that reaches it
//! waits on the lock, each on a pooled connection of the Spin host. Once all of them are
//! seen waiting in `pg_stat_activity`, `spin up` gets SIGTERM (as a container runtime sends
//! it to the main process), and the test records, per request, whether it finished, was cut
//! (the connection closed without a response) or was refused, how long `spin up` took to
//! exit, and, after the lock is released, which of the cut PUTs PostgreSQL still applied.
//! Assertions are on outcomes only; the timings are printed, not asserted.
//!
//! Observed on Spin 3.6.3 and 4.1.0-pre0 alike: `spin up` exits 0 within about 0.1 s; every
//! in-flight request is cut; new connections are refused; a PUT cut while it waited inside
//! PostgreSQL is still committed by it once the lock goes.

use std::time::{Duration, Instant};

use e2e::{Service, Spin};
use serde_json::json;

const SIGTERM: i32 = 15;
const GETS: usize = 4;
const PUTS: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Finished(u16),
    /// The connection closed (or reset) without a response.
    Cut,
    /// The connection was refused: nothing listens any more.
    Refused,
    Other(String),
}

fn outcome(result: reqwest::Result<reqwest::Response>) -> Outcome {
    match result {
        Ok(response) => Outcome::Finished(response.status().as_u16()),
        Err(error) if error.is_connect() => Outcome::Refused,
        Err(error) if error.is_request() || error.is_body() => Outcome::Cut,
        Err(error) => Outcome::Other(format!("{error:?}")),
    }
}

async fn waiting_on_lock(admin: &tokio_postgres::Client, database: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
            &[&database],
        )
        .await
        .unwrap()
        .get(0)
}

/// Where the in-flight requests wait inside PostgreSQL.
#[derive(Debug, Clone, Copy)]
enum Hold {
    /// The table is locked: every statement waits while it is being prepared (parse takes
    /// the table's lock), GETs and PUTs alike.
    Table,
    /// Only the row is locked (`SELECT ... FOR UPDATE`): the PUTs' UPDATE waits while it
    /// executes; reads do not wait on row locks, so there are only PUTs.
    Row,
}

struct Observed {
    outcomes: Vec<Outcome>,
    exit: Option<std::process::ExitStatus>,
    exit_after: Duration,
    after_exit: Outcome,
    puts_applied: i64,
    backends_left: i64,
}

async fn sigterm_while_waiting(spin: &Spin, hold: Hold) -> Observed {
    let mut service = Service::start_with_own_cluster(spin, &[]).await;
    let dsn = service.dsn.clone().unwrap();
    let database = dsn.rsplit('/').next().unwrap().to_owned();
    assert_eq!(service.get("/admin/integrations/").await.status, 200, "{spin}: schema and seed rows exist");
    let admin = e2e::connect(&dsn).await;
    let version = || async {
        let row = admin.query_one("SELECT version FROM integrations WHERE id = 'chat_widget'", &[]).await.unwrap();
        row.get::<_, i64>(0)
    };
    let version_before = version().await;

    let blocker = e2e::connect(&dsn).await;
    blocker.batch_execute("BEGIN").await.unwrap();
    blocker
        .batch_execute(match hold {
            Hold::Table => "LOCK TABLE integrations IN ACCESS EXCLUSIVE MODE",
            Hold::Row => "SELECT 1 FROM integrations WHERE id = 'chat_widget' FOR UPDATE",
        })
        .await
        .unwrap();

    // No client timeout: a request ends when Spin answers or closes the connection.
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let base = service.app.base_url().to_owned();
    let gets = match hold {
        Hold::Table => GETS,
        Hold::Row => 0,
    };
    let mut in_flight = Vec::new();
    for i in 0..gets + PUTS {
        let request = if i < gets {
            client.get(format!("{base}/admin/integrations/facebook"))
        } else {
            client.put(format!("{base}/admin/integrations/chat_widget")).json(&json!({"name": format!("writer {i}")}))
        };
        in_flight.push(tokio::spawn(async move { outcome(request.send().await) }));
    }
    let started = Instant::now();
    while waiting_on_lock(&admin, &database).await < in_flight.len() as i64 {
        assert!(started.elapsed() < Duration::from_secs(120), "{spin}: the requests never reached the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let signalled = Instant::now();
    service.app.signal(SIGTERM);
    let exit = service.app.wait_for_exit(Duration::from_secs(60)).await.unwrap();
    let exit_after = signalled.elapsed();
    let mut outcomes = Vec::new();
    for request in in_flight {
        outcomes.push(request.await.unwrap());
    }
    let after_exit = outcome(client.get(format!("{base}/health")).send().await);

    // PostgreSQL notices a closed client only when it next talks to it: the waiting
    // statements go on once the lock is gone.
    blocker.batch_execute("COMMIT").await.unwrap();
    drop(blocker);
    let backends = || async {
        let query = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()";
        admin.query_one(query, &[&database]).await.unwrap().get::<_, i64>(0)
    };
    let started = Instant::now();
    while backends().await > 0 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Observed {
        outcomes,
        exit,
        exit_after,
        after_exit,
        puts_applied: version().await - version_before,
        backends_left: backends().await,
    }
}

e2e::e2e_tests!(
    #[on_each_spin]
    async fn sigterm_exits_at_once_cutting_in_flight_requests(spin: &Spin) {
        for hold in [Hold::Table, Hold::Row] {
            let observed = sigterm_while_waiting(spin, hold).await;
            println!(
                "{spin}, {hold:?} lock: SIGTERM with {} requests waiting in PostgreSQL: exit {:?} after {:?}; \
                 outcomes {:?}; a request after exit: {:?}; PUTs applied once the lock was released: {}; \
                 server backends of the app left: {}",
                observed.outcomes.len(),
                observed.exit,
                observed.exit_after,
                observed.outcomes,
                observed.after_exit,
                observed.puts_applied,
                observed.backends_left
            );
            // What was observed on 3.6.3 and 4.1.0-pre0 alike (deploy/README.md, "Shutdown and draining").
            assert!(
                observed.exit.is_some_and(|status| status.success()),
                "{spin}: spin up exits 0 on SIGTERM without draining"
            );
            assert!(observed.outcomes.iter().all(|o| *o == Outcome::Cut), "{spin} {hold:?}: {:?}", observed.outcomes);
            assert_eq!(observed.after_exit, Outcome::Refused, "{spin}: nothing listens after the exit");
            // A PUT is one call of the integrations_write function: its statement is prepared
            // without touching the table, so a cut PUT is waiting inside the function, whatever
            // the lock held it on, and PostgreSQL finishes and commits it once the lock goes.
            assert_eq!(observed.puts_applied, PUTS as i64, "{spin} {hold:?}: cut PUTs applied");
            assert_eq!(observed.backends_left, 0, "{spin}: the host's pooled connections closed with the process");
        }
    }
);
