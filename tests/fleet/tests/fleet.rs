//! The fleet under continuous load through a real HAProxy, on every Spin of `SPIN_BIN`:
//! rolling upgrades and rollbacks between the previous release and this one, a replica killed
//! mid-load, four replicas migrating at once, a partition from PostgreSQL, and what a reader sees
//! across replicas. Each test
//! prints its figures (run with `--nocapture`); deploy/README.md quotes them.

use std::time::{Duration, Instant};

use fleet::{check_writes, Fleet, KeyValue, Load, Plan, Release, Spin};
use integrations_core::store::migrations::LATEST;

/// The previous release, built from its commit (cached after the first test that needs it).
async fn previous() -> Release {
    tokio::task::spawn_blocking(|| fleet::previous_release().clone()).await.expect("the previous release builds")
}

async fn pause(duration_ms: u64) {
    tokio::time::sleep(Duration::from_millis(duration_ms)).await;
}

/// The load's report, the write check and the load balancer's retries, printed; no failed request
/// and no lost acknowledged write asserted.
async fn settle(fleet: &Fleet, load: Load, what: &str) -> fleet::Report {
    let report = load.stop().await;
    let backend = fleet.lb.backend().await.expect("haproxy stats");
    let writes = check_writes(&fleet.dsn, "facebook", &report).await;
    println!(
        "{what} under {}:\n  {}  by release: {:?}\n  load balancer: {} retries, {} redispatches\n  writes: {writes:?}",
        fleet.spin,
        report.summary().trim_end(),
        fleet.by_release(&report),
        backend.retries,
        backend.redispatches,
    );
    let failures = report.failures();
    assert!(
        failures.is_empty(),
        "{what} under {}: {} of {} requests failed:\n{}\nhaproxy log (last lines):\n{}",
        fleet.spin,
        failures.len(),
        report.outcomes.len(),
        report.summary(),
        tail(&fleet.lb.log(), 40)
    );
    let writes = writes.unwrap_or_else(|error| panic!("{what} under {}: {error:#}", fleet.spin));
    assert!(writes.acknowledged > 0, "{what}: the load wrote nothing: {}", report.summary());
    report
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Expand/contract, tested: the previous release's code runs, reads and writes, against the
/// schema this release migrates to, during a rolling upgrade (the previous release's replicas
/// keep serving after this release's first replica has migrated) and after a rollback (only the
/// previous release, on the migrated schema). When this release brings no migration, the
/// schema stays where the previous release left it, and the test says so.
///
/// Two replicas of the previous release behind HAProxy, sharing one Redis as the key-value
/// store (so both releases also share the read cache), under steady load; each replica in turn
/// is drained at the load balancer, stopped with SIGTERM once it holds no request, and replaced
/// by this release, which joins once its readiness check (which migrates) passes; then back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_release_runs_on_this_releases_schema_through_a_rolling_upgrade_and_rollback() {
    let _serial = fleet::serial().await;
    let previous = previous().await;
    let current = fleet::this_release();
    for spin in Spin::all() {
        let started = Instant::now();
        let mut fleet = Fleet::new(spin, 2, KeyValue::SharedRedis).await.unwrap();
        fleet.start_all(&[0, 1], &previous).await.unwrap();
        let (schema_before, _) = fleet.schema().await.unwrap();

        let load = Load::start(&fleet.url(), &Plan { read_your_writes: true, ..Plan::steady() });
        pause(1500).await;
        // On the Spin line SpinKube runs (3.6), this release's second replica is served as a node
        // serves it, by containerd-shim-spin, when the node runtime is at hand.
        let node = if spin.major() == 3 { fleet::shim::node_runtime() } else { None };
        let mut steps = Vec::new();
        let mut migrated_at = Duration::MAX;
        for slot in [0, 1] {
            load.mark(format!("s{slot}: {} -> {}", previous.version, current.version));
            let step = match (&node, slot) {
                (Some(node), 1) => fleet.replace_under_shim(slot, &current, node).await,
                _ => fleet.replace(slot, &current).await,
            };
            steps.push(step.unwrap());
            if slot == 0 {
                migrated_at = load.elapsed();
                // Both releases serve, on this release's schema.
                load.mark("mixed: one replica of each release");
                pause(1500).await;
            }
        }
        let (schema_after, counts) = fleet.schema().await.unwrap();
        load.mark(format!("{} only", current.version));
        pause(1000).await;
        let rollback_at = load.elapsed();
        for slot in [0, 1] {
            load.mark(format!("rollback s{slot}: {} -> {}", current.version, previous.version));
            steps.push(fleet.replace(slot, &previous).await.unwrap());
        }
        load.mark(format!("{} only, on this release's schema", previous.version));
        pause(1500).await;
        let report = settle(&fleet, load, "rolling upgrade and rollback").await;

        println!(
            "  schema: version {schema_before} under {previous}, {schema_after} after {current} (this build's \
             migrations: {LATEST}){}; each version recorded once: {counts:?}",
            if schema_after > schema_before {
                format!(": the previous release served on version {schema_after} through the rollout and the rollback")
            } else {
                format!(": {} brings no migration", current.version)
            }
        );
        for step in &steps {
            println!(
                "  s{}: {} -> {}: drained in {} ms, exited {} ms after SIGTERM; the new one served {} ms after its \
                 start and was in rotation {} ms later",
                step.slot,
                step.from,
                step.to,
                step.drain.as_millis(),
                step.exit.as_millis(),
                step.start.as_millis(),
                step.up.as_millis()
            );
        }
        match (&node, spin.major()) {
            (Some(node), _) => {
                println!("  s1 ran {} under containerd-shim-spin from {}", current.version, node.display())
            }
            (None, 3) => println!(
                "  containerd-shim-spin not run: no SpinKube node runtime (SPINKUBE_NODE, or ../shared/spinkube-node)"
            ),
            (None, _) => {}
        }
        println!("  the whole test took {:.1} s", started.elapsed().as_secs_f64());

        assert_eq!(schema_after, LATEST, "{spin}: this release's replicas brought the schema to its version");
        assert!(schema_after >= schema_before);
        assert!(counts.iter().all(|(_, times)| *times == 1), "{spin}: {counts:?}");
        assert!(
            report.stale_reads_after_write.is_empty(),
            "{spin}: with the shared store, an admin read a version older than its own write: {:?}",
            report.stale_reads_after_write
        );
        // Both releases answered, and the previous one wrote after this release had migrated and
        // before the rollback: beside this release, on its schema.
        let previous_wrote_after_migration = report
            .writes
            .iter()
            .filter(|write| write.status == Some(200) && write.at > migrated_at && write.at < rollback_at)
            .filter_map(|write| write.served_by.as_deref()?.rsplit('/').next()?.parse::<u16>().ok())
            .filter(|port| fleet.release_on(*port) == Some(previous.version.as_str()))
            .count();
        let by_release = fleet.by_release(&report);
        assert!(by_release.iter().any(|(r, n)| *r == current.version && *n > 0), "{by_release:?}");
        assert!(
            previous_wrote_after_migration > 0,
            "{spin}: the previous release acknowledged no write beside this release on the migrated schema"
        );
    }
}

