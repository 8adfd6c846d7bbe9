//! The store: migrations, and `rostersync migrate` / `rostersync history` through the binary.
mod common;

#[tokio::test]
async fn migrations_apply_twice_and_history_lists_runs_as_table_and_json() {
    let Some(db) = common::fresh_db().await else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_rostersync");
    for _ in 0..2 {
        let out = std::process::Command::new(bin)
            .args(["migrate", "--database-url", &db.url])
            .output()
            .expect("migrate");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_name NOT LIKE '\\_%' ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .expect("tables");
    for table in [
        "children",
        "classrooms",
        "educators",
        "enrollments",
        "schools",
        "sync_problems",
        "sync_runs",
    ] {
        assert!(
            tables.iter().any(|t| t == table),
            "{table} missing from {tables:?}"
        );
    }

    sqlx::query(
        "INSERT INTO sync_runs (run_id, connection, trigger, started_at, finished_at, result, counts, problems, reason, message) VALUES
         ('r1', 'ns/a', 'Scheduled', now() - interval '2 hours', now() - interval '119 minutes', 'Succeeded',
          '{\"children\": {\"created\": 5}}', 0, 'Synced', 'ok'),
         ('r2', 'ns/b', 'Manual', now() - interval '1 hour', now() - interval '59 minutes', 'Held', '{}', 2, 'RemovalGuard', 'held'),
         ('r3', 'ns/a', 'CatchUp', now(), NULL, 'Running', '{}', 0, NULL, NULL)",
    )
    .execute(&db.pool)
    .await
    .expect("runs");

    let out = std::process::Command::new(bin)
        .args([
            "history",
            "--database-url",
            &db.url,
            "--connection",
            "ns/a",
            "--output",
            "json",
        ])
        .output()
        .expect("history");
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["kind"], "RunList", "the shared list document");
    let runs = &doc["items"];
    let ids: Vec<&str> = runs
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["runId"].as_str())
        .collect();
    assert_eq!(ids, ["r3", "r1"], "newest first, one connection");
    assert_eq!(runs[1]["counts"]["children"]["created"], 5);

    let out = std::process::Command::new(bin)
        .args(["history", "--database-url", &db.url, "--limit", "2"])
        .output()
        .expect("history");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("RUN ID"), "{table}");
    assert_eq!(table.lines().count(), 3, "header + 2 runs: {table}");
    assert!(table.contains("RemovalGuard: held"), "{table}");
}

