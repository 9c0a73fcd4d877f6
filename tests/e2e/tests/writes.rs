//! The write rules, the same on both backends: PostgreSQL applies them in one PL/pgSQL statement
//! (migration 3's `integrations_write`, replaced by migrations 4 and 5), SQLite checks them in Rust
//! (`store::decide`) and applies a write in one statement (migration 5's `integration_writes`).
//! The same random sequence of requests (writes with and without `If-Match`/`If-None-Match`,
//! undeclared settings keys, a key kept from before the catalog, restores, reads) goes to the
//! app on PostgreSQL and on SQLite under the same Spin; every answer must be the same, and so
//! must the rows at the end.
//!
//! The sequence comes from a seed, printed at the start and in every failure:
//! `E2E_WRITES_SEED=<seed> cargo test -p e2e --test writes` runs it again.

use e2e::{Backend, Reply, Service, Spin};
use reqwest::Method;
use serde_json::{json, Value};

/// Requests per sequence.
const STEPS: usize = 160;

/// xorshift64*: enough to draw a reproducible sequence, without a dependency.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// True `percent` times in a hundred.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// One request of the sequence.
#[derive(Debug)]
struct Step {
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Value>,
}

/// The next request: mostly writes, against what the sequence has seen so far (`versions`: the
/// last version each integration answered with).
fn step(draw: &mut Draw, versions: &[(&'static str, i64)]) -> Step {
    let (id, version) = *draw.pick(&[versions[0], versions[0], versions[0], versions[1], versions[1], ("nope", 1)]);
    let mut headers = Vec::new();
    let precondition = |draw: &mut Draw| match draw.below(10) {
        0..=3 => Some(format!("\"{version}\"")),
        4 | 5 => Some(format!("\"{}\"", version - 1)),
        6 => Some("*".to_owned()),
        7 => Some(format!("\"{}\", \"{version}\"", version + 3)),
        _ => None,
    };
    if let Some(tag) = precondition(draw) {
        headers.push(("if-match", tag));
    }
    if draw.chance(15) {
        headers.push(("if-none-match", draw.pick(&["*".to_owned(), format!("\"{version}\"")]).clone()));
    }
    match draw.below(10) {
        0 => {
            let restored = draw.below(version as u64 + 2) as i64;
            Step {
                method: Method::POST,
                path: format!("/admin/integrations/{id}/history/{restored}/restore"),
                headers,
                body: None,
            }
        }
        1 => {
            // A read: `If-None-Match` only.
            let headers = headers.into_iter().filter(|(name, _)| *name == "if-none-match").collect();
            Step { method: Method::GET, path: format!("/admin/integrations/{id}"), headers, body: None }
        }
        _ => Step {
            method: Method::PUT,
            path: format!("/admin/integrations/{id}"),
            headers,
            body: Some(put_body(draw, id)),
        },
    }
}

fn put_body(draw: &mut Draw, id: &str) -> Value {
    let mut body = serde_json::Map::new();
    if draw.chance(40) {
        let name = draw.pick(&["Renamed", "", "Name \u{e9}\u{1f600}", "x"]);
        body.insert("name".into(), json!(name));
    }
    if draw.chance(25) {
        body.insert("description".into(), json!(format!("described {}", draw.below(1000))));
    }
    if draw.chance(50) {
        body.insert("status".into(), if draw.chance(95) { json!(draw.chance(50)) } else { json!("yes") });
    }
    if draw.chance(60) {
        let mut settings = serde_json::Map::new();
        if id == "facebook" {
            for field in ["verify", "secret", "page_access_token"] {
                if draw.chance(70) {
                    let value = if draw.chance(93) { json!(format!("{field}-{}", draw.below(100))) } else { json!(7) };
                    settings.insert(field.into(), value);
                }
            }
            // `legacy` is stored in the seeded row (from before the catalog); `extra` never is.
            for undeclared in ["legacy", "extra"] {
                if draw.chance(20) {
                    settings.insert(undeclared.into(), json!(draw.below(10)));
                }
            }
        } else {
            // Free-form: anything, exactly.
            settings.insert("theme".into(), json!({"color": format!("#{:06x}", draw.below(0xff_ffff))}));
            if draw.chance(50) {
                settings.insert("n".into(), serde_json::from_str::<Value>("123456789012345678901234567890.5").unwrap());
            }
        }
        body.insert("settings".into(), Value::Object(settings));
    }
    Value::Object(body)
}

/// What must be the same on both backends: the status, the ETag, and the body with the
/// timestamps and the client's address (which differ by when and where) taken out.
fn answer(reply: &Reply) -> (u16, Option<String>, String) {
    let body = match serde_json::from_slice::<Value>(&reply.body) {
        Ok(mut value) => {
            scrub(&mut value);
            value.to_string()
        }
        Err(_) => String::from_utf8_lossy(&reply.body).into_owned(),
    };
    (reply.status, reply.header("etag").map(str::to_owned), body)
}

fn scrub(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for field in ["created_at", "updated_at", "recorded_at", "client_addr"] {
                if map.contains_key(field) {
                    map.insert(field.into(), json!("-"));
                }
            }
            map.values_mut().for_each(scrub);
        }
        Value::Array(items) => items.iter_mut().for_each(scrub),
        _ => {}
    }
}

