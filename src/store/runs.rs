//! All SQL on `sync_runs` and `sync_problems`: no other module reads or writes these tables.
//!
//! The life of a run: [`start`] (Running) by the sync Job, [`record_problems`] and [`finish`] in
//! its transaction; [`fail_interrupted`] by the next run of the connection for a process that
//! died; [`record_lost_pod`] by the controller for a pod that stopped without an outcome, and
//! [`mark_notified`] once the controller has reported it. Readers get [`RunRecord`]s.
//!
//! A run id is only ever used together with its connection: every statement keyed by a run id
//! also filters on the connection, so a run id from elsewhere (a Job label, a manifest, another
//! district's history) can neither read nor change another connection's run, and a run id taken
//! by another connection is refused ([`StoreError::RunIdTaken`]) instead of overwritten.
use jiff::Timestamp;
use sqlx::{PgConnection, PgExecutor};

use super::StoreError;
use super::time::Ts;
use crate::run::{
    ConnectionKey, Counts, Problem, ProblemCodes, RunRecord, RunResult, Trigger, parse_result,
    parse_trigger,
};

/// Who and what a run is, as recorded when it starts.
#[derive(Clone, Debug)]
pub struct RunStart {
    pub run_id: String,
    pub connection: ConnectionKey,
    pub trigger: Trigger,
    pub schedule: Option<String>,
    pub job: Option<String>,
    pub dry_run: bool,
}

/// The outcome written at the end of a run.
#[derive(Clone, Debug)]
pub struct Finish<'a> {
    pub result: RunResult,
    pub retriable: bool,
    pub counts: &'a Counts,
    pub problem_codes: &'a ProblemCodes,
    pub reason: &'a str,
    pub message: &'a str,
    pub timings: serde_json::Value,
    pub clever: crate::run::CleverRequests,
}

/// A run whose pod stopped without recording an outcome (deadline, OOM, eviction, a killed
/// process), as the controller records it.
#[derive(Clone, Debug)]
pub struct LostPod<'a> {
    pub run_id: &'a str,
    pub connection: &'a ConnectionKey,
    pub schedule: &'a str,
    pub trigger: Trigger,
    pub job: &'a str,
    pub started_at: Timestamp,
    pub reason: &'a str,
    pub message: &'a str,
}

/// The columns of `sync_runs` in table order: what [`Row`] reads, spelled out by every query of it.
pub const ROW_COLUMNS: &[&str] = &[
    "run_id",
    "connection",
    "schedule",
    "trigger",
    "job",
    "dry_run",
    "started_at",
    "finished_at",
    "result",
    "retriable",
    "counts",
    "problems",
    "problem_codes",
    "reason",
    "message",
    "timings",
    "notified_at",
    "attempts",
    "clever_requests",
];

/// A `sync_runs` row as stored: every column of [`ROW_COLUMNS`]. The queries name the
/// columns (timestamps need a `Ts` override, which `SELECT *` cannot carry); a database test
/// (`tests/store_history.rs`, `row_columns_are_the_table_columns`) fails when the table gains a
/// column that is not listed here.
struct Row {
    run_id: String,
    connection: String,
    schedule: Option<String>,
    trigger: String,
    job: Option<String>,
    dry_run: bool,
    started_at: Ts,
    finished_at: Option<Ts>,
    result: String,
    retriable: bool,
    counts: serde_json::Value,
    problems: i32,
    problem_codes: serde_json::Value,
    reason: Option<String>,
    message: Option<String>,
    timings: serde_json::Value,
    clever_requests: serde_json::Value,
    notified_at: Option<Ts>,
    attempts: i32,
}

impl TryFrom<Row> for RunRecord {
    type Error = StoreError;

    fn try_from(row: Row) -> Result<RunRecord, StoreError> {
        let invalid = |column: &'static str, detail: String| StoreError::InvalidRow {
            run_id: row.run_id.clone(),
            column,
            detail,
        };
        let connection = ConnectionKey::parse(&row.connection)
            .map_err(|e| invalid("connection", e.to_string()))?;
        let trigger = parse_trigger(&row.trigger).map_err(|e| invalid("trigger", e))?;
        let started_at = row.started_at.0;
        let finished_at = row.finished_at.map(Timestamp::from);
        Ok(RunRecord {
            connection,
            trigger,
            schedule: row.schedule,
            job: row.job,
            dry_run: row.dry_run,
            started_at,
            finished_at,
            result: parse_result(&row.result),
            retriable: row.retriable,
            counts: Counts::from_json(&row.counts),
            problems: u64::try_from(row.problems).unwrap_or(0),
            problem_codes: serde_json::from_value(row.problem_codes).unwrap_or_default(),
            reason: row.reason,
            message: row.message,
            timings: row.timings,
            clever: crate::run::CleverRequests::from_json(&row.clever_requests),
            duration_ms: finished_at
                .map(|f| u64::try_from(f.duration_since(started_at).as_millis()).unwrap_or(0)),
            notified: row.notified_at.is_some(),
            attempts: u32::try_from(row.attempts).unwrap_or(1).max(1),
            run_id: row.run_id,
        })
    }
}

