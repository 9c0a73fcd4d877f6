//! The schema, as an ordered list of versioned migrations. Each runs once per database, in
//! order, and is recorded in `integrations_schema_migrations`; all pending ones run in one
//! transaction, under a lock, so replicas racing on a fresh or outdated database apply them
//! exactly once (PostgreSQL: an advisory lock; SQLite: `BEGIN IMMEDIATE`).
//!
//! Requests find out that a migration is pending without an extra round trip: every statement
//! on the hot path also returns `max(version)` of that table (or fails on a missing table or
//! column), and the store runs the migrations and retries when it is behind [`LATEST`].
//!
//! Migrations are append-only: a released one is never edited (a database may already have run
//! it, and a version must mean the same in every database): a unit test pins each one's SQL by
//! digest. Version 1's seed steps take their values from the catalog, in that version's column
//! shape.
//!
//! The catalog is not a migration: after the pending migrations, in the same transaction, every
//! catalog entry a database lacks is inserted ([`Seed`]), with its first history version. Every
//! statement also counts the catalog's rows ([`CATALOG_ROWS`]), so a database an older release
//! created gets a new entry's row on its next request, as it gets a pending migration.

use crate::catalog::{self, IntegrationType, CATALOG};
use crate::store::StoredSettings;

pub struct Migration {
    pub version: i64,
    pub description: &'static str,
    pub steps: &'static [Step],
}

pub enum Step {
    /// The same change, in each backend's SQL (one statement per element).
    Sql { postgres: &'static [&'static str], sqlite: &'static [&'static str] },
    /// Inserts a catalog entry as version 1 did (before history and exact settings).
    SeedV1(&'static str),
}

