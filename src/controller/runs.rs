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

/// The reason of a run recorded Failed because it stayed `Running` after its Job was gone.
pub const JOB_LOST: &str = "JobLost";

/// How far back a schedule looks in `sync_runs` for runs nobody reported.
pub const REPORT_LOOKBACK: jiff::SignedDuration = jiff::SignedDuration::from_hours(7 * 24);

/// What a schedule does with a run of its own found unreported in `sync_runs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unreported {
    /// Its Job still exists: the Job reports it once it finishes (a retriable failure may be
    /// followed by the Job's next attempt under the same run id).
    FromJob,
    /// Finished and its Job is gone: report it now.
    Report,
    /// Still `Running`, its Job gone for longer than the grace period: record it Failed
    /// ([`JOB_LOST`]), then report it.
    RecordLost,
    /// Still `Running`, its Job gone, but started within the grace period (a pod orphaned by a
    /// deletion may still finish it): look again at this time.
    WaitUntil(Timestamp),
}

/// The rule for a run found unreported in `sync_runs` (pure).
pub fn unreported_action(
    run: &RunRecord,
    job_exists: bool,
    now: Timestamp,
    grace: std::time::Duration,
) -> Unreported {
    if job_exists {
        return Unreported::FromJob;
    }
    if run.is_finished() {
        return Unreported::Report;
    }
    let grace = jiff::SignedDuration::try_from(grace).unwrap_or(jiff::SignedDuration::MAX);
    let lost_at = run.started_at.checked_add(grace).unwrap_or(Timestamp::MAX);
    if now >= lost_at {
        Unreported::RecordLost
    } else {
        Unreported::WaitUntil(lost_at)
    }
}

/// What history says of a run whose Job was gone while it was still `Running`.
pub fn job_lost_message(job: &str, grace: std::time::Duration) -> String {
    format!(
        "the run's Job {job} no longer exists and the run recorded no outcome within {}s of its \
         start (the Job was deleted, or the node lost); its roster changes, if any, were rolled \
         back",
        grace.as_secs()
    )
}

/// Records a run whose Job is gone as Failed ([`JOB_LOST`]) on `tx` and returns its record (the
/// run's own outcome when it recorded one meanwhile).
pub async fn record_job_lost(
    tx: &mut PgConnection,
    run: &RunRecord,
    schedule: &str,
    grace: std::time::Duration,
) -> Result<RunRecord> {
    let job = run.job.clone().unwrap_or_default();
    let message = job_lost_message(&job, grace);
    let lost = LostPod {
        run_id: &run.run_id,
        connection: &run.connection,
        schedule,
        trigger: run.trigger,
        job: &job,
        started_at: run.started_at,
        reason: JOB_LOST,
        message: &message,
    };
    runs::record_lost_pod(&mut *tx, &lost).await?;
    Ok(runs::by_id(&mut *tx, &run.connection, &run.run_id)
        .await?
        .ok_or_else(|| crate::store::StoreError::RunMissing(run.run_id.clone()))?)
}

/// The latest finished run of a connection, as its `status.lastSync`.
pub async fn last_sync(pool: &PgPool, connection: &ConnectionKey) -> Result<Option<LastSync>> {
    Ok(runs::latest_finished(pool, connection)
        .await?
        .map(|r| r.last_sync()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn run(result: RunResult, started: &str) -> RunRecord {
        RunRecord {
            run_id: "nightly-now-1-abcd".into(),
            connection: ConnectionKey::new("ns", "springfield").expect("key"),
            schedule: Some("nightly".into()),
            trigger: Trigger::Manual,
            job: Some("nightly-now-1".into()),
            dry_run: false,
            started_at: ts(started),
            finished_at: (result != RunResult::Running).then(|| ts(started)),
            result,
            retriable: false,
            counts: Default::default(),
            problems: 0,
            problem_codes: Default::default(),
            reason: None,
            message: None,
            timings: serde_json::json!({}),
            clever: Default::default(),
            duration_ms: None,
            notified: false,
            attempts: 1,
        }
    }

    #[test]
    fn unreported_runs_are_reported_from_the_database_only_when_their_job_is_gone() {
        let grace = Duration::from_secs(300);
        let now = ts("2026-01-01T02:10:00Z");
        let cases = [
            // (result, started, job exists, expected)
            (
                RunResult::Succeeded,
                "2026-01-01T02:00:00Z",
                true,
                Unreported::FromJob,
            ),
            // A retriable failure whose Job runs its next attempt: the Job reports it.
            (
                RunResult::Failed,
                "2026-01-01T02:00:00Z",
                true,
                Unreported::FromJob,
            ),
            (
                RunResult::Running,
                "2026-01-01T01:00:00Z",
                true,
                Unreported::FromJob,
            ),
            (
                RunResult::Succeeded,
                "2026-01-01T02:00:00Z",
                false,
                Unreported::Report,
            ),
            (
                RunResult::Failed,
                "2026-01-01T02:09:59Z",
                false,
                Unreported::Report,
            ),
            (
                RunResult::Held,
                "2026-01-01T02:00:00Z",
                false,
                Unreported::Report,
            ),
            (
                RunResult::Running,
                "2026-01-01T02:05:00Z",
                false,
                Unreported::RecordLost,
            ),
            (
                RunResult::Running,
                "2026-01-01T01:00:00Z",
                false,
                Unreported::RecordLost,
            ),
            (
                RunResult::Running,
                "2026-01-01T02:05:01Z",
                false,
                Unreported::WaitUntil(ts("2026-01-01T02:10:01Z")),
            ),
        ];
        for (result, started, exists, expected) in cases {
            assert_eq!(
                unreported_action(&run(result, started), exists, now, grace),
                expected,
                "{result:?} started {started}, job exists: {exists}"
            );
        }
        // No grace: a Running row without its Job is lost at once.
        assert_eq!(
            unreported_action(
                &run(RunResult::Running, "2026-01-01T02:10:00Z"),
                false,
                now,
                Duration::ZERO
            ),
            Unreported::RecordLost
        );
    }

    #[test]
    fn a_lost_run_says_what_happened_without_guessing() {
        let m = job_lost_message("nightly-now-1", Duration::from_secs(300));
        assert!(m.contains("nightly-now-1") && m.contains("300s"), "{m}");
    }
}