/// A run id is only used with its connection: another connection can neither read, finish, mark
/// nor restart it (starting it is refused, `RunIdTaken`, and nothing of the first run changes), and
/// a lost-pod record under another connection leaves it alone.
#[tokio::test]
async fn a_run_id_is_checked_with_its_connection_on_every_read_and_write() {
    use rostersync::run::{ConnectionKey, Counts, ProblemCodes, RunResult, Trigger};
    use rostersync::store::StoreError;
    use rostersync::store::runs::{self, Finish, LostPod, RunStart};
    let Some(db) = common::fresh_db().await else {
        return;
    };
    let a = ConnectionKey::new("district-a", "springfield").expect("key");
    let b = ConnectionKey::new("district-b", "shelbyville").expect("key");
    let start = |connection: &ConnectionKey| RunStart {
        run_id: "shared-id".into(),
        connection: connection.clone(),
        trigger: Trigger::Manual,
        schedule: Some("nightly".into()),
        job: Some("nightly-now-1".into()),
        dry_run: false,
    };
    rostersync::store::migrate(&db.pool).await.expect("migrate");
    let mut conn = db.pool.acquire().await.expect("acquire");
    runs::start(&mut conn, &start(&a)).await.expect("a starts");
    let counts = Counts::default();
    let codes = ProblemCodes::new();
    let finish = Finish {
        result: RunResult::Succeeded,
        retriable: false,
        counts: &counts,
        problem_codes: &codes,
        reason: "Synced",
        message: "ok",
        timings: serde_json::json!({}),
        clever: rostersync::run::CleverRequests {
            requests: 12,
            retries: 3,
            rate_limited: 1,
        },
    };
    runs::finish(&mut conn, &a, "shared-id", &finish)
        .await
        .expect("a finishes");
    let before = runs::by_id(&mut *conn, &a, "shared-id")
        .await
        .expect("read")
        .expect("a's run");
    assert_eq!(
        before.clever, finish.clever,
        "what the run cost Clever is kept"
    );

    // B: reads nothing, writes nothing.
    assert!(
        runs::by_id(&mut *conn, &b, "shared-id")
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        runs::problems(&mut *conn, &b, "shared-id")
            .await
            .expect("read")
            .is_empty()
    );
    let taken = runs::start(&mut conn, &start(&b)).await;
    assert!(
        matches!(taken, Err(StoreError::RunIdTaken { .. })),
        "{taken:?}"
    );
    // Another connection's run is never finished (no row updated).
    assert!(matches!(
        runs::finish(&mut conn, &b, "shared-id", &finish).await,
        Ok(false)
    ));
    assert!(
        !runs::mark_notified(&mut conn, &b, "shared-id")
            .await
            .expect("mark")
    );
    runs::record_lost_pod(
        &mut conn,
        &LostPod {
            run_id: "shared-id",
            connection: &b,
            schedule: "nightly",
            trigger: Trigger::Manual,
            job: "x",
            started_at: jiff::Timestamp::now(),
            reason: "DeadlineExceeded",
            message: "lost",
        },
    )
    .await
    .expect("record lost pod");
    let after = runs::by_id(&mut *conn, &a, "shared-id")
        .await
        .expect("read")
        .expect("a's run");
    assert_eq!(
        (
            after.result,
            after.attempts,
            after.notified,
            &after.connection
        ),
        (before.result, before.attempts, false, &a)
    );
    assert_eq!(after.message, before.message);
    // A itself still can.
    assert!(
        runs::mark_notified(&mut conn, &a, "shared-id")
            .await
            .expect("mark")
    );
}

/// `Ts` (the crate's one timestamptz mapping, src/store/time.rs) against real Postgres: what it
/// binds is the instant Postgres stores, and what Postgres returns decodes to the same instant, in
/// the binary format (prepared statements) and the text format (`raw_sql`), to the microsecond.
#[tokio::test]
async fn timestamptz_round_trips_through_ts() {
    use rostersync::store::time::Ts;
    use sqlx::Row;
    let Some(db) = common::fresh_db().await else {
        return;
    };
    let mut conn = db.pool.acquire().await.expect("connection");
    sqlx::query("SET TIME ZONE 'UTC'")
        .execute(&mut *conn)
        .await
        .expect("timezone");
    for (rfc, pg) in [
        (
            "2025-03-01T02:00:00.123456Z",
            "2025-03-01 02:00:00.123456+00",
        ),
        (
            "1969-12-31T23:59:59.999999Z",
            "1969-12-31 23:59:59.999999+00",
        ),
        (
            "1900-06-15T12:34:56.000001Z",
            "1900-06-15 12:34:56.000001+00",
        ),
        (
            "1999-12-31T23:59:59.999999Z",
            "1999-12-31 23:59:59.999999+00",
        ),
        ("2000-01-01T00:00:00Z", "2000-01-01 00:00:00+00"),
        (
            "9999-12-30T21:59:59.999999Z",
            "9999-12-30 21:59:59.999999+00",
        ),
    ] {
        let t: jiff::Timestamp = rfc.parse().expect("timestamp");
        // Encode: Postgres sees the same instant.
        let (text, back): (String, Ts) = sqlx::query_as("SELECT $1::timestamptz::text, $1")
            .bind(Ts(t))
            .fetch_one(&mut *conn)
            .await
            .expect("bind");
        assert_eq!(text, pg, "{rfc} as stored by Postgres");
        assert_eq!(back, Ts(t), "{rfc} bound and read back");
        // Decode, binary format: a value Postgres produced.
        let decoded: Ts = sqlx::query_scalar("SELECT $1::text::timestamptz")
            .bind(pg)
            .fetch_one(&mut *conn)
            .await
            .expect("decode binary");
        assert_eq!(decoded, Ts(t), "{pg} (binary)");
        // Decode, text format.
        let row = sqlx::raw_sql(&format!("SELECT '{pg}'::timestamptz"))
            .fetch_one(&mut *conn)
            .await
            .expect("raw_sql");
        let decoded: Ts = row.try_get(0).expect("decode text");
        assert_eq!(decoded, Ts(t), "{pg} (text)");
    }
    // Outside jiff's range: an error that says so, not a panic or a wrong instant.
    let err = sqlx::query_scalar::<_, Ts>("SELECT 'infinity'::timestamptz")
        .fetch_one(&mut *conn)
        .await
        .expect_err("infinity");
    assert!(err.to_string().contains("out of range"), "{err}");
}

