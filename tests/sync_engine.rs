//! The sync engine against a real Postgres, fed by an in-memory source (no HTTP): each semantic
//! of `src/sync/mod.rs` asserted on the data.
mod common;

use rostersync::api::{
    Grade, JourneyPolicySpec, RemovalMode, RosterConnectionSpec, RunResult, Trigger,
};
use rostersync::run::RunRecord;
use rostersync::sync::fetch::StaticSource;
use rostersync::sync::model::{
    Demographics, StagedChild, StagedClassroom, StagedEducator, StagedSchool,
};
use rostersync::sync::{SyncRequest, run_sync};
use sqlx::PgPool;

const CONN: &str = "district-a/main";

fn spec() -> RosterConnectionSpec {
    serde_json::from_value(serde_json::json!({
        "districtId": "0123456789abcdef01234567",
        "apiBaseUrl": "http://127.0.0.1:1",
        "credentialsSecretRef": {"name": "clever"},
    }))
    .expect("spec")
}

fn policy() -> JourneyPolicySpec {
    serde_json::from_value(serde_json::json!({
        "licensedProducts": ["Readiness", "Math"],
        "newChildJourney": "Readiness",
    }))
    .expect("policy")
}

fn request(spec: RosterConnectionSpec) -> SyncRequest {
    SyncRequest {
        connection: CONN.parse().expect("connection key"),
        spec,
        policy: Some(policy()),
        run_id: format!("run-{}", common::unique_suffix()),
        trigger: Trigger::Manual,
        schedule: None,
        job: None,
        dry_run: false,
        approve_removals: false,
        today: jiff::civil::date(2025, 10, 1),
    }
}

fn child(id: &str, first: &str, grade: Option<Grade>) -> StagedChild {
    StagedChild {
        clever_id: id.into(),
        sis_id: Some(format!("sis-{id}")),
        first_name: Some(first.into()),
        last_name: Some("Doe".into()),
        grade,
        dob_grade: None,
        primary_school: Some("s1".into()),
        demographics: Some(Demographics {
            dob: Some(jiff::civil::date(2021, 3, 4)),
            gender: Some("F".into()),
            ..Default::default()
        }),
    }
}

fn classroom(id: &str, subject: &str, students: &[&str]) -> StagedClassroom {
    StagedClassroom {
        clever_id: id.into(),
        school_clever_id: "s1".into(),
        name: format!("Room {id}"),
        grade: Some(Grade::PreKindergarten),
        subject: Some(subject.into()),
        teacher_clever_id: Some("t1".into()),
        students: students.iter().map(|s| s.to_string()).collect(),
    }
}

/// One school, two classrooms (c1 homeroom with a and b, c2 math with b and d), one teacher.
fn roster() -> StaticSource {
    StaticSource {
        schools: vec![StagedSchool {
            clever_id: "s1".into(),
            name: "Little Oaks".into(),
            ..Default::default()
        }],
        classrooms: vec![
            classroom("c2", "math", &["b", "d"]),
            classroom("c1", "homeroom/advisory", &["a", "b"]),
        ],
        children: vec![
            child("a", "Ann", Some(Grade::PreKindergarten)),
            child("b", "Bo", None),
            child("d", "Di", Some(Grade::Kindergarten)),
        ],
        educators: vec![StagedEducator {
            clever_id: "t1".into(),
            first_name: Some("Tea".into()),
            ..Default::default()
        }],
        problems: vec![],
    }
}

async fn db() -> Option<PgPool> {
    let db = common::fresh_db().await?;
    rostersync::store::migrate(&db.pool).await.expect("migrate");
    Some(db.pool)
}

async fn sync(
    pool: &PgPool,
    req: &SyncRequest,
    source: &impl rostersync::sync::RosterSource,
) -> RunRecord {
    run_sync(pool, req, source).await.expect("sync runs")
}

async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

async fn text(pool: &PgPool, sql: &str) -> Option<String> {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

/// xmin of every roster row: changes whenever a row is written.
/// The connection's active enrollments as "child's Clever id, classroom", in order.
async fn placements(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.clever_id || ' ' || e.classroom_clever_id FROM enrollments e
         JOIN children c ON c.id = e.child_id
         WHERE e.connection = $1 AND e.active ORDER BY 1",
    )
    .bind(CONN)
    .fetch_all(pool)
    .await
    .expect("placements")
}

async fn roster_versions(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT t || ':' || k || ':' || x FROM (
            SELECT 'schools' t, clever_id k, xmin::text x FROM schools UNION ALL
            SELECT 'classrooms', clever_id, xmin::text FROM classrooms UNION ALL
            SELECT 'educators', clever_id, xmin::text FROM educators UNION ALL
            SELECT 'children', id::text, xmin::text FROM children UNION ALL
            SELECT 'enrollments', child_id::text, xmin::text FROM enrollments) v ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("versions")
}