/// `kill -9` of one replica (its whole process group) mid-load: the load balancer's retries
/// absorb what was in flight and what was sent before its check found it gone; the replica is
/// started again on its address and rejoins once its readiness check passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_costs_no_request_and_no_acknowledged_write() {
    let _serial = fleet::serial().await;
    let current = fleet::this_release();
    for spin in Spin::all() {
        let mut fleet = Fleet::new(spin, 2, KeyValue::PerReplica).await.unwrap();
        fleet.start_all(&[0, 1], &current).await.unwrap();
        let load = Load::start(&fleet.url(), &Plan::steady());
        pause(1500).await;

        load.mark("kill -9 s0");
        let killed_at = Instant::now();
        fleet.crash(0).await.unwrap();
        while fleet.lb.stat(0).await.unwrap().status != "DOWN" {
            assert!(killed_at.elapsed() < Duration::from_secs(10), "{spin}: haproxy never marked s0 down");
            pause(10).await;
        }
        let noticed = killed_at.elapsed();
        pause(500).await;
        load.mark("s0 restarted");
        let rejoined = fleet.restart(0).await.unwrap();
        let back_at = load.elapsed();
        load.mark("s0 back in rotation");
        pause(1500).await;
        let port = fleet.replica(0).unwrap().port;
        let report = settle(&fleet, load, "kill -9 of one of two replicas").await;
        let served_after = report.outcomes.iter().filter(|o| o.at > back_at && o.port() == Some(port)).count();
        println!(
            "  haproxy marked s0 down {} ms after the kill; restarted, it was back in rotation after {} ms and \
             then answered {served_after} requests",
            noticed.as_millis(),
            rejoined.as_millis()
        );
        assert!(served_after > 0, "{spin}: the restarted replica answered nothing");
    }
}