/// `runs::ROW_COLUMNS`, the columns every `sync_runs` query names (they cannot `SELECT *`: the
/// timestamps need their `Ts` override), are exactly the table's columns: a migration adding a
/// column fails here until the queries and `Row` read it.
#[tokio::test]
async fn row_columns_are_the_table_columns() {
    let Some(db) = common::fresh_db().await else {
        return;
    };
    rostersync::store::MIGRATOR
        .run(&db.pool)
        .await
        .expect("migrate");
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name = 'sync_runs' ORDER BY ordinal_position",
    )
    .fetch_all(&db.pool)
    .await
    .expect("columns");
    assert_eq!(columns, rostersync::store::runs::ROW_COLUMNS);
}

/// `20261130230000_sync_problems_checked_per_statement` keeps the history it finds: every problem
/// gets its run's connection and its place in the run's list (in recording order).
#[tokio::test]
async fn problems_recorded_before_the_per_statement_checks_keep_their_run_and_order() {
    const VERSION: i64 = 20261130230000;
    let Some(db) = common::fresh_db().await else {
        return;
    };
    migrate_before(&db.pool, VERSION).await;
    sqlx::query(
        "INSERT INTO sync_runs (run_id, connection, trigger, result, started_at, finished_at) VALUES
         ('r-a', 'ns/a', 'Manual', 'Succeeded', now(), now()),
         ('r-b', 'ns/b', 'Manual', 'Succeeded', now(), now())",
    )
    .execute(&db.pool)
    .await
    .expect("runs");
    // Interleaved, so that a run's order is not the table's.
    for (run, message) in [
        ("r-a", "a1"),
        ("r-b", "b1"),
        ("r-a", "a2"),
        ("r-a", "a3"),
        ("r-b", "b2"),
    ] {
        sqlx::query(
            "INSERT INTO sync_problems (run_id, record_kind, code, message) VALUES ($1, 'students', 'X', $2)",
        )
        .bind(run)
        .bind(message)
        .execute(&db.pool)
        .await
        .expect("problem");
    }
    rostersync::store::migrate(&db.pool).await.expect("migrate");
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT run_id, connection, message FROM sync_problems ORDER BY run_id, id")
            .fetch_all(&db.pool)
            .await
            .expect("problems");
    let expected = [
        ("r-a", "ns/a", "a1"),
        ("r-a", "ns/a", "a2"),
        ("r-a", "ns/a", "a3"),
        ("r-b", "ns/b", "b1"),
        ("r-b", "ns/b", "b2"),
    ]
    .map(|(r, c, m)| (r.to_string(), c.to_string(), m.to_string()));
    assert_eq!(rows, expected);
}

/// Applies the migrations older than `version` only.
async fn migrate_before(pool: &sqlx::PgPool, version: i64) {
    let before = sqlx::migrate::Migrator {
        migrations: rostersync::store::MIGRATOR
            .iter()
            .filter(|m| m.version < version)
            .cloned()
            .collect::<Vec<_>>()
            .into(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    assert!(before.migrations.len() + 1 < rostersync::store::MIGRATOR.migrations.len());
    before.run(pool).await.expect("the migrations before");
}

/// A Postgres client tool (`pg_dump`, `pg_restore`): Debian's versioned directory first (the
/// server hack/pg/up.sh starts is from there), then PATH.
fn pg_tool(name: &str) -> Option<std::path::PathBuf> {
    let mut dirs: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.into_iter()
        .rev()
        .map(|d| d.join(name))
        .chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|d| d.join(name)),
        )
        .find(|p| p.is_file())
}

