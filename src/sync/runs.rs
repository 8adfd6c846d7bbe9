//! The run's `sync_runs` row and its problems.
use sqlx::PgConnection;

use super::SyncError;
use super::model::{Counts, ProblemCodes};
use crate::api::RunResult;

/// Identity of a run, as recorded.
#[derive(Clone, Debug)]
pub struct RunIdentity {
    pub run_id: String,
    pub connection: String,
    pub trigger: crate::api::Trigger,
    pub schedule: Option<String>,
    pub job: Option<String>,
    pub dry_run: bool,
}

/// Marks runs of this connection still `Running` as Failed: the caller holds the connection's
/// lock, so they belong to processes that died (a crashed or killed Job pod).
pub async fn fail_interrupted(
    conn: &mut PgConnection,
    connection: &str,
    except_run: &str,
) -> Result<u64, SyncError> {
    let r = sqlx::query(
        "UPDATE sync_runs SET result = 'Failed', retriable = true, finished_at = now(), reason = 'Interrupted',
                message = 'the run stopped before recording an outcome (process crashed or was killed); \
                           its roster changes, if any, were rolled back'
         WHERE connection = $1 AND result = 'Running' AND run_id <> $2",
    )
    .bind(connection)
    .bind(except_run)
    .execute(&mut *conn)
    .await
    .map_err(SyncError::db("marking interrupted runs"))?;
    Ok(r.rows_affected())
}

/// Records the run as Running (a retried run of the same id starts over).
pub async fn start(conn: &mut PgConnection, id: &RunIdentity) -> Result<(), SyncError> {
    sqlx::query(
        "INSERT INTO sync_runs (run_id, connection, schedule, trigger, job, dry_run, started_at, result)
         VALUES ($1, $2, $3, $4, $5, $6, now(), 'Running')
         ON CONFLICT (run_id) DO UPDATE SET started_at = now(), result = 'Running', finished_at = NULL,
             reason = NULL, message = NULL, counts = '{}', problems = 0, problem_codes = '{}', timings = '{}'",
    )
    .bind(&id.run_id)
    .bind(&id.connection)
    .bind(&id.schedule)
    .bind(id.trigger.as_str())
    .bind(&id.job)
    .bind(id.dry_run)
    .execute(&mut *conn)
    .await
    .map_err(SyncError::db("recording the run start"))?;
    sqlx::query("DELETE FROM sync_problems WHERE run_id = $1")
        .bind(&id.run_id)
        .execute(&mut *conn)
        .await
        .map_err(SyncError::db("clearing a retried run's problems"))?;
    Ok(())
}

/// Copies the staged problems to `sync_problems` and returns the totals by code.
pub async fn record_problems(
    conn: &mut PgConnection,
    run_id: &str,
) -> Result<ProblemCodes, SyncError> {
    sqlx::query(
        "INSERT INTO sync_problems (run_id, record_kind, clever_id, code, message)
         SELECT $1, record_kind, clever_id, code, message FROM stg_problems ORDER BY id",
    )
    .bind(run_id)
    .execute(&mut *conn)
    .await
    .map_err(SyncError::db("recording problems"))?;
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT code, count(*) FROM stg_problems GROUP BY code ORDER BY code")
            .fetch_all(&mut *conn)
            .await
            .map_err(SyncError::db("counting problems"))?;
    Ok(rows
        .into_iter()
        .map(|(c, n)| (c, u64::try_from(n).unwrap_or(0)))
        .collect())
}

/// The outcome written at the end of a run.
#[derive(Clone, Debug)]
pub struct Finish<'a> {
    pub result: RunResult,
    pub retriable: bool,
    pub counts: &'a Counts,
    pub problem_codes: &'a ProblemCodes,
    pub reason: Option<&'a str>,
    pub message: Option<&'a str>,
    pub timings: serde_json::Value,
}

/// Writes the run's outcome.
pub async fn finish(
    conn: &mut PgConnection,
    run_id: &str,
    f: &Finish<'_>,
) -> Result<(), SyncError> {
    let counts = serde_json::to_value(f.counts).unwrap_or_default();
    let codes = serde_json::to_value(f.problem_codes).unwrap_or_default();
    let problems: u64 = f.problem_codes.values().sum();
    sqlx::query(
        "UPDATE sync_runs SET result = $2, retriable = $3, finished_at = now(), counts = $4, problems = $5,
                problem_codes = $6, reason = $7, message = $8, timings = $9
         WHERE run_id = $1",
    )
    .bind(run_id)
    .bind(f.result.as_str())
    .bind(f.retriable)
    .bind(counts)
    .bind(i32::try_from(problems).unwrap_or(i32::MAX))
    .bind(codes)
    .bind(f.reason)
    .bind(f.message)
    .bind(&f.timings)
    .execute(&mut *conn)
    .await
    .map_err(SyncError::db("recording the run outcome"))?;
    Ok(())
}
