//! The read cache under real Spin, on both backends, in Spin's default key-value store (the
//! SQLite file `spin up` keeps in its state directory when there is no runtime config, read here
//! as it is on disk): reads are answered from it, a writer reads its own write at once through
//! another component, and writes with no cached read since the last one leave the store alone
//! (the generation token stays idle).

use e2e::{Backend, Service, Spin};
use serde_json::json;

/// Long enough that only a write can make an entry unusable during the test.
const TTL_MS: &str = "600000";
const GENERATION: &str = "integrations/generation";

e2e::e2e_tests!(
    #[on_each_backend]
    async fn reads_come_from_the_cache_and_writes_cost_nothing_unless_read(spin: &Spin, backend: Backend) {
        let service = Service::start_with(spin, backend, &[("cache_ttl_ms", TTL_MS)]).await;
        let context = format!("{spin} {backend:?}");
        let description = |reply: e2e::Reply| reply.json()["description"].as_str().unwrap_or_default().to_owned();
        let listed = |reply: e2e::Reply| reply.json()[0]["description"].as_str().unwrap_or_default().to_owned();

        // Filled, then changed around the service: the cache answers with what it holds.
        let seeded = description(service.get("/admin/integrations/facebook").await);
        assert_eq!(listed(service.get("/admin/integrations/").await), seeded);
        change_around_the_service(&service, "changed in SQL").await;
        assert_eq!(description(service.get("/admin/integrations/facebook").await), seeded, "{context}: cached");
        assert_eq!(listed(service.get("/admin/integrations/").await), seeded, "{context}: cached");

        // A write is read back at once, by the item's component and by the list's.
        assert_eq!(put(&service, "first write").await, 200);
        assert_eq!(description(service.get("/admin/integrations/facebook").await), "first write", "{context}");
        assert_eq!(listed(service.get("/admin/integrations/").await), "first write", "{context}");

        // Writes with no read in between: the first replaces the token the reads above used with
        // an idle one; the others find it idle and leave the store alone.
        assert_eq!(put(&service, "second write").await, 200);
        let idle = key_value(&service, GENERATION).expect("a token after a used one was replaced");
        assert!(idle.starts_with(b"idle-"), "{context}: {}", String::from_utf8_lossy(&idle));
        for text in ["third write", "fourth write", "fifth write"] {
            assert_eq!(put(&service, text).await, 200);
        }
        assert_eq!(key_value(&service, GENERATION), Some(idle.clone()), "{context}: no key-value write");
        assert_eq!(description(service.get("/admin/integrations/facebook").await), "fifth write", "{context}");
        assert_eq!(listed(service.get("/admin/integrations/").await), "fifth write", "{context}");
        let used = key_value(&service, GENERATION).expect("a token");
        assert!(!used.starts_with(b"idle-"), "{context}: the reads filled entries under a used token");
        assert_eq!(description(service.get("/admin/integrations/facebook").await), "fifth write", "{context}");
        assert_eq!(key_value(&service, GENERATION), Some(used.clone()), "{context}: a hit writes nothing");
        assert_eq!(put(&service, "sixth write").await, 200);
        let replaced = key_value(&service, GENERATION).expect("a token");
        assert!(replaced.starts_with(b"idle-") && replaced != idle, "{context}: so the write replaced it");
        assert_eq!(description(service.get("/admin/integrations/facebook").await), "sixth write", "{context}");
    }
);

async fn put(service: &Service, description: &str) -> u16 {
    service.put("/admin/integrations/facebook", &json!({ "description": description })).await.status
}

/// An UPDATE straight in the database, as an operator might make by hand.
async fn change_around_the_service(service: &Service, description: &str) {
    match &service.dsn {
        Some(dsn) => {
            let client = e2e::connect(dsn).await;
            client
                .execute("UPDATE integrations SET description = $1 WHERE id = 'facebook'", &[&description])
                .await
                .expect("an UPDATE");
        }
        None => {
            let database = rusqlite::Connection::open(service.state_dir().join("sqlite_db.db")).expect("the database");
            database.busy_timeout(std::time::Duration::from_secs(5)).expect("a busy timeout");
            database
                .execute("UPDATE integrations SET description = ?1 WHERE id = 'facebook'", [description])
                .expect("an UPDATE");
        }
    }
}

/// Spin's default key-value store, as it is on disk.
fn store(service: &Service) -> rusqlite::Connection {
    let path = service.state_dir().join("sqlite_key_value.db");
    let store = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    store.busy_timeout(std::time::Duration::from_secs(5)).expect("a busy timeout");
    store
}

fn key_value(service: &Service, key: &str) -> Option<Vec<u8>> {
    store(service)
        .query_row("SELECT value FROM spin_key_value WHERE store = 'default' AND key = ?1", [key], |row| row.get(0))
        .ok()
}
