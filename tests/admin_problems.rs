//! `problems` (both binaries) against a real Postgres after a real sync: by code, Clever ids and
//! what to do, CSV that Python's csv module reads, never a name or a birth date; `history -o json`
//! has the counts by code.
mod admin_support;
mod common;

use admin_support::*;
use rostersync::api::Grade;

const CONN: &str = "district-p/main";

#[tokio::test]
async fn problems_of_a_run_by_code_with_ids_only_in_every_format() {
    let Some(db) = db().await else { return };
    let mut source = roster(vec![
        child("a", "Annabel", Grade::Preschool),
        child("b", "Bartholomew", Grade::Preschool),
    ]);
    // b in a second section (MultipleSections); a section lists a student Clever did not return.
    source
        .classrooms
        .push(classroom("c2", Grade::Preschool, &["b", "ghost"]));
    let run = sync(&db.pool, &request(CONN, spec(false)), &source).await;
    assert_eq!(run.problem_codes.get("MultipleSections"), Some(&1));

    let table = rostersync(&db, &["problems", CONN]);
    let text = table.ok();
    assert!(
        table
            .stderr
            .contains(&format!("run {} of {CONN}", run.run_id)),
        "{}",
        table.stderr
    );
    assert!(text.contains("MultipleSections"), "{text}");
    assert!(text.contains("StudentNotFound"), "{text}");
    assert!(text.contains("ghost"), "{text}");
    assert!(text.contains("WHAT TO DO"), "{text}");
    // By code: MultipleSections before StudentNotFound.
    assert!(text.find("MultipleSections") < text.find("StudentNotFound"));

    let csv = rostersync(&db, &["problems", CONN, &run.run_id, "-o", "csv"]);
    let rows = parse_csv(csv.ok());
    assert_eq!(
        rows[0],
        [
            "CODE",
            "KIND",
            "CLEVER ID",
            "WHAT TO DO",
            "MESSAGE",
            "RUN ID"
        ]
    );
    assert!(rows[1..].iter().all(|r| r[5] == run.run_id));
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[1][0], "MultipleSections");
    assert_eq!(rows[1][2], "b");
    assert_eq!(rows[2][0], "StudentNotFound");
    assert_eq!(rows[2][2], "ghost");
    for personal in ["Annabel", "Bartholomew", "Doe", "2021", "3/4"] {
        assert!(
            !csv.stdout.contains(personal),
            "{personal} in:\n{}",
            csv.stdout
        );
        assert!(
            !table.stdout.contains(personal),
            "{personal} in:\n{}",
            table.stdout
        );
    }

    let json = rostersync(&db, &["problems", CONN, "-o", "json"]).json();
    assert_eq!(json["kind"], "ProblemList");
    assert_eq!(json["items"][0]["runId"], run.run_id.as_str());
    assert_eq!(json["items"][0]["cleverId"], "b");
    assert!(
        json["items"][0]["whatToDo"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );

    // kubectl roster: the same verb, the same output, NAME completed by -n.
    let plugin = kubectl_roster(&db, &["problems", "main", "-n", "district-p", "-o", "csv"]);
    assert_eq!(plugin.ok(), csv.stdout);

    // history -o json carries the problem counts by code.
    let history = rostersync(&db, &["history", "--connection", CONN, "--output", "json"]).json();
    assert_eq!(history["items"][0]["problemCodes"]["MultipleSections"], 1);
    assert_eq!(history["items"][0]["problemCodes"]["StudentNotFound"], 1);
}

#[tokio::test]
async fn unknown_runs_and_connections_are_clear_errors() {
    let Some(db) = db().await else { return };
    let none = rostersync(&db, &["problems", CONN]);
    assert_eq!(none.code, Some(1));
    assert!(
        none.stderr.contains("has no sync runs yet"),
        "{}",
        none.stderr
    );
    sync(
        &db.pool,
        &request(CONN, spec(false)),
        &roster(vec![child("a", "Ann", Grade::Preschool)]),
    )
    .await;
    let unknown = rostersync(&db, &["problems", CONN, "run-nope"]);
    assert_eq!(unknown.code, Some(1));
    assert!(
        unknown.stderr.contains("has no run run-nope"),
        "{}",
        unknown.stderr
    );
    let clean = rostersync(&db, &["problems", CONN]);
    clean.ok();
    assert!(clean.stderr.contains("no problems"), "{}", clean.stderr);
    let bad = rostersync(&db, &["problems", "no-slash"]);
    assert_eq!(bad.code, Some(1));
    assert!(bad.stderr.contains("NAMESPACE/NAME"), "{}", bad.stderr);
}