/// Four replicas of this release start at once on the previous release's live database, under
/// load, and race to migrate it (their first readiness checks arrive together); then the
/// previous release's replicas are drained away. Every migration is applied once, no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_starting_at_once_migrate_the_previous_releases_database_once() {
    let _serial = fleet::serial().await;
    let previous = previous().await;
    let current = fleet::this_release();
    for spin in Spin::all() {
        let mut fleet = Fleet::new(spin, 6, KeyValue::PerReplica).await.unwrap();
        fleet.start_all(&[0, 1], &previous).await.unwrap();
        let (schema_before, _) = fleet.schema().await.unwrap();
        let load = Load::start(&fleet.url(), &Plan::steady());
        pause(1000).await;
        load.mark(format!("4 x {} start at once", current.version));
        let starts = fleet.start_all(&[2, 3, 4, 5], &current).await.unwrap();
        load.mark(format!("{} drained away", previous.version));
        for slot in [0, 1] {
            fleet.retire(slot).await.unwrap();
        }
        pause(1000).await;
        let report = settle(&fleet, load, "four replicas starting at once").await;
        let (schema_after, counts) = fleet.schema().await.unwrap();
        println!(
            "  schema {schema_before} -> {schema_after}; times each version is recorded: {counts:?}; the four \
             started in {:?} ms",
            starts.iter().map(Duration::as_millis).collect::<Vec<_>>()
        );
        assert_eq!(schema_after, LATEST, "{spin}");
        assert_eq!(
            counts,
            (1..=LATEST).map(|version| (version, 1)).collect::<Vec<_>>(),
            "{spin}: each migration applied once"
        );
        let by_release = fleet.by_release(&report);
        assert!(by_release.iter().any(|(r, n)| *r == current.version && *n > 0), "{by_release:?}");
    }
}

/// PostgreSQL cut off from the fleet by the network (a partition), under load: nothing answers
/// and nobody is told. The replicas' readiness fails (a check times out, or answers 503), so the
/// load balancer takes them out of rotation and answers at once; what it had sent them before
/// answers 503 within the store's network timeouts (5-11 s), never a hang (HAProxy would answer
/// 504 after its 15 s server timeout). Once the link is back, both rejoin by their readiness
/// checks alone, every request succeeds again, and no acknowledged write is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_from_postgresql_takes_the_fleet_out_of_rotation_and_back_without_a_hang() {
    let _serial = fleet::serial().await;
    let current = fleet::this_release();
    for spin in Spin::all() {
        let mut fleet = Fleet::new_behind_link(spin, 2, KeyValue::PerReplica).await.unwrap();
        fleet.start_all(&[0, 1], &current).await.unwrap();
        // Longer than HAProxy's server timeout: a request that hangs is answered 504 by it.
        let plan = Plan { request_timeout: Duration::from_secs(20), ..Plan::steady() };
        let load = Load::start(&fleet.url(), &plan);
        pause(1500).await;

        load.mark("link to PostgreSQL cut");
        let cut_at = load.elapsed();
        fleet.cut_database_link().await.unwrap();
        let cut = Instant::now();
        for slot in [0, 1] {
            while fleet.lb.stat(slot).await.unwrap().status != "DOWN" {
                assert!(cut.elapsed() < Duration::from_secs(20), "{spin}: haproxy never marked s{slot} down");
                pause(20).await;
            }
        }
        let out = cut.elapsed();
        load.mark("both replicas out of rotation");
        // Long enough for every request sent to a replica before it left to be answered.
        pause(12_000).await;

        load.mark("link restored");
        fleet.restore_database_link().await.unwrap();
        let restored = Instant::now();
        for slot in [0, 1] {
            fleet.lb.wait_until_up(slot, Duration::from_secs(30)).await.unwrap();
        }
        let back = restored.elapsed();
        let back_at = load.elapsed();
        load.mark("both replicas back in rotation");
        pause(2000).await;
        let report = load.stop().await;
        let writes = check_writes(&fleet.dsn, "facebook", &report).await;
        println!(
            "a partition from PostgreSQL under {spin}:\n  {}\n  both replicas out of rotation {} ms after the \
             cut, back {} ms after the link was restored\n  writes: {writes:?}",
            report.summary().trim_end(),
            out.as_millis(),
            back.as_millis(),
        );
        let slowest = report.outcomes.iter().map(|outcome| outcome.took).max().unwrap_or_default();
        println!("  slowest request: {} ms", slowest.as_millis());
        for outcome in &report.outcomes {
            // Sent before both replicas were back, answered after the cut began.
            let during = outcome.at + outcome.took >= cut_at && outcome.at < back_at;
            let fine = match outcome.status {
                Some(503) => during,
                Some(_) => !outcome.failed(),
                None => false,
            };
            assert!(fine, "{spin}: {outcome:?} (cut at {cut_at:?}, back at {back_at:?})\n{}", report.summary());
            assert!(outcome.took < Duration::from_secs(15), "{spin}: a request waited: {outcome:?}");
        }
        assert!(report.outcomes.iter().any(|outcome| outcome.status == Some(503)), "{spin}: the cut went unnoticed");
        assert!(
            report.outcomes.iter().any(|outcome| outcome.at > back_at && outcome.status == Some(200)),
            "{spin}: nothing succeeded after the link was back"
        );
        let writes = writes.unwrap_or_else(|error| panic!("{spin}: {error:#}"));
        assert!(writes.acknowledged > 0, "{spin}: the load wrote nothing");
    }
}

