//! A database role per district, on the real Postgres (password authentication over TCP, as
//! hack/pg/up.sh sets it up): what a district's credential can and cannot do to another
//! district's rows and to the schema, the sync refusing another district's manifest, offboarding
//! (`deletionPolicy: Delete`) and the history retention.
mod common;

use std::time::Duration;

use rostersync::api::{RosterConnectionSpec, RunResult};
use rostersync::devtools::emulator::EmulatorHandle;
use rostersync::store::tenancy::{self, Credential, Prepared, TENANT_ADMIN_TABLES, TENANT_TABLES};
use rostersync::sync::clever_source::CleverSource;
use rostersync::sync::{SyncRequest, run_sync};
use sqlx::PgPool;

const A: &str = "district-a/clever";
const B: &str = "district-b/clever";

fn spec(emu: &EmulatorHandle) -> RosterConnectionSpec {
    common::clever_spec(emu)
}

/// A manual run of the emulator's district for `connection`.
fn request(emu: &EmulatorHandle, connection: &str) -> SyncRequest {
    SyncRequest {
        connection: connection.parse().expect("connection key"),
        ..common::sync_request(spec(emu))
    }
}

fn source(emu: &EmulatorHandle) -> CleverSource {
    common::clever_source(emu, 500)
}

/// Every roster row of a connection with its row version (xmin): equal snapshots mean not one
/// row was written.
async fn snapshot(owner: &PgPool, connection: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT v FROM (
            SELECT 's:' || clever_id || ':' || xmin::text v FROM schools WHERE connection = $1 UNION ALL
            SELECT 'c:' || clever_id || ':' || xmin::text FROM classrooms WHERE connection = $1 UNION ALL
            SELECT 'e:' || clever_id || ':' || xmin::text FROM educators WHERE connection = $1 UNION ALL
            SELECT 'k:' || id || ':' || xmin::text FROM children WHERE connection = $1 UNION ALL
            SELECT 'n:' || child_id || ':' || xmin::text FROM enrollments WHERE connection = $1 UNION ALL
            SELECT 'r:' || run_id || ':' || xmin::text FROM sync_runs WHERE connection = $1 UNION ALL
            SELECT 'p:' || id || ':' || xmin::text FROM sync_problems
                WHERE connection = $1) x ORDER BY v",
    )
    .bind(connection)
    .fetch_all(owner)
    .await
    .expect("snapshot")
}

struct Setup {
    owner: PgPool,
    owner_url: String,
    prepared: Prepared,
    emu: EmulatorHandle,
}

async fn setup(students: u32) -> Option<Setup> {
    let db = common::fresh_db().await?;
    rostersync::store::migrate(&db.pool).await.expect("migrate");
    let prepared = tenancy::prepare(&db.pool).await.expect("prepare roles");
    // Idempotent: the controller runs it at every start.
    tenancy::prepare(&db.pool)
        .await
        .expect("prepare roles again");
    let emu = common::clever_emulator(students).await;
    Some(Setup {
        owner: db.pool,
        owner_url: db.url,
        prepared,
        emu,
    })
}

impl Setup {
    async fn provision(&self, connection: &str) -> (Credential, PgPool) {
        let cred = tenancy::provision(&self.owner, &self.prepared, connection, &self.owner_url)
            .await
            .expect("provision");
        let pool = rostersync::store::connect(&cred.url, 2)
            .await
            .expect("a district role connects with its own URL");
        (cred, pool)
    }
}

async fn count(pool: &PgPool, sql: &str, connection: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(connection)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn affected(pool: &PgPool, sql: &str, connection: &str) -> u64 {
    sqlx::query(sql)
        .bind(connection)
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .rows_affected()
}

/// The SQLSTATE of a statement that must fail (on a pool or in a transaction).
async fn refused<'e>(executor: impl sqlx::PgExecutor<'e>, sql: &str) -> String {
    match sqlx::query(sql).execute(executor).await {
        Ok(r) => panic!(
            "{sql} succeeded ({} rows) but must be refused",
            r.rows_affected()
        ),
        Err(sqlx::Error::Database(e)) => e.code().map(|c| c.into_owned()).unwrap_or_default(),
        Err(e) => panic!("{sql}: unexpected error {e}"),
    }
}

