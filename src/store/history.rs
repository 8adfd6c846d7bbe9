//! Reading the sync history.
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};

use super::StoreError;

/// One `sync_runs` row.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRow {
    pub run_id: String,
    pub connection: String,
    pub schedule: Option<String>,
    pub trigger: String,
    pub job: Option<String>,
    pub dry_run: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `Running`, `Succeeded`, `Failed` or `Held`.
    pub result: String,
    pub retriable: bool,
    pub counts: serde_json::Value,
    pub problems: i32,
    pub problem_codes: serde_json::Value,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub timings: serde_json::Value,
}

impl RunRow {
    /// The exit code `rostersync sync` gives for this (finished) run: 0 succeeded, 3 held,
    /// 1 retriable failure, 2 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self.result.as_str() {
            "Succeeded" => 0,
            "Held" => 3,
            "Failed" if self.retriable => 1,
            "Failed" => 2,
            _ => 1,
        }
    }

    fn from_row(row: &sqlx::postgres::PgRow) -> Result<RunRow, sqlx::Error> {
        Ok(RunRow {
            run_id: row.try_get("run_id")?,
            connection: row.try_get("connection")?,
            schedule: row.try_get("schedule")?,
            trigger: row.try_get("trigger")?,
            job: row.try_get("job")?,
            dry_run: row.try_get("dry_run")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            result: row.try_get("result")?,
            retriable: row.try_get("retriable")?,
            counts: row.try_get("counts")?,
            problems: row.try_get("problems")?,
            problem_codes: row.try_get("problem_codes")?,
            reason: row.try_get("reason")?,
            message: row.try_get("message")?,
            timings: row.try_get("timings")?,
        })
    }
}

const RUN_COLUMNS: &str = "run_id, connection, schedule, trigger, job, dry_run, started_at, finished_at, \
     result, retriable, counts, problems, problem_codes, reason, message, timings";

/// The most recent runs, newest first, optionally of one connection (`namespace/name`).
pub async fn list_runs(
    pool: &PgPool,
    connection: Option<&str>,
    limit: i64,
) -> Result<Vec<RunRow>, StoreError> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM sync_runs WHERE ($1::text IS NULL OR connection = $1) \
         ORDER BY started_at DESC, run_id DESC LIMIT $2"
    );
    let rows = sqlx::query(&sql)
        .bind(connection)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(StoreError::query("reading sync_runs"))?;
    rows.iter()
        .map(RunRow::from_row)
        .collect::<Result<_, _>>()
        .map_err(StoreError::query("decoding sync_runs"))
}

/// The run with this id, if any.
pub async fn run_by_id(
    executor: impl sqlx::PgExecutor<'_>,
    run_id: &str,
) -> Result<Option<RunRow>, StoreError> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE run_id = $1");
    let row = sqlx::query(&sql)
        .bind(run_id)
        .fetch_optional(executor)
        .await
        .map_err(StoreError::query("reading a sync run"))?;
    row.as_ref()
        .map(RunRow::from_row)
        .transpose()
        .map_err(StoreError::query("decoding a sync run"))
}

/// [`run_by_id`] on a connection (a concrete executor keeps the caller's future `Send`).
pub async fn run_by_id_on(
    conn: &mut sqlx::PgConnection,
    run_id: &str,
) -> Result<Option<RunRow>, StoreError> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE run_id = $1");
    let row = sqlx::query(&sql)
        .bind(run_id)
        .fetch_optional(conn)
        .await
        .map_err(StoreError::query("reading a sync run"))?;
    row.as_ref()
        .map(RunRow::from_row)
        .transpose()
        .map_err(StoreError::query("decoding a sync run"))
}

/// One `sync_problems` row (ids and codes only, never personal data).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProblemRow {
    pub record_kind: String,
    pub clever_id: Option<String>,
    pub code: String,
    pub message: String,
}

/// The problems recorded for a run, in recording order.
pub async fn problems_of_run(pool: &PgPool, run_id: &str) -> Result<Vec<ProblemRow>, StoreError> {
    let rows = sqlx::query("SELECT record_kind, clever_id, code, message FROM sync_problems WHERE run_id = $1 ORDER BY id")
        .bind(run_id)
        .fetch_all(pool)
        .await
        .map_err(StoreError::query("reading sync_problems"))?;
    rows.iter()
        .map(|r| {
            Ok(ProblemRow {
                record_kind: r.try_get("record_kind")?,
                clever_id: r.try_get("clever_id")?,
                code: r.try_get("code")?,
                message: r.try_get("message")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::query("decoding sync_problems"))
}
