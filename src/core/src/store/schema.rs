//! The schema both backends create on first use, and the seed rows it starts with.

use crate::domain::{defaults, Seed};

/// The schema version this code writes; recorded in `integrations_schema_migrations`.
pub const SCHEMA_VERSION: i64 = 1;

/// Any value, the same in every component, so that concurrent first requests
/// serialise on one advisory lock.
const BOOTSTRAP_LOCK_KEY: i64 = 0x696e_7465_6772_6174; // "integrat"

/// One statement that creates the schema and seeds the defaults exactly once, however
/// many first requests race: the advisory lock serialises them, and the recorded schema
/// version makes every later run a no-op. It cannot take bind parameters, so the seed
/// values (constants of this crate) are inlined as quoted literals.
pub fn postgres_bootstrap() -> String {
    format!(
        r#"DO $bootstrap$
BEGIN
  PERFORM pg_advisory_xact_lock({BOOTSTRAP_LOCK_KEY});
  CREATE TABLE IF NOT EXISTS integrations_schema_migrations (
    version bigint PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
  );
  IF NOT EXISTS (SELECT 1 FROM integrations_schema_migrations WHERE version = {SCHEMA_VERSION}) THEN
    CREATE TABLE IF NOT EXISTS integrations (
      seq bigint GENERATED ALWAYS AS IDENTITY,
      id text PRIMARY KEY,
      name text NOT NULL,
      description text NOT NULL,
      status boolean NOT NULL DEFAULT false,
      settings jsonb NOT NULL DEFAULT '{{}}'::jsonb,
      version bigint NOT NULL DEFAULT 1,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    );
    INSERT INTO integrations (id, name, description, status, settings)
    VALUES {seeds}
    ON CONFLICT (id) DO NOTHING;
    INSERT INTO integrations_schema_migrations (version) VALUES ({SCHEMA_VERSION});
  END IF;
END
$bootstrap$"#,
        seeds = seed_rows(|seed| format!("{}::jsonb", quote(seed.settings)))
    )
}

/// SQLite's bootstrap, run inside `BEGIN IMMEDIATE` ... `COMMIT` (one writer at a time).
pub fn sqlite_bootstrap() -> Vec<String> {
    vec![
        "CREATE TABLE IF NOT EXISTS integrations_schema_migrations (
           version INTEGER PRIMARY KEY,
           applied_at INTEGER NOT NULL
         )"
        .into(),
        "CREATE TABLE IF NOT EXISTS integrations (
           seq INTEGER PRIMARY KEY AUTOINCREMENT,
           id TEXT NOT NULL UNIQUE,
           name TEXT NOT NULL,
           description TEXT NOT NULL,
           status INTEGER NOT NULL DEFAULT 0,
           settings TEXT NOT NULL DEFAULT '{}',
           version INTEGER NOT NULL DEFAULT 1,
           created_at INTEGER NOT NULL,
           updated_at INTEGER NOT NULL
         )"
        .into(),
        format!(
            "INSERT INTO integrations (id, name, description, status, settings, created_at, updated_at)
             SELECT column1, column2, column3, column4, column5, now, now
             FROM (VALUES {seeds}), (SELECT CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER) AS now)
             WHERE NOT EXISTS (SELECT 1 FROM integrations_schema_migrations WHERE version = {SCHEMA_VERSION})
             ON CONFLICT (id) DO NOTHING",
            seeds = seed_rows(|seed| quote(seed.settings))
        ),
        format!(
            "INSERT OR IGNORE INTO integrations_schema_migrations (version, applied_at)
             VALUES ({SCHEMA_VERSION}, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER))"
        ),
    ]
}

fn seed_rows(settings_literal: impl Fn(&Seed) -> String) -> String {
    defaults()
        .iter()
        .map(|seed| {
            format!(
                "({}, {}, {}, {}, {})",
                quote(seed.id),
                quote(seed.name),
                quote(seed.description),
                if seed.status { "true" } else { "false" },
                settings_literal(seed)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A standard SQL string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_single_quotes() {
        assert_eq!(quote("it's"), "'it''s'");
    }

    #[test]
    fn both_bootstraps_seed_the_defaults_in_order() {
        let postgres = postgres_bootstrap();
        let sqlite = sqlite_bootstrap().join("\n");
        for sql in [&postgres, &sqlite] {
            let facebook = sql.find("'facebook'").unwrap();
            let chat_widget = sql.find("'chat_widget'").unwrap();
            assert!(facebook < chat_widget);
            assert!(sql.contains(r#"'{"verify": "ai-chatbot-framework", "secret": "", "page_access_token": ""}'"#));
        }
    }
}