/// Version 2's history of each existing row, as it stood: the same statement in both dialects.
const BASELINE: &str = "INSERT INTO integration_history
                    (integration_id, version, recorded_at, action, name, description, status, settings, settings_key)
                 SELECT id, version, updated_at, 'baseline', name, description, status, settings, settings_key
                 FROM integrations";

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "integrations table and the two original integrations",
        steps: &[
            Step::Sql {
                postgres: &["CREATE TABLE IF NOT EXISTS integrations (
                    seq bigint GENERATED ALWAYS AS IDENTITY,
                    id text PRIMARY KEY,
                    name text NOT NULL,
                    description text NOT NULL,
                    status boolean NOT NULL DEFAULT false,
                    settings jsonb NOT NULL DEFAULT '{}'::jsonb,
                    version bigint NOT NULL DEFAULT 1,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    updated_at timestamptz NOT NULL DEFAULT now()
                )"],
                sqlite: &["CREATE TABLE IF NOT EXISTS integrations (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    name TEXT NOT NULL,
                    description TEXT NOT NULL,
                    status INTEGER NOT NULL DEFAULT 0,
                    settings TEXT NOT NULL DEFAULT '{}',
                    version INTEGER NOT NULL DEFAULT 1,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL
                )"],
            },
            Step::SeedV1("facebook"),
            Step::SeedV1("chat_widget"),
        ],
    },
    Migration {
        version: 2,
        description: "settings stored exactly and sealed whole; history of every write",
        steps: &[Step::Sql {
            postgres: &[
                // jsonb cannot hold NUL and rewrites numbers and key order: settings become the
                // JSON text as sent.
                "ALTER TABLE integrations ALTER COLUMN settings DROP DEFAULT",
                "ALTER TABLE integrations ALTER COLUMN settings TYPE text USING settings::text",
                "ALTER TABLE integrations ALTER COLUMN settings SET DEFAULT '{}'",
                "ALTER TABLE integrations ADD COLUMN settings_key text",
                "ALTER TABLE integrations ADD COLUMN settings_keys text NOT NULL DEFAULT '[]'",
                "UPDATE integrations SET settings_keys = (
                    SELECT coalesce(json_agg(key), '[]')::text FROM jsonb_object_keys(settings::jsonb) AS key)",
                // Rows the previous release sealed field by field, by its own rule (enc:v1:
                // values under secret-looking keys): marked so they are opened that way.
                "UPDATE integrations SET settings_key = '#v1-fields' WHERE EXISTS (
                    SELECT 1 FROM jsonb_each_text(settings::jsonb) AS field
                    WHERE field.value LIKE 'enc:v1:%'
                      AND lower(field.key) ~ '(secret|token|password|api_key|apikey)')",
                "CREATE TABLE integration_history (
                    integration_id text NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
                    version bigint NOT NULL,
                    recorded_at timestamptz NOT NULL DEFAULT now(),
                    action text NOT NULL,
                    restored_from bigint,
                    name text NOT NULL,
                    description text NOT NULL,
                    status boolean NOT NULL,
                    settings text NOT NULL,
                    settings_key text,
                    request_id text,
                    client_addr text,
                    authenticated boolean NOT NULL DEFAULT false,
                    PRIMARY KEY (integration_id, version)
                )",
                BASELINE,
            ],
            sqlite: &[
                "ALTER TABLE integrations ADD COLUMN settings_key TEXT",
                "ALTER TABLE integrations ADD COLUMN settings_keys TEXT NOT NULL DEFAULT '[]'",
                "UPDATE integrations SET settings_keys = (
                    SELECT coalesce(json_group_array(key), '[]') FROM json_each(integrations.settings))",
                "UPDATE integrations SET settings_key = '#v1-fields' WHERE EXISTS (
                    SELECT 1 FROM json_each(integrations.settings) AS field
                    WHERE field.type = 'text' AND field.value LIKE 'enc:v1:%'
                      AND (lower(field.key) LIKE '%secret%' OR lower(field.key) LIKE '%token%'
                        OR lower(field.key) LIKE '%password%' OR lower(field.key) LIKE '%api\\_key%' ESCAPE '\\'
                        OR lower(field.key) LIKE '%apikey%'))",
                "CREATE TABLE integration_history (
                    integration_id TEXT NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
                    version INTEGER NOT NULL,
                    recorded_at INTEGER NOT NULL,
                    action TEXT NOT NULL,
                    restored_from INTEGER,
                    name TEXT NOT NULL,
                    description TEXT NOT NULL,
                    status INTEGER NOT NULL,
                    settings TEXT NOT NULL,
                    settings_key TEXT,
                    request_id TEXT,
                    client_addr TEXT,
                    authenticated INTEGER NOT NULL DEFAULT 0,
                    PRIMARY KEY (integration_id, version)
                )",
                BASELINE,
            ],
        }],
    },
    Migration {
        version: 3,
        description: "writes as one function, planned once per connection",
        steps: &[Step::Sql {
            postgres: &[
                r#"CREATE OR REPLACE FUNCTION integrations_write(text, text, text, boolean, text, text, text, text,
                    int8[], int8[], boolean, text, int8, text, text, boolean, int8, int8)
                RETURNS TABLE (verdict text, missing text, id text, name text, description text, status boolean,
                    settings text, settings_key text, settings_keys text, version bigint, created_us bigint,
                    updated_us bigint)
                LANGUAGE plpgsql AS $write$
                #variable_conflict use_column
                BEGIN
                  -- Writers of one integration queue here, one woken per commit, rather than
                  -- on its row lock, where every commit wakes them all (at 64 concurrent PUTs
                  -- of one row: p99 0.7-1.1 s without this, 0.2-0.3 s with it). The two-key
                  -- form, class 0x77726974 ("writ"), never meets the migrations' lock.
                  PERFORM pg_advisory_xact_lock(2003986804, hashtext($1));
                  RETURN QUERY
                  WITH current AS (
                                 SELECT * FROM integrations WHERE id = $1::text FOR UPDATE
                               ), verdict AS (
                                 SELECT CASE
                                   WHEN (SELECT max(version) FROM integrations_schema_migrations) < $17::int8 THEN 'schema_behind'
                                   WHEN NOT (($9::int8[] IS NULL OR c.version = ANY($9::int8[]))
                                         AND NOT c.version = ANY($10::int8[]) AND NOT $11::boolean) THEN 'precondition_failed'
                                   WHEN $8::text IS NOT NULL AND NOT (c.settings_keys::jsonb @> $8::text::jsonb) THEN 'undeclared'
                                   ELSE 'apply' END AS verdict,
                                 CASE WHEN $8::text IS NOT NULL THEN (
                                   SELECT coalesce(json_agg(key), '[]')::text FROM jsonb_array_elements_text($8::text::jsonb) AS key
                                   WHERE NOT c.settings_keys::jsonb ? key) END AS missing
                                 FROM current AS c
                               ), written AS (
                                 UPDATE integrations AS i SET
                                   name = coalesce($2::text, i.name),
                                   description = coalesce($3::text, i.description),
                                   status = coalesce($4::boolean, i.status),
                                   settings = coalesce($5::text, i.settings),
                                   settings_key = CASE WHEN $5::text IS NULL THEN i.settings_key ELSE $6::text END,
                                   settings_keys = coalesce($7::text, i.settings_keys),
                                   version = i.version + 1,
                                   updated_at = greatest(now(), i.updated_at)
                                 FROM verdict AS v
                                 WHERE i.id = $1::text AND v.verdict = 'apply'
                                 RETURNING i.*
                               ), recorded AS (
                                 INSERT INTO integration_history (integration_id, version, recorded_at, action, restored_from, name,
                                   description, status, settings, settings_key, request_id, client_addr, authenticated)
                                 SELECT w.id, w.version, w.updated_at, $12::text, $13::int8, w.name, w.description, w.status, w.settings,
                                   w.settings_key, $14::text, $15::text, $16::boolean
                                 FROM written AS w
                               ), pruned AS (
                                 DELETE FROM integration_history AS h USING written AS w
                                 WHERE h.integration_id = w.id AND h.version <= w.version - $18::int8
                               )
                               SELECT v.verdict, v.missing, i.id, i.name, i.description, i.status, i.settings, i.settings_key, i.settings_keys, i.version,
                                       (extract(epoch FROM i.created_at) * 1000000)::int8 AS created_us,
                                       (extract(epoch FROM i.updated_at) * 1000000)::int8 AS updated_us
                               FROM (SELECT 1) AS one LEFT JOIN verdict AS v ON true LEFT JOIN written AS i ON true;
                END
                $write$"#,
            ],
            // SQLite writes in a transaction of several statements (store::sqlite).
            sqlite: &[],
        }],
    },
    // Expand only: release 0.2.0 keeps reading and writing on this schema (it checks
    // `schema_version >= 3` and calls migration 3's `integrations_write` with 18 arguments). What
    // a later release may contract once no 0.2.0 remains: `integrations_write` and the SQLite
    // trigger (CHANGELOG, 0.3.0).
    Migration {
        version: 4,
        description: "the actor of each version: the name of the token that made it",
        steps: &[Step::Sql {
            postgres: &[
                "ALTER TABLE integration_history ADD COLUMN actor text",
                // Before 0.3.0 the one token was admin_token: an authenticated version was its.
                "UPDATE integration_history SET actor = 'admin_token' WHERE authenticated",
                // Migration 3's function, and the actor ($19) in the history row.
                r#"CREATE FUNCTION integrations_write_as(text, text, text, boolean, text, text, text, text,
                    int8[], int8[], boolean, text, int8, text, text, boolean, int8, int8, text)
                RETURNS TABLE (verdict text, missing text, id text, name text, description text, status boolean,
                    settings text, settings_key text, settings_keys text, version bigint, created_us bigint,
                    updated_us bigint)
                LANGUAGE plpgsql AS $write$
                #variable_conflict use_column
                BEGIN
                  -- Writers of one integration queue here, one woken per commit (migration 3).
                  PERFORM pg_advisory_xact_lock(2003986804, hashtext($1));
                  RETURN QUERY
                  WITH current AS (
                                 SELECT * FROM integrations WHERE id = $1::text FOR UPDATE
                               ), verdict AS (
                                 SELECT CASE
                                   WHEN (SELECT max(version) FROM integrations_schema_migrations) < $17::int8 THEN 'schema_behind'
                                   WHEN NOT (($9::int8[] IS NULL OR c.version = ANY($9::int8[]))
                                         AND NOT c.version = ANY($10::int8[]) AND NOT $11::boolean) THEN 'precondition_failed'
                                   WHEN $8::text IS NOT NULL AND NOT (c.settings_keys::jsonb @> $8::text::jsonb) THEN 'undeclared'
                                   ELSE 'apply' END AS verdict,
                                 CASE WHEN $8::text IS NOT NULL THEN (
                                   SELECT coalesce(json_agg(key), '[]')::text FROM jsonb_array_elements_text($8::text::jsonb) AS key
                                   WHERE NOT c.settings_keys::jsonb ? key) END AS missing
                                 FROM current AS c
                               ), written AS (
                                 UPDATE integrations AS i SET
                                   name = coalesce($2::text, i.name),
                                   description = coalesce($3::text, i.description),
                                   status = coalesce($4::boolean, i.status),
                                   settings = coalesce($5::text, i.settings),
                                   settings_key = CASE WHEN $5::text IS NULL THEN i.settings_key ELSE $6::text END,
                                   settings_keys = coalesce($7::text, i.settings_keys),
                                   version = i.version + 1,
                                   updated_at = greatest(now(), i.updated_at)
                                 FROM verdict AS v
                                 WHERE i.id = $1::text AND v.verdict = 'apply'
                                 RETURNING i.*
                               ), recorded AS (
                                 INSERT INTO integration_history (integration_id, version, recorded_at, action, restored_from, name,
                                   description, status, settings, settings_key, request_id, client_addr, authenticated, actor)
                                 SELECT w.id, w.version, w.updated_at, $12::text, $13::int8, w.name, w.description, w.status, w.settings,
                                   w.settings_key, $14::text, $15::text, $16::boolean, $19::text
                                 FROM written AS w
                               ), pruned AS (
                                 DELETE FROM integration_history AS h USING written AS w
                                 WHERE h.integration_id = w.id AND h.version <= w.version - $18::int8
                               )
                               SELECT v.verdict, v.missing, i.id, i.name, i.description, i.status, i.settings, i.settings_key, i.settings_keys, i.version,
                                       (extract(epoch FROM i.created_at) * 1000000)::int8 AS created_us,
                                       (extract(epoch FROM i.updated_at) * 1000000)::int8 AS updated_us
                               FROM (SELECT 1) AS one LEFT JOIN verdict AS v ON true LEFT JOIN written AS i ON true;
                END
                $write$"#,
                // 0.2.0's calls, same signature and result: what they write is recorded as the
                // backfill above records what they wrote (their one token was admin_token).
                r#"CREATE OR REPLACE FUNCTION integrations_write(text, text, text, boolean, text, text, text, text,
                    int8[], int8[], boolean, text, int8, text, text, boolean, int8, int8)
                RETURNS TABLE (verdict text, missing text, id text, name text, description text, status boolean,
                    settings text, settings_key text, settings_keys text, version bigint, created_us bigint,
                    updated_us bigint)
                LANGUAGE sql AS $write$
                  SELECT * FROM integrations_write_as($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                    $16, $17, $18, CASE WHEN $16 THEN 'admin_token' END)
                $write$"#,
            ],
            sqlite: &[
                "ALTER TABLE integration_history ADD COLUMN actor TEXT",
                "UPDATE integration_history SET actor = 'admin_token' WHERE authenticated",
                // 0.2.0's writes (its INSERT names no actor), recorded as on PostgreSQL.
                "CREATE TRIGGER integration_history_actor_of_0_2_0 AFTER INSERT ON integration_history
                 WHEN NEW.authenticated AND NEW.actor IS NULL
                 BEGIN
                   UPDATE integration_history SET actor = 'admin_token'
                   WHERE integration_id = NEW.integration_id AND version = NEW.version;
                 END",
            ],
        }],
    },
    // Expand only, as version 4: release 0.2.0's `integrations_write` (version 4's wrapper) calls
    // the function replaced here with the same arguments and result, and 0.2.0's SQLite writes
    // do not use the view.
    Migration {
        version: 5,
        description: "SQLite writes as one statement; history pruned by a bounded index range",
        steps: &[Step::Sql {
            // The same function as version 4's, with the same arguments and result, whose history
            // pruning stays an index range scan between vacuums.
            postgres: &[
                r#"CREATE OR REPLACE FUNCTION integrations_write_as(text, text, text, boolean, text, text, text, text,
                    int8[], int8[], boolean, text, int8, text, text, boolean, int8, int8, text)
                RETURNS TABLE (verdict text, missing text, id text, name text, description text, status boolean,
                    settings text, settings_key text, settings_keys text, version bigint, created_us bigint,
                    updated_us bigint)
                LANGUAGE plpgsql AS $write$
                #variable_conflict use_column
                BEGIN
                  -- Writers of one integration queue here, one woken per commit (migration 3).
                  PERFORM pg_advisory_xact_lock(2003986804, hashtext($1));
                  RETURN QUERY
                  WITH current AS (
                                 SELECT * FROM integrations WHERE id = $1::text FOR UPDATE
                               ), verdict AS (
                                 SELECT CASE
                                   WHEN (SELECT max(version) FROM integrations_schema_migrations) < $17::int8 THEN 'schema_behind'
                                   WHEN NOT (($9::int8[] IS NULL OR c.version = ANY($9::int8[]))
                                         AND NOT c.version = ANY($10::int8[]) AND NOT $11::boolean) THEN 'precondition_failed'
                                   WHEN $8::text IS NOT NULL AND NOT (c.settings_keys::jsonb @> $8::text::jsonb) THEN 'undeclared'
                                   ELSE 'apply' END AS verdict,
                                 CASE WHEN $8::text IS NOT NULL THEN (
                                   SELECT coalesce(json_agg(key), '[]')::text FROM jsonb_array_elements_text($8::text::jsonb) AS key
                                   WHERE NOT c.settings_keys::jsonb ? key) END AS missing
                                 FROM current AS c
                               ), written AS (
                                 UPDATE integrations AS i SET
                                   name = coalesce($2::text, i.name),
                                   description = coalesce($3::text, i.description),
                                   status = coalesce($4::boolean, i.status),
                                   settings = coalesce($5::text, i.settings),
                                   settings_key = CASE WHEN $5::text IS NULL THEN i.settings_key ELSE $6::text END,
                                   settings_keys = coalesce($7::text, i.settings_keys),
                                   version = i.version + 1,
                                   updated_at = greatest(now(), i.updated_at)
                                 FROM verdict AS v
                                 WHERE i.id = $1::text AND v.verdict = 'apply'
                                 RETURNING i.*
                               ), recorded AS (
                                 INSERT INTO integration_history (integration_id, version, recorded_at, action, restored_from, name,
                                   description, status, settings, settings_key, request_id, client_addr, authenticated, actor)
                                 SELECT w.id, w.version, w.updated_at, $12::text, $13::int8, w.name, w.description, w.status, w.settings,
                                   w.settings_key, $14::text, $15::text, $16::boolean, $19::text
                                 FROM written AS w
                               ), pruned AS (
                                 -- The versions that fall out of retention: one per write, unless
                                 -- history_retention was lowered. A bounded range, so that the
                                 -- plan is an index scan whatever the table's statistics say, and
                                 -- it never walks the index entries of versions pruned before
                                 -- (dead until the next vacuum: 60,000 a minute at 1,000 PUT/s).
                                 DELETE FROM integration_history AS h USING written AS w
                                 WHERE h.integration_id = w.id AND h.version <= w.version - $18::int8
                                   AND h.version > w.version - $18::int8 - 16
                                 RETURNING 1
                               ), pruned_further AS (
                                 -- Only when the range above was full: retention was lowered.
                                 DELETE FROM integration_history AS h USING written AS w
                                 WHERE (SELECT count(*) FROM pruned) = 16
                                   AND h.integration_id = w.id AND h.version <= w.version - $18::int8 - 16
                               )
                               SELECT v.verdict, v.missing, i.id, i.name, i.description, i.status, i.settings, i.settings_key, i.settings_keys, i.version,
                                       (extract(epoch FROM i.created_at) * 1000000)::int8 AS created_us,
                                       (extract(epoch FROM i.updated_at) * 1000000)::int8 AS updated_us
                               FROM (SELECT 1) AS one LEFT JOIN verdict AS v ON true LEFT JOIN written AS i ON true;
                END
                $write$"#,
            ],
            sqlite: &[
                "CREATE VIEW integration_writes AS SELECT
                    NULL AS id, NULL AS read_version, NULL AS name, NULL AS description, NULL AS status,
                    NULL AS settings, NULL AS settings_key, NULL AS settings_keys, NULL AS now, NULL AS action,
                    NULL AS restored_from, NULL AS request_id, NULL AS client_addr, NULL AS authenticated,
                    NULL AS retention, NULL AS actor
                 WHERE false",
                "CREATE TRIGGER integration_writes INSTEAD OF INSERT ON integration_writes BEGIN
                    SELECT RAISE(IGNORE) WHERE NOT EXISTS (SELECT 1 FROM integrations
                        WHERE id = NEW.id AND (NEW.read_version IS NULL OR version = NEW.read_version));
                    UPDATE integrations SET
                        name = coalesce(NEW.name, name),
                        description = coalesce(NEW.description, description),
                        status = coalesce(NEW.status, status),
                        settings = coalesce(NEW.settings, settings),
                        settings_key = CASE WHEN NEW.settings IS NULL THEN settings_key ELSE NEW.settings_key END,
                        settings_keys = coalesce(NEW.settings_keys, settings_keys),
                        version = version + 1,
                        updated_at = max(NEW.now, updated_at)
                    WHERE id = NEW.id;
                    INSERT INTO integration_history (integration_id, version, recorded_at, action, restored_from,
                        name, description, status, settings, settings_key, request_id, client_addr, authenticated,
                        actor)
                    SELECT id, version, updated_at, NEW.action, NEW.restored_from, name, description, status,
                        settings, settings_key, NEW.request_id, NEW.client_addr, NEW.authenticated, NEW.actor
                    FROM integrations WHERE id = NEW.id;
                    DELETE FROM integration_history WHERE integration_id = NEW.id
                        AND version <= (SELECT version FROM integrations WHERE id = NEW.id) - NEW.retention;
                END",
            ],
        }],
    },
    // Expand only, closing a gap of version 4's: a 0.2.0 write that began before version 4
    // committed runs migration 3's `integrations_write` as it compiled it, and its history insert,
    // which waited for the migration's lock on the table, names no actor. Version 4's backfill
    // ran before it and its wrapper is not called by it, so the row said no actor (the fleet
    // test's rolling upgrade met it; 0.3.0's src/core/tests/postgres_migrations.rs held a write
    // there). This runs in the same transaction as version 4 when a database comes from 0.2.0, so
    // the insert, going on after the commit, meets the trigger. SQLite's version 4 has one already.
    Migration {
        version: 6,
        description: "0.2.0's authenticated writes in flight during version 4 recorded as admin_token's",
        steps: &[Step::Sql {
            postgres: &[
                r#"CREATE FUNCTION integration_history_actor_of_0_2_0() RETURNS trigger
                LANGUAGE plpgsql AS $actor$
                BEGIN
                  NEW.actor := 'admin_token';
                  RETURN NEW;
                END
                $actor$"#,
                // Before the row is written, and only for a row that names no actor, which no
                // write of this release makes when authenticated: its cost is the WHEN clause,
                // lost in the noise (5,000 calls of integrations_write_as in one session, the
                // trigger created and dropped in turn on one database: 261-281 us a call with
                // it, 255-280 without).
                "CREATE TRIGGER integration_history_actor_of_0_2_0 BEFORE INSERT ON integration_history
                 FOR EACH ROW WHEN (NEW.authenticated AND NEW.actor IS NULL)
                 EXECUTE FUNCTION integration_history_actor_of_0_2_0()",
            ],
            sqlite: &[],
        }],
    },
    // Contract (0.4.0), of what versions 4 and 6 kept for release 0.2.0 only: its write function
    // and the triggers that record its authenticated writes as admin_token's. This release's
    // previous release is 0.3.0, which calls neither (`integrations_write_as`, and on SQLite the
    // view `integration_writes`), and whose writes always name their actor; a fleet on 0.2.0
    // upgrades through 0.3.0 (CHANGELOG). What 0.2.0 wrote before keeps the actor the backfill
    // gave it.
    Migration {
        version: 7,
        description: "release 0.2.0's write function and actor triggers dropped",
        steps: &[Step::Sql {
            postgres: &[
                "DROP TRIGGER IF EXISTS integration_history_actor_of_0_2_0 ON integration_history",
                "DROP FUNCTION IF EXISTS integration_history_actor_of_0_2_0()",
                "DROP FUNCTION IF EXISTS integrations_write(text, text, text, boolean, text, text, text, text, \
                 int8[], int8[], boolean, text, int8, text, text, boolean, int8, int8)",
            ],
            sqlite: &["DROP TRIGGER IF EXISTS integration_history_actor_of_0_2_0"],
        }],
    },
];

