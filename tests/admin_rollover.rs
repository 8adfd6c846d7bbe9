//! `rollover` and carry-over against a real Postgres: returning children keep their row (progress,
//! journey), a child archived in two years matches the newer record, a second rollover of the
//! same year changes nothing, and `settings.rolloverDate` rolls over once before a sync.
mod admin_support;
mod common;

use admin_support::*;
use rostersync::api::Grade;

const CONN: &str = "district-r/main";

async fn child_id(pool: &sqlx::PgPool, clever_id: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT id FROM children WHERE connection = $1 AND clever_id = $2 AND archived_school_year IS NULL",
    )
    .bind(CONN)
    .bind(clever_id)
    .fetch_one(pool)
    .await
    .expect("current child")
}

/// Every children and enrollments row of CONN with its version: equal means nothing was written.
async fn versions(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT 'c' || id || ':' || xmin::text FROM children WHERE connection = $1
         UNION ALL SELECT 'e' || child_id || ':' || xmin::text FROM enrollments WHERE connection = $1
         ORDER BY 1",
    )
    .bind(CONN)
    .fetch_all(pool)
    .await
    .expect("versions")
}

#[tokio::test]
async fn rollover_then_next_years_roster_carries_returning_children_over() {
    let Some(db) = db().await else { return };
    let year1 = roster(vec![
        child("a", "Ann", Grade::Preschool),
        child("b", "Bo", Grade::Preschool),
        child("c", "Cy", Grade::Preschool),
    ]);
    sync(&db.pool, &request(CONN, spec(true)), &year1).await;
    let a = child_id(&db.pool, "a").await;
    let b = child_id(&db.pool, "b").await;
    exec(
        &db.pool,
        &format!("UPDATE children SET has_progress = true, journey = 'Math', placement_level = 7 WHERE id = {a}"),
    )
    .await;

    let before = versions(&db.pool).await;
    let dry = rostersync(
        &db,
        &[
            "rollover",
            CONN,
            "--school-year",
            "2025-2026",
            "--dry-run",
            "-o",
            "json",
        ],
    )
    .json();
    assert_eq!(dry["children"], 3);
    assert_eq!(dry["enrollments"], 3);
    assert_eq!(dry["dryRun"], true);
    assert_eq!(versions(&db.pool).await, before, "a dry run wrote rows");

    let done = rostersync(
        &db,
        &["rollover", CONN, "--school-year", "2025-2026", "-o", "json"],
    )
    .json();
    assert_eq!(done["children"], 3);
    assert_eq!(done["alreadyDone"], false);
    assert_eq!(
        scalar(
            &db.pool,
            "SELECT count(*) FROM children WHERE archived_school_year = '2025-2026' AND NOT active"
        )
        .await,
        3
    );
    assert_eq!(
        scalar(&db.pool, "SELECT count(*) FROM enrollments WHERE active").await,
        0
    );

    // Idempotent: the same year again changes nothing.
    let archived = versions(&db.pool).await;
    let again = rostersync(
        &db,
        &["rollover", CONN, "--school-year", "2025-2026", "-o", "json"],
    )
    .json();
    assert_eq!(again["alreadyDone"], true);
    assert_eq!(
        versions(&db.pool).await,
        archived,
        "a second rollover wrote rows"
    );
    let table = rostersync(&db, &["rollover", CONN, "--school-year", "2025-2026"]);
    assert!(
        table.stderr.contains("already rolled over"),
        "{}",
        table.stderr
    );

    // Next year's roster: a and b return (new grade), c left, d is new.
    let year2 = roster(vec![
        child("a", "Ann", Grade::PreKindergarten),
        child("b", "Bo", Grade::PreKindergarten),
        child("d", "Di", Grade::Preschool),
    ]);
    let run = sync(&db.pool, &request(CONN, spec(true)), &year2).await;
    assert_eq!(
        run.counts.children.carried_over, 2,
        "{:?}",
        run.counts.children
    );
    assert_eq!(run.counts.children.created, 1);
    assert_eq!(child_id(&db.pool, "a").await, a, "a kept its row");
    assert_eq!(child_id(&db.pool, "b").await, b, "b kept its row");
    let (progress, journey, level): (bool, Option<String>, Option<i32>) =
        sqlx::query_as("SELECT has_progress, journey, placement_level FROM children WHERE id = $1")
            .bind(a)
            .fetch_one(&db.pool)
            .await
            .expect("a");
    assert!(progress);
    assert_eq!(journey.as_deref(), Some("Math"));
    assert_eq!(level, Some(7));
    assert_eq!(
        scalar(
            &db.pool,
            &format!("SELECT count(*) FROM enrollments WHERE active AND child_id IN ({a}, {b})")
        )
        .await,
        2
    );
    assert_eq!(
        scalar(&db.pool, "SELECT count(*) FROM children WHERE clever_id = 'c' AND archived_school_year = '2025-2026'").await,
        1,
        "c stays archived"
    );
}

