//! The sync against the Clever emulator over real HTTP: fetch + filter + apply, atomic failure
//! mid-stream, and the real binary's exit codes and JSON output.
mod common;

use std::collections::HashSet;
use std::time::Duration;

use rostersync::api::{Grade, RosterConnectionSpec, RunResult, Trigger};
use rostersync::clever::CleverCredentials;
use rostersync::clever::{Section, Token, User};
use rostersync::devtools::emulator::{
    Emulator, EmulatorConfig, EmulatorHandle, Fault, FaultKind, Kind,
};
use rostersync::sync::clever_source::CleverSource;
use rostersync::sync::{SyncRequest, run_sync};
use sqlx::PgPool;

const CONN: &str = "default/district";

async fn emulator(students: u32) -> EmulatorHandle {
    Emulator::start(EmulatorConfig::generated(7, students))
        .await
        .expect("emulator starts")
}

fn spec(emu: &EmulatorHandle) -> RosterConnectionSpec {
    serde_json::from_value(serde_json::json!({
        "districtId": emu.district_id(),
        "apiBaseUrl": emu.base_url().as_str().trim_end_matches('/'),
        "credentialsSecretRef": {"name": "clever"},
    }))
    .expect("spec")
}

fn source(emu: &EmulatorHandle, page_limit: u32) -> CleverSource {
    let mut s = CleverSource::new(
        emu.base_url().clone(),
        CleverCredentials::Token(Token::new(emu.token())),
    );
    s.config.page_limit = page_limit;
    s.config.max_attempts = 2;
    s.config.min_backoff = Duration::from_millis(5);
    s.config.max_backoff = Duration::from_millis(20);
    s
}

fn request(spec: RosterConnectionSpec) -> SyncRequest {
    SyncRequest {
        connection: CONN.parse().expect("connection key"),
        spec,
        policy: None,
        run_id: format!("run-{}", common::unique_suffix()),
        trigger: Trigger::Manual,
        schedule: None,
        job: None,
        dry_run: false,
        approve_removals: false,
        today: jiff::civil::date(2025, 10, 1),
    }
}

/// Students of the emulator's sections with a shared (early) grade.
fn kept_students(emu: &EmulatorHandle) -> (HashSet<String>, usize) {
    emu.read(|s| {
        let sections: Vec<Section> = s.all(Kind::Sections);
        let kept: Vec<&Section> = sections
            .iter()
            .filter(|x| {
                x.grade.as_ref().is_some_and(|g| {
                    Grade::parse(&g.as_clever()).is_some_and(|g| Grade::EARLY.contains(&g))
                })
            })
            .collect();
        (
            kept.iter()
                .flat_map(|x| x.students.iter().cloned())
                .collect(),
            kept.len(),
        )
    })
}

async fn db() -> Option<(PgPool, String)> {
    let db = common::fresh_db().await?;
    rostersync::store::migrate(&db.pool).await.expect("migrate");
    Some((db.pool, db.url))
}

async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

async fn roster_snapshot(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT v FROM (
            SELECT 's:' || clever_id || ':' || xmin::text v FROM schools UNION ALL
            SELECT 'c:' || clever_id || ':' || xmin::text FROM classrooms UNION ALL
            SELECT 'e:' || clever_id || ':' || xmin::text FROM educators UNION ALL
            SELECT 'k:' || id || ':' || xmin::text FROM children UNION ALL
            SELECT 'n:' || child_id || ':' || xmin::text FROM enrollments) x ORDER BY v",
    )
    .fetch_all(pool)
    .await
    .expect("snapshot")
}