/// A reference checked once per statement holds what it names until its transaction ends: while
/// a transaction that ran `add` is open, `delete` waits (here: times out, 55P03). The adding
/// transaction is then committed.
async fn held_until_commit(pool: &PgPool, add: &str, delete: &str) {
    let mut adding = pool.begin().await.expect("begin");
    sqlx::query(add).execute(&mut *adding).await.expect(add);
    let mut deleting = pool.begin().await.expect("begin");
    sqlx::query("SET LOCAL lock_timeout = '200ms'")
        .execute(&mut *deleting)
        .await
        .expect("lock timeout");
    assert_eq!(
        refused(&mut *deleting, delete).await,
        "55P03",
        "{delete} waits for the transaction that ran {add}"
    );
    deleting.rollback().await.expect("rollback");
    adding.commit().await.expect("commit");
}

/// A triggered cascade's snapshot could miss rows committed meanwhile under REPEATABLE READ:
/// `delete` is refused there as a serialization failure (40001).
async fn refused_under_repeatable_read(pool: &PgPool, delete: &str) {
    let mut repeatable = pool.begin().await.expect("begin");
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *repeatable)
        .await
        .expect("isolation");
    assert_eq!(refused(&mut *repeatable, delete).await, "40001", "{delete}");
    repeatable.rollback().await.expect("rollback");
}

/// Adds a classroom (as the owner).
async fn add_classroom(owner: &PgPool, connection: &str, clever_id: &str) {
    sqlx::query(
        "INSERT INTO classrooms (connection, clever_id, school_clever_id, roster_name, display_name)
         VALUES ($1, $2, 's', 'Room', 'Room')",
    )
    .bind(connection)
    .bind(clever_id)
    .execute(owner)
    .await
    .expect("add a classroom");
}

/// A harmless assignment of one of the table's columns (for an UPDATE that changes nothing).
fn noop_set(table: &str) -> &'static str {
    match table {
        "sync_runs" | "sync_problems" => "message = message",
        _ => "active = active",
    }
}