/// The schema version this code reads and writes.
pub const LATEST: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// Any value, the same in every component and release, so that concurrent runs serialise on
/// one advisory lock.
const LOCK_KEY: i64 = 0x696e_7465_6772_6174; // "integrat"

/// SQLite's clock, in the microseconds the integer timestamp columns hold.
pub const SQLITE_NOW_US: &str = "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)";

/// One statement that applies every pending migration and inserts the catalog entries the
/// database lacks, under the advisory lock, in one transaction. It holds no bind parameters (a
/// `DO` block cannot), so seed values are quoted in.
pub fn postgres_script(seeds: &[Seed]) -> String {
    let mut script = format!(
        "DO $migrate$\nBEGIN\n  PERFORM pg_advisory_xact_lock({LOCK_KEY});\n  \
         CREATE TABLE IF NOT EXISTS integrations_schema_migrations (\n    \
         version bigint PRIMARY KEY,\n    applied_at timestamptz NOT NULL DEFAULT now()\n  );\n"
    );
    for migration in MIGRATIONS {
        let version = migration.version;
        script.push_str(&format!(
            "  -- {version}: {}\n  IF NOT EXISTS (SELECT 1 FROM integrations_schema_migrations WHERE version = {version}) THEN\n",
            migration.description
        ));
        for statement in migration.steps.iter().flat_map(|step| statements(step, Dialect::Postgres)) {
            script.push_str(&format!("    {statement};\n"));
        }
        script.push_str(&format!(
            "    INSERT INTO integrations_schema_migrations (version) VALUES ({version});\n  END IF;\n"
        ));
    }
    for statement in seed_statements(seeds, Dialect::Postgres) {
        script.push_str(&format!("  {statement};\n"));
    }
    script.push_str("END\n$migrate$");
    script
}

