//! `rostersync bench sync` as a developer runs it (docs/performance.md), on the test Postgres and
//! the emulator it starts: figures only, never timed assertions; this checks what it prints and
//! what it leaves behind.
mod common;

use serde_json::Value;

async fn names(pool: &sqlx::PgPool, sql: &str) -> Vec<String> {
    sqlx::query_scalar(sql)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test]
async fn repeated_runs_sync_as_a_district_role_and_leave_no_database_or_role_behind() {
    let Some(db) = common::fresh_db().await else {
        return;
    };
    let url = std::env::var("DATABASE_URL").expect("fresh_db needs DATABASE_URL");
    const ROLES: &str = "SELECT rolname::text FROM pg_roles ORDER BY 1";
    const BENCH_DATABASES: &str =
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'rs\\_bench\\_%' ORDER BY 1";
    let roles_before = names(&db.pool, ROLES).await;
    let databases_before = names(&db.pool, BENCH_DATABASES).await;

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rostersync"))
        .args(["bench", "sync", "--students", "300", "--runs", "2"])
        .env("DATABASE_URL", &url)
        .output()
        .await
        .expect("run the bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(lines.len(), 3, "two reports and the summary: {lines:?}");
    let positive = |v: &Value, key: &str| {
        let x = v[key].as_f64().unwrap_or(0.0);
        assert!(x > 0.0, "{key} = {} in {v}", v[key]);
        x
    };
    let mut ratios = Vec::new();
    for report in &lines[..2] {
        assert_eq!(report["students"], 300);
        assert_eq!(report["tenancy"], "dedicated", "{report}");
        positive(report, "childrenSynced");
        positive(report, "peakRssMb");
        positive(report, "perRecordSpeedup");
        positive(report, "resyncRatio");
        ratios.push(positive(report, "fullSyncRatio"));
        assert!(report["fetchDecodeFloor"]["pages"].as_u64().unwrap_or(0) > 0);
        assert!(report["copyFloor"]["rows"].as_u64().unwrap_or(0) > 0);
        // The resync changed nothing, and said so in its phases.
        assert!(report["resyncPhases"]["totalMs"].is_u64(), "{report}");
    }
    let summary = &lines[2]["summary"];
    assert_eq!(summary["runs"], 2);
    let spread = &summary["fullSyncRatio"];
    ratios.sort_by(f64::total_cmp);
    assert_eq!(spread["min"].as_f64(), Some(ratios[0]), "{summary}");
    assert_eq!(spread["max"].as_f64(), Some(ratios[1]), "{summary}");
    assert!(stderr.contains("over 2 runs"), "{stderr}");
    assert!(stderr.contains("ratio to the floor"), "{stderr}");

    assert_eq!(
        names(&db.pool, BENCH_DATABASES).await,
        databases_before,
        "each run drops its database"
    );
    assert_eq!(
        names(&db.pool, ROLES).await,
        roles_before,
        "each run drops the district and group roles it made"
    );
}