#[tokio::test]
async fn a_district_credential_reaches_only_its_own_rows() {
    let Some(s) = setup(400).await else { return };
    let (cred_a, pool_a) = s.provision(A).await;
    let (_, pool_b) = s.provision(B).await;
    for (pool, connection) in [(&pool_a, A), (&pool_b, B)] {
        let run = run_sync(pool, &request(&s.emu, connection), &source(&s.emu))
            .await
            .expect("a sync with the district's own credential");
        assert_eq!(run.result, RunResult::Succeeded, "{:?}", run.message);
        assert!(run.counts.children.created > 0);
    }
    let b_before = snapshot(&s.owner, B).await;
    assert!(b_before.len() > 10, "B has a roster");

    // A district role may not ANALYZE the tables it writes (only their owner may): it refreshes
    // the roster statistics after a first sync through the owner's function, granted to the
    // district group and to no one else.
    let analyzed = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'children'",
        )
        .fetch_one(&s.owner)
        .await
        .expect("analyze count")
    };
    let before = analyzed().await;
    sqlx::query("SELECT rs_analyze_roster_table('children', ARRAY['connection', 'clever_id'])")
        .execute(&pool_a)
        .await
        .expect("a district role refreshes the roster statistics");
    assert_eq!(analyzed().await, before + 1);
    assert_eq!(
        refused(
            &pool_a,
            "SELECT rs_analyze_roster_table('rs_tenants', NULL)"
        )
        .await,
        "22023"
    );
    let public: bool = sqlx::query_scalar(
        "SELECT has_function_privilege('public', 'rs_analyze_roster_table(text, text[])', 'EXECUTE')",
    )
    .fetch_one(&s.owner)
    .await
    .expect("privilege");
    assert!(!public, "PUBLIC may not run the owner's ANALYZE");

    for table in TENANT_TABLES {
        let filter = "connection = $1";
        let select = format!("SELECT count(*) FROM {table} WHERE {filter}");
        assert!(
            count(&pool_a, &select, A).await > 0,
            "A sees its own {table}"
        );
        assert_eq!(count(&pool_a, &select, B).await, 0, "A sees B's {table}");
        let set = noop_set(table);
        let update = format!("UPDATE {table} SET {set} WHERE {filter}");
        assert_eq!(
            affected(&pool_a, &update, B).await,
            0,
            "A updates B's {table}"
        );
        let delete = format!("DELETE FROM {table} WHERE {filter}");
        assert_eq!(
            affected(&pool_a, &delete, B).await,
            0,
            "A deletes B's {table}"
        );
        // B's own credential still sees its rows (the filter is per role, not per table).
        assert!(
            count(
                &pool_b,
                &format!("SELECT count(*) FROM {table} WHERE {filter}"),
                B
            )
            .await
                > 0
        );
    }
    // Writing a row of B's is refused outright (the policy's WITH CHECK).
    let forged =
        format!("INSERT INTO schools (connection, clever_id, name) VALUES ('{B}', 'forged', 'x')");
    assert_eq!(refused(&pool_a, &forged).await, "42501");
    let moved = format!("UPDATE schools SET connection = '{B}' WHERE connection = '{A}'");
    assert_eq!(refused(&pool_a, &moved).await, "42501");
    // A problem is checked the same way, and must belong to a run of its own connection: A can
    // neither file one under B's connection nor attach one of its own to B's run.
    let b_run: String = sqlx::query_scalar("SELECT run_id FROM sync_runs WHERE connection = $1")
        .bind(B)
        .fetch_one(&s.owner)
        .await
        .expect("B's run");
    let forged_problem = |connection: &str| {
        format!(
            "INSERT INTO sync_problems (run_id, connection, record_kind, code, message)
             VALUES ('{b_run}', '{connection}', 'students', 'X', 'forged')"
        )
    };
    assert_eq!(refused(&pool_a, &forged_problem(B)).await, "42501");
    assert_eq!(refused(&pool_a, &forged_problem(A)).await, "23503");
    // An enrollment names a classroom of its own connection: A cannot move one of its children
    // into a classroom only B has (the check runs with the owner's rights, so it sees B's
    // classroom; the key includes the connection).
    add_classroom(&s.owner, B, "b-only").await;
    let a_child: i64 =
        sqlx::query_scalar("SELECT child_id FROM enrollments WHERE connection = $1 LIMIT 1")
            .bind(A)
            .fetch_one(&s.owner)
            .await
            .expect("an enrollment of A's");
    let moved_in =
        format!("UPDATE enrollments SET classroom_clever_id = 'b-only' WHERE child_id = {a_child}");
    assert_eq!(refused(&pool_a, &moved_in).await, "23503");
    sqlx::query("DELETE FROM classrooms WHERE clever_id = 'b-only'")
        .execute(&s.owner)
        .await
        .expect("B's extra classroom removed");
    // No DDL, no other tables, no way around the filter.
    for sql in [
        "CREATE TABLE stolen (i int)",
        "ALTER TABLE children ADD COLUMN stolen int",
        "ALTER TABLE children DISABLE ROW LEVEL SECURITY",
        "DROP POLICY own_connection ON children",
        "DROP TABLE enrollments",
        "TRUNCATE children",
        "SELECT * FROM rs_tenants",
        "SELECT * FROM email_outbox",
        "UPDATE rs_tenants SET connection = 'district-b/clever'",
    ] {
        assert_eq!(refused(&pool_a, sql).await, "42501", "{sql}");
    }
    // SET ROLE to the group changes current_user, not session_user: still only A's rows.
    let mut conn = pool_a.acquire().await.expect("connection");
    sqlx::query(&format!("SET ROLE {}", s.prepared.group_role))
        .execute(&mut *conn)
        .await
        .expect("set role");
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM children WHERE connection = $1")
        .bind(B)
        .fetch_one(&mut *conn)
        .await
        .expect("select");
    assert_eq!(seen, 0);
    drop(conn);
    // A blanket delete with A's credential removes A's rows only.
    let all = affected(&pool_a, "DELETE FROM enrollments WHERE $1 <> ''", A).await;
    assert!(all > 0);
    assert_eq!(
        snapshot(&s.owner, B).await,
        b_before,
        "B's roster is unchanged"
    );

    // The password is checked: the role's URL with another password does not connect.
    let mut wrong = url::Url::parse(&cred_a.url).expect("url");
    wrong
        .set_password(Some("0123456789abcdef0123456789abcdef"))
        .expect("password");
    let err = rostersync::store::connect(wrong.as_str(), 1)
        .await
        .expect_err("a wrong password is refused");
    assert!(err.to_string().contains("password"), "{err}");
}