#[tokio::test]
async fn full_sync_creates_then_identical_run_writes_nothing() {
    let Some(pool) = db().await else { return };
    let out = sync(&pool, &request(spec()), &roster()).await;
    assert_eq!(out.result, RunResult::Succeeded);
    assert_eq!(out.exit_code(), 0);
    let json = serde_json::to_value(&out).expect("json");
    assert_eq!(json["counts"]["children"]["created"], 3);
    assert_eq!(json["counts"]["classrooms"]["created"], 2);
    assert_eq!(json["counts"]["schools"]["created"], 1);
    assert_eq!(json["counts"]["educators"]["created"], 1);
    assert_eq!(json["counts"]["enrollments"]["created"], 3);
    assert_eq!(json["counts"]["enrollments"]["carriedOver"], 0);
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM children WHERE connection = 'district-a/main' AND active"
        )
        .await,
        3
    );

    let before = roster_versions(&pool).await;
    let again = sync(&pool, &request(spec()), &roster()).await;
    assert_eq!(again.result, RunResult::Succeeded);
    for (entity, c) in again.counts.entities() {
        assert_eq!(c.changes(), 0, "{entity} changed: {c:?}");
    }
    assert_eq!(again.counts.children.unchanged, 3);
    assert_eq!(again.counts.enrollments.unchanged, 3);
    assert_eq!(
        roster_versions(&pool).await,
        before,
        "a second identical run wrote roster rows"
    );
    let runs = scalar(
        &pool,
        "SELECT count(*) FROM sync_runs WHERE result = 'Succeeded' AND finished_at IS NOT NULL",
    )
    .await;
    assert_eq!(runs, 2);
}

/// A resync counts what differs in one read when every child still has its record, and runs
/// only the statements that write something: each kind of drift, on either side, is still
/// repaired, counted once, and nothing else is written.
#[tokio::test]
async fn every_kind_of_drift_is_repaired_and_nothing_else_is_written() {
    let Some(pool) = db().await else { return };
    let first = sync(&pool, &request(spec()), &roster()).await;
    assert_eq!(first.result, RunResult::Succeeded);
    assert_eq!(placements(&pool).await, ["a c1", "b c1", "d c2"]);
    // In the product: a deactivated, b's enrollment deactivated, d's enrollment deleted.
    for sql in [
        "UPDATE children SET active = false WHERE clever_id = 'a'",
        "UPDATE enrollments SET active = false
         WHERE child_id = (SELECT id FROM children WHERE clever_id = 'b')",
        "DELETE FROM enrollments WHERE child_id = (SELECT id FROM children WHERE clever_id = 'd')",
    ] {
        sqlx::query(sql).execute(&pool).await.expect(sql);
    }
    // In Clever: a moved to c2, d renamed.
    let mut moved = roster();
    moved.classrooms = vec![
        classroom("c2", "math", &["a", "b", "d"]),
        classroom("c1", "homeroom/advisory", &["b"]),
    ];
    moved.children[2].first_name = Some("Dee".into());
    let out = sync(&pool, &request(spec()), &moved).await;
    assert_eq!(out.result, RunResult::Succeeded, "{:?}", out.message);
    let (children, enrollments) = (out.counts.children, out.counts.enrollments);
    assert_eq!(
        (
            children.updated,
            children.reactivated,
            children.created,
            children.unchanged
        ),
        (1, 1, 0, 1),
        "{children:?}"
    );
    assert_eq!(
        (
            enrollments.created,
            enrollments.reactivated,
            enrollments.updated,
            enrollments.unchanged
        ),
        (1, 1, 1, 0),
        "{enrollments:?}"
    );
    assert_eq!(placements(&pool).await, ["a c2", "b c1", "d c2"]);
    assert_eq!(
        text(
            &pool,
            "SELECT first_name FROM children WHERE clever_id = 'd'"
        )
        .await,
        Some("Dee".into())
    );
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM children WHERE active").await,
        3
    );
    // Repaired: the same roster again writes nothing.
    let before = roster_versions(&pool).await;
    let again = sync(&pool, &request(spec()), &moved).await;
    for (entity, c) in again.counts.entities() {
        assert_eq!(c.changes(), 0, "{entity} changed: {c:?}");
    }
    assert_eq!(roster_versions(&pool).await, before);
}

#[tokio::test]
async fn a_child_in_several_sections_goes_to_the_homeroom_and_is_reported() {
    let Some(pool) = db().await else { return };
    let out = sync(&pool, &request(spec()), &roster()).await;
    let room = text(&pool, "SELECT e.classroom_clever_id FROM enrollments e JOIN children c ON c.id = e.child_id WHERE c.clever_id = 'b'").await;
    assert_eq!(room.as_deref(), Some("c1"));
    assert_eq!(out.problem_codes.get("MultipleSections"), Some(&1));
    let p = rostersync::store::runs::problems(&pool, &out_key(), &out.run_id)
        .await
        .expect("problems");
    let multi: Vec<_> = p.iter().filter(|p| p.code == "MultipleSections").collect();
    assert_eq!(multi.len(), 1);
    assert_eq!(multi[0].clever_id.as_deref(), Some("b"));
    assert!(
        !multi[0].message.contains("Bo"),
        "problem messages carry no names"
    );

    // Without a homeroom: the primary school's section, then the lowest id.
    let mut src = roster();
    src.classrooms = vec![
        classroom("c9", "math", &["b"]),
        classroom("c5", "art", &["b"]),
    ];
    src.classrooms[0].school_clever_id = "s1".into();
    src.classrooms[1].school_clever_id = "s2".into();
    src.children.retain(|c| c.clever_id == "b");
    let db2 = common::fresh_db().await.expect("db");
    rostersync::store::migrate(&db2.pool)
        .await
        .expect("migrate");
    sync(&db2.pool, &request(spec()), &src).await;
    let room = text(&db2.pool, "SELECT classroom_clever_id FROM enrollments").await;
    assert_eq!(
        room.as_deref(),
        Some("c9"),
        "primary school s1 wins over the lower id"
    );
    src.classrooms[0].school_clever_id = "s2".into();
    sync(&db2.pool, &request(spec()), &src).await;
    let room = text(&db2.pool, "SELECT classroom_clever_id FROM enrollments").await;
    assert_eq!(room.as_deref(), Some("c5"), "then the lowest section id");
}

