//! Sync runs as the controller sees them: the state of a Job, and its outcome from the `sync_runs`
//! row (or, when the pod died before writing one, a Failed row the controller writes itself, so no
//! run is ever missing from history).
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use sqlx::{PgConnection, PgPool};

use super::error::Result;
use super::job::{RUN_ID_LABEL, TRIGGER_LABEL};
use crate::api::{LastSync, RunResult, RunStatus, Trigger};
use crate::store::{RunRow, StoreError, run_by_id};

/// Where a Job is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    Active,
    Succeeded,
    /// Failed, with the Job's reason (`DeadlineExceeded`, `BackoffLimitExceeded`, `PodFailurePolicy`...).
    Failed {
        reason: String,
        message: String,
    },
}

pub fn job_state(job: &Job) -> JobState {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    for c in conditions.iter().filter(|c| c.status == "True") {
        match c.type_.as_str() {
            "Complete" => return JobState::Succeeded,
            "Failed" => {
                return JobState::Failed {
                    reason: c.reason.clone().unwrap_or_else(|| "Failed".into()),
                    message: c.message.clone().unwrap_or_default(),
                };
            }
            _ => {}
        }
    }
    JobState::Active
}

pub fn is_finished(job: &Job) -> bool {
    job_state(job) != JobState::Active
}

/// When the Job finished (its completion time, or when it was marked Failed).
pub fn finished_at(job: &Job) -> Option<Timestamp> {
    let status = job.status.as_ref()?;
    if let Some(t) = &status.completion_time {
        return Some(t.0);
    }
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Failed" || c.type_ == "Complete") && c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

pub fn run_id_of(job: &Job) -> String {
    job.labels().get(RUN_ID_LABEL).cloned().unwrap_or_default()
}

pub fn trigger_of(job: &Job) -> Option<Trigger> {
    match job.labels().get(TRIGGER_LABEL).map(String::as_str) {
        Some("Scheduled") => Some(Trigger::Scheduled),
        Some("Manual") => Some(Trigger::Manual),
        Some("CatchUp") => Some(Trigger::CatchUp),
        _ => None,
    }
}

/// The status entry of a Job that is still running.
pub fn running_status(job: &Job, started: Timestamp) -> RunStatus {
    RunStatus {
        job: job.name_any(),
        run_id: run_id_of(job),
        trigger: trigger_of(job),
        result: Some(RunResult::Running),
        started_at: Some(Time(started)),
        finished_at: None,
        summary: String::new(),
    }
}

fn parse_result(s: &str) -> RunResult {
    match s {
        "Succeeded" => RunResult::Succeeded,
        "Held" => RunResult::Held,
        "Running" => RunResult::Running,
        _ => RunResult::Failed,
    }
}

/// A one-line summary of a run: counts when it applied, else its reason (never personal data).
pub fn summary(row: &RunRow) -> String {
    if row.result == "Succeeded" {
        let mut parts = Vec::new();
        for entity in [
            "children",
            "classrooms",
            "educators",
            "schools",
            "enrollments",
        ] {
            let c = &row.counts[entity];
            let n = |k: &str| c[k].as_u64().unwrap_or(0);
            let removed = n("removed") + n("deactivated");
            parts.push(format!(
                "{entity} +{} ~{} -{removed}",
                n("created"),
                n("updated")
            ));
        }
        return parts.join(", ");
    }
    let reason = row.reason.as_deref().unwrap_or("Unknown");
    match row.message.as_deref() {
        Some(m) if !m.is_empty() => super::status::truncate(&format!("{reason}: {m}"), 300),
        _ => reason.to_string(),
    }
}

fn chrono_to_ts(t: chrono::DateTime<chrono::Utc>) -> Option<Timestamp> {
    Timestamp::new(
        t.timestamp(),
        i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    )
    .ok()
}

/// The run's status entry from its row.
pub fn status_from_row(job: &str, row: &RunRow) -> RunStatus {
    RunStatus {
        job: job.to_string(),
        run_id: row.run_id.clone(),
        trigger: match row.trigger.as_str() {
            "Scheduled" => Some(Trigger::Scheduled),
            "CatchUp" => Some(Trigger::CatchUp),
            _ => Some(Trigger::Manual),
        },
        result: Some(parse_result(&row.result)),
        started_at: chrono_to_ts(row.started_at).map(Time),
        finished_at: row.finished_at.and_then(chrono_to_ts).map(Time),
        summary: summary(row),
    }
}

/// The outcome of a finished Job: its row, after writing a Failed one if the pod died without
/// recording an outcome (deadline, OOM, eviction, a killed process). Runs on `tx`, the caller's
/// transaction, so the Failed row and the run's email (see [`mark_notified`]) commit together.
pub async fn outcome(
    tx: &mut PgConnection,
    job: &Job,
    connection_key: &str,
    schedule: &str,
) -> Result<RunRow> {
    let run_id = run_id_of(job);
    if let Some(row) = run_by_id(&mut *tx, &run_id).await?
        && row.result != "Running"
    {
        return Ok(row);
    }
    let (reason, detail) = match job_state(job) {
        JobState::Failed { reason, message } => (reason, message),
        _ => (
            "OutcomeMissing".to_string(),
            "the Job completed".to_string(),
        ),
    };
    let message = format!(
        "the sync pod stopped without recording an outcome ({}); its roster changes, if any, \
         were rolled back",
        if detail.is_empty() {
            reason.clone()
        } else {
            format!("{reason}: {detail}")
        }
    );
    let started = job
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0)
        .unwrap_or_else(Timestamp::now);
    let started = chrono::DateTime::from_timestamp(started.as_second(), 0).unwrap_or_default();
    sqlx::query(
        "INSERT INTO sync_runs (run_id, connection, schedule, trigger, job, started_at, finished_at,
                                result, retriable, reason, message)
         VALUES ($1, $2, $3, $4, $5, $6, now(), 'Failed', true, $7, $8)
         ON CONFLICT (run_id) DO UPDATE SET result = 'Failed', retriable = true, finished_at = now(),
             reason = EXCLUDED.reason, message = EXCLUDED.message
         WHERE sync_runs.result = 'Running'",
    )
    .bind(&run_id)
    .bind(connection_key)
    .bind(schedule)
    .bind(trigger_of(job).unwrap_or(Trigger::Manual).as_str())
    .bind(job.name_any())
    .bind(started)
    .bind(&reason)
    .bind(&message)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::query("recording a run that stopped without an outcome"))?;
    run_by_id(&mut *tx, &run_id)
        .await?
        .ok_or_else(|| super::error::Error::InvalidObject(format!("run {run_id} vanished")))
}