#[tokio::test]
async fn the_sync_refuses_another_districts_manifest_and_changes_nothing() {
    let Some(s) = setup(200).await else { return };
    let (cred_a, _) = s.provision(A).await;
    let (_, pool_b) = s.provision(B).await;
    let run = run_sync(&pool_b, &request(&s.emu, B), &source(&s.emu))
        .await
        .expect("B syncs");
    assert_eq!(run.result, RunResult::Succeeded);
    let b_before = snapshot(&s.owner, B).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = dir.path().join("b.yaml");
    let doc = serde_json::json!({
        "apiVersion": "rostersync.io/v1alpha1", "kind": "RosterConnection",
        "metadata": {"namespace": "district-b", "name": "clever"}, "spec": spec(&s.emu),
    });
    std::fs::write(&manifest, serde_yaml_ng::to_string(&doc).expect("yaml")).expect("write");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rostersync"))
        .args(["sync", "--connection-file"])
        .arg(&manifest)
        .env("DATABASE_URL", &cred_a.url)
        .env("CLEVER_TOKEN", s.emu.token())
        .env_remove("CLEVER_CLIENT_ID")
        .output()
        .await
        .expect("run rostersync");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "not retriable: {stderr}");
    assert!(
        stderr.contains("belongs to connection district-a/clever, not district-b/clever"),
        "{stderr}"
    );
    assert!(!stderr.contains(&cred_a.url), "the URL is not printed");
    assert_eq!(
        snapshot(&s.owner, B).await,
        b_before,
        "B's roster is unchanged"
    );
    // Even with --migrate: a district role cannot run DDL.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rostersync"))
        .args(["sync", "--migrate", "--connection-file"])
        .arg(&manifest)
        .env("DATABASE_URL", &cred_a.url)
        .env("CLEVER_TOKEN", s.emu.token())
        .env_remove("CLEVER_CLIENT_ID")
        .output()
        .await
        .expect("run rostersync");
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(snapshot(&s.owner, B).await, b_before);
}

#[tokio::test]
async fn every_table_with_district_rows_has_row_security() {
    let Some(s) = setup(10).await else { return };
    // Tables with a `connection` column that only the controller touches.
    let controller_only = ["email_outbox", "notification_state", "rs_tenants"];
    let with_connection: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND column_name = 'connection' ORDER BY 1",
    )
    .fetch_all(&s.owner)
    .await
    .expect("columns");
    for table in &with_connection {
        assert!(
            TENANT_TABLES.contains(&table.as_str())
                || TENANT_ADMIN_TABLES.contains(&table.as_str())
                || controller_only.contains(&table.as_str()),
            "table {table} holds district rows but is not in store::tenancy::TENANT_TABLES: add it \
             there and give it a row-level security policy in a migration"
        );
    }
    for table in TENANT_TABLES.iter().chain(&TENANT_ADMIN_TABLES) {
        let (rls, policies): (bool, i64) = sqlx::query_as(
            "SELECT c.relrowsecurity, (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)
             FROM pg_class c WHERE c.relname = $1 AND c.relnamespace = current_schema()::regnamespace",
        )
        .bind(table)
        .fetch_one(&s.owner)
        .await
        .expect("pg_class");
        assert!(
            rls && policies >= 1,
            "{table}: row security {rls}, {policies} policies"
        );
    }
}