/// The statements of the migrations after `applied`, each migration's ending with its record,
/// then those that insert the catalog entries the database lacks; run inside `BEGIN IMMEDIATE`
/// ... `COMMIT`.
pub fn sqlite_statements(applied: i64, seeds: &[Seed]) -> Vec<String> {
    let mut all = Vec::new();
    for migration in MIGRATIONS.iter().filter(|migration| migration.version > applied) {
        all.extend(migration.steps.iter().flat_map(|step| statements(step, Dialect::Sqlite)));
        all.push(format!(
            "INSERT INTO integrations_schema_migrations (version, applied_at) VALUES ({}, {SQLITE_NOW_US})",
            migration.version
        ));
    }
    all.extend(seed_statements(seeds, Dialect::Sqlite));
    all
}

/// How many of the catalog's entries the database holds: a column of every statement that
/// checks the schema (the ids are constants of this build, quoted in). Fewer than the catalog has
/// means a seed is pending.
pub fn catalog_rows() -> String {
    let ids: Vec<String> = CATALOG.iter().map(|entry| quote(entry.id)).collect();
    format!("(SELECT count(*) FROM integrations WHERE id IN ({})) AS catalog_rows", ids.join(", "))
}

/// Whether a database whose statements report `schema_version` and `catalog_rows` needs
/// [`postgres_script`] (or [`sqlite_statements`]) before this code may use it.
pub fn is_behind(schema_version: i64, catalog_rows: i64) -> bool {
    schema_version < LATEST || catalog_rows < CATALOG.len() as i64
}