/// Marks a finished run as reported (`notified_at`), on `tx`. True the first time only: the caller
/// then queues the run's email in the same transaction, so each run is emailed at most once, even
/// across restarts and replicas (a concurrent caller waits on the row lock, then gets false).
pub async fn mark_notified(tx: &mut PgConnection, run_id: &str) -> Result<bool> {
    let marked: Option<String> = sqlx::query_scalar(
        "UPDATE sync_runs SET notified_at = now() \
         WHERE run_id = $1 AND notified_at IS NULL AND result <> 'Running' RETURNING run_id",
    )
    .bind(run_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(StoreError::query("marking a run reported"))?;
    Ok(marked.is_some())
}

/// The latest finished run of a connection (`namespace/name`), for `status.lastSync`.
pub async fn last_sync(pool: &PgPool, connection_key: &str) -> Result<Option<LastSync>> {
    let id: Option<(String,)> = sqlx::query_as(
        "SELECT run_id FROM sync_runs WHERE connection = $1 AND result <> 'Running' AND NOT dry_run
         ORDER BY finished_at DESC NULLS LAST, started_at DESC LIMIT 1",
    )
    .bind(connection_key)
    .fetch_optional(pool)
    .await
    .map_err(StoreError::query("reading the latest run"))?;
    let Some((id,)) = id else { return Ok(None) };
    let Some(row) = run_by_id(pool, &id).await? else {
        return Ok(None);
    };
    Ok(Some(LastSync {
        run_id: row.run_id.clone(),
        result: Some(parse_result(&row.result)),
        finished_at: row.finished_at.and_then(chrono_to_ts).map(Time),
        summary: summary(&row),
    }))
}
