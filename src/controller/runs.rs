//! Sync runs as the controller sees them: the state of a Job, and its outcome from the run's
//! record (or, when the pod died before writing one, a Failed record the controller writes itself,
//! so no run is ever missing from history).
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use sqlx::{PgConnection, PgPool};

use super::error::Result;
use super::job::{RUN_ID_LABEL, TRIGGER_LABEL};
use crate::api::{LastSync, RunStatus};
use crate::run::{ConnectionKey, RunRecord, RunResult, Trigger, parse_trigger};
use crate::store::runs::{self, LostPod};

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
    job.labels()
        .get(TRIGGER_LABEL)
        .and_then(|t| parse_trigger(t).ok())
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

/// The outcome of a finished Job: its record, after recording it as Failed when the pod died
/// without writing an outcome (deadline, OOM, eviction, a killed process). Runs on `tx`, the
/// caller's transaction, so the Failed record and the run's email commit together.
pub async fn outcome(
    tx: &mut PgConnection,
    job: &Job,
    connection: &ConnectionKey,
    schedule: &str,
) -> Result<RunRecord> {
    let run_id = run_id_of(job);
    if let Some(run) = runs::by_id(&mut *tx, connection, &run_id).await?
        && run.is_finished()
    {
        return Ok(run);
    }
    let (reason, detail) = match job_state(job) {
        JobState::Failed { reason, message } => (reason, message),
        _ => (
            "OutcomeMissing".to_string(),
            "the Job completed".to_string(),
        ),
    };
    let message = lost_pod_message(&reason, &detail);
    let started_at = job
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0)
        .unwrap_or_else(Timestamp::now);
    let lost = LostPod {
        run_id: &run_id,
        connection,
        schedule,
        trigger: trigger_of(job).unwrap_or(Trigger::Manual),
        job: &job.name_any(),
        started_at,
        reason: &reason,
        message: &message,
    };
    runs::record_lost_pod(&mut *tx, &lost).await?;
    Ok(runs::by_id(&mut *tx, connection, &run_id)
        .await?
        .ok_or(crate::store::StoreError::RunMissing(run_id))?)
}

/// What history says of a pod that stopped without recording an outcome.
pub fn lost_pod_message(reason: &str, detail: &str) -> String {
    format!(
        "the sync pod stopped without recording an outcome ({}); its roster changes, if any, \
         were rolled back",
        if detail.is_empty() {
            reason.to_string()
        } else {
            format!("{reason}: {detail}")
        }
    )
}

/// The latest finished run of a connection, as its `status.lastSync`.
pub async fn last_sync(pool: &PgPool, connection: &ConnectionKey) -> Result<Option<LastSync>> {
    Ok(runs::latest_finished(pool, connection)
        .await?
        .map(|r| r.last_sync()))
}