fn records(rows: Vec<Row>) -> Result<Vec<RunRecord>, StoreError> {
    rows.into_iter().map(RunRecord::try_from).collect()
}

/// Marks the connection's runs still `Running` (other than `except_run`) as Failed/Interrupted:
/// the caller holds the connection's lock, so they belong to processes that died.
pub async fn fail_interrupted(
    conn: &mut PgConnection,
    connection: &ConnectionKey,
    except_run: &str,
) -> Result<u64, StoreError> {
    let r = sqlx::query!(
        "UPDATE sync_runs SET result = 'Failed', retriable = true, finished_at = now(), reason = 'Interrupted',
                message = 'the run stopped before recording an outcome (process crashed or was killed); \
                           its roster changes, if any, were rolled back'
         WHERE connection = $1 AND result = 'Running' AND run_id <> $2",
        connection.as_str(),
        except_run,
    )
    .execute(&mut *conn)
    .await
    .map_err(StoreError::query("marking interrupted runs"))?;
    Ok(r.rows_affected())
}

/// Records the run as Running. A run id started again (the Job's next attempt after a retriable
/// failure, or after its process died) starts over as its next attempt, its problems cleared. A
/// run id another connection already has is refused ([`StoreError::RunIdTaken`]).
pub async fn start(conn: &mut PgConnection, run: &RunStart) -> Result<(), StoreError> {
    let started = sqlx::query!(
        "INSERT INTO sync_runs (run_id, connection, schedule, trigger, job, dry_run, started_at, result)
         VALUES ($1, $2, $3, $4, $5, $6, now(), 'Running')
         ON CONFLICT (run_id) DO UPDATE SET started_at = now(), result = 'Running', finished_at = NULL,
             reason = NULL, message = NULL, counts = '{}', problems = 0, problem_codes = '{}', timings = '{}', clever_requests = '{}',
             retriable = false, attempts = sync_runs.attempts + 1
         WHERE sync_runs.connection = EXCLUDED.connection",
        run.run_id,
        run.connection.as_str(),
        run.schedule,
        run.trigger.as_str(),
        run.job,
        run.dry_run,
    )
    .execute(&mut *conn)
    .await
    .map_err(StoreError::query("recording the run start"))?;
    if started.rows_affected() == 0 {
        return Err(StoreError::RunIdTaken {
            run_id: run.run_id.clone(),
            connection: run.connection.to_string(),
        });
    }
    sqlx::query!(
        "DELETE FROM sync_problems WHERE run_id = $1
           AND run_id IN (SELECT run_id FROM sync_runs WHERE run_id = $1 AND connection = $2)",
        run.run_id,
        run.connection.as_str(),
    )
    .execute(&mut *conn)
    .await
    .map_err(StoreError::query("clearing a retried run's problems"))?;
    Ok(())
}

/// Copies the run's staged problems (the session's `stg_problems`) to `sync_problems` and returns
/// the totals by code.
pub async fn record_problems(
    conn: &mut PgConnection,
    connection: &ConnectionKey,
    run_id: &str,
) -> Result<ProblemCodes, StoreError> {
    sqlx::query(
        "INSERT INTO sync_problems (run_id, connection, record_kind, clever_id, code, message)
         SELECT $1, $2, record_kind, clever_id, code, message FROM stg_problems
         WHERE EXISTS (SELECT 1 FROM sync_runs WHERE run_id = $1 AND connection = $2)
         ORDER BY id",
    )
    .bind(run_id)
    .bind(connection.as_str())
    .execute(&mut *conn)
    .await
    .map_err(StoreError::query("recording problems"))?;
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT code, count(*) FROM stg_problems GROUP BY code ORDER BY code")
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::query("counting problems"))?;
    Ok(rows
        .into_iter()
        .map(|(c, n)| (c, u64::try_from(n).unwrap_or(0)))
        .collect())
}