/// A catalog entry's row as this deployment stores it: its default settings, sealed with the
/// current key when a keyring is set (the service makes them, see `service::seeds`).
#[derive(Debug, Clone)]
pub struct Seed {
    pub entry: &'static IntegrationType,
    pub settings: StoredSettings,
}

/// For each seed: its row and first history version ("seed"), unless the database holds a row
/// with its id; and the same entry's row and first version stored as the seed is, where they are
/// still as version 1 seeded them (plain, the same JSON): a fresh database gets version 1's rows
/// first, and they are to be stored as this deployment stores a seed, sealed when a keyring is
/// set, and as the same text on every backend (PostgreSQL's version 1 held them as `jsonb`,
/// whose text has its own key order). No write leaves a version 1.
fn seed_statements(seeds: &[Seed], dialect: Dialect) -> Vec<String> {
    let mut all = Vec::new();
    for Seed { entry, settings } in seeds {
        all.push(seed_row(entry, settings, dialect));
        all.push(seed_history(entry));
        let key = settings.key.as_deref().map_or("NULL".into(), quote);
        let defaults = quote(&settings_json(entry));
        let same_json = match dialect {
            Dialect::Postgres => format!("settings::jsonb = {defaults}::jsonb"),
            Dialect::Sqlite => format!("json(settings) = json({defaults})"),
        };
        for (table, id_column) in [("integrations", "id"), ("integration_history", "integration_id")] {
            all.push(format!(
                "UPDATE {table} SET settings = {}, settings_key = {key} \
                 WHERE {id_column} = {} AND version = 1 AND settings_key IS NULL AND {same_json}",
                quote(&settings.text),
                quote(entry.id),
            ));
        }
    }
    all
}