#[tokio::test]
async fn offboarding_deletes_one_districts_roster_and_role() {
    let Some(s) = setup(300).await else { return };
    let (cred_a, pool_a) = s.provision(A).await;
    let (_, pool_b) = s.provision(B).await;
    for (pool, connection) in [(&pool_a, A), (&pool_b, B)] {
        run_sync(pool, &request(&s.emu, connection), &source(&s.emu))
            .await
            .expect("sync");
    }
    pool_a.close().await;
    let b_before = snapshot(&s.owner, B).await;
    let runs_a = count(
        &s.owner,
        "SELECT count(*) FROM sync_runs WHERE connection = $1",
        A,
    )
    .await;

    let deleted = tenancy::delete_roster(&s.owner, A).await.expect("delete");
    assert!(deleted.children > 0 && deleted.schools > 0 && deleted.classrooms > 0);
    tenancy::deprovision(&s.owner, &s.prepared, A)
        .await
        .expect("deprovision");
    // Twice is fine (a retried offboarding).
    tenancy::deprovision(&s.owner, &s.prepared, A)
        .await
        .expect("deprovision again");

    for table in [
        "children",
        "enrollments",
        "classrooms",
        "educators",
        "schools",
    ] {
        let left = count(
            &s.owner,
            &format!("SELECT count(*) FROM {table} WHERE connection = $1"),
            A,
        )
        .await;
        assert_eq!(left, 0, "{table} rows of A left");
    }
    assert_eq!(
        snapshot(&s.owner, B).await,
        b_before,
        "B's roster is unchanged"
    );
    // The history stays for the retention period.
    assert_eq!(
        count(
            &s.owner,
            "SELECT count(*) FROM sync_runs WHERE connection = $1",
            A
        )
        .await,
        runs_a
    );
    let role_left = count(
        &s.owner,
        "SELECT count(*) FROM pg_roles WHERE rolname = $1",
        &cred_a.role,
    )
    .await;
    assert_eq!(role_left, 0, "A's role is dropped");
    assert!(rostersync::store::connect(&cred_a.url, 1).await.is_err());
    assert_eq!(
        tenancy::current_fingerprint(&s.owner, &s.prepared, A)
            .await
            .expect("lookup"),
        None
    );
}

#[tokio::test]
async fn a_new_password_replaces_the_old_one() {
    let Some(s) = setup(10).await else { return };
    let (first, pool) = s.provision(A).await;
    pool.close().await;
    assert_eq!(
        tenancy::current_fingerprint(&s.owner, &s.prepared, A)
            .await
            .expect("lookup"),
        Some(first.fingerprint.clone())
    );
    let (second, _) = s.provision(A).await;
    assert_eq!(first.role, second.role);
    assert_ne!(first.fingerprint, second.fingerprint);
    assert!(
        rostersync::store::connect(&first.url, 1).await.is_err(),
        "the old password is gone"
    );
    assert_eq!(
        tenancy::current_fingerprint(&s.owner, &s.prepared, A)
            .await
            .expect("lookup"),
        Some(second.fingerprint)
    );
}

#[tokio::test]
async fn the_schema_check_names_the_missing_migration() {
    let Some(db) = common::fresh_db().await else {
        return;
    };
    let err = rostersync::store::check_schema(&db.pool)
        .await
        .expect_err("an empty database is behind");
    assert!(err.to_string().contains("rostersync migrate"), "{err}");
    rostersync::store::migrate(&db.pool).await.expect("migrate");
    rostersync::store::check_schema(&db.pool)
        .await
        .expect("current");
}