/// Writes the run's outcome, only while the run is still `Running`: a row another party finished
/// meanwhile (the controller recording a lost pod, or the run's own commit whose acknowledgement
/// was lost) is never overwritten. Returns whether the row was updated.
pub async fn finish(
    conn: &mut PgConnection,
    connection: &ConnectionKey,
    run_id: &str,
    f: &Finish<'_>,
) -> Result<bool, StoreError> {
    let problems: u64 = f.problem_codes.values().sum();
    let r = sqlx::query!(
        "UPDATE sync_runs SET result = $2, retriable = $3, finished_at = now(), counts = $4, problems = $5,
                problem_codes = $6, reason = $7, message = $8, timings = $9, clever_requests = $11
         WHERE run_id = $1 AND connection = $10 AND result = 'Running'",
        run_id,
        f.result.as_str(),
        f.retriable,
        f.counts.to_json(),
        i32::try_from(problems).unwrap_or(i32::MAX),
        serde_json::to_value(f.problem_codes).unwrap_or_default(),
        f.reason,
        f.message,
        f.timings,
        connection.as_str(),
        f.clever.to_json(),
    )
    .execute(&mut *conn)
    .await
    .map_err(StoreError::query("recording the run outcome"))?;
    Ok(r.rows_affected() == 1)
}

/// Records a run whose pod stopped without an outcome as Failed (retriable): inserted when the pod
/// never started it, completed when it is still `Running`, left alone when it has an outcome or
/// belongs to another connection.
pub async fn record_lost_pod(
    conn: &mut PgConnection,
    lost: &LostPod<'_>,
) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO sync_runs (run_id, connection, schedule, trigger, job, started_at, finished_at,
                                result, retriable, reason, message)
         VALUES ($1, $2, $3, $4, $5, $6, now(), 'Failed', true, $7, $8)
         ON CONFLICT (run_id) DO UPDATE SET result = 'Failed', retriable = true, finished_at = now(),
             reason = EXCLUDED.reason, message = EXCLUDED.message
         WHERE sync_runs.result = 'Running' AND sync_runs.connection = EXCLUDED.connection",
        lost.run_id,
        lost.connection.as_str(),
        lost.schedule,
        lost.trigger.as_str(),
        lost.job,
        Ts(lost.started_at) as _,
        lost.reason,
        lost.message,
    )
    .execute(&mut *conn)
    .await
    .map_err(StoreError::query("recording a run that stopped without an outcome"))?;
    Ok(())
}

