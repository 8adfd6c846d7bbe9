//! `match` against a real Postgres and the real sync engine: an ambiguous carry-over linked by
//! hand stays one child (progress and journey kept) through later syncs; educators already in the
//! product are linked by email, two candidates are reported, never guessed.
mod admin_support;
mod common;

use admin_support::*;
use rostersync::api::Grade;

const CONN: &str = "district-m/main";

async fn current(pool: &sqlx::PgPool, clever_id: &str) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT id FROM children WHERE connection = $1 AND clever_id = $2 AND archived_school_year IS NULL",
    )
    .bind(CONN)
    .bind(clever_id)
    .fetch_all(pool)
    .await
    .expect("children")
}

/// Two archived children of last year with a's SIS id.
async fn two_archived_candidates(pool: &sqlx::PgPool) -> (i64, i64) {
    let ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO children (connection, clever_id, sis_id, archived_school_year, active, journey, has_progress, placement_level)
         VALUES ($1, 'old-1', 'sis-a', '2024-2025', false, 'Math', true, 5),
                ($1, 'old-2', 'sis-a', '2024-2025', false, 'Readiness', false, 2)
         RETURNING id",
    )
    .bind(CONN)
    .fetch_all(pool)
    .await
    .expect("archived");
    (ids[0], ids[1])
}

#[tokio::test]
async fn an_ambiguous_carry_over_linked_by_hand_stays_one_child_through_syncs() {
    let Some(db) = db().await else { return };
    let (keep, other) = two_archived_candidates(&db.pool).await;
    let kids = || {
        roster(vec![
            child("a", "Ann", Grade::Preschool),
            child("b", "Bo", Grade::Preschool),
        ])
    };
    let run = sync(&db.pool, &request(CONN, spec(true)), &kids()).await;
    assert_eq!(run.problem_codes.get("CarryoverAmbiguous"), Some(&1));
    let dup = current(&db.pool, "a").await;
    assert_eq!(dup.len(), 1, "a was created new");
    let problems = rostersync(&db, &["problems", CONN, "-o", "json"]).json();
    assert!(problems["items"].as_array().is_some_and(|p| {
        p.iter()
            .any(|p| p["code"] == "CarryoverAmbiguous" && p["cleverId"] == "a")
    }));

    let list = rostersync(&db, &["match", "list", CONN, "-o", "json"]).json();
    let row = list["items"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["cleverId"] == "a"))
        .cloned()
        .expect("a is listed");
    assert_eq!(row["status"], "ambiguous");
    assert_eq!(row["id"], dup[0]);
    assert_eq!(row["candidates"], format!("{keep} {other}"));
    let csv = parse_csv(rostersync(&db, &["match", "list", CONN, "-o", "csv"]).ok());
    assert_eq!(csv[0], ["KIND", "STATUS", "CLEVER ID", "ID", "CANDIDATES"]);

    // A dry run changes nothing; an unknown target is a clear error.
    let dry = rostersync(
        &db,
        &[
            "match",
            "link",
            CONN,
            "--clever-id",
            "a",
            "--to",
            &keep.to_string(),
            "--dry-run",
        ],
    );
    dry.ok();
    assert_eq!(current(&db.pool, "a").await, dup);
    let unknown = rostersync(
        &db,
        &["match", "link", CONN, "--clever-id", "a", "--to", "999999"],
    );
    assert_eq!(unknown.code, Some(1));
    assert!(
        unknown.stderr.contains("has no child with id 999999"),
        "{}",
        unknown.stderr
    );

    let linked = rostersync(
        &db,
        &[
            "match",
            "link",
            CONN,
            "--clever-id",
            "a",
            "--to",
            &keep.to_string(),
            "-o",
            "json",
            "--by",
            "admin@district",
        ],
    )
    .json();
    assert_eq!(linked["mergedDuplicate"], dup[0]);
    assert_eq!(current(&db.pool, "a").await, vec![keep]);
    assert_eq!(
        scalar(
            &db.pool,
            &format!("SELECT count(*) FROM enrollments WHERE child_id = {keep} AND active")
        )
        .await,
        1,
        "the roster's enrollment moved to the linked child"
    );

    let next = sync(&db.pool, &request(CONN, spec(true)), &kids()).await;
    assert_eq!(next.problem_codes.get("CarryoverAmbiguous"), None);
    assert_eq!(
        current(&db.pool, "a").await,
        vec![keep],
        "one child, linked"
    );
    let (progress, journey, level): (bool, Option<String>, Option<i32>) =
        sqlx::query_as("SELECT has_progress, journey, placement_level FROM children WHERE id = $1")
            .bind(keep)
            .fetch_one(&db.pool)
            .await
            .expect("kept");
    assert!(progress);
    assert_eq!(journey.as_deref(), Some("Math"));
    assert_eq!(level, Some(5));
    let problems = rostersync(&db, &["problems", CONN]);
    assert!(
        !problems.ok().contains("CarryoverAmbiguous"),
        "{}",
        problems.stdout
    );
    assert!(
        !rostersync(&db, &["match", "list", CONN, "-o", "csv"])
            .ok()
            .contains(",a,"),
        "a is no longer listed"
    );
    assert_eq!(
        scalar(&db.pool, "SELECT count(*) FROM roster_links WHERE clever_id = 'a' AND linked_by = 'admin@district' AND unlinked_at IS NULL").await,
        1
    );

    // Unlink: the child is the product's own again and is not matched back (same SIS id).
    rostersync(&db, &["match", "unlink", CONN, "--clever-id", "a"]).ok();
    let after = sync(&db.pool, &request(CONN, spec(true)), &kids()).await;
    let again = current(&db.pool, "a").await;
    assert_eq!(again.len(), 1);
    assert_ne!(again[0], keep, "an unlinked record is not matched again");
    assert_eq!(after.counts.children.matched, 0);
}