#[tokio::test]
async fn history_retention_prunes_only_old_finished_runs_and_sent_emails() {
    let Some(db) = common::fresh_db().await else {
        return;
    };
    rostersync::store::migrate(&db.pool).await.expect("migrate");
    for (id, result, age_days) in [
        ("old-done", "Succeeded", 500),
        ("old-running", "Running", 500),
        ("new-done", "Failed", 10),
    ] {
        sqlx::query(
            "INSERT INTO sync_runs (run_id, connection, trigger, result, started_at, finished_at)
             VALUES ($1, 'ns/c', 'Manual', $2, now() - make_interval(days => $3),
                     CASE WHEN $2 = 'Running' THEN NULL ELSE now() - make_interval(days => $3) END)",
        )
        .bind(id)
        .bind(result)
        .bind(age_days)
        .execute(&db.pool)
        .await
        .expect("insert run");
        sqlx::query(
            "INSERT INTO sync_problems (run_id, connection, record_kind, code, message)
             VALUES ($1, 'ns/c', 'student', 'X', 'm')",
        )
        .bind(id)
        .execute(&db.pool)
        .await
        .expect("insert problem");
    }
    for (sent, age_days) in [(true, 500), (false, 500), (true, 10)] {
        sqlx::query(
            "INSERT INTO email_outbox (connection, kind, fingerprint, recipients, subject, body_text,
                                       body_html, created_at, sent_at)
             VALUES ('ns/c', 'RunFailed', 'f', ARRAY['ops@example.org'], 's', 't', 'h',
                     now() - make_interval(days => $1), CASE WHEN $2 THEN now() END)",
        )
        .bind(age_days)
        .bind(sent)
        .execute(&db.pool)
        .await
        .expect("insert email");
    }
    let pruned = tenancy::prune_history(&db.pool, Duration::from_secs(400 * 86_400))
        .await
        .expect("prune");
    assert_eq!((pruned.runs, pruned.emails), (1, 1));
    let runs: Vec<String> = sqlx::query_scalar("SELECT run_id FROM sync_runs ORDER BY run_id")
        .fetch_all(&db.pool)
        .await
        .expect("runs");
    assert_eq!(runs, ["new-done", "old-running"]);
    let problems: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_problems")
        .fetch_one(&db.pool)
        .await
        .expect("problems");
    assert_eq!(problems, 2, "the pruned run's problems went with it");
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM email_outbox WHERE sent_at IS NULL")
            .fetch_one(&db.pool)
            .await
            .expect("emails");
    assert_eq!(pending, 1, "a pending email is never pruned");
}