/// Marks a finished run as reported. True the first time only: the caller queues the run's email
/// in the same transaction, so each run is emailed at most once, even across restarts and
/// replicas (a concurrent caller waits on the row lock, then gets false).
pub async fn mark_notified(
    conn: &mut PgConnection,
    connection: &ConnectionKey,
    run_id: &str,
) -> Result<bool, StoreError> {
    let marked = sqlx::query_scalar!(
        "UPDATE sync_runs SET notified_at = now() \
         WHERE run_id = $1 AND connection = $2 AND notified_at IS NULL AND result <> 'Running' \
         RETURNING run_id",
        run_id,
        connection.as_str(),
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(StoreError::query("marking a run reported"))?;
    Ok(marked.is_some())
}

/// The run of `connection` with this id, if any (a run of another connection is `None`).
pub async fn by_id(
    executor: impl PgExecutor<'_>,
    connection: &ConnectionKey,
    run_id: &str,
) -> Result<Option<RunRecord>, StoreError> {
    let row = sqlx::query_as!(
        Row,
        "SELECT run_id, connection, schedule, trigger, job, dry_run,
                started_at AS \"started_at: Ts\", finished_at AS \"finished_at: Ts\",
                result, retriable, counts, problems, problem_codes, reason,
                message, timings, clever_requests, notified_at AS \"notified_at: Ts\",
                attempts
         FROM sync_runs WHERE run_id = $1 AND connection = $2",
        run_id,
        connection.as_str(),
    )
    .fetch_optional(executor)
    .await
    .map_err(StoreError::query("reading a sync run"))?;
    row.map(RunRecord::try_from).transpose()
}

/// The held run an approval of the connection's removals is weighed against: its latest Held run
/// (not a dry run) that no successful run (not a dry run) has followed. A success after the hold
/// means the hold is resolved, and an approval then has nothing to refer to.
pub async fn pending_held(
    executor: impl PgExecutor<'_>,
    connection: &ConnectionKey,
) -> Result<Option<RunRecord>, StoreError> {
    let row = sqlx::query_as!(
        Row,
        "SELECT h.run_id, h.connection, h.schedule, h.trigger, h.job, h.dry_run,
                h.started_at AS \"started_at: Ts\", h.finished_at AS \"finished_at: Ts\",
                h.result, h.retriable, h.counts, h.problems, h.problem_codes, h.reason,
                h.message, h.timings, h.clever_requests, h.notified_at AS \"notified_at: Ts\",
                h.attempts
         FROM sync_runs h WHERE h.connection = $1 AND h.result = 'Held' AND NOT h.dry_run
           AND NOT EXISTS (SELECT 1 FROM sync_runs s WHERE s.connection = h.connection
                             AND s.result = 'Succeeded' AND NOT s.dry_run AND s.started_at > h.started_at)
         ORDER BY h.started_at DESC, h.run_id DESC LIMIT 1",
        connection.as_str(),
    )
    .fetch_optional(executor)
    .await
    .map_err(StoreError::query("reading the held run"))?;
    row.map(RunRecord::try_from).transpose()
}

/// The latest finished run of a connection that applied or would have (not a dry run), for
/// `status.lastSync`.
pub async fn latest_finished(
    executor: impl PgExecutor<'_>,
    connection: &ConnectionKey,
) -> Result<Option<RunRecord>, StoreError> {
    let row = sqlx::query_as!(
        Row,
        "SELECT run_id, connection, schedule, trigger, job, dry_run,
                started_at AS \"started_at: Ts\", finished_at AS \"finished_at: Ts\",
                result, retriable, counts, problems, problem_codes, reason,
                message, timings, clever_requests, notified_at AS \"notified_at: Ts\",
                attempts
         FROM sync_runs WHERE connection = $1 AND result <> 'Running' AND NOT dry_run
         ORDER BY finished_at DESC NULLS LAST, started_at DESC LIMIT 1",
        connection.as_str(),
    )
    .fetch_optional(executor)
    .await
    .map_err(StoreError::query("reading the latest run"))?;
    row.map(RunRecord::try_from).transpose()
}

/// The most recent runs, newest first, of one connection or of all.
pub async fn list(
    executor: impl PgExecutor<'_>,
    connection: Option<&ConnectionKey>,
    limit: i64,
) -> Result<Vec<RunRecord>, StoreError> {
    let rows = sqlx::query_as!(
        Row,
        "SELECT run_id, connection, schedule, trigger, job, dry_run,
                started_at AS \"started_at: Ts\", finished_at AS \"finished_at: Ts\",
                result, retriable, counts, problems, problem_codes, reason,
                message, timings, clever_requests, notified_at AS \"notified_at: Ts\",
                attempts
         FROM sync_runs WHERE ($1::text IS NULL OR connection = $1)
         ORDER BY started_at DESC, run_id DESC LIMIT $2",
        connection.map(ConnectionKey::as_str),
        limit.max(0),
    )
    .fetch_all(executor)
    .await
    .map_err(StoreError::query("reading sync_runs"))?;
    records(rows)
}

/// The problems recorded for a run of `connection`, in recording order.
pub async fn problems(
    executor: impl PgExecutor<'_>,
    connection: &ConnectionKey,
    run_id: &str,
) -> Result<Vec<Problem>, StoreError> {
    sqlx::query_as!(
        Problem,
        "SELECT p.record_kind, p.clever_id, p.code, p.message FROM sync_problems p
         JOIN sync_runs r ON r.run_id = p.run_id
         WHERE p.run_id = $1 AND r.connection = $2 ORDER BY p.id",
        run_id,
        connection.as_str(),
    )
    .fetch_all(executor)
    .await
    .map_err(StoreError::query("reading sync_problems"))
}

/// Runs of `schedule` (on `connection`) started by a Job since `since` that nobody reported yet
/// (`notified_at` is NULL), finished or still `Running`, oldest first. The controller reports
/// from here the runs whose Job is gone (deleted, or removed by its TTL while the controller was
/// down); a run whose Job still exists is reported from the Job. `since` keeps runs from before
/// `notified_at` existed (which stayed NULL) out.
pub async fn unreported(
    executor: impl PgExecutor<'_>,
    connection: &ConnectionKey,
    schedule: &str,
    since: Timestamp,
) -> Result<Vec<RunRecord>, StoreError> {
    let rows = sqlx::query_as!(
        Row,
        "SELECT run_id, connection, schedule, trigger, job, dry_run,
                started_at AS \"started_at: Ts\", finished_at AS \"finished_at: Ts\",
                result, retriable, counts, problems, problem_codes, reason,
                message, timings, clever_requests, notified_at AS \"notified_at: Ts\",
                attempts
         FROM sync_runs WHERE connection = $1 AND schedule = $2 AND job IS NOT NULL
             AND notified_at IS NULL AND started_at >= $3
         ORDER BY started_at, run_id LIMIT 100",
        connection.as_str(),
        schedule,
        Ts(since) as _,
    )
    .fetch_all(executor)
    .await
    .map_err(StoreError::query("reading unreported runs"))?;
    records(rows)
}