#[tokio::test]
async fn without_allow_removal_stale_records_are_kept_and_counted() {
    let Some(pool) = db().await else { return };
    sync(&pool, &request(spec()), &roster()).await;
    let mut src = roster();
    src.children.retain(|c| c.clever_id != "d");
    src.classrooms[0].students = vec!["b".into()];
    let out = sync(&pool, &request(spec()), &src).await;
    assert_eq!(out.result, RunResult::Succeeded);
    assert_eq!(out.counts.children.removals(), 0);
    assert_eq!(
        out.problem_codes.get("StaleNotRemoved"),
        Some(&2),
        "children and enrollments"
    );
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM children WHERE active").await,
        3
    );
}

#[tokio::test]
async fn removal_modes_deactivate_and_delete_but_never_delete_children_with_progress() {
    let Some(pool) = db().await else { return };
    let mut s = spec();
    s.settings.allow_removal = true;
    s.settings.removal_guard_percent = 100;
    sync(&pool, &request(s.clone()), &roster()).await;
    let mut src = roster();
    src.children.retain(|c| c.clever_id == "a");
    src.classrooms = vec![classroom("c1", "homeroom", &["a"])];
    let out = sync(&pool, &request(s.clone()), &src).await;
    assert_eq!(out.counts.children.deactivated, 2);
    assert_eq!(out.counts.classrooms.deactivated, 1);
    assert_eq!(out.counts.enrollments.deactivated, 2);
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM children WHERE NOT active").await,
        2
    );
    assert_eq!(scalar(&pool, "SELECT count(*) FROM children").await, 3);

    // Returning children are reactivated, not duplicated.
    let out = sync(&pool, &request(s.clone()), &roster()).await;
    assert_eq!(out.counts.children.reactivated, 2);
    assert_eq!(out.counts.children.created, 0);
    assert_eq!(out.counts.classrooms.reactivated, 1);
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM children WHERE active").await,
        3
    );

    // Delete mode: b has progress and is deactivated; d is deleted.
    sqlx::query("UPDATE children SET has_progress = true WHERE clever_id = 'b'")
        .execute(&pool)
        .await
        .expect("progress");
    s.settings.removal_mode = RemovalMode::Delete;
    let out = sync(&pool, &request(s.clone()), &src).await;
    assert_eq!(out.counts.children.removed, 1);
    assert_eq!(out.counts.children.deactivated, 1);
    assert_eq!(out.counts.classrooms.removed, 1);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM children").await, 2);
    assert_eq!(
        text(&pool, "SELECT clever_id FROM children WHERE NOT active")
            .await
            .as_deref(),
        Some("b")
    );
    assert_eq!(scalar(&pool, "SELECT count(*) FROM classrooms").await, 1);
}

#[tokio::test]
async fn the_removal_guard_holds_then_an_approval_applies_once() {
    let Some(pool) = db().await else { return };
    let mut s = spec();
    s.settings.allow_removal = true;
    s.settings.removal_guard_percent = 10;
    sync(&pool, &request(s.clone()), &roster()).await;
    let mut src = roster();
    src.children.retain(|c| c.clever_id == "a");
    src.classrooms = vec![classroom("c1", "homeroom", &["a"])];
    let before = roster_versions(&pool).await;
    let held = sync(&pool, &request(s.clone()), &src).await;
    assert_eq!(held.result, RunResult::Held);
    assert_eq!(held.exit_code(), 3);
    assert_eq!(
        held.counts.children.deactivated, 2,
        "would-be counts are reported"
    );
    assert_eq!(
        roster_versions(&pool).await,
        before,
        "a held run applies nothing"
    );
    let row = rostersync::store::runs::by_id(&pool, &out_key(), &held.run_id)
        .await
        .expect("row")
        .expect("exists");
    assert_eq!(row.result, RunResult::Held);
    assert_eq!(row.reason.as_deref(), Some("RemovalGuard"));
    assert_eq!(row.counts.children.deactivated, 2);

    let mut approved = request(s.clone());
    approved.approve_removals = true;
    let out = sync(&pool, &approved, &src).await;
    assert_eq!(out.result, RunResult::Succeeded);
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM children WHERE active").await,
        1
    );
    // The approval was for one run: the next mass removal is held again.
    let mut src2 = src.clone();
    src2.children.clear();
    src2.classrooms[0].students.clear();
    assert_eq!(
        sync(&pool, &request(s), &src2).await.result,
        RunResult::Held
    );
}