/// docs/operations.md, "Backups of the history table": a dump of the two history tables, taken
/// from this release's schema or from one before the connection column
/// (`20261130230000_sync_problems_checked_per_statement`), restores into a migrated database with
/// the documented commands (runs first: a problem is refused without its run).
#[tokio::test]
async fn the_documented_history_backup_restores() {
    const VERSION: i64 = 20261130230000;
    let (Some(pg_dump), Some(pg_restore)) = (pg_tool("pg_dump"), pg_tool("pg_restore")) else {
        assert!(
            std::env::var_os("ROSTERSYNC_REQUIRE_SERVERS").is_none(),
            "pg_dump and pg_restore are required under hack/test.sh"
        );
        return;
    };
    // libpq's URL: without the sqlx options the test URLs carry.
    let libpq = |url: &str| {
        let mut url = url::Url::parse(url).expect("url");
        url.set_query(None);
        url.to_string()
    };
    let run = |program: &std::path::Path, args: &[&str]| {
        let out = std::process::Command::new(program)
            .args(args)
            .output()
            .expect("run a Postgres tool");
        assert!(
            out.status.success(),
            "{} failed: {}",
            program.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for older_schema in [false, true] {
        let Some(from) = common::fresh_db().await else {
            return;
        };
        let Some(into) = common::fresh_db().await else {
            return;
        };
        if older_schema {
            migrate_before(&from.pool, VERSION).await;
        } else {
            rostersync::store::migrate(&from.pool)
                .await
                .expect("migrate");
        }
        rostersync::store::migrate(&into.pool)
            .await
            .expect("migrate");
        sqlx::query(
            "INSERT INTO sync_runs (run_id, connection, trigger, result, started_at, finished_at)
             VALUES ('r-1', 'ns/a', 'Manual', 'Succeeded', now(), now())",
        )
        .execute(&from.pool)
        .await
        .expect("run");
        // The same two rows in both schemas (the older has no connection column).
        sqlx::query(if older_schema {
            "INSERT INTO sync_problems (run_id, record_kind, clever_id, code, message)
             VALUES ('r-1', 'students', 's-1', 'X', 'one'), ('r-1', 'students', 's-2', 'Y', 'two')"
        } else {
            "INSERT INTO sync_problems (run_id, connection, record_kind, clever_id, code, message)
             VALUES ('r-1', 'ns/a', 'students', 's-1', 'X', 'one'), ('r-1', 'ns/a', 'students', 's-2', 'Y', 'two')"
        })
        .execute(&from.pool)
        .await
        .expect("problems");
        let dir = tempfile::tempdir().expect("tempdir");
        let dump = dir.path().join("history.dump");
        let (file, from_db, into_db) = (
            format!("--file={}", dump.display()),
            format!("--dbname={}", libpq(&from.url)),
            format!("--dbname={}", libpq(&into.url)),
        );
        run(
            &pg_dump,
            &[
                &from_db,
                "--table=sync_runs",
                "--table=sync_problems",
                "--format=custom",
                &file,
            ],
        );
        for table in ["--table=sync_runs", "--table=sync_problems"] {
            let path = dump.to_str().expect("path");
            run(&pg_restore, &[&into_db, "--data-only", table, path]);
        }
        let restored: Vec<(String, String, String)> =
            sqlx::query_as("SELECT run_id, connection, message FROM sync_problems ORDER BY id")
                .fetch_all(&into.pool)
                .await
                .expect("restored problems");
        assert_eq!(
            restored,
            [
                ("r-1".into(), "ns/a".into(), "one".into()),
                ("r-1".into(), "ns/a".into(), "two".into())
            ],
            "older schema: {older_schema}"
        );
    }
}