/// What a reader sees through the load balancer right after a write through it, whichever
/// replica answers. With the shared Redis store: its write, every time. With a store per replica
/// (what the SpinApp ships): the other replica's cached entry until it expires, never longer than
/// `cache_ttl_ms` after the write was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_view_across_replicas_with_a_shared_store_and_staleness_within_the_ttl_without() {
    let _serial = fleet::serial().await;
    let current = fleet::this_release();
    // The default a deployment gets: spin.toml's, which the SpinApp's ConfigMap repeats.
    let manifest: toml::Value = toml::from_str(&std::fs::read_to_string(&current.manifest).unwrap()).unwrap();
    let ttl = Duration::from_millis(
        manifest["variables"]["cache_ttl_ms"]["default"].as_str().and_then(|ms| ms.parse().ok()).expect("cache_ttl_ms"),
    );
    let client = fleet::client(fleet::load::REQUEST_TIMEOUT);
    for spin in Spin::all() {
        // Shared: a writer's next read, on the other replica, sees its write.
        let mut shared = Fleet::new(spin, 2, KeyValue::SharedRedis).await.unwrap();
        shared.start_all(&[0, 1], &current).await.unwrap();
        let (mut fresh, mut other_replica) = (0, 0);
        const WRITES: usize = 30;
        for i in 0..WRITES {
            let probe = write_then_read(&client, &shared.url(), &format!("shared {i}"), None).await;
            fresh += usize::from(probe.first_read_fresh);
            other_replica += usize::from(probe.first_read_elsewhere);
        }
        println!(
            "one view, shared Redis store, under {spin}: the read right after a write saw it {fresh} of {WRITES} \
             times ({other_replica} of those reads answered by the replica that did not take the write)"
        );
        assert_eq!(fresh, WRITES, "{spin}: with a shared store every read after a write sees it");
        assert!(other_replica > 0, "{spin}: no read crossed replicas; the test measured nothing");
        drop(shared);

        // One store per replica: stale on the other replica, but never past the TTL.
        let mut per_replica = Fleet::new(spin, 2, KeyValue::PerReplica).await.unwrap();
        per_replica.start_all(&[0, 1], &current).await.unwrap();
        const PROBES: usize = 8;
        let mut windows = Vec::new();
        let mut stale_reads = 0;
        for i in 0..PROBES {
            let probe = write_then_read(&client, &per_replica.url(), &format!("per replica {i}"), Some(ttl * 3)).await;
            stale_reads += probe.stale_reads;
            windows.push(probe.stale_for);
        }
        let longest = windows.iter().max().copied().unwrap_or_default();
        println!(
            "one view, a store per replica, under {spin}: {stale_reads} stale reads after {PROBES} writes; the other \
             replica served the old value for up to {} ms after the write was acknowledged (windows: {:?} ms; \
             cache_ttl_ms {})",
            longest.as_millis(),
            windows.iter().map(Duration::as_millis).collect::<Vec<_>>(),
            ttl.as_millis()
        );
        assert!(longest < ttl, "{spin}: stale for {longest:?}, longer than cache_ttl_ms ({ttl:?})");
        assert!(
            stale_reads > 0,
            "{spin}: no read was stale: the per-replica cache was not in the way, nothing measured"
        );
    }
}

struct Probe {
    first_read_fresh: bool,
    first_read_elsewhere: bool,
    stale_reads: usize,
    /// From the write's acknowledgement to the sending of the last stale read.
    stale_for: Duration,
}