/// The table the runner reads first (SQLite), created by the runner itself.
pub const SQLITE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS integrations_schema_migrations (
    version INTEGER PRIMARY KEY,
    applied_at INTEGER NOT NULL
)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Postgres,
    Sqlite,
}

fn statements(step: &Step, dialect: Dialect) -> Vec<String> {
    match step {
        Step::Sql { postgres, sqlite } => {
            let statements = if dialect == Dialect::Postgres { postgres } else { sqlite };
            statements.iter().map(|statement| statement.to_string()).collect()
        }
        Step::SeedV1(id) => vec![seed_row_v1(entry(id), dialect)],
    }
}

/// The `INSERT` of a catalog entry's row as version 1 made it, unless one with its id exists:
/// without `settings_keys`, and its PostgreSQL `settings` were `jsonb`.
fn seed_row_v1(entry: &IntegrationType, dialect: Dialect) -> String {
    let settings = quote(&settings_json(entry));
    let settings = if dialect == Dialect::Postgres { format!("{settings}::jsonb") } else { settings };
    insert_row(entry, dialect, "", &settings)
}

/// The `INSERT` of a seed, unless a row with its id exists.
fn seed_row(entry: &IntegrationType, settings: &StoredSettings, dialect: Dialect) -> String {
    let key = settings.key.as_deref().map_or("NULL".into(), quote);
    let values = format!("{}, {key}, {}", quote(&settings.text), quote(&keys_json(entry)));
    insert_row(entry, dialect, ", settings_key, settings_keys", &values)
}