#[tokio::test]
async fn a_child_archived_in_two_years_matches_the_newer_record() {
    let Some(db) = db().await else { return };
    let z = || roster(vec![child("z", "Zed", Grade::Preschool)]);
    // 2023-2024: z synced, rolled over.
    sync(&db.pool, &request(CONN, spec(false)), &z()).await;
    let older = child_id(&db.pool, "z").await;
    rostersync(&db, &["rollover", CONN, "--school-year", "2023-2024"]).ok();
    // 2024-2025 without carry-over: a second record of z, rolled over too.
    sync(&db.pool, &request(CONN, spec(false)), &z()).await;
    let newer = child_id(&db.pool, "z").await;
    assert_ne!(newer, older);
    rostersync(&db, &["rollover", CONN, "--school-year", "2024-2025"]).ok();

    // 2025-2026 with carry-over: both records match z by Clever id; the newer year wins.
    let run = sync(&db.pool, &request(CONN, spec(true)), &z()).await;
    assert_eq!(
        run.counts.children.carried_over, 1,
        "{:?}",
        run.problem_codes
    );
    assert_eq!(run.problem_codes.get("CarryoverAmbiguous"), None);
    assert_eq!(child_id(&db.pool, "z").await, newer);
    assert_eq!(
        scalar(&db.pool, &format!("SELECT count(*) FROM children WHERE id = {older} AND archived_school_year = '2023-2024'")).await,
        1
    );
}

#[tokio::test]
async fn two_records_of_the_same_year_stay_ambiguous() {
    let Some(db) = db().await else { return };
    sync(
        &db.pool,
        &request(CONN, spec(false)),
        &roster(vec![child("y", "Yu", Grade::Preschool)]),
    )
    .await;
    rostersync(&db, &["rollover", CONN, "--school-year", "2024-2025"]).ok();
    // A second archived record of that year with y's SIS id.
    exec(
        &db.pool,
        "INSERT INTO children (connection, clever_id, sis_id, archived_school_year, active)
         VALUES ('district-r/main', 'y-old', 'sis-y', '2024-2025', false)",
    )
    .await;
    let mut y = child("y", "Yu", Grade::Preschool);
    y.clever_id = "y2".into();
    let run = sync(&db.pool, &request(CONN, spec(true)), &roster(vec![y])).await;
    assert_eq!(run.problem_codes.get("CarryoverAmbiguous"), Some(&1));
    assert_eq!(run.counts.children.carried_over, 0);
}

#[tokio::test]
async fn rollover_date_rolls_the_year_over_once_before_the_first_sync_after_it() {
    let Some(db) = db().await else { return };
    let mut settings = spec(true);
    settings.settings.rollover_date = Some("07-01".into());
    let kids = || {
        roster(vec![
            child("a", "Ann", Grade::Preschool),
            child("b", "Bo", Grade::Preschool),
        ])
    };
    let mut june = request(CONN, settings.clone());
    june.today = jiff::civil::date(2026, 6, 15);
    sync(&db.pool, &june, &kids()).await;
    let a = child_id(&db.pool, "a").await;
    // June: the due year is 2024-2025 (nothing to archive yet, recorded once).
    assert_eq!(
        scalar(&db.pool, "SELECT count(*) FROM school_year_rollovers WHERE school_year = '2024-2025' AND children = 0").await,
        1
    );

    let mut july = request(CONN, settings.clone());
    july.today = jiff::civil::date(2026, 7, 2);
    let run = sync(&db.pool, &july, &kids()).await;
    assert_eq!(
        run.counts.children.carried_over, 2,
        "{:?}",
        run.counts.children
    );
    assert_eq!(child_id(&db.pool, "a").await, a);
    assert_eq!(
        scalar(&db.pool, "SELECT count(*) FROM school_year_rollovers WHERE school_year = '2025-2026' AND children = 2 AND rolled_by = 'rolloverDate'").await,
        1
    );

    let mut later = request(CONN, settings);
    later.today = jiff::civil::date(2026, 7, 20);
    let again = sync(&db.pool, &later, &kids()).await;
    assert_eq!(again.counts.children.carried_over, 0);
    assert_eq!(again.counts.children.unchanged, 2);
}