#[tokio::test]
async fn syncs_the_shared_sections_of_the_emulated_district_then_resyncs_as_a_no_op() {
    let Some((pool, _)) = db().await else { return };
    let emu = emulator(1500).await;
    let (students, sections) = kept_students(&emu);
    assert!(
        !students.is_empty() && sections > 0,
        "the generated district has early-grade sections"
    );
    let out = run_sync(&pool, &request(spec(&emu)), &source(&emu, 300))
        .await
        .expect("sync");
    assert_eq!(out.result, RunResult::Succeeded, "{:?}", out.message);
    assert_eq!(out.counts.children.created as usize, students.len());
    assert_eq!(out.counts.enrollments.created as usize, students.len());
    assert_eq!(out.counts.classrooms.created as usize, sections);
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM children").await as usize,
        students.len()
    );
    assert_eq!(scalar(&pool, "SELECT count(*) FROM children WHERE grade NOT IN ('InfantToddler','Preschool','PreKindergarten','TransitionalKindergarten','Kindergarten')").await, 0);
    assert!(scalar(&pool, "SELECT count(*) FROM educators").await > 0);
    // Enrollments point at kept classrooms only; one per child.
    assert_eq!(scalar(&pool, "SELECT count(*) FROM enrollments e LEFT JOIN classrooms c ON c.clever_id = e.classroom_clever_id WHERE c.clever_id IS NULL").await, 0);

    let before = roster_snapshot(&pool).await;
    let again = run_sync(&pool, &request(spec(&emu)), &source(&emu, 10_000))
        .await
        .expect("resync");
    assert_eq!(again.result, RunResult::Succeeded);
    for (entity, c) in again.counts.entities() {
        assert_eq!(c.changes(), 0, "{entity}: {c:?}");
    }
    assert_eq!(roster_snapshot(&pool).await, before);
}

#[tokio::test]
async fn a_clever_failure_mid_stream_leaves_the_roster_exactly_as_before() {
    let Some((pool, _)) = db().await else { return };
    let emu = emulator(1500).await;
    let mut s = spec(&emu);
    s.settings.allow_removal = true;
    s.settings.removal_guard_percent = 100;
    run_sync(&pool, &request(s.clone()), &source(&emu, 200))
        .await
        .expect("first sync");
    let before = roster_snapshot(&pool).await;
    // Change the district (a student leaves, one is renamed), then fail the third students page.
    let (students, _) = kept_students(&emu);
    let mut ids: Vec<String> = students.into_iter().collect();
    ids.sort();
    emu.update(|st| {
        st.remove(Kind::Users, &ids[0]).expect("remove");
        st.patch(
            Kind::Users,
            &ids[1],
            &serde_json::json!({"name": {"first": "Renamed"}}),
        )
        .expect("patch");
    });
    emu.add_fault(Fault::new(
        Some("/v3.0/users"),
        3,
        10,
        FaultKind::Status { status: 503 },
    ));
    let out = run_sync(&pool, &request(s.clone()), &source(&emu, 200))
        .await
        .expect("a recorded failure");
    assert_eq!(out.result, RunResult::Failed);
    assert_eq!(out.exit_code(), 1, "a 503 is retriable");
    assert_eq!(
        roster_snapshot(&pool).await,
        before,
        "nothing of the failed run is applied"
    );
    let row = rostersync::store::runs::by_id(&pool, &out.run_id)
        .await
        .expect("row")
        .expect("exists");
    assert_eq!(row.result, RunResult::Failed);
    assert_eq!(row.reason.as_deref(), Some("CleverUnavailable"));
    assert!(
        row.message.as_deref().is_some_and(|m| m.contains("503")),
        "{:?}",
        row.message
    );
    assert!(row.finished_at.is_some());

    emu.clear_faults();
    let ok = run_sync(&pool, &request(s), &source(&emu, 200))
        .await
        .expect("recovery");
    assert_eq!(ok.result, RunResult::Succeeded);
    assert_eq!(ok.counts.children.deactivated, 1);
    assert_eq!(ok.counts.children.updated, 1);
}

fn write_manifest(dir: &std::path::Path, spec: &RosterConnectionSpec) -> std::path::PathBuf {
    let doc = serde_json::json!({
        "apiVersion": "rostersync.io/v1alpha1", "kind": "RosterConnection",
        "metadata": {"name": "district"}, "spec": spec,
    });
    let path = dir.join("connection.yaml");
    std::fs::write(&path, serde_yaml_ng::to_string(&doc).expect("yaml")).expect("write");
    path
}

