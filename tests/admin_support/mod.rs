//! Shared by the tests/admin_*.rs files: a migrated database, a small roster fed to the real sync
//! engine, and the two binaries run as processes (`rostersync ... --database-url`, `kubectl-roster`).
#![allow(dead_code)]

use rostersync::api::{Grade, JourneyPolicySpec, RosterConnectionSpec, Trigger};
use rostersync::run::RunRecord;
use rostersync::sync::fetch::StaticSource;
use rostersync::sync::model::{
    Demographics, StagedChild, StagedClassroom, StagedEducator, StagedSchool,
};
use rostersync::sync::{SyncRequest, run_sync};
use sqlx::PgPool;

use super::common;

/// A migrated fresh database, or `None` (skipped) without Postgres.
pub async fn db() -> Option<common::TestDb> {
    let db = common::fresh_db().await?;
    rostersync::store::migrate(&db.pool).await.expect("migrate");
    Some(db)
}

pub fn spec(auto_carryover: bool) -> RosterConnectionSpec {
    serde_json::from_value(serde_json::json!({
        "districtId": "0123456789abcdef01234567",
        "apiBaseUrl": "http://127.0.0.1:1",
        "credentialsSecretRef": {"name": "clever"},
        "settings": {"autoCarryover": auto_carryover},
    }))
    .expect("spec")
}

pub fn policy() -> JourneyPolicySpec {
    serde_json::from_value(serde_json::json!({
        "licensedProducts": ["Readiness", "Math"],
        "newChildJourney": "Readiness",
    }))
    .expect("policy")
}

pub fn request(connection: &str, spec: RosterConnectionSpec) -> SyncRequest {
    SyncRequest {
        connection: connection.parse().expect("connection key"),
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

/// A child; the first name and birth date are personal data the CSV must never show.
pub fn child(id: &str, first: &str, grade: Grade) -> StagedChild {
    StagedChild {
        clever_id: id.into(),
        sis_id: Some(format!("sis-{id}")),
        first_name: Some(first.into()),
        last_name: Some("Doe".into()),
        grade: Some(grade),
        dob_grade: None,
        primary_school: Some("s1".into()),
        demographics: Some(Demographics {
            dob: Some(jiff::civil::date(2021, 3, 4)),
            ..Default::default()
        }),
    }
}

pub fn classroom(id: &str, grade: Grade, students: &[&str]) -> StagedClassroom {
    StagedClassroom {
        clever_id: id.into(),
        school_clever_id: "s1".into(),
        name: format!("Room {id}"),
        grade: Some(grade),
        subject: Some("homeroom/advisory".into()),
        teacher_clever_id: Some("t1".into()),
        students: students.iter().map(|s| s.to_string()).collect(),
    }
}

pub fn educator(id: &str, email: &str) -> StagedEducator {
    StagedEducator {
        clever_id: id.into(),
        first_name: Some("Tea".into()),
        last_name: Some("Cher".into()),
        email: Some(email.into()),
        ..Default::default()
    }
}

/// One school; `children` all in classroom c1 (their grade their own).
pub fn roster(children: Vec<StagedChild>) -> StaticSource {
    let ids: Vec<String> = children.iter().map(|c| c.clever_id.clone()).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    StaticSource {
        schools: vec![StagedSchool {
            clever_id: "s1".into(),
            name: "Little Oaks".into(),
            ..Default::default()
        }],
        classrooms: vec![classroom("c1", Grade::Preschool, &refs)],
        children,
        educators: vec![educator("t1", "t1@school.example")],
        problems: vec![],
    }
}

pub async fn sync(pool: &PgPool, req: &SyncRequest, source: &StaticSource) -> RunRecord {
    let run = run_sync(pool, req, source).await.expect("sync runs");
    assert_eq!(
        run.result,
        rostersync::api::RunResult::Succeeded,
        "{:?} {:?}",
        run.reason,
        run.message
    );
    run
}

pub async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

pub async fn exec(pool: &PgPool, sql: &str) {
    sqlx::raw_sql(sql).execute(pool).await.expect(sql);
}

/// A finished process: exit code, stdout, stderr.
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

fn run(bin: &str, db: &common::TestDb, args: &[&str]) -> Out {
    let out = std::process::Command::new(bin)
        .args(args)
        .args(["--database-url", &db.url])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `rostersync ARGS --database-url URL`.
pub fn rostersync(db: &common::TestDb, args: &[&str]) -> Out {
    run(env!("CARGO_BIN_EXE_rostersync"), db, args)
}

/// `kubectl-roster ARGS --database-url URL`.
pub fn kubectl_roster(db: &common::TestDb, args: &[&str]) -> Out {
    run(env!("CARGO_BIN_EXE_kubectl-roster"), db, args)
}

/// Parses CSV with Python's csv module: the rows as lists of cells.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            "import csv, json, sys; print(json.dumps(list(csv.reader(sys.stdin, strict=True))))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python3 runs");
    assert!(out.status.success(), "csv module rejected:\n{text}");
    serde_json::from_slice(&out.stdout).expect("rows")
}