/// Delete mode: the guard decides before anything is deleted (a held run deletes nothing). An
/// approval is bound to the held run: after a hold, a broken response (every child and classroom
/// gone) with an approval is held again, both figures in the message, nothing deleted; the removals
/// the held run showed, approved, are applied.
#[tokio::test]
async fn in_delete_mode_a_hold_deletes_nothing_and_an_approval_is_bound_to_the_held_run() {
    let Some(pool) = db().await else { return };
    let mut s = spec();
    s.settings.allow_removal = true;
    s.settings.removal_guard_percent = 10;
    s.settings.removal_mode = RemovalMode::Delete;
    // Thirteen children: a, b and d, and ten more in c1.
    let mut full = roster();
    let more: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    for id in &more {
        full.children
            .push(child(id, "Kay", Some(Grade::PreKindergarten)));
        full.classrooms[1].students.push(id.clone());
    }
    sync(&pool, &request(s.clone()), &full).await;
    // b and d leave, and with them classroom c2.
    let mut shrunk = full.clone();
    shrunk
        .children
        .retain(|c| c.clever_id != "b" && c.clever_id != "d");
    shrunk.classrooms.retain(|c| c.clever_id == "c1");
    shrunk.classrooms[0].students.retain(|id| id != "b");
    let before = roster_versions(&pool).await;
    let held = sync(&pool, &request(s.clone()), &shrunk).await;
    assert_eq!(held.result, RunResult::Held, "{:?}", held.message);
    assert_eq!(held.counts.children.removed, 2);
    assert_eq!(held.counts.classrooms.removed, 1);
    assert_eq!(
        roster_versions(&pool).await,
        before,
        "a held run deletes nothing"
    );
    assert_eq!(scalar(&pool, "SELECT count(*) FROM children").await, 13);

    // A broken response: no children at all (and no classrooms).
    let mut broken = full.clone();
    broken.children.clear();
    broken.classrooms.clear();
    let mut approved = request(s.clone());
    approved.approve_removals = true;
    let refused = sync(&pool, &approved, &broken).await;
    assert_eq!(refused.result, RunResult::Held, "{:?}", refused.message);
    assert_eq!(refused.exit_code(), 3);
    let message = refused.message.clone().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "the held run {} would have removed 2 children",
            held.run_id
        )),
        "{message}"
    );
    assert!(message.contains("this run would remove 13"), "{message}");
    assert_eq!(
        roster_versions(&pool).await,
        before,
        "a refused approval deletes nothing"
    );

    let mut approved = request(s.clone());
    approved.approve_removals = true;
    let out = sync(&pool, &approved, &shrunk).await;
    assert_eq!(out.result, RunResult::Succeeded, "{:?}", out.message);
    assert_eq!(out.counts.children.removed, 2);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM children").await, 11);
}

/// An approval with no held run on record (never held, or the hold was followed by a successful
/// run) does not lift the guard: the run is held as without one, and says why.
#[tokio::test]
async fn an_approval_without_a_held_run_on_record_leaves_the_guard_in_place() {
    let Some(pool) = db().await else { return };
    let mut s = spec();
    s.settings.allow_removal = true;
    s.settings.removal_guard_percent = 10;
    sync(&pool, &request(s.clone()), &roster()).await;
    let mut shrunk = roster();
    shrunk.children.retain(|c| c.clever_id == "a");
    shrunk.classrooms = vec![classroom("c1", "homeroom", &["a"])];
    let before = roster_versions(&pool).await;
    let mut approved = request(s.clone());
    approved.approve_removals = true;
    let out = sync(&pool, &approved, &shrunk).await;
    assert_eq!(out.result, RunResult::Held);
    assert!(
        out.message
            .as_deref()
            .is_some_and(|m| m.contains("no held run on record")),
        "{:?}",
        out.message
    );
    assert_eq!(roster_versions(&pool).await, before);

    // That run is now the held one; approved, and applied: the hold is resolved.
    let mut approved = request(s.clone());
    approved.approve_removals = true;
    assert_eq!(
        sync(&pool, &approved, &shrunk).await.result,
        RunResult::Succeeded
    );
    // A later approval refers to no hold (a success followed it): guarded as usual.
    let mut broken = shrunk.clone();
    broken.children.clear();
    broken.classrooms[0].students.clear();
    let mut approved = request(s);
    approved.approve_removals = true;
    let out = sync(&pool, &approved, &broken).await;
    assert_eq!(out.result, RunResult::Held);
    assert!(
        out.message
            .as_deref()
            .is_some_and(|m| m.contains("no held run on record")),
        "{:?}",
        out.message
    );
}