/// Every stored row, as text, in a shape both databases share.
async fn rows(service: &Service) -> Vec<String> {
    const LIVE: &str = "SELECT id, name, description, status, settings, settings_key, settings_keys, version \
        FROM integrations ORDER BY seq";
    const HISTORY: &str = "SELECT integration_id, version, action, restored_from, name, description, status, \
        settings, settings_key, request_id, authenticated FROM integration_history ORDER BY integration_id, version";
    match &service.dsn {
        Some(dsn) => {
            let client = e2e::connect(dsn).await;
            let mut rows = Vec::new();
            for statement in [LIVE, HISTORY] {
                let text = format!("SELECT row_to_json(r)::text FROM ({statement}) AS r");
                rows.extend(client.query(&text, &[]).await.unwrap().iter().map(|row| row.get::<_, String>(0)));
            }
            rows.into_iter().map(|row| normalise_row(&row)).collect()
        }
        None => {
            let db = rusqlite::Connection::open(service.state_dir().join("sqlite_db.db")).unwrap();
            let mut rows = Vec::new();
            for statement in [LIVE, HISTORY] {
                let mut query = db.prepare(statement).unwrap();
                let names: Vec<String> = query.column_names().iter().map(|name| name.to_string()).collect();
                let found = query
                    .query_map([], |row| {
                        let mut object = serde_json::Map::new();
                        for (index, name) in names.iter().enumerate() {
                            let value = match row.get_ref(index)? {
                                rusqlite::types::ValueRef::Null => Value::Null,
                                rusqlite::types::ValueRef::Integer(n) => json!(n),
                                rusqlite::types::ValueRef::Text(text) => json!(String::from_utf8_lossy(text)),
                                other => json!(format!("{other:?}")),
                            };
                            object.insert(name.clone(), value);
                        }
                        Ok(Value::Object(object).to_string())
                    })
                    .unwrap();
                rows.extend(found.map(Result::unwrap));
            }
            rows.into_iter().map(|row| normalise_row(&row)).collect()
        }
    }
}

/// SQLite keeps booleans as 0/1.
fn normalise_row(row: &str) -> String {
    let mut value: Value = serde_json::from_str(row).unwrap();
    for field in ["status", "authenticated"] {
        if let Some(flag) = value.get(field).and_then(Value::as_i64) {
            value[field] = json!(flag != 0);
        }
    }
    value.to_string()
}

/// Gives the seeded `facebook` row a key from before the catalog, as 0.1.0's users could have.
async fn keep_a_legacy_key(service: &Service) {
    const LEGACY: &str = "UPDATE integrations SET \
        settings = '{\"verify\":\"ai-chatbot-framework\",\"secret\":\"\",\"page_access_token\":\"\",\"legacy\":\"kept\"}', \
        settings_keys = '[\"verify\",\"secret\",\"page_access_token\",\"legacy\"]' WHERE id = 'facebook'";
    match &service.dsn {
        Some(dsn) => e2e::connect(dsn).await.batch_execute(LEGACY).await.unwrap(),
        None => {
            let db = rusqlite::Connection::open(service.state_dir().join("sqlite_db.db")).unwrap();
            assert_eq!(db.execute(LEGACY, []).unwrap(), 1);
        }
    }
}

fn seed() -> u64 {
    match std::env::var("E2E_WRITES_SEED") {
        Ok(seed) => seed.trim().parse().expect("E2E_WRITES_SEED is a number"),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1,
    }
}

e2e::e2e_tests!(
    #[on_each_spin]
    /// Every answer and every row the same on PostgreSQL and SQLite.
    async fn the_same_writes_give_the_same_answers_and_rows_on_both_backends(spin: &Spin) {
        the_same_on_both(spin).await;
    }
);

async fn the_same_on_both(spin: &Spin) {
    let seed = seed();
    eprintln!("writes ({spin}): seed {seed} (E2E_WRITES_SEED={seed} draws this sequence again)");
    let services = [Service::start(spin, Backend::Postgres).await, Service::start(spin, Backend::Sqlite).await];
    for service in &services {
        assert_eq!(service.get("/admin/integrations/").await.status, 200, "seed {seed}");
        keep_a_legacy_key(service).await;
    }
    let mut draw = Draw(seed);
    let mut versions = [("facebook", 1), ("chat_widget", 1)];
    let mut seen = std::collections::BTreeSet::new();
    for index in 0..STEPS {
        let step = step(&mut draw, &versions);
        let request_id = format!("writes-{index}");
        let mut headers: Vec<(&str, &str)> = step.headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
        headers.extend([
            ("x-request-id", request_id.as_str()),
            ("content-type", "application/json"),
            ("cache-control", "no-cache"),
        ]);
        let body = step.body.as_ref().map(|body| body.to_string().into_bytes());
        let postgres = services[0].send(step.method.clone(), &step.path, &headers, body.clone()).await;
        let sqlite = services[1].send(step.method.clone(), &step.path, &headers, body).await;
        assert_eq!(answer(&postgres), answer(&sqlite), "seed {seed}, step {index}: {step:?}\n(PostgreSQL first)");
        seen.insert((step.method.to_string(), postgres.status));
        if let Some(version) = postgres.header("etag").and_then(|etag| etag.trim_matches('"').parse().ok()) {
            if let Some(known) =
                versions.iter_mut().find(|(id, _)| step.path.ends_with(id) || step.path.contains(&format!("/{id}/")))
            {
                known.1 = version;
            }
        }
    }
    for path in [
        "/admin/integrations/",
        "/admin/integrations/facebook/history?limit=100",
        "/admin/integrations/chat_widget/history?limit=100",
    ] {
        let [postgres, sqlite] = [services[0].get(path).await, services[1].get(path).await];
        assert_eq!(answer(&postgres), answer(&sqlite), "seed {seed}: {path} at the end");
    }
    assert_eq!(rows(&services[0]).await, rows(&services[1]).await, "seed {seed}: the rows at the end");
}