#[tokio::test]
async fn educators_in_the_product_are_linked_by_email_and_two_candidates_are_reported() {
    let Some(db) = db().await else { return };
    let manual: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO educators (connection, clever_id, source, email, first_name) VALUES
            ($1, NULL, 'manual', ' T1@School.example', 'Tea'),
            ($1, NULL, 'manual', 'twin@school.example', 'One'),
            ($1, NULL, 'manual', 'twin@school.example', 'Two')
         RETURNING id",
    )
    .bind(CONN)
    .fetch_all(&db.pool)
    .await
    .expect("manual educators");
    let mut source = roster(vec![child("a", "Ann", Grade::Preschool)]);
    source.educators.push(educator("t2", "twin@school.example"));
    let run = sync(&db.pool, &request(CONN, spec(false)), &source).await;
    assert_eq!(
        run.counts.educators.matched, 1,
        "{:?}",
        run.counts.educators
    );
    assert_eq!(run.problem_codes.get("EducatorMatchAmbiguous"), Some(&1));
    let t1: Vec<i64> = sqlx::query_scalar("SELECT id FROM educators WHERE clever_id = 't1'")
        .fetch_all(&db.pool)
        .await
        .expect("t1");
    assert_eq!(t1, vec![manual[0]], "linked, not duplicated");
    assert_eq!(
        scalar(
            &db.pool,
            "SELECT count(*) FROM educators WHERE clever_id = 't2'"
        )
        .await,
        1,
        "the ambiguous teacher was created new"
    );
    assert_eq!(
        scalar(&db.pool, "SELECT count(*) FROM educators WHERE source = 'manual' AND clever_id IS NULL AND active").await,
        2,
        "no candidate was guessed (nor removed)"
    );

    let list = rostersync(&db, &["match", "list", CONN, "-o", "json"]).json();
    let row = list["items"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["cleverId"] == "t2"))
        .cloned()
        .expect("t2 listed");
    assert_eq!(row["kind"], "educator");
    assert_eq!(row["candidates"], format!("{} {}", manual[1], manual[2]));

    rostersync(
        &db,
        &[
            "match",
            "link",
            CONN,
            "--kind",
            "educator",
            "--clever-id",
            "t2",
            "--to",
            &manual[2].to_string(),
        ],
    )
    .ok();
    let next = sync(&db.pool, &request(CONN, spec(false)), &source).await;
    assert_eq!(next.problem_codes.get("EducatorMatchAmbiguous"), None);
    let t2: Vec<i64> = sqlx::query_scalar("SELECT id FROM educators WHERE clever_id = 't2'")
        .fetch_all(&db.pool)
        .await
        .expect("t2");
    assert_eq!(t2, vec![manual[2]]);
    assert_eq!(scalar(&db.pool, "SELECT count(*) FROM educators").await, 3);
}