#[tokio::test]
async fn dry_run_reports_the_real_counts_and_writes_only_its_history_row() {
    let Some(pool) = db().await else { return };
    sync(&pool, &request(spec()), &roster()).await;
    let mut src = roster();
    src.children[0].first_name = Some("Anna".into());
    src.children.push(child("e", "Ed", None));
    src.classrooms[1].students.push("e".into());
    let before = roster_versions(&pool).await;
    let mut dry = request(spec());
    dry.dry_run = true;
    let d = sync(&pool, &dry, &src).await;
    assert_eq!(d.result, RunResult::Succeeded);
    assert!(d.dry_run);
    assert_eq!(
        roster_versions(&pool).await,
        before,
        "a dry run writes no roster row"
    );
    let row = rostersync::store::runs::by_id(&pool, &out_key(), &d.run_id)
        .await
        .expect("row")
        .expect("exists");
    assert!(row.dry_run);
    let real = sync(&pool, &request(spec()), &src).await;
    assert_eq!(d.counts, real.counts);
    assert_eq!(real.counts.children.created, 1);
    assert_eq!(real.counts.children.updated, 1);
}

#[tokio::test]
async fn carry_over_restores_a_unique_archived_child_and_reports_ambiguity() {
    let Some(pool) = db().await else { return };
    // Last year's children, archived: x (new Clever id, same sis id) with progress and a journey,
    // and two archived records of the same school year with the same name and dob as d (records
    // of different years are not ambiguous: the newer year wins, tests/admin_rollover.rs).
    sqlx::query(
        "INSERT INTO children (connection, clever_id, sis_id, first_name, last_name, dob, journey, placement_level,
                               has_progress, active, archived_school_year) VALUES
         ($1, 'old-a', 'sis-a', 'Ann', 'Doe', '2021-03-04', 'Math', 7, true, false, '2024-2025'),
         ($1, 'old-d1', 'x1', 'Di', 'Doe', '2021-03-04', 'Math', 2, false, false, '2024-2025'),
         ($1, 'old-d2', 'x2', ' di ', 'DOE', '2021-03-04', 'Math', 2, false, false, '2024-2025'),
         ('other/conn', 'b', 'sis-b', 'Bo', 'Doe', '2021-03-04', 'Math', 2, true, false, '2024-2025')",
    )
    .bind(CONN)
    .execute(&pool)
    .await
    .expect("archived");
    let mut s = spec();
    s.settings.auto_carryover = true;
    let out = sync(&pool, &request(s), &roster()).await;
    assert_eq!(out.counts.children.carried_over, 1);
    assert_eq!(
        out.counts.children.created, 2,
        "b (other connection's archive ignored) and d (ambiguous)"
    );
    assert_eq!(out.problem_codes.get("CarryoverAmbiguous"), Some(&1));
    assert_eq!(
        placements(&pool).await,
        ["a c1", "b c1", "d c2"],
        "the carried child enrolled like the new ones (b: the homeroom)"
    );
    assert_eq!(out.counts.enrollments.created, 3);
    let (journey, level, progress, archived): (Option<String>, Option<i32>, bool, Option<String>) = sqlx::query_as(
        "SELECT journey, placement_level, has_progress, archived_school_year FROM children WHERE connection = $1 AND clever_id = 'a'",
    )
    .bind(CONN)
    .fetch_one(&pool)
    .await
    .expect("a");
    assert_eq!(
        (journey.as_deref(), level, progress, archived),
        (Some("Math"), Some(7), true, None)
    );
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM children WHERE archived_school_year IS NOT NULL"
        )
        .await,
        3
    );

    // Without autoCarryover: a new child, the archive untouched.
    let Some(pool) = db().await else { return };
    sqlx::query("INSERT INTO children (connection, clever_id, sis_id, journey, active, archived_school_year) VALUES ($1, 'a', 'sis-a', 'Math', false, '2024-2025')")
        .bind(CONN)
        .execute(&pool)
        .await
        .expect("archived");
    let out = sync(&pool, &request(spec()), &roster()).await;
    assert_eq!(out.counts.children.carried_over, 0);
    assert_eq!(out.counts.children.created, 3);
}

#[tokio::test]
async fn manual_children_are_linked_instead_of_duplicated() {
    let Some(pool) = db().await else { return };
    sqlx::query(
        "INSERT INTO children (connection, source, sis_id, first_name, last_name, dob, school_clever_id, journey, has_progress) VALUES
         ($1, 'manual', 'sis-a', 'Annie', 'Doe', NULL, 's1', 'Math', true),
         ($1, 'manual', NULL, 'Bo', 'Doe', '2021-03-04', 's1', 'Math', false),
         ($1, 'manual', NULL, 'Di', 'Doe', '2021-03-04', 's1', NULL, false),
         ($1, 'manual', NULL, 'di', 'doe', '2021-03-04', 's1', NULL, false)",
    )
    .bind(CONN)
    .execute(&pool)
    .await
    .expect("manual");
    let out = sync(&pool, &request(spec()), &roster()).await;
    assert_eq!(
        out.counts.children.matched, 2,
        "a by sis id, b by name and dob in the school"
    );
    assert_eq!(out.counts.children.created, 1, "d is ambiguous");
    assert_eq!(out.problem_codes.get("ManualMatchAmbiguous"), Some(&1));
    assert_eq!(
        placements(&pool).await,
        ["a c1", "b c1", "d c2"],
        "the linked children enrolled like the new one"
    );
    assert_eq!(out.counts.enrollments.created, 3);
    let (source, journey, progress, first): (String, Option<String>, bool, Option<String>) =
        sqlx::query_as(
            "SELECT source, journey, has_progress, first_name FROM children WHERE clever_id = 'a'",
        )
        .fetch_one(&pool)
        .await
        .expect("a");
    assert_eq!(
        (
            source.as_str(),
            journey.as_deref(),
            progress,
            first.as_deref()
        ),
        ("roster", Some("Math"), true, Some("Ann"))
    );
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM children WHERE source = 'manual'"
        )
        .await,
        2
    );
    assert_eq!(scalar(&pool, "SELECT count(*) FROM children").await, 5);
}