/// `INSERT INTO integrations` of `entry` with `settings` and the `more` columns it names, unless
/// a row with its id exists; SQLite's timestamps are given.
fn insert_row(entry: &IntegrationType, dialect: Dialect, more: &str, settings: &str) -> String {
    let mut columns = format!("id, name, description, status, settings{more}");
    let mut values = format!("{}, {settings}", seed_values(entry));
    if dialect == Dialect::Sqlite {
        columns.push_str(", created_at, updated_at");
        values.push_str(&format!(", {SQLITE_NOW_US}, {SQLITE_NOW_US}"));
    }
    format!("INSERT INTO integrations ({columns}) VALUES ({values}) ON CONFLICT (id) DO NOTHING")
}

/// The seeded row's first history version, unless the row already had a history (it existed).
fn seed_history(entry: &IntegrationType) -> String {
    format!(
        "INSERT INTO integration_history
            (integration_id, version, recorded_at, action, name, description, status, settings, settings_key)
         SELECT id, version, updated_at, 'seed', name, description, status, settings, settings_key
         FROM integrations AS i
         WHERE i.id = {} AND NOT EXISTS (SELECT 1 FROM integration_history AS h WHERE h.integration_id = i.id)",
        quote(entry.id)
    )
}

fn entry(id: &str) -> &'static IntegrationType {
    catalog::find(id).unwrap_or_else(|| panic!("migration seeds {id}, which the catalog does not declare"))
}

fn seed_values(entry: &IntegrationType) -> String {
    format!(
        "{}, {}, {}, {}",
        quote(entry.id),
        quote(entry.name),
        quote(entry.description),
        if entry.default_status { "true" } else { "false" }
    )
}

fn settings_json(entry: &IntegrationType) -> String {
    serde_json::Value::Object(entry.default_settings()).to_string()
}

fn keys_json(entry: &IntegrationType) -> String {
    serde_json::to_string(&entry.settings.iter().filter(|f| f.default.is_some()).map(|f| f.name).collect::<Vec<_>>())
        .expect("names serialize")
}

