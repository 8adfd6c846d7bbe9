//! The bulk journey updater against a real Postgres: exactly the selected children of one
//! connection change, only to a licensed product, and `revert` restores each child's journey.
mod admin_support;
mod common;

use admin_support::*;
use rostersync::api::Grade;

const A: &str = "district-j/a";
const B: &str = "district-j/b";

async fn journeys(pool: &sqlx::PgPool, connection: &str) -> Vec<(String, Option<String>)> {
    sqlx::query_as(
        "SELECT clever_id, journey FROM children WHERE connection = $1 ORDER BY clever_id",
    )
    .bind(connection)
    .fetch_all(pool)
    .await
    .expect("journeys")
}

#[tokio::test]
async fn set_changes_exactly_the_selected_children_and_revert_restores_each() {
    let Some(db) = db().await else { return };
    let kids = || {
        roster(vec![
            child("p1", "Pat", Grade::Preschool),
            child("p2", "Pia", Grade::Preschool),
            child("p3", "Poe", Grade::Preschool),
            child("k1", "Kim", Grade::PreKindergarten),
        ])
    };
    sync(&db.pool, &request(A, spec(false)), &kids()).await;
    sync(&db.pool, &request(B, spec(false)), &kids()).await;
    // Each child's journey before: differing, to see each restored.
    exec(
        &db.pool,
        "UPDATE children SET journey = NULL WHERE connection = 'district-j/a' AND clever_id = 'p2'",
    )
    .await;
    exec(&db.pool, "UPDATE children SET journey = 'Math' WHERE connection = 'district-j/a' AND clever_id = 'p3'").await;
    exec(
        &db.pool,
        "INSERT INTO product_licenses (product) VALUES ('Readiness'), ('Math'), ('Science')",
    )
    .await;
    let a_before = journeys(&db.pool, A).await;
    let b_before = journeys(&db.pool, B).await;

    let unlicensed = rostersync(
        &db,
        &[
            "journeys",
            "set",
            A,
            "--grade",
            "Preschool",
            "--journey",
            "Art",
        ],
    );
    assert_eq!(unlicensed.code, Some(1));
    assert!(
        unlicensed.stderr.contains("not a licensed product"),
        "{}",
        unlicensed.stderr
    );
    assert_eq!(journeys(&db.pool, A).await, a_before);

    let dry = rostersync(
        &db,
        &[
            "journeys",
            "set",
            A,
            "--grade",
            "Preschool",
            "--journey",
            "Science",
            "--dry-run",
            "-o",
            "json",
        ],
    )
    .json();
    assert_eq!(dry["children"], 3);
    assert_eq!(dry["sampleIds"].as_array().map(Vec::len), Some(3));
    assert_eq!(dry["changeId"], serde_json::Value::Null);
    assert_eq!(
        journeys(&db.pool, A).await,
        a_before,
        "a dry run changed journeys"
    );

    let set = rostersync(
        &db,
        &[
            "journeys",
            "set",
            A,
            "--grade",
            "Preschool",
            "--journey",
            "Science",
            "-o",
            "json",
            "--by",
            "ops@district",
        ],
    )
    .json();
    assert_eq!(set["children"], 3);
    let change_id = set["changeId"].as_i64().expect("change id");
    let after = journeys(&db.pool, A).await;
    for (id, journey) in &after {
        let want = if id.starts_with('p') {
            Some("Science".to_string())
        } else {
            a_before
                .iter()
                .find(|(c, _)| c == id)
                .and_then(|(_, j)| j.clone())
        };
        assert_eq!(journey, &want, "{id}");
    }
    assert_eq!(
        journeys(&db.pool, B).await,
        b_before,
        "another connection changed"
    );

    let list = rostersync(&db, &["journeys", "list", A, "-o", "csv"]);
    let rows = parse_csv(list.ok());
    assert_eq!(rows[0][..4], ["ID", "CHANGED", "BY", "SELECTOR"]);
    assert_eq!(rows[1][0], change_id.to_string());
    assert_eq!(rows[1][2], "ops@district");
    assert_eq!(rows[1][3], "grade=Preschool");
    assert_eq!(
        scalar(&db.pool, &format!("SELECT count(*) FROM journey_change_items WHERE change_id = {change_id} AND to_journey = 'Science'")).await,
        3
    );

    let reverted = rostersync(
        &db,
        &[
            "journeys",
            "revert",
            A,
            &change_id.to_string(),
            "-o",
            "json",
        ],
    )
    .json();
    assert_eq!(reverted["restored"], 3);
    assert_eq!(
        journeys(&db.pool, A).await,
        a_before,
        "each child's journey restored"
    );
    let twice = rostersync(&db, &["journeys", "revert", A, &change_id.to_string()]);
    assert_eq!(twice.code, Some(1));
    assert!(
        twice.stderr.contains("already reverted"),
        "{}",
        twice.stderr
    );
    let unknown = rostersync(&db, &["journeys", "revert", A, "999999"]);
    assert_eq!(unknown.code, Some(1));
    assert!(
        unknown.stderr.contains("has no journey change 999999"),
        "{}",
        unknown.stderr
    );
    // Another connection's change id is unknown here.
    let other = rostersync(&db, &["journeys", "revert", B, &change_id.to_string()]);
    assert_eq!(other.code, Some(1));

    // A CSV of ids, through kubectl roster.
    let dir = std::env::temp_dir().join(format!("admin-journeys-{}", common::unique_suffix()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("ids.csv");
    std::fs::write(&file, "clever_id\nk1\n").expect("ids");
    let by_ids = kubectl_roster(
        &db,
        &[
            "journeys",
            "set",
            "a",
            "-n",
            "district-j",
            "--ids-file",
            file.to_str().expect("path"),
            "--journey",
            "Math",
            "-o",
            "json",
        ],
    )
    .json();
    assert_eq!(by_ids["children"], 1);
    let k1: Option<String> = sqlx::query_scalar(
        "SELECT journey FROM children WHERE connection = 'district-j/a' AND clever_id = 'k1'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("k1");
    assert_eq!(k1.as_deref(), Some("Math"));
    std::fs::write(&file, "k1\nnot-a-child\n").expect("ids");
    let unknown_ids = rostersync(
        &db,
        &[
            "journeys",
            "set",
            A,
            "--ids-file",
            file.to_str().expect("path"),
            "--journey",
            "Math",
        ],
    );
    assert_eq!(unknown_ids.code, Some(1));
    assert!(
        unknown_ids.stderr.contains("not current children"),
        "{}",
        unknown_ids.stderr
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn new_children_get_only_a_journey_the_operator_licenses() {
    let Some(db) = db().await else { return };
    // The district's policy lists Readiness, but the operator holds only Math.
    exec(
        &db.pool,
        "INSERT INTO product_licenses (product) VALUES ('Math')",
    )
    .await;
    let run = sync(
        &db.pool,
        &request(A, spec(false)),
        &roster(vec![child("n1", "Nia", Grade::Preschool)]),
    )
    .await;
    assert_eq!(run.problem_codes.get("JourneyNotLicensed"), Some(&1));
    assert_eq!(journeys(&db.pool, A).await, [("n1".to_string(), None)]);
    // Once the operator licenses it, the next new child gets it.
    exec(
        &db.pool,
        "INSERT INTO product_licenses (product) VALUES ('Readiness')",
    )
    .await;
    let run = sync(
        &db.pool,
        &request(A, spec(false)),
        &roster(vec![
            child("n1", "Nia", Grade::Preschool),
            child("n2", "Ned", Grade::Preschool),
        ]),
    )
    .await;
    assert_eq!(run.problem_codes.get("JourneyNotLicensed"), None);
    assert_eq!(
        journeys(&db.pool, A).await,
        [
            ("n1".to_string(), None),
            ("n2".to_string(), Some("Readiness".to_string()))
        ]
    );
}