#[tokio::test]
async fn classroom_name_overrides_survive_only_when_allowed() {
    let Some(pool) = db().await else { return };
    sync(&pool, &request(spec()), &roster()).await;
    sqlx::query("UPDATE classrooms SET display_name = 'Sunflowers', name_edited_locally = true WHERE clever_id = 'c1'")
        .execute(&pool)
        .await
        .expect("edit");
    let mut src = roster();
    src.classrooms[1].name = "Room 1 (new)".into();
    let mut s = spec();
    s.settings.allow_classroom_name_overrides = true;
    let out = sync(&pool, &request(s), &src).await;
    assert_eq!(out.counts.classrooms.updated, 1);
    let names: (String, String) =
        sqlx::query_as("SELECT roster_name, display_name FROM classrooms WHERE clever_id = 'c1'")
            .fetch_one(&pool)
            .await
            .expect("c1");
    assert_eq!(names, ("Room 1 (new)".into(), "Sunflowers".into()));
    sync(&pool, &request(spec()), &src).await;
    let names: (String, String) =
        sqlx::query_as("SELECT roster_name, display_name FROM classrooms WHERE clever_id = 'c1'")
            .fetch_one(&pool)
            .await
            .expect("c1");
    assert_eq!(names, ("Room 1 (new)".into(), "Room 1 (new)".into()));
}

#[tokio::test]
async fn journeys_and_grade_placement_of_new_children() {
    let Some(pool) = db().await else { return };
    let mut src = roster();
    // b: no student grade; the chosen section (c1) is PreK. e: no grade anywhere: from the dob.
    src.classrooms.push(StagedClassroom {
        grade: None,
        ..classroom("c3", "homeroom", &["e"])
    });
    src.children.push(StagedChild {
        grade: None,
        dob_grade: Some(Grade::Preschool),
        ..child("e", "Ed", None)
    });
    let out = sync(&pool, &request(spec()), &src).await;
    assert_eq!(out.counts.children.created, 4);
    type Placement = (String, Option<String>, Option<i32>, Option<String>);
    let rows: Vec<Placement> = sqlx::query_as(
        "SELECT clever_id, grade, placement_level, journey FROM children ORDER BY clever_id",
    )
    .fetch_all(&pool)
    .await
    .expect("rows");
    let expect = |id: &str, g: &str, l: i32| {
        (
            id.to_string(),
            Some(g.to_string()),
            Some(l),
            Some("Readiness".to_string()),
        )
    };
    assert_eq!(
        rows,
        vec![
            expect("a", "PreKindergarten", 3),
            expect("b", "PreKindergarten", 3),
            expect("d", "Kindergarten", 4),
            expect("e", "Preschool", 1)
        ]
    );

    // Existing children keep their journey; an unlicensed journey gives new children none.
    sqlx::query("UPDATE children SET journey = 'Math'")
        .execute(&pool)
        .await
        .expect("journey");
    let mut req = request(spec());
    let mut p = policy();
    p.new_child_journey = "Science".into();
    req.policy = Some(p);
    src.children
        .push(child("f", "Fi", Some(Grade::Kindergarten)));
    src.classrooms[0].students.push("f".into());
    let out = sync(&pool, &req, &src).await;
    assert_eq!(out.problem_codes.get("JourneyNotLicensed"), Some(&1));
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM children WHERE journey = 'Math'"
        )
        .await,
        4
    );
    assert_eq!(
        text(&pool, "SELECT journey FROM children WHERE clever_id = 'f'").await,
        None
    );
}

#[tokio::test]
async fn demographics_are_stored_only_while_shared() {
    let Some(pool) = db().await else { return };
    sync(&pool, &request(spec()), &roster()).await;
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM children WHERE dob IS NOT NULL AND gender = 'F'"
        )
        .await,
        3
    );
    let mut s = spec();
    s.sharing.include_demographics = false;
    let out = sync(&pool, &request(s), &roster()).await;
    assert_eq!(out.counts.children.updated, 3);
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM children WHERE coalesce(dob::text, gender, ell_status, hispanic_ethnicity, race, home_language, iep_status, frl_status) IS NOT NULL").await,
        0
    );
}