/// A standard SQL string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_consecutive_from_one() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, index as i64 + 1, "{}", migration.description);
        }
    }

    /// The SQL of every released migration, by digest. A migration a database may have run is
    /// never edited: a new change is a new version. Version 1 seeds from the catalog, so this
    /// also holds the original entries' names, descriptions and defaults to what 0.1.0 seeded.
    const RELEASED: &[(i64, &str, &str)] = &[
        (
            1,
            "99d698ef56728e8d5a5f93b45242c80c1f59d87dd3d41762962e6598c01c5a79",
            "5ae398544084306ddf59632bd5d287cd6f22468e5038785b3fd8ffb1b99ce6e5",
        ),
        (
            2,
            "d35df498acd776e57b8b271b66ac58eb35543119aba42d84821e2fd2a3649cc6",
            "fdb4edbd20fe332ba0eb30d782d238f273439b7efaaf387d0ea8cfa88773bee2",
        ),
        (
            3,
            "2589ced37b8829cae5e3e55c95e0272e12eb321aea07959fe7ab04aaddf200aa",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        (
            4,
            "0f47799417dd8038742daa655c7dc832d210bead5e2579f8e10cfc2c32c96105",
            "1b8dc7ff1e4957ae315157010a4e51d7e2612b84a24096374544c4f6129fca45",
        ),
        (
            5,
            "1dae35e556e8dc17854133371eec8b7f4c3564bca6f0dcafe113df1f7c713f67",
            "4623c9c37d92d6db08c9bf0891f2c733818028f11b6b9518c6f6329f6b9d3b32",
        ),
        (
            6,
            "12cee4e8bded8b22c70056f47c6c35b16604523d33ff5b0dd49c773257077e66",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        (
            7,
            "cfdc777b99e8cdbcc12e69cb8078d777983fb1bb6df79304839a8ddb8d9c4d53",
            "0e42e4ec19af6a827c089573e515bb478e249255f00a5ebf2d951c425c9e595b",
        ),
    ];

    fn digest(migration: &Migration, dialect: Dialect) -> String {
        use sha2::Digest;
        let text: Vec<String> = migration.steps.iter().flat_map(|step| statements(step, dialect)).collect();
        sha2::Sha256::digest(text.join("\n;\n").as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn released_migrations_are_never_edited() {
        for (version, postgres, sqlite) in RELEASED {
            let migration = &MIGRATIONS[*version as usize - 1];
            assert_eq!(digest(migration, Dialect::Postgres), *postgres, "migration {version} (PostgreSQL) was edited");
            assert_eq!(digest(migration, Dialect::Sqlite), *sqlite, "migration {version} (SQLite) was edited");
        }
    }

    /// Pins are consecutive from version 1; and on the commit a release is tagged from (its
    /// CHANGELOG.md section dated, no longer `## [Unreleased]`, which release.yml requires of a
    /// tag) every migration is released, so every one must be pinned above: otherwise a
    /// migration databases have run could be edited with no test noticing.
    #[test]
    fn a_release_pins_every_migration_it_ships() {
        let pinned: Vec<i64> = RELEASED.iter().map(|(version, ..)| *version).collect();
        assert_eq!(pinned, (1..=pinned.len() as i64).collect::<Vec<_>>(), "RELEASED is in version order from 1");
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../CHANGELOG.md");
        let changelog = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let heading = changelog.lines().find(|line| line.starts_with("## [")).expect("a CHANGELOG section");
        if !heading.starts_with("## [Unreleased]") {
            assert_eq!(
                pinned.len() as i64,
                LATEST,
                "CHANGELOG.md's `{heading}` is a release: pin each of its migrations in RELEASED (a row with \
                 empty digests makes released_migrations_are_never_edited print them)"
            );
        }
    }

    /// The PostgreSQL statements of `version`.
    fn postgres_of(version: i64) -> Vec<String> {
        MIGRATIONS[version as usize - 1].steps.iter().flat_map(|step| statements(step, Dialect::Postgres)).collect()
    }

    /// What a caller of `function` sees of its definition in `statement`: its arguments and its
    /// result, whitespace aside.
    fn signature(statement: &str, function: &str) -> String {
        let start = statement.find(&format!("FUNCTION {function}(")).expect("the function") + "FUNCTION ".len();
        let end = statement.find("LANGUAGE").expect("its language");
        statement[start..end].split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// Release 0.2.0 calls migration 3's `integrations_write` with 18 arguments and reads its
    /// twelve columns: version 4 redefines it with exactly that signature and result (a
    /// different one would be a new overload, or fail), as a call of the new function.
    #[test]
    fn version_4_keeps_the_write_function_release_0_2_0_calls() {
        let released = postgres_of(3).concat();
        let wrapper = postgres_of(4).into_iter().find(|s| s.contains("FUNCTION integrations_write(")).unwrap();
        assert!(wrapper.contains("CREATE OR REPLACE FUNCTION integrations_write("), "{wrapper}");
        assert_eq!(signature(&wrapper, "integrations_write"), signature(&released, "integrations_write"));
        let new = postgres_of(4).into_iter().find(|s| s.contains("FUNCTION integrations_write_as(")).unwrap();
        // The new one: the same, and the actor after the 18 arguments.
        let expected = signature(&released, "integrations_write")
            .replacen("integrations_write(", "integrations_write_as(", 1)
            .replacen("int8, int8)", "int8, int8, text)", 1);
        assert_eq!(signature(&new, "integrations_write_as"), expected);
        assert!(
            wrapper.contains("CASE WHEN $16 THEN 'admin_token' END"),
            "0.2.0's authenticated writes were admin_token's"
        );
    }

    fn plain_seeds() -> Vec<Seed> {
        CATALOG.iter().map(|entry| Seed { entry, settings: StoredSettings::plain(&entry.default_settings()) }).collect()
    }

    #[test]
    fn quoting_doubles_single_quotes() {
        assert_eq!(quote("it's"), "'it''s'");
    }

    #[test]
    fn the_postgres_script_applies_each_version_once_under_the_lock() {
        let script = postgres_script(&plain_seeds());
        assert!(script.starts_with("DO $migrate$") && script.contains("pg_advisory_xact_lock"));
        for migration in MIGRATIONS {
            let record = format!("VALUES ({})", migration.version);
            assert_eq!(script.matches(&record).count(), 1, "{record}");
        }
        assert!(script.contains(r#"'{"verify":"ai-chatbot-framework","secret":"","page_access_token":""}'::jsonb"#));
    }

    #[test]
    fn sqlite_runs_only_what_is_pending_then_the_catalog() {
        assert!(sqlite_statements(LATEST, &[]).is_empty());
        let from_one = sqlite_statements(1, &[]).join("\n");
        assert!(from_one.contains("integration_history") && !from_one.contains("'facebook'"));
        let seeds = sqlite_statements(LATEST, &plain_seeds());
        for entry in CATALOG {
            let inserts = format!("VALUES ({}", quote(entry.id));
            assert_eq!(
                seeds.iter().filter(|s| s.contains(&inserts) && s.contains("ON CONFLICT (id) DO NOTHING")).count(),
                1
            );
        }
        let rewrites = seeds.iter().filter(|statement| statement.starts_with("UPDATE"));
        assert!(rewrites.clone().all(|statement| statement.contains("settings_key = NULL")), "plain seeds stay plain");
        assert_eq!(rewrites.count(), 2 * CATALOG.len(), "the row and the first version of each");
    }

    #[test]
    fn sealed_seeds_seal_the_rows_version_1_left_in_plain() {
        let seeds: Vec<Seed> = plain_seeds()
            .into_iter()
            .map(|seed| Seed { settings: StoredSettings { text: "CIPHER".into(), key: Some("k1".into()) }, ..seed })
            .collect();
        let script = postgres_script(&seeds);
        for entry in CATALOG {
            let id = quote(entry.id);
            for table in ["integrations", "integration_history"] {
                let update = format!("UPDATE {table} SET settings = 'CIPHER', settings_key = 'k1'");
                assert!(script.lines().any(|line| line.contains(&update) && line.contains(&id)), "{table} {id}");
            }
        }
        assert!(script.contains("version = 1 AND settings_key IS NULL"), "only rows no write has touched");
    }

    #[test]
    fn a_missing_catalog_row_puts_the_database_behind() {
        assert!(!is_behind(LATEST, CATALOG.len() as i64));
        assert!(is_behind(LATEST, CATALOG.len() as i64 - 1));
        assert!(is_behind(LATEST - 1, CATALOG.len() as i64));
        assert!(catalog_rows().contains("'facebook', 'chat_widget'"));
    }
}
