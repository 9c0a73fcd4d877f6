//! The migrations' SQL on a real PostgreSQL, without Spin: what a migration does to a statement
//! of the previous release that is running while it commits. The end-to-end tests cover a
//! release's statements before and after a migration; only here can one be held inside it.

use std::time::{Duration, Instant};

use integrations_core::store::migrations::{postgres_script, LATEST};
use test_support::postgres::{connect, fresh_database};
use test_support::PostgresFixture;

/// A database as release 0.2.0 left it (schema version 3).
const V2: &str = include_str!("../../../tests/e2e/fixtures/v2/postgres.sql");

/// A write of release 0.2.0 that began before migration 4 committed has already compiled
/// migration 3's `integrations_write`, whose history insert names no actor, and waits for the
/// lock the migration holds on the history. Once the migration commits the insert goes on, on
/// the migrated table: its version must say `admin_token`, as the backfill says of the versions
/// 0.2.0 wrote before and version 4's wrapper of those it writes after. (The fleet test's rolling
/// upgrade met this once in many runs: "version 18 was written with the admin token, but the
/// history says (true, None)".)
#[tokio::test]
async fn a_write_of_0_2_0_waiting_on_the_migration_is_recorded_as_admin_tokens() {
    let cluster = PostgresFixture::shared().await.expect("PostgreSQL starts");
    let dsn = fresh_database(&cluster.dsn()).await.expect("a fresh database");
    // (A connection of its own: the dump empties its session's search_path.)
    connect(&dsn).await.expect("a connection").batch_execute(V2).await.expect("0.2.0's database loads");
    let migrator = connect(&dsn).await.expect("a connection");

    // The migration's transaction, holding from its start the lock its ALTER TABLE takes, so
    // that the write below surely falls inside it.
    migrator.batch_execute("BEGIN; LOCK TABLE integration_history IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let writer = connect(&dsn).await.expect("a connection");
    let pid: i32 = writer.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    // 0.2.0's call, as tests/e2e/tests/access.rs makes it: an authenticated update of the name.
    let write = tokio::spawn(async move {
        writer
            .query_one(
                "SELECT w.verdict, w.version FROM integrations_write('chat_widget', 'Written by 0.2.0', NULL, NULL, \
                 NULL, NULL, NULL, NULL, NULL, '{}', false, 'update', NULL, 'req-0.2.0', '127.0.0.1:1', true, 3, 100) AS w",
                &[],
            )
            .await
            .map(|row| (row.get::<_, Option<String>>(0), row.get::<_, Option<i64>>(1)))
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting = migrator
            .query_one("SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'", &[&pid])
            .await
            .unwrap()
            .get::<_, i64>(0);
        if waiting == 1 {
            break;
        }
        assert!(!write.is_finished(), "the write did not wait for the migration: {:?}", write.await);
        assert!(Instant::now() < deadline, "the write never reached the history's lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    migrator.batch_execute(&postgres_script(&[])).await.expect("the migrations apply");
    migrator.batch_execute("COMMIT").await.unwrap();
    let (verdict, version) = write.await.unwrap().expect("the write goes on after the migration");
    assert_eq!(verdict.as_deref(), Some("apply"));
    let version = version.expect("a version");

    let row = migrator
        .query_one(
            "SELECT name, authenticated, actor FROM integration_history \
             WHERE integration_id = 'chat_widget' AND version = $1",
            &[&version],
        )
        .await
        .expect("the write's version in the history");
    let recorded: (String, bool, Option<String>) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(recorded, ("Written by 0.2.0".to_owned(), true, Some("admin_token".to_owned())));
    let latest: i64 =
        migrator.query_one("SELECT max(version) FROM integrations_schema_migrations", &[]).await.unwrap().get(0);
    assert_eq!(latest, LATEST);
}
