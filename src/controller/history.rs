//! Pure helpers over a schedule's run history in status: upserting runs, what Sync Now needs to
//! know, and which finished Jobs to prune.
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;

use super::job::{REPORTED_ANNOTATION, is_sync_now_job};
use super::runs::{JobState, finished_at, job_state};
use crate::api::{RunResult, RunStatus, Trigger};

/// How many runs `status.recentRuns` keeps.
pub const RECENT_RUNS: usize = 5;

fn started(r: &RunStatus) -> Option<Timestamp> {
    r.started_at.as_ref().map(|t| t.0)
}

/// Inserts or replaces the run (by run id), newest first, at most [`RECENT_RUNS`].
pub fn upsert(runs: &mut Vec<RunStatus>, run: RunStatus) {
    runs.retain(|r| r.run_id != run.run_id);
    runs.push(run);
    runs.sort_by(|a, b| {
        started(b)
            .cmp(&started(a))
            .then_with(|| b.run_id.cmp(&a.run_id))
    });
    runs.truncate(RECENT_RUNS);
}

/// Whether the run is already recorded with a final result (so counters are not counted twice).
pub fn is_final(runs: &[RunStatus], run_id: &str) -> bool {
    runs.iter()
        .any(|r| r.run_id == run_id && r.result.is_some_and(|res| res != RunResult::Running))
}

/// When the latest Scheduled or CatchUp run started.
pub fn last_scheduled_start(runs: &[RunStatus]) -> Option<Timestamp> {
    runs.iter()
        .filter(|r| matches!(r.trigger, Some(Trigger::Scheduled | Trigger::CatchUp)))
        .filter_map(started)
        .max()
}

/// When the latest Sync Now run started (approval runs do not use up Sync Now).
pub fn last_sync_now_start(schedule: &str, runs: &[RunStatus]) -> Option<Timestamp> {
    runs.iter()
        .filter(|r| is_sync_now_job(schedule, &r.job))
        .filter_map(started)
        .max()
}

/// Finished, reported Jobs beyond the history limits (newest kept), to delete.
pub fn to_prune<'a>(jobs: &[&'a Job], keep_succeeded: usize, keep_failed: usize) -> Vec<&'a Job> {
    let mut finished: Vec<&Job> = jobs
        .iter()
        .copied()
        .filter(|j| j.annotations().contains_key(REPORTED_ANNOTATION))
        .filter(|j| job_state(j) != JobState::Active)
        .collect();
    finished.sort_by_key(|j| std::cmp::Reverse(finished_at(j)));
    let (ok, failed): (Vec<&Job>, Vec<&Job>) = finished
        .into_iter()
        .partition(|j| job_state(j) == JobState::Succeeded);
    ok.into_iter()
        .skip(keep_succeeded)
        .chain(failed.into_iter().skip(keep_failed))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn run(id: &str, job: &str, min: i64, trigger: Trigger, result: RunResult) -> RunStatus {
        RunStatus {
            job: job.into(),
            run_id: id.into(),
            trigger: Some(trigger),
            result: Some(result),
            started_at: Timestamp::from_second(min * 60).ok().map(Time),
            finished_at: None,
            summary: String::new(),
        }
    }

    #[test]
    fn upsert_keeps_newest_five_and_replaces_by_id() {
        let mut runs = Vec::new();
        for i in 0..7 {
            upsert(
                &mut runs,
                run(
                    &format!("r{i}"),
                    "j",
                    i,
                    Trigger::Scheduled,
                    RunResult::Running,
                ),
            );
        }
        assert_eq!(runs.len(), 5);
        assert_eq!(runs[0].run_id, "r6");
        assert!(!is_final(&runs, "r6"));
        upsert(
            &mut runs,
            run("r6", "j", 6, Trigger::Scheduled, RunResult::Succeeded),
        );
        assert_eq!(runs.len(), 5);
        assert!(is_final(&runs, "r6"));
    }

    #[test]
    fn sync_now_start_ignores_approvals_and_slots() {
        let runs = vec![
            run(
                "a",
                "nightly-approve-0000aaaa",
                30,
                Trigger::Manual,
                RunResult::Succeeded,
            ),
            run(
                "n",
                "nightly-now-0000bbbb",
                20,
                Trigger::Manual,
                RunResult::Succeeded,
            ),
            run(
                "s",
                "nightly-29540640",
                10,
                Trigger::Scheduled,
                RunResult::Succeeded,
            ),
        ];
        assert_eq!(
            last_sync_now_start("nightly", &runs),
            Timestamp::from_second(1200).ok()
        );
        assert_eq!(
            last_scheduled_start(&runs),
            Timestamp::from_second(600).ok()
        );
    }
}