async fn run_binary(
    url: &str,
    manifest: &std::path::Path,
    token: &str,
    extra: &[&str],
) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rostersync"))
        .args(["sync", "--output", "json", "--connection-file"])
        .arg(manifest)
        .args(extra)
        .env("DATABASE_URL", url)
        .env("CLEVER_TOKEN", token)
        .env_remove("CLEVER_CLIENT_ID")
        .output()
        .await
        .expect("run rostersync");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.is_empty() {
        eprintln!("rostersync stderr:\n{stderr}");
    }
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn the_binary_exits_0_3_and_2_and_prints_the_json_contract() {
    let Some((pool, url)) = db().await else {
        return;
    };
    let emu = emulator(800).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = spec(&emu);
    s.settings.allow_removal = true;
    s.settings.removal_guard_percent = 10;
    let manifest = write_manifest(dir.path(), &s);

    let (code, stdout) = run_binary(&url, &manifest, emu.token(), &[]).await;
    assert_eq!(code, 0, "{stdout}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json output");
    assert_eq!(json["result"], "Succeeded");
    for key in ["runId", "result", "counts", "problems", "durationMs"] {
        assert!(json.get(key).is_some(), "missing {key}: {json}");
    }
    for entity in [
        "schools",
        "classrooms",
        "educators",
        "children",
        "enrollments",
    ] {
        for k in [
            "created",
            "updated",
            "unchanged",
            "deactivated",
            "removed",
            "reactivated",
            "carriedOver",
            "matched",
        ] {
            assert!(
                json["counts"][entity][k].is_u64(),
                "counts.{entity}.{k} missing: {json}"
            );
        }
    }
    assert!(json["counts"]["children"]["created"].as_u64().unwrap_or(0) > 0);
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM sync_runs WHERE connection = 'default/district'"
        )
        .await,
        1
    );

    // Half of the kept students leave: held (exit 3), nothing applied; approved: applied.
    let (students, _) = kept_students(&emu);
    let mut ids: Vec<String> = students.into_iter().collect();
    ids.sort();
    emu.update(|st| {
        ids.iter()
            .step_by(2)
            .for_each(|id| st.remove(Kind::Users, id).expect("remove"))
    });
    let active = scalar(&pool, "SELECT count(*) FROM children WHERE active").await;
    let (code, stdout) = run_binary(&url, &manifest, emu.token(), &[]).await;
    assert_eq!(code, 3, "{stdout}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(json["result"], "Held");
    assert_eq!(
        json["counts"]["children"]["deactivated"].as_u64(),
        Some(ids.len().div_ceil(2) as u64)
    );
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM children WHERE active").await,
        active
    );
    let (code, _) = run_binary(&url, &manifest, emu.token(), &["--approve-removals"]).await;
    assert_eq!(code, 0);
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM children WHERE active").await as usize,
        ids.len() / 2
    );

    // Not retriable: a wrong token, a wrong district, an invalid manifest.
    let (code, stdout) = run_binary(&url, &manifest, "not-the-token", &[]).await;
    assert_eq!(code, 2, "{stdout}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(json["reason"], "CredentialsInvalid");
    let mut wrong = s.clone();
    wrong.district_id = "ffffffffffffffffffffffff".into();
    let (code, _) = run_binary(&url, &write_manifest(dir.path(), &wrong), emu.token(), &[]).await;
    assert_eq!(code, 2);
    let mut invalid = s.clone();
    invalid.api_base_url = "http://example.com".into();
    let (code, _) = run_binary(
        &url,
        &write_manifest(dir.path(), &invalid),
        emu.token(),
        &[],
    )
    .await;
    assert_eq!(code, 2);
    let reasons: Vec<String> =
        sqlx::query_scalar("SELECT coalesce(reason, '') FROM sync_runs ORDER BY started_at")
            .fetch_all(&pool)
            .await
            .expect("reasons");
    assert_eq!(
        reasons,
        [
            "Synced",
            "RemovalGuard",
            "Synced",
            "CredentialsInvalid",
            "DistrictNotFound"
        ]
    );
}

#[tokio::test]
async fn the_same_run_id_is_not_run_twice_by_the_binary() {
    let Some((pool, url)) = db().await else {
        return;
    };
    let emu = emulator(300).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = write_manifest(dir.path(), &spec(&emu));
    let (code, first) = run_binary(&url, &manifest, emu.token(), &["--run-id", "slot-1"]).await;
    assert_eq!(code, 0);
    let (code, second) = run_binary(
        &url,
        &manifest,
        "wrong-token-does-not-matter",
        &["--run-id", "slot-1"],
    )
    .await;
    assert_eq!(code, 0, "the recorded outcome is reported");
    let a: serde_json::Value = serde_json::from_str(first.trim()).expect("json");
    let b: serde_json::Value = serde_json::from_str(second.trim()).expect("json");
    assert_eq!(a["counts"], b["counts"]);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM sync_runs").await, 1);
    let _ = User::default();
}
