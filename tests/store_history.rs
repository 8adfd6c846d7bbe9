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