/// A run's problems are checked once per statement (migration
/// `20261130230000_sync_problems_checked_per_statement`), with what the foreign key they replace
/// guaranteed: no problem without its run (of the same connection), a run that is getting problems
/// cannot be deleted until they commit, deleting (or truncating) runs deletes their problems,
/// and a run's identity never changes.
#[tokio::test]
async fn a_problem_needs_its_run_and_goes_with_it() {
    let Some(db) = common::fresh_db().await else {
        return;
    };
    rostersync::store::migrate(&db.pool).await.expect("migrate");
    for (id, connection) in [("r-a", "ns/a"), ("r-b", "ns/b")] {
        sqlx::query(
            "INSERT INTO sync_runs (run_id, connection, trigger, result, started_at, finished_at)
             VALUES ($1, $2, 'Manual', 'Succeeded', now(), now())",
        )
        .bind(id)
        .bind(connection)
        .execute(&db.pool)
        .await
        .expect("insert run");
    }
    let problem = |run: &str, connection: &str| {
        format!(
            "INSERT INTO sync_problems (run_id, connection, record_kind, code, message)
             VALUES ('{run}', '{connection}', 'students', 'X', 'm')"
        )
    };
    assert_eq!(
        refused(&db.pool, &problem("r-missing", "ns/a")).await,
        "23503"
    );
    assert_eq!(refused(&db.pool, &problem("r-a", "ns/b")).await, "23503");
    for sql in [problem("r-a", "ns/a"), problem("r-b", "ns/b")] {
        sqlx::query(&sql).execute(&db.pool).await.expect(&sql);
    }
    // A problem as a release before the connection column writes it (a Job still running during
    // an upgrade, an older dump restored) gets its run's connection; without a run it is refused.
    let old_release = |run: &str| {
        format!(
            "INSERT INTO sync_problems (run_id, record_kind, code, message)
             VALUES ('{run}', 'students', 'X', 'old')"
        )
    };
    sqlx::query(&old_release("r-b"))
        .execute(&db.pool)
        .await
        .expect("an earlier release's problem");
    let filled: String =
        sqlx::query_scalar("SELECT connection FROM sync_problems WHERE message = 'old'")
            .fetch_one(&db.pool)
            .await
            .expect("filled");
    assert_eq!(filled, "ns/b");
    assert_eq!(refused(&db.pool, &old_release("r-missing")).await, "23502");
    assert_eq!(
        refused(
            &db.pool,
            "UPDATE sync_problems SET run_id = 'r-missing' WHERE run_id = 'r-b'"
        )
        .await,
        "23503"
    );
    assert_eq!(
        refused(
            &db.pool,
            "UPDATE sync_runs SET connection = 'ns/b' WHERE run_id = 'r-a'"
        )
        .await,
        "23503"
    );

    // A transaction adding problems to r-a holds r-a: deleting it waits until that transaction
    // ends, and then takes the problems with it.
    held_until_commit(
        &db.pool,
        &problem("r-a", "ns/a"),
        "DELETE FROM sync_runs WHERE run_id = 'r-a'",
    )
    .await;
    let deleted = sqlx::query("DELETE FROM sync_runs WHERE run_id = 'r-a'")
        .execute(&db.pool)
        .await
        .expect("delete the run");
    assert_eq!(deleted.rows_affected(), 1);
    let left: Vec<(String, String)> =
        sqlx::query_as("SELECT run_id, message FROM sync_problems ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .expect("problems");
    assert_eq!(
        left,
        [("r-b".into(), "m".into()), ("r-b".into(), "old".into())],
        "r-a's problems went with it"
    );
    refused_under_repeatable_read(&db.pool, "DELETE FROM sync_runs WHERE run_id = 'r-b'").await;
    sqlx::query("TRUNCATE sync_runs")
        .execute(&db.pool)
        .await
        .expect("truncate the runs");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_problems")
        .fetch_one(&db.pool)
        .await
        .expect("problems");
    assert_eq!(left, 0, "truncating the runs truncates their problems");
}

#[tokio::test]
async fn an_enrollment_needs_its_classroom_and_goes_with_it() {
    let Some(db) = common::fresh_db().await else {
        return;
    };
    rostersync::store::migrate(&db.pool).await.expect("migrate");
    for (connection, classroom) in [("ns/a", "c1"), ("ns/a", "c3"), ("ns/b", "c2")] {
        add_classroom(&db.pool, connection, classroom).await;
    }
    let mut children = Vec::new();
    for connection in ["ns/a", "ns/a", "ns/a", "ns/b"] {
        let id: i64 =
            sqlx::query_scalar("INSERT INTO children (connection) VALUES ($1) RETURNING id")
                .bind(connection)
                .fetch_one(&db.pool)
                .await
                .expect("insert child");
        children.push(id);
    }
    let [a1, a2, a3, b1] = children[..] else {
        unreachable!("four children")
    };
    let enroll = |rows: &[(i64, &str, &str)]| {
        let values: Vec<String> = rows
            .iter()
            .map(|(child, connection, classroom)| {
                format!("({child}, '{connection}', '{classroom}')")
            })
            .collect();
        format!(
            "INSERT INTO enrollments (child_id, connection, classroom_clever_id) VALUES {}",
            values.join(", ")
        )
    };
    // A classroom that does not exist, or exists only in another connection, is refused, and one
    // bad row refuses the whole statement.
    assert_eq!(
        refused(&db.pool, &enroll(&[(a1, "ns/a", "missing")])).await,
        "23503"
    );
    assert_eq!(
        refused(&db.pool, &enroll(&[(a1, "ns/a", "c2")])).await,
        "23503"
    );
    assert_eq!(
        refused(&db.pool, &enroll(&[(a1, "ns/a", "c1"), (a2, "ns/a", "c2")])).await,
        "23503"
    );
    let enrolled = || async {
        sqlx::query_as::<_, (i64, String)>(
            "SELECT child_id, classroom_clever_id FROM enrollments ORDER BY child_id",
        )
        .fetch_all(&db.pool)
        .await
        .expect("enrollments")
    };
    assert!(
        enrolled().await.is_empty(),
        "nothing of a refused statement stays"
    );
    let sql = enroll(&[(a1, "ns/a", "c1"), (a3, "ns/a", "c3"), (b1, "ns/b", "c2")]);
    sqlx::query(&sql).execute(&db.pool).await.expect(&sql);
    // Moving an enrollment is checked the same way; the child stays a foreign key.
    assert_eq!(
        refused(
            &db.pool,
            &format!("UPDATE enrollments SET classroom_clever_id = 'c2' WHERE child_id = {a1}")
        )
        .await,
        "23503"
    );
    assert_eq!(
        refused(&db.pool, &enroll(&[(-1, "ns/a", "c1")])).await,
        "23503"
    );
    // A classroom's key never changes; its other columns do.
    assert_eq!(
        refused(
            &db.pool,
            "UPDATE classrooms SET clever_id = 'c9' WHERE clever_id = 'c1'"
        )
        .await,
        "23503"
    );
    sqlx::query("UPDATE classrooms SET display_name = 'Sunflowers' WHERE clever_id = 'c1'")
        .execute(&db.pool)
        .await
        .expect("a classroom's name changes");

    // An update of other columns takes no lock on the classroom (so it cannot deadlock with the
    // classroom's deletion), as with the foreign key; one that moves an enrollment holds its new
    // classroom until it ends.
    for (update, holds) in [
        (
            format!("UPDATE enrollments SET active = false WHERE child_id = {a3}"),
            false,
        ),
        (
            format!("UPDATE enrollments SET classroom_clever_id = 'c3' WHERE child_id = {a1}"),
            true,
        ),
    ] {
        let mut updating = db.pool.begin().await.expect("begin");
        sqlx::query(&update)
            .execute(&mut *updating)
            .await
            .expect(&update);
        let locking =
            sqlx::query("SELECT 1 FROM classrooms WHERE clever_id = 'c3' FOR UPDATE NOWAIT")
                .execute(&db.pool)
                .await;
        match (holds, locking) {
            (false, Ok(_)) => {}
            (true, Err(sqlx::Error::Database(e))) if e.code().as_deref() == Some("55P03") => {}
            (_, other) => panic!("{update}: holds c3 = {holds}, but locking it gave {other:?}"),
        }
        updating.rollback().await.expect("rollback");
    }

    // A transaction enrolling a child in c1 holds c1: deleting it waits until that transaction
    // ends, and then takes every enrollment in it along.
    held_until_commit(
        &db.pool,
        &enroll(&[(a2, "ns/a", "c1")]),
        "DELETE FROM classrooms WHERE clever_id = 'c1'",
    )
    .await;
    assert_eq!(enrolled().await.len(), 4);
    let deleted = sqlx::query("DELETE FROM classrooms WHERE clever_id = 'c1'")
        .execute(&db.pool)
        .await
        .expect("delete the classroom");
    assert_eq!(deleted.rows_affected(), 1);
    assert_eq!(
        enrolled().await,
        [(a3, "c3".to_string()), (b1, "c2".to_string())],
        "c1's enrollments went with it"
    );
    refused_under_repeatable_read(&db.pool, "DELETE FROM classrooms WHERE clever_id = 'c2'").await;
    refused_under_repeatable_read(&db.pool, "TRUNCATE classrooms, enrollments").await;
    // Truncating classrooms alone is refused while enrollments name them, as the foreign key
    // refused it; both together are truncated.
    assert_eq!(refused(&db.pool, "TRUNCATE classrooms").await, "0A000");
    assert_eq!(
        enrolled().await.len(),
        2,
        "the refused truncate changed nothing"
    );
    sqlx::query("TRUNCATE classrooms, enrollments")
        .execute(&db.pool)
        .await
        .expect("truncate both");
    assert!(enrolled().await.is_empty());
}