/// Reads the integration twice (with two replicas and round robin, one read fills each replica's
/// cache), writes a new description, then reads until a replica other than the writer's answers
/// with it (`poll_until`: how long to keep trying; `None`: read once).
async fn write_then_read(client: &reqwest::Client, base: &str, marker: &str, poll_until: Option<Duration>) -> Probe {
    let url = format!("{base}/admin/integrations/facebook");
    let served_by = |response: &reqwest::Response| {
        response.headers().get("x-served-by").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    };
    for _ in 0..2 {
        assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    }
    let put = client.put(&url).json(&serde_json::json!({ "description": marker })).send().await.unwrap();
    let acknowledged = Instant::now();
    assert_eq!(put.status(), 200);
    let writer = served_by(&put);
    let mut probe =
        Probe { first_read_fresh: false, first_read_elsewhere: false, stale_reads: 0, stale_for: Duration::ZERO };
    for attempt in 0.. {
        let sent = acknowledged.elapsed();
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let elsewhere = served_by(&response) != writer;
        let body: serde_json::Value = response.json().await.unwrap();
        let fresh = body["description"] == marker;
        if attempt == 0 {
            probe.first_read_fresh = fresh;
            probe.first_read_elsewhere = elsewhere;
        }
        if !fresh {
            probe.stale_reads += 1;
            probe.stale_for = sent;
        }
        match poll_until {
            Some(limit) if !(fresh && elsewhere) => {
                assert!(sent < limit, "{marker}: still stale {sent:?} after the write");
                pause(20).await;
            }
            _ => break,
        }
    }
    probe
}

/// The SQLite default is one machine's file, so its "fleet" is one release after another on one
/// state directory: the previous release writes, this release migrates and writes, the previous
/// release (a rollback) reads and writes on the migrated file, and this release again (a second
/// upgrade) reads it all, history included. Each through its own read cache in the same
/// directory, read right after the other's write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_sqlite_default_the_previous_release_works_after_an_upgrade_and_the_upgrade_after_it() {
    let _serial = fleet::serial().await;
    let previous = previous().await;
    let current = fleet::this_release();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(); // no token set here
    for spin in Spin::all() {
        let state = tempfile::Builder::new().prefix("fleet-sqlite-").tempdir().unwrap();
        let steps = [
            (&previous, "written by the previous release", true),
            (&current, "written by this release", false),
            (&previous, "written by the previous release after the rollback", true),
            (&current, "written by this release after the second upgrade", false),
        ];
        let mut last: Option<(&str, bool)> = None;
        for (release, description, status) in steps {
            let options = test_support::AppOptions {
                state_dir: Some(state.path().to_owned()),
                ..test_support::AppOptions::manifest(&release.manifest)
            };
            let app = test_support::SpinApp::start(spin, &options).await.unwrap();
            let url = format!("{}/admin/integrations/facebook", app.base_url());
            let read = |client: &reqwest::Client| {
                let url = url.clone();
                let client = client.clone();
                async move {
                    let response = client.get(&url).send().await.unwrap();
                    assert_eq!(response.status(), 200, "{spin} {release}: GET");
                    response.json::<serde_json::Value>().await.unwrap()
                }
            };
            if let Some((before, status_before)) = last {
                let found = read(&client).await;
                assert_eq!(
                    (found["description"].as_str(), found["status"].as_bool()),
                    (Some(before), Some(status_before)),
                    "{spin} {release}: what the release before it wrote"
                );
            }
            let body = serde_json::json!({ "description": description, "status": status });
            let put = client.put(&url).json(&body).send().await.unwrap();
            assert_eq!(put.status(), 200, "{spin} {release}: PUT");
            let found = read(&client).await;
            assert_eq!(found["description"], description, "{spin} {release}: its own write, read back at once");
            last = Some((description, status));
            app.stop().await.unwrap();
        }
        // This release's history holds every release's write, newest first, each once.
        let options = test_support::AppOptions {
            state_dir: Some(state.path().to_owned()),
            ..test_support::AppOptions::manifest(&current.manifest)
        };
        let app = test_support::SpinApp::start(spin, &options).await.unwrap();
        let history: serde_json::Value = client
            .get(format!("{}/admin/integrations/facebook/history?limit=10", app.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let written: Vec<&str> = history["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .filter_map(|version| version["integration"]["description"].as_str())
            .filter(|description| description.starts_with("written by"))
            .collect();
        let expected: Vec<&str> = steps.iter().rev().map(|(_, description, _)| *description).collect();
        assert_eq!(written, expected, "{spin}: {history}");
        println!("  {spin}: SQLite default, {previous} -> {current} -> {previous} -> {current} on one state directory: every write read back and kept in the history");
        app.stop().await.unwrap();
    }
}