#[tokio::test]
async fn a_second_concurrent_run_exits_without_changing_anything() {
    let Some(pool) = db().await else { return };
    let mut holder = pool.acquire().await.expect("conn");
    let locked: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_lock(hashtextextended('rostersync:sync:' || $1, 0))",
    )
    .bind(CONN)
    .fetch_one(&mut *holder)
    .await
    .expect("lock");
    assert!(locked);
    let err = run_sync(&pool, &request(spec()), &roster())
        .await
        .expect_err("locked out");
    assert_eq!(err.exit_code(), 1);
    assert!(
        err.to_string()
            .contains("another sync of connection district-a/main is running"),
        "{err}"
    );
    assert_eq!(scalar(&pool, "SELECT count(*) FROM children").await, 0);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM sync_runs").await, 0);
    sqlx::query("SELECT pg_advisory_unlock_all()")
        .execute(&mut *holder)
        .await
        .expect("unlock");
    drop(holder);
    assert_eq!(
        sync(&pool, &request(spec()), &roster()).await.result,
        RunResult::Succeeded
    );
}

#[tokio::test]
async fn a_finished_run_id_is_reported_not_run_again() {
    let Some(pool) = db().await else { return };
    let req = request(spec());
    let first = sync(&pool, &req, &roster()).await;
    let again = sync(&pool, &req, &StaticSource::default()).await;
    assert_eq!(again.result, RunResult::Succeeded);
    assert_eq!(again.counts, first.counts);
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM children WHERE active").await,
        3
    );
    assert_eq!(scalar(&pool, "SELECT count(*) FROM sync_runs").await, 1);
}

#[tokio::test]
async fn a_run_left_running_by_a_crash_is_marked_failed_by_the_next_run() {
    let Some(pool) = db().await else { return };
    sqlx::query("INSERT INTO sync_runs (run_id, connection, trigger, result) VALUES ('crashed', $1, 'Scheduled', 'Running')")
        .bind(CONN)
        .execute(&pool)
        .await
        .expect("crashed run");
    let out = sync(&pool, &request(spec()), &roster()).await;
    assert_eq!(out.result, RunResult::Succeeded);
    let row = rostersync::store::runs::by_id(&pool, &out_key(), "crashed")
        .await
        .expect("row")
        .expect("exists");
    assert_eq!(
        (row.result, row.reason.as_deref()),
        (RunResult::Failed, Some("Interrupted"))
    );
    assert!(row.finished_at.is_some());
}

#[tokio::test]
async fn problems_and_run_rows_carry_no_personal_data() {
    let Some(pool) = db().await else { return };
    let mut src = roster();
    // Ambiguities of every kind, all with names and birth dates around.
    sqlx::query(
        "INSERT INTO children (connection, source, first_name, last_name, dob, school_clever_id) VALUES
         ($1, 'manual', 'Di', 'Doe', '2021-03-04', 's1'), ($1, 'manual', 'Di', 'Doe', '2021-03-04', 's1')",
    )
    .bind(CONN)
    .execute(&pool)
    .await
    .expect("manual");
    src.children[2].first_name = Some("Di".into());
    let out = sync(&pool, &request(spec()), &src).await;
    assert!(out.problems >= 2);
    let dump: String = sqlx::query_scalar(
        "SELECT string_agg(coalesce(clever_id, '') || ' ' || code || ' ' || message, E'\\n') FROM sync_problems",
    )
    .fetch_one(&pool)
    .await
    .expect("problems");
    let run: String = sqlx::query_scalar(
        "SELECT coalesce(message, '') || counts::text || problem_codes::text FROM sync_runs",
    )
    .fetch_one(&pool)
    .await
    .expect("run");
    for text in [&dump, &run] {
        for pii in ["Ann", "Bo ", "Di ", "Doe", "2021", "03-04"] {
            assert!(!text.contains(pii), "{pii:?} found in {text}");
        }
    }
    let json = serde_json::to_string(&out).expect("json");
    assert!(!json.contains("Doe") && !json.contains("2021"), "{json}");
}

/// Clever returning the same id twice (a child, a section) fails nothing: the first record is kept
/// and each repeat is one `DuplicateRecord` problem; the roster equals the roster without repeats.
#[tokio::test]
async fn duplicate_ids_are_kept_once_with_a_problem() {
    let Some(pool) = db().await else { return };
    let mut src = roster();
    let mut renamed = child("a", "Someone Else", Some(Grade::PreKindergarten));
    renamed.sis_id = Some("other".into());
    src.children.push(renamed);
    src.classrooms.push(classroom("c2", "math", &["a"]));
    let out = sync(&pool, &request(spec()), &src).await;
    assert_eq!(out.result, RunResult::Succeeded, "{:?}", out.message);
    assert_eq!(out.problem_codes.get("DuplicateRecord"), Some(&2));
    let p = rostersync::store::runs::problems(&pool, &out_key(), &out.run_id)
        .await
        .expect("problems");
    let mut dups: Vec<(String, Option<String>)> = p
        .iter()
        .filter(|p| p.code == "DuplicateRecord")
        .map(|p| (p.record_kind.clone(), p.clever_id.clone()))
        .collect();
    dups.sort();
    assert_eq!(
        dups,
        [
            ("children".to_string(), Some("a".to_string())),
            ("sections".to_string(), Some("c2".to_string()))
        ]
    );
    assert!(p.iter().all(|p| !p.message.contains("Someone")));
    // The first record won: Ann stays Ann, c2 keeps b and d.
    assert_eq!(
        text(
            &pool,
            "SELECT first_name FROM children WHERE clever_id = 'a'"
        )
        .await
        .as_deref(),
        Some("Ann")
    );
    assert_eq!(scalar(&pool, "SELECT count(*) FROM children").await, 3);
    let reference = db().await.expect("second database");
    let plain = sync(&reference, &request(spec()), &roster()).await;
    assert_eq!(out.counts, plain.counts);
}

/// The connection key of the runs these tests make.
fn out_key() -> rostersync::run::ConnectionKey {
    CONN.parse().expect("connection key")
}

/// The post-commit statistics refresh names real columns of every roster table (a renamed column
/// would only log a warning at run time, and the statistics would silently stop), through the
/// function a district role may call; it analyzes roster tables only.
#[tokio::test]
async fn the_key_column_analyze_names_real_columns_of_every_roster_table() {
    let Some(pool) = db().await else { return };
    let tables = [
        "schools",
        "classrooms",
        "educators",
        "children",
        "enrollments",
    ];
    let targets = rostersync::sync::engine::analyze_key_columns(&tables);
    assert_eq!(targets.iter().map(|(t, _)| *t).collect::<Vec<_>>(), tables);
    for (table, columns) in targets {
        assert!(!columns.is_empty(), "{table}");
        sqlx::query("SELECT rs_analyze_roster_table($1, $2)")
            .bind(table)
            .bind(columns)
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("ANALYZE {table} {columns:?}: {e}"));
    }
    assert!(rostersync::sync::engine::analyze_key_columns(&["sync_runs"]).is_empty());
    let refused = sqlx::query("SELECT rs_analyze_roster_table('sync_runs', NULL)")
        .execute(&pool)
        .await
        .expect_err("not a roster table");
    assert!(
        refused.to_string().contains("not a roster table"),
        "{refused}"
    );
    let unknown =
        sqlx::query("SELECT rs_analyze_roster_table('children', ARRAY['no_such_column'])")
            .execute(&pool)
            .await
            .expect_err("an unknown column");
    assert!(unknown.to_string().contains("no_such_column"), "{unknown}");
}

/// A source that changes the roster (as the product may, through its own writes) after the run
/// has read the connection's current children and before its transaction: staging writes each
/// child with the record it matched then, and the run must not trust that match blindly.
struct ChangedWhileStaging {
    pool: PgPool,
    change: &'static str,
    roster: StaticSource,
}

impl rostersync::sync::RosterSource for ChangedWhileStaging {
    async fn stage(
        &self,
        ctx: &rostersync::sync::StageContext,
        stager: &mut rostersync::sync::stage::Stager,
    ) -> Result<(), rostersync::sync::SyncError> {
        sqlx::raw_sql(self.change)
            .execute(&self.pool)
            .await
            .expect(self.change);
        self.roster.stage(ctx, stager).await
    }
}

#[tokio::test]
async fn a_child_archived_or_removed_while_staging_is_matched_again_not_by_its_old_record() {
    let Some(pool) = db().await else { return };
    let first = sync(&pool, &request(spec()), &roster()).await;
    assert_eq!(first.counts.children.created, 3);
    let id_of = |clever_id: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT id FROM children WHERE connection = $1 AND clever_id = $2 AND archived_school_year IS NULL",
            )
            .bind(CONN)
            .bind(clever_id)
            .fetch_optional(&pool)
            .await
            .expect("child id")
        }
    };
    let (a, b, d) = (id_of("a").await, id_of("b").await, id_of("d").await);
    let source = ChangedWhileStaging {
        pool: pool.clone(),
        change: "UPDATE children SET archived_school_year = '2024-2025', active = false WHERE clever_id = 'a';
                 DELETE FROM children WHERE clever_id = 'b';",
        roster: roster(),
    };
    let mut s = spec();
    s.settings.auto_carryover = true;
    let out = sync(&pool, &request(s), &source).await;
    assert_eq!(out.result, RunResult::Succeeded, "{:?}", out.message);
    let c = out.counts.children;
    assert_eq!(
        (c.carried_over, c.created, c.unchanged),
        (1, 1, 1),
        "a carried over from its archived record, b created again, d unchanged: {c:?}"
    );
    assert_eq!(id_of("a").await, a, "a is its own record, restored");
    assert!(
        id_of("b").await.is_some_and(|id| Some(id) != b),
        "b is a new record"
    );
    assert_eq!(id_of("d").await, d);
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM children WHERE connection = 'district-a/main' AND active AND archived_school_year IS NULL").await,
        3,
        "every staged child has one current record"
    );
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM enrollments e JOIN children c ON c.id = e.child_id WHERE e.active AND c.active").await,
        3,
        "every staged child is enrolled"
    );
}
